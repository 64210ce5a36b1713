// The seed-001 flow from a raw RTCPeerConnection snippet (seed-001-client.js)
// in real Chromium: one page publishes camera and mic, a second page
// subscribes to it with the server offering first.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTestNetwork, startServer, launchBrowser, newPage, waitFor } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOM = 'seed';

async function openSeed(browser, server, label, publish) {
  const page = await newPage(browser, label);
  // Any page of the server's origin: 127.0.0.1 is a secure context, so
  // getUserMedia exists; the snippet is added as a script.
  await page.goto(`${server.url}/health`);
  await page.addScriptTag({ path: path.join(here, 'seed-001-client.js') });
  const { token } = await (await fetch(`${server.url}/dev/token?user=${label}`)).json();
  const wsUrl = `${server.url.replace('http', 'ws')}/ws`;
  await page.evaluate((args) => window.seedClient(args), { url: wsUrl, token, room: ROOM, publish });
  return page;
}

test('the seed-001 snippet publishes and a second snippet page subscribes', async () => {
  requireTestNetwork();
  const server = await startServer({ name: 'seed-server' });
  const browser = await launchBrowser();
  try {
    const pub = await openSeed(browser, server, 'seed-pub', true);
    const subStarted = Date.now();
    const sub = await openSeed(browser, server, 'seed-sub', false);
    const inbound = () => sub.evaluate(async () => {
      const stats = await window.seedPcs.subPc.getStats();
      const out = [];
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp') out.push({ kind: s.kind, framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, packetsReceived: s.packetsReceived || 0 });
      });
      return { out, videoWidth: window.seedVideo.videoWidth, log: window.seedLog };
    });
    const got = await waitFor('the subscriber page to decode video and receive audio', async () => {
      const r = await inbound();
      const video = r.out.some((s) => s.kind === 'video' && s.framesDecoded > 0 && s.frameWidth > 0);
      const audio = r.out.some((s) => s.kind === 'audio' && s.packetsReceived > 0);
      return video && audio && r.videoWidth > 0 && r;
    }, { timeoutMs: 45_000, intervalMs: 50, describe: async () => ({ sub: await inbound(), pubLog: await pub.evaluate(() => window.seedLog), console: [...pub.consoleLines, ...sub.consoleLines].slice(-20) }) });
    console.log(`# seed-001 subscriber page: video decoded and audio received ${Date.now() - subStarted} ms after it opened`);
    assert.ok(!got.log.some((l) => String(l).startsWith("failed")), `snippet steps failed: ${got.log} ${await sub.evaluate(() => JSON.stringify(window.seedFailedSdp))}`);
    const pubLog = await pub.evaluate(() => window.seedLog);
    assert.ok(pubLog.includes('publish-answer'), `publisher log: ${pubLog}`);
    assert.ok(!pubLog.some((l) => String(l).startsWith('failed')), `publisher steps failed: ${pubLog}`);
  } finally {
    await browser.close();
    await server.stop();
  }
});
