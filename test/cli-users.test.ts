// Admin CLI, users (issue 15 item 3): user show | list (search, service, disabled, keyset paging, JSON) | delete |
// sessions revoke, each read back from the database and, for sessions, checked at the token endpoint.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import { insecure, lastAudit, login, REDIRECT } from './helpers/federation.ts';

let database: TestDatabase;
let server: TestServer;
let ue: oidc.Configuration;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  const env = server.env;
  for (const user of ['alice', 'bob', 'carol', 'Dave', 'erin']) await cliOk(env, ['user', 'add', user, '--password', `${user}-password-1`]);
  await cliOk(env, ['user', 'add', 'frank', '--password', 'frank-password-1', '--ue-id', 'ue-frank']);
  await cliOk(env, ['user', 'disable', 'carol']);
  await cliOk(env, ['service', 'grant', 'mcptt-1', 'alice', 'bob', 'carol', 'erin']);
  await cliOk(env, ['service', 'grant', 'v2x-7', 'alice', 'erin']);
  await cliOk(env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  ue = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), insecure);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('user show and user list', () => {
  test('show: status, VAL services as tokens carry them, VAL UE IDs; --json; an unknown user is one line', async () => {
    const text = await cliOk(server.env, ['user', 'show', 'alice']);
    expect(text).toContain('VAL user ID: alice\nstatus: active\npassword: set\nVAL service IDs: mcptt-1, v2x-7\nVAL UE IDs: (none)\n');
    const json = JSON.parse(await cliOk(server.env, ['user', 'show', 'frank', '--json']));
    expect(json).toMatchObject({ valUserId: 'frank', status: 'active', hasPassword: true, valServiceIds: [], valUeIds: ['ue-frank'] });
    expect(Date.parse(json.createdAt)).not.toBeNaN();
    const missing = await cli(server.env, ['user', 'show', 'nobody']);
    expect(missing).toMatchObject({ code: 1, stderr: 'seal-idms: no VAL user nobody\n' });
  });

  test('list pages in ID order with a cursor on stderr until the last page', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const r = await cli(server.env, ['user', 'list', '--limit', '2', ...(cursor ? ['--cursor', cursor] : [])]);
      expect(r.code).toBe(0);
      seen.push(
        ...r.stdout
          .trimEnd()
          .split('\n')
          .map((l) => l.split('\t')[0]!),
      );
      cursor = /^next page: --cursor (\S+)$/m.exec(r.stderr)?.[1];
      if (!cursor) break;
    }
    const all: string[] = await database.db('val_users').orderBy('val_user_id').pluck('val_user_id');
    expect(seen).toEqual(all);
    expect(seen).toHaveLength(6);
  });

  test('filters: --search (case-insensitive), --service (direct or through a VAL UE ID), --disabled; --json lines', async () => {
    const ids = async (...args: string[]) =>
      (await cliOk(server.env, ['user', 'list', ...args]))
        .trimEnd()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0]);
    expect(await ids('--search', 'DA')).toEqual(['Dave']);
    expect(await ids('--search', '%')).toEqual([]); // literal, not a LIKE pattern
    expect(await ids('--service', 'v2x-7')).toEqual(['alice', 'erin']);
    expect(await ids('--service', 'mcptt-1', '--disabled')).toEqual(['carol']);
    // A VAL service provisioned to frank's VAL UE ID (ss-ipp ValTargetUe.valUeId) lists frank.
    await cliOk(server.env, ['val-server', 'add', 'vs-ue', '--client-id', 'vs-ue-client', '--services', 'ue-svc']);
    await database.db('val_service_configurations').insert({ conf_id: 'conf-ue-1', owner: 'vs-ue' });
    await database.db('val_service_ues').insert({ conf_id: 'conf-ue-1', val_service_id: 'ue-svc', val_ue_id: 'ue-frank', provisioned_by: 'vs-ue' });
    expect(await ids('--service', 'ue-svc')).toEqual(['frank']);
    const lines = (await cliOk(server.env, ['user', 'list', '--disabled', '--json']))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toEqual([expect.objectContaining({ valUserId: 'carol', status: 'disabled', hasPassword: true })]);
  });
});

describe('user delete and user sessions revoke', () => {
  test('delete removes credentials, mappings, VAL UE IDs, sessions and grants: the refresh token fails at once; audited', async () => {
    const tokens = await login(ue, 'erin', 'erin-password-1');
    expect(tokens.refresh_token).toBeDefined();
    const grants = async () =>
      Number((await database.db('oidc_payloads').where({ kind: 'Grant' }).whereRaw(`payload->>'accountId' = ?`, ['erin']).count({ n: '*' }))[0]!.n);
    const sessions = async () =>
      Number((await database.db('oidc_payloads').where({ kind: 'Session' }).whereRaw(`payload->>'accountId' = ?`, ['erin']).count({ n: '*' }))[0]!.n);
    expect(await grants()).toBe(1);
    expect(await sessions()).toBe(1);

    const out = await cliOk(server.env, ['user', 'delete', 'erin']);
    expect(out).toMatch(/^deleted VAL user erin: 2 VAL service mappings, 0 VAL UE IDs, 1 sessions, 1 grants, [1-9]\d* tokens and codes\n$/);
    expect(await database.db('val_users').where({ val_user_id: 'erin' }).first()).toBeUndefined();
    expect(await database.db('val_service_users').where({ val_user_id: 'erin' }).pluck('val_service_id')).toEqual([]);
    expect(await grants()).toBe(0);
    expect(await sessions()).toBe(0);
    await expect(oidc.refreshTokenGrant(ue, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const audit = await lastAudit(database.db, 'user.delete');
    expect(audit).toMatchObject({
      actor: 'cli',
      subject: 'erin',
      result: 'success',
      details: expect.objectContaining({ mappings: 2, sessions: 1, grants: 1, credentials: true }),
    });

    // Deleting frank unbinds his VAL UE ID; deleting him again is an error (nothing left under the ID).
    await cliOk(server.env, ['user', 'delete', 'frank']);
    expect(await database.db('val_user_ues').where({ val_user_id: 'frank' }).first()).toBeUndefined();
    const again = await cli(server.env, ['user', 'delete', 'frank']);
    expect(again).toMatchObject({ code: 1, stderr: 'seal-idms: no VAL user frank\n' });
  });

  test('sessions revoke ends sessions, grants and refresh tokens; the user keeps their credentials and logs in again', async () => {
    const first = await login(ue, 'alice', 'alice-password-1');
    const second = await login(ue, 'alice', 'alice-password-1');
    const bob = await login(ue, 'bob', 'bob-password-1');
    const out = await cliOk(server.env, ['user', 'sessions', 'revoke', 'alice']);
    expect(out).toMatch(/^revoked [1-9] sessions, 2 grants and [1-9]\d* tokens and codes of VAL user alice\n$/);
    for (const t of [first, second]) await expect(oidc.refreshTokenGrant(ue, t.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // Another user's session is untouched.
    expect((await oidc.refreshTokenGrant(ue, bob.refresh_token!)).access_token).toBeDefined();
    expect(await database.db('val_users').where({ val_user_id: 'alice' }).first('status')).toEqual({ status: 'active' });
    const again = await login(ue, 'alice', 'alice-password-1');
    expect((await oidc.refreshTokenGrant(ue, again.refresh_token!)).access_token).toBeDefined();
    expect(await lastAudit(database.db, 'user.sessions.revoke')).toMatchObject({
      actor: 'cli',
      subject: 'alice',
      details: expect.objectContaining({ grants: 2 }),
    });
    const unknown = await cli(server.env, ['user', 'sessions', 'revoke', 'nobody']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'seal-idms: no VAL user nobody\n' });
  });
});
