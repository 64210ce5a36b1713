// The demo app and web/sfu-client.js in real Chromium against the real
// server binary: a three-person call, leave and rejoin, a server restart in
// the middle of the call, and a screenshot of the result.
//
// The steps share one server and one browser and run in order (node:test
// runs the tests of a file one after another), so a later step starts from
// the call the earlier one set up.

import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import {
  requireTestNetwork, startServer, launchBrowser, newPage, waitFor, pageMedia,
  receivesFrom, joinDemo, artifactsDir,
} from './harness.mjs';

const ROOM = 'demo-room';
const NAMES = ['Ada', 'Brian', 'Chen'];
const MEDIA_TIMEOUT = 45_000;

describe('demo app in Chromium', () => {
  let server;
  let browser;
  const pages = [];
  const ids = [];

  const others = (i) => ids.filter((_, j) => j !== i);
  const describeAll = async () => {
    const out = [];
    for (const p of pages) out.push({ ...(await pageMedia(p).catch((e) => String(e))), console: p.consoleLines.slice(-15) });
    return out;
  };
  const waitForFullMesh = async (what, since) => {
    for (let i = 0; i < pages.length; i++) {
      await waitFor(`${what}: ${NAMES[i]} receives ${others(i).join(', ')}`, async () => receivesFrom(await pageMedia(pages[i]), others(i), since?.[i]), {
        timeoutMs: MEDIA_TIMEOUT,
        describe: describeAll,
      });
    }
  };

  before(async () => {
    requireTestNetwork();
    server = await startServer({ name: 'demo-server' });
    browser = await launchBrowser();
    for (const name of NAMES) pages.push(await newPage(browser, name));
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('three pages publish camera and mic and each receives the other two', async () => {
    const started = Date.now();
    for (let i = 0; i < NAMES.length; i++) ids.push(await joinDemo(pages[i], server, { name: NAMES[i], room: ROOM }));
    assert.equal(new Set(ids).size, 3, `distinct participant ids: ${ids}`);
    await waitForFullMesh('first call');
    console.log(`# three-page call: all media flowing ${Date.now() - started} ms after the first join`);
    const health = await server.health();
    assert.equal(health.participants, 3);
    assert.equal(health.publishers, 3);
    // Names are shown on the tiles.
    const media = await pageMedia(pages[0]);
    assert.deepEqual(media.tiles.map((t) => t.name.trim()).sort(), ['Brian', 'Chen']);
  });

  test('screenshot of the demo app with remote videos', async () => {
    mkdirSync(artifactsDir, { recursive: true });
    const file = path.join(artifactsDir, 'demo-call.png');
    await pages[0].screenshot({ path: file });
    console.log(`# screenshot: ${file}`);
  });

  test('chat reaches every page', async () => {
    await pages[1].fill('#chat-input', 'hello from Brian');
    await pages[1].press('#chat-input', 'Enter');
    for (const p of pages) {
      await waitFor('chat line', () => p.evaluate(() => document.querySelector('#chat-log').textContent.includes('hello from Brian')), { timeoutMs: 10_000 });
    }
  });

  test('a page that leaves loses its tile on the others and gets it back on rejoin', async () => {
    const leaver = pages[2];
    await leaver.click('#leave');
    for (const p of pages.slice(0, 2)) {
      await waitFor('tile of Chen to go', async () => !(await pageMedia(p)).tiles.some((t) => t.participantId === ids[2]), { timeoutMs: 15_000, describe: describeAll });
    }
    await waitFor('leaver to be closed', () => leaver.evaluate(() => document.body.dataset.state === 'closed'), { timeoutMs: 10_000 });
    await leaver.click('#join');
    await waitFor('rejoin', () => leaver.evaluate(() => document.body.dataset.state === 'connected'), { timeoutMs: 20_000, describe: describeAll });
    ids[2] = await leaver.evaluate(() => window.sfuApp.client.participantId);
    await waitForFullMesh('after rejoin');
  });

  test('the server restarts mid-call and the pages reconnect by themselves', async () => {
    const port = server.port;
    const stopped = Date.now();
    await server.stop('SIGTERM');
    for (const p of pages) {
      await waitFor('pages to notice', () => p.evaluate(() => document.body.dataset.state !== 'connected'), { timeoutMs: 15_000 });
    }
    server = await startServer({ port, name: 'demo-server-restarted' });
    for (const p of pages) {
      await waitFor('pages to reconnect', () => p.evaluate(() => document.body.dataset.state === 'connected'), { timeoutMs: 30_000, describe: describeAll });
    }
    // New subscribe PeerConnections: counters start again, so require
    // fresh frames by sampling twice.
    await waitForFullMesh('after restart');
    const first = [];
    for (const p of pages) first.push(await pageMedia(p));
    await waitForFullMesh('still flowing after restart', first);
    console.log(`# server restart: media flowing again ${Date.now() - stopped} ms after SIGTERM`);
    const health = await server.health();
    assert.equal(health.participants, 3);
  });
});
