// Claims and authentication context of the VAL profile (TS 33.434 annex A): what goes into ID tokens, userinfo and
// access tokens, and how a requested authentication context class is met or refused.
import { errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { VAL_SERVICE_SCOPE } from './resources.ts';

/** TS 33.434 A.4.2.2: the authentication context class of a VAL user ID + password login (`acr_values`). */
export const PASSWORD_ACR = '3gpp:acr:password';

/** What the server can satisfy (discovery `acr_values_supported`); a further method adds its class here. */
export const ACR_VALUES: readonly string[] = [PASSWORD_ACR];

/** The login interaction's result for a password login: acr (OIDC Core §2) and amr (RFC 8176 `pwd`). */
export const PASSWORD_LOGIN = { acr: PASSWORD_ACR, amr: ['pwd'] } as const;

/**
 * TS 33.434 A.2.2.3: in the access tokens of a VAL server whose SKM-C may provide key material to the S-KMS
 * (`val-server add|update … --skey-prov`), and in no other token. The S-KMS checks it is present and true (clause 5.8.1).
 */
export const SKEY_PROV_CLAIM = 'SKeyProv';

/**
 * Scope → claims (oidc-provider `claims`). `openid` alone yields the VAL claims (TS 33.180 annex B.2 puts the VAL
 * service identities in the ID token without an extra scope); `3gpp:seal:val_service` still asks for them explicitly.
 * acr and amr are taken from the login, never from the account.
 */
export const SCOPE_CLAIMS = {
  openid: ['sub', 'acr', 'amr', 'val_user_id', 'val_service_ids'],
  [VAL_SERVICE_SCOPE]: ['val_user_id', 'val_service_ids'],
};

type AcrRequest = { essential?: unknown; value?: unknown; values?: unknown };

/**
 * The login prompt of oidc-provider's default policy, with its two essential-acr checks replaced by one that knows
 * what this server can do. OIDC Core §5.5.1.1: an essential acr that cannot be met is a failed authentication
 * (`unmet_authentication_requirements`, OpenID Connect Core Unmet Authentication Requirements 1.0), not a login page
 * shown again and again; one the server can meet but the session has not is a login (`login_required` with
 * prompt=none). Voluntary acr_values are answered with the best class the login gave.
 */
export function valInteractionPolicy(supported: readonly string[] = ACR_VALUES) {
  const { base, Check } = interactionPolicy;
  const policy = base();
  const login = policy.get('login')!;
  login.checks.remove('essential_acrs');
  login.checks.remove('essential_acr');
  login.checks.add(
    new Check('essential_acr', 'requested authentication context class could not be obtained', 'login_required', (ctx: KoaContextWithOIDC) => {
      const request = (ctx.oidc.claims as { id_token?: { acr?: AcrRequest } } | undefined)?.id_token?.acr;
      if (!request?.essential) return Check.NO_NEED_TO_PROMPT;
      if (request.values !== undefined && !Array.isArray(request.values)) throw new errors.InvalidRequest('invalid claims.id_token.acr.values type');
      const values = Array.isArray(request.values) ? request.values : request.value !== undefined ? [request.value] : [];
      if (values.length === 0) return Check.NO_NEED_TO_PROMPT;
      if (!values.some((v) => typeof v === 'string' && supported.includes(v))) {
        throw new errors.UnmetAuthenticationRequirements('none of the requested authentication context classes can be satisfied');
      }
      return values.includes(ctx.oidc.acr) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );
  return policy;
}
