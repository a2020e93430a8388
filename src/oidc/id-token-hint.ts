// id_token_hint (authorization and end_session endpoints) accepts ID tokens only, never another JWT this issuer signed.
import { decodeProtectedHeader } from 'jose';
import { errors } from 'oidc-provider';
import type { ProviderExtension } from './provider.ts';

// oidc-provider checks signature, iss and aud = client_id, not the JOSE typ: an RFC 9068 access token whose audience
// happens to be a client ID (a VAL server that is also a resource server), or a security token, would pass.
// RFC 8725 §3.11: explicitly typed JWTs are told apart by typ; ID tokens carry none (or the generic "JWT").
export const idTokenHintTyping: ProviderExtension = (provider) => {
  const IdToken = provider.IdToken;
  const validate = IdToken.validate.bind(IdToken);
  IdToken.validate = async (jwt, client) => {
    let typ: unknown;
    try {
      typ = decodeProtectedHeader(jwt).typ;
    } catch {
      throw new errors.InvalidRequest('could not decode id_token_hint');
    }
    if (typ !== undefined && String(typ).toLowerCase() !== 'jwt') throw new errors.InvalidRequest('id_token_hint is not an ID token');
    return validate(jwt, client);
  };
};
