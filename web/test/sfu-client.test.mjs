// Unit tests of SfuClient's message handling (web/sfu-client.js) with tiny
// fakes of WebSocket, RTCPeerConnection and MediaStream (only here: the real
// thing is tested in Chromium).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SfuClient } from '../sfu-client.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn() returns something truthy (or fails after timeoutMs). */
async function waitFor(fn, what = 'condition', timeoutMs = 2000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

// ------------------------------------------------------------------ fakes

class FakeMediaStream {
  constructor() {
    this.tracks = [];
  }
  addTrack(t) {
    if (!this.tracks.includes(t)) this.tracks.push(t);
  }
  removeTrack(t) {
    this.tracks = this.tracks.filter((x) => x !== t);
  }
  getTracks() {
    return [...this.tracks];
  }
}

let trackSeq = 0;
function fakeTrack(kind, id = `local-${kind}-${++trackSeq}`) {
  return { id, kind, enabled: true, readyState: 'live' };
}

/** m-sections of an SDP: [{mid, kind, trackId}] (tiny parser for the fake). */
function sections(sdp) {
  const out = [];
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) out.push({ kind: line.slice(2).split(' ')[0], mid: null, trackId: null });
    else if (line.startsWith('a=mid:') && out.length) out[out.length - 1].mid = line.slice(6);
    else if (line.startsWith('a=msid:') && out.length) out[out.length - 1].trackId = line.slice(7).split(' ')[1];
  }
  return out;
}

/** Builds an SDP offer from [{mid, kind, msid?}]. */
function sdpOf(list) {
  const lines = ['v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0'];
  for (const s of list) {
    lines.push(s.kind === 'application' ? `m=application 9 UDP/DTLS/SCTP webrtc-datachannel` : `m=${s.kind} 9 UDP/TLS/RTP/SAVPF 96`);
    lines.push(`a=mid:${s.mid}`);
    if (s.msid) lines.push(`a=msid:${s.msid}`);
  }
  return lines.join('\r\n') + '\r\n';
}

function makeEnv() {
  const env = { sockets: [], pcs: [], srdDelays: [] };
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      env.sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.readyState = 3;
      this.closedWith = { code, reason };
    }
    // test side
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(msg) {
      this.onmessage?.({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
    }
    serverClose(code) {
      this.readyState = 3;
      this.onclose?.({ code, reason: '' });
    }
    ofType(type) {
      return this.sent.filter((m) => m.type === type);
    }
    last(type) {
      return this.ofType(type).at(-1);
    }
  }
  class FakePeerConnection {
    constructor(config) {
      this.config = config;
      this.localDescription = null;
      this.remoteDescription = null;
      this.transceivers = [];
      this.addedCandidates = [];
      this.dataChannels = [];
      this.log = [];
      this.closed = false;
      this.connectionState = 'new';
      this.stats = new Map();
      this.rx = 0;
      env.pcs.push(this);
    }
    createDataChannel(label) {
      this.dataChannels.push(label);
      return { label };
    }
    addTransceiver(track, init) {
      const tr = { mid: null, direction: init?.direction, sender: { track }, receiver: { track: null }, streams: init?.streams };
      this.transceivers.push(tr);
      return tr;
    }
    removeTrack(sender) {
      const tr = this.transceivers.find((t) => t.sender === sender);
      if (tr) {
        tr.sender.track = null;
        tr.direction = 'inactive';
      }
    }
    getTransceivers() {
      return this.transceivers;
    }
    async createOffer() {
      const list = [];
      if (this.dataChannels.length) list.push({ mid: 'dc', kind: 'application' });
      this.transceivers.forEach((tr, i) => {
        if (tr.mid === null) tr.mid = String(i);
        const t = tr.sender.track;
        list.push({ mid: tr.mid, kind: t?.kind ?? 'audio', msid: t && tr.direction !== 'inactive' ? `stream ${t.id}` : undefined });
      });
      return { type: 'offer', sdp: sdpOf(list) };
    }
    async createAnswer() {
      return { type: 'answer', sdp: `v=0\r\na=answer-to:${this.remoteDescription?.sdp.length}\r\n` };
    }
    async setLocalDescription(d) {
      await sleep(0);
      this.localDescription = d;
      this.log.push(`sld:${d.type}`);
    }
    async setRemoteDescription(d) {
      const delay = env.srdDelays.shift() ?? 0;
      await sleep(delay);
      if (this.closed) throw new Error('closed');
      this.remoteDescription = d;
      this.log.push(`srd:${d.type}:${d.sdp.length}`);
      if (d.type === 'offer') {
        for (const s of sections(d.sdp)) {
          if (s.kind === 'application' || this.transceivers.some((t) => t.mid === s.mid)) continue;
          const track = { id: `rx-${++this.rx}`, kind: s.kind };
          const tr = { mid: s.mid, direction: 'recvonly', sender: { track: null }, receiver: { track } };
          this.transceivers.push(tr);
          this.ontrack?.({ track, transceiver: tr, streams: [] });
        }
      }
    }
    async addIceCandidate(c) {
      if (!this.remoteDescription) throw new Error('no remote description');
      this.addedCandidates.push(c);
    }
    async getStats() {
      return this.stats;
    }
    close() {
      this.closed = true;
    }
  }
  env.WebSocket = FakeWebSocket;
  env.RTCPeerConnection = FakePeerConnection;
  return env;
}

function makeClient(env, opts = {}) {
  const logs = [];
  const logger = {
    debug: () => {},
    info: () => {},
    warn: (...a) => logs.push(['warn', ...a]),
    error: (...a) => logs.push(['error', ...a]),
  };
  const client = new SfuClient({
    url: 'ws://sfu.test/ws',
    token: 'tok-1',
    room: 'r1',
    logger,
    reconnect: { minDelayMs: 1, maxDelayMs: 5 },
    requestTimeoutMs: 3000,
    WebSocketImpl: env.WebSocket,
    RTCPeerConnectionImpl: env.RTCPeerConnection,
    MediaStreamImpl: FakeMediaStream,
    ...opts,
  });
  const events = [];
  for (const type of [
    'state',
    'joined',
    'participant-joined',
    'participant-left',
    'publisher',
    'publisher-left',
    'track',
    'track-removed',
    'chat',
    'error',
    'reconnecting',
    'reconnected',
  ]) {
    client.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
  }
  return { client, events, logs };
}

/** Plays the server side of auth + join + subscribe-prepare on a socket. */
async function serveHandshake(ws, { participants = [], publishers = [], token = 'tok-1', me = 'me', authExtra = {} } = {}) {
  ws.open();
  const auth = await waitFor(() => ws.last('auth'), 'auth');
  assert.equal(ws.sent[0].type, 'auth', 'auth is the first message');
  assert.equal(auth.token, token);
  ws.receive({ type: 'auth-ok', participantId: me, username: 'Me', protocol: 1, nodeId: 'n1', requestId: auth.requestId, ...authExtra });
  const join = await waitFor(() => ws.last('join'), 'join');
  assert.equal(join.roomName, 'r1');
  ws.receive({ type: 'joined', roomName: 'r1', participantId: me, participants, publishers, requestId: join.requestId });
  const prep = await waitFor(() => ws.last('subscribe-prepare'), 'subscribe-prepare');
  ws.receive({ type: 'subscribe-prepare-answer', roomName: 'r1', answer: 'v=0\r\na=prepared\r\n', requestId: prep.requestId });
}

async function connected(env, { participants, publishers, authExtra, ...opts } = {}) {
  const c = makeClient(env, opts);
  const p = c.client.connect();
  const ws = await waitFor(() => env.sockets[0], 'socket');
  await serveHandshake(ws, { participants, publishers, authExtra });
  const joined = await p;
  return { ...c, ws, joined };
}

const ANN = { participantId: '7', username: 'ann' };
const BOB = { participantId: '8', username: 'bob' };
const ANN_PUB = {
  publisherId: '7',
  username: 'ann',
  tracks: [
    { trackId: 'ann-a', kind: 'audio' },
    { trackId: 'ann-v', kind: 'video' },
  ],
};
const BOB_PUB = { publisherId: '8', username: 'bob', tracks: [{ trackId: 'bob-v', kind: 'video' }] };

// ------------------------------------------------------------------ tests

test('auth + join + subscribe-prepare resolves connect()', async () => {
  const env = makeEnv();
  const { client, events, ws, joined } = await connected(env, { participants: [ANN, { participantId: 'me', username: 'Me' }] });
  assert.equal(ws.url, 'ws://sfu.test/ws');
  assert.ok(!ws.url.includes('tok'), 'token never in the URL');
  assert.equal(joined.type, 'joined');
  assert.equal(client.state, 'connected');
  assert.equal(client.participantId, 'me');
  assert.equal(client.username, 'Me');
  assert.deepEqual([...client.participants.keys()], ['7'], 'self is not listed');
  assert.deepEqual(
    events.filter((e) => e.type === 'state').map((e) => e.detail.state),
    ['connecting', 'connected'],
  );
  assert.equal(events.filter((e) => e.type === 'joined').length, 1);
  const subPc = client.subscribePc;
  assert.deepEqual(subPc.dataChannels, ['rheo-sfu'], 'prepared with one data channel');
  assert.equal(subPc.remoteDescription.type, 'answer');
  assert.equal(client.publishPc, null);
  await client.leave();
});

test('ICE servers of auth-ok (TURN) go to every PeerConnection; ice-servers replaces them', async () => {
  const env = makeEnv();
  const own = { urls: 'stun:own.test' };
  const turn = { urls: ['turn:t.test:3478?transport=udp'], username: '1700000000:me', credential: 'c1' };
  const { client } = await connected(env, {
    iceServers: [own],
    authExtra: { iceServers: [turn, { urls: 42 }, null], iceServersExpireAt: 1700000000 },
  });
  const sub = client.subscribePc;
  assert.deepEqual(sub.config.iceServers, [own, turn], 'app servers first, malformed entries dropped');
  const fresh = { ...turn, username: '1700086400:me', credential: 'c2' };
  const updates = [];
  sub.getConfiguration = () => ({ ...sub.config });
  sub.setConfiguration = (c) => updates.push(c);
  const ws = env.sockets[0];
  ws.receive({ type: 'ice-servers', iceServers: [fresh], iceServersExpireAt: 1700086400 });
  assert.deepEqual(updates.at(-1).iceServers, [own, fresh], 'open PeerConnections get them');
  assert.deepEqual(client._iceServers(), [own, fresh], 'new PeerConnections get them');
  await client.leave();
});

test('subscribe-prepare refused: continues with a fresh subscribe PC', async () => {
  const env = makeEnv();
  const { client } = makeClient(env);
  const p = client.connect();
  const ws = await waitFor(() => env.sockets[0]);
  ws.open();
  const auth = await waitFor(() => ws.last('auth'));
  ws.receive({ type: 'auth-ok', participantId: 'me', username: 'Me', protocol: 1, nodeId: 'n', requestId: auth.requestId });
  const join = await waitFor(() => ws.last('join'));
  ws.receive({ type: 'joined', roomName: 'r1', participantId: 'me', participants: [], publishers: [], requestId: join.requestId });
  const prep = await waitFor(() => ws.last('subscribe-prepare'));
  ws.receive({ type: 'error', code: 'forbidden', message: 'no subscribe', requestType: 'subscribe-prepare', roomName: 'r1', requestId: prep.requestId });
  await p;
  assert.equal(client.state, 'connected');
  assert.equal(env.pcs.length, 2);
  assert.ok(env.pcs[0].closed);
  assert.equal(client.subscribePc, env.pcs[1]);
  assert.deepEqual(env.pcs[1].dataChannels, []);
  await client.leave();
});

test('unauthorized auth rejects connect() and closes', async () => {
  const env = makeEnv();
  const { client } = makeClient(env);
  const p = client.connect();
  const ws = await waitFor(() => env.sockets[0]);
  ws.open();
  const auth = await waitFor(() => ws.last('auth'));
  ws.receive({ type: 'error', code: 'unauthorized', message: 'expired', requestType: 'auth', requestId: auth.requestId });
  await assert.rejects(p, (e) => e.code === 'unauthorized');
  assert.equal(client.state, 'closed');
  assert.equal(env.sockets.length, 1);
});

test('a dropped socket during connect() rejects it without reconnecting', async () => {
  const env = makeEnv();
  const { client } = makeClient(env);
  const p = client.connect();
  const ws = await waitFor(() => env.sockets[0]);
  ws.open();
  await waitFor(() => ws.last('auth'));
  ws.serverClose(1006);
  await assert.rejects(p, (e) => e.code === 'connection-lost');
  assert.equal(client.state, 'closed');
  await sleep(20);
  assert.equal(env.sockets.length, 1);
});

test('token function is called on every connect; no token in URL', async () => {
  const env = makeEnv();
  let calls = 0;
  const { client } = makeClient(env, {
    token: async () => {
      calls++;
      return 'tok-1';
    },
  });
  const p = client.connect();
  await serveHandshake(await waitFor(() => env.sockets[0]));
  await p;
  assert.equal(calls, 1);
  env.sockets[0].receive({ type: 'reconnect', reason: 'draining', retryAfterMs: 1 });
  await serveHandshake(await waitFor(() => env.sockets[1]));
  await waitFor(() => client.state === 'connected');
  assert.equal(calls, 2);
  await client.leave();
});

test('subscribe-offers back to back are answered strictly in order with their publisherId', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { participants: [ANN, BOB], publishers: [ANN_PUB, BOB_PUB] });
  const reqs = await waitFor(() => (ws.ofType('subscribe-request').length === 2 ? ws.ofType('subscribe-request') : null), 'requests');
  const reqAnn = reqs.find((r) => r.publisherId === '7');
  const reqBob = reqs.find((r) => r.publisherId === '8');
  assert.ok(reqAnn.requestId && reqBob.requestId);
  const sub = client.subscribePc;
  // First setRemoteDescription is slow, the later ones fast: order must hold anyway.
  env.srdDelays.push(30, 0, 0);
  const o1 = sdpOf([
    { mid: 'dc', kind: 'application' },
    { mid: '1', kind: 'audio', msid: 'ann-s ann-a' },
  ]);
  const o2 = sdpOf([
    { mid: 'dc', kind: 'application' },
    { mid: '1', kind: 'audio', msid: 'ann-s ann-a' },
    { mid: '2', kind: 'video', msid: 'ann-s ann-v' },
  ]);
  const o3 = sdpOf([
    { mid: 'dc', kind: 'application' },
    { mid: '1', kind: 'audio', msid: 'ann-s ann-a' },
    { mid: '2', kind: 'video', msid: 'ann-s ann-v' },
    { mid: '3', kind: 'video', msid: 'bob-s bob-v' },
  ]);
  ws.receive({ type: 'subscribe-offer', roomName: 'r1', publisherId: '7', offer: o1, tracks: [ANN_PUB.tracks[0]], requestId: reqAnn.requestId });
  ws.receive({ type: 'subscribe-offer', roomName: 'r1', publisherId: '7', offer: o2, tracks: ANN_PUB.tracks });
  ws.receive({ type: 'subscribe-offer', roomName: 'r1', publisherId: '8', offer: o3, tracks: BOB_PUB.tracks, requestId: reqBob.requestId });
  const answers = await waitFor(() => (ws.ofType('subscribe-answer').length === 3 ? ws.ofType('subscribe-answer') : null), 'answers');
  assert.deepEqual(
    answers.map((a) => [a.publisherId, a.roomName]),
    [
      ['7', 'r1'],
      ['7', 'r1'],
      ['8', 'r1'],
    ],
  );
  assert.deepEqual(
    answers.map((a) => a.answer),
    [o1, o2, o3].map((o) => `v=0\r\na=answer-to:${o.length}\r\n`),
    'each answer answers its own offer',
  );
  assert.deepEqual(
    sub.log.slice(2), // [0..1] are the prepare offer and its answer
    [`srd:offer:${o1.length}`, 'sld:answer', `srd:offer:${o2.length}`, 'sld:answer', `srd:offer:${o3.length}`, 'sld:answer'],
  );
  const tracks = events.filter((e) => e.type === 'track').map((e) => [e.detail.publisherId, e.detail.trackId, e.detail.kind]);
  assert.deepEqual(tracks, [
    ['7', 'ann-a', 'audio'],
    ['7', 'ann-v', 'video'],
    ['8', 'bob-v', 'video'],
  ]);
  assert.equal(client.remoteStreams.get('7').getTracks().length, 2);
  assert.equal(client.remoteStreams.get('8').getTracks().length, 1);
  const annEvent = events.find((e) => e.type === 'track' && e.detail.publisherId === '7');
  assert.equal(annEvent.detail.stream, client.remoteStreams.get('7'));
  await client.leave();
});

test('probator track is ignored and subscribe() resolves after the first offer is answered', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB], autoSubscribe: false });
  await sleep(10);
  assert.equal(ws.ofType('subscribe-request').length, 0, 'no auto subscription');
  let resolved = false;
  const p = client.subscribe('7').then(() => (resolved = true));
  const req = await waitFor(() => ws.last('subscribe-request'));
  assert.equal(req.publisherId, '7');
  env.srdDelays.push(10);
  const offer = sdpOf([
    { mid: '0', kind: 'audio', msid: 'webrtc-rs probator' },
    { mid: '1', kind: 'audio', msid: 'ann-s ann-a' },
  ]);
  ws.receive({ type: 'subscribe-offer', roomName: 'r1', publisherId: '7', offer, tracks: [ANN_PUB.tracks[0]], requestId: req.requestId });
  await sleep(2);
  assert.equal(resolved, false, 'not before the answer was sent');
  await p;
  assert.equal(ws.ofType('subscribe-answer').length, 1);
  const tracks = events.filter((e) => e.type === 'track');
  assert.equal(tracks.length, 1);
  assert.equal(tracks[0].detail.trackId, 'ann-a');
  await client.leave();
});

test('subscribe() rejects on a server error with its requestId', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB], autoSubscribe: false });
  const p = client.subscribe('7');
  const req = await waitFor(() => ws.last('subscribe-request'));
  ws.receive({ type: 'error', code: 'forbidden', message: 'no', requestType: 'subscribe-request', roomName: 'r1', requestId: req.requestId });
  await assert.rejects(p, (e) => e.code === 'forbidden');
  assert.equal(client.state, 'connected');
  await client.leave();
});

test('remote candidates before the remote description are queued, then added', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB] });
  // Publish side.
  const cam = new FakeMediaStream();
  const mic = fakeTrack('audio');
  cam.addTrack(mic);
  const published = client.publish(cam);
  const offer = await waitFor(() => ws.last('publish-offer'));
  assert.match(offer.offer, new RegExp(`a=msid:stream ${mic.id}`));
  const pub = client.publishPc;
  const cand = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
  ws.receive({ type: 'publish-ice-candidate', roomName: 'r1', candidate: cand });
  ws.receive({ type: 'publish-ice-candidate', roomName: 'r1', candidate: null });
  await sleep(5);
  assert.equal(pub.addedCandidates.length, 0, 'queued while no remote description');
  ws.receive({ type: 'publish-answer', roomName: 'r1', answer: 'v=0\r\na=pub-answer\r\n', requestId: offer.requestId });
  await published;
  await waitFor(() => pub.addedCandidates.length === 1, 'flushed publish candidate');
  assert.deepEqual(pub.addedCandidates[0], cand);
  assert.deepEqual(client.localTracks, [mic]);
  // Subscribe side: a candidate that arrives while an offer is being applied waits for it.
  const sub = client.subscribePc;
  const req = await waitFor(() => ws.last('subscribe-request'));
  env.srdDelays.push(20);
  ws.receive({
    type: 'subscribe-offer',
    roomName: 'r1',
    publisherId: '7',
    offer: sdpOf([{ mid: '1', kind: 'audio', msid: 's ann-a' }]),
    tracks: [ANN_PUB.tracks[0]],
    requestId: req.requestId,
  });
  const subCand = { candidate: 'candidate:2 1 udp 1 10.0.0.2 6000 typ host', sdpMid: '1', sdpMLineIndex: 1 };
  ws.receive({ type: 'subscribe-ice-candidate', roomName: 'r1', candidate: subCand });
  await sleep(5);
  assert.equal(sub.addedCandidates.length, 0);
  await waitFor(() => sub.addedCandidates.length === 1, 'sub candidate added');
  assert.ok(sub.log.indexOf('sld:answer') >= 0);
  // Local candidates go out as RTCIceCandidateInit; null (end) is skipped.
  pub.onicecandidate({ candidate: { toJSON: () => ({ candidate: 'candidate:9 1 udp 1 1.1.1.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 }) } });
  pub.onicecandidate({ candidate: null });
  assert.equal(ws.ofType('publish-ice-candidate').length, 1);
  assert.equal(ws.last('publish-ice-candidate').candidate.sdpMid, '0');
  await client.leave();
});

test('remote candidate queue is capped', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env);
  const p = client.publish([fakeTrack('video')]);
  const offer = await waitFor(() => ws.last('publish-offer'));
  for (let i = 0; i < 250; i++) {
    ws.receive({ type: 'publish-ice-candidate', roomName: 'r1', candidate: { candidate: `candidate:${i} 1 udp 1 10.0.0.1 ${i} typ host`, sdpMLineIndex: 0 } });
  }
  ws.receive({ type: 'publish-answer', roomName: 'r1', answer: 'v=0\r\n', requestId: offer.requestId });
  await p;
  const pc = client.publishPc;
  await waitFor(() => pc.addedCandidates.length === 200);
  assert.match(pc.addedCandidates[0].candidate, /^candidate:50 /, 'oldest dropped');
  await client.leave();
});

test('publisher-left removes tracks, emits events; the ICE-restart offer that follows is answered', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB] });
  const req = await waitFor(() => ws.last('subscribe-request'));
  const o1 = sdpOf([
    { mid: '1', kind: 'audio', msid: 's ann-a' },
    { mid: '2', kind: 'video', msid: 's ann-v' },
  ]);
  ws.receive({ type: 'subscribe-offer', roomName: 'r1', publisherId: '7', offer: o1, tracks: ANN_PUB.tracks, requestId: req.requestId });
  await waitFor(() => client.remoteStreams.get('7')?.getTracks().length === 2, 'tracks');
  ws.receive({ type: 'publisher-left', roomName: 'r1', publisherId: '7' });
  assert.equal(client.remoteStreams.has('7'), false);
  assert.equal(client.publishers.has('7'), false);
  assert.ok(client.participants.has('7'), 'still a participant');
  const removed = events.filter((e) => e.type === 'track-removed').map((e) => e.detail);
  assert.deepEqual(removed, [
    { publisherId: '7', trackId: 'ann-a' },
    { publisherId: '7', trackId: 'ann-v' },
  ]);
  const lastTwo = events.slice(-3).map((e) => e.type);
  assert.deepEqual(lastTwo, ['track-removed', 'track-removed', 'publisher-left']);
  ws.receive({ type: 'subscribe-offer', roomName: 'r1', publisherId: '7', offer: o1 + 'a=ice-restart\r\n', tracks: [] });
  await waitFor(() => ws.ofType('subscribe-answer').length === 2);
  assert.equal(ws.last('subscribe-answer').publisherId, '7');
  assert.equal(events.filter((e) => e.type === 'track').length, 2, 'no new tracks');
  // The publisher comes back: auto-subscribed again.
  ws.receive({ type: 'new-publisher', roomName: 'r1', publisherId: '7', username: 'ann', tracks: ANN_PUB.tracks });
  await waitFor(() => ws.ofType('subscribe-request').length === 2, 'resubscribe');
  await client.leave();
});

test('new-publisher without a listed track removes that track (screen share stopped)', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB] });
  const req = await waitFor(() => ws.last('subscribe-request'));
  ws.receive({
    type: 'subscribe-offer',
    roomName: 'r1',
    publisherId: '7',
    offer: sdpOf([
      { mid: '1', kind: 'audio', msid: 's ann-a' },
      { mid: '2', kind: 'video', msid: 's ann-v' },
    ]),
    tracks: ANN_PUB.tracks,
    requestId: req.requestId,
  });
  await waitFor(() => client.remoteStreams.get('7')?.getTracks().length === 2);
  ws.receive({ type: 'new-publisher', roomName: 'r1', publisherId: '7', username: 'ann', tracks: [ANN_PUB.tracks[0]] });
  assert.equal(client.remoteStreams.get('7').getTracks().length, 1);
  assert.deepEqual(events.filter((e) => e.type === 'track-removed').map((e) => e.detail.trackId), ['ann-v']);
  assert.equal(ws.ofType('subscribe-request').length, 1, 'already subscribed: no new request');
  await client.leave();
});

test('participant events, chat echo resolves sendChat', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env);
  ws.receive({ type: 'participant-joined', roomName: 'r1', participantId: '9', username: 'cy' });
  assert.deepEqual(client.participants.get('9'), { participantId: '9', username: 'cy' });
  const p = client.sendChat('hello');
  const chat = await waitFor(() => ws.last('chat'));
  assert.equal(chat.text, 'hello');
  ws.receive({ type: 'chat', roomName: 'r1', participantId: '9', username: 'cy', text: 'hi', ts: 1 });
  ws.receive({ type: 'chat', roomName: 'r1', participantId: 'me', username: 'Me', text: 'hello', ts: 2, requestId: chat.requestId });
  const echo = await p;
  assert.equal(echo.ts, 2);
  const chats = events.filter((e) => e.type === 'chat').map((e) => [e.detail.text, e.detail.self]);
  assert.deepEqual(chats, [
    ['hi', false],
    ['hello', true],
  ]);
  ws.receive({ type: 'participant-left', roomName: 'r1', participantId: '9' });
  assert.equal(client.participants.has('9'), false);
  assert.deepEqual(
    events.filter((e) => e.type.startsWith('participant')).map((e) => e.type),
    ['participant-joined', 'participant-left'],
  );
  ws.receive({ type: 'chat', roomName: 'other-room', participantId: '1', username: 'x', text: 'not ours', ts: 3 });
  assert.equal(events.filter((e) => e.type === 'chat').length, 2);
  await assert.rejects(client.sendChat(''), (e) => e.code === 'bad-request');
  await client.leave();
});

test('malformed server messages are logged and ignored', async () => {
  const env = makeEnv();
  const { client, logs, ws, events } = await connected(env);
  ws.receive('not json at all');
  ws.receive({ type: 'subscribe-offer', roomName: 'r1' });
  ws.receive({ nope: 1 });
  ws.receive({ type: 'joined', roomName: 'r1' });
  ws.receive({ type: 'publish-ice-candidate', roomName: 'r1', candidate: { candidate: 5 } });
  ws.receive({ type: 'something-new', roomName: 'r1' });
  assert.equal(client.state, 'connected');
  assert.ok(logs.filter((l) => l[0] === 'warn').length >= 4);
  assert.equal(events.filter((e) => e.type === 'error').length, 0);
  // Unsolicited server errors become `error` events.
  ws.receive({ type: 'error', code: 'rate-limited', message: 'slow down' });
  assert.deepEqual(events.at(-1), {
    type: 'error',
    detail: { code: 'rate-limited', message: 'slow down', requestType: null, fatal: false },
  });
  await client.leave();
});

test('reconnect message: re-join, re-publish the same tracks, re-subscribe, media flows again', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB] });
  const mic = fakeTrack('audio');
  const pubP = client.publish([mic]);
  const offer1 = await waitFor(() => ws.last('publish-offer'));
  ws.receive({ type: 'publish-answer', roomName: 'r1', answer: 'v=0\r\n', requestId: offer1.requestId });
  await pubP;
  const req1 = await waitFor(() => ws.last('subscribe-request'));
  ws.receive({
    type: 'subscribe-offer',
    roomName: 'r1',
    publisherId: '7',
    offer: sdpOf([{ mid: '1', kind: 'audio', msid: 's ann-a' }]),
    tracks: [ANN_PUB.tracks[0]],
    requestId: req1.requestId,
  });
  await waitFor(() => client.remoteStreams.get('7'));
  const oldPub = client.publishPc;
  const oldSub = client.subscribePc;

  ws.receive({ type: 'reconnect', reason: 'draining', retryAfterMs: 5 });
  assert.equal(client.state, 'reconnecting');
  assert.ok(ws.closedWith, 'old socket closed');
  assert.ok(oldPub.closed && oldSub.closed, 'old PCs closed');
  assert.deepEqual(client.localTracks, [mic], 'local tracks kept');
  assert.equal(client.remoteStreams.size, 0);
  assert.ok(events.some((e) => e.type === 'track-removed' && e.detail.trackId === 'ann-a'));
  const rec = events.find((e) => e.type === 'reconnecting');
  assert.ok(rec.detail.delayMs >= 5, 'retryAfterMs honoured');
  assert.equal(rec.detail.attempt, 1);

  // Late messages on the old socket are ignored; candidates for the replaced PCs are dropped.
  ws.receive({ type: 'participant-joined', roomName: 'r1', participantId: '99', username: 'ghost' });
  assert.equal(client.participants.has('99'), false);
  const lateCandidate = { candidate: 'candidate:7 1 udp 1 10.0.0.7 7000 typ host', sdpMid: '1', sdpMLineIndex: 0 };
  ws.receive({ type: 'subscribe-ice-candidate', roomName: 'r1', candidate: lateCandidate });
  ws.receive({ type: 'publish-ice-candidate', roomName: 'r1', candidate: lateCandidate });

  const ws2 = await waitFor(() => env.sockets[1], 'new socket');
  // Bob arrived and Ann is still there while we were away.
  await serveHandshake(ws2, { participants: [ANN, BOB], publishers: [ANN_PUB, BOB_PUB] });
  const offer2 = await waitFor(() => ws2.last('publish-offer'), 're-publish');
  assert.match(offer2.offer, new RegExp(`a=msid:stream ${mic.id}`), 'same local track');
  assert.notEqual(client.publishPc, oldPub);
  ws2.receive({ type: 'publish-answer', roomName: 'r1', answer: 'v=0\r\n', requestId: offer2.requestId });
  await waitFor(() => client.state === 'connected', 'connected again');
  assert.ok(events.some((e) => e.type === 'reconnected'));
  assert.ok(events.some((e) => e.type === 'participant-joined' && e.detail.participantId === '8'));
  assert.ok(events.some((e) => e.type === 'publisher' && e.detail.publisherId === '8'));
  const reqs = await waitFor(() => (ws2.ofType('subscribe-request').length === 2 ? ws2.ofType('subscribe-request') : null), 'resubscribe');
  assert.deepEqual(reqs.map((r) => r.publisherId).sort(), ['7', '8']);
  const r7 = reqs.find((r) => r.publisherId === '7');
  ws2.receive({
    type: 'subscribe-offer',
    roomName: 'r1',
    publisherId: '7',
    offer: sdpOf([{ mid: '1', kind: 'audio', msid: 's ann-a' }]),
    tracks: [ANN_PUB.tracks[0]],
    requestId: r7.requestId,
  });
  await waitFor(() => client.remoteStreams.get('7')?.getTracks().length === 1, 'media again');
  assert.notEqual(client.subscribePc, oldSub);
  for (const pc of env.pcs) assert.ok(!pc.addedCandidates.some((c) => c.candidate === lateCandidate.candidate), 'late candidate dropped');
  const trackEvents = events.filter((e) => e.type === 'track' && e.detail.publisherId === '7');
  assert.equal(trackEvents.length, 2);
  assert.equal(trackEvents[1].detail.stream, client.remoteStreams.get('7'));
  await client.leave();
});

test('a dropped socket reconnects; publishers gone meanwhile are reported', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { participants: [ANN, BOB], publishers: [ANN_PUB, BOB_PUB] });
  ws.serverClose(1006);
  assert.equal(client.state, 'reconnecting');
  const ws2 = await waitFor(() => env.sockets[1]);
  await serveHandshake(ws2, { participants: [ANN], publishers: [ANN_PUB] });
  await waitFor(() => client.state === 'connected');
  assert.ok(events.some((e) => e.type === 'publisher-left' && e.detail.publisherId === '8'));
  assert.ok(events.some((e) => e.type === 'participant-left' && e.detail.participantId === '8'));
  assert.deepEqual([...client.publishers.keys()], ['7']);
  await client.leave();
});

test('reconnection attempts are bounded by maxAttempts', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env, { reconnect: { minDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 } });
  ws.serverClose(1006);
  const a1 = await waitFor(() => env.sockets[1]);
  a1.serverClose(1006); // closes before open
  const a2 = await waitFor(() => env.sockets[2]);
  a2.serverClose(1006);
  await waitFor(() => client.state === 'closed');
  const err = events.find((e) => e.type === 'error');
  assert.equal(err.detail.code, 'reconnect-failed');
  assert.equal(err.detail.fatal, true);
  await sleep(20);
  assert.equal(env.sockets.length, 3);
});

test('close code 4001 is fatal: no reconnect', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env);
  ws.serverClose(4001);
  assert.equal(client.state, 'closed');
  const err = events.find((e) => e.type === 'error');
  assert.deepEqual(err.detail, {
    code: 'unauthorized',
    message: 'the server closed the connection: invalid token (4001)',
    requestType: null,
    fatal: true,
  });
  await sleep(20);
  assert.equal(env.sockets.length, 1);
  assert.equal(client._timers.size, 0);
});

test('replaced error is fatal', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connected(env);
  ws.receive({ type: 'error', code: 'replaced', message: 'replaced by another connection', roomName: 'r1' });
  assert.equal(client.state, 'closed');
  assert.ok(events.some((e) => e.type === 'error' && e.detail.code === 'replaced' && e.detail.fatal));
  await sleep(10);
  assert.equal(env.sockets.length, 1);
});

test('kicked (and its close code 4003) is fatal: no reconnect', async () => {
  for (const kick of [
    (ws) => ws.receive({ type: 'kicked', roomName: 'r1', reason: 'removed', message: 'be nice' }),
    (ws) => ws.serverClose(4003),
  ]) {
    const env = makeEnv();
    const { client, events, ws } = await connected(env);
    kick(ws);
    assert.equal(client.state, 'closed');
    const err = events.find((e) => e.type === 'error');
    assert.equal(err.detail.code, 'kicked');
    assert.equal(err.detail.fatal, true);
    await sleep(20);
    assert.equal(env.sockets.length, 1);
  }
});

test('keepalive: pings, and silence counts as a dropped socket', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env, { pingIntervalMs: 5, idleTimeoutMs: 30 });
  await waitFor(() => ws.ofType('ping').length >= 2, 'pings');
  await waitFor(() => client.state === 'reconnecting' || env.sockets.length > 1, 'idle timeout');
  assert.ok(ws.closedWith);
  await client.leave();
  assert.equal(client.state, 'closed');
});

test('room-full on subscribe: transparent leave + join with fresh PCs', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB] });
  const req = await waitFor(() => ws.last('subscribe-request'));
  const oldSub = client.subscribePc;
  ws.receive({
    type: 'error',
    code: 'room-full',
    message: 'subscribe PeerConnection has 48 media sections; reconnect to start a fresh one',
    requestType: 'subscribe-request',
    roomName: 'r1',
    requestId: req.requestId,
  });
  const leave = await waitFor(() => ws.last('leave'), 'leave');
  assert.ok(oldSub.closed);
  ws.receive({ type: 'left', roomName: 'r1', requestId: leave.requestId });
  const join = await waitFor(() => ws.ofType('join')[1], 'rejoin');
  ws.receive({ type: 'joined', roomName: 'r1', participantId: 'me', participants: [ANN], publishers: [ANN_PUB], requestId: join.requestId });
  const prep = await waitFor(() => ws.ofType('subscribe-prepare')[1], 'prepare again');
  ws.receive({ type: 'subscribe-prepare-answer', roomName: 'r1', answer: 'v=0\r\n', requestId: prep.requestId });
  const req2 = await waitFor(() => ws.ofType('subscribe-request')[1], 'subscribe again');
  assert.equal(req2.publisherId, '7');
  assert.notEqual(client.subscribePc, oldSub);
  assert.equal(client.state, 'connected');
  assert.equal(env.sockets.length, 1, 'same socket');
  await client.leave();
});

test('unpublishTrack renegotiates; the last one sends unpublish', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env);
  const a = fakeTrack('audio');
  const v = fakeTrack('video');
  const p = client.publish([a, v]);
  const o1 = await waitFor(() => ws.last('publish-offer'));
  ws.receive({ type: 'publish-answer', roomName: 'r1', answer: 'v=0\r\n', requestId: o1.requestId });
  await p;
  assert.equal(client.setTrackEnabled('audio', false), 1);
  assert.equal(a.enabled, false);
  const u = client.unpublishTrack(v);
  const o2 = await waitFor(() => ws.ofType('publish-offer')[1]);
  assert.ok(!o2.offer.includes(v.id));
  ws.receive({ type: 'publish-answer', roomName: 'r1', answer: 'v=0\r\n', requestId: o2.requestId });
  await u;
  assert.deepEqual(client.localTracks, [a]);
  const pc = client.publishPc;
  await client.unpublishTrack(a);
  assert.equal(ws.ofType('unpublish').length, 1);
  assert.ok(pc.closed);
  assert.equal(client.publishPc, null);
  ws.receive({ type: 'publisher-left', roomName: 'r1', publisherId: 'me' }); // our own ack: ignored
  await client.leave();
});

test('a refused publish-offer rejects publish() and forgets the new tracks', async () => {
  const env = makeEnv();
  const { client, ws, events } = await connected(env);
  const t = fakeTrack('video');
  const p = client.publish([t]);
  const o = await waitFor(() => ws.last('publish-offer'));
  ws.receive({ type: 'error', code: 'bad-request', message: 'track id already published', requestType: 'publish-offer', roomName: 'r1', requestId: o.requestId });
  await assert.rejects(p, (e) => e.code === 'bad-request');
  assert.deepEqual(client.localTracks, []);
  assert.equal(client.publishPc, null);
  assert.equal(ws.ofType('unpublish').length, 1, 'server state reset');
  assert.equal(events.filter((e) => e.type === 'error').length, 0, 'the caller got it');
  await client.leave();
});

test('getInboundStats joins inbound-rtp to publisher via mid or track identifier', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env, { participants: [ANN], publishers: [ANN_PUB] });
  const req = await waitFor(() => ws.last('subscribe-request'));
  ws.receive({
    type: 'subscribe-offer',
    roomName: 'r1',
    publisherId: '7',
    offer: sdpOf([
      { mid: '0', kind: 'audio', msid: 'webrtc-rs probator' },
      { mid: '1', kind: 'audio', msid: 's ann-a' },
      { mid: '2', kind: 'video', msid: 's ann-v' },
    ]),
    tracks: ANN_PUB.tracks,
    requestId: req.requestId,
  });
  await waitFor(() => client.remoteStreams.get('7')?.getTracks().length === 2);
  const pc = client.subscribePc;
  const videoRx = pc.transceivers.find((t) => t.mid === '2').receiver.track;
  pc.stats = new Map([
    ['a', { id: 'a', type: 'inbound-rtp', kind: 'audio', mid: '1', packetsReceived: 10, bytesReceived: 1000 }],
    ['v', { id: 'v', type: 'inbound-rtp', kind: 'video', trackIdentifier: videoRx.id, packetsReceived: 20, bytesReceived: 9000, framesDecoded: 5, frameWidth: 640, frameHeight: 480 }],
    ['p', { id: 'p', type: 'inbound-rtp', kind: 'audio', mid: '0', packetsReceived: 3 }],
    ['t', { id: 't', type: 'transport' }],
  ]);
  const stats = await client.getInboundStats();
  assert.deepEqual(stats, [
    { publisherId: '7', kind: 'audio', trackId: 'ann-a', packetsReceived: 10, framesDecoded: 0, frameWidth: 0, frameHeight: 0, bytesReceived: 1000 },
    { publisherId: '7', kind: 'video', trackId: 'ann-v', packetsReceived: 20, framesDecoded: 5, frameWidth: 640, frameHeight: 480, bytesReceived: 9000 },
  ]);
  await client.leave();
});

test('leave() sends leave, closes everything, clears timers, rejects pending calls', async () => {
  const env = makeEnv();
  // Real timers with long periods: if any were left running, this test file would hang.
  const { client, ws, events } = await connected(env, { pingIntervalMs: 15000, idleTimeoutMs: 45000, requestTimeoutMs: 60000 });
  const chat = client.sendChat('pending');
  assert.ok(client._timers.size >= 2, 'keepalive + request timeout running');
  const sub = client.subscribePc;
  await client.leave();
  await assert.rejects(chat, (e) => e.code === 'closed');
  assert.equal(client.state, 'closed');
  assert.ok(ws.last('leave'));
  assert.equal(ws.closedWith.code, 1000);
  assert.ok(sub.closed);
  assert.equal(client._timers.size, 0);
  assert.equal(events.at(-1).type, 'state');
  assert.equal(events.at(-1).detail.state, 'closed');
  // Nothing reconnects after leave, even if the server closes now.
  ws.serverClose(1006);
  await sleep(10);
  assert.equal(env.sockets.length, 1);
});

test('leave() during a reconnect backoff stops reconnecting', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env, { reconnect: { minDelayMs: 50, maxDelayMs: 50 } });
  ws.serverClose(1001);
  assert.equal(client.state, 'reconnecting');
  await client.leave();
  assert.equal(client._timers.size, 0);
  await sleep(80);
  assert.equal(env.sockets.length, 1);
  assert.equal(client.state, 'closed');
});

test('a throwing event listener does not break message handling', async () => {
  const env = makeEnv();
  const { client, ws } = await connected(env);
  const origListeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const swallowed = [];
  process.on('uncaughtException', (e) => swallowed.push(e));
  try {
    client.addEventListener('participant-joined', () => {
      throw new Error('app bug');
    });
    ws.receive({ type: 'participant-joined', roomName: 'r1', participantId: '9', username: 'cy' });
    ws.receive({ type: 'participant-joined', roomName: 'r1', participantId: '10', username: 'dee' });
    await sleep(5);
    assert.ok(client.participants.has('9') && client.participants.has('10'));
  } finally {
    process.removeAllListeners('uncaughtException');
    for (const l of origListeners) process.on('uncaughtException', l);
  }
  await client.leave();
});

// ------------------------------------------------------- URL list (cluster)

const A = 'ws://a.test/ws';
const B = 'ws://b.test/ws';
const C = 'ws://c.test/ws';

/** Connects a client with the URL list `url` (the first socket is served). */
async function connectedTo(env, url, opts = {}) {
  return connected(env, { url, ...opts });
}

test('url list: a dropped socket moves to the next URL; a URL whose socket does not open too; round-robin back to the first', async () => {
  const env = makeEnv();
  const { client, events, ws } = await connectedTo(env, [A, B, C]);
  assert.equal(ws.url, A);
  assert.equal(client.url, A);
  ws.serverClose(1006); // node A died: no `reconnect` message
  assert.equal(client.state, 'reconnecting');
  const s1 = await waitFor(() => env.sockets[1], 'attempt 1');
  assert.equal(s1.url, B);
  assert.equal(events.find((e) => e.type === 'reconnecting').detail.url, B);
  s1.serverClose(1006); // B refuses too (closes before it opened)
  const s2 = await waitFor(() => env.sockets[2], 'attempt 2');
  assert.equal(s2.url, C);
  await serveHandshake(s2);
  await waitFor(() => client.state === 'connected', 'connected on C');
  assert.equal(client.url, C);
  s2.serverClose(1006); // C dies: A is next (it may be back)
  const s3 = await waitFor(() => env.sockets[3], 'attempt 3');
  assert.equal(s3.url, A);
  await serveHandshake(s3);
  await waitFor(() => client.state === 'connected', 'connected on A again');
  await client.leave();
});

test('url list: a `reconnect` message stays on the URL (the node works), except `draining`', async () => {
  const env = makeEnv();
  const { client, ws } = await connectedTo(env, [A, B]);
  ws.receive({ type: 'reconnect', reason: 'owner-lost', retryAfterMs: 1 });
  const s1 = await waitFor(() => env.sockets[1]);
  assert.equal(s1.url, A, 'owner-lost: the same node first');
  await serveHandshake(s1);
  await waitFor(() => client.state === 'connected');
  s1.receive({ type: 'reconnect', reason: 'draining', retryAfterMs: 1 });
  const s2 = await waitFor(() => env.sockets[2]);
  assert.equal(s2.url, B, 'draining: the next node');
  await serveHandshake(s2);
  await waitFor(() => client.state === 'connected');
  await client.leave();
});

test('url list: a node that answers with an error keeps its URL (the room reopens there after the lease)', async () => {
  const env = makeEnv();
  const { client, ws } = await connectedTo(env, [A, B]);
  ws.serverClose(1006);
  const s1 = await waitFor(() => env.sockets[1]);
  assert.equal(s1.url, B);
  s1.open();
  const auth = await waitFor(() => s1.last('auth'));
  s1.receive({ type: 'auth-ok', participantId: 'me', username: 'Me', protocol: 1, nodeId: 'b', requestId: auth.requestId });
  const join = await waitFor(() => s1.last('join'));
  s1.receive({ type: 'error', code: 'internal', message: "the room's node a is gone; the room can be opened again within 9 s, retry", requestType: 'join', requestId: join.requestId });
  const s2 = await waitFor(() => env.sockets[2]);
  assert.equal(s2.url, B, 'same node again');
  assert.equal(client.state, 'reconnecting');
  await serveHandshake(s2);
  await waitFor(() => client.state === 'connected');
  await client.leave();
});

test('url list: connect() tries each URL whose socket does not open, and fails after the last', async () => {
  const env = makeEnv();
  const { client } = makeClient(env, { url: [A, B, C] });
  const p = client.connect();
  (await waitFor(() => env.sockets[0])).serverClose(1006);
  const s1 = await waitFor(() => env.sockets[1]);
  assert.equal(s1.url, B);
  await serveHandshake(s1);
  await p;
  assert.equal(client.state, 'connected');
  assert.equal(client.url, B);
  await client.leave();

  const env2 = makeEnv();
  const { client: c2 } = makeClient(env2, { url: [A, B] });
  const p2 = c2.connect();
  (await waitFor(() => env2.sockets[0])).serverClose(1006);
  (await waitFor(() => env2.sockets[1])).serverClose(1006);
  await assert.rejects(p2, (e) => e.code === 'connection-lost');
  assert.equal(c2.state, 'closed');
  await sleep(20);
  assert.equal(env2.sockets.length, 2, 'one attempt per URL, no loop');
  // The next connect() starts where the ring stands: A again.
  const p3 = c2.connect();
  const s = await waitFor(() => env2.sockets[2]);
  assert.equal(s.url, A);
  await serveHandshake(s);
  await p3;
  await c2.leave();
});

test('url list: a WebSocket that does not open in time moves on too', async () => {
  const env = makeEnv();
  const { client } = makeClient(env, { url: [A, B], requestTimeoutMs: 30 });
  const p = client.connect();
  await waitFor(() => env.sockets[0]); // never opens
  const s1 = await waitFor(() => env.sockets[1], 'second URL after the time limit');
  assert.equal(s1.url, B);
  await serveHandshake(s1);
  await p;
  await client.leave();
});

test('url list: keepalive silence moves to the next URL', async () => {
  const env = makeEnv();
  const { client } = await connectedTo(env, [A, B], { pingIntervalMs: 5, idleTimeoutMs: 30 });
  const s1 = await waitFor(() => env.sockets[1], 'idle timeout');
  assert.equal(s1.url, B);
  await client.leave();
});

test('one URL: every reconnect goes to it (a load balancer picks the node)', async () => {
  const env = makeEnv();
  const { client, ws } = await connectedTo(env, 'ws://lb.test/ws');
  ws.serverClose(1006);
  const s1 = await waitFor(() => env.sockets[1]);
  s1.serverClose(1006);
  const s2 = await waitFor(() => env.sockets[2]);
  assert.deepEqual(env.sockets.map((s) => s.url), ['ws://lb.test/ws', 'ws://lb.test/ws', 'ws://lb.test/ws']);
  await serveHandshake(s2);
  await waitFor(() => client.state === 'connected');
  await client.leave();
});

test('a bad `url` option is a TypeError', () => {
  const env = makeEnv();
  for (const url of [[], [A, ''], 7]) assert.throws(() => makeClient(env, { url }), TypeError);
});

test('client.url is null without a URL outside a browser page', () => {
  const env = makeEnv();
  const { client } = makeClient(env, { url: undefined });
  assert.equal(client.url, null);
});
