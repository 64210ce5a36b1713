// client/tracks.js: the remote tracks of SfuClient: an `ontrack` is mapped
// to its publisher via transceiver.mid → msid of the last applied offer →
// trackId → TrackDirectory → publisherId (why: the comment at the top of
// ../sfu-client.js); tracks whose publisher is not known yet wait as
// orphans (bounded). One MediaStream per publisher in `remoteStreams`.

import { isProbator, parseMsids } from '../sfu-core.js';

/** @typedef {import('./subscribe.js').SubState} SubState */

/** Cap of remote tracks whose publisher is not known yet. */
const MAX_ORPHAN_TRACKS = 50;

/**
 * Methods of SfuClient: remote tracks and their statistics.
 */
export class TrackMethods {
  /**
   * Inbound RTP statistics of the subscribe PeerConnection, one entry per
   * remote track of a known publisher (the probator and tracks of departed
   * publishers are left out).
   * @returns {Promise<{publisherId: string, kind: string, trackId: string, packetsReceived: number,
   *   framesDecoded: number, frameWidth: number, frameHeight: number, bytesReceived: number}[]>}
   */
  async getInboundStats() {
    const sub = this._sub;
    if (!sub) return [];
    const pc = sub.pc;
    const report = await pc.getStats();
    /** @type {Map<string, string>} receiver track id → mid */
    const midOfTrack = new Map();
    try {
      for (const tr of pc.getTransceivers ? pc.getTransceivers() : []) {
        if (tr && tr.mid !== null && tr.mid !== undefined && tr.receiver && tr.receiver.track) {
          midOfTrack.set(tr.receiver.track.id, String(tr.mid));
        }
      }
    } catch (e) {
      this._log.debug('getTransceivers failed', e);
    }
    /** @type {Map<string, any>} */
    const byId = new Map();
    report.forEach((/** @type {any} */ s) => byId.set(s.id, s));
    const out = [];
    for (const s of byId.values()) {
      if (!s || s.type !== 'inbound-rtp') continue;
      const legacy = s.trackId ? byId.get(s.trackId) : undefined;
      let mid = s.mid !== undefined && s.mid !== null ? String(s.mid) : null;
      if (mid === null) {
        const tid = s.trackIdentifier ?? legacy?.trackIdentifier;
        if (tid) mid = midOfTrack.get(tid) ?? null;
      }
      const info = mid !== null ? this._remoteByMid.get(mid) : undefined;
      if (!info) continue;
      out.push({
        publisherId: info.publisherId,
        kind: s.kind ?? s.mediaType ?? info.kind,
        trackId: info.trackId,
        packetsReceived: s.packetsReceived ?? 0,
        framesDecoded: s.framesDecoded ?? legacy?.framesDecoded ?? 0,
        frameWidth: s.frameWidth ?? legacy?.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? legacy?.frameHeight ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
      });
    }
    return out;
  }

  /**
   * Maps a remote track to its publisher: transceiver.mid → msid of the
   * last applied offer → trackId → TrackDirectory → publisherId.
   * @private
   * @param {SubState} sub
   * @param {any} ev RTCTrackEvent
   */
  _onRemoteTrack(sub, ev) {
    if (sub !== this._sub) return;
    const track = ev && ev.track;
    const mid = ev && ev.transceiver && ev.transceiver.mid !== null && ev.transceiver.mid !== undefined ? String(ev.transceiver.mid) : null;
    if (!track || mid === null) {
      this._log.warn('ontrack without track or mid');
      return;
    }
    let info = sub.offerMsids.get(mid);
    if (!info && sub.pc.remoteDescription) info = parseMsids(sub.pc.remoteDescription.sdp).get(mid);
    if (!info) {
      this._log.warn(`ontrack: no msid for mid ${mid}`);
      return;
    }
    if (isProbator(info)) return;
    this._attachRemote(mid, { track, trackId: info.trackId, kind: track.kind || info.kind });
  }

  /**
   * @private
   * @param {string} mid
   * @param {{track: MediaStreamTrack, trackId: string, kind: string}} t
   */
  _attachRemote(mid, t) {
    const pid = this._directory.publisherOf(t.trackId);
    if (!pid) {
      if (this._orphans.size >= MAX_ORPHAN_TRACKS) {
        const first = this._orphans.keys().next().value;
        if (first !== undefined) this._orphans.delete(first);
      }
      this._orphans.set(mid, t);
      return;
    }
    this._orphans.delete(mid);
    const known = this.publishers.has(pid) || this._subscribedPubs.has(pid) || this._subscribing.has(pid);
    if (!known || !this._isWanted(pid)) {
      this._log.debug(`ignoring a track of ${pid} (not subscribed)`);
      return;
    }
    const existing = this._remoteByMid.get(mid);
    if (existing && existing.track === t.track) return;
    if (existing) this._removeRemote(mid, false);
    // The same publisher track on an older m-section (resubscribe): replace it.
    for (const [m, e] of [...this._remoteByMid]) {
      if (e.publisherId === pid && e.trackId === t.trackId) this._removeRemote(m, false);
    }
    let stream = this.remoteStreams.get(pid);
    if (!stream) {
      const MS = this._opts.MediaStreamImpl ?? /** @type {any} */ (globalThis).MediaStream;
      stream = /** @type {MediaStream} */ (new MS());
      this.remoteStreams.set(pid, stream);
    }
    try {
      stream.addTrack(t.track);
    } catch (e) {
      this._log.debug('addTrack to remote stream failed', e);
    }
    this._remoteByMid.set(mid, { publisherId: pid, trackId: t.trackId, kind: t.kind, track: t.track });
    this._emit('track', { publisherId: pid, track: t.track, stream, kind: t.kind, trackId: t.trackId });
  }

  /** @private */
  _resolveOrphans() {
    for (const [mid, t] of [...this._orphans]) {
      if (this._directory.publisherOf(t.trackId)) this._attachRemote(mid, t);
    }
  }

  /**
   * Removes one remote track from its publisher's stream.
   * @private
   * @param {string} mid
   * @param {boolean} emit Emit `track-removed`.
   */
  _removeRemote(mid, emit) {
    const e = this._remoteByMid.get(mid);
    if (!e) return;
    this._remoteByMid.delete(mid);
    const stream = this.remoteStreams.get(e.publisherId);
    if (stream) {
      try {
        stream.removeTrack(e.track);
      } catch (err) {
        this._log.debug('removeTrack from remote stream failed', err);
      }
      if (stream.getTracks().length === 0) this.remoteStreams.delete(e.publisherId);
    }
    if (emit) this._emit('track-removed', { publisherId: e.publisherId, trackId: e.trackId });
  }

  /**
   * Removes all remote tracks of a publisher.
   * @private
   * @param {string} pid
   * @param {boolean} emit Emit `track-removed` per track.
   */
  _dropPublisherMedia(pid, emit) {
    for (const [mid, e] of [...this._remoteByMid]) if (e.publisherId === pid) this._removeRemote(mid, emit);
    this.remoteStreams.delete(pid);
  }
}
