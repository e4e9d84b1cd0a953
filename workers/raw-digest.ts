/**
 * Digests from raw values, for the shard worker's queries: RawDigest (weight-1 centroids, sorted by
 * protocol/digest.ts's sortValuesRadix and compressed in runs). Used by
 * workers/block-queries.ts (device windows built from raw readings) and workers/head-summaries.ts
 * (the open slices' pane digests).
 *
 * Contract: runs in a shard worker; pure; not reentrant (module scratch, one set per thread, and
 * protocol/digest.ts's own scratch): nothing here awaits.
 */

import { CENTROIDS_MAX_DEFAULT, compressAggregate, compressRange, sortValuesRadix, type WindowAggregateWire } from '../protocol';

// Bound once: a call through the CommonJS re-export of '../protocol' runs its getter each time.
const compress = compressRange;
const centroidsMax = CENTROIDS_MAX_DEFAULT;

/**
 * A digest built from raw values: appended as weight-1 centroids into typed arrays; when
 * `buffer` values are held, the raw ones are sorted (sortValuesRadix), compressed as one run, and merged
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
    sortValuesRadix(means, sorted, this.n);
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
