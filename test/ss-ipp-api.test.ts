// TS 29.549 SS_IdmParameterProvisioning (ss-ipp) through HTTP with real client_credentials tokens: every request and
// response checked against our ss-ipp OpenAPI document, the token choices of the security item, every refusal with
// its status and ProblemDetails and nothing stored, ownership, suppFeat, and the compatibility API reading the same data.
import net from 'node:net';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import {
  call,
  callDocumented,
  provisioningToken,
  ssIpp,
  ssIppContract,
  ssIppToken,
  valServerClient,
  type ApiResponse,
  type ProblemDetails,
} from './helpers/provisioning.ts';
import { metricsRegistry } from '../src/observability/metrics.ts';
import { servicesOfUser } from '../src/provisioning/store.ts';

let database: TestDatabase;
let server: TestServer;
let mcx: oidc.Configuration;
let token: string; // MCX's plain client_credentials token: no scope, no resource
let otherToken: string; // another VAL server's

const MCX = 'val-server-mcx.example.org';
const OTHER = 'val-server-other.example.org';
const QUOTA = 'val-server-quota.example.org';
const C = '/configurations';
const I = '/configurations/{confId}';
const problem = (res: ApiResponse) => res.body as ProblemDetails;
const confIdOf = (res: ApiResponse) => new URL(res.headers.get('location')!).pathname.split('/').pop()!;
const config = (valSvcConf: unknown, valServerId = MCX) => ({ valServerId, valSvcConf });
const users = (...ids: string[]) => ids.map((valUserId) => ({ valUserId }));

/** Everything ss-ipp can store, to show a refused request stored nothing. */
async function snapshot() {
  const rows = async (table: string) => JSON.stringify(await database.db(table).select('*').orderByRaw('1, 2, 3'));
  return [await rows('val_service_configurations'), await rows('val_service_users'), await rows('val_service_ues')].join('\n');
}

/** Asserts a refusal: its status, TS 29.122 ProblemDetails with the cause, and nothing stored. */
async function refused(send: () => Promise<ApiResponse>, status: number, cause: string): Promise<ProblemDetails> {
  const before = await snapshot();
  const res = await send();
  expect([res.status, res.headers.get('content-type')?.split(';')[0], problem(res).cause]).toEqual([status, 'application/problem+json', cause]);
  expect(problem(res)).toMatchObject({ status, title: expect.any(String), instance: expect.stringMatching(/^\/ss-ipp\/v1/) });
  expect(problem(res)).not.toHaveProperty('result'); // the seed-named API's extension is not in TS 29.122 ProblemDetails
  expect(await snapshot()).toBe(before);
  return problem(res);
}

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  await cliOk(server.env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', 'mcptt-1,mcvideo-2,compat-4']);
  await cliOk(server.env, [
    'val-server',
    'add',
    QUOTA,
    '--client-id',
    'quota',
    '--secret',
    'quota-secret-0123456789',
    '--services',
    'quota-3',
    '--max-users',
    '3',
  ]);
  await cliOk(server.env, ['val-server', 'add', OTHER, '--client-id', 'other', '--secret', 'other-secret-0123456789', '--services', 'mcptt-1']);
  await cliOk(server.env, ['client', 'add', 'plain', '--secret', 'plain-secret-0123456789', '--grant', 'client_credentials']);
  mcx = await valServerClient(server, 'mcx', 'mcx-secret-0123456789');
  token = await ssIppToken(mcx);
  otherToken = await ssIppToken(await valServerClient(server, 'other', 'other-secret-0123456789'));
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('security: which client_credentials tokens open ss-ipp (TS 29.549 oAuth2ClientCredentials, no scope)', () => {
  const ssIppRoot = () => `${server.config.apiRoot}/ss-ipp/v1`;
  const list = (t: string) => ssIpp(server, 'GET', C, C, { token: t });

  test.each([
    ['no scope and no resource', {}],
    ['scope ss-ipp', { scope: 'ss-ipp' }],
    ['scope 3gpp:seal:idm:provisioning alone', { scope: '3gpp:seal:idm:provisioning' }],
    ['resource = the API root', { resource: 'API_ROOT' }],
  ])("a VAL server's token asked for with %s is for the API and works", async (_name, params: Record<string, string>) => {
    const t = await ssIppToken(mcx, Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v === 'API_ROOT' ? ssIppRoot() : v])));
    expect(decodeJwt(t).aud).toBe(ssIppRoot());
    expect((await list(t)).status).toBe(200);
  });

  test('a token for another audience (the seed-named API) is refused: 403', async () => {
    const seed = await provisioningToken(mcx, server);
    await refused(() => list(seed), 403, 'TOKEN_AUDIENCE_MISMATCH');
  });

  test('a client that is not a VAL server keeps the default resource; with resource = the API it is refused', async () => {
    const plain = await valServerClient(server, 'plain', 'plain-secret-0123456789');
    expect(decodeJwt(await ssIppToken(plain)).aud).toBe(server.config.defaultResource);
    const forApi = await ssIppToken(plain, { resource: ssIppRoot() });
    await refused(() => list(forApi), 403, 'NOT_A_VAL_SERVER');
  });

  test('no token: 401 with the RFC 6750 challenge of realm ss-ipp', async () => {
    const res = await ssIpp(server, 'POST', C, C, { json: config([{ valServiceId: 'mcptt-1', idList: users('x') }]) });
    expect(res.status).toBe(401);
    expect(problem(res).cause).toBe('TOKEN_MISSING');
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ss-ipp"');
    await refused(() => ssIpp(server, 'GET', C, C, { token: 'not-a-token' }), 401, 'TOKEN_INVALID');
  });
});

describe('operations', () => {
  test('POST → 201 with Location and the stored VALServicesConfig; VAL user IDs and VAL UE IDs stored faithfully', async () => {
    const body = config([{ valServiceId: 'mcptt-1', idList: [{ valUserId: 'alice' }, { valUeId: 'ue-imei-1' }] }]);
    const res = await ssIpp(server, 'POST', C, C, { token, json: body });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(new RegExp(`^${server.config.apiRoot}/ss-ipp/v1/configurations/[A-Za-z0-9_-]{22}$`));
    expect(res.body).toEqual({ ...body, suppFeat: '0' });
    const confId = confIdOf(res);
    expect(await database.db('val_service_users').where({ conf_id: confId }).select('val_service_id', 'val_user_id', 'provisioned_by')).toEqual([
      { val_service_id: 'mcptt-1', val_user_id: 'alice', provisioned_by: MCX },
    ]);
    expect(await database.db('val_service_ues').where({ conf_id: confId }).select('val_service_id', 'val_ue_id')).toEqual([
      { val_service_id: 'mcptt-1', val_ue_id: 'ue-imei-1' },
    ]);
    expect(await servicesOfUser(database.db, 'alice')).toEqual(['mcptt-1']);
    expect((await ssIpp(server, 'GET', I, `${C}/${confId}`, { token })).body).toEqual({ ...body, suppFeat: '0' });
  });

  test("GET /configurations lists only the caller's, filtered by config-ids (repeated or comma-separated) and val-server-id", async () => {
    const a = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('u1') }]) }));
    const b = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('u2') }]) }));
    const foreign = confIdOf(await ssIpp(server, 'POST', C, C, { token: otherToken, json: config([{ valServiceId: 'mcptt-1', idList: users('o1') }], OTHER) }));
    const all = (await ssIpp(server, 'GET', C, `${C}?val-server-id=${encodeURIComponent(MCX)}`, { token })).body as { valServerId: string }[];
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.every((c) => c.valServerId === MCX)).toBe(true);
    const repeated = (await ssIpp(server, 'GET', C, `${C}?config-ids=${a}&config-ids=${b}&config-ids=${foreign}`, { token })).body as {
      valSvcConf: { idList: unknown[] }[];
    }[];
    expect(repeated.map((c) => c.valSvcConf[0]!.idList)).toEqual([users('u1'), users('u2')]);
    expect(((await ssIpp(server, 'GET', C, `${C}?config-ids=${a},${foreign}`, { token })).body as unknown[]).length).toBe(1);
    expect((await ssIpp(server, 'GET', C, `${C}?config-ids=${foreign}`, { token })).body).toEqual([]);
    await refused(() => ssIpp(server, 'GET', C, `${C}?val-server-id=${OTHER}`, { token }), 403, 'VAL_SERVER_ID_MISMATCH');
    await refused(() => ssIpp(server, 'GET', C, `${C}?colour=red`, { token }), 400, 'INVALID_QUERY_PARAM');
    await refused(() => ssIpp(server, 'GET', C, C, { token, headers: { accept: 'text/html' } }), 406, 'NOT_ACCEPTABLE');
  });

  test('PUT replaces exactly that configuration; PATCH (merge patch) replaces valSvcConf whole; DELETE → 204, then 404', async () => {
    const keep = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('stays') }]) }));
    const confId = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('p1', 'p2') }]) }));
    const put = await ssIpp(server, 'PUT', I, `${C}/${confId}`, {
      token,
      json: { ...config([{ valServiceId: 'mcptt-1', idList: [{ valUeId: 'ue-9' }] }]), suppFeat: 'F' },
    });
    expect([put.status, put.body]).toEqual([200, { ...config([{ valServiceId: 'mcptt-1', idList: [{ valUeId: 'ue-9' }] }]), suppFeat: '0' }]);
    expect(await servicesOfUser(database.db, 'p1')).toEqual([]);

    const patched = await ssIpp(server, 'PATCH', I, `${C}/${confId}`, {
      token,
      json: { valSvcConf: [{ valServiceId: 'mcvideo-2', idList: users('p2', 'p3') }] },
    });
    expect([patched.status, patched.body]).toEqual([200, { ...config([{ valServiceId: 'mcvideo-2', idList: users('p2', 'p3') }]), suppFeat: '0' }]);
    expect(await database.db('val_service_ues').where({ conf_id: confId }).count({ n: '*' }).first()).toEqual({ n: 0 });
    // RFC 7396: an empty merge patch changes nothing.
    expect((await ssIpp(server, 'PATCH', I, `${C}/${confId}`, { token, json: {} })).body).toEqual(patched.body);

    expect((await ssIpp(server, 'DELETE', I, `${C}/${confId}`, { token })).status).toBe(204);
    for (const method of ['GET', 'DELETE'] as const)
      await refused(() => ssIpp(server, method, I, `${C}/${confId}`, { token }), 404, 'RESOURCE_URI_STRUCTURE_NOT_FOUND');
    await refused(
      () => ssIpp(server, 'PUT', I, `${C}/${confId}`, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('p9') }]) }),
      404,
      'RESOURCE_URI_STRUCTURE_NOT_FOUND',
    );
    expect([await servicesOfUser(database.db, 'p2'), await servicesOfUser(database.db, 'stays')]).toEqual([[], ['mcvideo-2']]);
    expect((await ssIpp(server, 'GET', I, `${C}/${keep}`, { token })).status).toBe(200);
  });

  test('suppFeat is negotiated (TS 29.500 clause 6.6): answered "0", the features both support', async () => {
    const res = await ssIpp(server, 'POST', C, C, { token, json: { ...config([{ valServiceId: 'mcvideo-2', idList: users('sf') }]), suppFeat: '1A' } });
    expect((res.body as { suppFeat: string }).suppFeat).toBe('0');
    await refused(
      () => ssIpp(server, 'POST', C, C, { token, invalid: true, json: { ...config([{ valServiceId: 'mcvideo-2', idList: users('sf2') }]), suppFeat: 'xyz' } }),
      400,
      'MANDATORY_IE_INCORRECT',
    );
  });

  test('the seed-named API and ss-ipp read and write the same data', async () => {
    const seed = await provisioningToken(mcx, server);
    const provide = (valUserIds: string[]) =>
      callDocumented(server, 'POST', '/configurations', '/configurations', {
        token: seed,
        json: { requesterIdentity: MCX, valServiceInfos: [{ valServiceId: 'compat-4', valUserIds }] },
      });
    expect((await provide(['compat-1'])).status).toBe(200);
    const listed = (await ssIpp(server, 'GET', C, C, { token })).body as { valSvcConf: { valServiceId: string; idList: unknown[] }[] }[];
    expect(listed.some((c) => c.valSvcConf.some((p) => p.valServiceId === 'compat-4' && JSON.stringify(p.idList) === JSON.stringify(users('compat-1'))))).toBe(
      true,
    );
    // ss-ipp writes for compat-4 show in the seed API's listing of it, and its replace removes them from their configuration.
    const confId = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'compat-4', idList: users('ipp-1') }]) }));
    const page = await callDocumented(server, 'GET', '/configurations/{valServiceId}', '/configurations/compat-4', { token: seed });
    expect((page.body as { valUserIds: string[] }).valUserIds).toEqual(['compat-1', 'ipp-1']);
    expect((await provide([])).status).toBe(200);
    // The configuration lost its last pair: it is gone (TS 29.549 valSvcConf has at least one element).
    await refused(() => ssIpp(server, 'GET', I, `${C}/${confId}`, { token }), 404, 'RESOURCE_URI_STRUCTURE_NOT_FOUND');
    expect(await servicesOfUser(database.db, 'ipp-1')).toEqual([]);
  });

  test('each operation is counted in idms_provisioning_operations_total', async () => {
    const count = async (operation: string, result: string) =>
      (await metricsRegistry.getSingleMetric('idms_provisioning_operations_total')!.get()).values.find(
        (v) => v.labels.operation === operation && v.labels.result === result,
      )?.value ?? 0;
    const before = [
      await count('provide_configuration', 'success'),
      await count('delete_configuration', 'success'),
      await count('get_configuration', 'failure'),
    ];
    const confId = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('m1') }]) }));
    await ssIpp(server, 'DELETE', I, `${C}/${confId}`, { token });
    await ssIpp(server, 'GET', I, `${C}/${confId}`, { token });
    expect([
      await count('provide_configuration', 'success'),
      await count('delete_configuration', 'success'),
      await count('get_configuration', 'failure'),
    ]).toEqual(before.map((n) => n + 1));
  });
});

describe('refusals: status, ProblemDetails, nothing stored', () => {
  const post = (json: unknown, options: { token?: string; invalid?: boolean } = {}) => ssIpp(server, 'POST', C, C, { token, invalid: true, json, ...options });

  test('400 for a body that does not match VALServicesConfig, pointing at each problem', async () => {
    const cases: [unknown, string][] = [
      [config([{ valServiceId: 'mcptt-1', idList: [{ valUserId: 'a', valUeId: 'b' }] }]), '/valSvcConf/0/idList/0'],
      [config([{ valServiceId: 'mcptt-1', idList: [{}] }]), '/valSvcConf/0/idList/0'],
      [config([{ valServiceId: 'mcptt-1', idList: [] }]), '/valSvcConf/0/idList'],
      [config([]), '/valSvcConf'],
      [config([{ valServiceId: 'mcptt-1', idList: users('a', 'a') }]), '/valSvcConf/0/idList/1'],
      [
        config([
          { valServiceId: 'mcptt-1', idList: users('a') },
          { valServiceId: 'mcptt-1', idList: users('b') },
        ]),
        '/valSvcConf/1/valServiceId',
      ],
      [{ ...config([{ valServiceId: 'mcptt-1', idList: users('a') }]), requesterIdentity: MCX }, '/requesterIdentity'],
      [{ valSvcConf: [{ valServiceId: 'mcptt-1', idList: users('a') }] }, '/valServerId'],
      [config([{ valServiceId: 'mcptt-1', idList: [{ valUserId: 'has space' }] }]), '/valSvcConf/0/idList/0/valUserId'],
    ];
    for (const [json, pointer] of cases) {
      const p = await refused(() => post(json), 400, 'MANDATORY_IE_INCORRECT');
      expect(p.invalidParams!.map((i) => i.param)).toContain(pointer);
    }
    await refused(
      () => ssIpp(server, 'POST', C, C, { token, body: '{"valServerId":', headers: { 'content-type': 'application/json' } }),
      400,
      'INVALID_MSG_FORMAT',
    );
    await refused(
      () => ssIpp(server, 'PATCH', I, `${C}/AAAAAAAAAAAAAAAAAAAAAA`, { token, invalid: true, json: { valSvcConf: null } }),
      400,
      'MANDATORY_IE_INCORRECT',
    );
  });

  test('415 for a wrong content type (PATCH names the merge-patch type it accepts)', async () => {
    await refused(
      () => ssIpp(server, 'POST', C, C, { token, body: 'valServerId=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    const confId = confIdOf(await ssIpp(server, 'POST', C, C, { token, json: config([{ valServiceId: 'mcvideo-2', idList: users('ct') }]) }));
    const before = await snapshot();
    const res = await ssIpp(server, 'PATCH', I, `${C}/${confId}`, {
      token,
      body: JSON.stringify({ valSvcConf: [{ valServiceId: 'mcvideo-2', idList: users('x') }] }),
      headers: { 'content-type': 'application/json' },
    });
    expect([res.status, problem(res).cause, res.headers.get('accept-patch')]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE', 'application/merge-patch+json']);
    expect(await snapshot()).toBe(before);
  });

  test('411 for a body without Content-Length or Transfer-Encoding, 413 beyond 32 MiB', async () => {
    // Written by hand: an HTTP client library adds Content-Length or chunked Transfer-Encoding to every POST.
    const raw = (extraHeader: string) =>
      new Promise<{ status: number; type: string; body: ProblemDetails }>((resolve, reject) => {
        const { hostname, port } = new URL(server.config.apiRoot);
        const socket = net.connect(Number(port), hostname, () =>
          socket.write(
            `POST /ss-ipp/v1/configurations HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n${extraHeader}Connection: close\r\n\r\n`,
          ),
        );
        let text = '';
        socket.on('data', (c: Buffer) => (text += c.toString()));
        socket.on('error', reject);
        socket.on('close', () => {
          const [head, body] = text.split('\r\n\r\n');
          const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head!)![1]);
          resolve({ status, type: /content-type: ([^\r]+)/i.exec(head!)![1]!, body: JSON.parse(body!) as ProblemDetails });
        });
      });
    const before = await snapshot();
    expect(await raw('')).toMatchObject({ status: 411, type: 'application/problem+json', body: { cause: 'LENGTH_REQUIRED' } });
    expect(await raw(`Content-Length: ${40 * 1024 * 1024}\r\n`)).toMatchObject({ status: 413, body: { cause: 'PAYLOAD_TOO_LARGE' } });
    expect(await snapshot()).toBe(before);
  });

  test("403 when valServerId is not the caller; 404 for another VAL server's confId, which stays intact", async () => {
    await refused(() => post(config([{ valServiceId: 'mcptt-1', idList: users('x') }], OTHER), { invalid: false }), 403, 'VAL_SERVER_ID_MISMATCH');
    const theirs = confIdOf(
      await ssIpp(server, 'POST', C, C, { token: otherToken, json: config([{ valServiceId: 'mcptt-1', idList: users('theirs') }], OTHER) }),
    );
    const mine = config([{ valServiceId: 'mcptt-1', idList: users('x') }]);
    await refused(() => ssIpp(server, 'GET', I, `${C}/${theirs}`, { token }), 404, 'RESOURCE_URI_STRUCTURE_NOT_FOUND');
    await refused(() => ssIpp(server, 'PUT', I, `${C}/${theirs}`, { token, json: mine }), 404, 'RESOURCE_URI_STRUCTURE_NOT_FOUND');
    await refused(() => ssIpp(server, 'PATCH', I, `${C}/${theirs}`, { token, json: { valSvcConf: mine.valSvcConf } }), 404, 'RESOURCE_URI_STRUCTURE_NOT_FOUND');
    await refused(() => ssIpp(server, 'DELETE', I, `${C}/${theirs}`, { token }), 404, 'RESOURCE_URI_STRUCTURE_NOT_FOUND');
    await refused(() => ssIpp(server, 'PUT', I, `${C}/${theirs}`, { token: otherToken, json: mine }), 403, 'VAL_SERVER_ID_MISMATCH');
    expect((await ssIpp(server, 'GET', I, `${C}/${theirs}`, { token: otherToken })).body).toMatchObject({
      valServerId: OTHER,
      valSvcConf: [{ valServiceId: 'mcptt-1', idList: users('theirs') }],
    });
  });

  test('403 for the SLA: a service outside it, the quota, an expired or disabled agreement', async () => {
    const p = await refused(
      () =>
        post(
          config([
            { valServiceId: 'mcptt-1', idList: users('s1') },
            { valServiceId: 'v2x-7', idList: users('s1') },
          ]),
          { invalid: false },
        ),
      403,
      'VAL_SERVICE_NOT_IN_SLA',
    );
    expect(p.invalidParams).toEqual([{ param: '/valSvcConf/1/valServiceId', reason: 'not in the service agreement' }]);
    const quota = await ssIppToken(await valServerClient(server, 'quota', 'quota-secret-0123456789'));
    const q = (ids: unknown[]) => ssIpp(server, 'POST', C, C, { token: quota, json: config([{ valServiceId: 'quota-3', idList: ids }], QUOTA) });
    await refused(() => q(users('q1', 'q2', 'q3', 'q4')), 403, 'QUOTA_EXCEEDED');
    // The quota counts the VAL server's distinct users and UEs over all its configurations.
    expect((await q([{ valUserId: 'q1' }, { valUeId: 'q-ue' }])).status).toBe(201);
    expect((await q(users('q1', 'q2'))).status).toBe(201);
    await refused(() => q(users('q1', 'q3')), 403, 'QUOTA_EXCEEDED');

    await cliOk(server.env, ['val-server', 'update', OTHER, '--valid-until', '2020-01-01']);
    const expired = await ssIpp(server, 'POST', C, C, { token: otherToken, json: config([{ valServiceId: 'mcptt-1', idList: users('late') }], OTHER) });
    expect([expired.status, problem(expired).cause]).toEqual([403, 'SLA_EXPIRED']);
    await cliOk(server.env, ['val-server', 'update', OTHER, '--valid-until', 'none']);
    await cliOk(server.env, ['val-server', 'disable', OTHER]);
    await refused(
      () => ssIpp(server, 'POST', C, C, { token: otherToken, json: config([{ valServiceId: 'mcptt-1', idList: users('off') }], OTHER) }),
      403,
      'VAL_SERVER_DISABLED',
    );
    await cliOk(server.env, ['val-server', 'enable', OTHER]);
  });

  test('the OpenAPI document is served under the API root without a token', async () => {
    const res = await fetch(`${server.config.apiRoot}/ss-ipp/v1/openapi.yaml`);
    expect([res.status, res.headers.get('content-type')]).toEqual([200, 'application/yaml']);
    expect(await res.text()).toContain('title: SS_IdmParameterProvisioning');
  });

  test('never a text/plain 404 under the API root; 405 with Allow for an unsupported method', async () => {
    for (const path of ['', '/', '/nothing', '/configurations/a/b', '/configurations/not*an*id']) {
      const res = await fetch(`${server.config.apiRoot}/ss-ipp/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
      expect([path, res.status, res.headers.get('content-type')]).toEqual([path, 404, 'application/problem+json']);
    }
    // Not an operation of the document: the answer is its `default` response.
    const res = await call(server, 'DELETE', C, { token, base: `${server.config.apiRoot}/ss-ipp/v1` });
    expect([res.status, problem(res).cause, res.headers.get('allow')?.split(', ').sort()]).toEqual([405, 'METHOD_NOT_ALLOWED', ['GET', 'HEAD', 'POST']]);
    ssIppContract.assertValid({ $ref: '#/components/schemas/ProblemDetails' }, res.body, '405 body');
  });

  test("refusals and successes are audited; the CLI lists a VAL server's configurations", async () => {
    const audit = (await cliOk(server.env, ['audit', 'list', '--json', '--limit', '200']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; result: string; details: { status?: number } });
    expect(audit.some((e) => e.action === 'provisioning.create_val_service_conf' && e.result === 'success')).toBe(true);
    expect(audit.some((e) => e.action === 'provisioning.create_val_service_conf' && e.result === 'failure' && e.details.status === 403)).toBe(true);
    const lines = (await cliOk(server.env, ['val-server', 'configurations', MCX, '--json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { confId: string; compatibility: boolean });
    const stored = await database
      .db('val_service_configurations')
      .where({ owner: MCX })
      .orderBy([{ column: 'created_at' }, { column: 'conf_id' }])
      .pluck('conf_id');
    expect(lines.map((l) => l.confId)).toEqual(stored);
  });
});
