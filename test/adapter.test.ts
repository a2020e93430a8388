// The PostgreSQL adapter honours oidc-provider's adapter contract (STYLE anchor 5), on a real database, and stores no
// usable bearer value (issue 10 item 5) and decides single use in the database (items 2, 3).
import { errors } from 'oidc-provider';
import { convertLegacyPayloads, explainPayloadReads, PostgresAdapter, sweepExpiredPayloads } from '../src/oidc/adapter.ts';
import { atRestKeys, storageKey } from '../src/oidc/at-rest.ts';
import { deriveSecrets } from '../src/config/secret.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_SECRET } from './helpers/server.ts';

let database: TestDatabase;
const keys = atRestKeys(deriveSecrets(TEST_SECRET));
const adapter = (kind: string) => new PostgresAdapter(database.db, kind, keys);
const rows = () => database.db('oidc_payloads').select('kind', 'id', 'payload', 'grant_id', 'uid', 'user_code');

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database?.drop();
});

test('upsert then find returns the payload; another model with the same id is separate', async () => {
  const codes = adapter('AuthorizationCode');
  const sessions = adapter('Session');
  await codes.upsert('x1', { jti: 'x1', grantId: 'g1', accountId: 'alice' }, 60);
  expect(await codes.find('x1')).toEqual({ jti: 'x1', grantId: 'g1', accountId: 'alice' });
  expect(await sessions.find('x1')).toBeUndefined();
  await codes.upsert('x1', { jti: 'x1', grantId: 'g1', accountId: 'bob' }, 60);
  expect((await codes.find('x1'))?.accountId).toBe('bob');
});

test('expired payloads are not found, and the sweeper removes them', async () => {
  const tokens = adapter('RefreshToken');
  await tokens.upsert('old', { grantId: 'g2' }, 1);
  const id = storageKey(keys, 'old');
  await database
    .db('oidc_payloads')
    .where({ id })
    .update({ expires_at: database.db.raw("now() - interval '1 second'") });
  expect(await tokens.find('old')).toBeUndefined();
  expect(await sweepExpiredPayloads(database.db)).toBeGreaterThanOrEqual(1);
  expect(await database.db('oidc_payloads').where({ id }).first()).toBeUndefined();
});

test('payloads without expiry (clients) never expire', async () => {
  const clients = adapter('Client');
  await clients.upsert('c1', { client_id: 'c1' } as never);
  expect(await clients.find('c1')).toEqual({ client_id: 'c1' });
});

test('consume marks the payload consumed with a timestamp', async () => {
  const codes = adapter('AuthorizationCode');
  await codes.upsert('c2', { grantId: 'g3' }, 60);
  await codes.consume('c2');
  const found = await codes.find('c2');
  expect(found?.consumed).toEqual(expect.any(Number));
  expect(Math.abs(found!.consumed - Date.now() / 1000)).toBeLessThan(60);
});

test('findByUid and findByUserCode use their columns; the id comes back with the record', async () => {
  const sessions = adapter('Session');
  await sessions.upsert('s1', { jti: 's1', uid: 'u-1', accountId: 'alice' }, 60);
  expect(await sessions.findByUid('u-1')).toMatchObject({ jti: 's1', accountId: 'alice' });
  const devices = adapter('DeviceCode');
  await devices.upsert('d1', { jti: 'd1', userCode: 'ABCD-EFGH' }, 60);
  expect(await devices.findByUserCode('ABCD-EFGH')).toEqual({ jti: 'd1', userCode: 'ABCD-EFGH' });
  expect(await devices.findByUserCode('ABCD-EFGX')).toBeUndefined();
});

// Every login redeems a code, whose read joins the session it came from by uid. With an index on uid alone, a planner
// without statistics yet (a fresh or just-restored database) ANDed it with a scan of every Session's primary key: the
// cost of a login grew with the number of sessions. The (kind, uid) index serves the join in a few pages either way.
test('the code redemption read and the session-by-uid read touch a few pages, however many sessions there are', async () => {
  await database.db.raw(`insert into oidc_payloads (kind, id, payload, uid, expires_at)
    select 'Session', 'bulk-' || i, jsonb_build_object('uid', 'bulk-uid-' || i), 'bulk-uid-' || i, now() + interval '1 hour'
    from generate_series(1, 20000) i`);
  await adapter('Session').upsert('s-plan', { uid: 'uid-plan', accountId: 'alice' } as never, 60);
  await adapter('Grant').upsert('g-plan', { accountId: 'alice' } as never, 60);
  await adapter('AuthorizationCode').upsert('code-plan', { grantId: 'g-plan', sessionUid: 'uid-plan' } as never, 60);
  // The plan's top node's buffers, from cache or not: "Buffers: shared hit=N read=M".
  const pages = (plan: string) => {
    const line = /Buffers: shared ([^\n]*)/.exec(plan)?.[1];
    if (line === undefined) return Infinity;
    return [...line.matchAll(/(?:hit|read)=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  };
  for (const stats of ['before ANALYZE', 'after ANALYZE']) {
    if (stats === 'after ANALYZE') await database.db.raw('analyze oidc_payloads');
    const plans = await explainPayloadReads(database.db, storageKey(keys, 'code-plan'), 'uid-plan');
    expect([stats, pages(plans.code) < 40, pages(plans.sessionByUid) < 10, plans.code, plans.sessionByUid]).toEqual([
      stats,
      true,
      true,
      plans.code,
      plans.sessionByUid,
    ]);
    expect(plans.code).toMatch(/oidc_payloads_kind_uid_idx/);
  }
  expect((await adapter('AuthorizationCode').find('code-plan'))?.sessionUid).toBe('uid-plan');
  expect((await adapter('Session').findByUid('uid-plan'))?.accountId).toBe('alice');
});

test("revokeByGrantId deletes only that grant's records of that model; destroy deletes one", async () => {
  const tokens = adapter('AccessToken');
  const codes = adapter('AuthorizationCode');
  await tokens.upsert('t1', { grantId: 'gx' }, 60);
  await tokens.upsert('t2', { grantId: 'gx' }, 60);
  await tokens.upsert('t3', { grantId: 'gy' }, 60);
  await codes.upsert('c9', { grantId: 'gx' }, 60);
  await tokens.revokeByGrantId('gx');
  expect(await tokens.find('t1')).toBeUndefined();
  expect(await tokens.find('t2')).toBeUndefined();
  expect(await tokens.find('t3')).toBeDefined();
  expect(await codes.find('c9')).toBeDefined();
  await tokens.destroy('t3');
  expect(await tokens.find('t3')).toBeUndefined();
});

describe('single use (RFC 9700 §4.14.2, RFC 6749 §4.1.2)', () => {
  test.each(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest'])(
    '%s: of 4 parallel consumes exactly one wins; the others get invalid_grant and the grant is revoked',
    async (kind) => {
      const grantId = `grant-${kind}`;
      const model = adapter(kind);
      await new PostgresAdapter(database.db, 'Grant').upsert(grantId, { jti: grantId, accountId: 'alice' }, 60);
      await model.upsert(`one-${kind}`, { grantId }, 60);
      await adapter('AccessToken').upsert(`at-${kind}`, { grantId }, 60);
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => model.consume(`one-${kind}`)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results.filter((r) => r.status === 'rejected')) {
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(errors.InvalidGrant);
      }
      expect(await new PostgresAdapter(database.db, 'Grant').find(grantId)).toBeUndefined();
      expect(await adapter('AccessToken').find(`at-${kind}`)).toBeUndefined();
      expect(await model.find(`one-${kind}`)).toBeUndefined();
    },
  );

  test('a pushed authorization request used twice: invalid_request_uri', async () => {
    const par = adapter('PushedAuthorizationRequest');
    await par.upsert('par-1', {}, 60);
    await par.consume('par-1');
    await expect(par.consume('par-1')).rejects.toBeInstanceOf(errors.InvalidRequestUri);
  });
});

describe('at rest (issue 10 item 5)', () => {
  test('a bearer record is keyed by the HMAC of its value; no column holds the value', async () => {
    await adapter('RefreshToken').upsert('rt-secret-value', { jti: 'rt-secret-value', grantId: 'g9', sessionUid: 'u9' }, 60);
    await adapter('Interaction').upsert(
      'int-secret-value',
      {
        jti: 'int-secret-value',
        returnTo: 'http://127.0.0.1/auth/int-secret-value',
        session: { accountId: 'alice', uid: 'u9', cookie: 'session-cookie-value' },
      },
      60,
    );
    const dump = JSON.stringify(await rows());
    for (const secret of ['rt-secret-value', 'int-secret-value', 'session-cookie-value']) expect(dump).not.toContain(secret);
    expect(await adapter('Interaction').find('int-secret-value')).toEqual({
      jti: 'int-secret-value',
      returnTo: 'http://127.0.0.1/auth/int-secret-value',
      session: { accountId: 'alice', uid: 'u9', cookie: 'session-cookie-value' },
    });
  });

  test('a client secret is stored as a keyed hash; a client_secret_jwt secret sealed and opened on read', async () => {
    await adapter('Client').upsert('hashed-client', { client_id: 'hashed-client', client_secret: 'plain-secret-1' } as never);
    await adapter('Client').upsert('jwt-client', {
      client_id: 'jwt-client',
      client_secret: 'plain-secret-2',
      token_endpoint_auth_method: 'client_secret_jwt',
    } as never);
    const dump = JSON.stringify(await rows());
    expect(dump).not.toContain('plain-secret-1');
    expect(dump).not.toContain('plain-secret-2');
    expect((await adapter('Client').find('hashed-client'))?.client_secret).not.toBe('plain-secret-1');
    expect((await adapter('Client').find('jwt-client'))?.client_secret).toBe('plain-secret-2');
  });

  test('rows in the plain format are converted once, and found by their value afterwards', async () => {
    await database.db('oidc_payloads').insert([
      {
        kind: 'RefreshToken',
        id: 'legacy-rt',
        payload: { jti: 'legacy-rt', grantId: 'gl' },
        grant_id: 'gl',
        expires_at: database.db.raw("now() + interval '1 hour'"),
      },
      {
        kind: 'DeviceCode',
        id: 'legacy-dc',
        payload: { jti: 'legacy-dc', userCode: 'WXYZ-0000' },
        user_code: 'WXYZ-0000',
        expires_at: database.db.raw("now() + interval '1 hour'"),
      },
      { kind: 'Client', id: 'legacy-client', payload: { client_id: 'legacy-client', client_secret: 'legacy-secret' } },
    ]);
    expect(await adapter('RefreshToken').find('legacy-rt')).toBeUndefined();
    expect(await convertLegacyPayloads(database.db, keys)).toBe(3);
    expect(await convertLegacyPayloads(database.db, keys)).toBe(0);
    expect(await adapter('RefreshToken').find('legacy-rt')).toEqual({ jti: 'legacy-rt', grantId: 'gl' });
    expect(await adapter('DeviceCode').findByUserCode('WXYZ-0000')).toEqual({ jti: 'legacy-dc', userCode: 'WXYZ-0000' });
    const dump = JSON.stringify(await rows());
    for (const secret of ['legacy-rt', 'legacy-dc', 'WXYZ-0000', 'legacy-secret']) expect(dump).not.toContain(secret);
  });
});
