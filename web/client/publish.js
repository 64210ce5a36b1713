// client/publish.js: the publish PeerConnection of SfuClient: one per
// session, created on first use, renegotiated (in the publish SerialQueue)
// whenever `localTracks` change; a refused offer resets it (`unpublish`).

import { SfuError } from '../sfu-core.js';
import { candidateJson } from './candidates.js';
import { TRANSIENT_CODES } from './shared.js';

/**
 * @typedef {{pc: any, candidates: object[], senders: Map<MediaStreamTrack, any>, negotiated: boolean}} PubState
 */

/**
 * Methods of SfuClient: publishing local tracks.
 */
export class PublishMethods {
  /**
   * Publishes local tracks on the one publish PeerConnection (created on
   * first use) and resolves when the server answered. Calling it again with
   * more tracks renegotiates. Tracks already published are skipped.
   * @param {MediaStream|MediaStreamTrack[]|MediaStreamTrack} streamOrTracks
   * @returns {Promise<void>}
   * @throws {SfuError} When the server refuses (the new tracks are then not published).
   */
  async publish(streamOrTracks) {
    if (this._state === 'idle' || this._state === 'closed') throw new SfuError('not-connected', 'publish() before connect()');
    /** @type {MediaStreamTrack[]} */
    let tracks;
    /** @type {MediaStream|null} */
    let stream = null;
    const input = /** @type {any} */ (streamOrTracks);
    if (input && typeof input.getTracks === 'function') {
      stream = input;
      tracks = input.getTracks();
    } else if (Array.isArray(input)) {
      tracks = input;
    } else if (input && typeof input.kind === 'string') {
      tracks = [input];
    } else {
      throw new SfuError('bad-request', 'publish() needs a MediaStream or an array of MediaStreamTracks');
    }
    /** @type {MediaStreamTrack[]} */
    const added = [];
    for (const t of tracks) {
      if (!t || this.localTracks.includes(t)) continue;
      if (t.readyState === 'ended') {
        this._log.warn('publish(): skipping an ended track', t.id);
        continue;
      }
      this.localTracks.push(t);
      this._trackStreams.set(t, stream);
      added.push(t);
    }
    if (added.length === 0) return;
    for (let tries = 0; ; tries++) {
      if (this._state !== 'connected' || !this._mediaReady) await this._whenReady();
      if (!added.some((t) => this.localTracks.includes(t))) return;
      try {
        await this._pubQueue.push(() => this._syncPublish());
        return;
      } catch (e) {
        const err = SfuError.wrap(e);
        if (TRANSIENT_CODES.has(err.code) && this._state !== 'closed' && tries < 3) continue;
        this._forgetLocal(added);
        if (this.localTracks.length > 0 && this._state === 'connected') {
          await this._pubQueue.push(() => this._syncPublish()).catch((e2) => {
            this._forgetLocal([...this.localTracks]);
            this._emitError(SfuError.wrap(e2), false);
          });
        }
        throw err;
      }
    }
  }

  /**
   * Stops publishing one local track (renegotiates; sends `unpublish` when
   * it was the last one). The track itself is not stopped.
   * @param {MediaStreamTrack} track
   * @returns {Promise<void>}
   */
  async unpublishTrack(track) {
    if (!this.localTracks.includes(track)) return;
    this._forgetLocal([track]);
    await this._resyncPublish();
  }

  /**
   * Stops publishing entirely: sends `unpublish` and closes the publish
   * PeerConnection. The local tracks are not stopped.
   * @returns {Promise<void>}
   */
  async unpublish() {
    this._forgetLocal([...this.localTracks]);
    await this._resyncPublish();
  }

  /**
   * Mutes/unmutes the local tracks of one kind (`track.enabled`); nothing
   * is renegotiated.
   * @param {'audio'|'video'} kind
   * @param {boolean} enabled
   * @returns {number} How many tracks were changed.
   */
  setTrackEnabled(kind, enabled) {
    let n = 0;
    for (const t of this.localTracks) {
      if (t.kind === kind) {
        t.enabled = !!enabled;
        n++;
      }
    }
    return n;
  }

  /** @private @returns {PubState} */
  _makePublishState() {
    const pc = this._newPc();
    /** @type {PubState} */
    const state = { pc, candidates: [], senders: new Map(), negotiated: false };
    pc.onicecandidate = (/** @type {any} */ ev) =>
      this._guard('publish icecandidate', () => {
        if (state !== this._pub) return;
        const c = candidateJson(ev && ev.candidate);
        if (c) this._send({ type: 'publish-ice-candidate', roomName: this.room, candidate: c });
      });
    pc.onconnectionstatechange = () =>
      this._guard('publish connectionstate', () => {
        if (state === this._pub && pc.connectionState === 'failed' && this._state === 'connected') {
          this._onSocketLost('publish PeerConnection failed');
        }
      });
    return state;
  }

  /** @private */
  _closePub() {
    const pub = this._pub;
    this._pub = null;
    if (pub) this._closePc(pub.pc);
  }

  /** @private @param {MediaStreamTrack[]} tracks */
  _forgetLocal(tracks) {
    this.localTracks = this.localTracks.filter((t) => !tracks.includes(t));
    for (const t of tracks) this._trackStreams.delete(t);
  }

  /**
   * Runs {@link SfuClient#_syncPublish} after a local change; interruptions
   * are fine (a reconnect re-publishes the current localTracks anyway).
   * @private
   */
  async _resyncPublish() {
    if (!this._joined || (!this._pub && this.localTracks.length === 0)) return;
    try {
      await this._pubQueue.push(() => this._syncPublish());
    } catch (e) {
      const err = SfuError.wrap(e);
      if (TRANSIENT_CODES.has(err.code)) return;
      throw err;
    }
  }

  /**
   * Makes the publish PeerConnection carry exactly `localTracks` and
   * negotiates when something changed. Runs inside the publish SerialQueue.
   * On failure the server-side publish state is reset (`unpublish`).
   * @private
   */
  async _syncPublish() {
    if (!this._joined) throw new SfuError('interrupted', 'not joined');
    const epoch = this._epoch;
    if (this.localTracks.length === 0) {
      if (this._pub) {
        this._send({ type: 'unpublish', roomName: this.room });
        this._closePub();
      }
      return;
    }
    if (!this._pub) this._pub = this._makePublishState();
    const state = this._pub;
    const pc = state.pc;
    const check = () => {
      if (state !== this._pub || epoch !== this._epoch) throw new SfuError('interrupted', 'publish PeerConnection replaced');
    };
    try {
      let changed = !state.negotiated;
      for (const t of this.localTracks) {
        if (state.senders.has(t)) continue;
        const stream = this._trackStreams.get(t) ?? this._localStream();
        const tr = pc.addTransceiver(t, { direction: 'sendonly', streams: stream ? [stream] : [] });
        state.senders.set(t, tr);
        changed = true;
      }
      for (const [t, tr] of [...state.senders]) {
        if (this.localTracks.includes(t)) continue;
        try {
          pc.removeTrack(tr.sender);
        } catch (e) {
          this._log.debug('removeTrack failed', e);
        }
        state.senders.delete(t);
        changed = true;
      }
      if (!changed) return;
      const offer = await this._race(pc.createOffer());
      check();
      await this._race(pc.setLocalDescription(offer));
      check();
      const sdp = (pc.localDescription && pc.localDescription.sdp) || offer.sdp;
      const reply = await this._request({ type: 'publish-offer', roomName: this.room, offer: sdp });
      check();
      await this._race(pc.setRemoteDescription({ type: 'answer', sdp: reply.answer }));
      check();
      state.negotiated = true;
      this._flushCandidates(state);
    } catch (e) {
      if (state !== this._pub || epoch !== this._epoch) throw new SfuError('interrupted', 'publish PeerConnection replaced');
      // Server-side state unknown: reset it, the next offer starts a new PeerConnection.
      this._send({ type: 'unpublish', roomName: this.room });
      this._closePub();
      throw SfuError.wrap(e, 'negotiation-failed');
    }
  }

  /** @private @returns {MediaStream|null} */
  _localStream() {
    if (!this._ownStream) {
      const MS = this._opts.MediaStreamImpl ?? /** @type {any} */ (globalThis).MediaStream;
      this._ownStream = MS ? new MS() : null;
    }
    return this._ownStream;
  }
}
