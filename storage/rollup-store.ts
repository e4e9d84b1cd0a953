/**
 * Rollups and the late-events log, as a shard worker reads and writes them.
 *
 * Contract: opened in each shard worker thread on the same LMDB environment as the front-end's
 * Store (lmdb-js shares one environment per process across threads). Writes go through
 * transaction(): the callback runs inside the write transaction, so a read-modify-write of a
 * rollup sees every earlier write and later readers see all of it or nothing.
 *
 * Keys (resolution in ms, ids from the front-end's persisted dictionary):
 *   ['d', res, device, metric, start]  a device's window    (one device's range: a prefix scan)
 *   ['w', res, metric, start, device]  the same, by window  (all devices of a window; retention)
 *   ['f', res, metric, start, shard]   the shard's fleet merge of the window, with distinct devices
 *   ['l', shard, seq, k]               a too-late event (k: its place among the batch's late values)
 *   ['c', device, metric]              too-late events counted per device and metric
 *   ['s', metric, second, shard]       the shard's per-second fleet aggregate [count, sum, min, max]
 * Window values ('d', 'f') are binary (storage/rollup-codec.ts); the rest msgpack.
 * Idempotence: panes close in pane-number order and every coarse window remembers the last pane
 * merged into it (lastPaneNo), so a sweep replayed after a crash merges nothing twice.
 */

import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { WindowAggregateWire } from '../protocol';
import { RollupCodec, type HistogramSpec } from './rollup-codec';

export interface RollupValue extends WindowAggregateWire {
  /** the last pane merged into this window (device windows) or every pane below it was (fleet: closedBelow) */
  lastPaneNo: number;
}

export interface LateEntry {
  device: number;
  metric: number;
  ts: number;
  value: number;
  /** wall-clock ms when the worker applied (refused) it */
  at: number;
}

export interface LateCount {
  count: number;
  seq: number;
  k: number;
}

/** count, sum, min, max of a metric over one second (workers/sensor-seconds.ts) */
export type SecondAggregate = [number, number, number, number];

type Key = (string | number)[];

export class RollupStore {
  private constructor(private readonly root: RootDatabase, readonly db: Database<unknown, Key>, private readonly codec: RollupCodec | null) {}

  /** histogram: the engine's histogram settings, needed to read and write windows (not for the late log or retention) */
  static open(dataDir: string, histogram: HistogramSpec | null = null): RollupStore {
    const root = open({ path: path.join(dataDir, 'lmdb'), maxDbs: 16, overlappingSync: false });
    return new RollupStore(root, root.openDB<unknown, Key>('rollups', {}), histogram === null ? null : new RollupCodec(histogram));
  }

  private windowCodec(): RollupCodec {
    if (this.codec === null) throw new Error('RollupStore opened without histogram settings: it cannot read or write windows');
    return this.codec;
  }

  /** a stored window ('d' and 'f' keys), binary (storage/rollup-codec.ts) */
  putWindow(key: Key, value: RollupValue): void {
    void this.db.put(key, this.windowCodec().encode(value));
  }

  getWindow(key: Key): RollupValue | undefined {
    const bytes = this.db.get(key) as Uint8Array | undefined;
    return bytes === undefined ? undefined : this.windowCodec().decode(bytes);
  }

  private *decoded(range: Iterable<{ key: Key; value: unknown }>): Generator<{ key: Key; value: RollupValue }> {
    const codec = this.windowCodec();
    for (const { key, value } of range) yield { key, value: codec.decode(value as Uint8Array) };
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

  deviceWindows(res: number, device: number, metric: number, from: number, to: number): Iterable<{ key: Key; value: RollupValue }> {
    return this.decoded(this.db.getRange({ start: ['d', res, device, metric, from], end: ['d', res, device, metric, to] }));
  }

  /** every shard's fleet windows (key[4] is the shard) */
  fleetWindows(res: number, metric: number, from: number, to: number): Iterable<{ key: Key; value: RollupValue }> {
    return this.decoded(this.db.getRange({ start: ['f', res, metric, from], end: ['f', res, metric, to] }));
  }

  /** the 'w' index keys of one window (every device with a stored window there) */
  windowDevices(res: number, metric: number, start: number): Iterable<Key> {
    return this.db.getKeys({ start: ['w', res, metric, start], end: ['w', res, metric, start, Infinity] });
  }

  /** the 'w' index keys of the windows starting in [from, to) (every device with a stored window there) */
  windowDevicesIn(res: number, metric: number, from: number, to: number): Iterable<Key> {
    return this.db.getKeys({ start: ['w', res, metric, from], end: ['w', res, metric, to] });
  }

  /** start of the newest stored fleet window of the metric at res (of any shard), or null */
  newestFleetWindow(res: number, metric: number): number | null {
    for (const k of this.db.getKeys({ start: ['f', res, metric, Infinity], end: ['f', res, metric, -1], reverse: true, limit: 1 })) return k[3] as number;
    return null;
  }

  /** start of the device's newest stored window of the metric at res, or null */
  newestDeviceWindow(res: number, device: number, metric: number): number | null {
    for (const k of this.db.getKeys({ start: ['d', res, device, metric, Infinity], end: ['d', res, device, metric, -1], reverse: true, limit: 1 })) return k[4] as number;
    return null;
  }

  /** a closed second of the shard's per-second fleet aggregate (a put: replaying writes the same value) */
  putSecond(metric: number, second: number, shard: number, agg: SecondAggregate): void {
    void this.db.put(['s', metric, second, shard], agg);
  }

  /** the shard's closed seconds of a metric in [fromSec, toSec) */
  *seconds(metric: number, fromSec: number, toSec: number, shard: number): Generator<SecondAggregate> {
    for (const { key, value } of this.db.getRange({ start: ['s', metric, fromSec], end: ['s', metric, toSec] })) {
      if (key[3] === shard) yield value as SecondAggregate;
    }
  }

  /** per-second keys of a metric before beforeSec (retention), at most limit */
  secondsBefore(metric: number, beforeSec: number, limit: number): Key[] {
    return [...this.db.getKeys({ start: ['s', metric, 0], end: ['s', metric, beforeSec], limit })];
  }

  /** 'w' index entries of windows starting before `before` (retention), at most limit */
  windowsBefore(res: number, metric: number, before: number, limit: number): Key[] {
    return [...this.db.getKeys({ start: ['w', res, metric, 0], end: ['w', res, metric, before], limit })];
  }

  /** fleet windows starting before `before` (retention), at most limit */
  fleetKeysBefore(res: number, metric: number, before: number, limit: number): Key[] {
    return [...this.db.getKeys({ start: ['f', res, metric, 0], end: ['f', res, metric, before], limit })];
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
