//! Quotas per identity (the token's subject), so that one user cannot fill
//! the node alone: connections, and rooms over all of its connections. The
//! node-wide limits (`MAX_CONNECTIONS`, `MAX_ROOMS`, ...) still apply; these
//! keep any one identity well below them. Per-connection quotas (rooms per
//! connection, tracks per offer, candidates per PeerConnection) are checked
//! where those things are made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An authenticated connection.
    Connection,
    /// A room joined (one per connection and room).
    Room,
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    connections: usize,
    rooms: usize,
}

impl Usage {
    fn of(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Connection => &mut self.connections,
            Kind::Room => &mut self.rooms,
        }
    }
}

/// Usage per identity on this node.
#[derive(Debug)]
pub struct Quotas {
    usage: Mutex<HashMap<String, Usage>>,
    max_connections: usize,
    max_rooms: usize,
}

/// One unit of an identity's quota, given back when dropped.
#[derive(Debug)]
pub struct QuotaGuard {
    quotas: Arc<Quotas>,
    identity: String,
    kind: Kind,
}

impl Quotas {
    /// Quotas of `max_connections` connections and `max_rooms` rooms per identity.
    pub fn new(max_connections: usize, max_rooms: usize) -> Arc<Quotas> {
        Arc::new(Quotas {
            usage: Mutex::new(HashMap::new()),
            max_connections,
            max_rooms,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Usage>> {
        // Critical sections are counter updates and cannot panic midway.
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one unit of `kind` for `identity`, or says which quota is full.
    pub fn take(self: &Arc<Self>, identity: &str, kind: Kind) -> Result<QuotaGuard, String> {
        let limit = match kind {
            Kind::Connection => self.max_connections,
            Kind::Room => self.max_rooms,
        };
        let mut map = self.lock();
        let usage = map.entry(identity.to_owned()).or_default();
        if *usage.of(kind) >= limit {
            let what = match kind {
                Kind::Connection => "connections to this node (MAX_CONNECTIONS_PER_IDENTITY)",
                Kind::Room => "rooms on this node (MAX_ROOMS_PER_IDENTITY)",
            };
            if usage.connections == 0 && usage.rooms == 0 {
                map.remove(identity);
            }
            return Err(format!(
                "participant `{identity}` already has {limit} {what}"
            ));
        }
        *usage.of(kind) += 1;
        Ok(QuotaGuard {
            quotas: Arc::clone(self),
            identity: identity.to_owned(),
            kind,
        })
    }

    /// Identities with any usage (for tests and health).
    pub fn identities(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let mut map = self.quotas.lock();
        if let Some(usage) = map.get_mut(&self.identity) {
            let n = usage.of(self.kind);
            *n = n.saturating_sub(1);
            if usage.connections == 0 && usage.rooms == 0 {
                map.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_identity_and_given_back() {
        let q = Quotas::new(2, 1);
        let a = q.take("alice", Kind::Connection).unwrap();
        let _b = q.take("alice", Kind::Connection).unwrap();
        let err = q.take("alice", Kind::Connection).unwrap_err();
        assert!(err.contains("MAX_CONNECTIONS_PER_IDENTITY"), "{err}");
        // Someone else is not affected.
        let _c = q.take("bob", Kind::Connection).unwrap();
        let r = q.take("alice", Kind::Room).unwrap();
        assert!(q.take("alice", Kind::Room).is_err());
        drop(r);
        let _r = q.take("alice", Kind::Room).unwrap();
        drop(a);
        let _d = q.take("alice", Kind::Connection).unwrap();
        assert_eq!(q.identities(), 2);
    }

    #[test]
    fn empty_identities_forgotten() {
        let q = Quotas::new(1, 1);
        drop(q.take("x", Kind::Connection).unwrap());
        drop(q.take("y", Kind::Room).unwrap());
        assert!(Quotas::take(&q, "z", Kind::Room).is_ok());
        assert_eq!(q.identities(), 0);
    }
}
