// The web client under a node failure, in real Chromium: a real
// redis-server and three real nodes in cluster mode (default lease and
// registry TTL), two demo pages in one room, both on node A (which holds
// the room). Node A is SIGKILLed; each page's socket drops without a
// `reconnect` message, so the client moves to the next URL of its list
// (page 1: A, B, C; page 2: A, C, B), rejoins once A's room lease has
// expired, and media flows again without a user action. The time from the
// kill to media back is printed (a figure, not an assertion: the machine is
// shared and the lease decides most of it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { connect } from 'node:net';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  requireTestNetwork, startServer, launchBrowser, newPage, waitFor, pageMedia,
  receivesFrom, freePort, artifactsDir,
} from './harness.mjs';

const ROOM = 'failover-room';
const SECRET = 'failover-test-secret-0123456789';
const MEDIA_TIMEOUT = 45_000;

/** An HS256 token for `sub`, signed with the nodes' shared JWT_SECRET. */
function token(sub) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    sub, name: sub, rooms: [ROOM], canPublish: true, canSubscribe: true, admin: false, iat: now, exp: now + 3600,
  })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listens(port) {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      const self = s.localPort === port; // TCP self-connect is no listener
      s.destroy();
      resolve(!self);
    });
    s.once('error', () => resolve(false));
  });
}

/** redis-server without persistence on a free loopback port; stopped by its pid. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const failed = new Promise((resolve) => child.once('error', resolve));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const err = await Promise.race([failed, sleep(100).then(() => null)]);
    if (err) throw new Error(`cannot start redis-server (${err.message}): install Debian's redis-server (scripts/test.sh does)`);
    if (await listens(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not listen on ${port} within 10 s`);
    }
  }
  return {
    url: `redis://127.0.0.1:${port}/`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A cluster node: the real binary with the default lease and TTL. */
async function startNode(id, redisUrl, port) {
  port = port ?? (await freePort());
  const node = await startServer({
    port,
    name: `failover-${id}-${port}`,
    env: {
      CLUSTER_MODE: 'true',
      REDIS_URL: redisUrl,
      NODE_ID: id,
      JWT_SECRET: SECRET,
      ADVERTISE_URL: `ws://127.0.0.1:${port}/ws`,
      PLACEMENT: 'local',
      RUST_LOG: process.env.SFU_LOG || 'info,webrtc=error,webrtc_ice=error,rheomesh=warn',
    },
  });
  return { ...node, id, ws: `ws://127.0.0.1:${port}/ws` };
}

/** Opens the demo from `origin` with the URL list `urls` and joins as `name`. */
async function joinWith(page, origin, { name, urls }) {
  const qs = new URLSearchParams({ room: ROOM, name, token: token(name), urls: urls.join(','), autojoin: '1' });
  if (process.env.BROWSER_LOG) qs.set('debug', '1');
  await page.goto(`${origin.url}/?${qs}`);
  await waitFor(`${name} to join`, () => page.evaluate(() => document.body.dataset.state === 'connected' && window.sfuApp?.client?.participantId), {
    timeoutMs: 20_000,
    describe: async () => ({ error: await page.evaluate(() => document.querySelector('#error')?.textContent), console: page.consoleLines.slice(-20) }),
  });
  // Every state change and reconnect attempt of this client, with the time.
  await page.evaluate(() => {
    const c = window.sfuApp.client;
    window.failoverLog = [];
    c.addEventListener('state', (e) => window.failoverLog.push({ at: Date.now(), state: e.detail.state, reason: e.detail.reason }));
    c.addEventListener('reconnecting', (e) => window.failoverLog.push({ at: Date.now(), attempt: e.detail.attempt, delayMs: e.detail.delayMs, url: e.detail.url, reason: e.detail.reason }));
  });
  return page.evaluate(() => window.sfuApp.client.participantId);
}

/** Attempts of a failover log, for the printed figures. */
function attemptsOf(log, t0) {
  return log.filter((e) => e.attempt).map((e) => `#${e.attempt} ${e.at - t0}ms +${e.delayMs} to :${new URL(e.url).port} (after: ${String(e.reason).slice(0, 48)})`);
}

test('the node holding the room is killed: both demo pages move to other nodes and media comes back by itself', async () => {
  requireTestNetwork();
  const started = Date.now();
  const redis = await startRedis();
  const nodes = [];
  let browser;
  try {
    for (const id of ['a', 'b', 'c']) nodes.push(await startNode(id, redis.url));
    const [a, b, c] = nodes;
    browser = await launchBrowser();
    const names = ['Ada', 'Bo'];
    const pages = [await newPage(browser, names[0]), await newPage(browser, names[1])];
    // Both pages come from node A, which dies: a loaded page needs nothing
    // more from its origin (the token is in the URL and valid on every node).
    const ids = [];
    ids.push(await joinWith(pages[0], a, { name: names[0], urls: [a.ws, b.ws, c.ws] }));
    ids.push(await joinWith(pages[1], a, { name: names[1], urls: [a.ws, c.ws, b.ws] }));
    const describeAll = async () => {
      const out = [];
      for (const p of pages) {
        out.push({
          ...(await pageMedia(p).catch((e) => String(e))),
          url: await p.evaluate(() => window.sfuApp?.client?.url).catch(() => null),
          log: await p.evaluate(() => window.failoverLog).catch(() => null),
          console: p.consoleLines.slice(-15),
        });
      }
      return out;
    };
    const other = (i) => [ids[1 - i]];
    const roomOn = async (node) => (await (await fetch(`${node.url}/health?room=${ROOM}`)).json()).room?.owner;

    /** A steady call: media flowing on both pages, and still flowing a moment later. */
    const steadyCall = async (when) => {
      const first = [];
      for (let i = 0; i < 2; i++) {
        first.push(await waitFor(`${when}: page ${i} receives ${other(i)}`, async () => {
          const m = await pageMedia(pages[i]);
          return receivesFrom(m, other(i)) && m;
        }, { timeoutMs: MEDIA_TIMEOUT, describe: describeAll }));
      }
      for (let i = 0; i < 2; i++) {
        await waitFor(`${when}: page ${i}: media keeps flowing`, async () => receivesFrom(await pageMedia(pages[i]), other(i), first[i]), { timeoutMs: MEDIA_TIMEOUT, describe: describeAll });
      }
    };

    /**
     * SIGKILLs `kill` (no drain, no `reconnect` message; their leases are
     * left to expire) and waits until both pages decode each other again
     * through `expect[i]`, without any action on the pages.
     */
    const killAndRecover = async (phase, { kill, expect, live, neverTo = [] }) => {
      // From here on the logs hold what the kill caused.
      for (const p of pages) await p.evaluate(() => { window.failoverLog = []; });
      const killedAt = Date.now();
      await Promise.all(kill.map((n) => n.stop('SIGKILL')));
      const back = [null, null];
      await waitFor(`${phase}: both pages to decode the other again`, async () => {
        for (let i = 0; i < 2; i++) {
          if (back[i]) continue;
          const m = await pageMedia(pages[i]);
          const log = await pages[i].evaluate(() => window.failoverLog);
          // Media of the new session only: the page went through
          // `reconnecting` and is connected again.
          const wentAway = log.some((e) => e.state === 'reconnecting');
          if (wentAway && m.state === 'connected' && receivesFrom(m, other(i))) back[i] = { at: Date.now(), media: m };
        }
        return back[0] && back[1];
      }, { timeoutMs: 75_000, intervalMs: 200, describe: describeAll });
      // Still flowing: the counters grow past the first sample.
      for (let i = 0; i < 2; i++) {
        await waitFor(`${phase}: page ${i}: media keeps flowing on the new node`, async () => receivesFrom(await pageMedia(pages[i]), other(i), back[i].media), { timeoutMs: 20_000, describe: describeAll });
      }
      const figures = [];
      for (let i = 0; i < 2; i++) {
        const log = await pages[i].evaluate(() => window.failoverLog);
        const url = await pages[i].evaluate(() => window.sfuApp.client.url);
        assert.equal(url, expect[i].ws, `${phase}: page ${i} is on node ${expect[i].id}: ${JSON.stringify(log)}`);
        const states = log.filter((e) => e.state).map((e) => e.state);
        assert.ok(states.includes('reconnecting'), `${phase}: page ${i} went through reconnecting: ${JSON.stringify(log)}`);
        assert.equal(states.at(-1), 'connected');
        assert.ok(!states.includes('closed'), `${phase}: page ${i} never closed: ${JSON.stringify(log)}`);
        const attempts = log.filter((e) => e.attempt);
        for (const dead of neverTo) {
          assert.ok(attempts.every((e) => e.url !== dead.ws), `${phase}: no attempt went back to the dead node ${dead.id}: ${JSON.stringify(attempts)}`);
        }
        const media = back[i].at - killedAt;
        figures.push(media);
        const lost = log.find((e) => e.state === 'reconnecting').at - killedAt;
        const rejoined = log.findLast((e) => e.state === 'connected').at - killedAt;
        console.log(`# ${phase}, page ${i} (${names[i]}): socket lost ${lost} ms, rejoined through ${expect[i].id} ${rejoined} ms, media back ${media} ms after SIGKILL`);
        for (const line of attemptsOf(log, killedAt)) console.log(`#   attempt ${line}`);
      }
      const owner = await roomOn(live[0]);
      let participants = 0;
      for (const n of live) participants += (await n.health()).participants;
      assert.equal(participants, 2, `${phase}: the two participants are on the live nodes`);
      console.log(`# ${phase}: media back on both pages ${Math.max(...figures)} ms after SIGKILL (room now on ${owner}; default ROOM_LEASE_MS and NODE_TTL_MS)`);
      return owner;
    };

    await steadyCall('before the kill');
    assert.equal(await roomOn(b), 'a', 'node A holds the room');
    for (const p of pages) assert.equal(await p.evaluate(() => window.sfuApp.client.url), a.ws);

    // Phase 1: A (the room's node, and the pages' origin) dies. Ada's next
    // URL is B, Bo's is C.
    const owner1 = await killAndRecover('A killed', { kill: [a], expect: [b, c], live: [b, c], neverTo: [a] });
    assert.ok(['b', 'c'].includes(owner1), `a live node holds the room: ${owner1}`);
    mkdirSync(artifactsDir, { recursive: true });
    await pages[0].screenshot({ path: path.join(artifactsDir, 'failover.png') });

    // Phase 2: A comes back on its port; B and C die. Each page's next URL
    // is dead too (the socket does not open), then the list wraps around to A.
    const port = new URL(a.url).port;
    nodes[0] = await startNode('a', redis.url, Number(port));
    const a2 = nodes[0];
    await steadyCall('A back');
    const owner2 = await killAndRecover('B and C killed', { kill: [b, c], expect: [a2, a2], live: [a2] });
    assert.equal(owner2, 'a', 'the revived node holds the room');
    console.log(`# failover test ran ${Date.now() - started} ms`);
  } finally {
    if (browser) await browser.close();
    for (const n of nodes) await n.stop('SIGKILL');
    await redis.stop();
  }
});
