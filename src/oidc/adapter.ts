// oidc-provider adapter over one PostgreSQL table (oidc_payloads), for every model the provider stores.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { cached, tableChanged } from '../db/change-feed.ts';
import type { Db } from '../db/knex.ts';
import { queryPrepared } from '../db/prepared.ts';

const TABLE = 'oidc_payloads';

// The statements of every token, code, session and interaction: prepared once per connection (src/db/prepared.ts).
const UPSERT = `insert into ${TABLE} (kind, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
  values ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::double precision), null)
  on conflict (kind, id) do update set payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
    user_code = excluded.user_code, expires_at = excluded.expires_at, consumed_at = null`;
// Expiry is honoured on read; the sweeper only reclaims space.
const FIND_BY_ID = `select payload, consumed_at from ${TABLE} where kind = $1 and id = $2 and (expires_at is null or expires_at > now())`;
const CONSUME = `update ${TABLE} set consumed_at = now() where kind = $1 and id = $2`;

type Row = { payload: AdapterPayload; consumed_at: Date | null };

export function createAdapterFactory(db: Db): (model: string) => Adapter {
  return (model: string) => new PostgresAdapter(db, model);
}

export class PostgresAdapter implements Adapter {
  readonly #db: Db;
  readonly #kind: string;

  constructor(db: Db, kind: string) {
    this.#db = db;
    this.#kind = kind;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    // No expiresIn: no expiry (null + interval is null).
    await queryPrepared(this.#db, 'oidc_payloads_upsert', UPSERT, [
      this.#kind,
      id,
      JSON.stringify(payload),
      payload.grantId ?? null,
      payload.uid ?? null,
      payload.userCode ?? null,
      expiresIn || null,
    ]);
    if (this.#kind === 'Client') tableChanged('clients');
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    // Clients are read at every token, introspection and authorization request and change rarely.
    if (this.#kind === 'Client') return cached(this.#db, 'clients', id, () => this.#findBy('id', id));
    return this.#findBy('id', id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('uid', uid);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('user_code', userCode);
  }

  async consume(id: string): Promise<void> {
    await queryPrepared(this.#db, 'oidc_payloads_consume', CONSUME, [this.#kind, id]);
  }

  async destroy(id: string): Promise<void> {
    await this.#db(TABLE).where({ kind: this.#kind, id }).delete();
    if (this.#kind === 'Client') tableChanged('clients');
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#db(TABLE).where({ kind: this.#kind, grant_id: grantId }).delete();
  }

  async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    // PostgreSQL text cannot hold NUL, so no stored id has one; a presented value with NUL is simply unknown
    // (without this check the driver's encoding error would surface as a 500).
    if (value.includes('\0')) return undefined;
    const row =
      column === 'id'
        ? (await queryPrepared<Row>(this.#db, 'oidc_payloads_find', FIND_BY_ID, [this.#kind, value])).rows[0]
        : ((await this.#db(TABLE)
            .select('payload', 'consumed_at')
            .where({ kind: this.#kind, [column]: value })
            .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', this.#db.fn.now()))
            .first()) as Row | undefined);
    if (!row) return undefined;
    return row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload;
  }
}

/** Deletes expired rows in bounded batches; returns how many went. */
export async function sweepExpiredPayloads(db: Db, batch = 5000): Promise<number> {
  const res = await db.raw(
    `delete from ${TABLE} where ctid in (select ctid from ${TABLE} where expires_at < now() limit ?)`,
    [batch],
  );
  return res.rowCount as number;
}
