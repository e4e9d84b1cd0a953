/**
 * Operations on WindowAggregateWire, the mergeable form in which window aggregates cross threads.
 *
 * Pure: no I/O, no clock; imports only npm packages and protocol/messages.ts. Runs on any thread:
 * shard workers merge panes into coarser windows with it, the engine merges the shards' answers.
 *
 * Contract:
 * - An aggregate with count 0 is empty: its min, max, last and lastTs are 0 and mean nothing.
 *   Everything is plain finite numbers, so the wire survives structured clone, msgpack and JSON.
 * - mergeAggregate(into, from) mutates and returns `into`. count, sum, min, max, histogram, under,
 *   over are exact, and the merge is associative and commutative on them (sum up to floating-point
 *   rounding order). start/end widen to cover both. last: the greater lastTs wins; on equal lastTs
 *   the greater value wins (arrival order is unknown across panes and shards; this keeps the merge
 *   commutative). devices add up: exact when the parts hold disjoint devices, as shards do.
 * - The t-digest is carried as centroid lists (means[i], weights[i]). Concatenating two lists is an
 *   exact merge of the two digests; when the list grows past `centroidsMax` it is compressed
 *   through the `tdigest` package (push_centroid in shuffled order, compress, export). Compressing
 *   on every merge instead would cost a full digest rebuild per pane merged.
 * - Quantiles are computed on the centroid list with the same continuous interpolation as
 *   `tdigest`'s percentile() (between count-weighted centroid mid-ranks), clamped to the exact
 *   [min, max]; q <= 0 answers min and q >= 1 answers max exactly.
 */

import { TDigest } from 'tdigest';
import type { WindowAggregateWire } from './messages';

/** above this many centroids a merged aggregate is compressed (a fresh pane digest holds ~400) */
export const CENTROIDS_MAX_DEFAULT = 1024;

export function emptyAggregate(start: number, end: number, divisions: number): WindowAggregateWire {
  if (!(Number.isInteger(divisions) && divisions >= 1)) throw new RangeError(`emptyAggregate: divisions must be a positive integer: ${divisions}`);
  return {
    start,
    end,
    count: 0,
    sum: 0,
    min: 0,
    max: 0,
    last: 0,
    lastTs: 0,
    histogram: new Array<number>(divisions).fill(0),
    under: 0,
    over: 0,
    means: [],
    weights: [],
  };
}

/**
 * Merges the exact scalar fields of one part (count, sum, min, max, last/lastTs) into `into`.
 * Exported so a worker can merge its own pane storage without building a wire object per pane.
 */
export function mergeExactFields(
  into: WindowAggregateWire,
  count: number,
  sum: number,
  min: number,
  max: number,
  last: number,
  lastTs: number,
): void {
  if (count === 0) return;
  if (into.count === 0) {
    into.min = min;
    into.max = max;
    into.last = last;
    into.lastTs = lastTs;
  } else {
    if (min < into.min) into.min = min;
    if (max > into.max) into.max = max;
    if (lastTs > into.lastTs || (lastTs === into.lastTs && last > into.last)) {
      into.last = last;
      into.lastTs = lastTs;
    }
  }
  into.count += count;
  into.sum += sum;
}

/** appends centroids and compresses when the list exceeds centroidsMax */
export function appendCentroids(
  into: WindowAggregateWire,
  means: readonly number[],
  weights: readonly number[],
  centroidsMax = CENTROIDS_MAX_DEFAULT,
): void {
  if (means.length !== weights.length) throw new RangeError(`appendCentroids: ${means.length} means but ${weights.length} weights`);
  for (let i = 0; i < means.length; i++) {
    into.means.push(means[i]!);
    into.weights.push(weights[i]!);
  }
  if (into.means.length > centroidsMax) compressAggregate(into);
}

export function mergeAggregate(
  into: WindowAggregateWire,
  from: WindowAggregateWire,
  centroidsMax = CENTROIDS_MAX_DEFAULT,
): WindowAggregateWire {
  if (into.histogram.length !== from.histogram.length) {
    throw new RangeError(`mergeAggregate: histogram divisions differ (${into.histogram.length} vs ${from.histogram.length})`);
  }
  if (from.start < into.start) into.start = from.start;
  if (from.end > into.end) into.end = from.end;
  if (from.devices !== undefined) into.devices = (into.devices ?? 0) + from.devices;
  if (from.count === 0) return into;
  mergeExactFields(into, from.count, from.sum, from.min, from.max, from.last, from.lastTs);
  const h = into.histogram;
  const fh = from.histogram;
  for (let i = 0; i < h.length; i++) h[i] = h[i]! + fh[i]!;
  into.under += from.under;
  into.over += from.over;
  appendCentroids(into, from.means, from.weights, centroidsMax);
  return into;
}

/** rebuilds the centroid list through a TDigest (push_centroid + compress) */
export function compressAggregate(agg: WindowAggregateWire): void {
  const n = agg.means.length;
  const centroids = new Array<{ mean: number; n: number }>(n);
  for (let i = 0; i < n; i++) centroids[i] = { mean: agg.means[i]!, n: agg.weights[i]! };
  // Sorted input is the t-digest's worst case (no merging); concatenated pane lists are runs of
  // sorted centroids, so shuffle before pushing, as TDigest.compress() itself does.
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const c = centroids[i]!;
    centroids[i] = centroids[j]!;
    centroids[j] = c;
  }
  const digest = new TDigest();
  digest.push_centroid(centroids);
  digest.compress();
  const out = digest.toArray();
  agg.means = out.map((c) => c.mean);
  agg.weights = out.map((c) => c.n);
}

/** estimates the q-quantile (0..1) of an aggregate; null when it is empty */
export function quantileOf(agg: WindowAggregateWire, q: number): number | null {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantileOf: quantile must be within [0, 1]: ${q}`);
  if (agg.count === 0) return null;
  if (q === 0) return agg.min;
  if (q >= 1) return agg.max;
  const n = agg.means.length;
  if (n === 0) return null;
  const order = sortedCentroidOrder(agg);
  return quantileSorted(agg, order, q);
}

/**
 * Quantiles keyed as the query wrote them: a string key is kept verbatim ("0.50" stays "0.50"),
 * a number key is String(q). Every value is null when the aggregate is empty.
 */
export function quantilesOf(agg: WindowAggregateWire, qs: readonly (number | string)[]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const order = agg.count > 0 && agg.means.length > 0 ? sortedCentroidOrder(agg) : null;
  for (const key of qs) {
    const q = typeof key === 'number' ? key : Number(key);
    if (!Number.isFinite(q) || q < 0 || q > 1) throw new RangeError(`quantilesOf: quantile must be within [0, 1]: ${String(key)}`);
    let value: number | null;
    if (agg.count === 0) value = null;
    else if (q === 0) value = agg.min;
    else if (q === 1) value = agg.max;
    else value = order === null ? null : quantileSorted(agg, order, q);
    out[String(key)] = value;
  }
  return out;
}

export interface WindowJson {
  start: number;
  end: number;
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  last: number | null;
  histogram: { min: number; max: number; divisions: number[]; under: number; over: number };
  quantiles: Record<string, number | null>;
  devices?: number;
}

/** the public JSON form of one window (histogram min/max describe the divisions' range) */
export function toWindowJson(
  agg: WindowAggregateWire,
  qs: readonly (number | string)[],
  histogramMin: number,
  histogramMax: number,
): WindowJson {
  const empty = agg.count === 0;
  const out: WindowJson = {
    start: agg.start,
    end: agg.end,
    count: agg.count,
    sum: agg.sum,
    min: empty ? null : agg.min,
    max: empty ? null : agg.max,
    mean: empty ? null : agg.sum / agg.count,
    last: empty ? null : agg.last,
    histogram: { min: histogramMin, max: histogramMax, divisions: agg.histogram.slice(), under: agg.under, over: agg.over },
    quantiles: quantilesOf(agg, qs),
  };
  if (agg.devices !== undefined) out.devices = agg.devices;
  return out;
}

function sortedCentroidOrder(agg: WindowAggregateWire): Uint32Array {
  const order = new Uint32Array(agg.means.length);
  let sorted = true;
  for (let i = 0; i < order.length; i++) {
    order[i] = i;
    if (i > 0 && agg.means[i]! < agg.means[i - 1]!) sorted = false;
  }
  if (!sorted) {
    const means = agg.means;
    order.sort((a, b) => means[a]! - means[b]!);
  }
  return order;
}

/** tdigest's continuous percentile: interpolate between the mid-ranks (cumn + n/2) of neighbours */
function quantileSorted(agg: WindowAggregateWire, order: Uint32Array, q: number): number {
  const means = agg.means;
  const weights = agg.weights;
  let total = 0;
  for (let i = 0; i < order.length; i++) total += weights[order[i]!]!;
  const h = total * q;
  let cum = 0;
  let lowerMean = NaN;
  let lowerMid = NaN;
  let result = NaN;
  for (let i = 0; i < order.length; i++) {
    const k = order[i]!;
    const mid = cum + weights[k]! / 2;
    if (mid > h) {
      // first centroid whose mid-rank exceeds h: interpolate from the previous one, if any
      result = Number.isNaN(lowerMid) ? means[k]! : lowerMean + ((h - lowerMid) * (means[k]! - lowerMean)) / (mid - lowerMid);
      break;
    }
    lowerMean = means[k]!;
    lowerMid = mid;
    cum += weights[k]!;
  }
  if (Number.isNaN(result)) result = lowerMean;
  if (result < agg.min) return agg.min;
  if (result > agg.max) return agg.max;
  return result;
}
