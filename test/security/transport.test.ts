// Transport security (TS 33.434: IM-UU is HTTP over TLS; TS 33.310 annex E TLS profile), checked with real TLS clients
// (Node's tls and `openssl s_client`) against the real listener; cookies and page security headers under HTTPS.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type http from 'node:http';
import * as oidc from 'openid-client';
import { ConfigError, loadConfig, type Config } from '../../src/config/env.ts';
import { deriveSecrets } from '../../src/config/secret.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createListener, listen } from '../../src/http/listener.ts';
import { createIdms, type Idms } from '../../src/server.ts';
import { CookieJar } from '../helpers/browser.ts';
import { cli, cliOk } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_SECRET } from '../helpers/server.ts';
import { freePort, PASSWORDS, REDIRECT, SCOPE } from './support.ts';

const run = promisify(execFile);

let dir: string;
let database: TestDatabase;
let config: Config;
let idms: Idms;
let listener: http.Server;
let port: number;
let ca: Buffer;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-tls-'));
  const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  ca = await fs.readFile(cert);
  database = await createTestDatabase();
  port = await freePort();
  const env = {
    IDMS_ISSUER: `https://127.0.0.1:${port}`,
    IDMS_HOST: '127.0.0.1',
    IDMS_PORT: String(port),
    IDMS_DATABASE_URL: database.url,
    IDMS_SECRET: TEST_SECRET,
    IDMS_TLS_CERT: cert,
    IDMS_TLS_KEY: key,
  };
  config = loadConfig(env);
  // The same composition and listener as `seal-idms serve`.
  idms = await createIdms({ config, db: database.db, secrets: deriveSecrets(TEST_SECRET), log: () => {}, logger: silentLogger() });
  listener = createListener(config, idms.app);
  await listen(listener, config.port, config.host);
  await cliOk(env, ['user', 'add', 'alice', '--password', PASSWORDS.alice]);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
});

afterAll(async () => {
  listener?.closeAllConnections();
  await new Promise((resolve) => listener?.close(resolve));
  await idms?.close();
  await database?.drop();
  await fs.rm(dir, { recursive: true, force: true });
});

/** A TLS handshake with Node's client: the negotiated version and suite, or the error. */
function handshake(options: tls.ConnectionOptions): Promise<{ protocol: string | null; cipher: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options });
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().standardName });
      socket.end();
    });
    socket.once('error', (err) => resolve({ error: err.message }));
  });
}

/** `openssl s_client` against the server: exit code and the summary lines. */
async function sClient(args: string[]): Promise<{ ok: boolean; output: string }> {
  const pending = run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', path.join(dir, 'cert.pem'), ...args], { timeout: 10_000 });
  pending.child.stdin?.end(); // EOF on stdin: s_client closes after the handshake
  try {
    const { stdout, stderr } = await pending;
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

// Old protocol versions need the client's own security level lowered, or OpenSSL 3 would not even offer them
// and the refusal would prove nothing about the server.
const LEGACY_CLIENT = 'DEFAULT@SECLEVEL=0';

describe("TLS profile with Node's tls client", () => {
  test('TLS 1.3 connects with an AEAD suite', async () => {
    for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
      expect(await handshake({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: suite })).toEqual({ protocol: 'TLSv1.3', cipher: suite });
    }
  });

  test('TLS 1.2 connects with ECDHE and AES-GCM or ChaCha20-Poly1305', async () => {
    for (const suite of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const res = await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: suite });
      expect(res).toMatchObject({ protocol: 'TLSv1.2' });
    }
  });

  test('TLS 1.0 and 1.1 are refused', async () => {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const res = await handshake({ minVersion: version, maxVersion: version, ciphers: LEGACY_CLIENT });
      expect(res).toEqual({ error: expect.stringMatching(/protocol version|unsupported protocol/i) });
    }
  });

  test('TLS 1.2 CBC suites and suites without ECDHE are refused', async () => {
    for (const suite of ['ECDHE-RSA-AES128-SHA256', 'ECDHE-RSA-AES256-SHA', 'AES128-GCM-SHA256', 'AES256-SHA256', 'DHE-RSA-AES128-GCM-SHA256']) {
      const res = await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${suite}:@SECLEVEL=0` });
      expect({ suite, res }).toEqual({ suite, res: { error: expect.stringMatching(/handshake failure/i) } });
    }
  });

  test('renegotiation is refused', async () => {
    const result = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => {
        socket.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err ? `refused: ${err.message}` : 'renegotiated'));
      });
      socket.on('error', (err) => resolve(`refused: ${err.message}`));
      socket.on('close', () => resolve('refused: closed'));
    });
    expect(result).toMatch(/^refused/);
  });
});

describe('TLS profile with openssl s_client', () => {
  test('TLS 1.3 and TLS 1.2 ECDHE-AES-GCM connect', async () => {
    const v13 = await sClient(['-tls1_3']);
    expect(v13.ok).toBe(true);
    expect(v13.output).toMatch(/New, TLSv1\.3, Cipher is TLS_AES_(128|256)_GCM_SHA(256|384)/);
    const v12 = await sClient(['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-GCM-SHA384']);
    expect(v12.ok).toBe(true);
    expect(v12.output).toMatch(/New, TLSv1\.2, Cipher is ECDHE-RSA-AES256-GCM-SHA384/);
  });

  test('TLS 1.0 and 1.1 are refused with a protocol_version alert', async () => {
    for (const flag of ['-tls1', '-tls1_1']) {
      const res = await sClient([flag, '-cipher', LEGACY_CLIENT]);
      expect({ flag, ok: res.ok }).toEqual({ flag, ok: false });
      expect(res.output).toMatch(/alert protocol version/);
    }
  });

  test('a CBC suite and a non-ECDHE suite on TLS 1.2 are refused', async () => {
    for (const suite of ['ECDHE-RSA-AES128-SHA256', 'AES128-GCM-SHA256']) {
      const res = await sClient(['-tls1_2', '-cipher', `${suite}:@SECLEVEL=0`]);
      expect({ suite, ok: res.ok }).toEqual({ suite, ok: false });
      expect(res.output).toMatch(/alert handshake failure/);
    }
  });

  test('a client-initiated renegotiation (s_client "R") is refused', async () => {
    const output = await new Promise<string>((resolve) => {
      const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-CAfile', path.join(dir, 'cert.pem')]);
      let out = '';
      const collect = (chunk: Buffer) => {
        out += chunk.toString();
        // Once the handshake is done, ask for a renegotiation, then give the server a moment to answer.
        if (out.includes('Verify return code') && !out.includes('RENEGOTIATING')) {
          child.stdin.write('R\n');
          setTimeout(() => child.stdin.end(), 1000);
        }
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      child.on('close', () => resolve(out));
    });
    expect(output).toContain('RENEGOTIATING');
    expect(output).toMatch(/no renegotiation/);
  });
});

describe('configuration: no plaintext on non-loopback addresses', () => {
  test('binding 0.0.0.0 without TLS stops start-up with one clear line', async () => {
    const res = await cli({ IDMS_HOST: '0.0.0.0', IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET }, ['serve']);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/IDMS_HOST: 0\.0\.0\.0 is not a loopback address.*IDMS_TLS_CERT.*IDMS_TRUST_PROXY=1/);
  });

  test('IPv6 any-address and a LAN address are refused too; loopback forms are allowed', () => {
    for (const host of ['::', '192.168.1.10', 'idms.example.org']) expect(() => loadConfig({ IDMS_HOST: host })).toThrow(ConfigError);
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) expect(loadConfig({ IDMS_HOST: host }).host).toBe(host);
  });

  test('IDMS_TRUST_PROXY=1 (TLS terminated in front) allows it, and so does serving TLS', () => {
    expect(loadConfig({ IDMS_HOST: '0.0.0.0', IDMS_TRUST_PROXY: '1' }).trustProxy).toBe(true);
    expect(loadConfig({ IDMS_HOST: '0.0.0.0', IDMS_TLS_CERT: config.tls!.cert, IDMS_TLS_KEY: config.tls!.key }).tls).toBeDefined();
  });
});

type Answer = { status: number; headers: http.IncomingHttpHeaders; body: string };

function request(url: string, jar: CookieJar, options: { method?: string; form?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
    const req = https.request(
      url,
      {
        ca,
        method: options.method ?? 'GET',
        headers: { cookie: jar.header(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          jar.store(new Response(null, { headers: (res.headers['set-cookie'] ?? []).map((c) => ['set-cookie', c] as [string, string]) }));
          resolve({ status: res.statusCode!, headers: res.headers, body: text });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('cookies and page headers under HTTPS', () => {
  let setCookies: string[];
  let loginPage: Answer;
  let signedIn: CookieJar;

  beforeAll(async () => {
    const ue = await oidc.discovery(new URL(config.issuer), 'val-ue', undefined, oidc.None(), { [oidc.customFetch]: httpsFetch });
    const verifier = oidc.randomPKCECodeVerifier();
    const authUrl = oidc.buildAuthorizationUrl(ue, {
      redirect_uri: REDIRECT,
      scope: SCOPE,
      prompt: 'consent',
      state: oidc.randomState(),
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    // Walk the whole login over HTTPS, collecting every cookie the server sets.
    const jar = (signedIn = new CookieJar());
    setCookies = [];
    let res = await request(authUrl.href, jar);
    let url = authUrl.href;
    for (let i = 0; i < 10 && res.headers.location && !res.headers.location.startsWith(REDIRECT); i++) {
      setCookies.push(...(res.headers['set-cookie'] ?? []));
      url = new URL(res.headers.location, url).href;
      res = await request(url, jar);
    }
    loginPage = res;
    const action = /<form[^>]*action="([^"]+)"/.exec(res.body)![1]!;
    const csrf = /name="csrf" value="([^"]*)"/.exec(res.body)![1]!;
    res = await request(new URL(action, url).href, jar, { method: 'POST', form: { csrf, val_user_id: 'alice', password: PASSWORDS.alice } });
    for (let i = 0; i < 10; i++) {
      setCookies.push(...(res.headers['set-cookie'] ?? []));
      if (!res.headers.location || res.headers.location.startsWith(REDIRECT)) break;
      url = new URL(res.headers.location, url).href;
      res = await request(url, jar);
    }
    expect(res.headers.location).toMatch(new RegExp(`^${REDIRECT}\\?code=`));
  });

  test('every cookie is Secure, HttpOnly and SameSite', () => {
    const names = setCookies.map((c) => c.split('=')[0]);
    expect(names).toEqual(expect.arrayContaining(['_interaction', '_interaction_resume', '_session', '_session.sig']));
    for (const cookie of setCookies) {
      const attrs = cookie
        .toLowerCase()
        .split(';')
        .map((a) => a.trim());
      expect({
        cookie: cookie.split('=')[0],
        secure: attrs.includes('secure'),
        httpOnly: attrs.includes('httponly'),
        sameSite: attrs.some((a) => /^samesite=(lax|strict)$/.test(a)),
      }).toEqual({ cookie: cookie.split('=')[0], secure: true, httpOnly: true, sameSite: true });
    }
  });

  test('the login page forbids scripts and framing and leaks no referrer', () => {
    expect(loginPage.status).toBe(200);
    const csp = String(loginPage.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(csp).not.toMatch(/script-src/); // default-src 'none' then blocks every script
    expect(loginPage.headers['referrer-policy']).toBe('no-referrer');
    expect(loginPage.headers['x-content-type-options']).toBe('nosniff');
    expect(loginPage.headers['x-frame-options']).toBe('DENY');
    expect(loginPage.headers['cache-control']).toBe('no-store');
    expect(loginPage.body).not.toMatch(/<script|\son[a-z]+=/i);
  });

  test('the logout confirmation and error pages carry the same headers', async () => {
    const pages = [
      ['logout confirmation', await request(`${config.issuer}/session/end`, signedIn)],
      ['authorization error', await request(`${config.issuer}/auth?client_id=nope`, new CookieJar())],
      ['interaction error', await request(`${config.issuer}/interaction/unknown-uid`, new CookieJar())],
    ] as const;
    for (const [url, page] of pages) {
      expect(page.body).toMatch(/<html/);
      const csp = String(page.headers['content-security-policy']);
      expect({
        url,
        frameAncestors: /frame-ancestors 'none'/.test(csp),
        inline: /unsafe-inline/.test(csp),
        referrer: page.headers['referrer-policy'],
        nosniff: page.headers['x-content-type-options'],
      }).toEqual({ url, frameAncestors: true, inline: false, referrer: 'no-referrer', nosniff: 'nosniff' });
    }
  });

  test("oidc-provider's own auto-submit page (logout without a session) cannot be framed or sniffed", async () => {
    const page = await request(`${config.issuer}/session/end`, new CookieJar());
    expect(page.body).toMatch(/Submitting Callback/);
    expect({ frame: page.headers['x-frame-options'], nosniff: page.headers['x-content-type-options'], referrer: page.headers['referrer-policy'] }).toEqual({
      frame: 'DENY',
      nosniff: 'nosniff',
      referrer: 'no-referrer',
    });
  });

  test('HSTS is sent over HTTPS', async () => {
    const page = await request(`${config.issuer}/.well-known/openid-configuration`, new CookieJar());
    expect(page.headers['strict-transport-security']).toMatch(/max-age=\d{7,}/);
  });
});

/** fetch for openid-client over HTTPS with the test CA (Node's fetch has no per-request CA option). */
async function httpsFetch(url: string, init: { method?: string }): Promise<Response> {
  const res = await request(url, new CookieJar(), { method: init.method });
  return new Response(res.body, {
    status: res.status,
    headers: Object.entries(res.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : v === undefined ? [] : [[k, String(v)]])) as [
      string,
      string,
    ][],
  });
}
