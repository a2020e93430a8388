// The VAL server provisioning API (TS 23.434 clause 12.3.2 / 12.3.4.2 / 12.4.3) through HTTP with real tokens:
// authorization, bad input, SLA checks with nothing stored, quotas, pagination, PATCH/DELETE, audit, OpenAPI.
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cli, cliOk } from './helpers/cli.ts';
import {
  assertValid,
  call,
  callDocumented,
  openApiDocument,
  PROVISIONING_PATH,
  provisioningToken,
  valServerClient,
  type ApiResponse,
  type Problem,
} from './helpers/provisioning.ts';
import { servicesOfUser } from '../src/provisioning/store.ts';

let database: TestDatabase;
let server: TestServer;
let mcx: oidc.Configuration; // VAL server "val-server-mcx.example.org": mcptt-1, mcvideo-2, quota-svc
let token: string;

const MCX = 'val-server-mcx.example.org';
const POST = (json: unknown, t = token) => callDocumented(server, 'POST', '/configurations', '/configurations', { token: t, json });
const GET = (service: string, query = '', t = token) =>
  callDocumented(server, 'GET', '/configurations/{valServiceId}', `/configurations/${encodeURIComponent(service)}${query}`, { token: t });
const PATCH = (service: string, json: unknown, t = token) =>
  callDocumented(server, 'PATCH', '/configurations/{valServiceId}', `/configurations/${encodeURIComponent(service)}`, { token: t, json });
const DELETE = (service: string, t = token) =>
  callDocumented(server, 'DELETE', '/configurations/{valServiceId}', `/configurations/${encodeURIComponent(service)}`, { token: t });
const provide = (service: string, users: string[], requesterIdentity = MCX) => ({
  requesterIdentity,
  valServiceInfos: [{ valServiceId: service, valUserIds: users }],
});
const problem = (res: ApiResponse) => res.body as Problem;
const stored = (service: string) =>
  database.db('val_service_users').where({ val_service_id: service }).orderBy('val_user_id').pluck('val_user_id') as Promise<string[]>;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, [
    'val-server',
    'add',
    MCX,
    '--client-id',
    'mcx',
    '--secret',
    'mcx-secret-0123456789',
    '--services',
    'mcptt-1,mcvideo-2,paged-3,patch-4',
    '--endpoint',
    'https://mcx.example.org/',
  ]);
  mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
  token = await provisioningToken(mcx, server);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('Provide_Configuration', () => {
  test("replaces the VAL server's set for each listed service and answers result SUCCESS", async () => {
    const first = await POST({
      requesterIdentity: MCX,
      valServiceInfos: [
        { valServiceId: 'mcptt-1', valUserIds: ['alice', 'bob'] },
        { valServiceId: 'mcvideo-2', valUserIds: ['alice'] },
      ],
    });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ result: 'SUCCESS' });
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(await stored('mcptt-1')).toEqual(['alice', 'bob']);
    expect(await servicesOfUser(database.db, 'alice')).toEqual(['mcptt-1', 'mcvideo-2']);

    // The set becomes exactly the new list: bob goes, carol comes, alice stays; mcvideo-2 is not touched.
    expect((await POST(provide('mcptt-1', ['alice', 'carol']))).status).toBe(200);
    expect(await stored('mcptt-1')).toEqual(['alice', 'carol']);
    expect(await stored('mcvideo-2')).toEqual(['alice']);
    // An empty list empties the VAL server's set for that service.
    expect((await POST(provide('mcvideo-2', []))).status).toBe(200);
    expect(await stored('mcvideo-2')).toEqual([]);
  });

  test('the OpenAPI request examples are valid for the schema and accepted by the server', async () => {
    const post = openApiDocument.paths['/configurations']!.post!.requestBody as {
      content: Record<string, { schema: unknown; examples: Record<string, { value: unknown }> }>;
    };
    const { schema, examples } = post.content['application/json']!;
    expect(Object.keys(examples).length).toBeGreaterThan(0);
    for (const [name, { value }] of Object.entries(examples)) {
      assertValid(schema, value, `example ${name}`);
      const res = await POST(value);
      expect([name, res.status]).toEqual([name, 200]);
    }
    const patch = openApiDocument.paths['/configurations/{valServiceId}']!.patch!.requestBody as typeof post;
    for (const [name, { value }] of Object.entries(patch.content['application/json']!.examples)) {
      assertValid(patch.content['application/json']!.schema, value, `example ${name}`);
      expect((await PATCH('patch-4', value)).status).toBe(200);
    }
    expect(await stored('patch-4')).toEqual(['carol']);
  });
});

describe('authorization (RFC 6750, RFC 9068 §4)', () => {
  test('no token: 401 with a Bearer challenge and no error code', async () => {
    const res = await POST(provide('mcptt-1', ['x']), '');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ss-idms-provisioning", scope="3gpp:seal:idm:provisioning"');
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(problem(res)).toMatchObject({ status: 401, cause: 'TOKEN_MISSING', result: 'FAILURE' });
    const basic = await call(server, 'GET', '/configurations/mcptt-1', { headers: { authorization: 'Basic bWN4Om1jeA==' } });
    expect(basic.status).toBe(401);
  });

  test('a forged or garbled token: 401 invalid_token', async () => {
    const [h, p] = token.split('.');
    for (const bad of [`${h}.${p}.${Buffer.from('forged').toString('base64url')}`, 'not a token', `${h}.${p}`]) {
      const res = await call(server, 'GET', '/configurations/mcptt-1', { headers: { authorization: `Bearer ${bad}` } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(problem(res).cause).toBe('TOKEN_INVALID');
    }
  });

  test('an expired token: 401 invalid_token', async () => {
    // A second instance on the same database and issuer issues 3-second tokens (same signing keys, as in production);
    // long enough that the first call cannot race the expiry on a loaded machine.
    const shortLived = await startTestServer(database, { env: { IDMS_ISSUER: server.config.issuer, IDMS_ACCESS_TOKEN_TTL: '3' } });
    try {
      const client = new oidc.Configuration({ issuer: server.config.issuer, token_endpoint: `${shortLived.issuer}/token` }, 'mcx', 'mcx-secret-0123456789');
      oidc.allowInsecureRequests(client);
      const expiring = await provisioningToken(client, server);
      expect((await GET('mcptt-1', '', expiring)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 4100));
      const res = await GET('mcptt-1', '', expiring);
      expect(res.status).toBe(401);
      expect(problem(res).cause).toBe('TOKEN_INVALID');
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    } finally {
      await shortLived.close();
    }
  });

  test('a revoked token (RFC 7009): 401 invalid_token', async () => {
    const revoked = await provisioningToken(mcx, server);
    expect((await GET('mcptt-1', '', revoked)).status).toBe(200);
    await oidc.tokenRevocation(mcx, revoked);
    const res = await GET('mcptt-1', '', revoked);
    expect(res.status).toBe(401);
    expect(problem(res)).toMatchObject({ cause: 'TOKEN_INVALID', detail: 'the access token was revoked' });
  });

  test('a client not registered for the provisioning scope gets no token for the API (invalid_scope)', async () => {
    // The 403 for a provisioning-audience token without the scope is in provisioning-e2e.test.ts (a user's token).
    await cliOk(server.env, [
      'client',
      'add',
      'no-scope',
      '--secret',
      'no-scope-secret-0123456789',
      '--grant',
      'client_credentials',
      '--scope',
      '3gpp:seal:val_service',
    ]);
    const client = await valServerClient(server, 'no-scope', 'no-scope-secret-0123456789');
    await expect(provisioningToken(client, server, undefined)).rejects.toMatchObject({ error: 'invalid_scope' });
    await expect(provisioningToken(client, server)).rejects.toMatchObject({ error: 'invalid_scope' });
  });

  test('a token for another audience: 403, even with the provisioning scope', async () => {
    await cliOk(server.env, ['resource', 'add', 'https://skms.example.org', '--scope', '3gpp:seal:idm:provisioning 3gpp:seal:val_service']);
    const forSkms = (await oidc.clientCredentialsGrant(mcx, { resource: 'https://skms.example.org', scope: '3gpp:seal:idm:provisioning' })).access_token;
    const res = await POST(provide('mcptt-1', ['x']), forSkms);
    expect(res.status).toBe(403);
    expect(problem(res).cause).toBe('TOKEN_AUDIENCE_MISMATCH');
    const forDefault = (await oidc.clientCredentialsGrant(mcx)).access_token; // no resource: a VAL server's token is for ss-ipp, not this API
    expect(problem(await GET('mcptt-1', '', forDefault)).cause).toBe('TOKEN_AUDIENCE_MISMATCH');
  });

  test('a client that is not a registered VAL server: 403', async () => {
    await cliOk(server.env, [
      'client',
      'add',
      'plain-client',
      '--secret',
      'plain-secret-0123456789',
      '--grant',
      'client_credentials',
      '--scope',
      '3gpp:seal:idm:provisioning',
    ]);
    const plain = await provisioningToken(await valServerClient(server, 'plain-client', 'plain-secret-0123456789'), server);
    const res = await POST(provide('mcptt-1', ['x'], 'plain-client'), plain);
    expect(res.status).toBe(403);
    expect(problem(res).cause).toBe('NOT_A_VAL_SERVER');
  });

  test('requesterIdentity other than the caller: 403, nothing stored', async () => {
    await cliOk(server.env, ['val-server', 'add', 'other-server', '--client-id', 'other', '--secret', 'other-secret-0123456789', '--services', 'mcptt-1']);
    const before = await stored('mcptt-1');
    const res = await POST(provide('mcptt-1', ['mallory'], 'other-server'));
    expect(res.status).toBe(403);
    expect(problem(res)).toMatchObject({ cause: 'REQUESTER_IDENTITY_MISMATCH', invalidParams: [{ param: '/requesterIdentity' }] });
    expect(await stored('mcptt-1')).toEqual(before);
  });
});

describe('SLA checks: 403 and nothing from the request is stored', () => {
  let sla: oidc.Configuration;
  let slaToken: string;
  beforeAll(async () => {
    await cliOk(server.env, [
      'val-server',
      'add',
      'sla-server',
      '--client-id',
      'sla',
      '--secret',
      'sla-secret-0123456789',
      '--services',
      'sla-a,sla-b',
      '--max-users',
      '3',
    ]);
    sla = await valServerClient(server, 'sla', 'sla-secret-0123456789');
    slaToken = await provisioningToken(sla, server);
    expect((await POST(provide('sla-a', ['u1', 'u2'], 'sla-server'), slaToken)).status).toBe(200);
  });

  test('a VAL service outside the SLA rejects the whole request', async () => {
    const res = await POST(
      {
        requesterIdentity: 'sla-server',
        valServiceInfos: [
          { valServiceId: 'sla-a', valUserIds: ['u9'] },
          { valServiceId: 'mcptt-1', valUserIds: ['u9'] },
        ],
      },
      slaToken,
    );
    expect(res.status).toBe(403);
    expect(problem(res)).toMatchObject({ cause: 'VAL_SERVICE_NOT_IN_SLA', invalidParams: [{ param: '/valServiceInfos/1/valServiceId' }], result: 'FAILURE' });
    expect(await stored('sla-a')).toEqual(['u1', 'u2']);
    expect(await servicesOfUser(database.db, 'u9')).toEqual([]);
    for (const res of [await GET('mcptt-1', '', slaToken), await PATCH('mcptt-1', { add: ['u9'] }, slaToken), await DELETE('mcptt-1', slaToken)]) {
      expect(problem(res)).toMatchObject({ status: 403, cause: 'VAL_SERVICE_NOT_IN_SLA', invalidParams: [{ param: 'valServiceId' }] });
    }
  });

  test('quota: a set larger than max users per service is refused, for every service of the request', async () => {
    const res = await POST(
      {
        requesterIdentity: 'sla-server',
        valServiceInfos: [
          { valServiceId: 'sla-b', valUserIds: ['b1'] },
          { valServiceId: 'sla-a', valUserIds: ['u1', 'u2', 'u3', 'u4'] },
        ],
      },
      slaToken,
    );
    expect(res.status).toBe(403);
    expect(problem(res)).toMatchObject({ cause: 'QUOTA_EXCEEDED', invalidParams: [{ param: '/valServiceInfos/1/valUserIds' }] });
    expect(await stored('sla-a')).toEqual(['u1', 'u2']);
    expect(await stored('sla-b')).toEqual([]);
    expect((await POST(provide('sla-a', ['u1', 'u2', 'u3'], 'sla-server'), slaToken)).status).toBe(200);
  });

  test('quota: a PATCH that would exceed it is rolled back, removals included', async () => {
    const res = await PATCH('sla-a', { add: ['u4', 'u5'], remove: ['u1'] }, slaToken);
    expect(res.status).toBe(403);
    expect(problem(res).cause).toBe('QUOTA_EXCEEDED');
    expect(await stored('sla-a')).toEqual(['u1', 'u2', 'u3']);
    // Within the quota the same kind of change passes.
    expect((await PATCH('sla-a', { add: ['u4'], remove: ['u1'] }, slaToken)).body).toEqual({ result: 'SUCCESS', added: 1, removed: 1 });
    expect(await stored('sla-a')).toEqual(['u2', 'u3', 'u4']);
  });

  test('an expired SLA refuses every operation; a renewed one works again', async () => {
    await cliOk(server.env, ['val-server', 'update', 'sla-server', '--valid-until', '2020-01-01T00:00:00Z']);
    for (const res of [
      await POST(provide('sla-a', ['z'], 'sla-server'), slaToken),
      await PATCH('sla-a', { remove: ['u2'] }, slaToken),
      await DELETE('sla-a', slaToken),
      await GET('sla-a', '', slaToken),
    ]) {
      expect(res.status).toBe(403);
      expect(problem(res).cause).toBe('SLA_EXPIRED');
    }
    expect(await stored('sla-a')).toEqual(['u2', 'u3', 'u4']);
    await cliOk(server.env, ['val-server', 'update', 'sla-server', '--valid-until', new Date(Date.now() + 86400_000).toISOString()]);
    expect((await GET('sla-a', '', slaToken)).status).toBe(200);
  });

  test('a disabled VAL server is refused until enabled again', async () => {
    await cliOk(server.env, ['val-server', 'disable', 'sla-server']);
    const res = await POST(provide('sla-a', [], 'sla-server'), slaToken);
    expect(res.status).toBe(403);
    expect(problem(res).cause).toBe('VAL_SERVER_DISABLED');
    expect(await stored('sla-a')).toEqual(['u2', 'u3', 'u4']);
    await cliOk(server.env, ['val-server', 'enable', 'sla-server']);
    expect((await GET('sla-a', '', slaToken)).status).toBe(200);
  });

  test('SLA changes apply to tokens already issued (checked at every call)', async () => {
    await cliOk(server.env, ['val-server', 'update', 'sla-server', '--services', 'sla-b', '--max-users', 'none']);
    expect(problem(await GET('sla-a', '', slaToken)).cause).toBe('VAL_SERVICE_NOT_IN_SLA');
    expect((await POST(provide('sla-b', ['b1', 'b2', 'b3', 'b4'], 'sla-server'), slaToken)).status).toBe(200);
  });
});

describe('bad input: 400-class problem details with invalidParams, never a 500', () => {
  const params = (res: ApiResponse) => problem(res).invalidParams?.map((p) => p.param);

  test('malformed JSON, missing body, wrong media type', async () => {
    const malformed = await callDocumented(server, 'POST', '/configurations', '/configurations', {
      token,
      body: '{"requesterIdentity": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect(problem(malformed)).toMatchObject({ cause: 'INVALID_MSG_FORMAT', invalidParams: [{ param: '' }], result: 'FAILURE' });
    const missing = await callDocumented(server, 'POST', '/configurations', '/configurations', { token });
    expect(missing.status).toBe(400);
    const text = await callDocumented(server, 'POST', '/configurations', '/configurations', { token, body: 'a=b', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(problem(text).invalidParams).toEqual([{ param: 'Content-Type', reason: 'must be application/json' }]);
    const form = await callDocumented(server, 'PATCH', '/configurations/{valServiceId}', '/configurations/patch-4', {
      token,
      body: 'add=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
  });

  test.each([
    ['a JSON array', [], ['']],
    ['null', null, ['']],
    ['missing requesterIdentity', { valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: [] }] }, ['/requesterIdentity']],
    ['wrong type of valServiceInfos', { requesterIdentity: MCX, valServiceInfos: 'mcptt-1' }, ['/valServiceInfos']],
    ['no service', { requesterIdentity: MCX, valServiceInfos: [] }, ['/valServiceInfos']],
    ['a number as VAL user ID', provide('mcptt-1', ['ok', 7 as unknown as string]), ['/valServiceInfos/0/valUserIds/1']],
    ['an empty VAL user ID', provide('mcptt-1', ['']), ['/valServiceInfos/0/valUserIds/0']],
    ['an empty VAL service ID', provide('', ['a']), ['/valServiceInfos/0/valServiceId']],
    ['a duplicate VAL user ID', provide('mcptt-1', ['a', 'b', 'a']), ['/valServiceInfos/0/valUserIds/2']],
    [
      'a duplicate VAL service ID',
      {
        requesterIdentity: MCX,
        valServiceInfos: [
          { valServiceId: 'mcptt-1', valUserIds: [] },
          { valServiceId: 'mcptt-1', valUserIds: ['a'] },
        ],
      },
      ['/valServiceInfos/1'],
    ],
    ['a VAL user ID over 255 characters', provide('mcptt-1', ['x'.repeat(256)]), ['/valServiceInfos/0/valUserIds/0']],
    ['a VAL user ID with a space', provide('mcptt-1', ['alice smith']), ['/valServiceInfos/0/valUserIds/0']],
    ['a VAL user ID with a control character', provide('mcptt-1', ['alice\u0000']), ['/valServiceInfos/0/valUserIds/0']],
    ['an unknown attribute', { ...provide('mcptt-1', []), extra: 1 }, ['/extra']],
    [
      'an unknown attribute in a service',
      { requesterIdentity: MCX, valServiceInfos: [{ valServiceId: 'mcptt-1', valUserIds: [], valUserId: 'a' }] },
      ['/valServiceInfos/0/valUserId'],
    ],
  ])('Provide_Configuration with %s', async (_name, body, expected) => {
    const before = await stored('mcptt-1');
    const res = await POST(body);
    expect(res.status).toBe(400);
    expect(problem(res)).toMatchObject({ status: 400, title: 'Bad Request', result: 'FAILURE' });
    expect(params(res)).toEqual(expect.arrayContaining(expected));
    expect(await stored('mcptt-1')).toEqual(before);
  });

  test('more than 100,000 VAL user IDs in one request: 400', async () => {
    const ids = Array.from({ length: 100_001 }, (_, i) => `n${i}`);
    const res = await POST(provide('mcptt-1', ids));
    expect(res.status).toBe(400);
    expect(params(res)).toContain('/valServiceInfos/0/valUserIds');
  });

  test('a body over 32 MiB: 413, before the body is read', async () => {
    const big = Buffer.alloc(32 * 1024 * 1024 + 1, 0x20);
    const res = await callDocumented(server, 'POST', '/configurations', '/configurations', {
      token,
      body: big,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect(problem(res)).toMatchObject({ cause: 'PAYLOAD_TOO_LARGE', invalidParams: [{ param: '' }], result: 'FAILURE' });
  });

  test('PATCH with nothing to do, the same ID added and removed, or a duplicate', async () => {
    expect(params(await PATCH('patch-4', {}))).toEqual(['']);
    expect(params(await PATCH('patch-4', { add: [], remove: [] }))).toEqual(['']);
    expect(params(await PATCH('patch-4', { add: ['a'], remove: ['a'] }))).toEqual(['/remove/0']);
    expect(params(await PATCH('patch-4', { add: ['a', 'a'] }))).toEqual(['/add/1']);
    expect(params(await PATCH('patch-4', { add: 'a' }))).toEqual(['/add']);
  });

  test('bad paging parameters and path IDs', async () => {
    for (const query of ['?limit=0', '?limit=10001', '?limit=ten', '?limit=1&limit=2', '?cursor=***', '?cursor=AA', '?sort=desc']) {
      const res = await GET('paged-3', query);
      expect([query, res.status, problem(res).cause]).toEqual([query, 400, 'INVALID_QUERY_PARAM']);
      expect(params(res)).toEqual([/^\?(\w+)=/.exec(query)![1]]);
    }
    const long = await GET('s'.repeat(256));
    expect(long.status).toBe(400);
    expect(params(long)).toEqual(['valServiceId']);
    expect((await GET('with space')).status).toBe(400);
  });

  test('unknown paths and methods answer problem details too', async () => {
    const unknown = await call(server, 'GET', '/nothing-here', { token });
    expect(unknown.status).toBe(404);
    expect(problem(unknown)).toMatchObject({ cause: 'RESOURCE_URI_STRUCTURE_NOT_FOUND', result: 'FAILURE' });
    assertValid({ $ref: '#/components/schemas/ProblemDetails' }, unknown.body, '404');
    const put = await call(server, 'PUT', '/configurations/mcptt-1', { token, json: {} });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toMatch(/GET/);
    assertValid({ $ref: '#/components/schemas/ProblemDetails' }, put.body, '405');
  });
});

describe('GET, PATCH and DELETE of one service', () => {
  test('GET pages through the set with limit and cursor', async () => {
    const users = Array.from({ length: 25 }, (_, i) => `p${String(i).padStart(2, '0')}`);
    expect((await POST(provide('paged-3', users))).status).toBe(200);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await GET('paged-3', `?limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const page = res.body as { valServiceId: string; valUserIds: string[]; nextCursor?: string };
      expect(page.valServiceId).toBe('paged-3');
      seen.push(...page.valUserIds);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(users);
    // Default page size covers a small set in one page, with no cursor.
    const all = await GET('paged-3');
    expect((all.body as { valUserIds: string[] }).valUserIds).toHaveLength(25);
    expect((all.body as { nextCursor?: string }).nextCursor).toBeUndefined();
    expect((await GET('mcvideo-2')).body).toEqual({ result: 'SUCCESS', valServiceId: 'mcvideo-2', valUserIds: [] });
  });

  test('PATCH adds and removes with counts of what changed; DELETE clears the set', async () => {
    expect((await POST(provide('patch-4', ['a', 'b']))).status).toBe(200);
    expect((await PATCH('patch-4', { add: ['b', 'c'], remove: ['a', 'zz'] })).body).toEqual({ result: 'SUCCESS', added: 1, removed: 1 });
    expect(await stored('patch-4')).toEqual(['b', 'c']);
    expect((await PATCH('patch-4', { remove: ['b'] })).body).toEqual({ result: 'SUCCESS', added: 0, removed: 1 });
    expect((await DELETE('patch-4')).body).toEqual({ result: 'SUCCESS', removed: 1 });
    expect(await stored('patch-4')).toEqual([]);
    expect((await DELETE('patch-4')).body).toEqual({ result: 'SUCCESS', removed: 0 });
  });

  test('VAL service IDs with reserved URL characters work when percent-encoded', async () => {
    await cliOk(server.env, ['val-server', 'update', MCX, '--services', 'mcptt-1,mcvideo-2,paged-3,patch-4,urn:svc/ä?1']);
    expect((await POST(provide('urn:svc/ä?1', ['a']))).status).toBe(200);
    expect((await GET('urn:svc/ä?1')).body).toMatchObject({ valServiceId: 'urn:svc/ä?1', valUserIds: ['a'] });
    expect((await DELETE('urn:svc/ä?1')).body).toEqual({ result: 'SUCCESS', removed: 1 });
  });
});

describe('audit', () => {
  test('every call is audited with who, what, result and counts, and no secrets', async () => {
    await POST(provide('mcvideo-2', ['audit-1', 'audit-2']));
    await POST(provide('not-mine', ['audit-3']));
    await GET('mcvideo-2');
    await PATCH('mcvideo-2', { add: ['audit-4'] });
    await DELETE('mcvideo-2');
    await call(server, 'POST', '/configurations', { json: provide('mcvideo-2', []) });
    const out = await cliOk(server.env, ['audit', 'list', '--json', '--limit', '6']);
    const events = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { actor: string; action: string; subject: string; result: string; details: Record<string, unknown> })
      .reverse();
    expect(events.map((e) => [e.actor, e.action, e.subject, e.result])).toEqual([
      [MCX, 'provisioning.provide_configuration', 'mcvideo-2', 'success'],
      [MCX, 'provisioning.provide_configuration', 'not-mine', 'failure'],
      [MCX, 'provisioning.list', 'mcvideo-2', 'success'],
      [MCX, 'provisioning.change', 'mcvideo-2', 'success'],
      [MCX, 'provisioning.delete', 'mcvideo-2', 'success'],
      ['anonymous', 'provisioning.provide_configuration', null, 'failure'],
    ]);
    expect(events[0]!.details).toEqual({ services: [{ valServiceId: 'mcvideo-2', users: 2, added: 2, removed: 0 }] });
    expect(events[1]!.details).toMatchObject({ status: 403, cause: 'VAL_SERVICE_NOT_IN_SLA' });
    expect(events[2]!.details).toEqual({ returned: 2, more: false });
    expect(events[3]!.details).toEqual({ add: 1, remove: 0, added: 1, removed: 0 });
    expect(events[4]!.details).toEqual({ removed: 3 });
    expect(events[5]!.details).toMatchObject({ status: 401, cause: 'TOKEN_MISSING' });
    expect(out).not.toContain('mcx-secret-0123456789');
    expect(out).not.toContain(token.split('.')[2]);
  });
});

describe('OpenAPI document', () => {
  test('is served at the base path as YAML, without a token, and is the repository file', async () => {
    const res = await fetch(`${server.issuer}${PROVISIONING_PATH}/openapi.yaml`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/yaml/);
    const fs = await import('node:fs/promises');
    expect(await res.text()).toBe(await fs.readFile(new URL('../src/provisioning/openapi.yaml', import.meta.url), 'utf8'));
  });

  test('documents every operation the server routes', () => {
    const ops = Object.entries(openApiDocument.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((k) => k !== 'parameters')
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(ops.sort()).toEqual([
      'DELETE /configurations/{valServiceId}',
      'GET /configurations/{valServiceId}',
      'GET /openapi.yaml',
      'PATCH /configurations/{valServiceId}',
      'POST /configurations',
    ]);
  });
});

describe('val-server CLI', () => {
  test('add registers a confidential client_credentials client with the provisioning and VAL service scopes', async () => {
    const out = await cliOk(server.env, ['client', 'list']);
    expect(out).toContain('mcx\tconfidential\tclient_credentials\t3gpp:seal:idm:provisioning 3gpp:seal:val_service');
    const list = (await cliOk(server.env, ['val-server', 'list', '--json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(list.find((v) => v.requesterIdentity === MCX)).toMatchObject({
      clientId: 'mcx',
      status: 'active',
      endpoint: 'https://mcx.example.org/',
      validUntil: null,
      maxUsersPerService: null,
    });
  });

  test('a generated secret is printed once and works', async () => {
    const out = await cliOk(server.env, [
      'val-server',
      'add',
      'gen-server',
      '--client-id',
      'gen',
      '--services',
      'g1',
      '--valid-until',
      '2099-01-01',
      '--max-users',
      '10',
    ]);
    const secret = /client_secret: (\S+)/.exec(out)?.[1];
    expect(secret).toBeDefined();
    const t = await provisioningToken(await valServerClient(server, 'gen', secret!), server);
    expect((await POST(provide('g1', ['x'], 'gen-server'), t)).status).toBe(200);
    expect(await cliOk(server.env, ['val-server', 'list'])).toContain('gen-server\tgen\tactive\tg1\t2099-01-01T00:00:00.000Z\t10\t-');
  });

  test.each([
    [['val-server', 'add', MCX, '--client-id', 'new-id', '--services', 'a'], /already exists/],
    [['val-server', 'add', 'fresh', '--client-id', 'mcx', '--services', 'a'], /client mcx already exists/],
    [['val-server', 'add', 'fresh', '--client-id', 'fresh', '--services', 'a', '--valid-until', 'tomorrow'], /--valid-until/],
    [['val-server', 'add', 'fresh', '--client-id', 'fresh', '--services', 'a', '--max-users', '0'], /--max-users/],
    [['val-server', 'add', 'fresh', '--client-id', 'fresh'], /--services/],
    [['val-server', 'add', 'admin', '--client-id', 'fresh', '--services', 'a'], /reserved/],
    [['val-server', 'add', 'fresh', '--client-id', 'fresh', '--services', 'a', '--endpoint', 'ftp://x'], /--endpoint/],
    [['val-server', 'disable', 'nobody'], /no VAL server nobody/],
    [['val-server', 'update', MCX], /nothing to update/],
  ])('%j fails with a one-line reason', async (argv, reason) => {
    const r = await cli(server.env, argv);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('a failed add leaves neither a VAL server nor a client behind', async () => {
    await cli(server.env, ['val-server', 'add', MCX, '--client-id', 'orphan', '--services', 'a']);
    expect(await cliOk(server.env, ['client', 'list'])).not.toContain('orphan');
  });
});
