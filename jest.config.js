// Jest runs the TypeScript sources as native ESM, transformed by swc (no type check: `npm run typecheck` does that).
export default {
  testEnvironment: 'node',
  // @seal-idms/verify resolves to its TypeScript source in the repository (packages/verify/package.json exports).
  testEnvironmentOptions: { customExportConditions: ['node', 'node-addons', '@seal-idms/source'] },
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
};
