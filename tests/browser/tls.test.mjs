// TLS served by the binary itself (TLS_CERT_PATH/TLS_KEY_PATH): Chromium
// loads the demo app from https://10.77.0.1 (a namespace address, not
// localhost: the case where browsers insist on a secure context for the
// camera), trusting the test's certificate by its public key, and two
// pages hold a call over wss://.

import { describe, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  requireTestNetwork, startServer, launchBrowser, newPage, waitFor, pageMedia,
  receivesFrom, joinDemo, TEST_IP,
} from './harness.mjs';

const MEDIA_TIMEOUT = 45_000;

/** A CA and a leaf for TEST_IP made with the openssl CLI; the leaf's SPKI hash. */
function makeCertificate(dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=rheo-sfu browser test CA');
  writeFileSync(path.join(dir, 'leaf.ext'), `subjectAltName=IP:${TEST_IP}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=rheo-sfu');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'leaf.crt', '-days', '2', '-extfile', 'leaf.ext');
  const spki = execFileSync('sh', ['-c',
    'openssl x509 -in leaf.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64'],
  { cwd: dir, encoding: 'utf8' }).trim();
  return { cert: path.join(dir, 'leaf.crt'), key: path.join(dir, 'leaf.key'), spki };
}

describe('TLS: the demo app from https://10.77.0.1 in Chromium', () => {
  let server;
  let browser;
  let dir;
  const pages = [];

  before(async () => {
    requireTestNetwork();
    dir = mkdtempSync(path.join(os.tmpdir(), 'rheo-sfu-tls-'));
    const { cert, key, spki } = makeCertificate(dir);
    // HOST 0.0.0.0: TLS on 10.77.0.1 for the pages; the harness's
    // readiness probe uses plain HTTP on loopback, which a TLS port serves.
    server = await startServer({ name: 'tls-server', env: { HOST: '0.0.0.0', TLS_CERT_PATH: cert, TLS_KEY_PATH: key } });
    // Trusts exactly this certificate's key, like a pinned deployment.
    browser = await launchBrowser({ extraArgs: [`--ignore-certificate-errors-spki-list=${spki}`] });
    for (const name of ['Tess', 'Lars']) pages.push(await newPage(browser, name));
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('two pages in a secure context hold a call over wss://', async () => {
    const origin = { url: `https://${TEST_IP}:${server.port}` };
    const ids = [];
    for (const [i, name] of ['Tess', 'Lars'].entries()) ids.push(await joinDemo(pages[i], origin, { name, room: 'tls-room' }));
    for (const p of pages) {
      const ctx = await p.evaluate(() => ({ secure: window.isSecureContext, protocol: location.protocol, ws: window.sfuApp.client._opts?.url ?? null }));
      assert.equal(ctx.secure, true, 'a secure context');
      assert.equal(ctx.protocol, 'https:');
    }
    for (let i = 0; i < 2; i++) {
      await waitFor(`page ${i} receives the other`, async () => receivesFrom(await pageMedia(pages[i]), [ids[1 - i]]), {
        timeoutMs: MEDIA_TIMEOUT,
        describe: async () => ({ media: await pageMedia(pages[i]), console: pages[i].consoleLines.slice(-15) }),
      });
    }
  });

  test('plain http:// to the TLS port is refused with a readable 400', async () => {
    const r = await fetch(`http://${TEST_IP}:${server.port}/`);
    assert.equal(r.status, 400);
    assert.match(await r.text(), /use https:\/\/ or wss:\/\//);
  });
});
