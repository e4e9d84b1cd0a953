/**
 * Sealed blocks in LMDB, time-major: the one owner of their keys (docs/state-and-storage.md).
 *
 * One LMDB database per (shard, resolution), named `blocks.<shard>.<resolution ms>`, keyed
 * [start, chunk]: the window's start in epoch ms, then the chunk of the shard's series it holds
 * (a slice's block is split into chunks so that no one value grows without bound). Within one
 * database a shard seals its windows in time order, so every new key is the greatest: it is put
 * with `append` (LMDB's MDB_APPEND: the key goes at the B-tree's right edge and full pages are
 * not split in two). A key at or below the newest (a window sealed again while the WAL is
 * replayed after a crash) is a plain put of the same bytes: replays are idempotent.
 *
 * Who calls it: the shard worker that owns the shard writes and reads its own databases; the
 * front-end reads any of them for queries and deletes ranges for retention. lmdb-js shares one
 * environment per process across threads; every database here is opened on first use.
 *
 * Open a shard's database with prepare() before any write of the thread: opening a database that
 * does not exist yet takes LMDB's write lock synchronously, and if an async lmdb-js transaction of
 * the same thread holds that lock while it waits for its callback to run on this thread, neither
 * can go on (seen: a shard worker hung after a restart, opening its block database on its first
 * seal while its late-log transaction was waiting).
 *
 * Failure policy: a put or delete that fails rejects its promise; the caller (sealing, retention)
 * decides (retry or fail the shard). Nothing here counts a failure and carries on.
 */

import type { Database, RootDatabase } from 'lmdb';
import { openEnvironment } from './store';

/** [start, chunk] for a sealed slice's chunks and summary; [start, DELTA_CHUNK, seq, k] for its corrections */
export type BlockKey = [number, number] | [number, number, number, number];

/**
 * Corrections of a sealed slice (readings that came after it was sealed, within the late horizon)
 * are delta blocks under [start, DELTA_CHUNK, seq, k]: the batch seq and the k-th record of that
 * batch that held corrections, so a replay writes the same keys. They sort after the slice's
 * chunks and before its summary (storage/slice-summary.ts SUMMARY_CHUNK = DELTA_CHUNK + 1).
 */
export const DELTA_CHUNK = 0xfffffffe;

// lmdb-js's async put takes PutOptions (write.js reads `append` into MDB_APPEND); its typings
// declare them only for putSync
type PutWithOptions = (this: Database<Buffer, BlockKey>, key: BlockKey, value: Buffer, options: { append: boolean }) => Promise<boolean>;
const putAppend = (function put(this: Database<Buffer, BlockKey>, key: BlockKey, value: Buffer, options: { append: boolean }): Promise<boolean> {
  return (this.put as unknown as PutWithOptions).call(this, key, value, options);
});

export interface StoredBlock {
  start: number;
  chunk: number;
  bytes: Uint8Array;
}


export class BlockStore {
  private readonly dbs = new Map<string, Database<Buffer, BlockKey>>();
  /** per database, the greatest key written or found ([start, chunk]) */
  private readonly newest = new Map<string, BlockKey | null>();
  readonly counters = { appended: 0, rewritten: 0, dropped: 0 };

  private constructor(private readonly root: RootDatabase) {}

  static open(dataDir: string): BlockStore {
    return new BlockStore(openEnvironment(dataDir));
  }

  /** Opens (creating) the database of a shard and resolution now; see the header for why. */
  prepare(shard: number, resolutionMs: number): void {
    this.db(shard, resolutionMs);
  }

  private db(shard: number, resolutionMs: number): Database<Buffer, BlockKey> {
    const name = `blocks.${shard}.${resolutionMs}`;
    let db = this.dbs.get(name);
    if (db === undefined) {
      db = this.root.openDB<Buffer, BlockKey>(name, { encoding: 'binary' });
      this.dbs.set(name, db);
      let last: BlockKey | null = null;
      for (const key of db.getKeys({ reverse: true, limit: 1 })) last = key as BlockKey;
      this.newest.set(name, last);
    }
    return db;
  }

  /**
   * Writes the block of a window (start) and chunk; resolves once committed. Same-turn puts share
   * one transaction (lmdb-js batches them). lmdb-js reads `bytes` when the batch commits, not
   * when this is called: the caller must not change them until the promise resolves.
   */
  appendBlock(shard: number, resolutionMs: number, start: number, chunk: number, bytes: Uint8Array): Promise<boolean> {
    const db = this.db(shard, resolutionMs);
    const name = `blocks.${shard}.${resolutionMs}`;
    const last = this.newest.get(name) ?? null;
    const key: BlockKey = [start, chunk];
    if (last === null || start > last[0] || (start === last[0] && chunk > last[1]!)) {
      this.newest.set(name, key);
      this.counters.appended++;
      // MDB_APPEND refuses (resolves false) a key that is not the greatest: a broken invariant
      return putAppend.call(db, key, bytes as Buffer, { append: true }).then((ok) => {
        if (!ok) throw new Error(`BUG: block ${name} [${start}, ${chunk}] is not after the newest key`);
        return ok;
      });
    }
    this.counters.rewritten++;
    return db.put(key, bytes as Buffer);
  }

  /** One block, or undefined. The bytes are a copy (valid after the call). */
  block(shard: number, resolutionMs: number, start: number, chunk: number): Uint8Array | undefined {
    return this.db(shard, resolutionMs).get([start, chunk]);
  }

  /**
   * One block without a copy (lmdb-js getBinaryFast), or undefined: the bytes are valid only until
   * the next read of this environment on this thread. A device query reads one series out of a
   * ~110 KB chunk per slice; copying 60 of them for an hour was much of its time and garbage.
   */
  blockView(shard: number, resolutionMs: number, start: number, chunk: number): Uint8Array | undefined {
    const v = this.db(shard, resolutionMs).getBinaryFast([start, chunk]);
    // the Buffer's length is the value's, its byteLength the shared buffer's: a plain view of it
    return v === undefined ? undefined : new Uint8Array(v.buffer, v.byteOffset, v.length);
  }

  /** The blocks of the windows that start in [from, to), in key order (chunks of one window together). */
  *blocks(shard: number, resolutionMs: number, from: number, to: number): Generator<StoredBlock> {
    for (const { key, value } of this.db(shard, resolutionMs).getRange({ start: [from, 0], end: [to, 0] })) {
      const [start, chunk] = key as BlockKey;
      if (chunk === DELTA_CHUNK) continue; // corrections: deltas()
      yield { start, chunk, bytes: value };
    }
  }

  /** Writes a delta block (a correction of a sealed slice); a replay rewrites the same key. Bytes as appendBlock. */
  putDelta(shard: number, resolutionMs: number, start: number, seq: number, k: number, bytes: Uint8Array): Promise<boolean> {
    const db = this.db(shard, resolutionMs);
    const name = `blocks.${shard}.${resolutionMs}`;
    // a slice that only has corrections may be the newest stored (queries look as far as it)
    const last = this.newest.get(name) ?? null;
    if (last === null || start > last[0]) this.newest.set(name, [start, DELTA_CHUNK]);
    this.counters.rewritten++;
    return db.put([start, DELTA_CHUNK, seq, k], bytes as Buffer);
  }

  /** The delta blocks of one window, in the order they were written. */
  deltas(shard: number, resolutionMs: number, start: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const { value } of this.db(shard, resolutionMs).getRange({ start: [start, DELTA_CHUNK], end: [start, DELTA_CHUNK + 1] })) out.push(value);
    return out;
  }

  /** Start of the first window in [from, to) with a block, summary or delta stored, or null: one key read. */
  firstStart(shard: number, resolutionMs: number, from: number, to: number): number | null {
    for (const key of this.db(shard, resolutionMs).getKeys({ start: [from, 0], end: [to, 0], limit: 1 })) return (key as BlockKey)[0];
    return null;
  }

  /** Start of the newest window stored, or null. */
  newestStart(shard: number, resolutionMs: number): number | null {
    this.db(shard, resolutionMs);
    return this.newest.get(`blocks.${shard}.${resolutionMs}`)?.[0] ?? null;
  }

  /**
   * Deletes every block of the windows that start before `before`, in one transaction: retention
   * drops a whole range (whole blocks), never a window's pieces. Resolves with the count deleted.
   */
  async dropBefore(shard: number, resolutionMs: number, before: number): Promise<number> {
    const db = this.db(shard, resolutionMs);
    let n = 0;
    await db.transaction(() => {
      for (const key of db.getKeys({ end: [before, 0] })) {
        db.removeSync(key as BlockKey);
        n++;
      }
    });
    this.counters.dropped += n;
    return n;
  }

  close(): Promise<void> {
    return this.root.close();
  }
}
