// The publishable packages as a user outside this repository gets them (issue 15): both tarballs made by `npm pack`
// (whose prepack builds them), installed into scratch projects; the kit imported on the machine's plain Node 20
// validates a token from a running S-IdMS; the installed server runs its bin and serves from the built files on Node 24.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createKnex } from '../src/db/knex.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestServer, TEST_SECRET, type TestServer } from './helpers/server.ts';
import { cliOk } from './helpers/cli.ts';
import { freePort } from './helpers/net.ts';
import { STARTUP_MS, until } from './helpers/timing.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const AUDIENCE = 'https://val.package-test.example.org';
// Packing builds the server with tsc; installing the server fetches its dependencies (from npm's cache when warm).
const SETUP_MS = 240_000;
// The bundle guard of `npm run build`: any module resolved outside the given directory fails the process.
const GUARD = ['--import', pathToFileURL(path.join(ROOT, 'scripts', 'bundle-guard.ts')).href];

type Packed = { filename: string; size: number; unpackedSize: number; files: { path: string }[] };

let scratch: string;
let kit: Packed;
let server: Packed;
let kitProject: string;
let serverProject: string;
let database: TestDatabase;
let idms: TestServer;

// npm and the packed code run without jest's NODE_OPTIONS (--experimental-vm-modules).
const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
};

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, env: cleanEnv(), maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function pack(args: string[]): Promise<Packed> {
  const [packed] = JSON.parse(await npm(['pack', ...args, '--json', '--pack-destination', scratch], ROOT)) as Packed[];
  return packed!;
}

/** A project of its own in the scratch directory with `tarball` installed, as `npm install <tarball>` does it. */
async function installInto(name: string, tarball: string): Promise<string> {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
  await npm(['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(scratch, tarball)], dir);
  return dir;
}

/** The machine's own Node 20 (not the project's Node 24, which the npm scripts put first on PATH). */
function systemNode20(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d && !d.includes('node_modules'));
  for (const candidate of new Set([...dirs, '/usr/local/bin', '/usr/bin'].map((d) => path.join(d, 'node')))) {
    try {
      if (execFileSync(candidate, ['--version'], { encoding: 'utf8' }).startsWith('v20.')) return candidate;
    } catch {
      // not there, or not runnable
    }
  }
  return undefined;
}

const node20 = systemNode20();
if (!node20) console.warn('package.test.ts: no Node 20 on this machine (PATH, /usr/local/bin, /usr/bin): the test of the kit on Node 20 is skipped');

function du(dir: string): string {
  return execFileSync('du', ['-sh', dir], { encoding: 'utf8' }).split('\t')[0]!;
}

beforeAll(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'idms-package-test-'));
  // One after the other: both prepack scripts write build output into the shared working tree.
  kit = await pack(['-w', '@seal-idms/verify']);
  server = await pack([]);
  [kitProject, serverProject] = await Promise.all([installInto('kit-consumer', kit.filename), installInto('server-consumer', server.filename)]);
  console.log(
    `tarballs: ${kit.filename} ${(kit.size / 1024).toFixed(1)} kB (unpacked ${(kit.unpackedSize / 1024).toFixed(1)} kB), ` +
      `${server.filename} ${(server.size / 1024).toFixed(1)} kB (unpacked ${(server.unpackedSize / 1024).toFixed(1)} kB); ` +
      `installed: kit project node_modules ${du(path.join(kitProject, 'node_modules'))}, server project node_modules ${du(path.join(serverProject, 'node_modules'))}`,
  );
}, SETUP_MS);

afterAll(async () => {
  await idms?.close();
  await database?.drop();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

describe('@seal-idms/verify', () => {
  test('the tarball holds compiled ESM with declarations and its README; jose is its only dependency, and all the install brings', async () => {
    const files = kit.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts']));
    expect(files.filter((f) => /(^|\/)test\/|\.test\./.test(f))).toEqual([]);

    const manifest = JSON.parse(fs.readFileSync(path.join(kitProject, 'node_modules', '@seal-idms', 'verify', 'package.json'), 'utf8'));
    expect(manifest.type).toBe('module');
    expect(Object.keys(manifest.dependencies)).toEqual(['jose']);
    expect(manifest.peerDependencies ?? {}).toEqual({});
    expect(manifest.optionalDependencies ?? {}).toEqual({});
    // The whole installed tree: the scratch project, the kit and jose, nothing else.
    const installed = (await npm(['ls', '--all', '--parseable'], kitProject))
      .trim()
      .split('\n')
      .map((p) => path.relative(kitProject, p));
    expect(installed.sort()).toEqual(['', 'node_modules/@seal-idms/verify', 'node_modules/jose']);
  });

  (node20 ? test : test.skip)(
    'imported on plain Node 20, the installed kit validates an access token issued by a running S-IdMS and refuses a tampered one',
    async () => {
      database = await createTestDatabase();
      idms = await startTestServer(database);
      await cliOk(idms.env, ['client', 'add', 'package-test-server', '--secret', 'package-test-secret-1', '--grant', 'client_credentials']);
      await cliOk(idms.env, ['resource', 'add', AUDIENCE]);
      const res = await fetch(`${idms.issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('package-test-server:package-test-secret-1').toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: AUDIENCE }),
      });
      expect(res.status).toBe(200);
      const { access_token: token } = (await res.json()) as { access_token: string };

      fs.writeFileSync(
        path.join(kitProject, 'consumer.js'),
        `import { AccessTokenError, createAccessTokenVerifier } from '@seal-idms/verify';
const verify = createAccessTokenVerifier({ issuer: process.env.ISSUER, audience: process.env.AUDIENCE });
const accepted = await verify(process.env.TOKEN);
// The same token with another client_id in its payload: the signature no longer matches.
const [header, payload, signature] = process.env.TOKEN.split('.');
const forged = JSON.parse(Buffer.from(payload, 'base64url').toString());
forged.client_id = 'someone-else';
let refused;
try {
  await verify([header, Buffer.from(JSON.stringify(forged)).toString('base64url'), signature].join('.'));
} catch (err) {
  refused = err instanceof AccessTokenError ? err.code : String(err);
}
console.log(JSON.stringify({ node: process.version, module: import.meta.resolve('@seal-idms/verify'), clientId: accepted.clientId, aud: accepted.claims.aud, refused }));
`,
      );
      const { stdout } = await run(node20!, ['consumer.js'], {
        cwd: kitProject,
        env: { PATH: process.env.PATH, ISSUER: idms.issuer, AUDIENCE, TOKEN: token },
      });
      const result = JSON.parse(stdout) as Record<string, unknown>;
      expect(result).toEqual({
        node: expect.stringMatching(/^v20\./),
        module: pathToFileURL(path.join(fs.realpathSync(kitProject), 'node_modules', '@seal-idms', 'verify', 'dist', 'index.js')).href,
        clientId: 'package-test-server',
        aud: AUDIENCE,
        refused: 'invalid_token',
      });
    },
  );
});

describe('seal-idms (the server package)', () => {
  test('the tarball holds the built server: JavaScript, declarations, every migration compiled, views/ and the OpenAPI files', () => {
    const files = new Set(server.files.map((f) => f.path));
    for (const f of ['dist/bin/seal-idms.js', 'dist/src/main.js', 'dist/src/server.js', 'dist/src/server.d.ts', 'dist/src/users/hash-worker.js'])
      expect(files).toContain(f);
    const migrations = fs.readdirSync(path.join(ROOT, 'migrations')).filter((f) => f.endsWith('.ts'));
    expect(migrations.length).toBeGreaterThan(0);
    for (const m of migrations) expect(files).toContain(`dist/migrations/${m.replace(/\.ts$/, '.js')}`);
    for (const v of fs.readdirSync(path.join(ROOT, 'views'))) expect(files).toContain(`dist/views/${v}`);
    const openapi = fs.readdirSync(path.join(ROOT, 'src', 'provisioning')).filter((f) => f.endsWith('.yaml'));
    expect(openapi).toContain('openapi.yaml');
    for (const y of openapi) expect(files).toContain(`dist/src/provisioning/${y}`);
  });

  test('the tarball ships no tests, CI scripts, data, TypeScript sources, tokens or secrets', () => {
    const files = server.files.map((f) => f.path);
    const outsideBuild = files.filter((f) => !f.startsWith('dist/') && !['package.json', 'README.md'].includes(f) && !/^LICEN[CS]E/.test(f));
    expect(outsideBuild).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|tests|\.ci|data|test-artifacts|coverage|bench|image|node_modules)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\.ts$/.test(f) && !/\.d\.ts$/.test(f))).toEqual([]);
    expect(files.filter((f) => /(^|\/)(tokens\.json|\.env[^/]*|[^/]*\.(pem|key|p12|tgz))$/.test(f))).toEqual([]);
  });

  test('the installed bin runs on Node 24 and prints its usage, loading nothing from outside the installed project', async () => {
    const { stdout } = await run(process.execPath, [...GUARD, path.join(serverProject, 'node_modules', '.bin', 'seal-idms'), '--help'], {
      cwd: serverProject,
      env: cleanEnv({ IDMS_BUNDLE_ROOT: pathToFileURL(fs.realpathSync(serverProject)).href + '/' }),
    });
    expect(stdout).toContain('seal-idms');
    expect(stdout).toMatch(/\bserve\b/);
  });

  test(
    'the installed server migrates an empty database with the compiled migrations, serves its pages and OpenAPI document, and imports users',
    async () => {
      // An empty database (not the migrated template), so the server's own dist/migrations create the schema.
      const adminUrl = process.env.IDMS_TEST_ADMIN_URL!;
      const name = `idms_t_pkg_${process.pid}_${Date.now().toString(36)}`;
      const admin = createKnex(adminUrl, { max: 1 });
      await admin.raw(`create database ${name}`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      const port = await freePort();
      const bundleRoot = pathToFileURL(fs.realpathSync(serverProject)).href + '/';
      const bin = path.join(serverProject, 'node_modules', '.bin', 'seal-idms');
      let output = '';
      let child: ChildProcess | undefined;
      try {
        child = spawn(process.execPath, [...GUARD, bin, 'serve'], {
          cwd: serverProject,
          env: cleanEnv({
            IDMS_BUNDLE_ROOT: bundleRoot,
            IDMS_DATABASE_URL: url.toString(),
            IDMS_SECRET: TEST_SECRET,
            IDMS_PORT: String(port),
            IDMS_ISSUER: `http://127.0.0.1:${port}`,
            IDMS_WORKERS: '1',
          }),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        child.stdout!.on('data', (c: Buffer) => (output += c));
        child.stderr!.on('data', (c: Buffer) => (output += c));
        const base = `http://127.0.0.1:${port}`;
        const ready = async () => {
          if (child!.exitCode !== null) throw new Error(`the installed server exited with code ${child!.exitCode}:\n${output}`);
          return fetch(`${base}/readyz`).then(
            (r) => r.status === 200,
            () => false,
          );
        };
        await until('the installed server is ready', ready, STARTUP_MS, () => output);

        const css = await fetch(`${base}/static/idms.css`);
        expect(css.status).toBe(200);
        expect(await css.text()).toBe(fs.readFileSync(path.join(ROOT, 'views', 'idms.css'), 'utf8'));
        const openapi = await fetch(`${base}/ss-idms-provisioning/v1/openapi.yaml`);
        expect(openapi.status).toBe(200);
        expect(await openapi.text()).toBe(fs.readFileSync(path.join(ROOT, 'src', 'provisioning', 'openapi.yaml'), 'utf8'));
        const page = await fetch(`${base}/auth?client_id=no-such-client&response_type=code&scope=openid`);
        expect(page.headers.get('content-type')).toMatch(/^text\/html/);
        expect(await page.text()).toContain('<link rel="stylesheet" href="/static/idms.css">');

        // A bulk import through the installed bin: passwords hashed by the compiled worker (dist/src/users/hash-worker.js).
        fs.writeFileSync(path.join(serverProject, 'users.csv'), 'val_user_id,password\npkg-alice,pkg-alice-password-1\npkg-bob,pkg-bob-password-1\n');
        await run(process.execPath, [...GUARD, bin, 'user', 'import', 'users.csv', '--workers', '1'], {
          cwd: serverProject,
          env: cleanEnv({ IDMS_BUNDLE_ROOT: bundleRoot, IDMS_DATABASE_URL: url.toString(), IDMS_SECRET: TEST_SECRET, IDMS_ISSUER: `http://127.0.0.1:${port}` }),
        });

        // Recorded under the source names, so the sources and the built server agree on what is applied.
        const db = createKnex(url.toString(), { max: 1 });
        try {
          const applied = (await db('knex_migrations').orderBy('id').pluck('name')) as string[];
          expect(applied).toEqual(
            fs
              .readdirSync(path.join(ROOT, 'migrations'))
              .filter((f) => f.endsWith('.ts'))
              .sort(),
          );
          const hashes = (await db('val_users').whereIn('val_user_id', ['pkg-alice', 'pkg-bob']).pluck('password_hash')) as string[];
          expect(hashes).toEqual([expect.stringMatching(/^\$argon2id\$/), expect.stringMatching(/^\$argon2id\$/)]);
        } finally {
          await db.destroy();
        }
      } finally {
        if (child && child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit');
          child.kill('SIGTERM');
          await exited;
        }
        await admin.raw(`drop database if exists ${name} with (force)`);
        await admin.destroy();
      }
    },
    STARTUP_MS + 30_000,
  );
});
