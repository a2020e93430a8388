// oidc-provider adapter over one PostgreSQL table (oidc_payloads), for every model the provider stores.
import { errors, Provider, type Adapter, type AdapterPayload, type ClientMetadata } from 'oidc-provider';
import { NO_CACHE, type Caches } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';
import { hasBearerId, openClientMetadata, openPayload, sealClientMetadata, sealPayload, storageKey, type AtRestKeys } from './at-rest.ts';

const TABLE = 'oidc_payloads';

// The statements of every token, code, session and interaction: prepared once per connection (src/db/prepared.ts).
const UPSERT = `insert into ${TABLE} (kind, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
  values ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::double precision), null)
  on conflict (kind, id) do update set payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
    user_code = excluded.user_code, expires_at = excluded.expires_at, consumed_at = null`;
// Expiry is honoured on read; the sweeper only reclaims space.
const FIND_BY_ID = `select payload, consumed_at from ${TABLE} where kind = $1 and id = $2 and (expires_at is null or expires_at > now())`;
// Sessions by uid and device codes by user code: the (kind, uid) and (kind, user_code) indexes answer both conditions,
// so the plan does not depend on statistics (an index on uid alone was ANDed with a scan of every Session's primary key
// by a planner that had not yet analysed the table).
const FIND_BY_UID = `select payload, consumed_at from ${TABLE} where kind = $1 and uid = $2 and (expires_at is null or expires_at > now())`;
const FIND_BY_USER_CODE = `select payload, consumed_at from ${TABLE} where kind = $1 and user_code = $2 and (expires_at is null or expires_at > now())`;
// Single use is decided by this one statement (STYLE 14): of parallel redemptions that all read the record unconsumed,
// exactly one updates it. (An unconditional update let two refreshes of one token, or four redemptions of one code, all win.)
const CONSUME = `update ${TABLE} set consumed_at = now() where kind = $1 and id = $2 and consumed_at is null`;
// The loser's answer to a lost race, as oidc-provider's own replay path does (lib/helpers/revoke.js): every record of the
// grant (tokens, codes) and the grant itself go. Introspection and token exchange refuse JWT access tokens whose grant is gone.
const REVOKE_GRANT_OF = `with spent as (select grant_id from ${TABLE} where kind = $1 and id = $2 and grant_id is not null),
  revoked as (delete from ${TABLE} where grant_id in (select grant_id from spent) or (kind = 'Grant' and id in (select grant_id from spent)))
  select grant_id from spent`;

// Reads of a record together with what oidc-provider asks for next in the same request, one round trip each (issue 16):
// - a refresh token or an authorization code, with its grant (validateGrant) and the grant's account (findAccount);
//   a code also with its session (the session binding check of a code that expires with the session);
// - an interaction at the resume step, with the account its login result names (findAccount).
// What comes with the record is read in the same snapshot and handed to the Grant and Session adapters' finds and to
// findAccount within the same request only (takePrefetched, AccountCompanion.use).
const NOT_EXPIRED = (t: string) => `(${t}.expires_at is null or ${t}.expires_at > now())`;
const grantSourceSql = (withSession: boolean, accountColumns: string) => `select r.payload, r.consumed_at, r.grant_id, g.payload as grant_payload${
  withSession ? ', s.uid as session_uid, s.payload as session_payload, s.consumed_at as session_consumed_at' : ''
}${accountColumns} from ${TABLE} r
  left join ${TABLE} g on g.kind = 'Grant' and g.id = r.grant_id and ${NOT_EXPIRED('g')}${
    withSession ? `\n  left join ${TABLE} s on s.kind = 'Session' and s.uid = r.payload->>'sessionUid' and ${NOT_EXPIRED('s')}` : ''
  }
  where r.kind = $1 and r.id = $2 and ${NOT_EXPIRED('r')}`;
const interactionSql = (accountColumns: string) => `select r.payload, r.consumed_at${accountColumns} from ${TABLE} r
  where r.kind = $1 and r.id = $2 and ${NOT_EXPIRED('r')}`;
const GRANT_ACCOUNT = "(g.payload->>'accountId')";
const LOGIN_ACCOUNT = "(r.payload->'result'->'login'->>'accountId')";

/** The statements (name, text) of these reads: with the account's columns once src/oidc/account.ts has said which. */
function readsWith(c: AccountCompanion | undefined) {
  const suffix = c ? '_account' : '';
  const columns = (expr: string) => (c ? `, ${c.columns(expr)}` : '');
  return {
    refreshToken: { name: `oidc_payloads_find_with_grant${suffix}`, text: grantSourceSql(false, columns(GRANT_ACCOUNT)) },
    code: { name: `oidc_payloads_find_code${suffix}`, text: grantSourceSql(true, columns(GRANT_ACCOUNT)) },
    interaction: { name: `oidc_payloads_find_interaction${suffix}`, text: interactionSql(columns(LOGIN_ACCOUNT)) },
  };
}
let READS = readsWith(undefined);

/**
 * What else these reads return about an account, in the same round trip: the next thing the grant (or the resume step)
 * asks is findAccount. `columns` gets the SQL expression of the account id; `use` receives the row within the request.
 * Set once per process by src/oidc/account.ts (this module cannot import the stores that own those tables: they import it).
 */
export type AccountCompanion = { columns: (accountIdExpr: string) => string; use: (ctx: object, accountId: string, row: Record<string, unknown>) => void };
let companion: AccountCompanion | undefined;

export function readAccountsWithRecords(c: AccountCompanion): void {
  companion = c;
  READS = readsWith(c);
}
// Rotation in one statement (issue 16): the spent refresh token is consumed by CONSUME's condition and its successor is
// stored only if that consume won. Of parallel refreshes of one token exactly one inserts (the others' update waits for
// the winner's row lock, then finds consumed_at set and updates nothing, so their insert selects no row).
const CONSUME_AND_UPSERT = `with spent as (update ${TABLE} set consumed_at = now() where kind = $8 and id = $9 and consumed_at is null returning 1)
  insert into ${TABLE} (kind, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
  select $1::text, $2::text, $3::jsonb, $4::text, $5::text, $6::text, now() + make_interval(secs => $7::double precision), null
  where exists (select 1 from spent)
  on conflict (kind, id) do update set payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
    user_code = excluded.user_code, expires_at = excluded.expires_at, consumed_at = null`;

type Row = { payload: AdapterPayload; consumed_at: Date | null };

// The tokens a client presents at introspection, revocation and the token endpoint: oidc-provider issues their values
// with nanoid's URL alphabet (lib/helpers/nanoid.js), so a value with any other character was never issued here and
// is unknown without a round trip (JWTs, garbage, src/oidc/jwt-introspection.ts's stand-in for a JWT).
const PRESENTED_TOKEN_KINDS = new Set(['AccessToken', 'ClientCredentials', 'RefreshToken']);
const ISSUABLE_VALUE = /^[A-Za-z0-9_-]+$/;

// The resume step (GET /auth/:uid) ends with writes only: the grant (loadExistingGrant), the authorization code, the
// session, and the interaction's removal. They are held and written in one statement just before the response
// (flushHeldWrites, called by src/oidc/live-provider.ts; issue 16: 4 round trips become 1). Nothing reaches the
// browser before they are stored: if the statement fails, the answer is an error page instead of the redirect with
// the code. Any read, consume or revocation in the same request first writes what is held, so every read sees every
// write before it. Clients are never held (their change notifies the other instances' caches at once).
const HELD_WRITES = `with gone as (delete from ${TABLE} where (kind, id) in (select * from unnest($1::text[], $2::text[]))),
  saved as (insert into ${TABLE} (kind, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
    select t.kind, t.id, t.payload::jsonb, t.grant_id, t.uid, t.user_code, now() + make_interval(secs => t.expires_in), null
    from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::double precision[])
      as t(kind, id, payload, grant_id, uid, user_code, expires_in)
    on conflict (kind, id) do update set payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
      user_code = excluded.user_code, expires_at = excluded.expires_at, consumed_at = null)
  select 1`;

type UpsertValues = [kind: string, id: string, payload: string, grantId: string | null, uid: string | null, userCode: string | null, expiresIn: number | null];
/** Per request: the database and the last write held for each record (kind + stored id); `values` absent: a removal. */
type Held = { db: Db; writes: Map<string, { kind: string; key: string; values?: UpsertValues }> };
const heldWrites = new WeakMap<object, Held>();

function holdsWrites(ctx: ReturnType<typeof currentCtx>): ctx is NonNullable<ReturnType<typeof currentCtx>> {
  return ctx?.oidc?.route === 'resume';
}

function hold(db: Db, ctx: object, kind: string, key: string, values?: UpsertValues): void {
  let held = heldWrites.get(ctx);
  if (!held) heldWrites.set(ctx, (held = { db, writes: new Map() }));
  held.writes.set(`${kind}\u0000${key}`, { kind, key, values });
}

/** Writes what this request holds (nothing when it holds nothing), in one statement; the request's answer waits for it. */
export async function flushHeldWrites(ctx: object): Promise<void> {
  const held = heldWrites.get(ctx);
  if (!held || held.writes.size === 0) return;
  const writes = [...held.writes.values()];
  held.writes.clear();
  const removed = writes.filter((w) => !w.values);
  const saved = writes.flatMap((w) => (w.values ? [w.values] : []));
  const column = (i: number) => saved.map((v) => v[i]);
  await queryPrepared(held.db, 'oidc_payloads_held_writes', HELD_WRITES, [
    removed.map((w) => w.kind),
    removed.map((w) => w.key),
    ...[0, 1, 2, 3, 4, 5, 6].map(column),
  ]);
}

// Per request (keyed by oidc-provider's request context): grants and sessions read together with a refresh token or a
// code, and the refresh token whose consume waits for its successor's insert.
const prefetched = new WeakMap<object, Map<string, Row | undefined>>();
const pendingConsumes = new WeakMap<object, { kind: string; key: string }>();

/** The refresh grant of oidc-provider (lib/actions/grants/refresh_token.js): consume() is followed by the successor's save(), nothing in between. */
function refreshGrantRequest(ctx: ReturnType<typeof currentCtx>): ctx is NonNullable<ReturnType<typeof currentCtx>> {
  return ctx?.oidc?.route === 'token' && (ctx.oidc.params as { grant_type?: unknown } | undefined)?.grant_type === 'refresh_token';
}

function currentCtx() {
  return Provider.ctx;
}

function prefetch(ctx: object, what: string, row: Row | undefined): void {
  let rows = prefetched.get(ctx);
  if (!rows) prefetched.set(ctx, (rows = new Map()));
  rows.set(what, row);
}

/** A record read earlier in this request by a statement that also read it (`what`: `Grant:<id>`, `Session.uid:<uid>`), once. */
function takePrefetched(what: string): { row: Row | undefined } | undefined {
  const ctx = currentCtx();
  const rows = ctx && prefetched.get(ctx);
  if (!rows?.has(what)) return undefined;
  const row = rows.get(what);
  rows.delete(what);
  return { row };
}

/**
 * Whether the grant whose id the statement parameter `grantIdParam` (e.g. `$2`) holds is live, as `find` of a Grant
 * answers it: for a statement of another store that must answer it in the same round trip (readUserStanding,
 * src/provisioning/store.ts), so this table's SQL stays here.
 */
export function grantLiveSql(grantIdParam: string): string {
  return `exists(select 1 from ${TABLE} g where g.kind = 'Grant' and g.id = ${grantIdParam} and (g.expires_at is null or g.expires_at > now()))`;
}

/**
 * `keys`: what bearer values and client secrets are stored under (src/oidc/at-rest.ts); `caches`: the process's
 * (src/db/change-feed.ts), which hold the clients, read at every token, introspection and authorization request.
 */
export function createAdapterFactory(db: Db, keys: AtRestKeys, caches: Caches): (model: string) => Adapter {
  return (model: string) => new PostgresAdapter(db, model, keys, caches);
}

export class PostgresAdapter implements Adapter {
  readonly #db: Db;
  readonly #kind: string;
  readonly #keys: AtRestKeys | undefined;
  readonly #hashed: boolean;
  readonly #caches: Caches;

  /**
   * Grants are stored as they are; every other model needs the at-rest keys. Clients are read through `caches` and
   * dropped from them on change; without (the operator's use cases), every read goes to the table.
   */
  constructor(db: Db, kind: 'Grant');
  constructor(db: Db, kind: string, keys: AtRestKeys, caches?: Caches);
  constructor(db: Db, kind: string, keys?: AtRestKeys, caches: Caches = NO_CACHE) {
    if (!keys && kind !== 'Grant') throw new TypeError(`the ${kind} adapter needs the at-rest keys`);
    this.#db = db;
    this.#kind = kind;
    this.#keys = keys;
    this.#hashed = hasBearerId(kind);
    this.#caches = caches;
  }

  /** The stored id: the HMAC of a bearer value, a plain id (client_id, grant id) as it is. */
  #key(id: string): string {
    return this.#hashed ? storageKey(this.#keys!, id) : id;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const stored = this.#hashed
      ? sealPayload(this.#keys!, this.#kind, payload)
      : this.#kind === 'Client'
        ? sealClientMetadata(this.#keys!, payload as ClientMetadata)
        : payload;
    // No expiresIn: no expiry (null + interval is null).
    const values: UpsertValues = [
      this.#kind,
      this.#key(id),
      JSON.stringify(stored),
      payload.grantId ?? null,
      payload.uid ?? null,
      payload.userCode ? this.#key(payload.userCode) : null,
      expiresIn || null,
    ];
    const ctx = currentCtx();
    if (this.#kind !== 'Client' && holdsWrites(ctx)) return hold(this.#db, ctx, this.#kind, values[1], values);
    const pending = this.#kind === 'RefreshToken' && ctx ? pendingConsumes.get(ctx) : undefined;
    if (pending) {
      pendingConsumes.delete(ctx!);
      const { rowCount } = await queryPrepared(this.#db, 'oidc_payloads_consume_upsert', CONSUME_AND_UPSERT, [...values, pending.kind, pending.key]);
      if (rowCount !== 1) await this.#lostRace(pending.key);
      return;
    }
    await queryPrepared(this.#db, 'oidc_payloads_upsert', UPSERT, values);
    if (this.#kind === 'Client') this.#caches.changed('clients');
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (this.#kind === 'Client') {
      const stored = await findStoredClient(this.#db, this.#caches, id);
      return stored && (openClientMetadata(this.#keys!, stored) as AdapterPayload);
    }
    if (PRESENTED_TOKEN_KINDS.has(this.#kind) && !ISSUABLE_VALUE.test(id)) return undefined;
    await this.#writeHeld();
    if (this.#kind === 'Grant') {
      const read = takePrefetched(`Grant:${id}`);
      if (read) return read.row && this.#fromRow(read.row, id);
    }
    if (this.#kind === 'RefreshToken') return this.#findWithGrant(id, READS.refreshToken);
    if (this.#kind === 'AuthorizationCode') return this.#findWithGrant(id, READS.code);
    if (this.#kind === 'Interaction' && currentCtx()?.oidc?.route === 'resume') return this.#findInteractionWithAccount(id);
    return this.#findBy('id', id);
  }

  /**
   * A refresh token or a code, and its grant (and a code's session) for the Grant and Session adapters' finds later in
   * this request, with the grant's account for findAccount: one round trip instead of three or four.
   */
  async #findWithGrant(id: string, read: { name: string; text: string }): Promise<AdapterPayload | undefined> {
    // A bearer value: its key is an HMAC, which never holds a NUL (findRow's check is for plain ids).
    type Joined = Row & { grant_id: string | null; grant_payload: AdapterPayload | null; session_uid?: string | null };
    const row = (await queryPrepared<Joined & Record<string, unknown>>(this.#db, read.name, read.text, [this.#kind, this.#key(id)])).rows[0];
    if (!row) return undefined;
    const ctx = currentCtx();
    if (ctx && row.grant_id) {
      prefetch(ctx, `Grant:${row.grant_id}`, row.grant_payload ? { payload: row.grant_payload, consumed_at: null } : undefined);
      const accountId = row.grant_payload?.accountId;
      if (companion && typeof accountId === 'string') companion.use(ctx, accountId, row);
    }
    const sessionUid = row.payload.sessionUid;
    if (ctx && 'session_uid' in row && typeof sessionUid === 'string') {
      const session = row.session_uid ? { payload: row.session_payload as AdapterPayload, consumed_at: row.session_consumed_at as Date | null } : undefined;
      prefetch(ctx, `Session.uid:${sessionUid}`, session);
    }
    return this.#fromRow(row, id);
  }

  /** An interaction at the resume step, with the standing of the account its login result names (findAccount's next). */
  async #findInteractionWithAccount(id: string): Promise<AdapterPayload | undefined> {
    const read = READS.interaction;
    const row = (await queryPrepared<Row & Record<string, unknown>>(this.#db, read.name, read.text, [this.#kind, this.#key(id)])).rows[0];
    if (!row) return undefined;
    const ctx = currentCtx();
    const accountId = (row.payload.result as { login?: { accountId?: unknown } } | undefined)?.login?.accountId;
    if (ctx && companion && typeof accountId === 'string') companion.use(ctx, accountId, row);
    return this.#fromRow(row, id);
  }

  /** oidc-provider's record from a stored row; `id` is the presented id when the row was found by it. */
  #fromRow(row: Row, id: string | undefined): AdapterPayload {
    const payload = this.#hashed ? openPayload(this.#keys!, this.#kind, row.payload, id) : row.payload;
    return row.consumed_at ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    await this.#writeHeld();
    const read = takePrefetched(`${this.#kind}.uid:${uid}`);
    if (read) return read.row && this.#fromRow(read.row, undefined);
    return this.#findBy('uid', uid);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    await this.#writeHeld();
    return this.#findBy('user_code', userCode);
  }

  async consume(id: string): Promise<void> {
    await this.#writeHeld();
    const key = this.#key(id);
    const ctx = currentCtx();
    if (this.#kind === 'RefreshToken' && refreshGrantRequest(ctx)) {
      // Rotation: decided together with the successor's insert (CONSUME_AND_UPSERT), which comes next and before any
      // token is issued; if it never comes (an error first), nothing was issued from this token and it stays unspent.
      pendingConsumes.set(ctx, { kind: this.#kind, key });
      return;
    }
    const { rowCount } = await queryPrepared(this.#db, 'oidc_payloads_consume_once', CONSUME, [this.#kind, key]);
    if (rowCount === 1) return;
    await this.#lostRace(key);
  }

  /** Another request consumed (or removed) the record since oidc-provider read it unconsumed: this one is the replay. */
  async #lostRace(key: string): Promise<never> {
    const { rows } = await queryPrepared<{ grant_id: string }>(this.#db, 'oidc_payloads_revoke_grant_of', REVOKE_GRANT_OF, [this.#kind, key]);
    const ctx = currentCtx();
    for (const { grant_id } of rows) ctx?.oidc.provider.emit('grant.revoked', ctx, grant_id);
    throw reuseError(this.#kind);
  }

  /** Before a read or a conditional write in a request that holds writes: what it holds goes first. */
  async #writeHeld(): Promise<void> {
    const ctx = currentCtx();
    if (ctx && heldWrites.has(ctx)) await flushHeldWrites(ctx);
  }

  async destroy(id: string): Promise<void> {
    const ctx = currentCtx();
    if (this.#kind !== 'Client' && holdsWrites(ctx)) return hold(this.#db, ctx, this.#kind, this.#key(id));
    await this.#db(TABLE)
      .where({ kind: this.#kind, id: this.#key(id) })
      .delete();
    if (this.#kind === 'Client') this.#caches.changed('clients');
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#writeHeld();
    await this.#db(TABLE).where({ kind: this.#kind, grant_id: grantId }).delete();
  }

  async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    const row = await findRow(this.#db, this.#kind, column, column === 'uid' ? value : this.#key(value));
    return row && this.#fromRow(row, column === 'id' ? value : undefined);
  }
}

async function findRow(db: Db, kind: string, column: 'id' | 'uid' | 'user_code', value: string): Promise<Row | undefined> {
  // PostgreSQL text cannot hold NUL, so no stored id has one; a presented value with NUL is simply unknown
  // (without this check the driver's encoding error would surface as a 500). (A hashed value never has one.)
  if (value.includes('\0')) return undefined;
  const [name, text] = FINDS[column];
  return (await queryPrepared<Row>(db, name, text, [kind, value])).rows[0];
}

const FINDS = {
  id: ['oidc_payloads_find', FIND_BY_ID],
  uid: ['oidc_payloads_find_by_uid', FIND_BY_UID],
  user_code: ['oidc_payloads_find_by_user_code', FIND_BY_USER_CODE],
} as const;

/**
 * The plans (EXPLAIN ANALYZE, BUFFERS) of the reads whose cost must not grow with the number of sessions: an
 * authorization code's redemption read (with its grant and session) by its stored key, and a session by its uid.
 * (The statements number their parameters in the order they use them, so each `$n` becomes a positional `?`.)
 */
export async function explainPayloadReads(db: Db, codeKey: string, sessionUid: string): Promise<{ code: string; sessionByUid: string }> {
  const plan = async (text: string, values: string[]) =>
    (await db.raw<{ rows: { 'QUERY PLAN': string }[] }>(`explain (analyze, buffers) ${text.replace(/\$\d+/g, '?')}`, values)).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
  return {
    code: await plan(READS.code.text, ['AuthorizationCode', codeKey]),
    sessionByUid: await plan(FIND_BY_UID, ['Session', sessionUid]),
  };
}

/**
 * A client's record as stored (secret hashed or sealed, never usable): what the CLI and the provisioning API need to
 * know a client exists. Clients are read at every token, introspection and authorization request and change rarely:
 * held in `caches` in this stored form, opened for oidc-provider by the adapter on each read.
 */
export async function findStoredClient(db: Db, caches: Caches, clientId: string): Promise<ClientMetadata | undefined> {
  return caches.read('clients', clientId, async () => (await findRow(db, 'Client', 'id', clientId))?.payload as ClientMetadata | undefined);
}

/** Every client's record as stored, in client ID order (the operator's `client list`). */
export async function listStoredClients(db: Db): Promise<ClientMetadata[]> {
  const rows = await db(TABLE).where({ kind: 'Client' }).orderBy('id').select('payload');
  return rows.map((r: { payload: ClientMetadata }) => r.payload);
}

/**
 * Deletes a client's record; false when there was none. The operator's use case, in a process of its own: serving
 * processes drop their cached copy when they hear the trigger's NOTIFY (migration 202611231330).
 */
export async function deleteStoredClient(db: Db, clientId: string): Promise<boolean> {
  return (await db(TABLE).where({ kind: 'Client', id: clientId }).delete()) > 0;
}

/** What the loser of a race for a single-use record gets: the error oidc-provider gives a replay it sees on read. */
function reuseError(kind: string): Error {
  switch (kind) {
    case 'RefreshToken':
      return new errors.InvalidGrant('refresh token already used');
    case 'AuthorizationCode':
      return new errors.InvalidGrant('authorization code already consumed');
    case 'DeviceCode':
      return new errors.InvalidGrant('device code already consumed');
    case 'BackchannelAuthenticationRequest':
      return new errors.InvalidGrant('backchannel authentication request already consumed');
    case 'PushedAuthorizationRequest':
      return new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
    default:
      return new errors.InvalidGrant(`${kind} already consumed`);
  }
}

/**
 * Ends everything a VAL user holds at this server: their sessions, their grants, and every token and code issued
 * under those grants (refresh tokens stop at once; JWT access tokens of the grants are inactive at introspection,
 * src/oidc/access-tokens.ts isGrantLive). One statement; served by oidc_payloads_account_idx and the grant_id index.
 * Returns how many records of each kind went.
 */
export async function revokeAccountRecords(db: Db, accountId: string): Promise<Record<string, number>> {
  if (accountId.includes('\0')) return {};
  const { rows } = await db.raw(
    `with owned as (delete from ${TABLE} where kind in ('Session', 'Grant') and payload->>'accountId' = ? returning kind, id),
       issued as (delete from ${TABLE} where grant_id in (select id from owned where kind = 'Grant') returning kind)
     select kind, count(*)::int as n from (select kind from owned union all select kind from issued) k group by kind`,
    [accountId],
  );
  return Object.fromEntries((rows as { kind: string; n: number }[]).map((r) => [r.kind, r.n]));
}

/** Deletes expired rows in bounded batches; returns how many went. */
export async function sweepExpiredPayloads(db: Db, batch = 5000): Promise<number> {
  const res = await db.raw(`delete from ${TABLE} where ctid in (select ctid from ${TABLE} where expires_at < now() limit ?)`, [batch]);
  return res.rowCount as number;
}

// Rows written before records were stored hashed (migration 202611291000 indexes exactly these): a bearer-id record
// still carrying its plain jti, a client with a plain client_secret. Must match the migration's index predicate.
const LEGACY = `((kind not in ('Client', 'Grant') and payload->>'jti' is not null and payload->>'jti' not like 'enc:%')
  or (kind = 'Client' and payload->>'client_secret' is not null))`;

/**
 * Converts rows of the plain format to the hashed one, so tokens, codes, sessions and client secrets issued before
 * keep working. Needs IDMS_SECRET, which migrations do not have: run at start-up right after migrating and by
 * `cli migrate`. Idempotent, and safe when several instances start together (rows are claimed with skip locked).
 */
export async function convertLegacyPayloads(db: Db, keys: AtRestKeys, batch = 500): Promise<number> {
  let total = 0;
  for (;;) {
    const converted = await db.transaction(async (trx) => {
      // The planner cannot estimate the jsonb predicate and would scan the whole table at every start; the partial
      // index holds exactly the rows to convert (none, once done).
      await trx.raw('set local enable_seqscan = off');
      const { rows } = (await trx.raw(`select kind, id, payload, user_code from ${TABLE} where ${LEGACY} limit ? for update skip locked`, [batch])) as {
        rows: { kind: string; id: string; payload: AdapterPayload; user_code: string | null }[];
      };
      if (rows.length === 0) return 0;
      const changes = rows.map((r) => {
        if (r.kind === 'Client')
          return { kind: r.kind, id: r.id, new_id: r.id, payload: sealClientMetadata(keys, r.payload as ClientMetadata), user_code: r.user_code };
        return {
          kind: r.kind,
          id: r.id,
          new_id: storageKey(keys, r.id),
          payload: sealPayload(keys, r.kind, { ...r.payload, jti: r.id }),
          user_code: r.user_code === null ? null : storageKey(keys, r.user_code),
        };
      });
      await trx.raw(
        `update ${TABLE} o set id = c.new_id, payload = c.payload, user_code = c.user_code
         from jsonb_to_recordset(?::jsonb) as c(kind text, id text, new_id text, payload jsonb, user_code text)
         where o.kind = c.kind and o.id = c.id`,
        [JSON.stringify(changes)],
      );
      // Converted client records reach the serving processes' caches through the trigger's NOTIFY (migration 202611231330).
      return rows.length;
    });
    total += converted;
    if (converted < batch) return total;
  }
}
