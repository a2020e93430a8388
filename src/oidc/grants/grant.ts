// What a grant module of this server is (STYLE.md 11, as oidc-provider's lib/actions/grants/*.js): data that
// createProvider registers from src/oidc/grants/index.ts.
import type { JWK } from 'jose';
import type { TokenEndpointGrantContext } from 'oidc-provider';
import type { Config } from '../../config/env.ts';
import type { Caches } from '../../db/change-feed.ts';
import type { Db } from '../../db/knex.ts';

/**
 * What a grant handler is built from: its provider instance's configuration, database, the process's caches and the
 * signing keys (ProviderDeps has them).
 */
export type GrantDeps = { config: Config; db: Db; caches: Caches; signingKeys: JWK[] };

export type GrantHandler = (ctx: TokenEndpointGrantContext) => Promise<void>;

export type GrantModule = {
  /** The grant_type value (an RFC-registered URN). */
  grantType: string;
  /** The token request parameters the handler reads (oidc-provider refuses duplicates of these). */
  parameters: ReadonlySet<string>;
  /** Parameters that may repeat. */
  duplicates?: ReadonlySet<string>;
  /** The token endpoint handler for one provider instance (its keys, configuration and database). */
  handler: (deps: GrantDeps) => GrantHandler;
  /** Audit action of a request refused because the client is not registered for this grant (unauthorized-client.ts). */
  refusalAuditAction: (params: Record<string, unknown>) => string;
};
