/**
 * Operations on WindowAggregateWire, the mergeable form in which window aggregates cross threads.
 *
 * Pure: no I/O, no clock; imports only protocol/messages.ts and protocol/digest.ts. Runs on any thread:
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
 *   exact merge of the two digests; when the list grows past `centroidsMax` it is compressed by
 *   protocol/digest.ts (the one digest implementation: sort, then one merging pass under the k1
 *   size limit at DIGEST_COMPRESSION). Compressing on every merge instead would rebuild a digest
 *   per pane merged.
 * - Quantiles are read by protocol/digest.ts quantileSorted() on the (sorted) centroid list with
 *   the exact [min, max]: q <= 0 answers min and q >= 1 answers max exactly; in between, linear
 *   interpolation between centroid mid-ranks (as `tdigest`'s percentile()), anchored at (0, min)
 *   and (count, max).
 */

import { compressLists, DIGEST_COMPRESSION, isSortedByMean, quantileSorted, sortByMean } from './digest';
import type { WindowAggregateWire } from './messages';

// The digest primitives the shard's pane store needs, re-exported so that workers/ keeps
// importing protocol/ through its index (which exports this module).
export { compressRange, DIGEST_COMPRESSION, MergingDigest, sortValuesRadix } from './digest';

/**
 * Above this many centroids a merged aggregate is compressed. A compressed digest holds at most
 * DIGEST_COMPRESSION + 2 (~100-130 in practice), so each compression pass folds ~900 appended
 * centroids: one sort + scan per ~900 centroids merged.
 */
export const CENTROIDS_MAX_DEFAULT = 1024;

/**
 * The histogram slot of a value: a division in [0, divisions), or divisions (under: below min)
 * or divisions + 1 (over: above max). (v - min) * divisions / range, not * a precomputed
 * (divisions / range): exact on integer edges such as 30 * 10 / 100; the clamp puts v == max (and
 * rounding up) in the last division. The one definition: panes, reports and stored windows agree.
 */
export function histogramBucket(value: number, min: number, max: number, divisions: number): number {
  if (value < min) return divisions;
  if (value > max) return divisions + 1;
  const bucket = Math.floor(((value - min) * divisions) / (max - min));
  return bucket >= divisions ? divisions - 1 : bucket;
}

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

/**
 * Compresses the centroid list (protocol/digest.ts compressLists: sort, then one merging pass
 * under the k1 size limit). The output is sorted by mean and holds at most compression + 2
 * centroids; the total weight is conserved exactly (weights are added, never rescaled).
 *
 * Why not TDigest.push_centroid + compress(): measured on a 1000-device shard with 1 h of 10 s
 * panes (3.6M centroids), a fleet query at 1 min took 13.6 s and top by p99 10.7 s rebuilding
 * through `tdigest` (RB-tree inserts, ~1-4 us per centroid); this pass costs a sort plus a scan.
 */
export function compressAggregate(agg: WindowAggregateWire, compression = DIGEST_COMPRESSION): void {
  compressLists(agg.means, agg.weights, compression);
}

/** estimates the q-quantile (0..1) of an aggregate; null when it is empty */
export function quantileOf(agg: WindowAggregateWire, q: number): number | null {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantileOf: quantile must be within [0, 1]: ${q}`);
  if (agg.count === 0) return null;
  if (q === 0) return agg.min;
  if (q >= 1) return agg.max;
  if (agg.means.length === 0) return null;
  return quantileOfSorted(agg, sortedCopy(agg), q);
}

/**
 * Quantiles keyed as the query wrote them: a string key is kept verbatim ("0.50" stays "0.50"),
 * a number key is String(q). Every value is null when the aggregate is empty.
 */
export function quantilesOf(agg: WindowAggregateWire, qs: readonly (number | string)[]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const sorted = agg.count > 0 && agg.means.length > 0 ? sortedCopy(agg) : null;
  for (const key of qs) {
    const q = typeof key === 'number' ? key : Number(key);
    if (!Number.isFinite(q) || q < 0 || q > 1) throw new RangeError(`quantilesOf: quantile must be within [0, 1]: ${String(key)}`);
    let value: number | null;
    if (agg.count === 0) value = null;
    else if (q === 0) value = agg.min;
    else if (q === 1) value = agg.max;
    else value = sorted === null ? null : quantileOfSorted(agg, sorted, q);
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

interface SortedCentroids { means: ArrayLike<number>; weights: ArrayLike<number> }

function sortedCopy(agg: WindowAggregateWire): SortedCentroids {
  if (isSortedByMean(agg.means)) return { means: agg.means, weights: agg.weights };
  const means = Float64Array.from(agg.means);
  const weights = Float64Array.from(agg.weights);
  sortByMean(means, weights, 0, means.length);
  return { means, weights };
}

function quantileOfSorted(agg: WindowAggregateWire, sorted: SortedCentroids, q: number): number {
  return quantileSorted(sorted.means, sorted.weights, sorted.means.length, agg.min, agg.max, q);
}
