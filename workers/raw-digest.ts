/**
 * Digests from raw values, for the shard worker's queries: sortRaw (an LSD radix sort of f64
 * values) and RawDigest (weight-1 centroids, sorted and compressed in runs). Used by
 * workers/block-queries.ts (device windows built from raw readings) and workers/head-summaries.ts
 * (the open slices' pane digests).
 *
 * Contract: runs in a shard worker; pure; not reentrant (module scratch, one set per thread, and
 * protocol/digest.ts's own scratch): nothing here awaits.
 */

import { CENTROIDS_MAX_DEFAULT, compressAggregate, compressRange, type WindowAggregateWire } from '../protocol';

// Bound once: a call through the CommonJS re-export of '../protocol' runs its getter each time.
const compress = compressRange;
const centroidsMax = CENTROIDS_MAX_DEFAULT;

/**
 * A digest built from raw values: appended as weight-1 centroids into typed arrays; when
 * `buffer` values are held, the raw ones are sorted (sortRaw), compressed as one run, and merged
 * with the digest so far. finish() hands the centroids to a window: the raw values themselves
 * when at most CENTROIDS_MAX_DEFAULT (as seriesWindow / mergeAggregate keep them), else the
 * compressed digest.
 */
export class RawDigest {
  private means = new Float64Array(16);
  private weights = new Float64Array(16);
  private n = 0;
  /** [0, sorted) is a compressed digest; [sorted, n) raw values (weight 1) */
  private sorted = 0;

  constructor(private readonly buffer: number) {}

  add(v: number): void {
    if (this.n === this.means.length) this.full();
    this.means[this.n] = v;
    this.weights[this.n] = 1;
    this.n++;
  }

  private full(): void {
    if (this.means.length < this.buffer) {
      const means = new Float64Array(Math.min(this.buffer, this.means.length * 2));
      const weights = new Float64Array(means.length);
      means.set(this.means);
      weights.set(this.weights);
      this.means = means;
      this.weights = weights;
      return;
    }
    this.fold();
  }

  /** folds the raw values into the digest */
  private fold(): void {
    const { means, weights, sorted } = this;
    if (this.n === sorted) return;
    sortRaw(means, sorted, this.n);
    // the raw run compressed on its own (sorted: no sort in compressRange), then the two digests
    // merged (only the new one, ~200 centroids, is sorted by compressRange)
    const k = compress(means, weights, sorted, this.n, this.n);
    this.n = sorted === 0 ? k : compress(means, weights, 0, sorted, sorted + k);
    this.sorted = this.n;
  }

  finish(into: WindowAggregateWire): void {
    if (this.n > centroidsMax) this.fold();
    const means = into.means;
    const weights = into.weights;
    for (let i = 0; i < this.n; i++) {
      means.push(this.means[i]!);
      weights.push(this.weights[i]!);
    }
    if (means.length > centroidsMax) compressAggregate(into);
  }
}

/** below this many values a comparison sort (the radix passes' set-up costs more) */
const RADIX_MIN = 256;
let radixA = new Float64Array(0);
let radixB = new Float64Array(0);
let radixKA = new Uint32Array(0);
let radixKB = new Uint32Array(0);
const radixCounts = new Uint32Array(2049);

/**
 * Sorts a[from, to) ascending. A comparison sort costs ~60 ns a value on one-decimal readings
 * (protocol/digest.ts sortValues falls back to one when values repeat); this is the LSD radix
 * sort of storage/block-codec.ts's encoder (3 passes of 11 bits on the order-preserving high
 * word of each f64, then each run of equal high words sorted on its own): ~8 ns a value.
 */
export function sortRaw(a: Float64Array, from: number, to: number): void {
  const n = to - from;
  if (n < RADIX_MIN) {
    a.subarray(from, to).sort();
    return;
  }
  if (radixA.length < n) {
    let cap = 1024;
    while (cap < n) cap *= 2;
    radixA = new Float64Array(cap);
    radixB = new Float64Array(cap);
    radixKA = new Uint32Array(cap);
    radixKB = new Uint32Array(cap);
  }
  let src = radixA;
  let dst = radixB;
  let kSrc = radixKA;
  let kDst = radixKB;
  src.set(a.subarray(from, to));
  const words = new Uint32Array(src.buffer, 0, 2 * n);
  for (let i = 0; i < n; i++) {
    const hi = words[2 * i + 1]!;
    kSrc[i] = hi >>> 31 === 1 ? ~hi >>> 0 : (hi ^ 0x80000000) >>> 0;
  }
  const counts = radixCounts;
  for (let shift = 0; shift < 32; shift += 11) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[((kSrc[i]! >>> shift) & 2047) + 1]++;
    let skip = false;
    for (let k = 1; k <= 2048 && !skip; k++) skip = counts[k] === n;
    if (skip) continue;
    for (let k = 1; k <= 2048; k++) counts[k] += counts[k - 1]!;
    for (let i = 0; i < n; i++) {
      const at = counts[(kSrc[i]! >>> shift) & 2047]!++;
      kDst[at] = kSrc[i]!;
      dst[at] = src[i]!;
    }
    [src, dst] = [dst, src];
    [kSrc, kDst] = [kDst, kSrc];
  }
  // runs of one high word: sorted already when their values are equal (repeated readings)
  for (let i = 0; i < n;) {
    const key = kSrc[i]!;
    let j = i + 1;
    let sorted = true;
    for (; j < n && kSrc[j] === key; j++) if (src[j]! < src[j - 1]!) sorted = false;
    if (!sorted) src.subarray(i, j).sort();
    i = j;
  }
  a.set(src.subarray(0, n), from);
}
