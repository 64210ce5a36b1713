// Four WebRTC stacks in one room against the real server: Chromium and
// Firefox ESR with the web library (prepared subscribe flow), Firefox with
// the seed-001 snippet, bundlePolicy max-bundle and the camera added first
// (its audio is a bundle-only section, as GStreamer's; the server offers
// first), and aiortc (an independent
// stack without ICE restarts). Every participant decodes every other's video
// and receives its audio; a publisher leaves and comes back; the server
// never restarts ICE.

import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync, existsSync, rmSync } from 'node:fs';
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

/** Tracks (msid track ids) aiortc gets more than `n` packets on. */
const aiortcFlowing = (peer, n = 50) => Object.entries(peer.stats.inbound).filter(([, c]) => c > n).map(([id]) => id);

/** The seed-001 page: decoded video and received audio per inbound stream. */
async function seedMedia(page) {
  return page.evaluate(async () => {
    const out = { video: 0, audio: 0, ufrags: window.seedOfferUfrags || [], log: window.seedLog };
    (await window.seedPcs.subPc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video' && s.framesDecoded > 0) out.video += 1;
      if (s.kind === 'audio' && s.packetsReceived > 0) out.audio += 1;
    });
    return out;
  });
}

describe('Chromium, Firefox and aiortc in one room', () => {
  let server;
  let chromium;
  let firefox;
  let aiortc;
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
  const describeAll = async () => {
    const out = { aiortc: { flowing: aiortcFlowing(aiortc), errors: aiortc.errors } };
    for (const [name, p] of Object.entries(pages)) {
      out[name] = name === 'seed' ? await seedMedia(p).catch(String) : { ...(await pageMedia(p).catch(String)), console: p.consoleLines.slice(-10) };
    }
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

    const all = Object.values(ids);
    for (const name of ['chrome', 'firefox']) {
      const others = all.filter((id) => id !== ids[name]);
      await waitFor(`${name} decodes ${others.join(', ')}`, async () => receivesFrom(await pageMedia(pages[name]), others), {
        timeoutMs: MEDIA_TIMEOUT, describe: describeAll,
      });
    }
    await waitFor('the seed page decodes three videos and hears three', async () => {
      const m = await seedMedia(pages.seed);
      return m.video >= 3 && m.audio >= 3;
    }, { timeoutMs: MEDIA_TIMEOUT, describe: describeAll });
    await waitFor('aiortc receives the six browser tracks', () => aiortcFlowing(aiortc).length >= 6, {
      timeoutMs: MEDIA_TIMEOUT, describe: describeAll,
    });
    console.log(`# four stacks, full mesh flowing ${Date.now() - started} ms after the first join`);

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
  });

  test('a publisher leaves and comes back; everyone receives it again', async () => {
    const seenBefore = new Set(aiortcFlowing(aiortc));
    const before = { chrome: await pageMedia(pages.chrome), firefox: await pageMedia(pages.firefox) };
    await pages.seed.close();
    delete pages.seed;
    for (const name of ['chrome', 'firefox']) {
      await waitFor(`${name} drops the seed tile`, async () => !(await pageMedia(pages[name])).tiles.some((t) => t.participantId === 'seed'), {
        timeoutMs: 20_000, describe: describeAll,
      });
    }
    pages.seed = await openSeed('seed');
    for (const name of ['chrome', 'firefox']) {
      await waitFor(`${name} decodes the returning seed page`, async () => receivesFrom(await pageMedia(pages[name]), ['seed'], before[name]), {
        timeoutMs: MEDIA_TIMEOUT, describe: describeAll,
      });
    }
    await waitFor('aiortc receives the returning tracks', () => aiortcFlowing(aiortc).filter((id) => !seenBefore.has(id)).length >= 2, {
      timeoutMs: MEDIA_TIMEOUT, describe: describeAll,
    });
    await waitFor('the returning seed page decodes the other three', async () => {
      const m = await seedMedia(pages.seed);
      return m.video >= 3 && m.audio >= 3;
    }, { timeoutMs: MEDIA_TIMEOUT, describe: describeAll });
    assert.equal(new Set(aiortc.stats.offers).size, 1, `aiortc offers: ${aiortc.stats.offers}`);
  });

  test('the server never restarted ICE', () => {
    const log = readFileSync(path.join(artifactsDir, 'interop-server.log'), 'utf8');
    const restarts = log.split('\n').filter((l) => l.includes('restarting ICE of a subscribe transport'));
    assert.deepEqual(restarts, []);
  });
});
