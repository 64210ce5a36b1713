// Five participants of four WebRTC stacks in one room against the real
// server: Chromium and Firefox ESR with the web library (prepared subscribe
// flow), Firefox with the seed-001 snippet, bundlePolicy max-bundle and the
// camera added first (its audio is a bundle-only section, as GStreamer's; the
// server offers first), aiortc (an independent stack without ICE restarts,
// seed flow), and webrtc-rs (loadtest's interop-peer: real VP8 that vpxenc
// made, prepared flow). Every participant decodes every other's video (the
// webrtc-rs peer, which has no decoder, receives frames and VP8 keyframes)
// and receives its audio; a publisher leaves and comes back; the server never
// restarts ICE.

import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, existsSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  requireTestNetwork, startServer, launchBrowser, launchFirefox, newPage, newFirefoxPage,
  waitFor, pageMedia, receivesFrom, joinDemo, artifactsDir, repoRoot,
} from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOM = 'interop-room';
const MEDIA_TIMEOUT = 60_000;
const PYTHON = process.env.INTEROP_PYTHON || path.join(repoRoot, 'target', 'interop-venv', 'bin', 'python');

/** The aiortc peer in room mode; its JSON events, the latest stats kept. */
function startAiortc(url, token) {
  if (!existsSync(PYTHON)) throw new Error(`no Python with aiortc at ${PYTHON} (scripts/test.sh creates it; or set INTEROP_PYTHON)`);
  const child = spawn(PYTHON, [path.join(repoRoot, 'tests', 'interop', 'aiortc_peer.py'), 'room',
    '--url', url, '--token', token, '--room', ROOM, '--seconds', '150'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const peer = { child, stats: { inbound: {}, offers: [] }, errors: [], participantId: null };
  createInterface({ input: child.stdout }).on('line', (line) => {
    let ev;
    try { ev = JSON.parse(line); } catch { return; }
    if (ev.event === 'stats') peer.stats = ev;
    else if (ev.event === 'auth-ok') peer.participantId = ev.participantId;
    else if (ev.event === 'error') peer.errors.push(ev);
  });
  return peer;
}

const RS_PEER = path.join(repoRoot, 'target', 'debug', 'interop-peer');

/** A short VP8 clip in IVF: a moving gradient as raw Y4M, encoded by vpxenc. */
function makeClip() {
  const dir = path.join(repoRoot, 'target', 'interop-clip');
  mkdirSync(dir, { recursive: true });
  const [w, h, n] = [320, 240, 60];
  const parts = [Buffer.from(`YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < n; f += 1) {
    const y = Buffer.alloc(w * h);
    for (let r = 0; r < h; r += 1) for (let c = 0; c < w; c += 1) y[r * w + c] = (c + r + f * 4) & 0xff;
    parts.push(Buffer.from('FRAME\n'), y, Buffer.alloc((w * h) / 4, 90 + f), Buffer.alloc((w * h) / 4, 160 - f));
  }
  writeFileSync(path.join(dir, 'clip.y4m'), Buffer.concat(parts));
  const ivf = path.join(dir, 'clip.ivf');
  execFileSync('vpxenc', ['--codec=vp8', '--ivf', '--good', '--cpu-used=8', '--target-bitrate=300',
    '--kf-max-dist=30', '-q', '-o', ivf, path.join(dir, 'clip.y4m')], { stdio: 'inherit' });
  return ivf;
}

/** The webrtc-rs peer; its JSON events, the latest stats kept. */
function startRsPeer(url, token, ivf) {
  if (!existsSync(RS_PEER)) throw new Error(`no ${RS_PEER}: cargo build --workspace --all-targets builds it (scripts/test.sh does)`);
  const child = spawn(RS_PEER, ['--url', url, '--token', token, '--room', ROOM, '--ivf', ivf, '--ip', '10.77.0.1', '--seconds', '150'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const peer = { child, stats: { tracks: {}, offers: [] }, errors: [], participantId: null };
  createInterface({ input: child.stdout }).on('line', (line) => {
    let ev;
    try { ev = JSON.parse(line); } catch { return; }
    if (ev.event === 'stats') peer.stats = ev;
    else if (ev.event === 'auth-ok') peer.participantId = ev.participantId;
    else if (ev.event === 'error' || ev.event === 'fatal') peer.errors.push(ev);
  });
  return peer;
}

/** Video tracks with frames and a keyframe, audio tracks with packets, at the webrtc-rs peer. */
const rsFlowing = (peer, n = 30) => Object.entries(peer.stats.tracks)
  .filter(([, t]) => (t.kind === 'video' ? t.frames > n && t.keyframes > 0 : t.packets > n)).map(([id]) => id);

/** Tracks (msid track ids) aiortc gets more than `n` packets on. */
const aiortcFlowing = (peer, n = 50) => Object.entries(peer.stats.inbound).filter(([, c]) => c > n).map(([id]) => id);

/** The seed-001 page: decoded video and received audio per inbound stream. */
async function seedMedia(page) {
  return page.evaluate(async () => {
    const out = { video: 0, audio: 0, ufrags: window.seedOfferUfrags || [], log: window.seedLog, inbound: [] };
    // mid -> "stream track" of the server's offer, to name the publisher of a stuck stream.
    const msid = {};
    let mid = null;
    for (const line of (window.seedPcs.subPc.remoteDescription?.sdp || '').split('\r\n')) {
      if (line.startsWith('a=mid:')) mid = line.slice(6);
      if (line.startsWith('a=msid:')) msid[mid] = line.slice(7);
    }
    (await window.seedPcs.subPc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video' && s.framesDecoded > 0) out.video += 1;
      if (s.kind === 'audio' && s.packetsReceived > 0) out.audio += 1;
      // One compact line per stream, so a failure shows which one is stuck.
      out.inbound.push(`${s.kind} mid=${s.mid} msid=${msid[s.mid]} ssrc=${s.ssrc} pkts=${s.packetsReceived} lost=${s.packetsLost} `
        + `frames=${s.framesDecoded ?? '-'} kf=${s.keyFramesDecoded ?? '-'} pli=${s.pliCount ?? '-'} nack=${s.nackCount ?? '-'}`);
    });
    out.transceivers = window.seedPcs.subPc.getTransceivers().map((t) => `${t.mid}:${t.currentDirection}:${t.receiver.track.kind}`);
    out.state = `${window.seedPcs.subPc.connectionState}/${window.seedPcs.subPc.iceConnectionState}`;
    return out;
  });
}

describe('Chromium, Firefox, aiortc and webrtc-rs in one room', () => {
  let server;
  let chromium;
  let firefox;
  let aiortc;
  let rs;
  const pages = {};
  const ids = {};

  const openSeed = async (label) => {
    const page = await newFirefoxPage(firefox, label);
    await page.goto(`${server.url}/health`);
    await page.addScriptTag({ path: path.join(here, 'seed-001-client.js') });
    const { token } = await (await fetch(`${server.url}/dev/token?user=${label}`)).json();
    await page.evaluate((a) => window.seedClient(a), {
      url: `${server.url.replace('http', 'ws')}/ws`, token, room: ROOM, publish: true, config: { bundlePolicy: 'max-bundle' }, videoFirst: true,
    });
    return page;
  };
  // Everyone's view; `first` (the participant waited for) leads, since a
  // long failure message may be cut in the middle.
  const describeAll = (first) => async () => {
    const out = {};
    const names = Object.keys(pages).sort((a, b) => (b === first) - (a === first));
    if (first === 'aiortc') out.aiortc = { flowing: aiortcFlowing(aiortc), inbound: aiortc.stats.inbound, errors: aiortc.errors };
    if (first === 'webrtcRs') out.webrtcRs = { stats: rs?.stats, errors: rs?.errors };
    for (const name of names) {
      const p = pages[name];
      out[name] = name === 'seed' ? await seedMedia(p).catch(String) : { ...(await pageMedia(p).catch(String)), console: p.consoleLines.slice(-10) };
    }
    out.aiortc = out.aiortc ?? { flowing: aiortcFlowing(aiortc), errors: aiortc?.errors };
    out.webrtcRs = out.webrtcRs ?? { stats: rs?.stats, errors: rs?.errors };
    return out;
  };

  before(async () => {
    requireTestNetwork();
    rmSync(path.join(artifactsDir, 'interop-server.log'), { force: true });
    server = await startServer({ name: 'interop-server' });
    chromium = await launchBrowser();
    firefox = await launchFirefox();
  });

  after(async () => {
    if (aiortc) aiortc.child.kill();
    if (rs) rs.child.kill();
    if (chromium) await chromium.close();
    if (firefox) await firefox.close();
    if (server) await server.stop();
  });

  test('every participant decodes every other participant', async () => {
    const started = Date.now();
    pages.chrome = await newPage(chromium, 'chrome');
    ids.chrome = await joinDemo(pages.chrome, server, { name: 'Chrome', room: ROOM });
    pages.firefox = await newFirefoxPage(firefox, 'firefox');
    ids.firefox = await joinDemo(pages.firefox, server, { name: 'Fox', room: ROOM });
    pages.seed = await openSeed('seed');
    ids.seed = 'seed';
    const { token } = await (await fetch(`${server.url}/dev/token?user=aiortc`)).json();
    aiortc = startAiortc(`${server.url.replace('http', 'ws')}/ws`, token);
    await waitFor('aiortc to authenticate', () => aiortc.participantId, { timeoutMs: 20_000 });
    ids.aiortc = aiortc.participantId;
    const ivf = makeClip();
    const rsToken = (await (await fetch(`${server.url}/dev/token?user=webrtc-rs`)).json()).token;
    rs = startRsPeer(`${server.url.replace('http', 'ws')}/ws`, rsToken, ivf);
    await waitFor('webrtc-rs to authenticate', () => rs.participantId, { timeoutMs: 20_000, describe: describeAll('webrtcRs') });
    ids.rs = rs.participantId;

    const all = Object.values(ids);
    for (const name of ['chrome', 'firefox']) {
      const others = all.filter((id) => id !== ids[name]);
      await waitFor(`${name} decodes ${others.join(', ')}`, async () => receivesFrom(await pageMedia(pages[name]), others), {
        timeoutMs: MEDIA_TIMEOUT, describe: describeAll(name),
      });
    }
    await waitFor('the seed page decodes four videos and hears four', async () => {
      const m = await seedMedia(pages.seed);
      return m.video >= 4 && m.audio >= 4;
    }, { timeoutMs: MEDIA_TIMEOUT, describe: describeAll('seed') });
    await waitFor('aiortc receives the eight other tracks', () => aiortcFlowing(aiortc).length >= 8, {
      timeoutMs: MEDIA_TIMEOUT, describe: describeAll('aiortc'),
    });
    await waitFor('webrtc-rs receives frames and keyframes of four videos and four audio tracks', () => rsFlowing(rs).length >= 8, {
      timeoutMs: MEDIA_TIMEOUT, describe: describeAll('webrtcRs'),
    });
    console.log(`# five participants, four stacks, full mesh flowing ${Date.now() - started} ms after the first join`);

    // The seed page published its audio in a bundle-only section.
    const offer = await pages.seed.evaluate(() => window.seedPcs.pubPc.localDescription.sdp);
    const audio = offer.slice(offer.indexOf('m=audio'));
    assert.match(audio, /^m=audio 0 /, 'Firefox max-bundle offers the second section with port 0');
    assert.match(audio.split(/\r\nm=/)[0], /a=bundle-only/, 'and a=bundle-only');
    // No client got new server ICE credentials.
    const seedUfrags = new Set((await seedMedia(pages.seed)).ufrags);
    assert.equal(seedUfrags.size, 1, `seed page offers: ${[...seedUfrags]}`);
    assert.equal(new Set(aiortc.stats.offers).size, 1, `aiortc offers: ${aiortc.stats.offers}`);
    assert.deepEqual(aiortc.errors.filter((e) => e.code !== 'bad-request'), []);
    assert.equal(new Set(rs.stats.offers).size, 1, `webrtc-rs offers: ${rs.stats.offers}`);
    assert.deepEqual(rs.errors, []);
  });

  test('a publisher leaves and comes back; everyone receives it again', async () => {
    const seenBefore = new Set(aiortcFlowing(aiortc));
    const rsSeenBefore = new Set(rsFlowing(rs));
    const before = { chrome: await pageMedia(pages.chrome), firefox: await pageMedia(pages.firefox) };
    await pages.seed.close();
    delete pages.seed;
    for (const name of ['chrome', 'firefox']) {
      await waitFor(`${name} drops the seed tile`, async () => !(await pageMedia(pages[name])).tiles.some((t) => t.participantId === 'seed'), {
        timeoutMs: 20_000, describe: describeAll(name),
      });
    }
    pages.seed = await openSeed('seed');
    for (const name of ['chrome', 'firefox']) {
      await waitFor(`${name} decodes the returning seed page`, async () => receivesFrom(await pageMedia(pages[name]), ['seed'], before[name]), {
        timeoutMs: MEDIA_TIMEOUT, describe: describeAll(name),
      });
    }
    await waitFor('aiortc receives the returning tracks', () => aiortcFlowing(aiortc).filter((id) => !seenBefore.has(id)).length >= 2, {
      timeoutMs: MEDIA_TIMEOUT, describe: describeAll('aiortc'),
    });
    await waitFor('webrtc-rs receives the returning tracks', () => rsFlowing(rs).filter((id) => !rsSeenBefore.has(id)).length >= 2, {
      timeoutMs: MEDIA_TIMEOUT, describe: describeAll('webrtcRs'),
    });
    await waitFor('the returning seed page decodes the other four', async () => {
      const m = await seedMedia(pages.seed);
      return m.video >= 4 && m.audio >= 4;
    }, { timeoutMs: MEDIA_TIMEOUT, describe: describeAll('seed') });
    assert.equal(new Set(aiortc.stats.offers).size, 1, `aiortc offers: ${aiortc.stats.offers}`);
    assert.equal(new Set(rs.stats.offers).size, 1, `webrtc-rs offers: ${rs.stats.offers}`);
  });

  test('the server never restarted ICE', () => {
    const log = readFileSync(path.join(artifactsDir, 'interop-server.log'), 'utf8');
    const restarts = log.split('\n').filter((l) => l.includes('restarting ICE of a subscribe transport'));
    assert.deepEqual(restarts, []);
  });
});
