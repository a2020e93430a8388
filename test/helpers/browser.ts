// What a browser does between the authorization request and the callback: follow redirects, keep cookies,
// fill in the login form. (The real-browser test drives Chromium; this is the fast path for protocol tests.)

export type FormResult = { status: number; html: string; location?: string };

export class CookieJar {
  readonly #cookies = new Map<string, string>();

  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  names(): string[] {
    return [...this.#cookies.keys()];
  }

  get(name: string): string | undefined {
    return this.#cookies.get(name);
  }
}

export class Browser {
  readonly jar = new CookieJar();
  readonly ip?: string;

  async get(url: string | URL): Promise<Response> {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: this.jar.header() } });
    this.jar.store(res);
    return res;
  }

  async post(url: string | URL, form: Record<string, string>): Promise<Response> {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: this.jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
    this.jar.store(res);
    return res;
  }

  /** Follows same-server redirects until a page is shown or the client's redirect_uri is reached. */
  async follow(url: string | URL, stopAt: string): Promise<{ res: Response; url: string }> {
    let current = new URL(url);
    for (let i = 0; i < 10; i++) {
      if (current.href.startsWith(stopAt)) return { res: new Response(null, { status: 200 }), url: current.href };
      const res = await this.get(current);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { res, url: current.href };
      current = new URL(location, current);
    }
    throw new Error('too many redirects');
  }

  /** Opens the authorization URL and returns the login page (or the redirect if no login was needed). */
  async openAuthorization(authUrl: URL, redirectUri: string): Promise<{ html: string; loginUrl: string } | { callback: string }> {
    const { res, url } = await this.follow(authUrl, redirectUri);
    if (url.startsWith(redirectUri)) return { callback: url };
    return { html: await res.text(), loginUrl: url };
  }

  /** Submits the login form shown at loginUrl. */
  async submitLogin(loginUrl: string, html: string, valUserId: string, password: string, redirectUri: string): Promise<FormResult & { callback?: string }> {
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1];
    if (!action || csrf === undefined) throw new Error('login form not found');
    const res = await this.post(new URL(action.replace(/&amp;/g, '&'), loginUrl), { csrf, val_user_id: valUserId, password });
    const location = res.headers.get('location');
    if (res.status === 303 && location) {
      const { res: last, url } = await this.follow(new URL(location, loginUrl), redirectUri);
      if (url.startsWith(redirectUri)) return { status: 303, html: '', location: url, callback: url };
      return { status: last.status, html: await last.text(), location: url };
    }
    return { status: res.status, html: await res.text() };
  }

  /** The whole interactive login: returns the callback URL carrying code/state/iss (or an error). */
  async login(authUrl: URL, valUserId: string, password: string, redirectUri: string): Promise<string> {
    const page = await this.openAuthorization(authUrl, redirectUri);
    if ('callback' in page) return page.callback;
    const result = await this.submitLogin(page.loginUrl, page.html, valUserId, password, redirectUri);
    if (!result.callback) throw new Error(`login did not reach the client (HTTP ${result.status}): ${result.html.slice(0, 300)}`);
    return result.callback;
  }
}
