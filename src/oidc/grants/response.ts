// The token endpoint's success answer for this server's grants (RFC 6749 §5.1, RFC 8693 §2.2.1), built in one place.

export type IssuedToken = {
  accessToken: string;
  tokenType: string;
  expiresIn: number;
  scope?: string;
  /** RFC 8693 §2.2.1: required in a token exchange response, absent otherwise. */
  issuedTokenType?: string;
};

export function tokenResponse(issued: IssuedToken): Record<string, string | number> {
  return {
    access_token: issued.accessToken,
    ...(issued.issuedTokenType ? { issued_token_type: issued.issuedTokenType } : {}),
    token_type: issued.tokenType,
    expires_in: issued.expiresIn,
    ...(issued.scope ? { scope: issued.scope } : {}),
  };
}
