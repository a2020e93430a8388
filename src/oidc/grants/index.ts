// The grants this server adds to oidc-provider's own (as oidc-provider's lib/actions/grants/index.js lists its own):
// createProvider registers each one listed here, and the unauthorized_client rewrite applies to exactly these.
import type { GrantModule } from './grant.ts';
import * as jwtBearer from './jwt-bearer.ts';
import * as tokenExchange from './token-exchange.ts';

export const GRANTS: readonly GrantModule[] = [tokenExchange, jwtBearer];
