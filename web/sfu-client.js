// sfu-client.js: browser client library of the rheo-sfu WebRTC SFU.
//
// Usage (15 lines):
//   import { SfuClient } from './sfu-client.js';
//   const client = new SfuClient({ room: 'demo', token: async () => (await (await fetch('/dev/token?room=demo')).json()).token });
//   client.addEventListener('track', (e) => { videoOf(e.detail.publisherId).srcObject = e.detail.stream; });
//   client.addEventListener('track-removed', (e) => refreshTile(e.detail.publisherId));
//   client.addEventListener('publisher-left', (e) => removeTile(e.detail.publisherId));
//   client.addEventListener('chat', (e) => showChat(e.detail));
//   client.addEventListener('state', (e) => showState(e.detail.state));  // idle|connecting|connected|reconnecting|closed
//   client.addEventListener('error', (e) => { if (e.detail.fatal) showFatal(e.detail.message); });
//   await client.connect();                       // auth, join, subscribe-prepare; resolves with `joined`
//   const cam = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
//   await client.publish(cam);                    // one publish PeerConnection, renegotiated per call
//   await client.publish([screenTrack]);          // more tracks later (screen share)
//   await client.sendChat('hi');                  // resolves with the server's echo
//   client.setTrackEnabled('audio', false);       // mute
//   await client.leave();                         // no reconnect after this
// With autoSubscribe (default) every publisher is subscribed; reconnects re-publish the same
// local tracks and re-subscribe by themselves: listening to `track` events is enough.
//
// The probator track: the server's media library (webrtc-rs) adds an audio
// m-line of its own (msid `webrtc-rs probator`) to the first offer of a
// subscribe PeerConnection that was not prepared. The server offers it
// `inactive` without msid, so no track event fires for it; isProbator() still
// filters it for older servers. We normally prepare the subscribe
// PeerConnection (`subscribe-prepare` with one data channel), in which case
// the server does not add it at all.
//
// Why remote tracks are mapped via mid + msid of the offer: a remote
// MediaStreamTrack's `id` is chosen by the receiving browser and, per the
// current specs, need not equal the msid track id (browsers differ), and
// RTCTrackEvent.streams can be empty or shared. What is reliable is the
// transceiver's `mid`, which names an m-section of the offer just applied;
// that section's `a=msid:<stream> <track>` carries the publisher's track id
// (the server keeps it), and TrackDirectory (fed by `joined`, `new-publisher`
// and `subscribe-offer.tracks`) maps that track id to its publisher. So:
// ontrack → transceiver.mid → parseMsids(last applied offer) → trackId → publisherId.
//
// RTP header extensions: rheomesh forwards RTP packets with the publisher's
// header-extension ids unchanged, and browsers number extensions differently.
// The server therefore offers subscribers no header extension but the MID
// (which it writes into every forwarded packet at the subscriber's id): the
// publisher's other ids are unknown to the subscriber and ignored. Mixed
// Chromium/Firefox/aiortc rooms are tested (tests/browser/interop.test.mjs).
//
// The API is described in docs/CLIENT.md. Options `MediaStreamImpl`, `timers`,
// `now`, `pingIntervalMs`, `idleTimeoutMs` exist for tests. `joined` is
// emitted on every (re)join; on a rejoin the difference to the previous state
// is emitted first as participant-left/-joined, publisher-left/publisher.
// leave() and fatal closes do not emit per-track `track-removed` events (the
// `state` event with `closed` says it all).
//
// Layout: this file holds SfuClient's constructor (all of its state), its
// accessors, connect(), sendChat() and leave(). Its other methods live in
// ./client/ by concern and are copied onto SfuClient.prototype at the end of
// this file (composeMethods): transport.js (WebSocket, requests, reconnect),
// session.js (connection attempt, epochs, teardown, state), room.js (server
// messages, participants, publishers), publish.js and subscribe.js (the two
// PeerConnections), candidates.js (trickle ICE), tracks.js (remote tracks →
// publishers, getInboundStats()), shared.js (events, PeerConnection factory).

import {
  Backoff,
  PendingRequests,
  SerialQueue,
  SfuError,
  TimerSet,
  TrackDirectory,
  UrlRing,
  createRequestIdGenerator,
  isProbator,
  normalizeCandidate,
  parseMsids,
  parseServerMessage,
} from './sfu-core.js';

import { CandidateMethods } from './client/candidates.js';
import { PublishMethods } from './client/publish.js';
import { RoomMethods } from './client/room.js';
import { SessionMethods } from './client/session.js';
import { SharedMethods, composeMethods, makeAbort, noop } from './client/shared.js';
import { SubscribeMethods } from './client/subscribe.js';
import { TrackMethods } from './client/tracks.js';
import { TransportMethods } from './client/transport.js';

/** @typedef {import('./client/publish.js').PubState} PubState */
/** @typedef {import('./client/subscribe.js').SubState} SubState */

export {
  Backoff,
  PendingRequests,
  SerialQueue,
  SfuError,
  TimerSet,
  TrackDirectory,
  UrlRing,
  createRequestIdGenerator,
  isProbator,
  normalizeCandidate,
  parseMsids,
  parseServerMessage,
};

/**
 * Logger interface; every method is optional.
 * @typedef {object} SfuLogger
 * @property {(...args: unknown[]) => void} [debug]
 * @property {(...args: unknown[]) => void} [info]
 * @property {(...args: unknown[]) => void} [warn]
 * @property {(...args: unknown[]) => void} [error]
 */

/**
 * Reconnection policy.
 * @typedef {object} ReconnectOptions
 * @property {boolean} [enabled=true] Reconnect after a dropped socket or a `reconnect` message.
 * @property {number} [minDelayMs=500] First delay.
 * @property {number} [maxDelayMs=10000] Largest delay (a server `retryAfterMs` may exceed it).
 * @property {number} [maxAttempts=Infinity] Attempts per outage before giving up (state `closed`, fatal `error`).
 */

/**
 * Options of {@link SfuClient}.
 * @typedef {object} SfuClientOptions
 * @property {string} room Room name (required).
 * @property {string|string[]} [url] `ws(s)://host/ws`; a path (`/ws`) or http(s) URL is turned into a WebSocket URL
 *   (a path: on the page's origin); default: same origin as the page + `/ws`. A list gives the nodes of a
 *   cluster: the client starts with the first, and moves round-robin to the next one when the socket cannot
 *   be opened or drops without a `reconnect` message (the node looks gone), or on a `draining` reconnect;
 *   connect() tries each URL once whose socket does not open. One URL (e.g. a load balancer) never changes.
 * @property {string|(() => string|Promise<string>)} [token] JWT, or a function called on every (re)connect.
 *   Sent as the first message (`auth`), never in the URL. Without a token the server must have
 *   authenticated the upgrade (e.g. `?token=` in `url`).
 * @property {RTCIceServer[]} [iceServers=[]] ICE servers for both PeerConnections.
 * @property {boolean} [autoSubscribe=true] Subscribe to every publisher (from `joined` and `new-publisher`).
 * @property {ReconnectOptions} [reconnect] Reconnection policy.
 * @property {number} [requestTimeoutMs=15000] Time limit for replies (and for the WebSocket to open).
 * @property {SfuLogger} [logger] Logger; default: none.
 * @property {any} [WebSocketImpl] WebSocket constructor (unit tests); default `globalThis.WebSocket`.
 * @property {any} [RTCPeerConnectionImpl] RTCPeerConnection constructor (unit tests); default `globalThis.RTCPeerConnection`.
 * @property {any} [MediaStreamImpl] MediaStream constructor (unit tests); default `globalThis.MediaStream`.
 * @property {import('./sfu-core.js').TimerFunctions} [timers] Timer functions (unit tests); default the global ones.
 * @property {() => number} [now] Clock in ms (unit tests); default `Date.now`.
 * @property {number} [pingIntervalMs=15000] Interval of the `ping` keepalive.
 * @property {number} [idleTimeoutMs=45000] Without any server message for this long the socket counts as dropped.
 */

/**
 * Detail of the `state` event.
 * @typedef {object} StateEventDetail
 * @property {'idle'|'connecting'|'connected'|'reconnecting'|'closed'} state New state.
 * @property {string} previous Previous state.
 * @property {string|null} reason Why, when known.
 */

/**
 * Detail of the `track` event: a remote track arrived.
 * @typedef {object} TrackEventDetail
 * @property {string} publisherId Publisher of the track.
 * @property {MediaStreamTrack} track The remote track.
 * @property {MediaStream} stream `client.remoteStreams.get(publisherId)`: one stream per publisher.
 * @property {string} kind `audio` or `video`.
 * @property {string} trackId The publisher's track id (not `track.id`).
 */

/**
 * Detail of the `error` event.
 * @typedef {object} ErrorEventDetail
 * @property {string} code Server error code or local code (see SfuError).
 * @property {string} message Human-readable reason.
 * @property {string|null} requestType `type` of the request that failed, when known.
 * @property {boolean} fatal True when the client closed because of it.
 */

/**
 * Client of one room on a rheo-sfu server: one WebSocket, one publish
 * RTCPeerConnection, one subscribe RTCPeerConnection.
 *
 * Events (CustomEvent, payload in `event.detail`):
 * - `state` {@link StateEventDetail}
 * - `joined` {roomName, participantId, participants, publishers}: after every (re)join
 * - `participant-joined` {participantId, username}; `participant-left` {participantId}
 * - `publisher` {publisherId, username, tracks}: a publisher appeared or changed its tracks
 * - `publisher-left` {publisherId}
 * - `track` {@link TrackEventDetail}
 * - `track-removed` {publisherId, trackId}
 * - `chat` {participantId, username, text, ts, self}
 * - `error` {@link ErrorEventDetail}: server errors not tied to an awaited call, and local failures
 * - `reconnecting` {attempt, delayMs, reason, url}; `reconnected` {}
 */
export class SfuClient extends EventTarget {
  /**
   * @param {SfuClientOptions} options
   */
  constructor(options) {
    super();
    const o = options ?? /** @type {SfuClientOptions} */ ({});
    if (typeof o.room !== 'string' || o.room === '') throw new TypeError('SfuClient: option `room` (string) is required');
    const rc = o.reconnect ?? {};
    /** @private The signaling URLs and the one in use (throws a TypeError for a bad `url`). */
    this._urls = new UrlRing(o.url);
    /** @private */
    this._opts = {
      token: o.token,
      iceServers: Array.isArray(o.iceServers) ? o.iceServers : [],
      autoSubscribe: o.autoSubscribe !== false,
      reconnect: {
        enabled: rc.enabled !== false,
        minDelayMs: rc.minDelayMs ?? 500,
        maxDelayMs: rc.maxDelayMs ?? 10000,
        maxAttempts: rc.maxAttempts ?? Infinity,
      },
      requestTimeoutMs: o.requestTimeoutMs ?? 15000,
      pingIntervalMs: o.pingIntervalMs ?? 15000,
      idleTimeoutMs: o.idleTimeoutMs ?? 45000,
      WebSocketImpl: o.WebSocketImpl,
      RTCPeerConnectionImpl: o.RTCPeerConnectionImpl,
      MediaStreamImpl: o.MediaStreamImpl,
    };
    const lg = o.logger ?? {};
    /** @private */
    this._log = {
      debug: typeof lg.debug === 'function' ? lg.debug.bind(lg) : noop,
      info: typeof lg.info === 'function' ? lg.info.bind(lg) : noop,
      warn: typeof lg.warn === 'function' ? lg.warn.bind(lg) : noop,
      error: typeof lg.error === 'function' ? lg.error.bind(lg) : noop,
    };
    /** @private */
    this._now = typeof o.now === 'function' ? o.now : () => Date.now();
    /** @private */
    this._timers = new TimerSet(o.timers ?? {});
    /** @private */
    this._pending = new PendingRequests({ timeoutMs: this._opts.requestTimeoutMs, timers: this._timers });
    /** @private */
    this._nextRequestId = createRequestIdGenerator('c');
    /** @private */
    this._backoff = new Backoff({ minMs: this._opts.reconnect.minDelayMs, maxMs: this._opts.reconnect.maxDelayMs });
    /** @private */
    this._pubQueue = new SerialQueue();
    /** @private */
    this._subQueue = new SerialQueue();
    /** @private */
    this._directory = new TrackDirectory();

    /** @private @type {'idle'|'connecting'|'connected'|'reconnecting'|'closed'} */
    this._state = 'idle';
    /** @private @type {any} */
    this._ws = null;
    /** @private @type {((err: SfuError) => void)|null} */
    this._wsOpenAbort = null;
    /** @private */
    this._keepalive = /** @type {unknown} */ (null);
    /** @private */
    this._lastRx = 0;
    /** @private Incremented whenever the room session is torn down. */
    this._epoch = 0;
    /** @private Why the session was last torn down. */
    this._epochReason = 'not connected';
    /** @private Rejects when the epoch changes (PeerConnection operations on a closed PC may never settle). */
    this._epochAbort = makeAbort();
    /** @private */
    this._joined = false;
    /** @private */
    this._everJoined = false;
    /** @private */
    this._mediaReady = false;
    /** @private @type {PubState|null} */
    this._pub = null;
    /** @private @type {SubState|null} */
    this._sub = null;
    /** @private @type {Promise<void>} */
    this._preparePromise = Promise.resolve();
    /** @private @type {Map<string, {publisherId: string, trackId: string, kind: string, track: MediaStreamTrack}>} */
    this._remoteByMid = new Map();
    /** @private @type {Map<string, {track: MediaStreamTrack, trackId: string, kind: string}>} */
    this._orphans = new Map();
    /** @private @type {Set<string>} */
    this._subscribedPubs = new Set();
    /** @private @type {Map<string, {promise: Promise<void>, requestId: string}>} */
    this._subscribing = new Map();
    /** @private @type {Set<string>} explicit subscriptions (autoSubscribe false) */
    this._wanted = new Set();
    /** @private @type {Set<string>} unsubscribed by the app (autoSubscribe true) */
    this._optOut = new Set();
    /** @private @type {Map<MediaStreamTrack, MediaStream|null>} */
    this._trackStreams = new Map();
    /** @private @type {MediaStream|null} */
    this._ownStream = null;
    /** @private */
    this._loopActive = false;
    /** @private */
    this._loopSeq = 0;
    /** @private @type {number|undefined} */
    this._nextHint = undefined;
    /** @private @type {Set<() => void>} */
    this._sleepers = new Set();
    /** @private @type {{resolve: () => void, reject: (e: unknown) => void}[]} */
    this._readyWaiters = [];
    /** @private @type {Promise<void>|null} */
    this._recycling = null;
    /** @private */
    this._lastRecycleAt = -Infinity;

    /** The room name. @type {string} */
    this.room = o.room;
    /** Own participant id (from `auth-ok`/`joined`). @type {string|null} */
    this.participantId = null;
    /** Own display name (from `auth-ok`). @type {string|null} */
    this.username = null;
    /** Others in the room. @type {Map<string, {participantId: string, username: string}>} */
    this.participants = new Map();
    /** Others that publish. @type {Map<string, {publisherId: string, username: string, tracks: {trackId: string, kind: string}[]}>} */
    this.publishers = new Map();
    /** One MediaStream per publisher with the remote tracks that arrived. @type {Map<string, MediaStream>} */
    this.remoteStreams = new Map();
    /** Local tracks being published. @type {MediaStreamTrack[]} */
    this.localTracks = [];
  }

  /** Connection state: `idle`, `connecting`, `connected`, `reconnecting` or `closed`. @returns {string} */
  get state() {
    return this._state;
  }

  /**
   * The WebSocket URL in use, or the one the next attempt uses (of the
   * `url` option's list: see {@link SfuClientOptions}); null when there is
   * none (no `url` outside a browser page).
   * @returns {string|null}
   */
  get url() {
    try {
      return this._url();
    } catch {
      return null;
    }
  }

  /** The current publish RTCPeerConnection, or null. @returns {RTCPeerConnection|null} */
  get publishPc() {
    return this._pub ? this._pub.pc : null;
  }

  /** The current subscribe RTCPeerConnection, or null. @returns {RTCPeerConnection|null} */
  get subscribePc() {
    return this._sub ? this._sub.pc : null;
  }

  // ---------------------------------------------------------------- public API

  /**
   * Opens the WebSocket, authenticates (`auth` with the token), joins the
   * room and prepares the subscribe PeerConnection. Allowed in state `idle`
   * or `closed`.
   * @returns {Promise<Record<string, any>>} The `joined` message.
   * @throws {SfuError} On any failure (`unauthorized`, `forbidden`, `room-full`,
   *   `connection-lost`, `timeout`, ...); the state is then `closed`.
   */
  async connect() {
    if (this._state !== 'idle' && this._state !== 'closed') {
      throw new SfuError('invalid-state', `connect() in state ${this._state}`);
    }
    this._resetForConnect();
    this._setState('connecting', 'connect');
    try {
      const joined = await this._establishAny();
      this._backoff.reset();
      this._setState('connected', 'joined');
      this._markReady();
      this._startSubscriptions();
      return joined;
    } catch (e) {
      const err = SfuError.wrap(e);
      if (this._state !== 'closed') this._shutdown(`connect failed: ${err.message}`, false);
      throw err;
    }
  }

  /**
   * Sends a chat message to the room.
   * @param {string} text 1–4096 characters.
   * @returns {Promise<Record<string, any>>} The server's echo (`chat` message).
   */
  async sendChat(text) {
    if (typeof text !== 'string' || text.length === 0 || [...text].length > 4096) {
      throw new SfuError('bad-request', 'chat text must be 1–4096 characters');
    }
    if (this._state !== 'connected' || !this._joined) throw new SfuError('not-connected', 'not connected');
    return this._request({ type: 'chat', roomName: this.room, text });
  }

  /**
   * Leaves: sends `leave`, closes both PeerConnections and the WebSocket,
   * clears every timer and stops reconnecting. State becomes `closed`.
   * The local tracks are not stopped.
   * @returns {Promise<void>}
   */
  async leave() {
    if (this._state === 'closed' || this._state === 'idle') {
      this._timers.clearAll();
      return;
    }
    this._shutdown('leave', true);
  }
}

composeMethods(SfuClient, [
  TransportMethods,
  SessionMethods,
  RoomMethods,
  PublishMethods,
  SubscribeMethods,
  CandidateMethods,
  TrackMethods,
  SharedMethods,
]);
