// Forging JWTs the way an attacker would, for the security suite: every defect a verifier must refuse, built from
// genuine claims and (where the defect is not the signature) signed with the genuine key.
import crypto from 'node:crypto';

export type Signer = { kid: string; key: crypto.KeyObject };

export const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An ES256 JWS with exactly the given protected header (by hand: jose refuses to sign an unknown crit). */
export function signEs256(header: Record<string, unknown>, payload: unknown, key: crypto.KeyObject): string {
  const input = `${b64(JSON.parse(JSON.stringify({ alg: 'ES256', ...header })))}.${b64(payload)}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

export function hs256(header: Record<string, unknown>, payload: unknown, secret: string): string {
  const input = `${b64({ ...header, alg: 'HS256' })}.${b64(payload)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

export function signerFromJwk(jwk: crypto.JsonWebKey & { kid?: string }): Signer {
  return { kid: jwk.kid!, key: crypto.createPrivateKey({ key: jwk, format: 'jwk' }) };
}

/**
 * Every way a token of type `typ` signed by `signer` must not be accepted. `claims()` returns genuine claims with a
 * fresh jti each call; `control` is the same construction without a defect, which the verifier must accept.
 */
export function forgeries(signer: Signer, typ: string, claims: () => Record<string, unknown>): { control: () => string; forged: Record<string, string> } {
  const publicJwk = crypto.createPublicKey(signer.key).export({ format: 'jwk' });
  const publicPem = crypto.createPublicKey(signer.key).export({ type: 'spki', format: 'pem' }).toString();
  const attacker = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const genuine = (header: Record<string, unknown> = {}, payload = claims()) => signEs256({ kid: signer.kid, typ, ...header }, payload, signer.key);
  const byAttacker = (header: Record<string, unknown>) => signEs256({ typ, ...header }, claims(), attacker.privateKey);
  return {
    control: () => genuine(),
    forged: {
      'alg none': `${b64({ alg: 'none', typ, kid: signer.kid })}.${b64(claims())}.`,
      'alg none with a signature': `${b64({ alg: 'none', typ })}.${b64(claims())}.${b64('sig')}`,
      'HS256 keyed with the public key (PEM)': hs256({ typ, kid: signer.kid }, claims(), publicPem),
      'HS256 keyed with the public key (JWK)': hs256({ typ, kid: signer.kid }, claims(), JSON.stringify(publicJwk)),
      'an unknown kid': byAttacker({ kid: 'no-such-key' }),
      'a known kid but another key': byAttacker({ kid: signer.kid }),
      'an embedded jwk header': byAttacker({ jwk: attacker.publicKey.export({ format: 'jwk' }) }),
      'a jku header to a foreign key set': byAttacker({ jku: 'https://attacker.example/jwks' }),
      'an unknown crit header': genuine({ crit: ['urn:example:must-understand'], 'urn:example:must-understand': true }),
      'an oversized token (20 KiB)': genuine({}, { ...claims(), padding: 'x'.repeat(20 * 1024) }),
      'an expired token': genuine({}, { ...claims(), iat: 1_000_000_000, exp: 1_000_000_300 }),
      'another issuer': genuine({}, { ...claims(), iss: 'https://attacker.example' }),
      'another typ': genuine({ typ: typ === 'JWT' ? 'at+jwt' : 'JWT' }),
      'no typ': genuine({ typ: undefined }),
      'a truncated signature': genuine().slice(0, -10),
      'garbage segments': 'a.b.c',
      'deeply nested JSON': `${b64({ alg: 'ES256', typ })}.${b64('['.repeat(50_000) + ']'.repeat(50_000)).slice(0, 15_000)}.c`,
    },
  };
}
