// client/transport.js: the WebSocket of SfuClient: URL and token, opening,
// keepalive, close codes, incoming messages (parsed here, handled in
// room.js), sending requests, and reconnecting after the socket was lost
// (Backoff, at most `reconnect.maxAttempts` attempts per outage), moving to
// the next URL of the `url` list when the node behind the current one looks
// gone (UrlRing in sfu-core.js).

import { SfuError, parseServerMessage } from '../sfu-core.js';

/**
 * Methods of SfuClient: the WebSocket, requests and the reconnect loop.
 */
export class TransportMethods {
  /** @private @returns {Promise<string|null>} */
  async _resolveToken() {
    const t = this._opts.token;
    let value = typeof t === 'function' ? await t() : t;
    if (value === undefined || value === null || value === '') return null;
    if (typeof value !== 'string') throw new SfuError('unauthorized', 'the token must be a string');
    return value;
  }

  /**
   * The WebSocket URL of the current entry of the `url` list.
   * @private @returns {string}
   */
  _url() {
    const u = this._urls.current();
    const loc = /** @type {any} */ (globalThis).location;
    if (typeof u === 'string' && /^wss?:\/\//i.test(u)) return u;
    if (typeof u === 'string' && /^https?:\/\//i.test(u)) return u.replace(/^http/i, 'ws');
    if (!loc) throw new SfuError('bad-request', 'option `url` is required outside a browser page');
    const base = `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}`;
    if (typeof u === 'string' && u.startsWith('/')) return base + u;
    return `${base}/ws`;
  }

  /**
   * Moves to the next URL of the `url` list (no-op with one URL): the node
   * behind the current one looks gone.
   * @private
   * @param {string} why
   */
  _rotateUrl(why) {
    const from = this._safeUrl();
    if (this._urls.advance()) this._log.info(`signaling URL ${from} looks gone (${why}): next is ${this._safeUrl()}`);
  }

  /** @private @returns {string} The current URL, or a note why there is none (for logs and events). */
  _safeUrl() {
    try {
      return this._url();
    } catch (e) {
      return `(${e instanceof Error ? e.message : e})`;
    }
  }

  /**
   * connect()'s attempts: one per URL of the `url` list while the socket
   * does not open (that node looks gone); any other failure, or the last
   * URL, ends it.
   * @private
   * @returns {Promise<Record<string, any>>} The `joined` message.
   */
  async _establishAny() {
    for (let tried = 1; ; tried++) {
      try {
        return await this._establish();
      } catch (e) {
        const err = SfuError.wrap(e);
        if (!err.socketNotOpened || tried >= this._urls.size || this._state !== 'connecting') throw err;
        this._log.info(`connect: ${err.message}; trying the next URL`);
        this._teardownSession(err.message, { emitRemoved: true });
      }
    }
  }

  /**
   * Opens the WebSocket and installs its handlers; resolves when open.
   * A socket that does not open (error, close, time limit) moves to the
   * next URL and rejects with an SfuError whose `socketNotOpened` is true.
   * @private
   * @returns {Promise<any>}
   */
  _openWs() {
    return new Promise((resolve, reject) => {
      const WS = this._opts.WebSocketImpl ?? /** @type {any} */ (globalThis).WebSocket;
      /** @type {any} */
      let ws;
      /**
       * @param {string} code
       * @param {string} message
       * @returns {SfuError}
       */
      const notOpened = (code, message) => {
        const err = new SfuError(code, message);
        /** @type {any} */ (err).socketNotOpened = true;
        this._rotateUrl(message);
        return err;
      };
      try {
        ws = new WS(this._url());
      } catch (e) {
        reject(notOpened('connection-lost', `cannot open a WebSocket: ${e instanceof Error ? e.message : e}`));
        return;
      }
      this._ws = ws;
      let settled = false;
      /** @param {SfuError} err */
      const fail = (err) => {
        if (settled) return;
        settled = true;
        this._timers.clear(timer);
        if (this._wsOpenAbort === fail) this._wsOpenAbort = null;
        reject(err);
      };
      const timer = this._timers.setTimeout(
        () => fail(notOpened('timeout', `WebSocket did not open within ${this._opts.requestTimeoutMs} ms`)),
        this._opts.requestTimeoutMs,
      );
      this._wsOpenAbort = fail;
      ws.onopen = () =>
        this._guard('ws open', () => {
          if (settled) return;
          settled = true;
          this._timers.clear(timer);
          if (this._wsOpenAbort === fail) this._wsOpenAbort = null;
          if (ws !== this._ws) {
            reject(new SfuError('interrupted', 'socket replaced'));
            return;
          }
          this._startKeepalive(ws);
          resolve(ws);
        });
      ws.onmessage = (/** @type {any} */ ev) => this._guard('ws message', () => this._onWsMessage(ws, ev));
      ws.onerror = () => this._guard('ws error', () => this._log.debug('WebSocket error event'));
      ws.onclose = (/** @type {any} */ ev) =>
        this._guard('ws close', () => {
          if (!settled) {
            if (ws === this._ws) this._ws = null;
            const code = ev?.code;
            fail(
              code === 4001
                ? new SfuError('unauthorized', 'the server closed the connection: invalid token (4001)')
                : notOpened('connection-lost', `WebSocket closed before it opened (${code ?? 'no code'})`),
            );
            return;
          }
          this._onWsClose(ws, ev);
        });
    });
  }

  /** @private @param {any} ws */
  _detachWs(ws) {
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = null;
    ws.onclose = null;
  }

  /**
   * @private
   * @param {any} ws
   * @param {number} code
   * @param {string} reason
   */
  _closeWs(ws, code, reason) {
    if (!ws) return;
    this._detachWs(ws);
    try {
      // The close reason must stay under 123 UTF-8 bytes (else close() throws): ASCII only.
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code, String(reason).replace(/[^\x20-\x7e]/g, '?').slice(0, 120));
    } catch (e) {
      this._log.debug('WebSocket close failed', e);
    }
  }

  /** @private @param {any} ws */
  _startKeepalive(ws) {
    this._stopKeepalive();
    this._lastRx = this._now();
    this._keepalive = this._timers.setInterval(
      () =>
        this._guard('keepalive', () => {
          if (ws !== this._ws) return;
          if (this._now() - this._lastRx > this._opts.idleTimeoutMs) {
            const why = `no message from the server for ${this._opts.idleTimeoutMs} ms`;
            this._rotateUrl(why);
            this._onSocketLost(why);
            return;
          }
          this._send({ type: 'ping' });
        }),
      this._opts.pingIntervalMs,
    );
  }

  /** @private */
  _stopKeepalive() {
    if (this._keepalive !== null) this._timers.clear(this._keepalive);
    this._keepalive = null;
  }

  /**
   * @private
   * @param {any} ws
   * @param {any} ev
   */
  _onWsClose(ws, ev) {
    if (ws !== this._ws) return;
    const code = ev?.code;
    if (code === 4001) {
      this._fatal(new SfuError('unauthorized', 'the server closed the connection: invalid token (4001)'));
      return;
    }
    if (code === 4003) {
      this._fatal(new SfuError('kicked', 'an administrator removed this participant (4003)'));
      return;
    }
    const why =
      code === 1009 ? 'a frame was too large (1009)'
      : code === 1008 ? 'policy close (1008)'
      : code === 1001 ? 'server going away (1001)'
      : code === 4008 ? 'not authenticated in time (4008)'
      : `WebSocket closed (${code ?? 'no code'})`;
    // A `reconnect` message would have detached this socket first: the
    // node dropped us without one, so it (or the way to it) looks gone.
    this._rotateUrl(why);
    this._onSocketLost(why);
  }

  /**
   * @private
   * @param {any} ws
   * @param {any} ev
   */
  _onWsMessage(ws, ev) {
    if (ws !== this._ws) return;
    this._lastRx = this._now();
    /** @type {Record<string, any>} */
    let msg;
    try {
      msg = parseServerMessage(ev?.data);
    } catch (e) {
      this._log.warn('ignoring a malformed server message:', e instanceof Error ? e.message : e);
      return;
    }
    try {
      this._dispatch(msg);
    } catch (e) {
      this._log.error(`handling \`${msg.type}\` failed`, e);
    }
  }

  /**
   * Sends a message if the socket is open.
   * @private
   * @param {Record<string, any>} msg
   * @returns {boolean}
   */
  _send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) {
      this._log.debug(`not sending ${msg.type}: socket not open`);
      return false;
    }
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      this._log.warn(`sending ${msg.type} failed`, e);
      return false;
    }
  }

  /**
   * Sends a request with a fresh requestId and waits for its reply.
   * @private
   * @param {Record<string, any>} msg
   * @returns {Promise<Record<string, any>>}
   */
  _request(msg) {
    return this._requestWithId(this._nextRequestId(), msg);
  }

  /**
   * @private
   * @param {string} requestId
   * @param {Record<string, any>} msg
   * @returns {Promise<Record<string, any>>}
   */
  _requestWithId(requestId, msg) {
    const reply = this._pending.add(requestId, { requestType: msg.type });
    if (!this._send({ ...msg, requestId })) {
      this._pending.reject(requestId, new SfuError('not-connected', `cannot send ${msg.type}: not connected`, { requestType: msg.type }));
    }
    return reply;
  }

  /**
   * The socket is gone (closed, keepalive timeout, `reconnect` message,
   * unrecoverable negotiation failure). Reconnects when connected.
   * @private
   * @param {string} reason
   * @param {number} [hintMs] Server `retryAfterMs`.
   */
  _onSocketLost(reason, hintMs) {
    this._log.info('connection lost:', reason);
    const state = this._state;
    if (state === 'closed' || state === 'idle') return;
    this._teardownSession(reason, { emitRemoved: true });
    if (state === 'connected') {
      if (this._opts.reconnect.enabled) this._startReconnect(reason, hintMs);
      else this._fatal(new SfuError('connection-lost', reason));
    } else if (state === 'reconnecting') {
      if (hintMs !== undefined) this._nextHint = Math.max(this._nextHint ?? 0, hintMs);
    }
    // 'connecting': connect() sees its awaits fail and rejects.
  }

  /**
   * @private
   * @param {string} reason
   * @param {number} [hintMs]
   */
  _startReconnect(reason, hintMs) {
    if (hintMs !== undefined) this._nextHint = Math.max(this._nextHint ?? 0, hintMs);
    if (this._loopActive) return;
    this._loopActive = true;
    const seq = ++this._loopSeq;
    this._setState('reconnecting', reason);
    this._reconnectLoop(seq, reason)
      .catch((e) => this._log.error('reconnect loop failed', e))
      .finally(() => {
        if (seq === this._loopSeq) this._loopActive = false;
      });
  }

  /**
   * @private
   * @param {number} seq
   * @param {string} reason
   */
  async _reconnectLoop(seq, reason) {
    let attempt = 0;
    let lastReason = reason;
    while (this._state === 'reconnecting' && seq === this._loopSeq) {
      attempt++;
      if (attempt > this._opts.reconnect.maxAttempts) {
        this._fatal(new SfuError('reconnect-failed', `gave up after ${attempt - 1} attempts: ${lastReason}`));
        return;
      }
      const delayMs = this._backoff.next(this._nextHint);
      this._nextHint = undefined;
      this._emit('reconnecting', { attempt, delayMs, reason: lastReason, url: this._safeUrl() });
      await this._sleep(delayMs);
      if (this._state !== 'reconnecting' || seq !== this._loopSeq) return;
      try {
        await this._establish();
        if (this._state !== 'reconnecting' || seq !== this._loopSeq) return;
        this._backoff.reset();
        this._loopActive = false;
        this._setState('connected', 'reconnected');
        this._markReady();
        this._emit('reconnected', {});
        this._startSubscriptions();
        return;
      } catch (e) {
        const err = SfuError.wrap(e);
        if (this._state !== 'reconnecting' || seq !== this._loopSeq) return;
        if (err.code === 'unauthorized' || err.code === 'forbidden' || err.code === 'replaced') {
          this._fatal(err);
          return;
        }
        lastReason = err.message;
        this._log.info(`reconnect attempt ${attempt} failed:`, err.message);
        this._teardownSession(lastReason, { emitRemoved: true });
      }
    }
  }

  /** @private @param {number} ms @returns {Promise<void>} */
  _sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        this._sleepers.delete(done);
        this._timers.clear(handle);
        resolve();
      };
      const handle = this._timers.setTimeout(done, ms);
      this._sleepers.add(done);
    });
  }
}
