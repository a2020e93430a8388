// The pages a person sees (issue 15 item 5): friendly error pages with the OAuth code in small print, a way back
// after sign-out, the operator's name, and the language chosen by ui_locales, then Accept-Language, then English.
import * as oidc from 'openid-client';
import { loadConfig } from '../src/config/env.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.ts';
import { cliOk, cliProcess } from './helpers/cli.ts';
import { Browser, CookieJar } from './helpers/browser.ts';
import { pkceAuthorizationRequest } from './helpers/authorize.ts';

const REDIRECT = 'http://127.0.0.1:8125/cb';
const BYE = 'http://127.0.0.1:8125/bye';
// Characters that mean something in HTML, in every value an operator or a client registration controls.
const DISPLAY_NAME = 'Acme <MC> & "Ops"';
const DISPLAY_NAME_HTML = 'Acme &#60;MC&#62; &#38; &#34;Ops&#34;';
const HOME_URL = 'https://portal.example/home?from=idms&lang="x"';
const HOME_URL_HTML = 'https://portal.example/home?from=idms&#38;lang=&#34;x&#34;';
const CLIENT_NAME = 'Dispatch <b>console</b>';

let database: TestDatabase;
let server: TestServer;
/** Same database, default display name and no IDMS_HOME_URL. */
let plain: TestServer;
let ue: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database, {
    env: { IDMS_DISPLAY_NAME: DISPLAY_NAME, IDMS_HOME_URL: HOME_URL },
    throttle: { windowSeconds: 60, userLimit: 2, addressLimit: 1000, lockSeconds: 30, maxLockSeconds: 60 },
  });
  plain = await startTestServer(database);
  await cliOk(server.env, ['user', 'add', 'alice', '--password', 'alice-password-1']);
  await cliOk(server.env, ['user', 'add', 'bob', '--password', 'bob-password-1']);
  await cliOk(server.env, ['user', 'add', 'carol', '--password', 'carol-password-1']);
  await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'alice', 'bob', 'carol']);
  // Registered with the CLI binary, with where to send people after logout (OIDC RP-Initiated Logout 1.0 §3.1).
  const added = await cliProcess(server.env, [
    'client',
    'add',
    'val-ue',
    '--public',
    '--name',
    CLIENT_NAME,
    '--redirect-uri',
    REDIRECT,
    '--post-logout-redirect-uri',
    BYE,
  ]);
  expect(added).toMatchObject({ code: 0, stderr: '' });
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
});

afterAll(async () => {
  await plain?.close();
  await server?.close();
  await database?.drop();
});

type Page = { status: number; html: string; lang: string | undefined; contentLanguage: string | null; location: string | null; text: string };

async function get(url: string | URL, headers: Record<string, string> = {}, jar?: CookieJar): Promise<Page> {
  const res = await fetch(url, { redirect: 'manual', headers: { ...headers, ...(jar ? { cookie: jar.header() } : {}) } });
  jar?.store(res);
  const html = await res.text();
  return {
    status: res.status,
    html,
    lang: /<html lang="([^"]*)"/.exec(html)?.[1],
    contentLanguage: res.headers.get('content-language'),
    location: res.headers.get('location'),
    // The visible text, tags dropped and entities of the escaped values decoded, for reading assertions.
    text: html
      .replace(/<[^>]+>/g, ' ')
      .replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c)))
      .replace(/\s+/g, ' ')
      .trim(),
  };
}

/** The authorization request of an unregistered client: oidc-provider cannot send it back, so it renders an error page. */
function unknownClientUrl(base: string, extra: Record<string, string> = {}): URL {
  const url = new URL('/auth', base);
  for (const [k, v] of Object.entries({ client_id: 'no-such-client', response_type: 'code', scope: 'openid', redirect_uri: REDIRECT, ...extra }))
    url.searchParams.set(k, v);
  return url;
}

/** The small print of an error page: the OAuth code and the detail for support. */
const smallPrint = (html: string) => /<p class="details"><small>([\s\S]*?)<\/small><\/p>/.exec(html)?.[1];

/** Follows the authorization request to the login page with the given headers; returns its URL and HTML. */
async function openLogin(jar: CookieJar, extra: Record<string, string>, headers: Record<string, string> = {}) {
  const request = await pkceAuthorizationRequest(ue, REDIRECT, extra);
  let url = request.url.href;
  for (let i = 0; i < 5; i++) {
    const page = await get(url, headers, jar);
    if (!page.location) return { url, page };
    url = new URL(page.location, url).href;
  }
  throw new Error('no login page');
}

async function submit(jar: CookieJar, login: { url: string; page: Page }, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const action = /<form method="post" action="([^"]+)"/.exec(login.page.html)![1]!;
  const csrf = /name="csrf" value="([^"]*)"/.exec(login.page.html)![1]!;
  const res = await fetch(new URL(action, login.url), {
    method: 'POST',
    redirect: 'manual',
    headers: { ...headers, cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, ...fields }),
  });
  jar.store(res);
  const html = await res.text();
  return { status: res.status, html, lang: /<html lang="([^"]*)"/.exec(html)?.[1], alert: /role="alert"[^>]*>([^<]*)</.exec(html)?.[1] };
}

describe('error pages say what happened and what to do; the OAuth code is small print', () => {
  test('an unknown client gets "Unknown application", not "invalid_client / client is invalid"', async () => {
    const page = await get(unknownClientUrl(server.issuer));
    expect(page.status).toBe(400);
    expect(page.location).toBeNull();
    expect(page.lang).toBe('en');
    expect(page.contentLanguage).toBe('en');
    expect(page.html).toContain('<h1>Unknown application</h1>');
    expect(page.text).toContain(`The application that sent you here is not registered with ${DISPLAY_NAME}.`);
    expect(page.text).toContain('Go back to the application and try again.');
    // The code and oidc-provider's description only in the small print, for support.
    expect(smallPrint(page.html)).toBe('Details for support: <code>invalid_client</code> · client is invalid');
    expect(page.html.replace(/<p class="details">[\s\S]*?<\/p>/, '')).not.toMatch(/invalid_client|client is invalid/);
    // The way back to the operator's home page, escaped inside the attribute.
    expect(page.html).toContain(`<a href="${HOME_URL_HTML}">Go to the home page of ${DISPLAY_NAME_HTML}</a>`);
  });

  test('an unregistered redirect_uri: sign-in stops, the page says why; no redirect', async () => {
    const request = await pkceAuthorizationRequest(ue, 'https://evil.example.org/cb');
    const page = await get(request.url, { 'accept-language': 'de-DE,de;q=0.9,en;q=0.5' });
    expect(page.status).toBe(400);
    expect(page.location).toBeNull();
    expect(page.lang).toBe('de');
    expect(page.html).toContain('<h1>Anmeldung abgebrochen</h1>');
    expect(smallPrint(page.html)).toMatch(/^Angaben für den Support: <code>invalid_redirect_uri<\/code> · redirect_uri did not match/);
  });

  test('an expired or foreign sign-in form: "Sign-in expired", the code in small print', async () => {
    const page = await get(`${server.issuer}/interaction/not-an-interaction`);
    expect(page.status).toBe(400);
    expect(page.html).toContain('<h1>Sign-in expired</h1>');
    expect(page.text).toContain('Go back to the application and start signing in again.');
    expect(smallPrint(page.html)).toMatch(/^Details for support: <code>invalid_request<\/code> · /);
  });

  test('the input guard refuses with the same friendly page (invalid_request)', async () => {
    const page = await get(unknownClientUrl(server.issuer, { state: 'a\u0000b' }), { 'accept-language': 'de' });
    expect(page.status).toBe(400);
    expect(page.html).toContain('<h1>Ungültige Anfrage</h1>');
    expect(smallPrint(page.html)).toMatch(/^Angaben für den Support: <code>invalid_request<\/code> · /);
  });
});

describe('language: ui_locales (OIDC Core §3.1.2.1), then Accept-Language (RFC 9110 §12.5.4), then English', () => {
  const heading = (html: string) => /<h1>([^<]*)<\/h1>/.exec(html)?.[1];
  const cases: [string, Record<string, string>, Record<string, string>, string][] = [
    ['ui_locales beats Accept-Language (de over en)', { ui_locales: 'de' }, { 'accept-language': 'en' }, 'de'],
    ['ui_locales beats Accept-Language (en over de)', { ui_locales: 'en' }, { 'accept-language': 'de' }, 'en'],
    ['the first ui_locales tag we have wins, region subtags looked up (RFC 4647 §3.4)', { ui_locales: 'fr-CA de-AT en' }, {}, 'de'],
    ['ui_locales with no tag we have falls through to Accept-Language', { ui_locales: 'fr ja' }, { 'accept-language': 'de' }, 'de'],
    ['the highest q-value wins, not the first listed', {}, { 'accept-language': 'en;q=0.5, de;q=0.9' }, 'de'],
    ['q=0 is "not acceptable"', {}, { 'accept-language': 'de;q=0, en;q=0.1' }, 'en'],
    ['a language we lack is skipped for the next one', {}, { 'accept-language': 'fr-FR, fr;q=0.9, de-CH;q=0.8, en;q=0.7' }, 'de'],
    ['"*" is any language not refused', {}, { 'accept-language': 'en;q=0, *;q=0.5' }, 'de'],
    ['a malformed q-value drops only its member', {}, { 'accept-language': 'en;q=2, de;q=0.3' }, 'de'],
    ['nothing we have: English', { ui_locales: 'ja' }, { 'accept-language': 'fr, es;q=0.8' }, 'en'],
    ['no preference at all: English', {}, {}, 'en'],
  ];
  test.each(cases)('%s', async (_name, query, headers, lang) => {
    const page = await get(unknownClientUrl(server.issuer, query), headers);
    expect({ lang: page.lang, contentLanguage: page.contentLanguage, heading: heading(page.html) }).toEqual({
      lang,
      contentLanguage: lang,
      heading: lang === 'de' ? 'Unbekannte Anwendung' : 'Unknown application',
    });
  });

  test('discovery lists the languages of the pages (ui_locales_supported)', async () => {
    const metadata = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(metadata.ui_locales_supported).toEqual(['en', 'de']);
    expect(metadata.claim_types_supported).toEqual(['normal']);
  });
});

describe('the login page and its errors in the chosen language, with the operator named', () => {
  test('English by default: the operator, the client (escaped), labels', async () => {
    const login = await openLogin(new CookieJar(), {});
    expect(login.page.lang).toBe('en');
    expect(login.page.html).toContain(`<title>Sign in · ${DISPLAY_NAME_HTML}</title>`);
    expect(login.page.html).toContain(`<p class="site">${DISPLAY_NAME_HTML}</p>`);
    expect(login.page.html).toContain('<p class="client">to continue to <strong>Dispatch &#60;b&#62;console&#60;/b&#62;</strong></p>');
    expect(login.page.html).toContain('<label for="val_user_id">VAL user ID</label>');
  });

  test('ui_locales=de: German page, generic failure, expired form and throttle (with seconds) in German', async () => {
    const jar = new CookieJar();
    const login = await openLogin(jar, { ui_locales: 'de' }, { 'accept-language': 'en' });
    expect(login.page.lang).toBe('de');
    expect(login.page.contentLanguage).toBe('de');
    expect(login.page.html).toContain('<h1>Anmelden</h1>');
    expect(login.page.html).toContain('<label for="val_user_id">VAL-Benutzerkennung</label>');
    expect(login.page.html).toContain('<label for="password">Passwort</label>');
    expect(login.page.html).toContain('<button type="submit">Anmelden</button>');

    const expired = await submit(jar, login, { csrf: 'wrong', val_user_id: 'bob', password: 'x' });
    expect({ status: expired.status, lang: expired.lang, alert: expired.alert }).toEqual({
      status: 403,
      lang: 'de',
      alert: 'Ihr Anmeldeformular ist abgelaufen. Bitte versuchen Sie es erneut.',
    });
    for (let i = 0; i < 2; i++) {
      const wrong = await submit(jar, login, { val_user_id: 'bob', password: `wrong-${i}` });
      expect({ status: wrong.status, alert: wrong.alert }).toEqual({ status: 400, alert: 'Die VAL-Benutzerkennung oder das Passwort ist falsch.' });
    }
    const locked = await submit(jar, login, { val_user_id: 'bob', password: 'bob-password-1' });
    expect(locked.status).toBe(429);
    expect(locked.alert).toMatch(/^Zu viele fehlgeschlagene Anmeldeversuche\. Versuchen Sie es in \d+ Sekunden erneut\.$/);
  });

  test('Accept-Language alone picks German for the login page', async () => {
    const login = await openLogin(new CookieJar(), {}, { 'accept-language': 'de-DE,de;q=0.9,en-US;q=0.8' });
    expect(login.page.lang).toBe('de');
    expect(login.page.html).toContain('weiter zu <strong>Dispatch &#60;b&#62;console&#60;/b&#62;</strong>');
  });
});

describe('sign-out: the prompt names the operator, and there is always a way back', () => {
  /** A signed-in browser session and its ID token. */
  async function signedIn(user: 'alice' | 'carol' = 'alice') {
    const browser = new Browser();
    const request = await pkceAuthorizationRequest(ue, REDIRECT);
    const callback = await browser.login(request.url, user, `${user}-password-1`, REDIRECT);
    const tokens = await oidc.authorizationCodeGrant(ue, new URL(callback), {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
    });
    return { jar: browser.jar, idToken: tokens.id_token! };
  }

  async function confirm(jar: CookieJar, prompt: Page, logout: boolean) {
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(prompt.html)![1]!;
    const res = await fetch(`${server.issuer}/session/end/confirm`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf, ...(logout ? { logout: 'yes' } : {}) }),
    });
    jar.store(res);
    expect(res.status).toBe(303);
    return res.headers.get('location')!;
  }

  test('the prompt names the operator, not the host, in the language of ui_locales', async () => {
    const { jar, idToken } = await signedIn();
    const prompt = await get(`${server.issuer}/session/end?id_token_hint=${idToken}&ui_locales=de`, { 'accept-language': 'en' }, jar);
    expect(prompt.status).toBe(200);
    expect(prompt.lang).toBe('de');
    expect(prompt.html).toContain(`<p>Möchten Sie sich von ${DISPLAY_NAME_HTML} abmelden?</p>`);
    // The host is only in oidc-provider's form target, nowhere in what the page says.
    expect(prompt.html.replace(/<form [^>]*>/, '')).not.toContain(new URL(server.issuer).host);
    expect(prompt.html).toContain('>Ja, abmelden</button>');
    expect(prompt.html).toContain('>Nein, angemeldet bleiben</button>');
  });

  test('with post_logout_redirect_uri: the confirmation goes back to the client, with state', async () => {
    const { jar, idToken } = await signedIn();
    const prompt = await get(`${server.issuer}/session/end?id_token_hint=${idToken}&post_logout_redirect_uri=${encodeURIComponent(BYE)}&state=s-1`, {}, jar);
    expect(prompt.html).toContain(`<p>Do you want to sign out of ${DISPLAY_NAME_HTML}?</p>`);
    // The page's CSP lets its form lead there (form-action applies to the redirect after the POST).
    const location = await confirm(jar, prompt, true);
    expect(location).toBe(`${BYE}?state=s-1`);
  });

  test('a post_logout_redirect_uri the client did not register is refused (exact match), on an error page', async () => {
    const { jar, idToken } = await signedIn();
    const elsewhere = `${BYE}/../elsewhere`;
    const page = await get(`${server.issuer}/session/end?id_token_hint=${idToken}&post_logout_redirect_uri=${encodeURIComponent(elsewhere)}`, {}, jar);
    expect(page.status).toBe(400);
    expect(page.location).toBeNull();
    expect(page.text).toContain('post_logout_redirect_uri not registered');
  });

  test('without post_logout_redirect_uri: the signed-out page links to IDMS_HOME_URL, in the language of the browser', async () => {
    const { jar, idToken } = await signedIn();
    const prompt = await get(`${server.issuer}/session/end?id_token_hint=${idToken}`, {}, jar);
    const location = await confirm(jar, prompt, true);
    const done = await get(new URL(location, server.issuer), { 'accept-language': 'de' });
    expect(done.status).toBe(200);
    expect(done.lang).toBe('de');
    expect(done.html).toContain('<h1>Abgemeldet</h1>');
    expect(done.text).toContain(`Sie haben sich von ${DISPLAY_NAME} abgemeldet.`);
    expect(done.html).toContain(`<a href="${HOME_URL_HTML}">Zur Startseite von ${DISPLAY_NAME_HTML}</a>`);
  });

  test('"stay signed in" ends only the client\'s part and says so, naming the client (escaped)', async () => {
    const { jar, idToken } = await signedIn('carol');
    const prompt = await get(`${server.issuer}/session/end?id_token_hint=${idToken}`, {}, jar);
    const location = await confirm(jar, prompt, false);
    const done = await get(new URL(location, server.issuer));
    expect(done.html).toContain(`You have signed out of Dispatch &#60;b&#62;console&#60;/b&#62;. You are still signed in to ${DISPLAY_NAME_HTML}.`);
  });

  test('no IDMS_HOME_URL: the page says the window can be closed; the default operator name is shown', async () => {
    const done = await get(`${plain.issuer}/session/end/success`);
    expect(done.status).toBe(200);
    expect(done.html).toContain('<title>Signed out · SEAL Identity Management</title>');
    expect(done.text).toContain('You have signed out of SEAL Identity Management.');
    expect(done.text).toContain('You can close this window now.');
    expect(done.html).not.toContain('<a ');
  });
});

describe('configuration', () => {
  const base = { IDMS_SECRET: TEST_SECRET };
  test('IDMS_HOME_URL must be an http(s) URL; IDMS_DISPLAY_NAME one line of at most 100 characters', () => {
    expect(() => loadConfig({ ...base, IDMS_HOME_URL: 'javascript:alert(1)' })).toThrow('invalid IDMS_HOME_URL: must be an http(s) URL');
    expect(() => loadConfig({ ...base, IDMS_DISPLAY_NAME: 'Acme\nEvil' })).toThrow('invalid IDMS_DISPLAY_NAME: must be one line of text');
    expect(() => loadConfig({ ...base, IDMS_DISPLAY_NAME: 'x'.repeat(101) })).toThrow('invalid IDMS_DISPLAY_NAME: must be at most 100 characters');
    expect(loadConfig(base)).toMatchObject({ displayName: 'SEAL Identity Management', homeUrl: undefined });
  });
});
