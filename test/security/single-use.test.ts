// Single use under concurrency (issue 10 items 2, 3): a refresh token or an authorization code presented in parallel
// wins exactly once, and the race's loser is treated as the replay it is: the grant is revoked.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { introspect, login, loginAndRedeem, provision, type Deployment } from './support.ts';

// Each race is run several times: which request reaches the database first differs from round to round.
const ROUNDS = 4;

let database: TestDatabase;
let d: Deployment;

beforeAll(async () => {
  database = await createTestDatabase();
  d = await provision(await startTestServer(database));
});

afterAll(async () => {
  await d?.server.close();
  await database?.drop();
});

function settle<T>(results: PromiseSettledResult<T>[]): { won: T[]; lost: unknown[] } {
  return {
    won: results.filter((r): r is PromiseFulfilledResult<T> => r.status === 'fulfilled').map((r) => r.value),
    lost: results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown),
  };
}

describe('refresh token rotation (RFC 9700 §4.14.2)', () => {
  test('2 parallel refreshes with one refresh token: exactly one 200, the other invalid_grant, and the grant is revoked', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const first = await loginAndRedeem(d.ue, 'alice');
      // Control: introspection reports this grant's tokens active before the race.
      expect((await introspect(d, first.access_token)).body.active).toBe(true);

      const { won, lost } = settle(await Promise.allSettled([1, 2].map(() => oidc.refreshTokenGrant(d.ue, first.refresh_token!))));
      expect({ round, won: won.length }).toEqual({ round, won: 1 });
      expect(lost).toEqual([expect.objectContaining({ error: 'invalid_grant', status: 400 })]);

      // The winner's chain goes with the grant: its new refresh token and its access token are dead too.
      const winner = won[0]!;
      await expect(oidc.refreshTokenGrant(d.ue, winner.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await introspect(d, winner.access_token)).body.active).toBe(false);
      expect((await introspect(d, first.access_token)).body.active).toBe(false);
    }
  });
});

describe('authorization code (RFC 6749 §4.1.2, RFC 9700 §4.5)', () => {
  test("4 parallel redemptions of one code: exactly one succeeds, the others get invalid_grant, and the winner's tokens are revoked", async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { callback, verifier, state, nonce } = await login(d.ue, 'bob');
      const redeem = () => oidc.authorizationCodeGrant(d.ue, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
      const { won, lost } = settle(await Promise.allSettled([1, 2, 3, 4].map(redeem)));
      expect({ round, won: won.length }).toEqual({ round, won: 1 });
      expect(lost).toEqual(Array(3).fill(expect.objectContaining({ error: 'invalid_grant', status: 400 })));

      // RFC 6749 §4.1.2: the server SHOULD revoke all tokens previously issued based on that code.
      const winner = won[0]!;
      await expect(oidc.refreshTokenGrant(d.ue, winner.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect((await introspect(d, winner.access_token)).body.active).toBe(false);
    }
  });

  test('control: one redemption of a fresh code succeeds and its tokens stay active', async () => {
    const tokens = await loginAndRedeem(d.ue, 'bob');
    expect((await introspect(d, tokens.access_token)).body.active).toBe(true);
    await expect(oidc.refreshTokenGrant(d.ue, tokens.refresh_token!)).resolves.toMatchObject({ access_token: expect.any(String) });
  });
});
