// The oidc-provider instance: the protocol profile of DESIGN.md expressed as oidc-provider configuration.
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { JWK } from 'jose';
import type { Config } from '../config/env.ts';
import type { Secrets } from '../config/secret.ts';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { renderErrorPage } from '../http/errors.ts';
import { formatText, messagesFor, SUPPORTED_LOCALES } from '../interactions/i18n.ts';
import { homeLink, renderFragment, sendPage } from '../interactions/views.ts';
import { createFindAccount, servicesForRequest } from './account.ts';
import { createAdapterFactory } from './adapter.ts';
import { GRANTS } from './grants/index.ts';
import { refuseUnlistedGrants } from './grants/unauthorized-client.ts';
import { atRestKeys, compareHashedClientSecrets } from './at-rest.ts';
import { valServerStanding } from '../provisioning/standing.ts';
import { CLIENT_CREDENTIALS_GTY } from './access-tokens.ts';
import {
  CLIENT_RESOURCE_SCOPE,
  CLIENT_RESOURCE_SERVERS,
  PROVISIONING_SCOPE,
  resourceServerInfoForClient,
  validateClientResourceMetadata,
  VAL_SERVICE_SCOPE,
} from './resources.ts';
import { defaultResourceFor, registeredScopes, SS_IPP_SCOPE } from './resources.ts';
import { ACR_VALUES, SCOPE_CLAIMS, SKEY_PROV_CLAIM, valInteractionPolicy } from './claims.ts';
import { advertiseServiceScopes, loginScopes } from './service-scopes.ts';
import { acceptJwtAccessTokensAtUserinfo } from './userinfo.ts';
import { findValServerByClientIdCached } from '../provisioning/store.ts';

export type ProviderDeps = {
  config: Config;
  db: Db;
  /** The process's caches (src/db/change-feed.ts): clients, resource servers, partners, revocations, VAL servers; NO_CACHE in the CLI. */
  caches: Caches;
  secrets: Secrets;
  signingKeys: JWK[];
};

/** A protocol addition installed on each provider instance (middleware, hooks); grants are data in grants/index.ts instead. */
export type ProviderExtension = (provider: Provider, deps: ProviderDeps) => void;

export const OIDC_SCOPES = ['openid', 'offline_access', VAL_SERVICE_SCOPE] as const;
/** The scopes oidc-provider knows statically; a client's `scope` metadata may hold only these (docs/oidc.md "Clients"). */
export const STATIC_SCOPES: readonly string[] = [...OIDC_SCOPES, PROVISIONING_SCOPE, SS_IPP_SCOPE];

export function createProvider(deps: ProviderDeps, extensions: ProviderExtension[] = []): Provider {
  const { config, db, caches, secrets } = deps;
  const secureCookies = config.tls !== undefined || config.issuer.startsWith('https:');
  const cookieOptions = { signed: true, httpOnly: true, sameSite: 'lax' as const, secure: secureCookies };

  const configuration: Configuration = {
    adapter: createAdapterFactory(db, atRestKeys(secrets), caches),
    findAccount: createFindAccount(db),
    jwks: { keys: deps.signingKeys as NonNullable<Configuration['jwks']>['keys'] },
    cookies: { keys: secrets.cookieKeys, long: cookieOptions, short: cookieOptions },

    scopes: [...STATIC_SCOPES],
    // acr (TS 33.434 A.2.1.2, A.4.2.2: 3gpp:acr:password) and amr (RFC 8176: pwd today; otp when a second factor
    // plugs in) come from the login; the VAL claims come with `openid` alone (src/oidc/claims.ts).
    claims: SCOPE_CLAIMS,
    acrValues: [...ACR_VALUES],
    // DESIGN: the VAL claims go into the ID token too (TS 33.180 annex B.2 puts them in ID and access tokens).
    conformIdTokenClaims: false,

    // Project extensions of client metadata (docs/oidc.md "Clients"): resource-server scopes the client may be
    // granted, and the resource servers it operates (whose tokens it may introspect).
    extraClientMetadata: {
      properties: [CLIENT_RESOURCE_SCOPE, CLIENT_RESOURCE_SERVERS],
      validator: (_ctx, key, value) => validateClientResourceMetadata(key, value),
    },

    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // OIDC Core §3.1.3.7: RS256 unless the client registered another (`client add|update --id-token-alg`).
      id_token_signed_response_alg: 'RS256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    // RFC 9700 §2.1.1: PKCE for every client using the code flow, not only public ones; S256 only.
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,

    // RFC 9700 §4.14.2: refresh tokens rotate; a replayed one revokes the grant (oidc-provider does the revocation).
    rotateRefreshToken: true,
    // VAL profile (TS 33.434 A.4.2.5, A.5): a client registered for refresh_token gets a refresh token from the code
    // grant without offline_access/prompt=consent. Without offline_access it is bound to the login (oidc-provider's
    // expiresWithSession): RP-initiated logout revokes it; with offline_access it outlives the login (OIDC Core §11).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),

    ttl: {
      // A resource server's own lifetime (`resource add --ttl`) wins; resourceServerInfo falls back to IDMS_ACCESS_TOKEN_TTL.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.ttl.accessToken,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: config.ttl.refreshToken,
      Grant: config.ttl.refreshToken,
    },

    features: {
      devInteractions: { enabled: false },
      // OIDC Core §5.5: lets a client ask for acr as an essential claim (src/oidc/claims.ts answers what cannot be met).
      claimsParameter: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Opaque tokens (refresh tokens, access tokens for our own userinfo endpoint) are meant for no resource
        // server: only the client they were issued to may introspect them (RFC 7662 §4), and a VAL server only while
        // its SLA is in force. JWT access tokens follow the audience rule of src/oidc/jwt-introspection.ts.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId && (await callerMayIntrospect(db, caches, client.clientId)),
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client revokes only its own tokens. A public client's attempt on another's token is
        // ignored (200, nothing revoked); a confidential client is told it may not.
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          // The confirmation posts to us and then redirects to the client's (already validated) post-logout URI
          // when it sent one: that is the way back; without one the signed-out page offers IDMS_HOME_URL.
          const next = ctx.oidc.params?.post_logout_redirect_uri;
          // RP-Initiated Logout 1.0 §2: ui_locales, as at the authorization endpoint.
          const t = messagesFor(ctx, ctx.oidc.params?.ui_locales);
          sendPage(ctx, 'logout', { t, site: config, title: t.logout.title }, { form }, typeof next === 'string' ? [new URL(next).origin] : []);
        },
        // Shown only when no post_logout_redirect_uri was sent. client_id is present when the person chose to stay
        // signed in: oidc-provider then ended that client's part of the session only.
        postLogoutSuccessSource: async (ctx) => {
          const t = messagesFor(ctx, ctx.query.ui_locales);
          const frame = { t, site: config, title: t.loggedOut.title };
          const client = ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId;
          const values = { site: config.displayName, client: client ?? '' };
          sendPage(ctx, 'logged-out', frame, {
            message: formatText(client ? t.loggedOut.clientOnly : t.loggedOut.everywhere, values),
            wayBack: homeLink(frame) || renderFragment('close-window', t, {}),
          });
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf ?? defaultResourceFor(config, ctx.oidc?.params, client),
        // Client-aware (oidc-provider passes the client): the resource server's scopes narrowed to the client's
        // registered scope, invalid_scope for a requested scope the client is not registered for, and no tokens at
        // all for a VAL server whose SLA is disabled or expired. Every authorization, code, refresh and
        // client_credentials request passes here (defaultResource always names a resource).
        getResourceServerInfo: async (ctx, indicator, client) => {
          const standing = await valServerStanding(db, caches, client.clientId);
          if (standing === 'disabled' || standing === 'expired') {
            // RFC 6749 §5.2: the client authenticated but is not authorized (its service agreement is not in force).
            throw new errors.UnauthorizedClient(`the service agreement of this VAL server is ${standing === 'disabled' ? 'disabled' : 'expired'}`);
          }
          const requested = typeof ctx.oidc.params?.scope === 'string' ? ctx.oidc.params.scope.split(' ').filter(Boolean) : [];
          // A VAL user's token also carries openid and the user's VAL service scopes (TS 33.434 A.2.2.2; src/oidc/service-scopes.ts).
          const accountId = ctx.oidc.entities?.Account?.accountId ?? ctx.oidc.entities?.Session?.accountId;
          const services = async () => (accountId ? await servicesForRequest(ctx, db, accountId) : undefined);
          const { forRegistration, userScopes } = await loginScopes(ctx, db, caches, registeredScopes(client), requested, services);
          const info = await resourceServerInfoForClient(config, db, caches, indicator, client, forRegistration);
          return userScopes.length ? { ...info, scope: [...new Set([...info.scope.split(' ').filter(Boolean), ...userScopes])].join(' ') } : info;
        },
        // Every access token is an RFC 9068 JWT for the granted resource, whatever scope a refresh repeats (RFC 6749
        // §6: the original scope means the same as none); the userinfo endpoint accepts it (src/oidc/userinfo.ts).
        useGrantedResource: async () => true,
      },
    },

    // Access tokens carry the user's VAL service IDs (DESIGN, protocol profile).
    extraTokenClaims: async (ctx, token) => {
      // How the token was issued, so no one needs to compare sub with client_id to tell a client's token (isClientToken).
      if (token.kind === 'ClientCredentials') {
        // TS 33.434 A.2.2.3: SKeyProv only in the tokens of a VAL server authorized to provide key material to the S-KMS.
        const skeyProv = (await findValServerByClientIdCached(db, caches, token.clientId!))?.skey_prov === true;
        return { gty: CLIENT_CREDENTIALS_GTY, ...(skeyProv ? { [SKEY_PROV_CLAIM]: true } : {}) };
      }
      if (token.kind !== 'AccessToken' || !('accountId' in token) || !token.accountId) return undefined;
      // grant_id lets introspection refuse tokens of a revoked grant (code or refresh token replay, logout; RFC 9700 §4.5, §4.14).
      return { val_service_ids: await servicesForRequest(ctx, db, token.accountId), grant_id: token.grantId };
    },

    // Every client is registered by the operator (no dynamic registration), so consent is implicit:
    // the grant is created or widened to what the client asked for and its registration allows.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx;
      if (!oidc.session?.accountId || !oidc.client) return undefined;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId);
      const grant =
        (grantId && (await oidc.provider.Grant.find(grantId))) ||
        new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      const claims = [...oidc.requestParamClaims];
      if (claims.length) grant.addOIDCClaims(claims);
      // server.scopes is already narrowed to the client's registered scope (features.resourceIndicators.getResourceServerInfo).
      for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
        const scopes = [...oidc.requestParamScopes].filter((s) => server.scopes.has(s));
        if (scopes.length) grant.addResourceScope(indicator, scopes.join(' '));
        else grant.addResourceScope(indicator, '');
      }
      await grant.save();
      return grant;
    },

    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: valInteractionPolicy() },

    formats: {
      customizers: {
        // TS 33.434 A.2.2.2, RFC 9068 §2.2.3: every access token carries scope. A client_credentials request without
        // scope is granted the default of RFC 6749 §3.3: what the resource server offers this client (its registered
        // scope, src/oidc/resources.ts), shown in the token response too (it is set before the response is built).
        // A request naming only scopes the resource server lacks is not widened (RFC 8707 §2.2 narrows to the resource).
        jwt: async (ctx, token, jwt) => {
          if (token.kind !== 'ClientCredentials' || ctx.oidc.params?.scope || token.scope || !token.resourceServer?.scope) return;
          token.scope = token.resourceServer.scope;
          jwt.payload.scope = token.scope;
        },
      },
    },

    // Errors that cannot go back to the client (unknown client, unregistered redirect_uri, ...): a page that says
    // what happened and what the person can do, with the OAuth code in small print for support.
    renderError: async (ctx, out) =>
      renderErrorPage(ctx, config, { error: out.error, description: out.error_description, uiLocales: ctx.oidc?.params?.ui_locales }),
    // OIDC Discovery §3: the languages of the pages (src/interactions/locales/), chosen by ui_locales.
    discovery: { ui_locales_supported: [...SUPPORTED_LOCALES] },
  };

  const provider = new Provider(config.issuer, configuration);
  // Client secrets are stored hashed (src/oidc/at-rest.ts): authentication compares hashes.
  compareHashedClientSecrets(provider, atRestKeys(secrets));
  provider.proxy = config.trustProxy;
  acceptJwtAccessTokensAtUserinfo(provider, config, db, caches, deps.signingKeys);
  advertiseServiceScopes(provider, db, caches);
  for (const extend of extensions) extend(provider, deps);
  // The grants listed in src/oidc/grants/index.ts, with one unauthorized_client rewrite for all of them.
  for (const grant of GRANTS) provider.registerGrantType(grant.grantType, grant.handler(deps), grant.parameters, grant.duplicates);
  refuseUnlistedGrants(provider, db, GRANTS);
  return provider;
}

/** A VAL server introspects only while its SLA is in force; other confidential clients are not VAL servers. */
export async function callerMayIntrospect(db: Db, caches: Caches, clientId: string): Promise<boolean> {
  const standing = await valServerStanding(db, caches, clientId);
  return standing === 'none' || standing === 'active';
}
