/**
 * The merging t-digest (Dunning, "Computing extremely accurate quantiles using t-digests", 2019)
 * on typed arrays: the one digest implementation of Sluice. Shard workers keep a digest per pane
 * (workers/pane-store.ts) and merge them into windows; the engine merges the shards' windows
 * (protocol/aggregate.ts, on the number arrays of WindowAggregateWire).
 *
 * Pure: no I/O, no clock, imports nothing. Runs on any thread. Not reentrant: the functions share
 * module-level scratch arrays (one set per thread), which is safe because nothing here awaits.
 *
 * Contract:
 * - A digest is a list of centroids (mean, weight). A list is "compressed" when it is sorted by
 *   mean and every centroid obeys the k1 size limit below (or merges only equal means); its
 *   length is then at most compression + 2 (any two neighbours together span more than one unit
 *   of k, which spans compression / 2); measured: 110-150 for 100k values at compression 200.
 * - Size limit (k1 scale function): a centroid that covers the quantile range [q0, q1] of the
 *   total weight must satisfy k(q1) - k(q0) <= 1 with k(q) = compression / (2 pi) * asin(2q - 1).
 *   A centroid near the median may hold pi / compression of the mass (1.6% at 200); near the tails
 *   it shrinks as sqrt(q (1 - q)), so the extremes stay single values.
 * - compressRange() compresses a block made of a sorted, compressed prefix and an unsorted tail of
 *   new entries: it sorts the tail and merges both runs in one pass. Concatenating two compressed
 *   lists is an exact merge of two digests; compressing the concatenation gives (within the error
 *   bound) the digest of the union.
 * - Quantiles interpolate linearly between the points (0, min), (mid-rank_i, mean_i) for every
 *   centroid (mid-rank = weight before it + half its own weight), and (total, max): q = 0 answers
 *   the exact min, q = 1 the exact max, and between the first and last mid-rank the answer equals
 *   the `tdigest` package's percentile() on the same centroids, except next to exact centroids
 *   (see quantileSorted). Rank error measured on 100k values (uniform, normal, exponential,
 *   lognormal, bimodal, heavy duplicates; random, sorted, reverse sorted; single digests and
 *   1000 merged ones): <= 0.15% at compression 200 (test/protocol/digest.test.ts checks 1%).
 */

/**
 * Compression of every digest in Sluice. 200: a centroid near the median holds at most 1.6% of
 * the mass; worst rank error measured 0.14% (100 gave 0.36% with ~60 centroids). 200 keeps a 7x
 * margin under the 1% target for digests merged and recompressed many times (panes -> windows
 * -> shards) at ~130 centroids per digest.
 */
export const DIGEST_COMPRESSION = 200;

// ---- the size limit ------------------------------------------------------------------------

/**
 * Weight limit of a centroid starting at cumulative weight `before` out of `total`:
 * total * q1 with k(q1) = k(q0) + 1. With a = asin(2 q0 - 1) and d = 2 pi / compression,
 * q1 = (1 + sin(a + d)) / 2 = (1 + (2 q0 - 1) cos d + 2 sqrt(q0 (1 - q0)) sin d) / 2 while
 * a + d <= pi / 2, else 1: one sqrt per emitted centroid instead of an asin and a sin.
 */
class KLimit {
  private compression = NaN;
  private cosD = 0;
  private sinD = 0;
  private qFlat = 0;

  set(compression: number): void {
    if (compression === this.compression) return;
    if (!(compression >= 10 && compression <= 100_000)) throw new RangeError(`digest compression must be within [10, 100000]: ${compression}`);
    const d = (2 * Math.PI) / compression;
    this.compression = compression;
    this.cosD = Math.cos(d);
    this.sinD = Math.sin(d);
    this.qFlat = (1 + this.cosD) / 2;
  }

  /** the cumulative weight up to which a centroid starting at `before` may extend */
  upTo(before: number, total: number): number {
    const q0 = before / total;
    if (q0 >= this.qFlat) return total;
    return (total * (1 + (2 * q0 - 1) * this.cosD + 2 * Math.sqrt(q0 * (1 - q0)) * this.sinD)) / 2;
  }
}

const limit = new KLimit();
limit.set(DIGEST_COMPRESSION);

// ---- scratch (module level: one set per thread) ----------------------------------------------

let outMeans = new Float64Array(1024);
let outWeights = new Float64Array(1024);
let inMeans = new Float64Array(1024);
let inWeights = new Float64Array(1024);

function ensureOut(n: number): void {
  if (outMeans.length >= n) return;
  const size = capacityFor(n);
  outMeans = new Float64Array(size);
  outWeights = new Float64Array(size);
}

function ensureIn(n: number): void {
  if (inMeans.length >= n) return;
  const size = capacityFor(n);
  inMeans = new Float64Array(size);
  inWeights = new Float64Array(size);
}

function capacityFor(n: number): number {
  let size = 1024;
  while (size < n) size *= 2;
  return size;
}

// ---- merging -------------------------------------------------------------------------------

/**
 * Compresses the block [start, end) of (means, weights) in place and returns its new length
 * (the compressed list then occupies [start, start + length); entries past it are left as they
 * were). [start, sortedEnd) must be sorted by mean (a compressed digest, or empty); the tail
 * [sortedEnd, end) may hold anything. unitTail: every tail weight is 1 (raw values), so the sort
 * moves the means alone.
 */
export function compressRange(
  means: Float64Array,
  weights: Float64Array,
  start: number,
  sortedEnd: number,
  end: number,
  unitTail = false,
  compression = DIGEST_COMPRESSION,
): number {
  if (!(start <= sortedEnd && sortedEnd <= end)) throw new RangeError(`compressRange: bad bounds [${start}, ${sortedEnd}, ${end})`);
  if (end - start <= 1) return end - start;
  if (sortedEnd < end) {
    if (unitTail) sortValues(means, sortedEnd, end);
    else sortByMean(means, weights, sortedEnd, end);
  }
  ensureOut(end - start);
  const n = mergeRuns(means, weights, start, sortedEnd, sortedEnd, end, outMeans, outWeights, compression);
  for (let i = 0; i < n; i++) {
    means[start + i] = outMeans[i]!;
    weights[start + i] = outWeights[i]!;
  }
  return n;
}

/**
 * Merges the sorted runs a = [aStart, aEnd) and b = [bStart, bEnd) of (means, weights) into
 * (outMeans, outWeights) from index 0 under the size limit for their total weight, and returns
 * the output length. The output must not overlap the input.
 */
export function mergeRuns(
  means: Float64Array,
  weights: Float64Array,
  aStart: number,
  aEnd: number,
  bStart: number,
  bEnd: number,
  outM: Float64Array,
  outW: Float64Array,
  compression = DIGEST_COMPRESSION,
): number {
  if (aStart === aEnd && bStart === bEnd) return 0;
  limit.set(compression);
  let total = 0;
  for (let i = aStart; i < aEnd; i++) total += weights[i]!;
  for (let i = bStart; i < bEnd; i++) total += weights[i]!;
  let i = aStart;
  let j = bStart;
  // the centroid being built: (mean, weight), starting at cumulative weight `before`
  let mean: number;
  let weight: number;
  if (j >= bEnd || (i < aEnd && means[i]! <= means[j]!)) {
    mean = means[i]!;
    weight = weights[i++]!;
  } else {
    mean = means[j]!;
    weight = weights[j++]!;
  }
  let before = 0;
  let upTo = limit.upTo(0, total);
  let o = 0;
  while (i < aEnd || j < bEnd) {
    let m: number;
    let w: number;
    if (j >= bEnd || (i < aEnd && means[i]! <= means[j]!)) {
      m = means[i]!;
      w = weights[i++]!;
    } else {
      m = means[j]!;
      w = weights[j++]!;
    }
    const merged = weight + w;
    // equal means always merge (a run of one repeated value becomes one exact centroid)
    if (m === mean || before + merged <= upTo) {
      mean += ((m - mean) * w) / merged;
      weight = merged;
    } else {
      outM[o] = mean;
      outW[o++] = weight;
      before += weight;
      upTo = limit.upTo(before, total);
      mean = m;
      weight = w;
    }
  }
  outM[o] = mean;
  outW[o++] = weight;
  return o;
}

/**
 * Compresses parallel number arrays (the wire form) in place: sorts them by mean if needed (a
 * sorted prefix is kept as one run) and merges under the size limit; truncates both arrays.
 */
export function compressLists(means: number[], weights: number[], compression = DIGEST_COMPRESSION): void {
  const n = means.length;
  if (n !== weights.length) throw new RangeError(`compressLists: ${n} means but ${weights.length} weights`);
  if (n <= 1) return;
  ensureIn(n);
  let sorted = 1;
  while (sorted < n && means[sorted]! >= means[sorted - 1]!) sorted++;
  for (let i = 0; i < n; i++) {
    inMeans[i] = means[i]!;
    inWeights[i] = weights[i]!;
  }
  const k = compressRange(inMeans, inWeights, 0, sorted, n, false, compression);
  for (let i = 0; i < k; i++) {
    means[i] = inMeans[i]!;
    weights[i] = inWeights[i]!;
  }
  means.length = k;
  weights.length = k;
}

/**
 * Sorts parallel arrays [start, end) by mean, in place. The sort is the largest cost of feeding a
 * digest, so it avoids comparison sorting where it can: a bucket sort (bucket = linear position
 * between the range's min and max, two buckets per value: counting, prefix sums, one scatter,
 * then an insertion pass that only reorders within buckets) with a quicksort fallback when the
 * values crowd into few buckets (strongly skewed data). Measured on 128-1024 random values, sorting
 * the means alone (sortValues): ~50 ns/value for TypedArray.prototype.sort or a quicksort (branch
 * mispredictions), ~20 ns/value for the bucket sort; ~30 with the weights (sortByMean).
 */
export function sortByMean(means: Float64Array, weights: Float64Array, start: number, end: number): void {
  const n = end - start;
  if (n <= BUCKET_SORT_MIN) {
    insertionSort(means, weights, start, end);
    return;
  }
  const buckets = bucketize(means, start, end);
  if (buckets === 0) return;
  if (buckets < 0) {
    quickSort(means, weights, start, end - 1);
    return;
  }
  ensureSortScratch(n);
  const counts = bucketCounts;
  const keys = bucketKeys;
  const sm = sortMeans;
  const sw = sortWeights;
  for (let i = 0; i < n; i++) {
    sm[i] = means[start + i]!;
    sw[i] = weights[start + i]!;
  }
  for (let i = 0; i < n; i++) {
    const at = start + counts[keys[i]!]!++;
    means[at] = sm[i]!;
    weights[at] = sw[i]!;
  }
  insertionSort(means, weights, start, end);
}

/** sortByMean for raw values (all weights 1): moves the means alone */
export function sortValues(means: Float64Array, start: number, end: number): void {
  const n = end - start;
  if (n <= BUCKET_SORT_MIN) {
    insertionSortValues(means, start, end);
    return;
  }
  const buckets = bucketize(means, start, end);
  if (buckets === 0) return;
  if (buckets < 0) {
    means.subarray(start, end).sort();
    return;
  }
  ensureSortScratch(n);
  const counts = bucketCounts;
  const keys = bucketKeys;
  const sm = sortMeans;
  for (let i = 0; i < n; i++) sm[i] = means[start + i]!;
  for (let i = 0; i < n; i++) means[start + counts[keys[i]!]!++] = sm[i]!;
  insertionSortValues(means, start, end);
}

/**
 * Bucket keys of [start, end) into bucketKeys and the bucket start offsets into bucketCounts;
 * returns the bucket count, 0 when all values are equal (nothing to sort), or -1 when a comparison
 * sort should be used instead (crowded buckets, or a range too narrow to scale).
 */
function bucketize(means: Float64Array, start: number, end: number): number {
  const n = end - start;
  let lo = means[start]!;
  let hi = lo;
  for (let i = start + 1; i < end; i++) {
    const m = means[i]!;
    if (m < lo) lo = m;
    if (m > hi) hi = m;
  }
  const buckets = 2 * n;
  const scale = buckets / (hi - lo);
  if (hi === lo) return 0;
  if (!(scale < Infinity)) return -1;
  ensureSortScratch(n);
  const counts = bucketCounts;
  const keys = bucketKeys;
  counts.fill(0, 0, buckets + 1);
  let crowded = 0;
  for (let i = 0; i < n; i++) {
    let b = ((means[start + i]! - lo) * scale) | 0;
    if (b >= buckets) b = buckets - 1;
    keys[i] = b;
    const c = counts[b + 1]! + 1;
    counts[b + 1] = c;
    if (c > BUCKET_LOAD_MAX) crowded++;
  }
  if (crowded > 0) return -1;
  for (let b = 1; b <= buckets; b++) counts[b] = counts[b]! + counts[b - 1]!;
  return buckets;
}

/** at most this many values: insertion sort */
const BUCKET_SORT_MIN = 24;
/** a bucket fuller than this sends the range to a comparison sort (the insertion pass would be quadratic) */
const BUCKET_LOAD_MAX = 24;
let bucketCounts = new Int32Array(2049);
let bucketKeys = new Int32Array(1024);
let sortMeans = new Float64Array(1024);
let sortWeights = new Float64Array(1024);

function ensureSortScratch(n: number): void {
  if (bucketKeys.length >= n) return;
  const size = capacityFor(n);
  bucketKeys = new Int32Array(size);
  bucketCounts = new Int32Array(2 * size + 1);
  sortMeans = new Float64Array(size);
  sortWeights = new Float64Array(size);
}

function insertionSortValues(means: Float64Array, start: number, end: number): void {
  for (let i = start + 1; i < end; i++) {
    const m = means[i]!;
    if (m >= means[i - 1]!) continue;
    let k = i - 1;
    while (k >= start && means[k]! > m) {
      means[k + 1] = means[k]!;
      k--;
    }
    means[k + 1] = m;
  }
}

function insertionSort(means: Float64Array, weights: Float64Array, start: number, end: number): void {
  for (let i = start + 1; i < end; i++) {
    const m = means[i]!;
    if (m >= means[i - 1]!) continue;
    const w = weights[i]!;
    let k = i - 1;
    while (k >= start && means[k]! > m) {
      means[k + 1] = means[k]!;
      weights[k + 1] = weights[k]!;
      k--;
    }
    means[k + 1] = m;
    weights[k + 1] = w;
  }
}

/** quicksort [lo, hi] (inclusive), median of three, insertion sort below 16; stack depth O(log n) */
function quickSort(means: Float64Array, weights: Float64Array, lo: number, hi: number): void {
  while (hi - lo > 16) {
    const mid = (lo + hi) >>> 1;
    if (means[mid]! < means[lo]!) swap(means, weights, mid, lo);
    if (means[hi]! < means[lo]!) swap(means, weights, hi, lo);
    if (means[hi]! < means[mid]!) swap(means, weights, hi, mid);
    const pivot = means[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (means[i]! < pivot) i++;
      while (means[j]! > pivot) j--;
      if (i <= j) {
        swap(means, weights, i, j);
        i++;
        j--;
      }
    }
    if (j - lo < hi - i) {
      quickSort(means, weights, lo, j);
      lo = i;
    } else {
      quickSort(means, weights, i, hi);
      hi = j;
    }
  }
  insertionSort(means, weights, lo, hi + 1);
}

function swap(means: Float64Array, weights: Float64Array, a: number, b: number): void {
  const m = means[a]!;
  means[a] = means[b]!;
  means[b] = m;
  const w = weights[a]!;
  weights[a] = weights[b]!;
  weights[b] = w;
}

export function isSortedByMean(means: ArrayLike<number>, start = 0, end = means.length): boolean {
  for (let i = start + 1; i < end; i++) if (means[i]! < means[i - 1]!) return false;
  return true;
}

// ---- reading -------------------------------------------------------------------------------

/**
 * The q-quantile (0..1) of centroids [0, n) sorted by mean, with the exact min and max of the
 * values they summarise; NaN when n is 0. See the header for the interpolation. `compression`
 * is the one the list was compressed with (it decides which centroids are exact, see below).
 *
 * Exact centroids: a centroid of weight 1, or one heavier than the size limit allows at its
 * position (only the merging of equal means makes one), holds values all equal to its mean. It
 * is read as a flat step over its whole rank range [before, before + weight] instead of a point
 * at its mid-rank: with heavy duplicates (0/1 states, integer readings) interpolating towards a
 * neighbour would answer values between two data values, off by up to half that centroid's mass
 * in rank (5% measured with 10 distinct values); read as a step the answer is exact.
 */
export function quantileSorted(
  means: ArrayLike<number>,
  weights: ArrayLike<number>,
  n: number,
  min: number,
  max: number,
  q: number,
  compression = DIGEST_COMPRESSION,
): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be within [0, 1]: ${q}`);
  if (n === 0) return NaN;
  if (q === 0) return min;
  if (q === 1) return max;
  limit.set(compression);
  let total = 0;
  for (let i = 0; i < n; i++) total += weights[i]!;
  const h = total * q;
  const slack = 1e-9 * total;
  // the piecewise-linear inverse CDF through (0, min), each centroid's point(s), (total, max)
  let prevRank = 0;
  let prevValue = min;
  let cum = 0;
  let result = NaN;
  for (let i = 0; i < n; i++) {
    const w = weights[i]!;
    const m = means[i]!;
    if (w <= 1 || w > limit.upTo(cum, total) - cum + slack) {
      if (h < cum) {
        result = prevValue + ((h - prevRank) * (m - prevValue)) / (cum - prevRank);
        break;
      }
      if (h < cum + w) {
        result = m;
        break;
      }
      prevRank = cum + w;
    } else {
      const mid = cum + w / 2;
      if (h < mid) {
        result = prevValue + ((h - prevRank) * (m - prevValue)) / (mid - prevRank);
        break;
      }
      prevRank = mid;
    }
    prevValue = m;
    cum += w;
  }
  if (Number.isNaN(result)) {
    result = total > prevRank ? prevValue + ((h - prevRank) * (max - prevValue)) / (total - prevRank) : prevValue;
  }
  return result < min ? min : result > max ? max : result;
}

// ---- a standalone digest -------------------------------------------------------------------

/**
 * A self-contained merging digest: one block of typed arrays holding the compressed centroids
 * followed by raw values pushed since the last compression. Compresses when the block is full
 * (bufferSize raw values past the centroids) and before every read. For tests, benchmarks and
 * code outside the shard's pane store (which keeps the same layout in one slab for all panes).
 */
export class MergingDigest {
  readonly compression: number;
  private means: Float64Array;
  private weights: Float64Array;
  /** entries in use; [0, sorted) is the compressed prefix, [sorted, length) raw */
  private length = 0;
  private sorted = 0;
  private countTotal = 0;
  private minValue = Infinity;
  private maxValue = -Infinity;

  constructor(compression = DIGEST_COMPRESSION, bufferSize = 512) {
    limit.set(compression); // validates
    if (!(Number.isInteger(bufferSize) && bufferSize >= 1)) throw new RangeError(`bufferSize must be a positive integer: ${bufferSize}`);
    this.compression = compression;
    const cap = compression + 3 + bufferSize;
    this.means = new Float64Array(cap);
    this.weights = new Float64Array(cap);
  }

  /** number of values (total weight) summarised */
  get count(): number {
    return this.countTotal;
  }

  get min(): number {
    return this.countTotal === 0 ? NaN : this.minValue;
  }

  get max(): number {
    return this.countTotal === 0 ? NaN : this.maxValue;
  }

  push(value: number, weight = 1): void {
    if (!Number.isFinite(value)) throw new RangeError(`digest values must be finite: ${value}`);
    if (!(weight > 0 && Number.isFinite(weight))) throw new RangeError(`digest weights must be positive: ${weight}`);
    if (this.length === this.means.length) this.compress();
    this.means[this.length] = value;
    this.weights[this.length++] = weight;
    this.countTotal += weight;
    if (value < this.minValue) this.minValue = value;
    if (value > this.maxValue) this.maxValue = value;
  }

  /** adds centroids of another digest (means[i] with weight weights[i]); min/max widen to their means */
  pushCentroids(means: ArrayLike<number>, weights: ArrayLike<number>): void {
    if (means.length !== weights.length) throw new RangeError(`pushCentroids: ${means.length} means but ${weights.length} weights`);
    for (let i = 0; i < means.length; i++) this.push(means[i]!, weights[i]!);
  }

  /** merges another digest into this one (exact min/max) */
  merge(other: MergingDigest): void {
    if (other.countTotal === 0) return;
    other.compress();
    for (let i = 0; i < other.length; i++) this.push(other.means[i]!, other.weights[i]!);
    if (other.minValue < this.minValue) this.minValue = other.minValue;
    if (other.maxValue > this.maxValue) this.maxValue = other.maxValue;
  }

  /** folds the raw values into the centroids */
  compress(): void {
    if (this.sorted === this.length) return;
    this.length = compressRange(this.means, this.weights, 0, this.sorted, this.length, false, this.compression);
    this.sorted = this.length;
  }

  /** NaN when empty */
  quantile(q: number): number {
    this.compress();
    return quantileSorted(this.means, this.weights, this.length, this.minValue, this.maxValue, q, this.compression);
  }

  /** the compressed centroids, as plain arrays */
  centroids(): { means: number[]; weights: number[] } {
    this.compress();
    return { means: Array.from(this.means.subarray(0, this.length)), weights: Array.from(this.weights.subarray(0, this.length)) };
  }

  get centroidCount(): number {
    this.compress();
    return this.length;
  }
}

const RADIX_MIN = 256;
let radixA = new Float64Array(0);
let radixB = new Float64Array(0);
let radixKA = new Uint32Array(0);
let radixKB = new Uint32Array(0);
const radixCounts = new Uint32Array(2049);

/**
 * Sorts a[from, to) ascending. A comparison sort costs ~60 ns a value on one-decimal readings
 * (sortValues above falls back to one when values repeat); this is an LSD radix sort (3 passes of 11 bits on the order-preserving high
 * word of each f64, then each run of equal high words sorted on its own): ~8 ns a value.
 */
export function sortValuesRadix(a: Float64Array, from: number, to: number): void {
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
