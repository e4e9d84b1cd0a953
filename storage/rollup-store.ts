/**
 * Rollups and the late-events log, as a shard worker reads and writes them.
 *
 * Contract: opened in each shard worker thread on the same LMDB environment as the front-end's
 * Store (lmdb-js shares one environment per process across threads). Writes go through
 * transaction(): the callback runs inside the write transaction, so a read-modify-write of a
 * rollup sees every earlier write and later readers see all of it or nothing.
 *
 * Keys (resolution in ms, ids from the front-end's persisted dictionary):
 *   ['d', res, device, metric, start]  a device's window    (one device's range: a prefix scan);
 *                                      at the pane resolution a block of the panes of one minute
 *   ['w', res, metric, start, device]  the same, by window  (all devices of a window; retention);
 *                                      at the pane resolution its value is the block's pane bitmask
 *   ['f', res, metric, start, shard]   the shard's fleet merge of the window, with distinct devices
 *   ['b', res, metric, start, shard]   the same window's devices, a bitmap by device id
 *   ['l', shard, seq, k]               a too-late event (k: its place among the batch's late values)
 *   ['c', device, metric]              too-late events counted per device and metric
 *   ['s', metric, second, shard]       the shard's per-second fleet aggregate [count, sum, min, max]
 * Window values ('d', 'f') are binary (storage/rollup-codec.ts); the rest msgpack.
 * Idempotence: panes close in pane-number order; blocks, minute, hour and day windows are puts of
 * values derived from closed panes (a replay writes the same), and fleet windows remember the last
 * pane merged into them (lastPaneNo), so a sweep replayed after a crash merges nothing twice.
 */

import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { WindowAggregateWire } from '../protocol';
import { RollupCodec, type HistogramSpec } from './rollup-codec';
import { LMDB_DBS_MAX } from './store';

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
export type SecondAggregate = [number, number, number, number];

type Key = (string | number)[];

/**
 * How the windows are laid out: pane-resolution windows are stored in blocks, one key per device,
 * metric and block of blockMs (the first coarse resolution, 1 min by default: 6 panes of 10 s), so
 * closing a minute writes one key instead of six; the block's 'w' key holds a bitmask of the
 * panes present, so "the devices of one pane" stays exact.
 */
export interface RollupLayout {
  paneMs: number;
  blockMs: number;
  /** the engine's histogram settings, needed to read and write windows */
  histogram: HistogramSpec;
}

export class RollupStore {
  private blockBuf = new Uint8Array(4096);
  private blockLen = 0;
  private blockCount = 0;
  private readonly blockMask: Uint8Array;

  private constructor(private readonly root: RootDatabase, readonly db: Database<unknown, Key>, private readonly layout: RollupLayout | null,
    private readonly codec: RollupCodec | null) {
    this.blockMask = new Uint8Array(layout === null ? 0 : Math.ceil(layout.blockMs / layout.paneMs / 8));
  }

  /** layout: null for a handle that only deletes and reads the late log (the front-end's) */
  static open(dataDir: string, layout: RollupLayout | null = null): RollupStore {
    if (layout !== null && !(layout.blockMs >= layout.paneMs && layout.blockMs % layout.paneMs === 0)) {
      throw new RangeError(`rollup blocks of ${layout.blockMs} ms must be a multiple of the pane (${layout.paneMs} ms)`);
    }
    const root = open({ path: path.join(dataDir, 'lmdb'), maxDbs: LMDB_DBS_MAX, overlappingSync: false });
    return new RollupStore(root, root.openDB<unknown, Key>('rollups', {}), layout, layout === null ? null : new RollupCodec(layout.histogram));
  }

  private blockOf(res: number): number {
    return this.layout !== null && res === this.layout.paneMs ? this.layout.blockMs : res;
  }

  /**
   * A device's pane windows of one block: beginBlock(), addToBlock() per pane (oldest first),
   * endBlock() puts the block ['d', pane, device, metric, blockStart] and its 'w' key with the
   * panes' bitmask. Encodes into one reused buffer: no allocation per pane.
   */
  beginBlock(): void {
    this.blockLen = 4;
    this.blockCount = 0;
    this.blockMask.fill(0);
  }

  addToBlock(pane: RollupValue): void {
    const { paneMs } = this.layout!;
    const bytes = this.windowCodec().encode(pane);
    const need = this.blockLen + 4 + bytes.byteLength;
    if (need > this.blockBuf.byteLength) {
      let size = this.blockBuf.byteLength;
      while (size < need) size *= 2;
      const buf = new Uint8Array(size);
      buf.set(this.blockBuf.subarray(0, this.blockLen));
      this.blockBuf = buf;
    }
    new DataView(this.blockBuf.buffer).setUint32(this.blockLen, bytes.byteLength, true);
    this.blockBuf.set(bytes, this.blockLen + 4);
    this.blockLen = need;
    this.blockCount++;
    const bit = Math.floor(pane.start / paneMs) % (this.layout!.blockMs / paneMs);
    this.blockMask[bit >> 3] = this.blockMask[bit >> 3]! | (1 << (bit & 7));
  }

  endBlock(device: number, metric: number, blockStart: number): void {
    const { paneMs } = this.layout!;
    new DataView(this.blockBuf.buffer).setUint32(0, this.blockCount, true);
    void this.db.put(['d', paneMs, device, metric, blockStart], this.blockBuf.subarray(0, this.blockLen));
    void this.db.put(['w', paneMs, metric, blockStart, device], this.blockMask);
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

  private *decodedBlocks(range: Iterable<{ key: Key; value: unknown }>): Generator<{ key: Key; value: RollupValue }> {
    const codec = this.windowCodec();
    for (const { key, value } of range) {
      const block = value as Uint8Array;
      const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
      const n = view.getUint32(0, true);
      // decoded whole before the first yield: lmdb-js may reuse the value's memory on the next read
      const panes: RollupValue[] = [];
      let o = 4;
      for (let i = 0; i < n; i++) {
        const len = view.getUint32(o, true);
        if (o + 4 + len > block.byteLength) throw new Error(`stored pane block ${JSON.stringify(key)} is cut short`);
        panes.push(codec.decode(block.subarray(o + 4, o + 4 + len)));
        o += 4 + len;
      }
      for (const value of panes) yield { key, value };
    }
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

  /** a device's stored windows at res starting in about [from, to): callers check each window's start */
  deviceWindows(res: number, device: number, metric: number, from: number, to: number): Iterable<{ key: Key; value: RollupValue }> {
    const block = this.blockOf(res);
    const range = this.db.getRange({ start: ['d', res, device, metric, Math.floor(from / block) * block], end: ['d', res, device, metric, to] });
    return block === res ? this.decoded(range) : this.decodedBlocks(range);
  }

  /** every shard's fleet windows (key[4] is the shard) */
  fleetWindows(res: number, metric: number, from: number, to: number): Iterable<{ key: Key; value: RollupValue }> {
    return this.decoded(this.db.getRange({ start: ['f', res, metric, from], end: ['f', res, metric, to] }));
  }

  /** every device (of any shard) with a stored window at res starting in [from, to); a device may come more than once */
  *windowDevicesIn(res: number, metric: number, from: number, to: number): Generator<number> {
    const block = this.blockOf(res);
    if (block === res) {
      for (const k of this.db.getKeys({ start: ['w', res, metric, from], end: ['w', res, metric, to] })) yield k[4] as number;
      return;
    }
    for (const { key, value } of this.db.getRange({ start: ['w', res, metric, Math.floor(from / block) * block], end: ['w', res, metric, to] })) {
      const blockStart = key[3] as number;
      const mask = value as Uint8Array;
      for (let bit = 0; bit < mask.byteLength * 8; bit++) {
        const start = blockStart + bit * res;
        if ((mask[bit >> 3]! & (1 << (bit & 7))) !== 0 && start >= from && start < to) {
          yield key[4] as number;
          break;
        }
      }
    }
  }

  /** start of the newest stored fleet window of the metric at res (of any shard), or null */
  newestFleetWindow(res: number, metric: number): number | null {
    for (const k of this.db.getKeys({ start: ['f', res, metric, Infinity], end: ['f', res, metric, -1], reverse: true, limit: 1 })) return k[3] as number;
    return null;
  }

  /** start of the device's newest stored window of the metric at res, or null */
  newestDeviceWindow(res: number, device: number, metric: number): number | null {
    for (const k of this.db.getKeys({ start: ['d', res, device, metric, Infinity], end: ['d', res, device, metric, -1], reverse: true, limit: 1 })) {
      const start = k[4] as number;
      if (this.blockOf(res) === res) return start;
      let newest = start;
      for (const { value } of this.deviceWindows(res, device, metric, start, start + 1)) newest = Math.max(newest, value.start);
      return newest;
    }
    return null;
  }

  /** starts of the shard's stored fleet windows at res starting in [from, to) */
  fleetWindowStarts(res: number, metric: number, from: number, to: number, shard: number): number[] {
    const out: number[] = [];
    for (const k of this.db.getKeys({ start: ['f', res, metric, from], end: ['f', res, metric, to] })) if (k[4] === shard) out.push(k[3] as number);
    return out;
  }

  /** the shard's devices in a fleet window (a bitmap by device id; a copy), or undefined */
  fleetDeviceBits(res: number, metric: number, start: number, shard: number): Uint8Array | undefined {
    const v = this.db.get(['b', res, metric, start, shard]) as Uint8Array | undefined;
    return v === undefined ? undefined : Uint8Array.from(v);
  }

  putFleetDeviceBits(res: number, metric: number, start: number, shard: number, bits: Uint8Array): void {
    void this.db.put(['b', res, metric, start, shard], bits);
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

  /**
   * 'w' index entries of windows starting before `before` (retention), at most limit; a pane
   * block goes once all of it is before `before`, i.e. its start is before before - (block - res).
   */
  windowsBefore(res: number, metric: number, before: number, limit: number): Key[] {
    const end = before - (this.blockOf(res) - res);
    return [...this.db.getKeys({ start: ['w', res, metric, 0], end: ['w', res, metric, end], limit })];
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
