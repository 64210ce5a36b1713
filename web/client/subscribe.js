// client/subscribe.js: the subscribe PeerConnection of SfuClient: one per
// session, prepared with a data channel (`subscribe-prepare`), answering
// every `subscribe-offer` in arrival order (subscribe SerialQueue); the
// subscriptions (autoSubscribe, subscribe()/unsubscribe()) and the
// transparent leave+join when the server's subscribe PeerConnection is full.

import { SfuError, parseMsids } from '../sfu-core.js';
import { candidateJson } from './candidates.js';
import { TRANSIENT_CODES, noop } from './shared.js';

/** Media sections the server allows per subscribe PeerConnection. */
const MAX_SUBSCRIBE_SECTIONS = 48;
/** Least time between two transparent leave+join cycles (room-full). */
const MIN_RECYCLE_INTERVAL_MS = 10000;

/**
 * @typedef {{pc: any, candidates: object[], offerMsids: Map<string, {streamId: string, trackId: string, kind: string}>,
 *   queuedCandidateJobs: number, prepared: boolean, answered: number}} SubState
 */

/**
 * Methods of SfuClient: subscribing to publishers.
 */
export class SubscribeMethods {
  /**
   * Subscribes to a publisher (needed only with `autoSubscribe: false`, or
   * after {@link SfuClient#unsubscribe}). Resolves when the first
   * `subscribe-offer` of that request has been answered.
   * @param {string|number} publisherId
   * @returns {Promise<void>}
   * @throws {SfuError} `not-found`, `forbidden`, `room-full`, `timeout`, ...
   */
  async subscribe(publisherId) {
    const pid = String(publisherId);
    if (this._state === 'idle' || this._state === 'closed') throw new SfuError('not-connected', 'subscribe() before connect()');
    if (pid === this.participantId) return;
    this._optOut.delete(pid);
    if (!this._opts.autoSubscribe) this._wanted.add(pid);
    if (this._state !== 'connected' || !this._mediaReady) await this._whenReady();
    await this._subscribeFlow(pid);
  }

  /**
   * Stops receiving a publisher: sends `unsubscribe` (no reply), removes its
   * tracks from `remoteStreams` and emits `track-removed` for each. With
   * autoSubscribe, the publisher is not subscribed again until
   * {@link SfuClient#subscribe} is called.
   * @param {string|number} publisherId
   */
  unsubscribe(publisherId) {
    const pid = String(publisherId);
    this._wanted.delete(pid);
    if (this._opts.autoSubscribe) this._optOut.add(pid);
    const was = this._subscribedPubs.has(pid) || this._subscribing.has(pid);
    this._subscribedPubs.delete(pid);
    this._subscribing.delete(pid);
    if (was && this._joined) this._send({ type: 'unsubscribe', roomName: this.room, publisherId: pid });
    this._dropPublisherMedia(pid, true);
  }

  /** @private @returns {SubState} */
  _makeSubState() {
    const pc = this._newPc();
    /** @type {SubState} */
    const state = { pc, candidates: [], offerMsids: new Map(), queuedCandidateJobs: 0, prepared: false, answered: 0 };
    pc.onicecandidate = (/** @type {any} */ ev) =>
      this._guard('subscribe icecandidate', () => {
        if (state !== this._sub) return;
        const c = candidateJson(ev && ev.candidate);
        if (c) this._send({ type: 'subscribe-ice-candidate', roomName: this.room, candidate: c });
      });
    pc.ontrack = (/** @type {any} */ ev) => this._guard('ontrack', () => this._onRemoteTrack(state, ev));
    pc.onconnectionstatechange = () =>
      this._guard('subscribe connectionstate', () => {
        if (state === this._sub && pc.connectionState === 'failed' && this._state === 'connected') {
          this._onSocketLost('subscribe PeerConnection failed');
        }
      });
    return state;
  }

  /**
   * Prepares the subscribe PeerConnection (data channel + own offer). If the
   * server refuses, continues with a fresh PeerConnection (the server then
   * offers first). Runs inside the subscribe SerialQueue.
   * @private
   * @param {SubState} sub
   */
  async _prepareSubscribe(sub) {
    const epoch = this._epoch;
    let sent = false;
    try {
      sub.pc.createDataChannel('rheo-sfu');
      const offer = await this._race(sub.pc.createOffer());
      this._checkSub(sub, epoch);
      await this._race(sub.pc.setLocalDescription(offer));
      this._checkSub(sub, epoch);
      const sdp = (sub.pc.localDescription && sub.pc.localDescription.sdp) || offer.sdp;
      sent = true;
      const reply = await this._request({ type: 'subscribe-prepare', roomName: this.room, offer: sdp });
      this._checkSub(sub, epoch);
      await this._race(sub.pc.setRemoteDescription({ type: 'answer', sdp: reply.answer }));
      this._checkSub(sub, epoch);
      sub.prepared = true;
      this._flushCandidates(sub);
    } catch (e) {
      if (sub !== this._sub || epoch !== this._epoch) return;
      const err = SfuError.wrap(e);
      const serverRefused = err.requestType === 'subscribe-prepare' && err.code !== 'timeout';
      if (!sent || serverRefused) {
        this._log.info('subscribe-prepare not used:', err.message);
        this._closePc(sub.pc);
        this._sub = this._makeSubState();
        return;
      }
      // The server may hold a half-prepared PeerConnection: start over.
      this._log.warn('subscribe-prepare failed:', err.message);
      this._onSocketLost(`subscribe-prepare failed: ${err.message}`);
    }
  }

  /** @private @param {Record<string, any>} msg */
  _onSubscribeOffer(msg) {
    if (msg.publisherId && msg.tracks.length > 0) this._directory.addTracks(msg.publisherId, msg.tracks);
    this._subQueue.push(() => this._answerSubscribeOffer(msg)).catch(noop);
  }

  /**
   * setRemoteDescription(offer) → createAnswer → setLocalDescription → send
   * `subscribe-answer` echoing the offer's publisherId and roomName. Runs
   * inside the subscribe SerialQueue, in arrival order.
   * @private
   * @param {Record<string, any>} msg
   */
  async _answerSubscribeOffer(msg) {
    const sub = this._sub;
    const epoch = this._epoch;
    if (!sub || !this._joined) {
      this._pending.reject(msg.requestId, new SfuError('interrupted', 'no subscribe PeerConnection'));
      return;
    }
    try {
      sub.offerMsids = parseMsids(msg.offer);
      await this._race(sub.pc.setRemoteDescription({ type: 'offer', sdp: msg.offer }));
      this._checkSub(sub, epoch);
      this._flushCandidates(sub);
      const answer = await this._race(sub.pc.createAnswer());
      this._checkSub(sub, epoch);
      await this._race(sub.pc.setLocalDescription(answer));
      this._checkSub(sub, epoch);
      const sdp = (sub.pc.localDescription && sub.pc.localDescription.sdp) || answer.sdp;
      this._send({ type: 'subscribe-answer', roomName: msg.roomName, publisherId: msg.publisherId, answer: sdp });
      sub.answered++;
      const pid = msg.publisherId;
      if (pid && msg.tracks.length > 0 && this._isWanted(pid) && this.publishers.has(pid)) this._subscribedPubs.add(pid);
      this._resolveOrphans();
      this._pending.resolve(msg.requestId, msg);
    } catch (e) {
      if (sub !== this._sub || epoch !== this._epoch) {
        this._pending.reject(msg.requestId, new SfuError('interrupted', 'subscribe PeerConnection replaced'));
        return;
      }
      const err = SfuError.wrap(e, 'negotiation-failed');
      this._log.error('answering a subscribe-offer failed', err);
      this._pending.reject(msg.requestId, err);
      this._emitError(new SfuError('negotiation-failed', `subscribe-offer: ${err.message}`, { requestType: 'subscribe-offer' }), false);
      // The server waits for this answer forever: start over with fresh PeerConnections.
      this._onSocketLost('subscribe negotiation failed');
    }
  }

  /** @private @param {SubState} sub @param {number} epoch */
  _checkSub(sub, epoch) {
    if (sub !== this._sub || epoch !== this._epoch) throw new SfuError('interrupted', 'subscribe PeerConnection replaced');
  }

  /**
   * Requests a subscription unless one exists or is on its way; handles
   * `room-full` (transparent leave+join) and interruptions by reconnects.
   * @private
   * @param {string} pid
   */
  async _subscribeFlow(pid) {
    for (let tries = 0; ; tries++) {
      try {
        if (this._subscribedPubs.has(pid)) return;
        const inflight = this._subscribing.get(pid);
        await (inflight ? inflight.promise : this._sendSubscribeRequest(pid));
        return;
      } catch (e) {
        const err = SfuError.wrap(e);
        if (tries >= 2 || this._state === 'closed' || !this._isWanted(pid)) throw err;
        if (err.code === 'room-full' && err.requestType === 'subscribe-request') {
          if (!this._canRecycle()) throw err;
          await this._recycleRoom('subscribe PeerConnection is full');
        } else if (TRANSIENT_CODES.has(err.code)) {
          await this._whenReady();
        } else {
          throw err;
        }
        if (!this.publishers.has(pid)) return;
      }
    }
  }

  /** @private @param {string} pid @returns {Promise<void>} */
  _sendSubscribeRequest(pid) {
    if (!this._joined || !this._mediaReady) return Promise.reject(new SfuError('interrupted', 'not ready'));
    const requestId = this._nextRequestId();
    const reply = this._requestWithId(requestId, { type: 'subscribe-request', roomName: this.room, publisherId: pid });
    const promise = reply.then(
      () => {
        if (this._isWanted(pid) && this.publishers.has(pid)) this._subscribedPubs.add(pid);
      },
      (e) => {
        const err = SfuError.wrap(e);
        // All of its tracks are subscribed already.
        if (err.code === 'bad-request' && err.requestType === 'subscribe-request' && this._isWanted(pid) && this.publishers.has(pid)) {
          this._subscribedPubs.add(pid);
          return;
        }
        throw err;
      },
    );
    const entry = { promise, requestId };
    this._subscribing.set(pid, entry);
    const cleanup = () => {
      if (this._subscribing.get(pid) === entry) this._subscribing.delete(pid);
    };
    promise.then(cleanup, cleanup);
    return promise;
  }

  /** @private @param {string} pid @param {unknown} e */
  _onSubscribeFailure(pid, e) {
    const err = SfuError.wrap(e);
    if (TRANSIENT_CODES.has(err.code) || this._state === 'closed') {
      this._log.debug(`subscription to ${pid} interrupted:`, err.message);
      return;
    }
    if (err.code === 'not-found' || !this.publishers.has(pid)) {
      this._log.debug(`publisher ${pid} not available:`, err.message);
      return;
    }
    this._log.warn(`subscribing to ${pid} failed:`, err.message);
    this._emitError(err, false);
  }

  /** @private @param {string} pid @returns {boolean} */
  _isWanted(pid) {
    return this._opts.autoSubscribe ? !this._optOut.has(pid) : this._wanted.has(pid);
  }

  /** @private Subscribes every wanted publisher (after connect/rejoin). */
  _startSubscriptions() {
    if (!this._mediaReady) return;
    for (const pid of [...this.publishers.keys()]) {
      if (!this._isWanted(pid) || this._subscribedPubs.has(pid) || this._subscribing.has(pid)) continue;
      this._subscribeFlow(pid).catch((e) => this._onSubscribeFailure(pid, e));
    }
  }

  /**
   * Whether a transparent leave+join is worth it: not too soon after the
   * last one, and the wanted tracks fit in a fresh subscribe PeerConnection.
   * @private
   * @returns {boolean}
   */
  _canRecycle() {
    if (this._recycling) return true;
    if (this._state !== 'connected' || !this._joined) return false;
    if (this._now() - this._lastRecycleAt < MIN_RECYCLE_INTERVAL_MS) return false;
    let sections = 1;
    for (const [pid, p] of this.publishers) if (this._isWanted(pid)) sections += Math.max(1, p.tracks.length);
    return sections <= MAX_SUBSCRIBE_SECTIONS;
  }

  /**
   * Leave + join on the same socket for fresh PeerConnections (the server
   * answered `room-full` because the subscribe PeerConnection reached 48
   * m-sections). Re-publishes and re-subscribes like a reconnect.
   * @private
   * @param {string} reason
   * @returns {Promise<void>}
   */
  _recycleRoom(reason) {
    if (this._recycling) return this._recycling;
    this._lastRecycleAt = this._now();
    this._log.info('leaving and joining the room again:', reason);
    this._teardownSession(reason, { keepSocket: true, emitRemoved: true, code: 'interrupted' });
    const epoch = this._epoch;
    const run = async () => {
      await this._request({ type: 'leave', roomName: this.room });
      this._checkEpoch(epoch);
      await this._request({ type: 'join', roomName: this.room });
      this._checkEpoch(epoch);
      await this._setupMedia(this._epoch);
      this._markReady();
      this._startSubscriptions();
    };
    const p = run()
      .catch((e) => {
        const err = SfuError.wrap(e);
        this._log.warn('room rejoin failed:', err.message);
        if (this._state === 'connected') {
          this._onSocketLost(`room rejoin failed: ${err.message}`);
        }
      })
      .finally(() => {
        if (this._recycling === p) this._recycling = null;
      });
    this._recycling = p;
    return p;
  }
}
