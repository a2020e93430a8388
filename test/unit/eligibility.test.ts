// The token-eligibility rule and how each caller maps its answer to its own protocol error (no database).
import { errors } from 'oidc-provider';
import { eligibilityOf, eligibleServices, isLocalUser, type Eligibility } from '../../src/users/eligibility.ts';
import { accountFor } from '../../src/oidc/account.ts';
import { loginRefusal, SIGN_IN_OUTCOMES } from '../../src/interactions/login.ts';
import { exchangeRefusal } from '../../src/oidc/grants/token-exchange.ts';
import { partnerEligibility } from '../../src/oidc/grants/jwt-bearer.ts';
import { introspectionActive } from '../../src/oidc/jwt-introspection.ts';

const ok: Eligibility = { kind: 'ok', services: ['mcptt-1', 'mcvideo-2'] };
const visitor: Eligibility = { kind: 'visitor', services: ['mcptt-1', 'mcvideo-2'] };
const disabled: Eligibility = { kind: 'disabled' };
const noService: Eligibility = { kind: 'no_service' };
const unknown: Eligibility = { kind: 'unknown' };
const grantRevoked: Eligibility = { kind: 'grant_revoked' };
const ALL = { ok, visitor, disabled, no_service: noService, unknown, grant_revoked: grantRevoked };

/** A protocol error as the client reads it: its code and what it says (oidc-provider keeps invalid_grant's reason as error_detail). */
function said(err: InstanceType<typeof errors.OIDCProviderError> | undefined) {
  return err && { error: err.error, message: err.error_detail ?? err.error_description };
}

/** What a caller does with an answer: its result, or the protocol error it throws. */
function outcome<T>(map: () => T): T | ReturnType<typeof said> {
  try {
    return map();
  } catch (err) {
    if (!(err instanceof errors.OIDCProviderError)) throw err;
    return said(err);
  }
}

describe('the rule (eligibilityOf)', () => {
  test.each([
    ['an active local user with services', { status: 'active', services: ['a'], grantLive: false }, false, { kind: 'ok', services: ['a'] }],
    [
      "no local record but a mapping: a partner domain's user",
      { status: undefined, services: ['a'], grantLive: false },
      false,
      { kind: 'visitor', services: ['a'] },
    ],
    ['a disabled local user, provisioned', { status: 'disabled', services: ['a'], grantLive: false }, false, { kind: 'disabled' }],
    ['a disabled local user, not provisioned', { status: 'disabled', services: [], grantLive: false }, false, { kind: 'disabled' }],
    ['an active local user provisioned for nothing', { status: 'active', services: [], grantLive: false }, false, { kind: 'no_service' }],
    ['neither a record nor a mapping', { status: undefined, services: [], grantLive: false }, false, { kind: 'unknown' }],
    ['a grant asked about and gone, whoever the user', { status: 'active', services: ['a'], grantLive: false }, true, { kind: 'grant_revoked' }],
    ['a grant asked about and live', { status: 'active', services: ['a'], grantLive: true }, true, { kind: 'ok', services: ['a'] }],
  ] as const)('%s', (_name, standing, grantAsked, expected) => {
    expect(eligibilityOf({ ...standing, services: [...standing.services] }, grantAsked)).toEqual(expected);
  });

  test('only ok and visitor carry services; ok, disabled and no_service are local users', () => {
    expect(
      Object.entries(ALL)
        .filter(([, a]) => eligibleServices(a) !== undefined)
        .map(([k]) => k),
    ).toEqual(['ok', 'visitor']);
    expect(
      Object.entries(ALL)
        .filter(([, a]) => isLocalUser(a))
        .map(([k]) => k),
    ).toEqual(['ok', 'disabled', 'no_service']);
  });
});

describe('login: access_denied through interactionFinished', () => {
  test('ok signs in; no_service is access_denied counted as no_val_service', () => {
    expect(loginRefusal(ok)).toBeUndefined();
    expect(loginRefusal(noService)).toEqual({ reason: 'no_val_service', description: 'the VAL user is not provisioned for any VAL service' });
  });

  test('a user disabled or deleted after the password check is refused, never signed in', () => {
    for (const answer of [disabled, unknown, visitor])
      expect(loginRefusal(answer)).toEqual({ reason: 'invalid_credentials', description: 'the VAL user is unknown or disabled' });
  });

  test("the statement after a correct password writes the event of loginRefusal's reason: each standing in exactly one condition", () => {
    // The standings a condition holds for, as eligibilityConditionSql lists them: (status, provisioned, grant live).
    const tuples = (when: string) => [...when.matchAll(/\('(\w*)', (true|false), (true|false)\)/g)].map((m) => `${m[1]}|${m[2]}`);
    for (const status of [undefined, 'active', 'disabled'] as const) {
      for (const provisioned of [false, true]) {
        const reason = loginRefusal(eligibilityOf({ status, services: provisioned ? ['a'] : [], grantLive: false }))?.reason;
        const holding = SIGN_IN_OUTCOMES.filter((o) => tuples(o.when).includes(`${status ?? ''}|${provisioned}`));
        expect(holding.map((o) => o.reason)).toEqual([reason]);
      }
    }
  });
});

describe('findAccount: an account, none, or access_denied where tokens are issued', () => {
  test('ok: the account with the VAL claims', async () => {
    const account = accountFor('alice', ok, 'token');
    expect(account?.accountId).toBe('alice');
    expect(await account!.claims('id_token', 'openid', {}, [])).toEqual({ sub: 'alice', val_user_id: 'alice', val_service_ids: ['mcptt-1', 'mcvideo-2'] });
  });

  test.each(['authorization', 'resume', 'token'])('no_service at %s is access_denied (refresh included)', (route) => {
    expect(outcome(() => accountFor('alice', noService, route))).toEqual({
      error: 'access_denied',
      message: 'the VAL user is not provisioned for any VAL service',
    });
  });

  test('no_service elsewhere (userinfo) and every other answer: no account (refresh: invalid_grant from oidc-provider)', () => {
    expect(accountFor('alice', noService, 'userinfo')).toBeUndefined();
    for (const answer of [disabled, unknown, visitor]) {
      for (const route of ['authorization', 'token', 'userinfo', undefined]) expect(accountFor('alice', answer, route)).toBeUndefined();
    }
  });
});

describe('token exchange (home side): invalid_grant', () => {
  test.each([
    ['ok', undefined],
    ['grant_revoked', 'the grant of subject_token has been revoked'],
    ['no_service', 'the VAL user is no longer provisioned for any VAL service'],
    ['disabled', 'the VAL user is unknown or disabled'],
    ['unknown', 'the VAL user is unknown or disabled'],
    ['visitor', 'the VAL user is unknown or disabled'],
  ] as const)('%s', (kind, message) => {
    expect(said(exchangeRefusal(ALL[kind]))).toEqual(message && { error: 'invalid_grant', message });
  });
});

describe('JWT bearer (partner side): access_denied, services narrowed by the policy', () => {
  const open = { allowLocalUsers: true };
  const strict = { allowLocalUsers: false };

  test('a visitor gets the provisioned services, narrowed by the policy', () => {
    expect(partnerEligibility(visitor, strict)).toEqual(visitor);
    expect(partnerEligibility(visitor, { ...strict, services: ['mcvideo-2', 'other'] })).toEqual({ kind: 'visitor', services: ['mcvideo-2'] });
    expect(outcome(() => partnerEligibility(visitor, { ...strict, services: ['other'] }))).toEqual({
      error: 'access_denied',
      message: 'none of the VAL services provisioned here for the VAL user is allowed for this partner',
    });
  });

  test('a local user only when the policy allows local users, and never a disabled one', () => {
    const local = { error: 'access_denied', message: 'the VAL user is a local user of this domain; this partner may not vouch for local users' };
    for (const answer of [ok, disabled, noService]) expect(outcome(() => partnerEligibility(answer, strict))).toEqual(local);
    expect(partnerEligibility(ok, open)).toEqual(ok);
    expect(outcome(() => partnerEligibility(disabled, open))).toEqual({ error: 'access_denied', message: 'the VAL user is disabled in this domain' });
  });

  test('nothing provisioned here is access_denied', () => {
    const none = { error: 'access_denied', message: 'the VAL user is not provisioned for any VAL service in this domain' };
    expect(outcome(() => partnerEligibility(unknown, strict))).toEqual(none);
    expect(outcome(() => partnerEligibility(noService, open))).toEqual(none);
  });
});

describe('introspection: active false unless the user may still get the token', () => {
  test.each(Object.entries(ALL))('%s', (kind, answer) => {
    expect(introspectionActive(answer)).toBe(kind === 'ok' || kind === 'visitor');
  });
});
