// The public listener: HTTP, or HTTPS with the TS 33.310 annex E TLS profile, with bounds on slow or idle clients.
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import type { Config } from '../config/env.ts';

// TS 33.310 annex E profile: TLS 1.2/1.3 only, AEAD suites with (EC)DHE only, no renegotiation.
const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Bounds on slow or idle clients; tests shorten them to observe the behaviour. */
export type ListenerLimits = {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  handshakeTimeoutMs: number;
  checkIntervalMs: number;
};
export const LISTENER_LIMITS: ListenerLimits = Object.freeze({
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  handshakeTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
});

export function createListener(config: Config, app: Koa, limits: ListenerLimits = LISTENER_LIMITS): http.Server {
  const handler = app.callback();
  // Node enforces headersTimeout/requestTimeout only when it sweeps connections (every 30 s by default): sweep often,
  // so a slowloris connection is cut close to its deadline.
  const common = { connectionsCheckingInterval: limits.checkIntervalMs };
  const server = config.tls
    ? https.createServer(
        {
          cert: fs.readFileSync(config.tls.cert),
          key: fs.readFileSync(config.tls.key),
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.3',
          ciphers: TLS_CIPHERS,
          honorCipherOrder: true,
          secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION,
          // A TCP connection that never completes the handshake is not yet HTTP, so headersTimeout does not apply (default 120 s).
          handshakeTimeout: limits.handshakeTimeoutMs,
          ...common,
        },
        handler,
      )
    : http.createServer(common, handler);
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxHeadersCount = 100;
  return server;
}

export function listen(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
