// Configuration: documented defaults, and a bad value stops start-up with one line naming the variable.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config/env.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

test('defaults are the documented ones', () => {
  const c = loadConfig({});
  expect(c).toMatchObject({
    production: false,
    issuer: 'http://localhost:3000',
    host: '127.0.0.1',
    port: 3000,
    databaseUrl: undefined,
    dataDir: path.resolve('./data'),
    tls: undefined,
    trustProxy: false,
    ttl: { accessToken: 300, idToken: 3600, refreshToken: 14 * 86400, securityToken: 60 },
    defaultResource: 'urn:3gpp:seal',
    workers: 1,
  });
  expect(Object.isFrozen(c)).toBe(true);
});

test.each([
  [{ IDMS_PORT: 'abc' }, /^invalid IDMS_PORT: /],
  [{ IDMS_PORT: '70000' }, /^invalid IDMS_PORT: /],
  [{ IDMS_ISSUER: 'ftp://x' }, /^invalid IDMS_ISSUER: /],
  [{ IDMS_ISSUER: 'https://idms.example.org/?a=b' }, /^invalid IDMS_ISSUER: /],
  [{ IDMS_ACCESS_TOKEN_TTL: '0' }, /^invalid IDMS_ACCESS_TOKEN_TTL: /],
  [{ IDMS_SECURITY_TOKEN_TTL: '1.5' }, /^invalid IDMS_SECURITY_TOKEN_TTL: /],
  [{ IDMS_DATABASE_URL: 'mysql://x' }, /^invalid IDMS_DATABASE_URL: /],
  [{ IDMS_SECRET: 'short' }, /^invalid IDMS_SECRET: /],
  [{ NODE_ENV: 'production' }, /^invalid IDMS_SECRET: required/],
  [{ IDMS_TLS_CERT: '/x.pem' }, /^invalid IDMS_TLS_CERT \/ IDMS_TLS_KEY/],
  [{ IDMS_HOST: '0.0.0.0' }, /^invalid IDMS_HOST: 0\.0\.0\.0 is not a loopback address/],
  [{ IDMS_TRUST_PROXY: 'maybe' }, /^invalid IDMS_TRUST_PROXY: /],
  [{ IDMS_WORKERS: '0' }, /^invalid IDMS_WORKERS: /],
  [{ IDMS_DEFAULT_RESOURCE: 'not a uri' }, /^invalid IDMS_DEFAULT_RESOURCE: /],
])('%j is refused', (env, message) => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(message);
});

test('a non-loopback bind is allowed behind a TLS-terminating proxy', () => {
  expect(loadConfig({ IDMS_HOST: '0.0.0.0', IDMS_TRUST_PROXY: '1' }).host).toBe('0.0.0.0');
});

test('the server refuses to start on a bad value with one line on stderr and exit code 1', () => {
  const r = spawnSync(process.execPath, ['src/main.ts', 'serve'], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '', IDMS_PORT: 'http', IDMS_DATA_DIR: '/nonexistent-never-created' },
    encoding: 'utf8',
  });
  expect(r.status).toBe(1);
  expect(r.stderr.trim().split('\n')).toEqual(['seal-idms: invalid IDMS_PORT: must be a port number 0-65535, got "http"']);
});
