// The provider in service: built on the signing keys in PostgreSQL, rebuilt when they change (rotation by the CLI or
// another instance). Rebuilding is how a new keystore takes effect: oidc-provider reads jwks once.
import type Koa from 'koa';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import type { JWK } from 'jose';
import type { Secrets } from '../config/secret.ts';
import type { Db } from '../db/knex.ts';
import { accessTokenVerifier, type AccessTokenVerifier } from './access-tokens.ts';
import { flushHeldWrites } from './adapter.ts';
import { ensureSigningKeys, loadSigningKeys, signingKeysFingerprint, type SigningKeySet } from './keys.ts';

export type ProviderInstance = {
  provider: Provider;
  /** oidc-provider's middleware stack, run with the context of our Koa app (see providerEndpoints). */
  handle: Koa.Middleware;
  /** Verifies RFC 9068 access tokens against this instance's keys (the REST APIs' bearer check). */
  verifyAccessToken: AccessTokenVerifier;
};

export type LiveProvider = {
  current(): ProviderInstance;
  keysLoaded(): boolean;
  /** Reloads signing keys now if they changed in the database. */
  refreshKeys(): Promise<void>;
  close(): Promise<void>;
};

export type LiveProviderOptions = {
  db: Db;
  secrets: Secrets;
  issuer: string;
  /** How long retired keys stay loaded (keyRetentionSeconds). */
  retainSeconds: number;
  /** How often the fingerprint of the keys is compared with the database. */
  refreshMs: number;
  build: (signingKeys: JWK[]) => Provider;
  log: (line: string) => void;
};

export async function startLiveProvider(options: LiveProviderOptions): Promise<LiveProvider> {
  const { db, secrets, retainSeconds: retain } = options;
  await ensureSigningKeys(db, secrets.keyEncryptionKey);
  let keySet: SigningKeySet = await loadSigningKeys(db, secrets.keyEncryptionKey, retain);
  const build = (): ProviderInstance => {
    const provider = options.build(keySet.keys);
    return { provider, handle: compose(provider.middleware), verifyAccessToken: accessTokenVerifier(options.issuer, keySet.keys) };
  };
  let current = build();

  let refreshing: Promise<void> | undefined;
  const refreshKeys = () =>
    (refreshing ??= (async () => {
      try {
        if ((await signingKeysFingerprint(db, retain)) === keySet.fingerprint) return;
        keySet = await loadSigningKeys(db, secrets.keyEncryptionKey, retain);
        current = build();
      } finally {
        refreshing = undefined;
      }
    })());

  const timer = setInterval(() => refreshKeys().catch((err) => options.log(`signing key refresh failed: ${String(err)}`)), options.refreshMs);
  timer.unref();

  return {
    current: () => current,
    keysLoaded: () => keySet.keys.length > 0,
    refreshKeys,
    async close() {
      clearInterval(timer);
      await refreshing;
    },
  };
}

/**
 * The last middleware: everything no other route answered is oidc-provider's (discovery, authorization, token, JWKS, ...).
 * Its middleware runs inside our app, as koa-mount would mount it (issue 16): `provider.callback()` would build a second
 * Koa context, request and response per request and respond through a second Koa. The app that runs it must have
 * the provider's cookie keys (`app.keys`): `ctx.cookies` belongs to the app that created the context.
 */
export function providerEndpoints(live: LiveProvider): Koa.Middleware {
  return async (ctx, next) => {
    // Baseline for every provider response, including oidc-provider's own auto-submit pages (their inline script
    // rules out a CSP here; our own pages set a full one).
    ctx.set({ 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' });
    await live.current().handle(ctx, next);
    // The resume step's records, held by the adapter until now: stored before the redirect carrying the code leaves.
    try {
      await flushHeldWrites(ctx);
    } catch (err) {
      ctx.remove('Location');
      throw err;
    }
  };
}
