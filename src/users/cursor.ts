// Opaque keyset cursors for admin listings (`user list`, `service list`): the last ID of a page, base64url-encoded,
// so a cursor is one shell-safe word and a caller never builds one by hand.
import { InvalidIdError, parseId } from './ids.ts';

export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor: pass the value a previous page printed');
  }
}

export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

/** The ID a cursor continues after; only cursors encodeCursor could have made are accepted. */
export function decodeCursor(cursor: string): string {
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) throw new InvalidCursorError();
  try {
    const id = parseId('cursor', Buffer.from(cursor, 'base64url').toString('utf8'));
    if (encodeCursor(id) !== cursor) throw new InvalidCursorError();
    return id;
  } catch (err) {
    if (err instanceof InvalidIdError) throw new InvalidCursorError();
    throw err;
  }
}

/** `--limit`: whole pages of 1 to 10,000 entries. */
export const MAX_PAGE = 10_000;

export type Page<T> = { items: T[]; nextCursor?: string };

/** Reads limit + 1 entries to know whether a next page exists without a second query. */
export async function readPage<T>(limit: number, read: (limit: number) => Promise<T[]>, idOf: (item: T) => string): Promise<Page<T>> {
  const rows = await read(limit + 1);
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, nextCursor: encodeCursor(idOf(items.at(-1)!)) };
}
