// Shared parts of the browser tests: the real server binary, Debian's
// Chromium driven by playwright-core, and polling helpers that read media
// statistics from the pages.
//
// Network rule: these tests run inside the network namespace that
// scripts/test.sh makes (loopback plus a veth pair holding 10.77.0.1 and
// 10.77.0.2). `requireTestNetwork()` refuses to run anywhere else, so a
// browser started by these tests can never reach a real network.

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const artifactsDir = path.join(repoRoot, 'artifacts', 'browser');
export const TEST_IP = '10.77.0.1';
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/lib/chromium/chromium';
const FIREFOX = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';
const SERVER_BIN = process.env.SFU_BIN || path.join(repoRoot, 'target', 'debug', 'rheo-sfu');

/** Addresses allowed on this host: loopback and the namespace's 10.77.0.0/24. */
function allowedAddress(addr) {
  return addr === '127.0.0.1' || addr === '::1' || addr.startsWith('10.77.0.');
}

/**
 * Fails loudly unless every address of this host is loopback or 10.77.0.x
 * and 10.77.0.1 sits on a non-loopback link (Chromium ignores loopback
 * interfaces for ICE): that is, unless we run inside scripts/test.sh's
 * namespace.
 */
export function requireTestNetwork() {
  const links = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show'], { encoding: 'utf8' }));
  const addrs = links.flatMap((l) => (l.addr_info || []).map((a) => ({ link: l.ifname, flags: l.flags, addr: a.local })));
  const foreign = addrs.filter((a) => !allowedAddress(a.addr) && !a.addr.startsWith('fe80:'));
  if (foreign.length > 0) {
    throw new Error(`browser tests must run inside the test network namespace (run ./scripts/test.sh); this host has ${foreign.map((a) => a.addr).join(', ')}`);
  }
  const ok = addrs.some((a) => a.addr === TEST_IP && !a.flags.includes('LOOPBACK'));
  if (!ok) {
    throw new Error(`browser tests need ${TEST_IP} on a veth inside a network namespace (run ./scripts/test.sh)`);
  }
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the real server binary in development mode (random secret,
 * `/dev/token`), HTTP on 127.0.0.1:port, media announced on 10.77.0.1.
 */
export async function startServer({ port, name = 'server', env = {} } = {}) {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`server binary ${SERVER_BIN} not found: run \`cargo build\` first (scripts/test.sh does)`);
  }
  mkdirSync(artifactsDir, { recursive: true });
  port = port ?? (await freePort());
  const logPath = path.join(artifactsDir, `${name}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(SERVER_BIN, [], {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      ANNOUNCED_IPS: TEST_IP,
      RELAY_PORT: '0',
      SHUTDOWN_GRACE_SECS: '3',
      RUST_LOG: process.env.SFU_LOG || 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  // No probe before the server has bound its port (it logs "listening"
  // after the bind): a connect to a port nobody holds yet can be given that
  // very port as its source and connect to itself (TCP self-connect), and a
  // pooled socket of that kind never reaches the server.
  let listening = false;
  const watch = (chunk) => { if (String(chunk).includes('listening')) listening = true; };
  child.stdout.on('data', watch);
  child.stderr.on('data', watch);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const done = await Promise.race([exited, sleep(200).then(() => null)]);
    if (done) throw new Error(`server exited at start (${JSON.stringify(done)}); log: ${logPath}`);
    if (listening) {
      try {
        const r = await fetch(`${url}/health`, { headers: { connection: 'close' } });
        if (r.ok) break;
      } catch {
        // not answering yet
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not answer /health within 20 s; log: ${logPath}`);
    }
  }
  return {
    port,
    url,
    pid: child.pid,
    logPath,
    exited,
    health: async () => (await fetch(`${url}/health`)).json(),
    /** SIGTERM (graceful drain), then SIGKILL after 10 s; resolves when it exited. */
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      // Unref'd: a pending 10 s timer would keep the test process alive
      // after the server exited.
      const r = await Promise.race([exited, sleep(10_000, null, { ref: false })]);
      if (r) return r;
      child.kill('SIGKILL');
      return exited;
    },
  };
}

/**
 * Debian's Chromium, headless, fake camera and microphone, fresh profile;
 * `extraArgs` are added to the command line.
 */
export async function launchBrowser({ extraArgs = [] } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's \`chromium\` package (scripts/test.sh does)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      ...extraArgs,
    ],
  });
}

/**
 * Debian's Firefox ESR, headless, driven over WebDriver BiDi by
 * puppeteer-core: fake camera and microphone, host candidates with their
 * real addresses. It gathers no ICE candidate without a default route;
 * scripts/in-testnet.sh adds one on the veth (nothing leaves through it).
 */
export async function launchFirefox() {
  if (!existsSync(FIREFOX)) {
    throw new Error(`Firefox not found at ${FIREFOX}: install Debian's \`firefox-esr\` package (scripts/test.sh does)`);
  }
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.peerconnection.ice.default_address_only': false,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
      'app.update.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
    },
  });
}

/** A new Firefox page in its own user context, console collected. */
export async function newFirefoxPage(browser, label) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 720 });
  return collectConsole(page, label);
}

/** Keeps the page's last 500 console lines (and page errors) in `page.consoleLines`. */
function collectConsole(page, label) {
  page.consoleLines = [];
  page.on('console', (m) => {
    const line = `[${label}] ${m.type()}: ${m.text()}`;
    page.consoleLines.push(line);
    if (page.consoleLines.length > 500) page.consoleLines.shift();
    if (process.env.BROWSER_LOG) console.log(line);
  });
  page.on('pageerror', (e) => page.consoleLines.push(`[${label}] pageerror: ${e.message}`));
  return page;
}

/** A new page in its own browser context, console errors collected. */
export async function newPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  return collectConsole(await context.newPage(), label);
}

/**
 * Polls `check()` every `intervalMs` until it returns a truthy value or
 * `timeoutMs` passes; then throws with the last value `describe()` gives.
 */
export async function waitFor(what, check, { timeoutMs = 30_000, intervalMs = 500, describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = describe ? await describe().catch((e) => String(e)) : last;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${typeof detail === 'string' ? detail : JSON.stringify(detail, null, 1)}`);
    }
    await sleep(intervalMs);
  }
}

/** What a demo page sees: client state, its id, inbound stats, tiles. */
export async function pageMedia(page) {
  return page.evaluate(async () => {
    const app = window.sfuApp;
    const client = app && app.client;
    const tiles = [...document.querySelectorAll('#tiles .tile')].map((t) => {
      const v = t.querySelector('video');
      return { participantId: t.dataset.participantId, videoWidth: v ? v.videoWidth : 0, name: t.querySelector('.name')?.textContent ?? '' };
    });
    if (!client) return { state: 'none', tiles, stats: [] };
    let stats = [];
    try {
      stats = await client.getInboundStats();
    } catch (e) {
      stats = [{ error: String(e) }];
    }
    return { state: client.state, participantId: client.participantId, tiles, stats };
  });
}

/**
 * True when the page decodes video (framesDecoded > 0, frameWidth > 0) and
 * receives audio (packetsReceived > 0) from every id in `publisherIds`, and
 * each of their tiles shows a video with videoWidth > 0. With `since`
 * (an earlier `pageMedia` result), a track seen then must also have grown
 * its counters since; a new track (a publisher that came back publishes new
 * ones, whose counters start at 0) needs only to flow.
 */
export function receivesFrom(media, publisherIds, since) {
  const before = (s) => since?.stats.find((b) => b.publisherId === s.publisherId && b.kind === s.kind && b.trackId === s.trackId);
  return publisherIds.every((pid) => {
    const video = media.stats.filter((s) => s.publisherId === pid && s.kind === 'video');
    const audio = media.stats.filter((s) => s.publisherId === pid && s.kind === 'audio');
    const tile = media.tiles.find((t) => t.participantId === pid);
    const v = video.some((s) => s.framesDecoded > 0 && s.frameWidth > 0 && (!before(s) || s.framesDecoded > before(s).framesDecoded));
    const a = audio.some((s) => s.packetsReceived > 0 && (!before(s) || s.packetsReceived > before(s).packetsReceived));
    return v && a && tile && tile.videoWidth > 0;
  });
}

/** Opens the demo app and joins `room` as `name`; resolves with the participant id. */
export async function joinDemo(page, server, { name, room }) {
  await page.goto(`${server.url}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}&autojoin=1${process.env.BROWSER_LOG ? "&debug=1" : ""}`);
  await waitFor(`${name} to join`, () => page.evaluate(() => document.body.dataset.state === 'connected' && window.sfuApp?.client?.participantId), {
    timeoutMs: 20_000,
    describe: async () => ({ state: await page.evaluate(() => document.body.dataset.state), error: await page.evaluate(() => document.querySelector('#error')?.textContent), console: page.consoleLines.slice(-20) }),
  });
  return page.evaluate(() => window.sfuApp.client.participantId);
}
