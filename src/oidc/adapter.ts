// oidc-provider adapter over one PostgreSQL table (oidc_payloads), for every model the provider stores.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Db } from '../db/knex.ts';

const TABLE = 'oidc_payloads';

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
    const row = {
      kind: this.#kind,
      id,
      payload: JSON.stringify(payload),
      grant_id: payload.grantId ?? null,
      uid: payload.uid ?? null,
      user_code: payload.userCode ?? null,
      expires_at: expiresIn ? this.#db.raw('now() + make_interval(secs => ?)', [expiresIn]) : null,
      consumed_at: null,
    };
    await this.#db(TABLE).insert(row).onConflict(['kind', 'id']).merge();
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('id', id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('uid', uid);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#findBy('user_code', userCode);
  }

  async consume(id: string): Promise<void> {
    await this.#db(TABLE).where({ kind: this.#kind, id }).update({ consumed_at: this.#db.fn.now() });
  }

  async destroy(id: string): Promise<void> {
    await this.#db(TABLE).where({ kind: this.#kind, id }).delete();
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#db(TABLE).where({ kind: this.#kind, grant_id: grantId }).delete();
  }

  async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    // Expiry is honoured on read; the sweeper only reclaims space.
    const row = (await this.#db(TABLE)
      .select('payload', 'consumed_at')
      .where({ kind: this.#kind, [column]: value })
      .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', this.#db.fn.now()))
      .first()) as Row | undefined;
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
