// Admin CLI, clients, VAL servers and VAL services (issue 15 item 3): client list|show --json, update, rotate-secret
// (checked at the token endpoint), val-server show|list --json, service list paging, list-all, grant to unknown users.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import { insecure, lastAudit } from './helpers/federation.ts';

let database: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', 'http://127.0.0.1:8123/cb', '--name', 'MCPTT client']);
  await cliOk(server.env, ['client', 'add', 'val-server-1', '--secret', 'val-server-secret-1', '--grant', 'client_credentials']);
  for (const user of ['alice', 'bob', 'carol']) await cliOk(server.env, ['user', 'add', user, '--password', `${user}-password-1`]);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const clientCredentials = async (clientId: string, secret: string) => {
  const config = await oidc.discovery(new URL(server.issuer), clientId, secret, undefined, insecure);
  return oidc.clientCredentialsGrant(config);
};

describe('clients', () => {
  test('list and show, as text and JSON lines; never a secret', async () => {
    const text = await cliOk(server.env, ['client', 'list']);
    expect(text).toContain('val-ue\tpublic\tauthorization_code,refresh_token\t');
    expect(text).toContain('val-server-1\tconfidential\tclient_credentials\t');
    const lines = (await cliOk(server.env, ['client', 'list', '--json']))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((c) => c.clientId)).toEqual(['val-server-1', 'val-ue']); // client ID order
    const shown = JSON.parse(await cliOk(server.env, ['client', 'show', 'val-ue', '--json']));
    expect(shown).toEqual({
      clientId: 'val-ue',
      name: 'MCPTT client',
      type: 'public',
      authMethod: 'none',
      grants: ['authorization_code', 'refresh_token'],
      redirectUris: ['http://127.0.0.1:8123/cb'],
      postLogoutRedirectUris: [],
      scope: expect.stringContaining('openid'),
      resourceServers: [],
      idTokenAlg: 'RS256',
    });
    const confidential = await cliOk(server.env, ['client', 'show', 'val-server-1']);
    expect(confidential).toContain('type: confidential (client_secret_basic)');
    expect(confidential + JSON.stringify(lines)).not.toMatch(/secret-1|client_secret_hash|hmac/);
  });

  test('update replaces redirect URIs, grants and name (checked like add), read back from the store', async () => {
    await cliOk(server.env, [
      'client',
      'update',
      'val-ue',
      '--redirect-uri',
      'http://127.0.0.1:9000/a',
      '--redirect-uri',
      'http://127.0.0.1:9000/b',
      '--name',
      'Renamed',
    ]);
    let c = JSON.parse(await cliOk(server.env, ['client', 'show', 'val-ue', '--json']));
    expect(c).toMatchObject({ name: 'Renamed', redirectUris: ['http://127.0.0.1:9000/a', 'http://127.0.0.1:9000/b'] });
    await cliOk(server.env, ['client', 'update', 'val-ue', '--grant', 'authorization_code', '--name', '']);
    c = JSON.parse(await cliOk(server.env, ['client', 'show', 'val-ue', '--json']));
    expect(c).toMatchObject({ name: null, grants: ['authorization_code'] });
    const publicCc = await cli(server.env, ['client', 'update', 'val-ue', '--grant', 'client_credentials']);
    expect(publicCc).toMatchObject({ code: 1, stderr: 'seal-idms: invalid client: a public client cannot use client_credentials\n' });
    const noRedirect = await cli(server.env, ['client', 'update', 'val-server-1', '--grant', 'authorization_code']);
    expect(noRedirect.code).toBe(1);
    expect(noRedirect.stderr).toMatch(/^seal-idms: invalid client: a client using authorization_code needs at least one --redirect-uri\n$/);
    expect(await lastAudit(database.db, 'client.update')).toMatchObject({ actor: 'cli', subject: 'val-ue' });
  });

  test('--post-logout-redirect-uri (OIDC RP-Initiated Logout 1.0 §3.1): add registers, update replaces, none clears, checked like redirect URIs', async () => {
    await cliOk(server.env, [
      'client',
      'add',
      'val-ue-2',
      '--public',
      '--redirect-uri',
      'http://127.0.0.1:8123/cb',
      '--post-logout-redirect-uri',
      'http://127.0.0.1:8123/bye',
    ]);
    const show = async () => JSON.parse(await cliOk(server.env, ['client', 'show', 'val-ue-2', '--json'])).postLogoutRedirectUris;
    expect(await show()).toEqual(['http://127.0.0.1:8123/bye']);
    expect(await cliOk(server.env, ['client', 'show', 'val-ue-2'])).toContain('post-logout redirect URIs: http://127.0.0.1:8123/bye\n');
    await cliOk(server.env, [
      'client',
      'update',
      'val-ue-2',
      '--post-logout-redirect-uri',
      'http://127.0.0.1:8123/a',
      '--post-logout-redirect-uri',
      'http://127.0.0.1:8123/b',
    ]);
    expect(await show()).toEqual(['http://127.0.0.1:8123/a', 'http://127.0.0.1:8123/b']);
    const stored = await database.db('oidc_payloads').where({ kind: 'Client', id: 'val-ue-2' }).first('payload');
    expect(stored.payload.post_logout_redirect_uris).toEqual(['http://127.0.0.1:8123/a', 'http://127.0.0.1:8123/b']);
    const fragment = await cli(server.env, ['client', 'update', 'val-ue-2', '--post-logout-redirect-uri', 'http://127.0.0.1:8123/a#x']);
    expect(fragment).toMatchObject({ code: 1, stderr: 'seal-idms: invalid client: post_logout_redirect_uris must not contain fragments\n' });
    const notWeb = await cli(server.env, [
      'client',
      'add',
      'val-ue-3',
      '--public',
      '--redirect-uri',
      'http://127.0.0.1:8123/cb',
      '--post-logout-redirect-uri',
      'javascript:alert(1)',
    ]);
    expect(notWeb).toMatchObject({ code: 1, stderr: 'seal-idms: invalid client: post_logout_redirect_uris must only contain web uris\n' });
    await cliOk(server.env, ['client', 'update', 'val-ue-2', '--post-logout-redirect-uri', 'none']);
    expect(await show()).toEqual([]);
    expect(await lastAudit(database.db, 'client.update')).toMatchObject({ subject: 'val-ue-2', details: { postLogoutRedirectUris: [] } });
  });

  test('update --id-token-alg is kept in the registration', async () => {
    await cliOk(server.env, ['client', 'update', 'val-ue', '--id-token-alg', 'ES256']);
    expect(JSON.parse(await cliOk(server.env, ['client', 'show', 'val-ue', '--json'])).idTokenAlg).toBe('ES256');
  });

  test('rotate-secret: the new secret is printed once and works at the token endpoint; the old one fails', async () => {
    expect((await clientCredentials('val-server-1', 'val-server-secret-1')).access_token).toBeDefined();
    const out = await cliOk(server.env, ['client', 'rotate-secret', 'val-server-1']);
    const secret = /^client_secret: (\S+)$/m.exec(out)?.[1];
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await expect(clientCredentials('val-server-1', 'val-server-secret-1')).rejects.toMatchObject({ error: 'invalid_client' });
    expect((await clientCredentials('val-server-1', secret!)).access_token).toBeDefined();
    // Stored hashed: the new secret is nowhere in the table.
    const stored = await database.db('oidc_payloads').where({ kind: 'Client', id: 'val-server-1' }).first('payload');
    expect(JSON.stringify(stored.payload)).not.toContain(secret);
    expect(await lastAudit(database.db, 'client.rotate-secret')).toMatchObject({ actor: 'cli', subject: 'val-server-1' });
    const pub = await cli(server.env, ['client', 'rotate-secret', 'val-ue']);
    expect(pub).toMatchObject({ code: 1, stderr: 'seal-idms: invalid client: client val-ue is public: it has no secret\n' });
  });
});

describe('VAL servers', () => {
  test('show and list --json describe the SLA; the operator identity stays reserved', async () => {
    await cliOk(server.env, [
      'val-server',
      'add',
      'vs-a',
      '--client-id',
      'vs-a-client',
      '--secret',
      'vs-a-secret-123',
      '--services',
      'mcptt-1,v2x-7',
      '--max-users',
      '10',
      '--valid-until',
      '2099-01-01',
    ]);
    const shown = JSON.parse(await cliOk(server.env, ['val-server', 'show', 'vs-a', '--json']));
    expect(shown).toEqual({
      requesterIdentity: 'vs-a',
      clientId: 'vs-a-client',
      status: 'active',
      services: ['mcptt-1', 'v2x-7'],
      validUntil: '2099-01-01T00:00:00.000Z',
      maxUsersPerService: 10,
      endpoint: null,
      skeyProv: false,
    });
    expect((await cliOk(server.env, ['val-server', 'show', 'vs-a'])).split('\n')).toContain('max users per service: 10');
    const listed = (await cliOk(server.env, ['val-server', 'list', '--json']))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(listed).toEqual([shown]);
    const reserved = await cli(server.env, ['val-server', 'add', 'admin', '--client-id', 'admin-client', '--services', 'x']);
    expect(reserved).toMatchObject({ code: 1, stderr: 'seal-idms: requester identity "admin" is reserved for operator grants\n' });
    // The client and the SLA row exist together: a taken client ID leaves no VAL server behind.
    const taken = await cli(server.env, ['val-server', 'add', 'vs-b', '--client-id', 'val-ue', '--services', 'x']);
    expect(taken.code).toBe(1);
    expect(await database.db('val_servers').where({ requester_identity: 'vs-b' }).first()).toBeUndefined();
  });
});

describe('VAL services', () => {
  test('grant to an unknown VAL user is an error that grants nothing, unless --allow-unknown', async () => {
    const r = await cli(server.env, ['service', 'grant', 'mcptt-1', 'alice', 'nosuchuser']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('seal-idms: no VAL user nosuchuser (a mapping for a user without credentials yet is possible: ask for it with --allow-unknown)\n');
    expect(await database.db('val_service_users').where({ val_service_id: 'mcptt-1' }).pluck('val_user_id')).toEqual([]);
    expect(await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'alice', 'nosuchuser', '--allow-unknown'])).toBe(
      'granted mcptt-1: 2 of 2 VAL users changed\n',
    );
    expect((await database.db('val_service_users').where({ val_service_id: 'mcptt-1' }).orderBy('val_user_id').pluck('val_user_id')).sort()).toEqual([
      'alice',
      'nosuchuser',
    ]);
    expect(await lastAudit(database.db, 'service.grant')).toMatchObject({ details: expect.objectContaining({ allowUnknown: true, changed: 2 }) });
  });

  test('list pages with --limit/--cursor; without --limit it lists all; list-all counts users per service', async () => {
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', 'bob', 'carol']);
    await cliOk(server.env, ['service', 'grant', 'v2x-7', 'bob']);
    expect(await cliOk(server.env, ['service', 'list', 'mcptt-1'])).toBe('alice\nbob\ncarol\nnosuchuser\n');
    const first = await cli(server.env, ['service', 'list', 'mcptt-1', '--limit', '3']);
    expect(first.stdout).toBe('alice\nbob\ncarol\n');
    const cursor = /^next page: --cursor (\S+)$/.exec(first.stderr.trim())?.[1];
    expect(cursor).toBeDefined();
    const second = await cli(server.env, ['service', 'list', 'mcptt-1', '--limit', '3', '--cursor', cursor!]);
    expect(second).toMatchObject({ code: 0, stdout: 'nosuchuser\n', stderr: '' });
    expect(await cliOk(server.env, ['service', 'list-all'])).toBe('mcptt-1\t4 VAL users\t0 VAL UE IDs\nv2x-7\t1 VAL users\t0 VAL UE IDs\n');
    const json = (await cliOk(server.env, ['service', 'list-all', '--json']))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(json).toEqual([
      { valServiceId: 'mcptt-1', valUsers: 4, valUeIds: 0 },
      { valServiceId: 'v2x-7', valUsers: 1, valUeIds: 0 },
    ]);
  });
});
