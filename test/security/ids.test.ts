// The one ID rule at every edge that stores IDs (issue 10, items 4 and 8): provisioning API, admin CLI and user
// import store the NFC form, so the NFC and NFD spellings of a name are one ID, and refuse unpaired surrogates,
// which PostgreSQL would otherwise store as U+FFFD, merging distinct IDs into one.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { cli, cliOk } from '../helpers/cli.ts';
import { Browser } from '../helpers/browser.ts';
import { pkceAuthorizationRequest } from '../helpers/authorize.ts';
import { call, provisioningToken, valServerClient, type Problem } from '../helpers/provisioning.ts';

const MCX = 'mcx.example.org';
const REDIRECT = 'http://127.0.0.1:8131/cb';
// "josé" and "café-1" spelled with a precomposed é (NFC) and with e + U+0301 combining acute (NFD).
const JOSE_NFC = 'jos\u00e9';
const JOSE_NFD = 'jose\u0301';
const CAFE_NFC = 'caf\u00e9-1';
const CAFE_NFD = 'cafe\u0301-1';

let database: TestDatabase;
let server: TestServer;
let token: string;
let dir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startTestServer(database);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-ids-'));
  // The SLA names the service in NFD; the API is then called with the NFC spelling.
  await cliOk(server.env, ['val-server', 'add', MCX, '--client-id', 'mcx', '--secret', 'mcx-secret-0123456789', '--services', `mcptt-1,${CAFE_NFD}`]);
  await cliOk(server.env, ['client', 'add', 'val-ue', '--public', '--redirect-uri', REDIRECT]);
  token = await provisioningToken(await valServerClient(server, 'mcx', 'mcx-secret-0123456789'), server);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const provide = (service: string, users: string[]) =>
  call(server, 'POST', '/configurations', { token, json: { requesterIdentity: MCX, valServiceInfos: [{ valServiceId: service, valUserIds: users }] } });
const mappings = (service: string) =>
  database.db('val_service_users').where({ val_service_id: service }).orderBy('val_user_id').pluck('val_user_id') as Promise<string[]>;

describe('provisioning API', () => {
  test('stores the NFC form of an NFD VAL user ID and VAL service ID (read back from the database)', async () => {
    const res = await provide(CAFE_NFC, [JOSE_NFD]);
    expect(res.status).toBe(200);
    expect(await mappings(CAFE_NFC)).toEqual([JOSE_NFC]);
    expect(await mappings(CAFE_NFD)).toEqual([]);
    // The CLI stored the SLA's NFD service name as NFC too.
    const sla = await database.db('val_servers').where({ requester_identity: MCX }).first();
    expect(sla.allowed_service_ids).toEqual(['mcptt-1', CAFE_NFC]);
  });

  test('the NFC and NFD spellings of one VAL user ID in one list are a duplicate, not two users', async () => {
    const res = await provide('mcptt-1', [JOSE_NFC, JOSE_NFD]);
    expect(res.status).toBe(400);
    expect((res.body as Problem).invalidParams).toEqual([{ param: '/valServiceInfos/0/valUserIds/1', reason: 'duplicate VAL user ID (same as index 0)' }]);
  });

  test('a lone surrogate in a VAL user ID is 400 with invalidParams naming it, and nothing is stored', async () => {
    // Three distinct unpaired surrogates: before the rule, each was stored as U+FFFD, i.e. as one and the same ID.
    for (const id of ['\ud800', 'x\udbff', '\udfffy']) {
      const res = await provide('mcptt-1', ['alice', id]);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((res.body as Problem).invalidParams).toEqual([{ param: '/valServiceInfos/0/valUserIds/1', reason: 'contains an unpaired UTF-16 surrogate' }]);
    }
    expect(await mappings('mcptt-1')).toEqual([]);
  });

  test('a lone surrogate or NUL in the requester identity or VAL service ID is 400 with invalidParams', async () => {
    const res = await call(server, 'POST', '/configurations', {
      token,
      json: { requesterIdentity: `${MCX}\ud800`, valServiceInfos: [{ valServiceId: 'mcptt-1\u0000', valUserIds: ['alice'] }] },
    });
    expect(res.status).toBe(400);
    expect((res.body as Problem).invalidParams).toEqual([
      { param: '/requesterIdentity', reason: 'contains an unpaired UTF-16 surrogate' },
      { param: '/valServiceInfos/0/valServiceId', reason: 'contains a NUL character' },
    ]);
  });
});

describe('admin CLI', () => {
  test('user add with an NFD VAL user ID stores one user that the NFC spelling finds, at login too', async () => {
    await cliOk(server.env, ['user', 'add', JOSE_NFD, '--password', 'jose-password-1']);
    await cliOk(server.env, ['service', 'grant', 'mcptt-1', JOSE_NFD]);
    expect(await database.db('val_users').whereIn('val_user_id', [JOSE_NFC, JOSE_NFD]).pluck('val_user_id')).toEqual([JOSE_NFC]);
    // The other spelling is the same user, not a second one.
    const again = await cli(server.env, ['user', 'add', JOSE_NFC, '--password', 'jose-password-2']);
    expect(again.code).toBe(1);
    expect(Number((await database.db('val_users').whereIn('val_user_id', [JOSE_NFC, JOSE_NFD]).count({ n: '*' }))[0]!.n)).toBe(1);
    // A VAL UE signing in with the NFC spelling gets tokens for that user.
    const client = await oidc.discovery(new URL(server.issuer), 'val-ue', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    const req = await pkceAuthorizationRequest(client, REDIRECT);
    const callback = await new Browser().login(req.url, JOSE_NFC, 'jose-password-1', REDIRECT);
    const tokens = await oidc.authorizationCodeGrant(client, new URL(callback), {
      pkceCodeVerifier: req.verifier,
      expectedState: req.state,
      expectedNonce: req.nonce,
    });
    expect(tokens.claims()?.sub).toBe(JOSE_NFC);
  });

  test('a lone surrogate in a CLI ID argument is a one-line error and nothing is stored', async () => {
    const r = await cli(server.env, ['user', 'add', 'x\ud800', '--password', 'some-password-1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('seal-idms: invalid VAL user ID: must be printable characters without spaces or control characters\n');
    expect(await database.db('val_users').where('val_user_id', 'like', 'x%').pluck('val_user_id')).toEqual([]);
  });
});

describe('user import', () => {
  test('a line whose ID is a lone surrogate (its CESU-8 bytes) is rejected; NFD IDs are stored as NFC', async () => {
    const file = path.join(dir, 'surrogates.csv');
    const line = (id: Buffer | string, password: string) => Buffer.concat([Buffer.isBuffer(id) ? id : Buffer.from(id), Buffer.from(`,${password}\n`)]);
    // U+D800 and U+D801 as a CESU-8/WTF-8 writer emits them: decoded leniently, both would become U+FFFD.
    const lone = (second: number) => Buffer.from([0x73, 0xed, second, 0x80]); // "s" + unpaired surrogate
    await fs.writeFile(
      file,
      Buffer.concat([
        Buffer.from('val_user_id,password\n'),
        line('imp-1', 'import-password-1'),
        line(lone(0xa0), 'import-password-2'),
        line(lone(0xa1), 'import-password-3'),
        line('impe\u0301', 'import-password-4'),
        line('imp\u00e9', 'import-password-5'),
      ]),
    );
    const r = await cli(server.env, ['user', 'import', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('2 created, 0 updated, 3 rejected');
    expect(r.stdout).toContain('line 3: val_user_id is not valid UTF-8');
    expect(r.stdout).toContain('line 4: val_user_id is not valid UTF-8');
    expect(r.stdout).toContain('line 6: duplicate VAL user ID');
    expect(
      await database.db('val_users').where('val_user_id', 'like', 'imp%').orWhere('val_user_id', 'like', 's%').orderBy('val_user_id').pluck('val_user_id'),
    ).toEqual(['imp-1', 'imp\u00e9']);
  });
});
