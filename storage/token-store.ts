/**
 * API tokens (issue #13): who may call Sluice, with which role, stored hashed in the data dir's
 * LMDB environment (database `tokens`), so they survive restarts and kill -9.
 *
 * A token is `sl_<id>_<secret>`: the id (12 hex digits) names its record, the secret (32 random
 * bytes, base64url) is never stored, only its SHA-256. A record holds the role, the device of a
 * device token, a description, when it was made and, once revoked, when. Revoked records stay
 * (listed as revoked) so an id is never reused. The front-end thread is the only writer.
 */

import crypto from 'node:crypto';
import type { Database, RootDatabase } from 'lmdb';

export const ROLES = ['device', 'write', 'read', 'admin'] as const;
export type Role = typeof ROLES[number];

export interface TokenRecord {
  id: string;
  role: Role;
  /** the one device a device token may write */
  deviceId?: string;
  description?: string;
  /** epoch ms */
  createdAt: number;
  revokedAt?: number;
  /** SHA-256 of the secret, hex */
  hash: string;
}

/** What the API shows of a token: the record without its hash. */
export type TokenInfo = Omit<TokenRecord, 'hash'>;

const TOKEN_RE = /^sl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export function hashSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret).digest('hex');
}

/** The id and secret of a token's text, or null when it is not a Sluice token. */
export function parseToken(token: string): { id: string; secret: string } | null {
  const m = TOKEN_RE.exec(token);
  return m === null ? null : { id: m[1], secret: m[2] };
}

export class TokenStore {
  private constructor(private readonly db: Database<TokenRecord, string>) {}

  static on(root: RootDatabase): TokenStore {
    return new TokenStore(root.openDB<TokenRecord, string>('tokens', { encoding: 'msgpack' }));
  }

  /** Makes a token; resolves with its text (shown once) and record once durable. */
  async create(role: Role, deviceId: string | undefined, description: string | undefined, now = Date.now()): Promise<{ token: string; record: TokenRecord }> {
    let id: string;
    do id = crypto.randomBytes(6).toString('hex'); while (this.db.get(id) !== undefined);
    const secret = crypto.randomBytes(32).toString('base64url');
    const record: TokenRecord = { id, role, createdAt: now, hash: hashSecret(secret) };
    if (deviceId !== undefined) record.deviceId = deviceId;
    if (description !== undefined) record.description = description;
    await this.db.put(id, record);
    return { token: `sl_${id}_${secret}`, record };
  }

  /** Stores a token made elsewhere (the admin token file) under its own id; resolves once durable. */
  async adopt(token: string, role: Role, description: string, now = Date.now()): Promise<TokenRecord> {
    const p = parseToken(token);
    if (p === null) throw new Error('not a Sluice token (sl_<12 hex>_<43 base64url>)');
    const record: TokenRecord = { id: p.id, role, description, createdAt: now, hash: hashSecret(p.secret) };
    await this.db.put(p.id, record);
    return record;
  }

  get(id: string): TokenRecord | undefined {
    return this.db.get(id);
  }

  /** The record a token's text names when its secret matches, revoked or not; else undefined. */
  verify(token: string): TokenRecord | undefined {
    const p = parseToken(token);
    if (p === null) return undefined;
    const r = this.db.get(p.id);
    if (r === undefined) return undefined;
    const want = Buffer.from(r.hash, 'hex');
    const got = Buffer.from(hashSecret(p.secret), 'hex');
    return want.length === got.length && crypto.timingSafeEqual(want, got) ? r : undefined;
  }

  /** Marks a token revoked; false when there is no such id. Resolves once durable. */
  async revoke(id: string, now = Date.now()): Promise<boolean> {
    const r = this.db.get(id);
    if (r === undefined) return false;
    if (r.revokedAt === undefined) await this.db.put(id, { ...r, revokedAt: now });
    return true;
  }

  list(): TokenInfo[] {
    const out: TokenInfo[] = [];
    for (const { value } of this.db.getRange({})) {
      const { hash: _, ...info } = value;
      out.push(info);
    }
    return out;
  }
}
