// client/room.js: the server messages of SfuClient: dispatch (room-scoped
// ones only while joined), server errors, and the room state they change:
// `participants`, `publishers` and the track directory.

import { SfuError } from '../sfu-core.js';
import { AUTH_OK_KEY, noop } from './shared.js';

/** Server messages that belong to the room (ignored while not joined). */
const ROOM_SCOPED = new Set([
  'participant-joined',
  'participant-left',
  'publish-answer',
  'publish-ice-candidate',
  'new-publisher',
  'publisher-left',
  'subscribe-offer',
  'subscribe-ice-candidate',
  'subscribe-prepare-answer',
  'chat',
  'signal',
]);

/**
 * Methods of SfuClient: server messages and the room state.
 */
export class RoomMethods {
  /** @private @param {Record<string, any>} msg */
  _dispatch(msg) {
    if (ROOM_SCOPED.has(msg.type)) {
      if (msg.roomName !== undefined && msg.roomName !== this.room) {
        this._log.debug(`ignoring ${msg.type} for room ${msg.roomName}`);
        return;
      }
      if (!this._joined) {
        this._log.debug(`ignoring ${msg.type} while not joined`);
        return;
      }
    }
    switch (msg.type) {
      case 'auth-ok':
        this._takeIceServers(msg);
        if (!this._pending.resolve(msg.requestId, msg)) this._pending.resolve(AUTH_OK_KEY, msg);
        return;
      case 'ice-servers':
        this._takeIceServers(msg);
        this._pending.resolve(msg.requestId, msg);
        return;
      case 'joined':
        return this._onJoined(msg);
      case 'left':
        this._pending.resolve(msg.requestId, msg);
        return;
      case 'pong':
        return;
      case 'participant-joined':
        return this._onParticipantJoined(msg);
      case 'participant-left':
        return this._onParticipantLeft(msg);
      case 'new-publisher':
        return this._onNewPublisher(msg);
      case 'publisher-left':
        return this._onPublisherLeft(msg.publisherId);
      case 'publish-answer':
      case 'subscribe-prepare-answer':
        if (!this._pending.resolve(msg.requestId, msg)) this._log.debug(`unexpected ${msg.type}`);
        return;
      case 'publish-ice-candidate':
        return this._onPublishCandidate(msg.candidate);
      case 'subscribe-ice-candidate':
        return this._onSubscribeCandidate(msg.candidate);
      case 'subscribe-offer':
        return this._onSubscribeOffer(msg);
      case 'chat':
        this._emit('chat', {
          participantId: msg.participantId,
          username: msg.username,
          text: msg.text,
          ts: msg.ts,
          self: msg.participantId === this.participantId,
        });
        this._pending.resolve(msg.requestId, msg);
        return;
      case 'reconnect':
        this._log.info(`server asks to reconnect (${msg.reason}, retry after ${msg.retryAfterMs} ms)`);
        // A draining node is going away: the next node of the `url` list.
        // Other reasons (the room's owner was lost or moved, media lost)
        // come from a node that works: back to it first.
        if (msg.reason === 'draining') this._rotateUrl('the node is draining');
        this._onSocketLost(`server asked to reconnect: ${msg.reason}`, msg.retryAfterMs);
        return;
      case 'kicked':
        // An administrator removed us (or closed the room); the socket
        // closes next with 4003. Not a reason to reconnect.
        this._fatal(new SfuError('kicked', msg.message || `removed from the room (${msg.reason})`, { roomName: msg.roomName, reason: msg.reason }));
        return;
      case 'error':
        return this._onServerError(msg);
      case 'signal':
        this._log.debug('ignoring signal message');
        return;
      default:
        this._log.debug(`ignoring unknown server message type ${msg.type}`);
    }
  }

  /** @private @param {Record<string, any>} msg */
  _onServerError(msg) {
    if (msg.roomName && msg.roomName !== this.room) {
      this._log.debug('ignoring error for another room', msg);
      return;
    }
    const err = SfuError.fromServer(msg);
    if (msg.code === 'replaced') {
      this._pending.reject(msg.requestId, err);
      this._fatal(new SfuError('replaced', msg.message || 'another connection took this participant id', { roomName: msg.roomName }));
      return;
    }
    if (this._pending.reject(msg.requestId, err)) return;
    this._log.warn(`server error ${msg.code}: ${msg.message}`, msg.requestType ?? '');
    this._emitError(err, false);
  }

  /**
   * Reply to our `join`: sets the room state up synchronously (so that
   * messages right after it see it), then settles the request.
   * @private
   * @param {Record<string, any>} msg
   */
  _onJoined(msg) {
    if (msg.roomName !== this.room) return;
    if (!this._pending.has(msg.requestId)) {
      if (this._joined) this._applyJoined(msg, false);
      return;
    }
    try {
      const initial = !this._everJoined;
      this._everJoined = true;
      this.participantId = msg.participantId;
      this._joined = true;
      this._applyJoined(msg, initial);
      if (this._sub) this._closePc(this._sub.pc);
      this._sub = this._makeSubState();
      const sub = this._sub;
      this._preparePromise = this._subQueue.push(() => this._prepareSubscribe(sub)).catch(noop);
      this._pending.resolve(msg.requestId, msg);
    } catch (e) {
      this._pending.reject(msg.requestId, SfuError.wrap(e));
    }
  }

  /**
   * Rebuilds participants/publishers from a `joined`; on a rejoin, emits the
   * difference to the previous state first.
   * @private
   * @param {Record<string, any>} msg
   * @param {boolean} initial
   */
  _applyJoined(msg, initial) {
    const self = this.participantId;
    const oldParts = this.participants;
    const oldPubs = this.publishers;
    /** @type {Map<string, {participantId: string, username: string}>} */
    const parts = new Map();
    for (const p of msg.participants) if (p.participantId !== self) parts.set(p.participantId, { ...p });
    /** @type {Map<string, {publisherId: string, username: string, tracks: {trackId: string, kind: string}[]}>} */
    const pubs = new Map();
    for (const p of msg.publishers) if (p.publisherId !== self) pubs.set(p.publisherId, { ...p, tracks: [...p.tracks] });
    if (!initial) {
      for (const pid of oldPubs.keys()) {
        if (!pubs.has(pid)) {
          this._dropPublisherMedia(pid, true);
          this._directory.removePublisher(pid);
          this._subscribedPubs.delete(pid);
          this.publishers.delete(pid);
          this._emit('publisher-left', { publisherId: pid });
        }
      }
      for (const pid of oldParts.keys()) {
        if (!parts.has(pid)) {
          this.participants.delete(pid);
          this._emit('participant-left', { participantId: pid });
        }
      }
    }
    this.participants = parts;
    this.publishers = pubs;
    for (const [pid, p] of pubs) this._directory.setTracks(pid, p.tracks);
    if (!initial) {
      for (const [pid, p] of parts) {
        if (!oldParts.has(pid)) this._emit('participant-joined', { participantId: pid, username: p.username });
      }
      for (const [pid, p] of pubs) {
        const old = oldPubs.get(pid);
        if (!old || !sameTracks(old.tracks, p.tracks)) {
          this._emit('publisher', { publisherId: pid, username: p.username, tracks: [...p.tracks] });
        }
      }
    }
    this._emit('joined', {
      roomName: msg.roomName,
      participantId: msg.participantId,
      participants: [...parts.values()].map((p) => ({ ...p })),
      publishers: [...pubs.values()].map((p) => ({ ...p, tracks: [...p.tracks] })),
    });
  }

  /** @private @param {Record<string, any>} msg */
  _onParticipantJoined(msg) {
    if (msg.participantId === this.participantId) return;
    this.participants.set(msg.participantId, { participantId: msg.participantId, username: msg.username });
    this._emit('participant-joined', { participantId: msg.participantId, username: msg.username });
  }

  /** @private @param {Record<string, any>} msg */
  _onParticipantLeft(msg) {
    const pid = msg.participantId;
    if (pid === this.participantId) return;
    if (this.publishers.has(pid)) this._onPublisherLeft(pid);
    this._optOut.delete(pid);
    this._wanted.delete(pid);
    if (this.participants.delete(pid)) this._emit('participant-left', { participantId: pid });
  }

  /** @private @param {Record<string, any>} msg */
  _onNewPublisher(msg) {
    const pid = msg.publisherId;
    if (pid === this.participantId) return;
    const tracks = msg.tracks.map((/** @type {any} */ t) => ({ trackId: t.trackId, kind: t.kind }));
    this.publishers.set(pid, { publisherId: pid, username: msg.username, tracks });
    if (!this.participants.has(pid)) this.participants.set(pid, { participantId: pid, username: msg.username });
    this._directory.addTracks(pid, tracks);
    // Tracks no longer listed stop being forwarded: drop them from the stream.
    const listed = new Set(tracks.map((/** @type {any} */ t) => t.trackId));
    for (const [mid, e] of [...this._remoteByMid]) {
      if (e.publisherId === pid && !listed.has(e.trackId)) this._removeRemote(mid, true);
    }
    this._emit('publisher', { publisherId: pid, username: msg.username, tracks: tracks.map((/** @type {any} */ t) => ({ ...t })) });
    this._resolveOrphans();
    if (
      this._opts.autoSubscribe &&
      this._mediaReady &&
      !this._optOut.has(pid) &&
      !this._subscribedPubs.has(pid) &&
      !this._subscribing.has(pid)
    ) {
      this._subscribeFlow(pid).catch((e) => this._onSubscribeFailure(pid, e));
    }
  }

  /** @private @param {string} pid */
  _onPublisherLeft(pid) {
    if (pid === this.participantId) return; // acknowledgement of our own unpublish
    this._dropPublisherMedia(pid, true);
    this._subscribedPubs.delete(pid);
    this._subscribing.delete(pid);
    this._directory.removePublisher(pid);
    const had = this.publishers.delete(pid);
    if (had) this._emit('publisher-left', { publisherId: pid });
  }
}

/**
 * @param {{trackId: string, kind: string}[]} a
 * @param {{trackId: string, kind: string}[]} b
 * @returns {boolean}
 */
function sameTracks(a, b) {
  if (a.length !== b.length) return false;
  const ids = new Set(a.map((t) => t.trackId));
  return b.every((t) => ids.has(t.trackId));
}
