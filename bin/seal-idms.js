#!/usr/bin/env node
// Package bin: runs the TypeScript sources directly (Node 24 strips types natively).
await import('../src/main.ts');
