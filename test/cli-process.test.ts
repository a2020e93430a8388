// The admin CLI as a process (issue 15 item 3): --help does nothing else, --version, strict options, one-line errors
// with a non-zero exit, and a reader that closes the pipe early ends the command quietly.
import fs from 'node:fs';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { cli, cliOk, cliProcess } from './helpers/cli.ts';
import { TEST_SECRET } from './helpers/server.ts';

let database: TestDatabase;
let env: NodeJS.ProcessEnv;
// Nothing listens on port 1: a command that touched the database here would fail instead of printing help.
const NO_DATABASE = { IDMS_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', IDMS_SECRET: TEST_SECRET };

beforeAll(async () => {
  database = await createTestDatabase();
  env = { IDMS_DATABASE_URL: database.url, IDMS_SECRET: TEST_SECRET };
});

afterAll(async () => {
  await database?.drop();
});

const SUBCOMMANDS: string[][] = [
  ['serve'],
  ['migrate'],
  ...['add', 'passwd', 'disable', 'enable', 'show', 'list', 'delete', 'sessions', 'ue', 'import'].map((s) => ['user', s]),
  ['user', 'sessions', 'revoke'],
  ...['add', 'update', 'show', 'list', 'rotate-secret', 'remove'].map((s) => ['client', s]),
  ...['grant', 'revoke', 'list', 'list-all', 'scope', 'scopes'].map((s) => ['service', s]),
  ...['add', 'update', 'show', 'list', 'disable', 'enable', 'configurations'].map((s) => ['val-server', s]),
  ...['add', 'list', 'remove'].map((s) => ['resource', s]),
  ['keys', 'rotate'],
  ['keys', 'export'],
  ...['add', 'update', 'show', 'list', 'remove'].map((s) => ['partner', s]),
  ['audit', 'list'],
];

describe('--help prints help and does nothing else', () => {
  test('the real binary: serve --help starts no server, migrate --help runs no migration, user add --help exits 0', async () => {
    for (const argv of [['serve', '--help'], ['migrate', '--help'], ['user', 'add', '--help'], ['--help']]) {
      const r = await cliProcess(NO_DATABASE, argv);
      expect({ argv, code: r.code, stderr: r.stderr }).toEqual({ argv, code: 0, stderr: '' });
      expect(r.stdout).toMatch(/usage|seal-idms/);
    }
    // Nothing was migrated into the reachable database by the help of migrate either.
    const fresh = await cliProcess(env, ['migrate', '--help']);
    expect(fresh.code).toBe(0);
    expect(fresh.stdout).toMatch(/^usage: seal-idms migrate/);
  });

  test('every command and subcommand answers --help (and -h) with its own usage, exit 0, without the database', async () => {
    for (const argv of SUBCOMMANDS) {
      for (const flag of ['--help', '-h']) {
        const r = await cli(NO_DATABASE, [...argv, flag]);
        expect({ argv, flag, code: r.code, stderr: r.stderr }).toEqual({ argv, flag, code: 0, stderr: '' });
        expect(r.stdout).toMatch(/^usage: seal-idms /);
        // The subcommand's own help, not the group's: it names the subcommand.
        expect(r.stdout.split('\n')[0]).toContain(argv.slice(0, 2).join(' '));
      }
    }
    // Help after other arguments (a half-typed command) is still only help.
    const late = await cli(NO_DATABASE, ['user', 'delete', 'alice', '--help']);
    expect(late.code).toBe(0);
    expect(late.stdout).toMatch(/^usage: seal-idms user delete/);
  });

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await cliProcess(NO_DATABASE, ['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `seal-idms ${version}\n`, stderr: '' });
  });
});

describe('errors are one line and a non-zero exit', () => {
  test('unknown options, extra arguments and negative numbers', async () => {
    await cliOk(env, ['val-server', 'add', 'vs-1', '--client-id', 'vs-1-client', '--services', 'mcptt-1']);
    const cases: [string[], RegExp][] = [
      [['client', 'list', '--json', '--bogus'], /^seal-idms: unknown option --bogus; usage: client list \[--json\]$/],
      [['client', 'list', 'extra'], /^seal-idms: unexpected argument "extra"/],
      [['user', 'list', '--limit', '-5'], /^seal-idms: --limit must be a whole number from 1 to 10000, got "-5"$/],
      [['user', 'list', '--limit', '0'], /--limit must be a whole number from 1 to 10000/],
      [['service', 'list', 'mcptt-1', '--limit', '-1'], /--limit must be a whole number/],
      [['val-server', 'update', 'vs-1', '--max-users', '-5'], /^seal-idms: --max-users must be a whole number from 1 to 2147483647, got "-5"$/],
      [['user', 'import', 'x.csv', '--batch-size', '-3'], /--batch-size must be a whole number from 1 to 50000, got "-3"/],
      [['audit', 'list', '--limit', '-2'], /--limit must be a whole number/],
      [['user', 'show', '-5'], /^seal-idms: unknown option -5/],
      [['user', 'add', 'x', '--password'], /option --password needs a value/],
      [['user', 'list', '--cursor', 'not a cursor'], /invalid cursor/],
      [['user', 'frobnicate'], /unknown user subcommand "frobnicate"/],
      [['val-server'], /missing val-server subcommand/],
      [['serve', '--port', '1'], /serve takes no arguments/],
      [['migrate', '--bogus'], /unknown option --bogus/],
      [['user', 'show', 'nobody'], /^seal-idms: no VAL user nobody$/],
      [['client', 'rotate-secret', 'nobody'], /^seal-idms: no client nobody$/],
      [['val-server', 'show', 'nobody'], /^seal-idms: no VAL server nobody$/],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(env, argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: 1 });
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(message);
    }
    // Nothing was changed by the refused update.
    expect(await database.db('val_servers').where({ requester_identity: 'vs-1' }).first('max_users_per_service')).toEqual({ max_users_per_service: null });
  });

  test('the real binary exits 1 with one line and no stack trace', async () => {
    const r = await cliProcess(env, ['val-server', 'update', 'vs-1', '--max-users', '-5']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('seal-idms: --max-users must be a whole number from 1 to 2147483647, got "-5"\n');
    const unknown = await cliProcess(env, ['nosuchcommand']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('a closed pipe', () => {
  test('`service list X | head -1`: the command stops quietly with exit 0, no EPIPE stack trace', async () => {
    // Far more than a pipe buffer (64 KiB) holds, so the CLI is still writing when the reader goes away.
    await database.db.raw(
      `insert into val_service_users (val_service_id, val_user_id, provisioned_by) select 'pipe-svc', 'pipe-user-' || g, 'admin' from generate_series(1, 50000) g`,
    );
    let first: string | undefined;
    const r = await cliProcess(env, ['service', 'list', 'pipe-svc'], {
      onStdout(chunk, child) {
        if (first !== undefined) return;
        first = chunk.split('\n')[0];
        child.stdout.destroy(); // what `head -1` does after its first line
      },
    });
    expect(first).toBe('pipe-user-1');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
    expect(r.stderr).toBe('');
  });
});
