// rheo-sfu demo app: join form, self view, one tile per remote participant,
// mic/camera/screen controls, chat, connection state. Written against the
// public API of ./sfu-client.js only. User-provided text is only ever put in
// the page with textContent.

import { SfuClient } from './sfu-client.js';

const $ = (sel) => document.querySelector(sel);

const el = {
  form: $('#join-form'),
  name: $('#name'),
  room: $('#room'),
  token: $('#token'),
  tokenRow: $('#token-row'),
  tokenToggle: $('#token-toggle'),
  join: $('#join'),
  joinView: $('#join-view'),
  roomView: $('#room-view'),
  roomLabel: $('#room-label'),
  conn: $('#conn-state'),
  errorBanner: $('#error-banner'),
  error: $('#error'),
  errorClose: $('#error-close'),
  stage: $('#stage'),
  tiles: $('#tiles'),
  selfTile: $('#self-tile'),
  localVideo: $('#local-video'),
  localScreen: $('#local-screen'),
  localName: $('#local-name'),
  localAvatar: $('#local-avatar'),
  localNoVideoText: $('#local-no-video-text'),
  emptyRoom: $('#empty-room'),
  copyLink: $('#copy-link'),
  unmuteHint: $('#unmute-hint'),
  mic: $('#mic'),
  cam: $('#cam'),
  screen: $('#screen'),
  leave: $('#leave'),
  chatLog: $('#chat-log'),
  chatForm: $('#chat-form'),
  chatInput: $('#chat-input'),
  chatSend: $('#chat-send'),
};

const NAME_KEY = 'rheo-sfu-demo:name';
const ID_KEY = 'rheo-sfu-demo:user-id';
const SERVER_CODES = new Set([
  'unauthorized', 'forbidden', 'bad-request', 'unknown-type', 'not-found',
  'rate-limited', 'room-full', 'draining', 'replaced', 'internal',
]);

// ---------------------------------------------------------------------------
// Small helpers

function storageGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}
function storageSet(store, key, value) {
  try { store.setItem(key, value); } catch { /* private mode, quota: not important */ }
}

function randomId() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const first = (w) => Array.from(w)[0] ?? '';
  const s = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : first(parts[0] || '?');
  return s.toUpperCase();
}

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

/**
 * The signaling URLs: `?urls=ws://a:9000/ws,ws://b:9000/ws` lists the nodes
 * of a cluster (the client moves to the next one when its node dies; see
 * docs/CLIENT.md); without it, the page's own server. Entries that are not
 * ws(s):// or http(s):// URLs are ignored.
 */
function wsUrls() {
  const raw = new URLSearchParams(location.search).get('urls') ?? '';
  const list = raw.split(',').map((u) => u.trim()).filter((u) => /^(wss?|https?):\/\/[^\s]+$/i.test(u));
  return list.length > 0 ? list.slice(0, 16) : [wsUrl()];
}

/** An error whose message is already meant for the user. */
class AppError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'AppError';
    this.code = code;
  }
}

// ---------------------------------------------------------------------------
// Per-tab participant identity.
//
// sessionStorage keeps it across reloads of this tab, so a reload rejoins as
// the same participant (the server replaces the old session). "Duplicate tab"
// copies sessionStorage, which would make two tabs fight over one identity
// (each join kicks the other out with `replaced`): tabs announce their id on a
// BroadcastChannel and the younger of two tabs with the same id takes a new one.

const me = { nonce: randomId(), born: performance.timeOrigin || Date.now() };
let userId = storageGet(sessionStorage, ID_KEY);
if (!userId) {
  userId = randomId();
  storageSet(sessionStorage, ID_KEY, userId);
}
const identityReady = (() => {
  if (typeof BroadcastChannel !== 'function') return Promise.resolve();
  const bc = new BroadcastChannel('rheo-sfu-demo-identity');
  const olderThan = (o) => me.born < o.born || (me.born === o.born && me.nonce < o.nonce);
  const renew = () => {
    userId = randomId();
    storageSet(sessionStorage, ID_KEY, userId);
  };
  bc.onmessage = ({ data }) => {
    if (!data || data.id !== userId || data.nonce === me.nonce) return;
    if (data.type === 'hello') {
      if (olderThan(data)) bc.postMessage({ type: 'taken', id: userId, to: data.nonce });
      else renew();
    } else if (data.type === 'taken' && data.to === me.nonce) {
      renew();
    }
  };
  bc.postMessage({ type: 'hello', id: userId, nonce: me.nonce, born: me.born });
  return new Promise((resolve) => setTimeout(resolve, 150));
})();

// ---------------------------------------------------------------------------
// Error banner

function showError(message, kind = 'error') {
  el.error.textContent = message;
  el.errorBanner.dataset.kind = kind;
  el.errorBanner.hidden = false;
}

function clearError(kind) {
  if (kind && el.errorBanner.dataset.kind !== kind) return;
  el.error.textContent = '';
  delete el.errorBanner.dataset.kind;
  el.errorBanner.hidden = true;
}

el.errorClose.addEventListener('click', () => clearError());

function tokenRowVisible(visible) {
  el.tokenRow.hidden = !visible;
  el.tokenToggle.hidden = visible;
  el.tokenToggle.setAttribute('aria-expanded', String(visible));
}
el.tokenToggle.addEventListener('click', () => {
  tokenRowVisible(true);
  el.token.focus();
});

/** User-facing text for an error from the library (SfuError) or the app. */
function describeError(err, room) {
  const code = err?.code ?? err?.detail?.code;
  const msg = String(err?.message ?? err ?? 'unknown error');
  switch (code) {
    case 'unauthorized':
      return `The server refused the token: ${msg}`;
    case 'forbidden':
      return !err?.requestType || err.requestType === 'join'
        ? `The token does not allow joining the room “${room}” (forbidden): ${msg}`
        : `Not allowed (forbidden, ${err.requestType}): ${msg}`;
    case 'room-full':
      return `The room “${room}” is full (or the server is at its room limit): ${msg}`;
    case 'draining':
      return 'The server is shutting down and takes no new rooms; try again in a moment.';
    case 'replaced':
      return 'You joined this room from another tab (or window), so this one was disconnected.';
    case 'rate-limited':
      return `Too many messages too fast; slow down: ${msg}`;
    case 'internal':
      return `The server failed: ${msg}`;
    case 'bad-request':
    case 'unknown-type':
    case 'not-found':
      return `The server rejected a request (${code}): ${msg}`;
    default:
      return code && !(err instanceof AppError) ? `${msg} (${code})` : msg;
  }
}

/** Message for a failed connect(): server errors map directly; anything else
 *  (socket never opened, timeout) is told apart by probing /health. */
async function describeConnectError(err, room) {
  const code = err?.code;
  if (err instanceof AppError || SERVER_CODES.has(code)) return describeError(err, room);
  let reachable = false;
  try {
    const res = await fetch('/health', { cache: 'no-store' });
    reachable = res.ok || res.status > 0;
  } catch { reachable = false; }
  const detail = err?.message ? ` (${err.message})` : '';
  if (!reachable) return `Cannot reach the server at ${location.origin}${detail}.`;
  const urls = wsUrls();
  return `Cannot connect to the signaling server at ${urls.join(' or ')}${detail}. ` +
    'It may be at its connection limit or shutting down; try again in a moment.';
}

// ---------------------------------------------------------------------------
// Tokens

async function fetchDevToken(name, room) {
  await identityReady;
  const qs = new URLSearchParams({ user: userId, room });
  if (name) qs.set('name', name);
  let res;
  try {
    res = await fetch(`/dev/token?${qs}`, { cache: 'no-store' });
  } catch (e) {
    throw new AppError('unreachable', `Cannot reach the server at ${location.origin} (${e.message}).`);
  }
  if (res.status === 404) {
    throw new AppError('no-dev-token', 'This server requires a token (no development mode): paste a JWT');
  }
  if (!res.ok) {
    throw new AppError('dev-token', `Could not get a development token from the server (HTTP ${res.status}).`);
  }
  let body;
  try { body = await res.json(); } catch { body = null; }
  if (!body || typeof body.token !== 'string' || !body.token) {
    throw new AppError('dev-token', 'The server answered /dev/token without a token.');
  }
  return body.token;
}

// ---------------------------------------------------------------------------
// Session state

/** @type {SfuClient|null} */
let client = null;
let session = null; // {id, room, name, abort, leaving, localStream, screenTrack, ...}
let sessionSeq = 0;
let joining = false;

function setConnState(state) {
  el.conn.textContent = state;
  el.conn.className = `conn state-${state}`;
  document.body.dataset.state = state;
}

function setControlsEnabled(on) {
  for (const b of [el.leave, el.chatInput, el.chatSend]) b.disabled = !on;
  updateMediaButtons();
}

function showRoomView(room) {
  el.joinView.hidden = true;
  el.roomView.hidden = false;
  el.roomLabel.hidden = false;
  el.roomLabel.textContent = `Room: ${room}`;
  layoutStage();
}

function showJoinView() {
  el.roomView.hidden = true;
  el.joinView.hidden = false;
  el.roomLabel.hidden = true;
  el.roomLabel.textContent = '';
  el.join.disabled = false;
  el.join.textContent = 'Join';
}

// ---------------------------------------------------------------------------
// Video playback (autoplay policy)

let autoplayBlocked = false;

function playVideo(video) {
  const p = video.play();
  if (!p || typeof p.catch !== 'function') return;
  p.catch((err) => {
    if (err?.name !== 'NotAllowedError') return; // AbortError: srcObject replaced, fine
    if (!video.muted) {
      // Sound needs a user gesture: play muted now, offer to unmute.
      video.muted = true;
      video.dataset.autoMuted = '1';
      setAutoplayBlocked(true);
      video.play().catch(() => {});
    }
  });
}

function setAutoplayBlocked(blocked) {
  autoplayBlocked = blocked;
  el.unmuteHint.hidden = !blocked;
  if (blocked) document.addEventListener('pointerdown', unmuteAll, { once: true, capture: true });
}

function unmuteAll() {
  document.removeEventListener('pointerdown', unmuteAll, { capture: true });
  for (const v of document.querySelectorAll('video[data-auto-muted]')) {
    v.muted = false;
    delete v.dataset.autoMuted;
    playVideo(v);
  }
  if (autoplayBlocked) setAutoplayBlocked(false);
}
el.unmuteHint.addEventListener('click', unmuteAll);

// ---------------------------------------------------------------------------
// Remote tiles

const watchedTracks = new WeakSet();

function tileOf(id) {
  return el.tiles.querySelector(`.tile[data-participant-id="${CSS.escape(String(id))}"]`);
}

function ensureTile(id, username) {
  id = String(id);
  let tile = tileOf(id);
  if (!tile) {
    tile = document.createElement('div');
    tile.className = 'tile vtile';
    tile.dataset.participantId = id;
    tile.dataset.video = 'off';

    const video = document.createElement('video');
    video.className = 'main';
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');

    const extra = document.createElement('video');
    extra.className = 'extra';
    extra.autoplay = true;
    extra.playsInline = true;
    extra.muted = true;
    extra.setAttribute('playsinline', '');
    extra.hidden = true;

    const placeholder = document.createElement('div');
    placeholder.className = 'no-video';
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    const text = document.createElement('span');
    text.className = 'no-video-text';
    text.textContent = 'No video';
    placeholder.append(avatar, text);

    const label = document.createElement('span');
    label.className = 'name';

    tile.append(video, extra, placeholder, label);
    el.tiles.append(tile);
  }
  if (username != null || !tile.querySelector('.name').textContent) {
    const name = username != null && username !== '' ? String(username) : id;
    tile.querySelector('.name').textContent = name;
    tile.querySelector('.avatar').textContent = initials(name);
    tile.title = name;
  }
  roomChanged();
  return tile;
}

function removeTile(id) {
  const tile = tileOf(id);
  if (!tile) return;
  for (const v of tile.querySelectorAll('video')) v.srcObject = null;
  tile.remove();
  roomChanged();
}

function liveVideoTracks(stream) {
  return stream ? stream.getVideoTracks().filter((t) => t.readyState === 'live') : [];
}

/** Point the tile's <video> at the publisher's current MediaStream (or clear it). */
function attachStream(id, stream) {
  const tile = tileOf(id);
  if (!tile) return;
  const video = tile.querySelector('video.main');
  const extra = tile.querySelector('video.extra');
  const hasTracks = stream && stream.getTracks().length > 0;
  if (!hasTracks) {
    video.srcObject = null;
    extra.srcObject = null;
    extra.hidden = true;
    tile.classList.remove('has-extra');
    refreshTileVideo(tile);
    return;
  }
  for (const t of stream.getTracks()) watchTrack(t, id);
  if (video.srcObject !== stream) {
    video.srcObject = stream; // also plays the audio
    playVideo(video);
  } else if (video.paused) {
    playVideo(video);
  }
  // A <video> shows only the first video track of a stream; a second one (a
  // screen share) gets its own element, shown large with the camera inset.
  const vids = liveVideoTracks(stream);
  if (vids.length > 1) {
    const second = vids[1];
    const cur = extra.srcObject?.getVideoTracks?.()[0];
    if (cur !== second) {
      extra.srcObject = new MediaStream([second]);
      playVideo(extra);
    }
    extra.hidden = false;
    tile.classList.add('has-extra');
  } else {
    extra.srcObject = null;
    extra.hidden = true;
    tile.classList.remove('has-extra');
  }
  refreshTileVideo(tile);
}

function watchTrack(track, id) {
  if (watchedTracks.has(track)) return;
  watchedTracks.add(track);
  const update = () => {
    const tile = tileOf(id);
    if (tile) refreshTileVideo(tile);
  };
  track.addEventListener('mute', update);
  track.addEventListener('unmute', update);
  track.addEventListener('ended', update);
}

/** Placeholder while the participant sends no video (no track, or no frames). */
function refreshTileVideo(tile) {
  const stream = tile.querySelector('video.main').srcObject;
  const showing = liveVideoTracks(stream).some((t) => !t.muted);
  tile.dataset.video = showing ? 'on' : 'off';
}

function syncTiles() {
  if (!client) return;
  const ids = new Set();
  for (const [id, p] of client.participants) {
    ids.add(String(id));
    ensureTile(id, p?.username);
  }
  for (const [id, p] of client.publishers) {
    // Normally also a participant; a tile anyway if events raced.
    if (!ids.has(String(id))) {
      ids.add(String(id));
      ensureTile(id, p?.username);
    }
  }
  for (const tile of [...el.tiles.querySelectorAll('.tile')]) {
    if (!ids.has(tile.dataset.participantId)) removeTile(tile.dataset.participantId);
  }
  for (const id of ids) attachStream(id, client.remoteStreams.get(id) ?? client.remoteStreams.get(Number(id)));
}

function clearTiles() {
  for (const tile of [...el.tiles.querySelectorAll('.tile')]) removeTile(tile.dataset.participantId);
}

function roomChanged() {
  const n = el.tiles.querySelectorAll('.tile').length;
  el.emptyRoom.hidden = n > 0 || !session;
  layoutStage();
}

// ---------------------------------------------------------------------------
// Grid layout: the number of columns that gives the largest 16:9 tiles fitting
// the stage; below a minimum width, fewer columns and the stage scrolls.

const GAP = 8;
const narrow = matchMedia('(max-width: 760px)');
narrow.addEventListener('change', () => layoutStage());
function layoutStage() {
  if (el.roomView.hidden) return;
  const n = 1 + el.tiles.querySelectorAll('.tile').length;
  const cs = getComputedStyle(el.stage);
  const W = el.stage.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const H = el.stage.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
  if (W <= 0 || (H <= 0 && !narrow.matches)) return;
  if (narrow.matches) {
    // Phone: the stage grows with its content (up to a max height, then
    // scrolls); one column for up to two tiles, two columns beyond.
    const cols = n <= 2 ? 1 : 2;
    el.stage.style.setProperty('--cols', String(cols));
    el.stage.style.setProperty('--tile-w', `${Math.floor((W - GAP * (cols - 1)) / cols)}px`);
    return;
  }
  const ratio = 16 / 9;
  let best = { cols: 1, w: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((W - GAP * (cols - 1)) / cols, ((H - GAP * (rows - 1)) / rows) * ratio);
    if (w > best.w) best = { cols, w };
  }
  const minW = Math.min(180, W);
  if (best.w < minW) {
    const cols = Math.max(1, Math.floor((W + GAP) / (minW + GAP)));
    best = { cols, w: (W - GAP * (cols - 1)) / cols };
  }
  el.stage.style.setProperty('--cols', String(best.cols));
  el.stage.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
}
new ResizeObserver(() => layoutStage()).observe(el.stage);

// ---------------------------------------------------------------------------
// Local media

function cameraTrack() {
  return session?.localStream?.getVideoTracks()[0] ?? null;
}
function micTrack() {
  return session?.localStream?.getAudioTracks()[0] ?? null;
}

function updateSelfTile() {
  const name = session?.displayName || el.name.value.trim() || 'You';
  el.localName.textContent = `${name} (you)`;
  el.localAvatar.textContent = initials(name);
  const cam = cameraTrack();
  const camOn = !!cam && cam.readyState === 'live' && cam.enabled;
  el.selfTile.dataset.video = camOn ? 'on' : 'off';
  el.localNoVideoText.textContent = !session?.localStream
    ? (session?.viewer ? 'Viewer' : 'No camera')
    : cam ? 'Camera off' : 'Audio only';
  const screen = session?.screenTrack;
  el.selfTile.classList.toggle('has-extra', !!screen && camOn);
  el.selfTile.classList.toggle('sharing', !!screen);
}

function setToggle(btn, on, onText, offText) {
  btn.setAttribute('aria-pressed', String(on));
  btn.dataset.on = String(on);
  btn.querySelector('.label').textContent = on ? onText : offText;
}

function updateMediaButtons() {
  const joined = !!session && !!client && session.joined;
  const mic = micTrack();
  const cam = cameraTrack();
  const micOn = !!mic && mic.enabled && mic.readyState === 'live';
  const camOn = !!cam && cam.enabled && cam.readyState === 'live';
  setToggle(el.mic, micOn, 'Mic on', 'Mic off');
  setToggle(el.cam, camOn, 'Camera on', 'Camera off');
  el.mic.title = mic ? (micOn ? 'Mute microphone' : 'Unmute microphone') : 'No microphone';
  el.cam.title = cam ? (camOn ? 'Turn camera off' : 'Turn camera on') : 'No camera';
  el.mic.disabled = !joined || !mic || !session.published;
  el.cam.disabled = !joined || !cam || !session.published;
  const sharing = !!session?.screenTrack;
  setToggle(el.screen, sharing, 'Stop sharing', 'Share screen');
  el.screen.setAttribute('aria-label', sharing ? 'Stop sharing the screen' : 'Share screen');
  const canShare = !!navigator.mediaDevices?.getDisplayMedia;
  el.screen.title = canShare ? '' : 'Screen sharing is not supported by this browser';
  el.screen.disabled = !joined || !canShare || !!session?.publishForbidden || !!session?.screenBusy;
  updateSelfTile();
}

/** Why a device could not be used, in words. */
function deviceProblem(err, device) {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `${device[0].toUpperCase()}${device.slice(1)} access was denied`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No ${device} found`;
    case 'NotReadableError':
    case 'AbortError':
      return `The ${device} is in use by another application or could not be started`;
    default:
      return `The ${device} could not be used (${err?.name || 'error'}: ${err?.message || err})`;
  }
}

async function permissionState(name) {
  try {
    return (await navigator.permissions.query({ name })).state;
  } catch {
    return 'unknown'; // Firefox/Safari do not know these names
  }
}

/**
 * getUserMedia with fallbacks: audio+video first; if that fails, whichever
 * single device works (after a denial only when the Permissions API says the
 * other device is not denied too, so that no browser prompts three times).
 * Resolves with {stream|null, message|null}; never rejects.
 */
async function getLocalMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return { stream: null, message: 'Camera and microphone need a secure page (https or localhost) — you joined as a viewer.' };
  }
  const gum = (c) => navigator.mediaDevices.getUserMedia(c);
  const video = { width: 640, height: 360 };
  let err;
  try {
    return { stream: await gum({ audio: true, video }), message: null };
  } catch (e) { err = e; }

  let tryAudio = true;
  let tryVideo = true;
  if (err?.name === 'NotAllowedError' || err?.name === 'SecurityError') {
    const [cam, mic] = await Promise.all([permissionState('camera'), permissionState('microphone')]);
    tryAudio = cam === 'denied' && mic !== 'denied' && mic !== 'unknown';
    tryVideo = mic === 'denied' && cam !== 'denied' && cam !== 'unknown';
    if (!tryAudio && !tryVideo) {
      return { stream: null, message: 'Camera/microphone access was denied — you joined as a viewer.' };
    }
  }
  let audioErr = null;
  let videoErr = null;
  if (tryAudio) {
    try {
      const stream = await gum({ audio: true });
      return { stream, message: `${deviceProblem(err, 'camera')} — you joined with audio only.` };
    } catch (e) { audioErr = e; }
  }
  if (tryVideo) {
    try {
      const stream = await gum({ video });
      return { stream, message: `${deviceProblem(audioErr || err, 'microphone')} — you joined with video only.` };
    } catch (e) { videoErr = e; }
  }
  const names = [err, audioErr, videoErr].filter(Boolean).map((e) => e.name);
  if (names.every((n) => n === 'NotFoundError')) {
    return { stream: null, message: 'No camera or microphone found — you joined as a viewer.' };
  }
  if (names.includes('NotAllowedError')) {
    return { stream: null, message: 'Camera/microphone access was denied — you joined as a viewer.' };
  }
  return { stream: null, message: `${deviceProblem(videoErr || err, 'camera or microphone')} — you joined as a viewer.` };
}

async function startLocalMedia(s) {
  const { stream, message } = await getLocalMedia();
  if (session !== s) { // left (or rejoined) while the prompt was open
    stream?.getTracks().forEach((t) => t.stop());
    return;
  }
  if (message) showError(message, 'media');
  if (!stream) {
    s.viewer = true;
    updateMediaButtons();
    return;
  }
  s.localStream = stream;
  el.localVideo.srcObject = stream.getVideoTracks().length ? new MediaStream(stream.getVideoTracks()) : null;
  if (el.localVideo.srcObject) playVideo(el.localVideo);
  for (const t of stream.getTracks()) {
    t.addEventListener('ended', () => { if (session === s) updateMediaButtons(); });
  }
  updateMediaButtons();
  try {
    await client.publish(stream);
    if (session !== s) return;
    s.published = true;
  } catch (err) {
    if (session !== s) return;
    const stillPublished = stream.getTracks().some((t) => client.localTracks?.includes(t));
    if (stillPublished) {
      // e.g. the connection dropped mid-negotiation: the library re-publishes
      // its local tracks after reconnecting.
      s.published = true;
    } else {
      if (err?.code === 'forbidden') s.publishForbidden = true;
      stream.getTracks().forEach((t) => t.stop());
      s.localStream = null;
      s.viewer = true;
      el.localVideo.srcObject = null;
      showError(err?.code === 'forbidden'
        ? `The server does not allow you to publish here (forbidden): ${err.message} — you are a viewer.`
        : `Could not publish your camera/microphone: ${describeError(err, s.room)}`, 'media');
    }
  }
  updateMediaButtons();
}

function stopLocalMedia(s) {
  s.localStream?.getTracks().forEach((t) => t.stop());
  s.localStream = null;
  s.screenTrack?.stop();
  s.screenTrack = null;
  el.localVideo.srcObject = null;
  el.localScreen.srcObject = null;
  el.localScreen.hidden = true;
}

// Mic / camera toggles: track.enabled through the library (keeps sending
// silence/black frames, so no renegotiation).
el.mic.addEventListener('click', () => {
  const t = micTrack();
  if (!client || !t) return;
  const want = !t.enabled;
  client.setTrackEnabled('audio', want);
  if (t.enabled !== want) t.enabled = want; // in case the library holds other track objects
  updateMediaButtons();
});

el.cam.addEventListener('click', () => {
  const t = cameraTrack();
  if (!client || !t) return;
  const want = !t.enabled;
  client.setTrackEnabled('video', want);
  if (t.enabled !== want) t.enabled = want; // in case the library holds other track objects
  // setTrackEnabled('video') may also touch the screen track: keep it on.
  if (session?.screenTrack) session.screenTrack.enabled = true;
  updateMediaButtons();
});

// Screen share: an extra video track on the same publish connection.
el.screen.addEventListener('click', () => {
  if (!session) return;
  if (session.screenTrack) stopScreenShare(session);
  else startScreenShare(session);
});

async function startScreenShare(s) {
  s.screenBusy = true;
  updateMediaButtons();
  let track = null;
  try {
    const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    track = display.getVideoTracks()[0];
    display.getAudioTracks().forEach((t) => t.stop());
    if (!track) throw new Error('no video track');
    if (session !== s) { track.stop(); return; }
    track.contentHint = 'detail';
    s.screenTrack = track;
    track.addEventListener('ended', () => { if (s.screenTrack === track) stopScreenShare(s); }, { once: true });
    el.localScreen.srcObject = new MediaStream([track]);
    el.localScreen.hidden = false;
    playVideo(el.localScreen);
    updateMediaButtons();
    await client.publish([track]);
  } catch (err) {
    if (session === s && err?.name !== 'NotAllowedError' && err?.name !== 'AbortError') {
      showError(err?.name && !err.code
        ? `Screen sharing failed (${err.name}): ${err.message}`
        : `Screen sharing failed: ${describeError(err, s.room)}`, 'media');
    }
    // NotAllowedError: the user cancelled the picker; nothing to say.
    if (track && s.screenTrack === track) {
      s.screenTrack = null;
      el.localScreen.srcObject = null;
      el.localScreen.hidden = true;
    }
    track?.stop();
  } finally {
    s.screenBusy = false;
    if (session === s) updateMediaButtons();
  }
}

async function stopScreenShare(s) {
  const track = s.screenTrack;
  if (!track) return;
  s.screenTrack = null;
  s.screenBusy = true;
  el.localScreen.srcObject = null;
  el.localScreen.hidden = true;
  updateMediaButtons();
  try {
    if (client && session === s) await client.unpublishTrack(track);
  } catch (err) {
    if (session === s && client?.state === 'connected') {
      showError(`Could not stop sharing cleanly: ${describeError(err, s.room)}`, 'media');
    }
  } finally {
    track.stop();
    s.screenBusy = false;
    if (session === s) updateMediaButtons();
  }
}

// ---------------------------------------------------------------------------
// Chat

const seenChat = new Set();

function addChat(msg) {
  const key = `${msg.participantId}|${msg.ts}|${msg.text}`;
  if (seenChat.has(key)) return;
  seenChat.add(key);
  const self = msg.self ?? (client && String(msg.participantId) === String(client.participantId));
  const nearBottom = el.chatLog.scrollHeight - el.chatLog.scrollTop - el.chatLog.clientHeight < 40;

  const li = document.createElement('li');
  li.className = self ? 'chat-msg self' : 'chat-msg';
  li.dataset.participantId = String(msg.participantId ?? '');
  const meta = document.createElement('div');
  meta.className = 'chat-meta';
  const name = document.createElement('span');
  name.className = 'chat-name';
  name.textContent = msg.username || String(msg.participantId ?? '?');
  const time = document.createElement('time');
  time.className = 'chat-time';
  const date = new Date(Number.isFinite(msg.ts) ? msg.ts : Date.now());
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  meta.append(name, time);
  const text = document.createElement('div');
  text.className = 'chat-text';
  text.textContent = String(msg.text ?? '');
  li.append(meta, text);
  el.chatLog.append(li);
  if (nearBottom || self) el.chatLog.scrollTop = el.chatLog.scrollHeight;
}

el.chatForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = el.chatInput.value;
  if (!client || !session || !text.trim()) return;
  const c = client;
  el.chatInput.value = '';
  try {
    const echo = await c.sendChat(text);
    if (echo && typeof echo === 'object' && echo.text != null) addChat({ ...echo, self: true });
  } catch (err) {
    if (c !== client) return;
    if (!el.chatInput.value) el.chatInput.value = text;
    showError(`Message not sent: ${describeError(err, session?.room)}`, 'chat');
  }
});

// Enter sends (the input is in a form, so Enter submits already); keep the
// explicit handler for IME composition safety.
el.chatInput.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && ev.isComposing) ev.preventDefault();
});

// ---------------------------------------------------------------------------
// Join / leave

function readUrlParams() {
  const p = new URLSearchParams(location.search);
  return {
    room: p.get('room'),
    name: p.get('name'),
    token: p.get('token'),
    autojoin: p.get('autojoin') === '1' || p.get('autojoin') === 'true',
  };
}

/**
 * Join a room. Resolves with true once connected and local media is
 * published (or the user is a viewer), false if joining failed (the reason
 * is shown in #error). Never rejects.
 */
async function join(opts = {}) {
  if (joining) return false;
  if (opts.name != null) el.name.value = String(opts.name);
  if (opts.room != null) el.room.value = String(opts.room);
  if (opts.token != null) {
    el.token.value = String(opts.token);
    if (opts.token) tokenRowVisible(true);
  }
  if (session) await leave();

  const name = el.name.value.trim();
  const room = el.room.value.trim();
  const explicitToken = el.token.value.trim();
  if (!room) {
    showError('Enter a room name.');
    el.room.focus();
    return false;
  }
  if (name) storageSet(localStorage, NAME_KEY, name);

  joining = true;
  el.join.disabled = true;
  el.join.textContent = 'Joining…';
  clearError();

  let c = null;
  const s = {
    id: ++sessionSeq, room, displayName: name, abort: new AbortController(),
    leaving: false, joined: false, localStream: null, screenTrack: null,
    published: false, viewer: false, publishForbidden: false, screenBusy: false,
  };
  try {
    // The first token is fetched up front so that a missing dev mode is
    // reported clearly; every reconnect then asks for a fresh one (a dev-mode
    // server makes a new secret when it restarts).
    let first = explicitToken || await fetchDevToken(name, room);
    const token = async () => {
      if (explicitToken) return explicitToken;
      if (first) { const t = first; first = null; return t; }
      return fetchDevToken(name, room);
    };
    // `?debug=1` logs the client's protocol steps to the console.
    const debug = new URLSearchParams(location.search).get('debug') === '1';
    c = new SfuClient({ url: wsUrls(), token, room, logger: debug ? console : undefined });
    client = c;
    session = s;
    window.sfuApp.client = c;
    wireClient(c, s);
    setConnState(c.state);
    await c.connect();
    if (session !== s) return false;
    s.joined = true;
    s.displayName = c.username || name;
    joining = false;
    el.chatLog.replaceChildren();
    seenChat.clear();
    showRoomView(room);
    setControlsEnabled(true);
    syncTiles();
    roomChanged();
    updateSelfTile();
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    url.searchParams.delete('autojoin');
    history.replaceState(null, '', url);
    await startLocalMedia(s);
    return session === s;
  } catch (err) {
    if (err instanceof AppError && err.code === 'no-dev-token') {
      tokenRowVisible(true);
      el.token.focus();
    }
    if (err?.code === 'unauthorized') tokenRowVisible(true);
    const message = c ? await describeConnectError(err, room) : describeError(err, room);
    if (session === s || !c) {
      await teardown(s, c);
      showError(message);
    }
    return false;
  } finally {
    if (joining && (session === s || session === null)) joining = false;
    if (!s.joined) {
      el.join.disabled = false;
      el.join.textContent = 'Join';
    }
  }
}

function wireClient(c, s) {
  const on = (type, fn) => c.addEventListener(type, (ev) => {
    if (session !== s) return;
    try { fn(ev.detail ?? {}); } catch (e) { console.error(`demo: ${type} handler`, e); }
  }, { signal: s.abort.signal });

  on('state', ({ state }) => {
    setConnState(state ?? c.state);
    if ((state ?? c.state) === 'closed' && s.joined && !s.leaving) {
      // Closed by the server or a fatal error (unauthorized, replaced, …).
      const shown = !el.errorBanner.hidden && el.errorBanner.dataset.kind === 'fatal';
      const msg = shown ? null : 'Disconnected from the room.';
      teardown(s, c).then(() => { if (msg && el.errorBanner.dataset.kind !== 'fatal') showError(msg, 'fatal'); });
    }
  });
  on('joined', () => { if (s.joined) syncTiles(); });
  on('participant-joined', ({ participantId, username }) => ensureTile(participantId, username));
  on('participant-left', ({ participantId }) => removeTile(participantId));
  on('publisher', ({ publisherId, username }) => {
    const tile = tileOf(publisherId);
    if (!tile || (username && tile.querySelector('.name').textContent !== username)) ensureTile(publisherId, username);
  });
  on('publisher-left', ({ publisherId }) => attachStream(publisherId, null));
  on('track', ({ publisherId, stream }) => {
    const tile = tileOf(publisherId) || ensureTile(publisherId,
      c.participants.get(publisherId)?.username ?? c.publishers.get(publisherId)?.username);
    attachStream(tile.dataset.participantId, c.remoteStreams.get(publisherId) ?? stream);
  });
  on('track-removed', ({ publisherId }) => attachStream(publisherId, c.remoteStreams.get(publisherId) ?? null));
  on('chat', (msg) => addChat(msg));
  on('reconnecting', ({ attempt, url }) => {
    const to = wsUrls().length > 1 && url ? ` to ${url}` : '';
    showError(`Connection lost — reconnecting${to} (attempt ${attempt ?? '?'})…`, 'reconnect');
  });
  on('reconnected', () => {
    clearError('reconnect');
    syncTiles();
    updateMediaButtons();
  });
  on('error', (e) => {
    if (!s.joined) return; // connect() rejects with it; reported there
    if (e.fatal) {
      showError(describeError(e, s.room), 'fatal');
      if (e.code === 'unauthorized') tokenRowVisible(true);
      return;
    }
    // The library recovers from a full subscribe connection by itself.
    if (e.code === 'room-full' && /subscribe/.test(e.requestType ?? '')) return;
    // Chat and publish failures are reported where the promise rejects.
    if (e.requestType === 'chat' || e.requestType === 'publish-offer') return;
    showError(describeError(e, s.room), 'warning');
  });
}

/** Tear the UI down after a session ended (leave, failed join, fatal close). */
async function teardown(s, c) {
  if (!s) return;
  s.leaving = true;
  if (c) {
    try { await c.leave(); } catch { /* already closed */ }
    setConnState(c.state || 'closed');
  }
  s.abort.abort();
  stopLocalMedia(s);
  if (session === s || session === null) {
    session = null;
    client = null;
    window.sfuApp.client = null;
    joining = false;
    clearTiles();
    clearError('reconnect');
    setAutoplayBlocked(false);
    setControlsEnabled(false);
    showJoinView();
  }
}

/** Leave the room and go back to the form. */
async function leave() {
  const s = session;
  const c = client;
  if (!s) return;
  el.leave.disabled = true;
  await teardown(s, c);
}

el.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  join();
});
el.leave.addEventListener('click', () => leave());

el.copyLink.addEventListener('click', async () => {
  const url = new URL(location.origin + location.pathname);
  if (session) url.searchParams.set('room', session.room);
  const urls = new URLSearchParams(location.search).get('urls');
  if (urls) url.searchParams.set('urls', urls);
  try {
    await navigator.clipboard.writeText(url.href);
    el.copyLink.textContent = 'Link copied';
  } catch {
    el.copyLink.textContent = url.href;
  }
  setTimeout(() => { el.copyLink.textContent = 'Copy invite link'; }, 2500);
});

window.addEventListener('pagehide', () => {
  if (client && session) {
    session.leaving = true;
    client.leave().catch(() => {});
  }
});

// ---------------------------------------------------------------------------
// Start

window.sfuApp = {
  client: null,
  join: (opts) => join(opts),
  leave: () => leave(),
};

setConnState('idle');
setControlsEnabled(false);
{
  const p = readUrlParams();
  el.name.value = p.name ?? storageGet(localStorage, NAME_KEY) ?? '';
  el.room.value = p.room ?? 'demo';
  if (p.token) {
    el.token.value = p.token;
    tokenRowVisible(true);
  } else {
    tokenRowVisible(false);
  }
  if (p.autojoin) join();
  else (el.name.value ? el.room : el.name).focus();
}
