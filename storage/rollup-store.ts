/**
 * The late-events log in LMDB, as the shard workers write it (workers/late-log.ts) and GET
 * /v1/late reads it. (The name is the old model's: the per-window rollups it also held are gone,
 * replaced by sealed blocks, storage/block-store.ts.)
 *
 * Contract: opened in each shard worker thread and in the front-end on the same LMDB environment
 * (lmdb-js shares one environment per process across threads). Writes go through transaction():
 * the callback runs inside the write transaction, so a read-modify-write of a count sees every
 * earlier write and later readers see all of it or nothing.
 *
 * Keys (ids from the front-end's persisted dictionary), msgpack values:
 *   ['l', shard, seq, k]   a late event (k: its place among the batch's late values): beyond the
 *                          late horizon, or a correction of a final window (`correction: true`)
 *   ['c', device, metric]  late events counted per device and metric (refused, and corrections)
 * Idempotence: an entry is keyed by its batch seq and place, so a replay finds it written.
 */

import type { Database, RootDatabase } from 'lmdb';
import { openEnvironment } from './store';

export interface LateEntry {
  device: number;
  metric: number;
  ts: number;
  value: number;
  /** wall-clock ms when the worker applied (refused) it */
  at: number;
  /** kept as a correction of a final window (absent: refused, beyond the late horizon) */
  correction?: boolean;
}

export interface LateCount {
  /** refused: beyond the late horizon */
  count: number;
  /** kept as corrections (absent in counts written before corrections existed) */
  corrections?: number;
  seq: number;
  k: number;
}

/** count, sum, min, max of a metric over one second (workers/sensor-seconds.ts) */
type Key = (string | number)[];

export class RollupStore {
  private constructor(private readonly root: RootDatabase, readonly db: Database<unknown, Key>) {}

  static open(dataDir: string): RollupStore {
    const root = openEnvironment(dataDir);
    return new RollupStore(root, root.openDB<unknown, Key>('rollups', {}));
  }

  transaction<T>(fn: () => T): Promise<T> {
    return this.db.transaction(fn);
  }

  get(key: Key): unknown {
    return this.db.get(key);
  }

  put(key: Key, value: unknown): void {
    void this.db.put(key, value);
  }

  remove(key: Key): void {
    void this.db.remove(key);
  }

  /** late counts of one device (all when device is null), at most limit */
  lateCounts(device: number | null, limit: number): Iterable<{ key: Key; value: unknown }> {
    return device === null
      ? this.db.getRange({ start: ['c', -1], end: ['c', Infinity], limit })
      : this.db.getRange({ start: ['c', device, -1], end: ['c', device, Infinity], limit });
  }

  lateEntries(shard: number, limit: number, reverse: boolean): Iterable<{ key: Key; value: unknown }> {
    return reverse
      ? this.db.getRange({ start: ['l', shard, Infinity], end: ['l', shard, -1], reverse: true, limit })
      : this.db.getRange({ start: ['l', shard, -1], end: ['l', shard, Infinity], limit });
  }

  lateCount(shard: number): number {
    return this.db.getKeysCount({ start: ['l', shard, -1], end: ['l', shard, Infinity] });
  }

  /** Resolves when every write issued so far is committed. */
  flushed(): Promise<unknown> {
    return this.db.committed as Promise<unknown>;
  }

  close(): Promise<void> {
    return this.root.close();
  }
}
