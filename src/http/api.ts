// The contract between the composition root and a REST API module mounted next to the OIDC endpoints.
import type Koa from 'koa';
import type { Config } from '../config/env.ts';
import type { Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import type { AccessTokenVerifier } from '../oidc/access-tokens.ts';

/** What a REST API module (the provisioning APIs) receives from src/server.ts. */
export type ApiDeps = {
  config: Config;
  db: Db;
  /** The process's caches (src/db/change-feed.ts), for the lookups of every request (revocations, clients, VAL servers). */
  caches: Caches;
  /** Verifies a bearer access token with the signing keys current at the time of the call. */
  verifyAccessToken: AccessTokenVerifier;
  log: (line: string) => void;
};

/** A REST API: one middleware that answers the requests under its base path and passes on everything else. */
export type RestApi = (deps: ApiDeps) => Koa.Middleware;
