// The access log may be batched (issue 16), but the line of a denied or failed request is written out at once.
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Koa from 'koa';
import pino from 'pino';
import { createLogger } from '../src/observability/logger.ts';
import { requestLog } from '../src/observability/request-log.ts';

let dir: string;
let server: http.Server;
let base: string;
let destination: ReturnType<typeof pino.destination>;
let file: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idms-access-log-'));
  file = path.join(dir, 'log');
  // As serve writes its own stderr (src/cli/serve.ts): held until 4 KiB, no periodic flush within the test.
  destination = pino.destination({ dest: file, sync: true, minLength: 4096 });
  const logger = createLogger({ destination: destination as unknown as NodeJS.WritableStream });
  const app = new Koa();
  app.use(requestLog(logger));
  app.use((ctx) => {
    ctx.status = ctx.path === '/denied' ? 401 : ctx.path === '/failed' ? 500 : 200;
    ctx.body = 'x';
  });
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  destination.destroy();
  await fs.rm(dir, { recursive: true, force: true });
});

const written = async () =>
  (await fs.readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { path: string; status: number });

// The line is written on the response's 'finish', just after the client has its answer.
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

test("a successful request's line waits for the batch; a denied or failed request's line is written at once, with what was held", async () => {
  await fetch(`${base}/ok`);
  await settle();
  expect(await written()).toEqual([]);
  await fetch(`${base}/denied`);
  await settle();
  expect((await written()).map((l) => `${l.path} ${l.status}`)).toEqual(['/ok 200', '/denied 401']);
  await fetch(`${base}/failed`);
  await settle();
  expect((await written()).map((l) => `${l.path} ${l.status}`)).toEqual(['/ok 200', '/denied 401', '/failed 500']);
});
