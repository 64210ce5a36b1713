// Unsubscribe and subscribe again, many times, on one subscribe
// PeerConnection in Chromium. rheomesh never removes a transceiver, so every
// resubscription adds an m-section for a track id an older m-section already
// carried; the server must keep Chromium's SDP parser happy ("Duplicate
// a=msid lines") and media must stop and resume each time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTestNetwork, startServer, launchBrowser, newPage, waitFor } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = 6;

test('unsubscribe and resubscribe six times on one PeerConnection in Chromium', async () => {
  requireTestNetwork();
  const server = await startServer({ name: 'resubscribe-server' });
  const browser = await launchBrowser();
  try {
    const open = async (label, publish) => {
      const page = await newPage(browser, label);
      await page.goto(`${server.url}/health`);
      await page.addScriptTag({ path: path.join(here, 'seed-001-client.js') });
      const { token } = await (await fetch(`${server.url}/dev/token?user=${label}`)).json();
      await page.evaluate((a) => window.seedClient(a), { url: `${server.url.replace('http', 'ws')}/ws`, token, room: 'resub', publish });
      return page;
    };
    await open('p', true);
    const sub = await open('s', false);
    const frames = () => sub.evaluate(async () => {
      let f = 0;
      (await window.seedPcs.subPc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') f += s.framesDecoded || 0;
      });
      return f;
    });
    const failures = () => sub.evaluate(() => window.seedLog.filter((l) => String(l).startsWith('failed')));
    await waitFor('first frames', async () => (await frames()) > 0, { timeoutMs: 30_000, describe: failures });
    for (let i = 0; i < ROUNDS; i++) {
      await sub.evaluate(() => window.seedSend({ type: 'unsubscribe', roomName: 'resub', publisherId: 'p' }));
      await sleep(1000);
      const stopped = await frames();
      await sleep(1000);
      const stillStopped = await frames();
      assert.ok(stillStopped - stopped <= 2, `round ${i}: video kept flowing after unsubscribe (${stopped} -> ${stillStopped})`);
      await sub.evaluate(() => window.seedSend({ type: 'subscribe-request', roomName: 'resub', publisherId: 'p' }));
      await waitFor(`round ${i}: video to resume`, async () => (await frames()) > stillStopped + 10, { timeoutMs: 20_000, describe: failures });
      assert.deepEqual(await failures(), [], `round ${i}`);
    }
    const sections = await sub.evaluate(() => window.seedPcs.subPc.getTransceivers().length);
    console.log(`# ${ROUNDS} resubscriptions: ${sections} transceivers on the subscribe PeerConnection`);
  } finally {
    await browser.close();
    await server.stop();
  }
});
