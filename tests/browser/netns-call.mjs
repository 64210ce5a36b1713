// Chromium legs of tests/network.rs: run by that test inside the client
// namespace of one of its topologies (`nsenter --net=…`), never by
// `node --test` (the name matches no test pattern). Two demo pages join one
// room with the tokens given, each publishing its fake camera and
// microphone and subscribing to the other, and the script reports on
// stdout, as one JSON line, what each page saw: whether it decodes the
// other, the connection states, and the candidate types of the selected
// pair of each PeerConnection. The Rust test asserts on that.
//
//   node netns-call.mjs '{"url":"http://198.51.100.10:9000","room":"r",
//     "tokens":["…","…"],"expect":"media"|"none","waitMs":30000}'
//
// expect "media": waits (up to waitMs) until both pages decode each other;
// "none": watches for waitMs, then reports (media is not expected).
//
// Network rule: refuses to run unless every address here is loopback or
// in the documentation ranges the test's namespaces use (198.51.100.0/24,
// 203.0.113.0/24), so the browser can only reach what the test built.

import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { launchBrowser, newPage, pageMedia, receivesFrom } from './harness.mjs';

function requireTopologyNamespace() {
  const links = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8' }));
  const addrs = links.flatMap((l) => (l.addr_info || []).map((a) => a.local));
  const ok = (a) => a === '127.0.0.1' || a === '::1' || a.startsWith('fe80:')
    || a.startsWith('198.51.100.') || a.startsWith('203.0.113.');
  const foreign = addrs.filter((a) => !ok(a));
  if (foreign.length > 0) {
    throw new Error(`netns-call.mjs runs only inside a test topology's namespace; this one has ${foreign.join(', ')}`);
  }
}

/** Candidate types and addresses of the selected pair of `pc` (null before one is). */
async function selectedPairOf(page, which) {
  return page.evaluate(async (which) => {
    const c = window.sfuApp?.client;
    const pc = which === 'publish' ? c?._pub?.pc : c?._sub?.pc;
    if (!pc) return null;
    const r = await pc.getStats();
    let pairId = null;
    r.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    let pair = pairId ? r.get(pairId) : null;
    if (!pair) r.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (!pair) return { state: pc.connectionState };
    const local = r.get(pair.localCandidateId);
    const remote = r.get(pair.remoteCandidateId);
    return {
      state: pc.connectionState,
      local: local?.candidateType ?? null,
      localAddress: local?.address ?? null,
      remote: remote?.candidateType ?? null,
      remoteAddress: remote?.address ?? null,
    };
  }, which);
}

async function main() {
  const args = JSON.parse(process.argv[2] ?? '{}');
  const { url, room, tokens, expect, waitMs = 30_000 } = args;
  if (!url || !room || !Array.isArray(tokens) || tokens.length !== 2 || !['media', 'none'].includes(expect)) {
    throw new Error(`usage: node netns-call.mjs '{"url":…,"room":…,"tokens":[a,b],"expect":"media"|"none"}' (got ${process.argv[2]})`);
  }
  requireTopologyNamespace();
  // Plain HTTP on a non-local address is no secure context: the camera
  // needs this flag (the TLS tests cover the secure-context case).
  const browser = await launchBrowser({ extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${url}`] });
  const deadline = Date.now() + waitMs;
  try {
    const pages = [];
    for (const [i, token] of tokens.entries()) {
      const page = await newPage(browser, `page${i}`);
      await page.goto(`${url}/?room=${encodeURIComponent(room)}&name=chromium${i}&token=${encodeURIComponent(token)}&autojoin=1`);
      pages.push(page);
    }
    const ids = [null, null];
    const media = [null, null];
    let received = [false, false];
    for (;;) {
      for (const [i, page] of pages.entries()) {
        ids[i] = await page.evaluate(() => (document.body.dataset.state === 'connected' ? window.sfuApp?.client?.participantId ?? null : null));
      }
      if (ids.every(Boolean)) {
        for (const [i, page] of pages.entries()) media[i] = await pageMedia(page);
        received = media.map((m, i) => receivesFrom(m, [ids[1 - i]]));
        if (expect === 'media' && received.every(Boolean)) break;
      }
      if (Date.now() > deadline) break;
      await sleep(500);
    }
    const report = [];
    for (const [i, page] of pages.entries()) {
      report.push({
        participantId: ids[i],
        received: received[i],
        publish: await selectedPairOf(page, 'publish'),
        subscribe: await selectedPairOf(page, 'subscribe'),
        stats: media[i]?.stats ?? [],
        console: page.consoleLines.slice(-10),
      });
    }
    process.stdout.write(`${JSON.stringify({ pages: report })}\n`);
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`netns-call.mjs: ${e?.stack ?? e}\n`);
  process.exit(2);
});
