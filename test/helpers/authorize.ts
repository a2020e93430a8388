// The authorization request a VAL UE makes: code flow with PKCE S256, state, nonce and prompt=consent.
import * as oidc from 'openid-client';

export const LOGIN_SCOPE = 'openid offline_access 3gpp:seal:val_service';

export type PkceRequest = { url: URL; verifier: string; state: string; nonce: string };

/** `extra` overrides or adds parameters (e.g. resource, scope). */
export async function pkceAuthorizationRequest(config: oidc.Configuration, redirectUri: string, extra: Record<string, string> = {}): Promise<PkceRequest> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: LOGIN_SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent', // OIDC Core §11: offline_access needs prompt=consent
    ...extra,
  });
  return { url, verifier, state, nonce };
}
