// Access token validation kit for VAL servers and SEAL servers (`@seal-idms/verify`): RFC 9068 JWT access tokens from an S-IdMS.
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';

export type SigningAlgorithm = 'ES256' | 'RS256';

export type AccessTokenVerifierOptions = {
  /** The S-IdMS issuer identifier, exactly as in its discovery document (e.g. `https://idms.example.org`). */
  issuer: string;
  /** This resource server's identifier: the RFC 8707 `resource` the client asked for. Any one listed value must be in `aud`. */
  audience: string | string[];
  /** Where the S-IdMS publishes its keys. Default: `jwks_uri` from `<issuer>/.well-known/openid-configuration`. */
  jwksUri?: string | URL;
  /** Reject tokens whose user is not provisioned for this VAL service ID (TS 23.434 clause 12: the token carries the user's services). */
  requiredValServiceId?: string;
  /** Scopes that must all be granted (the `scope` claim). Default: none. */
  requiredScopes?: string[];
  /** Accepted clock skew for `exp`, `iat` and `nbf`, in seconds. Default 5. */
  clockTolerance?: number;
  /** Signature algorithms accepted. Default both ES256 and RS256 (what the S-IdMS signs with). */
  algorithms?: SigningAlgorithm[];
  /** Minimum time between two JWKS fetches triggered by an unknown `kid`, in seconds. Default 5. */
  jwksCooldown?: number;
  /** Keys are refetched after this many seconds even without an unknown `kid`. Default 600. */
  jwksCacheMaxAge?: number;
  /** Timeout of one discovery or JWKS request, in milliseconds. Default 5000. */
  timeout?: number;
};

/** Claims of an S-IdMS access token (RFC 9068 §2.2 plus the VAL service IDs of DESIGN's protocol profile). */
export type AccessTokenClaims = JWTPayload & {
  iss: string;
  sub: string;
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  val_service_ids?: string[];
};

export type VerifiedAccessToken = {
  /** The VAL user ID (`sub`); undefined for a token a client obtained for itself (client_credentials, RFC 9068 §2.2: `sub` is then the client). */
  valUserId: string | undefined;
  /** The VAL service IDs the user is provisioned for at the time the token was issued. Empty for client tokens. */
  valServiceIds: string[];
  /** The OAuth client the token was issued to (the VAL client or VAL server). */
  clientId: string;
  /** The granted scopes (the space-delimited `scope` claim, split). */
  scope: string[];
  claims: AccessTokenClaims;
};

/** What a verifier with `requiredValServiceId` returns: always a VAL user's token. */
export type VerifiedUserAccessToken = VerifiedAccessToken & { valUserId: string };

export type AccessTokenErrorCode = 'missing_token' | 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'service_not_authorized';

const STATUS: Record<AccessTokenErrorCode, 400 | 401 | 403> = {
  missing_token: 401,
  invalid_request: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  service_not_authorized: 403,
};

/** The request's token is missing or not acceptable; `status` and `wwwAuthenticate()` give the RFC 6750 §3 answer. */
export class AccessTokenError extends Error {
  override name = 'AccessTokenError';
  readonly code: AccessTokenErrorCode;
  readonly status: 400 | 401 | 403;
  /** For 403 answers: the scope (or VAL service ID) that would have been needed. */
  readonly requiredScope?: string;

  constructor(code: AccessTokenErrorCode, message: string, options: { cause?: unknown; requiredScope?: string } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = STATUS[code];
    if (options.requiredScope !== undefined) this.requiredScope = options.requiredScope;
  }

  /** The `WWW-Authenticate` header value for this error (RFC 6750 §3). */
  wwwAuthenticate(realm?: string): string {
    return wwwAuthenticate(this, realm);
  }
}

/** The S-IdMS's discovery document or key set could not be fetched: not the client's fault, answer 503 and retry later. */
export class IssuerUnavailableError extends Error {
  override name = 'IssuerUnavailableError';
}

/**
 * The `WWW-Authenticate` header value for a refused request (RFC 6750 §3).
 * RFC 6750 §3.1 defines only invalid_request, invalid_token and insufficient_scope, so a user not
 * provisioned for the VAL service is reported as insufficient_scope; `AccessTokenError.code` keeps the difference.
 */
export function wwwAuthenticate(error: AccessTokenError, realm?: string): string {
  const params: [string, string][] = [];
  if (realm !== undefined) params.push(['realm', realm]);
  // RFC 6750 §3.1: a request without any authentication information gets no error code.
  if (error.code !== 'missing_token') {
    params.push(['error', error.code === 'service_not_authorized' ? 'insufficient_scope' : error.code]);
    params.push(['error_description', error.message]);
    if (error.requiredScope !== undefined) params.push(['scope', error.requiredScope]);
  }
  return params.length ? `Bearer ${params.map(([k, v]) => `${k}="${quote(v)}"`).join(', ')}` : 'Bearer';
}

// RFC 6750 §3: values are quoted-strings; error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
function quote(value: string): string {
  return value.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?');
}

/** The token of an `Authorization: Bearer …` header (RFC 6750 §2.1); throws AccessTokenError otherwise. */
export function bearerToken(authorization: string | undefined | null): string {
  if (!authorization) throw new AccessTokenError('missing_token', 'no access token presented');
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
  if (!match) throw new AccessTokenError('invalid_request', 'the Authorization header is not "Bearer <access token>"');
  return match[1]!;
}

export type AccessTokenVerify<R extends VerifiedAccessToken = VerifiedAccessToken> = (token: string) => Promise<R>;

/**
 * Builds a verifier for access tokens issued by one S-IdMS to this resource server.
 * Keys come from the issuer's JWKS, cached; an unknown `kid` refetches them (signing key rotation).
 * Revocation is not visible locally: tokens are short-lived (IDMS_ACCESS_TOKEN_TTL); use introspection (RFC 7662) where that is not enough.
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions & { requiredValServiceId: string }): AccessTokenVerify<VerifiedUserAccessToken>;
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerify;
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerify {
  const issuer = options.issuer;
  const timeout = options.timeout ?? 5000;
  const algorithms = options.algorithms ?? ['ES256', 'RS256'];
  if (!issuer) throw new TypeError('issuer is required');
  if (!options.audience || (Array.isArray(options.audience) && options.audience.length === 0)) throw new TypeError('audience is required');
  if (algorithms.length === 0 || algorithms.some((a) => a !== 'ES256' && a !== 'RS256')) throw new TypeError('algorithms must be ES256 and/or RS256');

  let keySet: ReturnType<typeof createRemoteJWKSet> | undefined;
  let discovering: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  const remoteKeys = (uri: URL) =>
    createRemoteJWKSet(uri, {
      cooldownDuration: (options.jwksCooldown ?? 5) * 1000,
      cacheMaxAge: (options.jwksCacheMaxAge ?? 600) * 1000,
      timeoutDuration: timeout,
    });
  if (options.jwksUri !== undefined) keySet = remoteKeys(new URL(options.jwksUri));

  const keys = async () => {
    if (keySet) return keySet;
    // A failed discovery is retried on the next token rather than remembered.
    discovering ??= discoverJwksUri(issuer, timeout).then(
      (uri) => (keySet = remoteKeys(uri)),
      (err: unknown) => {
        discovering = undefined;
        throw err;
      },
    );
    return discovering;
  };

  return async (token) => {
    const jwks = await keys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer,
        audience: options.audience,
        // RFC 9068 §4: reject any typ other than at+jwt, so an ID token or security token never passes as an access token.
        typ: 'at+jwt',
        algorithms,
        clockTolerance: options.clockTolerance ?? 5,
        // RFC 9068 §2.2: the claims every JWT access token carries.
        requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
      }));
    } catch (err) {
      throw classify(err);
    }
    const claims = payload as AccessTokenClaims;
    if (typeof claims.client_id !== 'string' || typeof claims.sub !== 'string') {
      throw new AccessTokenError('invalid_token', 'the access token has a malformed sub or client_id claim');
    }
    const services = claims.val_service_ids;
    if (services !== undefined && !(Array.isArray(services) && services.every((s) => typeof s === 'string'))) {
      throw new AccessTokenError('invalid_token', 'the access token has a malformed val_service_ids claim');
    }
    const scope = typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [];
    for (const required of options.requiredScopes ?? []) {
      if (!scope.includes(required))
        throw new AccessTokenError('insufficient_scope', `the access token lacks the scope ${required}`, { requiredScope: required });
    }
    // Only tokens issued for a VAL user carry val_service_ids (client_credentials tokens have the client as sub).
    const valUserId = services !== undefined ? claims.sub : undefined;
    const required = options.requiredValServiceId;
    if (required !== undefined) {
      if (valUserId === undefined) {
        throw new AccessTokenError('insufficient_scope', 'the access token was not issued for a VAL user', { requiredScope: '3gpp:seal:val_service' });
      }
      if (!services!.includes(required)) {
        throw new AccessTokenError('service_not_authorized', `the VAL user is not authorized for the VAL service ${required}`);
      }
    }
    return { valUserId, valServiceIds: services ?? [], clientId: claims.client_id, scope, claims };
  };
}

// OpenID Connect Discovery 1.0 §4: the document's issuer must be exactly the one configured.
async function discoverJwksUri(issuer: string, timeout: number): Promise<URL> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let metadata: { issuer?: unknown; jwks_uri?: unknown };
  try {
    const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeout), headers: { accept: 'application/json' } });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    metadata = (await res.json()) as typeof metadata;
  } catch (err) {
    throw new IssuerUnavailableError(`cannot fetch ${url}: ${messageOf(err)}`, { cause: err });
  }
  if (metadata.issuer !== issuer) throw new IssuerUnavailableError(`${url} names issuer ${String(metadata.issuer)}, expected ${issuer}`);
  if (typeof metadata.jwks_uri !== 'string') throw new IssuerUnavailableError(`${url} has no jwks_uri`);
  return new URL(metadata.jwks_uri);
}

function classify(err: unknown): Error {
  if (err instanceof errors.JWTExpired) return new AccessTokenError('invalid_token', 'the access token has expired', { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    const reason: Record<string, string> = {
      iss: 'the access token was not issued by the expected S-IdMS',
      aud: 'the access token is not intended for this server',
      typ: 'not an RFC 9068 access token (typ must be at+jwt)',
      nbf: 'the access token is not valid yet',
      iat: 'the access token has an invalid iat claim',
    };
    return new AccessTokenError('invalid_token', reason[err.claim] ?? `the access token has a missing or invalid ${err.claim} claim`, { cause: err });
  }
  if (err instanceof errors.JOSEAlgNotAllowed)
    return new AccessTokenError('invalid_token', 'the access token signature algorithm is not allowed', { cause: err });
  if (err instanceof errors.JWKSNoMatchingKey) return new AccessTokenError('invalid_token', 'the access token is signed with an unknown key', { cause: err });
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new AccessTokenError('invalid_token', 'the access token signature is invalid', { cause: err });
  if (
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JOSENotSupported ||
    err instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return new AccessTokenError('invalid_token', 'the access token is malformed', { cause: err });
  }
  // What remains comes from fetching the key set (timeout, HTTP status, invalid JSON, network), not from the token.
  return new IssuerUnavailableError(`cannot fetch the S-IdMS key set: ${messageOf(err)}`, { cause: err });
}

// Duck-typed: errors from fetch may come from another realm (e.g. a test VM), where instanceof Error fails.
function messageOf(err: unknown): string {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}
