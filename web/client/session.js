// client/session.js: the room session of SfuClient: one connection attempt
// (token, socket, auth, join, media setup), epochs that stop the flows of a
// session torn down, teardown, shutdown and fatal errors, the waiters for
// "connected and ready", and the `state`.

import { SerialQueue, SfuError } from '../sfu-core.js';
import { AUTH_OK_KEY, TRANSIENT_CODES, makeAbort } from './shared.js';

/**
 * Methods of SfuClient: session lifecycle, epochs and readiness.
 */
export class SessionMethods {
  /** @private */
  _resetForConnect() {
    this._bumpEpoch('connect');
    this._everJoined = false;
    this._joined = false;
    this._mediaReady = false;
    this.participants = new Map();
    this.publishers = new Map();
    this.remoteStreams = new Map();
    this._remoteByMid.clear();
    this._orphans.clear();
    this._directory.clear();
    this._subscribedPubs.clear();
    this._subscribing.clear();
    this._backoff.reset();
    this._nextHint = undefined;
    this._lastRecycleAt = -Infinity;
  }

  /**
   * One connection attempt: token, WebSocket, auth, join, media setup.
   * @private
   * @returns {Promise<Record<string, any>>} The `joined` message.
   */
  async _establish() {
    const epoch = this._epoch;
    const token = await this._resolveToken();
    this._checkEpoch(epoch);
    await this._openWs();
    this._checkEpoch(epoch);
    /** @type {Record<string, any>} */
    let ok;
    if (token !== null) {
      ok = await this._request({ type: 'auth', token });
    } else {
      ok = await this._pending.add(AUTH_OK_KEY, { requestType: 'auth' });
    }
    this._checkEpoch(epoch);
    this.participantId = ok.participantId;
    this.username = ok.username ?? ok.participantId;
    const joined = await this._request({ type: 'join', roomName: this.room });
    this._checkEpoch(epoch);
    await this._setupMedia(epoch);
    return joined;
  }

  /**
   * After `joined`: wait for subscribe-prepare, re-publish localTracks.
   * @private
   * @param {number} epoch
   */
  async _setupMedia(epoch) {
    await this._preparePromise;
    this._checkEpoch(epoch);
    if (!this._sub) throw new SfuError('interrupted', 'no subscribe PeerConnection');
    this._mediaReady = true;
    if (this.localTracks.length > 0) {
      try {
        await this._pubQueue.push(() => this._syncPublish());
      } catch (e) {
        const err = SfuError.wrap(e);
        this._checkEpoch(epoch);
        if (TRANSIENT_CODES.has(err.code)) throw err;
        this._log.warn('re-publishing failed:', err.message);
        this._forgetLocal([...this.localTracks]);
        this._emitError(err, false);
      }
    }
    this._checkEpoch(epoch);
  }

  /**
   * Tears the room session down (socket unless keepSocket, PCs, pending
   * requests) and bumps the epoch so that running flows stop.
   * @private
   * @param {string} reason
   * @param {{keepSocket?: boolean, emitRemoved?: boolean, code?: string}} [opts]
   */
  _teardownSession(reason, { keepSocket = false, emitRemoved = true, code = 'connection-lost' } = {}) {
    this._bumpEpoch(reason);
    this._joined = false;
    if (!keepSocket) {
      const ws = this._ws;
      this._ws = null;
      this._stopKeepalive();
      this._closeWs(ws, 1000, reason);
      if (this._wsOpenAbort) this._wsOpenAbort(new SfuError(code, reason));
    }
    this._pending.rejectAll(new SfuError(code, reason));
    this._teardownMedia(emitRemoved);
  }

  /** @private @param {boolean} emitRemoved */
  _teardownMedia(emitRemoved) {
    this._mediaReady = false;
    // Fresh queues: a job still running on a closed PeerConnection must not block the next session.
    this._pubQueue.clear('interrupted');
    this._subQueue.clear('interrupted');
    this._pubQueue = new SerialQueue();
    this._subQueue = new SerialQueue();
    this._closePub();
    if (this._sub) {
      this._closePc(this._sub.pc);
      this._sub = null;
    }
    this._subscribedPubs.clear();
    this._subscribing.clear();
    this._orphans.clear();
    const pids = new Set([...this._remoteByMid.values()].map((e) => e.publisherId));
    for (const pid of pids) this._dropPublisherMedia(pid, emitRemoved);
    this._remoteByMid.clear();
    this.remoteStreams.clear();
  }

  /**
   * Fatal error: close everything, state `closed`, `error` event with fatal.
   * @private
   * @param {SfuError} err
   */
  _fatal(err) {
    if (this._state === 'closed') return;
    err.fatal = true;
    this._shutdown(err.message, false, err.code);
    this._emitError(err, true);
  }

  /**
   * Closes everything; no reconnect afterwards.
   * @private
   * @param {string} reason
   * @param {boolean} sendLeave
   * @param {string} [code]
   */
  _shutdown(reason, sendLeave, code = 'closed') {
    this._loopSeq++;
    this._loopActive = false;
    if (sendLeave && this._joined) this._send({ type: 'leave', roomName: this.room });
    this._teardownSession(reason, { emitRemoved: false, code });
    for (const wake of [...this._sleepers]) wake();
    this._sleepers.clear();
    this._timers.clearAll();
    const waiters = this._readyWaiters.splice(0);
    for (const w of waiters) w.reject(new SfuError('closed', reason));
    this.localTracks = [];
    this._trackStreams.clear();
    this.participants.clear();
    this.publishers.clear();
    this._directory.clear();
    this._setState('closed', reason);
  }

  /** @private @param {number} epoch */
  _checkEpoch(epoch) {
    if (epoch !== this._epoch || this._state === 'closed') {
      throw new SfuError(this._state === 'closed' ? 'closed' : 'interrupted', `interrupted: ${this._epochReason}`);
    }
  }

  /**
   * Starts a new epoch: flows of the old one stop at their next check, and
   * PeerConnection operations awaited through {@link SfuClient#_race} reject.
   * @private
   * @param {string} reason
   */
  _bumpEpoch(reason) {
    this._epoch++;
    this._epochReason = reason;
    const old = this._epochAbort;
    this._epochAbort = makeAbort();
    old.abort(new SfuError('interrupted', `interrupted: ${reason}`));
  }

  /**
   * Awaits a PeerConnection operation, or rejects when the epoch changes.
   * @private
   * @template T
   * @param {Promise<T>|T} op
   * @returns {Promise<T>}
   */
  _race(op) {
    return Promise.race([Promise.resolve(op), /** @type {Promise<never>} */ (this._epochAbort.promise)]);
  }

  /** @private @returns {Promise<void>} */
  _whenReady() {
    if (this._state === 'connected' && this._mediaReady && !this._recycling) return Promise.resolve();
    if (this._state === 'closed' || this._state === 'idle') return Promise.reject(new SfuError('closed', 'client is closed'));
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  /** @private */
  _markReady() {
    const waiters = this._readyWaiters.splice(0);
    for (const w of waiters) w.resolve();
  }

  /**
   * @private
   * @param {string} state
   * @param {string|null} reason
   */
  _setState(state, reason) {
    const previous = this._state;
    if (previous === state) return;
    this._state = /** @type {any} */ (state);
    this._emit('state', { state, previous, reason: reason ?? null });
  }
}
