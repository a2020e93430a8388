// ESLint flat config: TypeScript rules plus the layer rules of docs/architecture.md made executable.
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

// Domain code never reaches up into the composition root or the CLI adapter (docs/architecture.md, "Layer rules").
const upward = [
  { group: ['**/cli/*', '**/cli/**'], message: 'domain modules never import the CLI (src/cli/ is a thin adapter over them)' },
  {
    group: ['**/server.ts', '**/main.ts', '**/cluster.ts'],
    message: 'only the composition root (src/server.ts) wires modules; import the module that owns the thing instead',
  },
];
const compositionRoot = {
  group: ['**/server.ts'],
  message:
    'the composition root is for src/main.ts and the serve command; import the module that owns the thing (e.g. keyRetentionSeconds in src/oidc/keys.ts)',
};
// Routes and CLI commands hold no SQL: they call a service, which calls a store.
const noSql = [
  { group: ['knex', 'pg'], message: 'routes and CLI commands hold no SQL or transactions: call a domain service', allowTypeImports: true },
  {
    group: ['**/store.ts', '**/*-store.ts', '**/db/prepared.ts'],
    message: 'routes and CLI commands call a domain service, never a store',
    allowTypeImports: true,
  },
];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'data/', 'coverage/', 'packages/*/dist/', 'examples/**/node_modules/'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: {
      // No import cycles anywhere in the server (docs/architecture.md).
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-floating-promises': 'off',
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**', 'src/server.ts', 'src/main.ts', 'src/cluster.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: upward }] },
  },
  {
    files: ['src/cli/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: noSql }] },
  },
  {
    // Admin commands call domain services, never the composition root; only `serve`, which runs the server, wires it.
    files: ['src/cli/**/*.ts'],
    ignores: ['src/cli/serve.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [...noSql, compositionRoot] }] },
  },
  {
    files: ['src/**/routes.ts', 'src/**/*-routes.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [...upward, ...noSql] }] },
  },
);
