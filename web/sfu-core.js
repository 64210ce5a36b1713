// sfu-core.js: the pure parts of the rheo-sfu browser client library.
//
// Nothing in this module touches the DOM, WebSocket or RTCPeerConnection, and
// nothing runs at import time besides declarations, so it can be imported by
// Node 20 (`node --test web/test/`) as well as by browsers. Timer functions
// are looked up lazily (or injected), never captured at import time.
//
// Contents: SDP msid parsing (parseMsids, isProbator), SerialQueue, Backoff,
// TrackDirectory, PendingRequests, TimerSet, SfuError, normalizeCandidate,
// createRequestIdGenerator and parseServerMessage.

/**
 * One media section's msid, as returned by {@link parseMsids}.
 * @typedef {object} MsidInfo
 * @property {string} streamId The msid's stream id (first token).
 * @property {string} trackId The msid's track id (second token, "appdata").
 * @property {string} kind The m-line's media kind (`audio`, `video`, ...).
 */

/**
 * Reads `a=mid` / `a=msid` (Unified Plan) or `a=ssrc:N msid:` (Plan-B) from
 * every media section of an SDP. `m=application` sections (data channels) are
 * skipped, and so are sections without `a=mid` or without a track id in their
 * msid. When a section carries more than one msid (Plan-B), the first wins.
 * Accepts CRLF and LF line endings.
 *
 * @param {string} sdp The SDP text (offer or answer).
 * @returns {Map<string, MsidInfo>} mid → msid of that section.
 */
export function parseMsids(sdp) {
  /** @type {Map<string, MsidInfo>} */
  const out = new Map();
  if (typeof sdp !== 'string' || sdp.length === 0) return out;
  /** @type {{kind: string, mid: string|null, msid: {streamId: string, trackId: string}|null, ssrcMsid: {streamId: string, trackId: string}|null}|null} */
  let section = null;
  const finish = () => {
    if (!section || section.kind === 'application' || section.mid === null) return;
    const msid = section.msid ?? section.ssrcMsid;
    if (!msid || !msid.trackId) return;
    out.set(section.mid, { streamId: msid.streamId, trackId: msid.trackId, kind: section.kind });
  };
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('m=')) {
      finish();
      const kind = line.slice(2).split(/\s+/)[0] || '';
      section = { kind, mid: null, msid: null, ssrcMsid: null };
      continue;
    }
    if (!section) continue; // session-level lines
    if (line.startsWith('a=mid:')) {
      section.mid = line.slice(6).trim();
    } else if (line.startsWith('a=msid:')) {
      if (!section.msid) section.msid = splitMsid(line.slice(7));
    } else if (line.startsWith('a=ssrc:')) {
      // a=ssrc:<ssrc> msid:<stream> <track>
      const m = /^a=ssrc:\d+\s+msid:(.*)$/.exec(line);
      if (m && !section.ssrcMsid) section.ssrcMsid = splitMsid(m[1]);
    }
  }
  finish();
  return out;
}

/**
 * @param {string} value `<stream> <track>` of an msid attribute.
 * @returns {{streamId: string, trackId: string}|null}
 */
function splitMsid(value) {
  const parts = value.trim().split(/\s+/);
  if (parts.length < 1 || parts[0] === '') return null;
  return { streamId: parts[0], trackId: parts[1] ?? '' };
}

/**
 * True for the bandwidth-probing track that the server's media library
 * (webrtc-rs) may add to the first offer of a subscribe PeerConnection: msid
 * `webrtc-rs probator`. Clients ignore it.
 *
 * @param {{streamId?: string, trackId?: string}|null|undefined} msid
 * @returns {boolean}
 */
export function isProbator(msid) {
  return !!msid && msid.streamId === 'webrtc-rs' && msid.trackId === 'probator';
}

/**
 * Error type of the library. `code` is the server's error code (`forbidden`,
 * `room-full`, ...) or a local one (`timeout`, `connection-lost`, `closed`,
 * `interrupted`, `cancelled`, `not-connected`, `negotiation-failed`,
 * `reconnect-failed`, `invalid-state`, `bad-message`).
 */
export class SfuError extends Error {
  /**
   * @param {string} code Error code.
   * @param {string} [message] Human-readable reason.
   * @param {{requestType?: string|null, roomName?: string|null, requestId?: string|number|null, fatal?: boolean, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message || code, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    /** @type {string} */
    this.name = 'SfuError';
    /** Error code. @type {string} */
    this.code = code;
    /** `type` of the request that caused it, when known. @type {string|null} */
    this.requestType = extra.requestType ?? null;
    /** Room of the request that caused it, when known. @type {string|null} */
    this.roomName = extra.roomName ?? null;
    /** `requestId` of the request that caused it, when known. @type {string|number|null} */
    this.requestId = extra.requestId ?? null;
    /** True when the client closed because of this error. @type {boolean} */
    this.fatal = !!extra.fatal;
  }

  /**
   * Builds an SfuError from a server `error` message.
   * @param {{code?: string, message?: string, requestType?: string, roomName?: string, requestId?: string|number}} msg
   * @returns {SfuError}
   */
  static fromServer(msg) {
    return new SfuError(String(msg.code ?? 'internal'), String(msg.message ?? msg.code ?? 'server error'), {
      requestType: msg.requestType ?? null,
      roomName: msg.roomName ?? null,
      requestId: msg.requestId ?? null,
    });
  }

  /**
   * Wraps anything thrown into an SfuError (SfuErrors pass through).
   * @param {unknown} err
   * @param {string} [code] Code for non-SfuErrors (default `internal`).
   * @returns {SfuError}
   */
  static wrap(err, code = 'internal') {
    if (err instanceof SfuError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new SfuError(code, message, { cause: err });
  }
}

/**
 * Runs async jobs strictly one after another, in the order they were pushed.
 * A failing job rejects its own promise and does not stop the next one.
 */
export class SerialQueue {
  constructor() {
    /** @type {{fn: () => unknown, resolve: (v: unknown) => void, reject: (e: unknown) => void}[]} */
    this._jobs = [];
    /** @type {boolean} */
    this._running = false;
  }

  /**
   * Appends a job.
   * @template T
   * @param {() => T|Promise<T>} fn The job; it starts after every earlier job settled.
   * @returns {Promise<T>} Settles with the job's result; rejects with the
   *   job's error, or with SfuError `cancelled` if {@link SerialQueue#clear}
   *   dropped the job before it started.
   */
  push(fn) {
    return new Promise((resolve, reject) => {
      this._jobs.push({ fn, resolve: /** @type {(v: unknown) => void} */ (resolve), reject });
      if (!this._running) void this._drain();
    });
  }

  /**
   * Drops every job that has not started yet (their promises reject with
   * SfuError `cancelled`). A running job is not interrupted.
   * @param {string} [reason]
   * @returns {number} How many jobs were dropped.
   */
  clear(reason = 'queue cleared') {
    const dropped = this._jobs.splice(0);
    for (const job of dropped) job.reject(new SfuError('cancelled', reason));
    return dropped.length;
  }

  /** Jobs waiting plus the running one. @returns {number} */
  get size() {
    return this._jobs.length + (this._running ? 1 : 0);
  }

  /** True when nothing runs and nothing waits. @returns {boolean} */
  get idle() {
    return !this._running && this._jobs.length === 0;
  }

  async _drain() {
    this._running = true;
    try {
      while (this._jobs.length > 0) {
        const job = this._jobs[0];
        this._jobs.shift();
        try {
          job.resolve(await job.fn());
        } catch (err) {
          job.reject(err);
        }
      }
    } finally {
      this._running = false;
    }
  }
}

/**
 * Exponential backoff with jitter. Delay n (from 0) is
 * `min(maxMs, minMs * factor^n)`, multiplied by a random factor in
 * `[1 - jitter, 1 + jitter]`, capped at `maxMs`; a server hint
 * (`retryAfterMs`) is honoured as the minimum.
 */
export class Backoff {
  /**
   * @param {object} [opts]
   * @param {number} [opts.minMs=500] First delay.
   * @param {number} [opts.maxMs=10000] Largest delay (hints may exceed it).
   * @param {number} [opts.factor=2] Growth per attempt.
   * @param {number} [opts.jitter=0.2] Relative jitter, 0..1.
   * @param {() => number} [opts.random=Math.random] Source of randomness in [0, 1).
   */
  constructor({ minMs = 500, maxMs = 10000, factor = 2, jitter = 0.2, random = Math.random } = {}) {
    /** @type {number} */
    this.minMs = Math.max(0, Number(minMs) || 0);
    /** @type {number} */
    this.maxMs = Math.max(this.minMs, Number(maxMs) || 0);
    /** @type {number} */
    this.factor = Math.max(1, Number(factor) || 1);
    /** @type {number} */
    this.jitter = Math.min(1, Math.max(0, Number(jitter) || 0));
    /** @type {() => number} */
    this.random = random;
    /** Number of delays handed out since the last reset. @type {number} */
    this.attempt = 0;
  }

  /**
   * Returns the next delay and advances.
   * @param {number} [hintMs] Server hint (`retryAfterMs`); the result is at least this (capped at 5 minutes).
   * @returns {number} Delay in milliseconds (integer).
   */
  next(hintMs) {
    const base = Math.min(this.maxMs, this.minMs * Math.pow(this.factor, this.attempt));
    this.attempt += 1;
    let r = Number(this.random());
    if (!Number.isFinite(r)) r = 0.5;
    r = Math.min(1, Math.max(0, r));
    let delay = Math.min(this.maxMs, base * (1 + this.jitter * (2 * r - 1)));
    const hint = Number(hintMs);
    if (Number.isFinite(hint) && hint > 0) delay = Math.max(delay, Math.min(hint, 300000));
    return Math.max(0, Math.round(delay));
  }

  /** Starts again from `minMs`. */
  reset() {
    this.attempt = 0;
  }
}

/**
 * The signaling URLs a client may use, and the one in use: the client's
 * `url` option, a string or a list. `advance()` moves round-robin to the
 * next one when the node behind the current URL looks gone (its socket
 * dropped without a `reconnect` message, or could not be opened); the list
 * is never shortened, so a node that comes back is used again in its turn.
 * One URL (a single node, or a load balancer in front of several) never
 * changes. Entries are kept as given (a path like `/ws` is resolved by the
 * client); `undefined` stands for the default, same origin + `/ws`.
 */
export class UrlRing {
  /**
   * @param {string|string[]|undefined|null} url
   * @throws {TypeError} When `url` is not a non-empty string, a non-empty list of them, or absent.
   */
  constructor(url) {
    /** @type {(string|undefined)[]} */
    this.urls = UrlRing.parse(url);
    /** Index of the URL in use. @type {number} */
    this.index = 0;
  }

  /**
   * Checks the `url` option and returns its list.
   * @param {unknown} url
   * @returns {(string|undefined)[]}
   */
  static parse(url) {
    if (url === undefined || url === null) return [undefined];
    if (typeof url === 'string') {
      if (url === '') throw new TypeError('option `url` must not be empty');
      return [url];
    }
    if (Array.isArray(url)) {
      if (url.length === 0) throw new TypeError('option `url`: the list of URLs is empty');
      if (url.length > 64) throw new TypeError('option `url`: at most 64 URLs');
      url.forEach((u, i) => {
        if (typeof u !== 'string' || u === '') throw new TypeError(`option \`url\`: entry ${i} is not a non-empty string`);
      });
      return [...url];
    }
    throw new TypeError('option `url` must be a string or a list of strings');
  }

  /** Number of URLs. @returns {number} */
  get size() {
    return this.urls.length;
  }

  /** The URL in use. @returns {string|undefined} */
  current() {
    return this.urls[this.index];
  }

  /**
   * Moves to the next URL (round-robin); with one URL nothing changes.
   * @returns {boolean} Whether the URL changed.
   */
  advance() {
    if (this.urls.length < 2) return false;
    this.index = (this.index + 1) % this.urls.length;
    return true;
  }
}

/**
 * One announced track.
 * @typedef {object} TrackInfo
 * @property {string} trackId The publisher's track id (kept on forwarded tracks).
 * @property {string} kind `audio` or `video`.
 */

/**
 * Maps trackId → publisherId, fed from `joined.publishers`, `new-publisher`
 * and `subscribe-offer.tracks`.
 */
export class TrackDirectory {
  constructor() {
    /** @type {Map<string, {publisherId: string, kind: string}>} */
    this._byTrack = new Map();
    /** @type {Map<string, Map<string, string>>} publisherId → (trackId → kind) */
    this._byPublisher = new Map();
  }

  /**
   * Adds tracks to a publisher (keeps the ones it already has). A track id
   * that belonged to another publisher moves to this one.
   * @param {string} publisherId
   * @param {TrackInfo[]} tracks
   */
  addTracks(publisherId, tracks) {
    const pid = String(publisherId);
    let mine = this._byPublisher.get(pid);
    if (!mine) {
      mine = new Map();
      this._byPublisher.set(pid, mine);
    }
    for (const t of Array.isArray(tracks) ? tracks : []) {
      if (!t || t.trackId === undefined || t.trackId === null || t.trackId === '') continue;
      const trackId = String(t.trackId);
      const kind = String(t.kind ?? '');
      const prev = this._byTrack.get(trackId);
      if (prev && prev.publisherId !== pid) this._byPublisher.get(prev.publisherId)?.delete(trackId);
      this._byTrack.set(trackId, { publisherId: pid, kind });
      mine.set(trackId, kind);
    }
  }

  /**
   * Replaces a publisher's tracks with the given complete list.
   * @param {string} publisherId
   * @param {TrackInfo[]} tracks
   */
  setTracks(publisherId, tracks) {
    this.removePublisher(publisherId);
    this.addTracks(publisherId, tracks);
  }

  /**
   * @param {string} trackId
   * @returns {string|undefined} The publisher of that track.
   */
  publisherOf(trackId) {
    return this._byTrack.get(String(trackId))?.publisherId;
  }

  /**
   * @param {string} trackId
   * @returns {string|undefined} The track's kind.
   */
  kindOf(trackId) {
    return this._byTrack.get(String(trackId))?.kind;
  }

  /**
   * @param {string} publisherId
   * @returns {TrackInfo[]} The publisher's known tracks.
   */
  tracksOf(publisherId) {
    const mine = this._byPublisher.get(String(publisherId));
    return mine ? [...mine].map(([trackId, kind]) => ({ trackId, kind })) : [];
  }

  /**
   * Forgets a publisher and its tracks.
   * @param {string} publisherId
   */
  removePublisher(publisherId) {
    const pid = String(publisherId);
    const mine = this._byPublisher.get(pid);
    if (!mine) return;
    for (const trackId of mine.keys()) {
      if (this._byTrack.get(trackId)?.publisherId === pid) this._byTrack.delete(trackId);
    }
    this._byPublisher.delete(pid);
  }

  /** Forgets everything. */
  clear() {
    this._byTrack.clear();
    this._byPublisher.clear();
  }
}

/**
 * Timer functions, injectable for tests.
 * @typedef {object} TimerFunctions
 * @property {(fn: () => void, ms: number) => unknown} [setTimeout]
 * @property {(handle: unknown) => void} [clearTimeout]
 * @property {(fn: () => void, ms: number) => unknown} [setInterval]
 * @property {(handle: unknown) => void} [clearInterval]
 */

/**
 * Keeps track of every timeout/interval it starts so that all of them can be
 * cleared at once ({@link TimerSet#clearAll}). The timer functions are looked
 * up on `globalThis` when used, unless injected.
 */
export class TimerSet {
  /** @param {TimerFunctions} [impl] */
  constructor(impl = {}) {
    /** @type {TimerFunctions} */
    this._impl = impl;
    /** @type {Map<unknown, 'timeout'|'interval'>} */
    this._handles = new Map();
  }

  /**
   * Like setTimeout; the handle is forgotten once the callback ran.
   * @param {() => void} fn
   * @param {number} ms
   * @returns {unknown} handle
   */
  setTimeout(fn, ms) {
    const st = this._impl.setTimeout ?? globalThis.setTimeout;
    /** @type {unknown} */
    let handle;
    handle = st(() => {
      this._handles.delete(handle);
      fn();
    }, Math.max(0, ms));
    this._handles.set(handle, 'timeout');
    return handle;
  }

  /**
   * Like setInterval.
   * @param {() => void} fn
   * @param {number} ms
   * @returns {unknown} handle
   */
  setInterval(fn, ms) {
    const si = this._impl.setInterval ?? globalThis.setInterval;
    const handle = si(fn, Math.max(1, ms));
    this._handles.set(handle, 'interval');
    return handle;
  }

  /**
   * Clears one timer started by this set (unknown handles are ignored).
   * @param {unknown} handle
   */
  clear(handle) {
    const kind = this._handles.get(handle);
    if (!kind) return;
    this._handles.delete(handle);
    if (kind === 'timeout') (this._impl.clearTimeout ?? globalThis.clearTimeout)(/** @type {any} */ (handle));
    else (this._impl.clearInterval ?? globalThis.clearInterval)(/** @type {any} */ (handle));
  }

  /** Clears every timer still pending. */
  clearAll() {
    for (const handle of [...this._handles.keys()]) this.clear(handle);
  }

  /** Number of pending timers. @returns {number} */
  get size() {
    return this._handles.size;
  }
}

/**
 * Requests waiting for their reply, keyed by `requestId`. A request settles
 * when {@link PendingRequests#resolve} / {@link PendingRequests#reject} is
 * called for its id (the client calls them when a reply or an `error`
 * carrying that `requestId` arrives), when it times out (SfuError `timeout`),
 * or on {@link PendingRequests#rejectAll}.
 */
export class PendingRequests {
  /**
   * @param {object} [opts]
   * @param {number} [opts.timeoutMs=15000] Default timeout per request.
   * @param {TimerSet} [opts.timers] Timer set to use (default: a new one on globalThis timers).
   */
  constructor({ timeoutMs = 15000, timers } = {}) {
    /** @type {number} */
    this.timeoutMs = timeoutMs;
    /** @type {TimerSet} */
    this._timers = timers ?? new TimerSet();
    /** @type {Map<string, {resolve: (v: any) => void, reject: (e: unknown) => void, timer: unknown, requestType: string|null}>} */
    this._map = new Map();
  }

  /**
   * Registers a request.
   * @param {string|number} requestId
   * @param {{requestType?: string, timeoutMs?: number}} [opts]
   * @returns {Promise<any>} Settles with the reply (or rejects with the error).
   */
  add(requestId, { requestType, timeoutMs } = {}) {
    const key = String(requestId);
    if (this._map.has(key)) return Promise.reject(new SfuError('bad-request', `duplicate requestId ${key}`));
    return new Promise((resolve, reject) => {
      const ms = timeoutMs ?? this.timeoutMs;
      const timer =
        Number.isFinite(ms) && ms > 0
          ? this._timers.setTimeout(() => {
              if (this._map.get(key)?.timer !== timer) return;
              this._map.delete(key);
              reject(
                new SfuError('timeout', `no reply to ${requestType ?? 'request'} within ${ms} ms`, {
                  requestType: requestType ?? null,
                  requestId,
                }),
              );
            }, ms)
          : null;
      this._map.set(key, { resolve, reject, timer, requestType: requestType ?? null });
    });
  }

  /**
   * @param {string|number|null|undefined} requestId
   * @returns {boolean} Whether a request with that id waits.
   */
  has(requestId) {
    return requestId !== null && requestId !== undefined && this._map.has(String(requestId));
  }

  /**
   * Resolves a waiting request.
   * @param {string|number|null|undefined} requestId
   * @param {unknown} value
   * @returns {boolean} False when no such request waits.
   */
  resolve(requestId, value) {
    const entry = this._take(requestId);
    if (!entry) return false;
    entry.resolve(value);
    return true;
  }

  /**
   * Rejects a waiting request.
   * @param {string|number|null|undefined} requestId
   * @param {unknown} err
   * @returns {boolean} False when no such request waits.
   */
  reject(requestId, err) {
    const entry = this._take(requestId);
    if (!entry) return false;
    entry.reject(err);
    return true;
  }

  /**
   * Settles the request named by a server message's `requestId`: an `error`
   * rejects it (SfuError from the message), anything else resolves it.
   * @param {{type: string, requestId?: string|number}} msg
   * @returns {boolean} False when the message names no waiting request.
   */
  settle(msg) {
    if (!msg || !this.has(msg.requestId)) return false;
    if (msg.type === 'error') return this.reject(msg.requestId, SfuError.fromServer(msg));
    return this.resolve(msg.requestId, msg);
  }

  /**
   * Rejects every waiting request and clears their timers.
   * @param {unknown} err
   */
  rejectAll(err) {
    const entries = [...this._map.values()];
    this._map.clear();
    for (const e of entries) {
      this._timers.clear(e.timer);
      e.reject(err);
    }
  }

  /** Number of waiting requests. @returns {number} */
  get size() {
    return this._map.size;
  }

  /**
   * @param {string|number|null|undefined} requestId
   */
  _take(requestId) {
    if (requestId === null || requestId === undefined) return undefined;
    const key = String(requestId);
    const entry = this._map.get(key);
    if (!entry) return undefined;
    this._map.delete(key);
    this._timers.clear(entry.timer);
    return entry;
  }
}

/**
 * Turns a server candidate (object form, as in the protocol) or a bare
 * candidate string into an RTCIceCandidateInit. Returns null for end of
 * candidates (`null`, `""`, or an object whose `candidate` is empty).
 *
 * @param {unknown} c
 * @returns {{candidate: string, sdpMid: string|null, sdpMLineIndex: number|null, usernameFragment?: string}|null}
 * @throws {TypeError} When `c` is neither null, a string nor an object with a string `candidate`.
 */
export function normalizeCandidate(c) {
  if (c === null || c === undefined) return null;
  const strip = (/** @type {string} */ s) => s.trim().replace(/^a=/, '');
  if (typeof c === 'string') {
    const candidate = strip(c);
    return candidate === '' ? null : { candidate, sdpMid: null, sdpMLineIndex: 0 };
  }
  if (typeof c !== 'object' || Array.isArray(c)) throw new TypeError('candidate must be an object, a string or null');
  const o = /** @type {Record<string, unknown>} */ (c);
  if (o.candidate === null || o.candidate === undefined) return null;
  if (typeof o.candidate !== 'string') throw new TypeError('candidate.candidate must be a string');
  const candidate = strip(o.candidate);
  if (candidate === '') return null;
  const sdpMid = typeof o.sdpMid === 'string' ? o.sdpMid : o.sdpMid === null || o.sdpMid === undefined ? null : String(o.sdpMid);
  let sdpMLineIndex = Number.isInteger(o.sdpMLineIndex) ? /** @type {number} */ (o.sdpMLineIndex) : null;
  if (sdpMid === null && sdpMLineIndex === null) sdpMLineIndex = 0;
  /** @type {{candidate: string, sdpMid: string|null, sdpMLineIndex: number|null, usernameFragment?: string}} */
  const out = { candidate, sdpMid, sdpMLineIndex };
  if (typeof o.usernameFragment === 'string' && o.usernameFragment !== '') out.usernameFragment = o.usernameFragment;
  return out;
}

/**
 * Returns a generator of unique request ids (`<prefix><n>`, n = 1, 2, ...).
 * @param {string} [prefix='r']
 * @returns {() => string}
 */
export function createRequestIdGenerator(prefix = 'r') {
  let n = 0;
  return () => `${prefix}${++n}`;
}

/** @param {unknown} v */
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** @param {unknown} v */
const isId = (v) => (typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isFinite(v));

/**
 * @param {Record<string, any>} m
 * @param {string} field
 */
function needString(m, field) {
  if (typeof m[field] !== 'string') throw new Error(`${m.type}: field \`${field}\` must be a string`);
}

/**
 * @param {Record<string, any>} m
 * @param {string} field
 */
function needId(m, field) {
  if (!isId(m[field])) throw new Error(`${m.type}: field \`${field}\` must be a non-empty string or a number`);
  m[field] = String(m[field]);
}

/**
 * @param {Record<string, any>} m
 * @param {string} field
 */
function needSdp(m, field) {
  const v = m[field];
  if (isObject(v) && typeof v.sdp === 'string') m[field] = v.sdp;
  else if (typeof v !== 'string') throw new Error(`${m.type}: field \`${field}\` must be an SDP string`);
}

/**
 * @param {Record<string, any>} m
 * @param {string} field
 * @param {boolean} [required]
 * @returns {TrackInfo[]}
 */
function needTracks(m, field, required = true) {
  const v = m[field];
  if (v === undefined || v === null) {
    if (required) throw new Error(`${m.type}: field \`${field}\` must be an array`);
    return [];
  }
  if (!Array.isArray(v)) throw new Error(`${m.type}: field \`${field}\` must be an array`);
  return v
    .filter((t) => isObject(t) && isId(t.trackId))
    .map((t) => ({ trackId: String(t.trackId), kind: typeof t.kind === 'string' ? t.kind : '' }));
}

/**
 * Parses and validates one server frame. Ids (`participantId`,
 * `publisherId`) are normalized to strings, SDP objects `{type, sdp}` to
 * their SDP string, track lists to `[{trackId, kind}]`. Unknown message types
 * are returned as they are (the caller ignores them).
 *
 * @param {unknown} text The frame's data.
 * @returns {Record<string, any> & {type: string}} The message.
 * @throws {Error} With a clear message when the frame is not a valid server message.
 */
export function parseServerMessage(text) {
  if (typeof text !== 'string') throw new Error('server frame is not text');
  /** @type {unknown} */
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`server frame is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObject(v)) throw new Error('server message is not a JSON object');
  const m = /** @type {Record<string, any>} */ (v);
  if (typeof m.type !== 'string' || m.type === '') throw new Error('server message has no string `type`');
  if (m.requestId !== undefined && m.requestId !== null && !isId(m.requestId)) {
    throw new Error(`${m.type}: field \`requestId\` must be a string or a number`);
  }
  if (m.roomName !== undefined && m.roomName !== null && typeof m.roomName !== 'string') {
    throw new Error(`${m.type}: field \`roomName\` must be a string`);
  }
  switch (m.type) {
    case 'auth-ok':
      needId(m, 'participantId');
      if (typeof m.username !== 'string') m.username = m.participantId;
      break;
    case 'joined': {
      needString(m, 'roomName');
      needId(m, 'participantId');
      if (!Array.isArray(m.participants)) throw new Error('joined: field `participants` must be an array');
      if (!Array.isArray(m.publishers)) throw new Error('joined: field `publishers` must be an array');
      m.participants = m.participants
        .filter((p) => isObject(p) && isId(p.participantId))
        .map((p) => ({ participantId: String(p.participantId), username: typeof p.username === 'string' ? p.username : String(p.participantId) }));
      m.publishers = m.publishers
        .filter((p) => isObject(p) && isId(p.publisherId))
        .map((p) => ({
          publisherId: String(p.publisherId),
          username: typeof p.username === 'string' ? p.username : String(p.publisherId),
          tracks: needTracks(p, 'tracks', false),
        }));
      break;
    }
    case 'left':
      needString(m, 'roomName');
      break;
    case 'participant-joined':
      needString(m, 'roomName');
      needId(m, 'participantId');
      if (typeof m.username !== 'string') m.username = m.participantId;
      break;
    case 'participant-left':
      needString(m, 'roomName');
      needId(m, 'participantId');
      break;
    case 'publish-answer':
    case 'subscribe-prepare-answer':
      needString(m, 'roomName');
      needSdp(m, 'answer');
      break;
    case 'publish-ice-candidate':
    case 'subscribe-ice-candidate':
      needString(m, 'roomName');
      if (m.candidate !== null && m.candidate !== undefined && !isObject(m.candidate) && typeof m.candidate !== 'string') {
        throw new Error(`${m.type}: field \`candidate\` must be an object, a string or null`);
      }
      break;
    case 'new-publisher':
      needString(m, 'roomName');
      needId(m, 'publisherId');
      if (typeof m.username !== 'string') m.username = m.publisherId;
      m.tracks = needTracks(m, 'tracks');
      break;
    case 'publisher-left':
      needString(m, 'roomName');
      needId(m, 'publisherId');
      break;
    case 'subscribe-offer':
      needString(m, 'roomName');
      // publisherId may be empty (an ICE restart after a failed answer).
      if (m.publisherId === undefined || m.publisherId === null) m.publisherId = '';
      if (typeof m.publisherId === 'number') m.publisherId = String(m.publisherId);
      if (typeof m.publisherId !== 'string') throw new Error('subscribe-offer: field `publisherId` must be a string');
      needSdp(m, 'offer');
      m.tracks = needTracks(m, 'tracks', false);
      break;
    case 'chat':
      needString(m, 'roomName');
      needId(m, 'participantId');
      needString(m, 'text');
      if (typeof m.username !== 'string') m.username = m.participantId;
      if (typeof m.ts !== 'number') m.ts = Number(m.ts) || 0;
      break;
    case 'reconnect': {
      const ms = Number(m.retryAfterMs);
      m.retryAfterMs = Number.isFinite(ms) && ms >= 0 ? ms : 0;
      if (typeof m.reason !== 'string') m.reason = 'unknown';
      break;
    }
    case 'error':
      needString(m, 'code');
      if (typeof m.message !== 'string') m.message = m.code;
      break;
    default:
      break;
  }
  return /** @type {Record<string, any> & {type: string}} */ (m);
}
