/**
 * SensorSeconds: a shard's per-metric, per-second fleet aggregate (count, sum, min, max over all
 * of the shard's devices), for range queries at one-second precision (POST /compute/metrics: a
 * sensor is a metric over every device, and its ranges are inclusive seconds, finer than a pane).
 *
 * Runs in the shard worker beside the PaneStore and follows the same event time: a second is
 * open until the watermark closes the pane that holds it; then it is written to LMDB as
 * ['s', metric, second, shard] -> [count, sum, min, max] (RollupStore.putSecond) and leaves
 * memory. Open seconds live in a ring per metric (SECONDS_RING slots, indexed by second & mask,
 * tagged with their second): the hot path is an index computation and four typed-array updates.
 * A second whose slot is held by another open second (event times spread wider than the ring,
 * e.g. a device far ahead in time within one record) goes to a Map instead: rare, never lost.
 */

import type { SecondAggregate } from '../storage';

/** open seconds per metric: a power of two above the default lateness (5 min) plus a pane */
const SECONDS_RING = 1024;
const MASK = SECONDS_RING - 1;

export interface SensorSecondsState {
  metrics: number[];
  /** open seconds: metric, second, count, sum, min, max (flattened, six numbers each) */
  open: Float64Array;
}

export class SensorSeconds {
  private rowOf = new Int32Array(16).fill(-1);
  private readonly rowMetric: number[] = [];
  private tag: Float64Array = new Float64Array(0);
  private cnt: Float64Array = new Float64Array(0);
  private sum: Float64Array = new Float64Array(0);
  private min: Float64Array = new Float64Array(0);
  private max: Float64Array = new Float64Array(0);
  /** open seconds that found their ring slot taken: key row * 2^32 + second */
  private readonly overflow = new Map<number, SecondAggregate>();

  /** hot path: one value of a metric at event time ts (ms) */
  add(metric: number, ts: number, value: number): void {
    let row = metric < this.rowOf.length ? this.rowOf[metric]! : -1;
    if (row < 0) row = this.addRow(metric);
    const sec = Math.floor(ts / 1000);
    const i = row * SECONDS_RING + (sec & MASK);
    const c = this.cnt[i]!;
    if (c === 0) {
      // an empty slot (closed seconds leave stale values behind): this second takes it
      this.tag[i] = sec;
      this.cnt[i] = 1;
      this.sum[i] = value;
      this.min[i] = value;
      this.max[i] = value;
      return;
    }
    if (this.tag[i] !== sec) {
      this.addOverflow(row, sec, value);
      return;
    }
    if (value < this.min[i]!) this.min[i] = value;
    if (value > this.max[i]!) this.max[i] = value;
    this.cnt[i] = c + 1;
    this.sum[i] = this.sum[i]! + value;
  }

  private addRow(metric: number): number {
    if (metric >= this.rowOf.length) {
      let n = this.rowOf.length;
      while (n <= metric) n *= 2;
      const rowOf = new Int32Array(n).fill(-1);
      rowOf.set(this.rowOf);
      this.rowOf = rowOf;
    }
    const row = this.rowMetric.length;
    this.rowMetric.push(metric);
    this.rowOf[metric] = row;
    const size = (row + 1) * SECONDS_RING;
    this.tag = grow(this.tag, size);
    this.cnt = grow(this.cnt, size);
    this.sum = grow(this.sum, size);
    this.min = grow(this.min, size);
    this.max = grow(this.max, size);
    return row;
  }

  private addOverflow(row: number, sec: number, value: number): void {
    const key = row * 2 ** 32 + sec;
    const a = this.overflow.get(key);
    if (a === undefined) this.overflow.set(key, [1, value, value, value]);
    else {
      a[0]++;
      a[1] += value;
      if (value < a[2]) a[2] = value;
      if (value > a[3]) a[3] = value;
    }
  }

  /**
   * Closes every open second that ends at or before beforeMs: returns them (metric, second,
   * aggregate) for the caller to write, and forgets them.
   */
  closeBefore(beforeMs: number): { metric: number; second: number; agg: SecondAggregate }[] {
    const out: { metric: number; second: number; agg: SecondAggregate }[] = [];
    const limit = Math.floor(beforeMs / 1000);
    for (let row = 0; row < this.rowMetric.length; row++) {
      const metric = this.rowMetric[row]!;
      for (let i = row * SECONDS_RING, end = i + SECONDS_RING; i < end; i++) {
        if (this.cnt[i] === 0 || this.tag[i]! >= limit) continue;
        out.push({ metric, second: this.tag[i]!, agg: [this.cnt[i]!, this.sum[i]!, this.min[i]!, this.max[i]!] });
        this.cnt[i] = 0;
      }
    }
    for (const [key, agg] of this.overflow) {
      const second = key % 2 ** 32;
      if (second >= limit) continue;
      out.push({ metric: this.rowMetric[Math.floor(key / 2 ** 32)]!, second, agg });
      this.overflow.delete(key);
    }
    // the same second may have been both in its slot and in the overflow: merged by the writer
    return out;
  }

  /** The open seconds of a metric in [fromSec, toSec), merged into `into`. */
  mergeOpen(metric: number, fromSec: number, toSec: number, into: SecondAggregate): void {
    const row = metric < this.rowOf.length ? this.rowOf[metric]! : -1;
    if (row < 0) return;
    for (let i = row * SECONDS_RING, end = i + SECONDS_RING; i < end; i++) {
      const s = this.tag[i]!;
      if (this.cnt[i] !== 0 && s >= fromSec && s < toSec) mergeSecond(into, [this.cnt[i]!, this.sum[i]!, this.min[i]!, this.max[i]!]);
    }
    for (const [key, agg] of this.overflow) {
      const s = key % 2 ** 32;
      if (Math.floor(key / 2 ** 32) === row && s >= fromSec && s < toSec) mergeSecond(into, agg);
    }
  }

  snapshot(): SensorSecondsState {
    const open: number[] = [];
    for (let row = 0; row < this.rowMetric.length; row++) {
      for (let i = row * SECONDS_RING, end = i + SECONDS_RING; i < end; i++) {
        if (this.cnt[i] !== 0) open.push(this.rowMetric[row]!, this.tag[i]!, this.cnt[i]!, this.sum[i]!, this.min[i]!, this.max[i]!);
      }
    }
    for (const [key, a] of this.overflow) open.push(this.rowMetric[Math.floor(key / 2 ** 32)]!, key % 2 ** 32, a[0], a[1], a[2], a[3]);
    return { metrics: [...this.rowMetric], open: Float64Array.from(open) };
  }

  /** Restores a snapshot into this (empty) instance; throws on an inconsistent one. */
  restore(state: SensorSecondsState): void {
    if (this.rowMetric.length !== 0) throw new Error('SensorSeconds.restore: not empty');
    for (const m of state.metrics) this.addRow(m);
    const o = state.open;
    if (o.length % 6 !== 0) throw new Error(`sensor seconds snapshot: ${o.length} numbers, not a multiple of 6`);
    for (let k = 0; k < o.length; k += 6) {
      const metric = o[k]!;
      const row = metric < this.rowOf.length ? this.rowOf[metric]! : -1;
      if (row < 0 || !(o[k + 2]! >= 1)) throw new Error(`sensor seconds snapshot: entry ${k / 6} (metric ${metric}, count ${o[k + 2]}) is inconsistent`);
      const sec = o[k + 1]!;
      const i = row * SECONDS_RING + (sec & MASK);
      if (this.cnt[i] === 0) {
        this.tag[i] = sec;
        this.cnt[i] = o[k + 2]!;
        this.sum[i] = o[k + 3]!;
        this.min[i] = o[k + 4]!;
        this.max[i] = o[k + 5]!;
      } else {
        this.overflow.set(row * 2 ** 32 + sec, [o[k + 2]!, o[k + 3]!, o[k + 4]!, o[k + 5]!]);
      }
    }
  }
}

/** merges b into a (count, sum, min, max); a may be empty (count 0) */
export function mergeSecond(a: SecondAggregate, b: SecondAggregate): void {
  if (b[0] === 0) return;
  if (a[0] === 0 || b[2] < a[2]) a[2] = b[2];
  if (a[0] === 0 || b[3] > a[3]) a[3] = b[3];
  a[0] += b[0];
  a[1] += b[1];
}

function grow(a: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a);
  return b;
}
