// client/shared.js: what the parts of SfuClient share: constants, the
// PeerConnection factory, events and handler guards, and composeMethods(),
// which assembles SfuClient.prototype from the parts (see ../sfu-client.js).
//
// The parts of SfuClient (the files of this directory) are classes that are
// never instantiated: they only hold methods of SfuClient, grouped by
// concern. `this` in them is the SfuClient; its state (the fields set in its
// constructor) is shared by all of them.

import { SfuError } from '../sfu-core.js';

/** Key under which an unsolicited `auth-ok` (token in the URL) is awaited. */
export const AUTH_OK_KEY = '$auth-ok';
/** Local error codes that mean "the session changed under us", not a real failure. */
export const TRANSIENT_CODES = new Set(['interrupted', 'cancelled', 'connection-lost', 'closed', 'not-connected']);

export const noop = () => {};

/**
 * A promise that rejects on abort() (its rejection is always handled).
 * @returns {{promise: Promise<never>, abort: (err: unknown) => void}}
 */
export function makeAbort() {
  /** @type {(err: unknown) => void} */
  let abort = noop;
  /** @type {Promise<never>} */
  const promise = new Promise((_, reject) => {
    abort = reject;
  });
  promise.catch(noop);
  return { promise, abort };
}

/**
 * Copies the methods of each part's prototype onto `target.prototype` with
 * their property descriptors (so they stay non-enumerable, like methods
 * written in the class itself). A name defined twice is a bug: throws.
 * @param {Function} target
 * @param {Function[]} parts
 */
export function composeMethods(target, parts) {
  for (const part of parts) {
    for (const [name, desc] of Object.entries(Object.getOwnPropertyDescriptors(part.prototype))) {
      if (name === 'constructor') continue;
      if (Object.prototype.hasOwnProperty.call(target.prototype, name)) {
        throw new Error(`${target.name}: method ${name} is defined twice`);
      }
      Object.defineProperty(target.prototype, name, desc);
    }
  }
}

/**
 * Methods of SfuClient used by every part: PeerConnection creation and
 * closing, events, handler guards.
 */
export class SharedMethods {
  /** @private @returns {any} */
  _newPc() {
    const PC = this._opts.RTCPeerConnectionImpl ?? /** @type {any} */ (globalThis).RTCPeerConnection;
    if (!PC) throw new SfuError('unsupported', 'RTCPeerConnection is not available');
    return new PC({ iceServers: this._iceServers() });
  }

  /**
   * The app's ICE servers, then the server's (TURN credentials from
   * `auth-ok` / `ice-servers`).
   * @private @returns {RTCIceServer[]}
   */
  _iceServers() {
    const fromServer = /** @type {any} */ (this)._serverIceServers;
    return [...this._opts.iceServers, ...(Array.isArray(fromServer) ? fromServer : [])];
  }

  /**
   * Takes the `iceServers` of an `auth-ok` or `ice-servers` message (well
   * formed entries only) for new PeerConnections, and hands them to the open
   * ones (`setConfiguration`: used by their next gathering, such as an ICE
   * restart; connections already up keep their relay).
   * @private @param {Record<string, any>} msg
   */
  _takeIceServers(msg) {
    if (!Array.isArray(msg.iceServers)) return;
    const str = (/** @type {unknown} */ v) => typeof v === 'string';
    /** @type {any} */ (this)._serverIceServers = msg.iceServers
      .filter((s) => s && (str(s.urls) || (Array.isArray(s.urls) && s.urls.length > 0 && s.urls.every(str))))
      .map((s) => ({
        urls: s.urls,
        ...(str(s.username) ? { username: s.username } : {}),
        ...(str(s.credential) ? { credential: s.credential } : {}),
      }));
    for (const pc of [this.publishPc, this.subscribePc]) {
      if (!pc || typeof pc.setConfiguration !== 'function') continue;
      try {
        const current = typeof pc.getConfiguration === 'function' ? pc.getConfiguration() : {};
        pc.setConfiguration({ ...current, iceServers: this._iceServers() });
      } catch (e) {
        this._log.debug('setConfiguration failed', e);
      }
    }
  }

  /** @private @param {any} pc */
  _closePc(pc) {
    if (!pc) return;
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    try {
      pc.close();
    } catch (e) {
      this._log.debug('pc.close failed', e);
    }
  }

  /**
   * @private
   * @param {SfuError} err
   * @param {boolean} fatal
   */
  _emitError(err, fatal) {
    this._emit('error', { code: err.code, message: err.message, requestType: err.requestType ?? null, fatal });
  }

  /**
   * Dispatches a CustomEvent; a throwing listener never breaks the library.
   * @private
   * @param {string} type
   * @param {object} detail
   */
  _emit(type, detail) {
    try {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    } catch (e) {
      this._log.error(`a ${type} listener threw`, e);
    }
  }

  /**
   * Runs an event handler; logs instead of throwing.
   * @private
   * @param {string} what
   * @param {() => void} fn
   */
  _guard(what, fn) {
    try {
      fn();
    } catch (e) {
      this._log.error(`${what} handler failed`, e);
    }
  }
}
