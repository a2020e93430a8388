#!/usr/bin/env node
// Package bin. In the repository Node 24 runs the TypeScript sources (type stripping); `npm run build` compiles
// this file to dist/bin/seal-idms.js, importing ../src/main.js, which is what the published package runs.
await import('../src/main.ts');
