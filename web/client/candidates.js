// client/candidates.js: trickle ICE for both PeerConnections of SfuClient:
// local candidates as RTCIceCandidateInit (candidateJson, used by
// publish.js and subscribe.js), remote candidates added at once or queued
// (bounded) until the PeerConnection has a remote description.

import { normalizeCandidate } from '../sfu-core.js';
import { noop } from './shared.js';

/** @typedef {import('./publish.js').PubState} PubState */
/** @typedef {import('./subscribe.js').SubState} SubState */

/** Cap of queued remote ICE candidates per PeerConnection. */
const MAX_QUEUED_CANDIDATES = 200;

/**
 * RTCIceCandidate → RTCIceCandidateInit (null for end of candidates).
 * @param {any} c
 * @returns {object|null}
 */
export function candidateJson(c) {
  if (!c) return null;
  const j = typeof c.toJSON === 'function' ? c.toJSON() : c;
  if (!j || typeof j.candidate !== 'string' || j.candidate === '') return null;
  /** @type {Record<string, unknown>} */
  const out = { candidate: j.candidate };
  if (j.sdpMid !== undefined && j.sdpMid !== null) out.sdpMid = j.sdpMid;
  if (j.sdpMLineIndex !== undefined && j.sdpMLineIndex !== null) out.sdpMLineIndex = j.sdpMLineIndex;
  if (j.usernameFragment) out.usernameFragment = j.usernameFragment;
  return out;
}

/**
 * Methods of SfuClient: remote ICE candidates.
 */
export class CandidateMethods {
  /** @private @param {unknown} raw */
  _onPublishCandidate(raw) {
    const pub = this._pub;
    if (!pub) {
      this._log.debug('dropping a publish candidate: no publish PeerConnection');
      return;
    }
    this._applyRemoteCandidate(pub, raw);
  }

  /** @private @param {unknown} raw */
  _onSubscribeCandidate(raw) {
    const sub = this._sub;
    if (!sub) {
      this._log.debug('dropping a subscribe candidate: no subscribe PeerConnection');
      return;
    }
    if (this._subQueue.idle) {
      this._applyRemoteCandidate(sub, raw);
      return;
    }
    // An offer is being handled: keep arrival order (it may be an ICE restart).
    if (sub.queuedCandidateJobs >= MAX_QUEUED_CANDIDATES) {
      this._log.warn('dropping a subscribe candidate: too many queued');
      return;
    }
    sub.queuedCandidateJobs++;
    this._subQueue
      .push(() => {
        sub.queuedCandidateJobs--;
        if (sub === this._sub) this._applyRemoteCandidate(sub, raw);
      })
      .catch(noop);
  }

  /**
   * Adds a remote candidate now, or queues it until the PeerConnection has a
   * remote description.
   * @private
   * @param {PubState|SubState} state
   * @param {unknown} raw
   */
  _applyRemoteCandidate(state, raw) {
    /** @type {ReturnType<typeof normalizeCandidate>} */
    let init;
    try {
      init = normalizeCandidate(raw);
    } catch (e) {
      this._log.warn('ignoring an invalid candidate', e instanceof Error ? e.message : e);
      return;
    }
    if (!init) return;
    if (!state.pc.remoteDescription) {
      if (state.candidates.length >= MAX_QUEUED_CANDIDATES) {
        state.candidates.shift();
        this._log.warn('remote candidate queue full: dropping the oldest');
      }
      state.candidates.push(init);
      return;
    }
    this._addCandidate(state, init);
  }

  /**
   * @private
   * @param {PubState|SubState} state
   * @param {object} init
   */
  _addCandidate(state, init) {
    try {
      Promise.resolve(state.pc.addIceCandidate(init)).catch((/** @type {unknown} */ e) =>
        this._log.debug('addIceCandidate failed', e),
      );
    } catch (e) {
      this._log.debug('addIceCandidate threw', e);
    }
  }

  /** @private @param {PubState|SubState} state */
  _flushCandidates(state) {
    if (!state.pc.remoteDescription) return;
    const list = state.candidates.splice(0);
    for (const c of list) this._addCandidate(state, c);
  }
}
