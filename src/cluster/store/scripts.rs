//! The Lua scripts of the lease and registry operations of
//! [`super::RedisStore`].
//!
//! The lease scripts. Each runs atomically in Redis, which is what makes
//! "compare, then act" safe against another node acting in between.

/// KEYS[1] room key, ARGV[1] node id, ARGV[2] lease ms. Takes a free lease or
/// extends our own, and returns the owner after the call either way, so one
/// round trip tells the caller who holds the room.
pub(super) const CLAIM_LUA: &str = r"
local owner = redis.call('GET', KEYS[1])
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return owner
";

/// KEYS[1] room key, ARGV[1] node id, ARGV[2] lease ms, ARGV[3] the prefix
/// of registry keys (`P:node:`), ARGV[4] `1` if the caller may take a free
/// lease. Like `CLAIM_LUA`, and a lease whose holder has no registry entry
/// is void: the holder stopped heartbeating for a whole `NODE_TTL_MS` (it
/// died), so the room is taken at once instead of after the rest of the
/// lease. A free (or void) lease is taken only by a registered caller that
/// may take it; otherwise the answer is an empty string. (After Redis lost
/// its data no node is registered, and a room still served by its node
/// must not be opened elsewhere before that node claimed it again.) The
/// registry keys are built from values, so this needs a single Redis (not
/// Redis Cluster), which is what cluster mode uses.
pub(super) const TAKE_OVER_LUA: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. owner) == 0 then
  owner = false
end
if not owner then
  if ARGV[4] ~= '1' or redis.call('EXISTS', ARGV[3] .. ARGV[1]) == 0 then
    return ''
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return owner
";

/// KEYS[1] room key, ARGV[1] node id, ARGV[2] lease ms. Compare-and-extend:
/// 1 if the lease was ours and is extended, 0 otherwise.
pub(super) const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// KEYS[1] room key, ARGV[1] node id. Compare-and-delete: 1 if the lease was
/// ours and is gone, 0 otherwise.
pub(super) const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS[1] nodes set, KEYS[2..] node keys, ARGV[i] the id of KEYS[i+1].
/// Removes an id from the set only if its entry is still missing when the
/// script runs, so a node that heartbeats between our read and this prune is
/// not dropped from the set.
pub(super) const PRUNE_LUA: &str = r"
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
";
