// Unit tests of web/sfu-core.js (node --test web/test/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Backoff,
  PendingRequests,
  SerialQueue,
  SfuError,
  TimerSet,
  TrackDirectory,
  UrlRing,
  createRequestIdGenerator,
  isProbator,
  normalizeCandidate,
  parseMsids,
  parseServerMessage,
} from '../sfu-core.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const UNIFIED = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1 2 3',
  'a=msid-semantic: WMS *',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'a=mid:0',
  'a=msid:should-not stay',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=mid:1',
  'a=sendonly',
  'a=msid:webrtc-rs probator',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=mid:2',
  'a=msid:streamA trackAudio',
  'a=ssrc:1111 msid:other ignored',
  'm=video 9 UDP/TLS/RTP/SAVPF 96',
  'a=mid:3',
  'a=msid:streamA trackVideo',
  '',
];

test('parseMsids: Unified Plan with CRLF, probator, application section skipped', () => {
  const m = parseMsids(UNIFIED.join('\r\n'));
  assert.deepEqual([...m.keys()], ['1', '2', '3']);
  assert.deepEqual(m.get('1'), { streamId: 'webrtc-rs', trackId: 'probator', kind: 'audio' });
  assert.ok(isProbator(m.get('1')));
  assert.deepEqual(m.get('2'), { streamId: 'streamA', trackId: 'trackAudio', kind: 'audio' });
  assert.deepEqual(m.get('3'), { streamId: 'streamA', trackId: 'trackVideo', kind: 'video' });
  assert.equal(isProbator(m.get('2')), false);
});

test('parseMsids: LF line endings give the same result as CRLF', () => {
  assert.deepEqual([...parseMsids(UNIFIED.join('\n'))], [...parseMsids(UNIFIED.join('\r\n'))]);
});

test('parseMsids: Plan-B ssrc msid', () => {
  const sdp = [
    'v=0',
    'm=audio 9 RTP/SAVPF 111',
    'a=mid:audio',
    'a=ssrc:10 cname:x',
    'a=ssrc:10 msid:s1 a1',
    'a=ssrc:11 msid:s1 a2',
    'm=video 9 RTP/SAVPF 96',
    'a=mid:video',
    'a=ssrc:20 msid:s1 v1',
    '',
  ].join('\r\n');
  const m = parseMsids(sdp);
  assert.deepEqual(m.get('audio'), { streamId: 's1', trackId: 'a1', kind: 'audio' });
  assert.deepEqual(m.get('video'), { streamId: 's1', trackId: 'v1', kind: 'video' });
});

test('parseMsids: sections without mid or track id, and bad input', () => {
  const sdp = 'v=0\nm=audio 9 X 0\na=msid:s1 a1\nm=video 9 X 96\na=mid:v\na=msid:onlystream\n';
  assert.equal(parseMsids(sdp).size, 0);
  assert.equal(parseMsids('').size, 0);
  assert.equal(parseMsids(/** @type {any} */ (null)).size, 0);
  assert.equal(isProbator(null), false);
  assert.equal(isProbator({ streamId: 'x', trackId: 'probator' }), false);
});

test('SerialQueue: strict order, failure isolation', async () => {
  const q = new SerialQueue();
  const log = [];
  const p1 = q.push(async () => {
    await sleep(20);
    log.push(1);
    return 'a';
  });
  const p2 = q.push(() => {
    log.push(2);
    throw new Error('boom');
  });
  const p3 = q.push(async () => {
    await sleep(1);
    log.push(3);
    return 'c';
  });
  assert.equal(q.size, 3);
  assert.equal(await p1, 'a');
  await assert.rejects(p2, /boom/);
  assert.equal(await p3, 'c');
  assert.deepEqual(log, [1, 2, 3]);
  assert.ok(q.idle);
});

test('SerialQueue: clear drops jobs not yet started, running one finishes', async () => {
  const q = new SerialQueue();
  const log = [];
  const p1 = q.push(async () => {
    await sleep(10);
    log.push('running');
  });
  const p2 = q.push(() => log.push('dropped'));
  const p3 = q.push(() => log.push('dropped too'));
  assert.equal(q.clear('test'), 2);
  const r2 = assert.rejects(p2, (e) => e instanceof SfuError && e.code === 'cancelled');
  const r3 = assert.rejects(p3, (e) => e.code === 'cancelled');
  await p1;
  await r2;
  await r3;
  assert.deepEqual(log, ['running']);
  assert.equal(await q.push(() => 7), 7);
});

test('Backoff: growth, cap, reset', () => {
  const b = new Backoff({ minMs: 100, maxMs: 1000, factor: 2, jitter: 0, random: () => 0.5 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
});

test('UrlRing: round-robin over a list, back to the first (a node that died may return)', () => {
  const r = new UrlRing(['ws://a/ws', 'ws://b/ws', 'ws://c/ws']);
  assert.equal(r.size, 3);
  assert.equal(r.current(), 'ws://a/ws');
  const seen = [];
  for (let i = 0; i < 7; i++) {
    assert.equal(r.advance(), true);
    seen.push(r.current());
  }
  assert.deepEqual(seen, ['ws://b/ws', 'ws://c/ws', 'ws://a/ws', 'ws://b/ws', 'ws://c/ws', 'ws://a/ws', 'ws://b/ws']);
});

test('UrlRing: one URL (or the default) never changes', () => {
  for (const u of ['wss://lb.example/ws', '/ws', undefined, null, ['ws://only/ws']]) {
    const r = new UrlRing(u);
    const first = r.current();
    assert.equal(r.advance(), false);
    assert.equal(r.current(), first);
    assert.equal(r.size, 1);
  }
  assert.equal(new UrlRing(undefined).current(), undefined);
});

test('UrlRing: the list is copied, bad options are TypeErrors', () => {
  const list = ['ws://a/ws', 'ws://b/ws'];
  const r = new UrlRing(list);
  list.push('ws://c/ws');
  assert.equal(r.size, 2);
  for (const bad of ['', [], ['ws://a/ws', ''], ['ws://a/ws', 3], 42, { url: 'x' }, new Array(65).fill('ws://a/ws')]) {
    assert.throws(() => new UrlRing(bad), TypeError, JSON.stringify(bad));
  }
});

test('Backoff: jitter bounds and cap with jitter', () => {
  const lo = new Backoff({ minMs: 1000, maxMs: 10000, jitter: 0.2, random: () => 0 });
  const hi = new Backoff({ minMs: 1000, maxMs: 10000, jitter: 0.2, random: () => 0.999999 });
  assert.equal(lo.next(), 800);
  assert.equal(hi.next(), 1200);
  const r = new Backoff({ minMs: 500, maxMs: 10000, jitter: 0.2 });
  for (let i = 0; i < 200; i++) {
    const base = Math.min(10000, 500 * 2 ** Math.min(i, 20));
    const d = r.next();
    assert.ok(d >= Math.floor(base * 0.8) && d <= Math.min(10000, Math.ceil(base * 1.2)), `delay ${d} base ${base}`);
  }
  const capped = new Backoff({ minMs: 10000, maxMs: 10000, jitter: 0.5, random: () => 0.999 });
  assert.equal(capped.next(), 10000);
});

test('Backoff: server hint is the minimum', () => {
  const b = new Backoff({ minMs: 100, maxMs: 1000, jitter: 0, random: () => 0.5 });
  assert.equal(b.next(5000), 5000);
  assert.equal(b.next(10), 200);
  assert.equal(b.next(undefined), 400);
  assert.equal(b.next(NaN), 800);
});

test('TrackDirectory: add, lookup, cumulative, move, remove', () => {
  const d = new TrackDirectory();
  d.addTracks('7', [{ trackId: 'a', kind: 'audio' }]);
  d.addTracks('7', [{ trackId: 'a', kind: 'audio' }, { trackId: 'v', kind: 'video' }]);
  assert.equal(d.publisherOf('a'), '7');
  assert.equal(d.kindOf('v'), 'video');
  assert.deepEqual(d.tracksOf('7'), [
    { trackId: 'a', kind: 'audio' },
    { trackId: 'v', kind: 'video' },
  ]);
  d.addTracks('8', [{ trackId: 'v', kind: 'video' }]);
  assert.equal(d.publisherOf('v'), '8');
  assert.deepEqual(d.tracksOf('7'), [{ trackId: 'a', kind: 'audio' }]);
  d.setTracks('7', [{ trackId: 'b', kind: 'audio' }]);
  assert.equal(d.publisherOf('a'), undefined);
  d.removePublisher('8');
  assert.equal(d.publisherOf('v'), undefined);
  assert.deepEqual(d.tracksOf('8'), []);
  d.addTracks(9, [{ trackId: 'x', kind: 'video' }, { bogus: true }]);
  assert.equal(d.publisherOf('x'), '9');
  d.clear();
  assert.equal(d.publisherOf('b'), undefined);
});

test('PendingRequests: reply, error, timeout, rejectAll', async () => {
  const timers = new TimerSet();
  const p = new PendingRequests({ timeoutMs: 1000, timers });
  const a = p.add('1', { requestType: 'join' });
  const b = p.add(2, { requestType: 'chat' });
  const c = p.add('3', { requestType: 'publish-offer', timeoutMs: 10 });
  assert.equal(p.size, 3);
  assert.ok(p.settle({ type: 'joined', requestId: '1' }));
  assert.deepEqual(await a, { type: 'joined', requestId: '1' });
  assert.ok(p.settle({ type: 'error', code: 'forbidden', message: 'no', requestType: 'chat', requestId: 2 }));
  await assert.rejects(b, (e) => e instanceof SfuError && e.code === 'forbidden' && e.requestType === 'chat');
  await assert.rejects(c, (e) => e.code === 'timeout' && e.requestType === 'publish-offer');
  assert.equal(p.settle({ type: 'joined', requestId: 'nope' }), false);
  assert.equal(p.settle({ type: 'joined' }), false);
  const d = p.add('4');
  p.rejectAll(new SfuError('closed'));
  await assert.rejects(d, (e) => e.code === 'closed');
  assert.equal(p.size, 0);
  assert.equal(timers.size, 0);
});

test('TimerSet: clearAll clears timeouts and intervals', async () => {
  const t = new TimerSet();
  let fired = 0;
  t.setTimeout(() => fired++, 5);
  t.setInterval(() => fired++, 5);
  assert.equal(t.size, 2);
  t.clearAll();
  await sleep(20);
  assert.equal(fired, 0);
  assert.equal(t.size, 0);
  t.setTimeout(() => fired++, 1);
  await sleep(10);
  assert.equal(fired, 1);
  assert.equal(t.size, 0);
});

test('normalizeCandidate', () => {
  assert.equal(normalizeCandidate(null), null);
  assert.equal(normalizeCandidate(undefined), null);
  assert.equal(normalizeCandidate(''), null);
  assert.equal(normalizeCandidate({ candidate: '' }), null);
  assert.deepEqual(normalizeCandidate('a=candidate:1 1 udp 1 1.2.3.4 5 typ host'), {
    candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host',
    sdpMid: null,
    sdpMLineIndex: 0,
  });
  assert.deepEqual(normalizeCandidate({ candidate: 'candidate:x', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf' }), {
    candidate: 'candidate:x',
    sdpMid: '0',
    sdpMLineIndex: 0,
    usernameFragment: 'uf',
  });
  assert.deepEqual(normalizeCandidate({ candidate: 'candidate:x', sdpMid: '1' }), {
    candidate: 'candidate:x',
    sdpMid: '1',
    sdpMLineIndex: null,
  });
  assert.deepEqual(normalizeCandidate({ candidate: 'candidate:x' }), { candidate: 'candidate:x', sdpMid: null, sdpMLineIndex: 0 });
  assert.throws(() => normalizeCandidate(42), TypeError);
  assert.throws(() => normalizeCandidate({ candidate: 5 }), TypeError);
});

test('createRequestIdGenerator gives unique ids', () => {
  const g = createRequestIdGenerator('x');
  assert.deepEqual([g(), g(), g()], ['x1', 'x2', 'x3']);
});

test('parseServerMessage: valid messages are normalized', () => {
  const j = parseServerMessage(
    JSON.stringify({
      type: 'joined',
      roomName: 'r',
      participantId: 42,
      participants: [{ participantId: 7, username: 'ann' }, null],
      publishers: [{ publisherId: '7', username: 'ann', tracks: [{ trackId: 't', kind: 'video' }] }],
      requestId: 3,
    }),
  );
  assert.equal(j.participantId, '42');
  assert.deepEqual(j.participants, [{ participantId: '7', username: 'ann' }]);
  assert.deepEqual(j.publishers[0].tracks, [{ trackId: 't', kind: 'video' }]);
  const o = parseServerMessage(JSON.stringify({ type: 'subscribe-offer', roomName: 'r', publisherId: 7, offer: { type: 'offer', sdp: 'v=0' } }));
  assert.equal(o.publisherId, '7');
  assert.equal(o.offer, 'v=0');
  assert.deepEqual(o.tracks, []);
  const e = parseServerMessage('{"type":"error","code":"room-full","message":"full","requestId":"c1"}');
  assert.equal(e.code, 'room-full');
  assert.equal(parseServerMessage('{"type":"whatever","x":1}').type, 'whatever');
  const r = parseServerMessage('{"type":"reconnect","reason":"draining","retryAfterMs":"bad"}');
  assert.equal(r.retryAfterMs, 0);
});

test('parseServerMessage: malformed frames throw clear errors', () => {
  assert.throws(() => parseServerMessage('not json'), /not JSON/);
  assert.throws(() => parseServerMessage('[1]'), /not a JSON object/);
  assert.throws(() => parseServerMessage('{"x":1}'), /type/);
  assert.throws(() => parseServerMessage(/** @type {any} */ (new Uint8Array(2))), /not text/);
  assert.throws(() => parseServerMessage('{"type":"subscribe-offer","roomName":"r","publisherId":"1"}'), /offer/);
  assert.throws(() => parseServerMessage('{"type":"joined","roomName":"r","participantId":"1"}'), /participants/);
  assert.throws(() => parseServerMessage('{"type":"publish-answer","roomName":"r","answer":5}'), /answer/);
  assert.throws(() => parseServerMessage('{"type":"new-publisher","roomName":"r","publisherId":"1","tracks":{}}'), /tracks/);
  assert.throws(() => parseServerMessage('{"type":"error","message":"x"}'), /code/);
  assert.throws(() => parseServerMessage('{"type":"pong","requestId":{}}'), /requestId/);
});

test('SfuError.wrap and fromServer', () => {
  const e = SfuError.fromServer({ code: 'forbidden', message: 'no', requestType: 'join', roomName: 'r', requestId: 1 });
  assert.equal(e.code, 'forbidden');
  assert.equal(e.requestId, 1);
  assert.equal(SfuError.wrap(e), e);
  const w = SfuError.wrap(new Error('x'), 'negotiation-failed');
  assert.equal(w.code, 'negotiation-failed');
  assert.equal(w.message, 'x');
});
