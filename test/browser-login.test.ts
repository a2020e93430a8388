// The login page in a real browser (headless Chromium via playwright-core: the system's or @sparticuz/chromium's): keyboard-only sign-in, errors, no JavaScript, no third parties.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { pkceAuthorizationRequest } from './helpers/authorize.ts';
import { launchChromium } from './helpers/chromium.ts';

const ARTIFACTS = path.resolve('test-artifacts', 'browser-login');
const CLIENT_NAME = 'MCPTT client & dispatch';

let database: TestDatabase;
let server: TestServer;
let browser: Browser;
let callbackServer: http.Server;
let redirectUri: string;
let ue: oidc.Configuration;
const callbacks: string[] = [];

beforeAll(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  // The VAL client's redirect_uri: a local page that records what the browser brought back.
  callbackServer = http.createServer((req, res) => {
    callbacks.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>VAL client</title><p>Signed in.</p></html>');
  });
  await new Promise<void>((r) => callbackServer.listen(0, '127.0.0.1', r));
  redirectUri = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}/cb`;

  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'alice']);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', redirectUri, '--name', CLIENT_NAME]);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });

  // chromium.launch gives every run a fresh temporary profile (user-data-dir), removed on close.
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await database?.drop();
  await new Promise<void>((r) => (callbackServer ? callbackServer.close(() => r()) : r()));
});

async function authorizationRequest() {
  return pkceAuthorizationRequest(ue, redirectUri);
}

/** Every request the page makes, and every CSP violation Chromium reports. */
function watch(context: BrowserContext, page: Page) {
  const requests: URL[] = [];
  const cspViolations: string[] = [];
  context.on('request', (req) => requests.push(new URL(req.url())));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  return { requests, cspViolations };
}

const isFocused = (page: Page, selector: string) => page.locator(selector).evaluate((el) => el === document.activeElement);

// WCAG 2.x relative luminance contrast of an element's text (or outline) against its effective background.
function contrastOf(page: Page, selector: string, property: 'color' | 'outlineColor' = 'color'): Promise<number> {
  return page.locator(selector).evaluate((el, prop) => {
    // Computed colours are rgb()/rgba(), or color(srgb r g b / a) with 0-1 channels (e.g. from color-mix()).
    const rgb = (value: string) => {
      const m = /^(rgba?|color)\((?:srgb )?([\d.]+),?\s*([\d.]+),?\s*([\d.]+)\s*(?:[,/]\s*([\d.]+))?\)$/.exec(value);
      if (!m) throw new Error(`unparsed colour ${value}`);
      const scale = m[1] === 'color' ? 255 : 1;
      return { c: [Number(m[2]) * scale, Number(m[3]) * scale, Number(m[4]) * scale], a: m[5] === undefined ? 1 : Number(m[5]) };
    };
    const luminance = ([r, g, b]: number[]) => {
      const f = (v: number) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r!) + 0.7152 * f(g!) + 0.0722 * f(b!);
    };
    // For an outline (drawn outside the element) the background is the parent's; for text, the element's own.
    let node: Element | null = prop === 'outlineColor' ? el.parentElement : el;
    let background = [255, 255, 255];
    for (; node; node = node.parentElement) {
      const bg = rgb(getComputedStyle(node).backgroundColor);
      if (bg.a > 0) {
        background = bg.c;
        break;
      }
    }
    // A translucent foreground is seen blended over the background.
    const fore = rgb(getComputedStyle(el)[prop]);
    const fg = luminance(fore.c.map((v, i) => v * fore.a + background[i]! * (1 - fore.a)));
    const bl = luminance(background);
    return (Math.max(fg, bl) + 0.05) / (Math.min(fg, bl) + 0.05);
  }, property);
}

test('keyboard-only sign-in: client name, labels, focus order, wrong password, then the callback and tokens', async () => {
  const context = await browser.newContext({ viewport: { width: 800, height: 700 } });
  const page = await context.newPage();
  const seen = watch(context, page);
  const request = await authorizationRequest();

  await page.goto(request.url.href);
  expect(await page.title()).toMatch(/^Sign in/);
  expect(await page.locator('html').getAttribute('lang')).toBe('en');
  // The client's registered client_name, HTML-escaped but shown literally.
  await expect(page.locator('.client').innerText()).resolves.toBe(`to continue to ${CLIENT_NAME}`);

  // Labels are associated with their inputs (accessible names), and the button is named.
  const userId = page.getByRole('textbox', { name: 'VAL user ID' });
  const password = page.getByLabel('Password', { exact: true });
  expect(await userId.getAttribute('id')).toBe('val_user_id');
  expect(await password.getAttribute('id')).toBe('password');
  expect(await page.getByRole('button', { name: 'Sign in' }).count()).toBe(1);

  // Text contrast (WCAG 1.4.3, 4.5:1) on the parts a user reads.
  for (const selector of ['h1', '.client', 'label[for=val_user_id]', 'label[for=password]', 'button[type=submit]']) {
    expect(await contrastOf(page, selector)).toBeGreaterThanOrEqual(4.5);
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'login.png'), fullPage: true });

  // Keyboard only: the VAL user ID has focus, Tab goes to the password, then to the submit button.
  expect(await isFocused(page, '#val_user_id')).toBe(true);
  await page.keyboard.type('alice');
  await page.keyboard.press('Tab');
  expect(await isFocused(page, '#password')).toBe(true);
  // The focus indicator is visible against the card (WCAG 1.4.11, 3:1).
  expect(await password.evaluate((el) => getComputedStyle(el).outlineStyle)).toBe('solid');
  expect(await contrastOf(page, '#password', 'outlineColor')).toBeGreaterThanOrEqual(3);
  await page.keyboard.type('not-the-password');
  await page.keyboard.press('Tab');
  expect(await isFocused(page, 'button[type=submit]')).toBe(true);
  await page.keyboard.press('Enter');

  // The generic failure is announced (role=alert), tied to the fields, and the VAL user ID is kept.
  const alert = page.getByRole('alert');
  await alert.waitFor();
  expect(await alert.innerText()).toBe('The VAL user ID or password is incorrect.');
  expect(await alert.getAttribute('id')).toBe('login-error');
  expect(await contrastOf(page, '#login-error')).toBeGreaterThanOrEqual(4.5);
  expect(await userId.inputValue()).toBe('alice');
  expect(await password.inputValue()).toBe('');
  for (const field of [userId, password]) {
    expect(await field.getAttribute('aria-describedby')).toBe('login-error');
    expect(await field.getAttribute('aria-invalid')).toBe('true');
  }
  expect(await isFocused(page, '#password')).toBe(true);
  await page.screenshot({ path: path.join(ARTIFACTS, 'login-error.png'), fullPage: true });

  // The right password, submitted with Enter from the password field, reaches the client's redirect_uri.
  await page.keyboard.type('alice-password-1');
  await page.keyboard.press('Enter');
  await page.waitForURL((url) => url.href.startsWith(redirectUri));
  const callback = new URL(page.url());
  expect(callbacks).toContain(`${callback.pathname}${callback.search}`);
  expect(callback.searchParams.get('iss')).toBe(server.issuer);

  const tokens = await oidc.authorizationCodeGrant(ue, callback, {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
  });
  expect(tokens.refresh_token).toEqual(expect.any(String));
  expect(tokens.claims()).toMatchObject({
    iss: server.issuer,
    aud: 'val-ue',
    sub: 'alice',
    val_user_id: 'alice',
    val_service_ids: ['mcptt-1'],
    amr: ['pwd'],
    nonce: request.nonce,
  });

  // Nothing left for another host (fonts, analytics, CDNs), the stylesheet loaded, and CSP blocked nothing.
  const hosts = new Set(seen.requests.map((u) => u.host));
  expect([...hosts].sort()).toEqual([new URL(server.issuer).host, new URL(redirectUri).host].sort());
  expect(seen.requests.some((u) => u.pathname === '/static/idms.css')).toBe(true);
  expect(seen.cspViolations).toEqual([]);
  await context.close();
});

test('the sign-in works with JavaScript disabled', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const seen = watch(context, page);
  const request = await authorizationRequest();

  await page.goto(request.url.href);
  expect(await page.locator('script').count()).toBe(0);
  await page.getByLabel('VAL user ID').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('alice-password-1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.href.startsWith(redirectUri));

  const tokens = await oidc.authorizationCodeGrant(ue, new URL(page.url()), {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
  });
  expect(tokens.claims()).toMatchObject({ sub: 'alice', val_service_ids: ['mcptt-1'] });
  expect(seen.requests.every((u) => u.hostname === '127.0.0.1')).toBe(true);
  await context.close();
});

test('a browser set to German gets the German page: lang="de", labels, button and error message in German', async () => {
  // Chromium's locale sets Accept-Language (de-DE,de); the authorization request carries no ui_locales.
  const context = await browser.newContext({ locale: 'de-DE', viewport: { width: 800, height: 700 } });
  const page = await context.newPage();
  const seen = watch(context, page);
  const request = await authorizationRequest();

  await page.goto(request.url.href);
  expect(await page.locator('html').getAttribute('lang')).toBe('de');
  expect(await page.title()).toBe('Anmelden · SEAL Identity Management');
  await expect(page.locator('.client').innerText()).resolves.toBe(`weiter zu ${CLIENT_NAME}`);
  const userId = page.getByRole('textbox', { name: 'VAL-Benutzerkennung' });
  const password = page.getByLabel('Passwort', { exact: true });
  expect(await userId.getAttribute('id')).toBe('val_user_id');
  expect(await password.getAttribute('id')).toBe('password');
  expect(await page.getByRole('button', { name: 'Anmelden' }).count()).toBe(1);
  expect(await isFocused(page, '#val_user_id')).toBe(true);

  await userId.fill('alice');
  await password.fill('nicht-das-passwort');
  await page.keyboard.press('Enter');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  expect(await alert.innerText()).toBe('Die VAL-Benutzerkennung oder das Passwort ist falsch.');
  expect(await page.locator('html').getAttribute('lang')).toBe('de');
  for (const field of [userId, password]) expect(await field.getAttribute('aria-describedby')).toBe('login-error');
  for (const selector of ['h1', '.site', '.client', '#login-error']) expect(await contrastOf(page, selector)).toBeGreaterThanOrEqual(4.5);
  await page.screenshot({ path: path.join(ARTIFACTS, 'login-de.png'), fullPage: true });
  expect(seen.cspViolations).toEqual([]);
  await context.close();
});
