import t from 'tap';
import { rng } from '../helpers/rng';
import {
  compressLists, compressRange, DIGEST_COMPRESSION, MergingDigest, quantileSorted, sortByMean, sortValues,
} from '../../protocol/digest';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const QS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.33, 0.5, 0.67, 0.75, 0.9, 0.95, 0.99, 0.999];
const N = 100_000;

type Dist = (rand: () => number) => number;
const normal: Dist = (rand) => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const DISTS: Record<string, Dist> = {
  uniform: (rand) => rand() * 100,
  normal: (rand) => 50 + 10 * normal(rand),
  exponential: (rand) => -Math.log(1 - rand()) * 10,
  lognormal: (rand) => Math.exp(2 * normal(rand)), // strongly skewed: exercises the sort's fallback
  bimodal: (rand) => (rand() < 0.7 ? normal(rand) : 100 + normal(rand)),
  integers: (rand) => Math.floor(rand() * 10), // many duplicates: 10 distinct values
  halfOneValue: (rand) => (rand() < 0.5 ? 5 : rand() * 10), // half the mass on one value
  onOff: (rand) => (rand() < 0.9 ? 0 : 1),
};

/**
 * Rank error of an estimate against the raw data: the distance from q to the band of ranks the
 * estimate occupies, [fraction < x, fraction <= x] (a value repeated k times spans k / n of rank).
 */
function rankError(sorted: Float64Array, x: number, q: number): number {
  const n = sorted.length;
  let lo = 0;
  let hi = n;
  while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m]! < x) lo = m + 1; else hi = m; }
  const below = lo / n;
  hi = n;
  while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m]! <= x) lo = m + 1; else hi = m; }
  const atOrBelow = lo / n;
  return q < below ? below - q : q > atOrBelow ? q - atOrBelow : 0;
}

function sample(dist: Dist, rand: () => number, n: number): Float64Array {
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = dist(rand);
  return values;
}

t.test('quantiles within 1% rank error on 100k values: distributions x input orders', (t) => {
  const rand = rng(seed);
  for (const [name, dist] of Object.entries(DISTS)) {
    const raw = sample(dist, rand, N);
    const sorted = Float64Array.from(raw).sort();
    const orders: Record<string, Float64Array> = { random: raw, sorted, reversed: Float64Array.from(sorted).reverse() };
    for (const [order, values] of Object.entries(orders)) {
      const d = new MergingDigest();
      for (let i = 0; i < values.length; i++) d.push(values[i]!);
      t.equal(d.count, N, `${name}/${order}: count`);
      let worst = 0;
      let worstQ = 0;
      for (const q of QS) {
        const err = rankError(sorted, d.quantile(q), q);
        if (err > worst) { worst = err; worstQ = q; }
      }
      t.ok(worst <= 0.01, `${name}/${order}: worst rank error ${worst.toFixed(5)} at q=${worstQ} (seed=${seed})`);
      t.equal(d.quantile(0), sorted[0], `${name}/${order}: q=0 is the exact min`);
      t.equal(d.quantile(1), sorted[N - 1], `${name}/${order}: q=1 is the exact max`);
      t.ok(d.centroidCount <= DIGEST_COMPRESSION + 2, `${name}/${order}: ${d.centroidCount} centroids`);
    }
  }
  t.end();
});

t.test('heavy duplicates: every quantile is a data value with the right rank', (t) => {
  const d = new MergingDigest();
  // 0/1 state: 90% zeros; every q below 0.9 is 0 and above it 1, exactly
  const rand = rng(seed ^ 0x0ff);
  let zeros = 0;
  for (let i = 0; i < N; i++) {
    const v = rand() < 0.9 ? 0 : 1;
    if (v === 0) zeros++;
    d.push(v);
  }
  const cut = zeros / N;
  for (const q of QS) t.equal(d.quantile(q), q < cut ? 0 : 1, `q=${q} (zeros ${cut.toFixed(4)}, seed=${seed})`);
  t.ok(d.centroidCount <= 4, `equal values merge into exact centroids (${d.centroidCount})`);
  t.end();
});

t.test('merging two digests approximates the digest of the union', (t) => {
  const rand = rng(seed ^ 0x3e7);
  const a = sample(DISTS['normal']!, rand, 60_000);
  const b = sample((r) => 60 + DISTS['exponential']!(r), rand, 40_000);
  const da = new MergingDigest();
  const db = new MergingDigest();
  const du = new MergingDigest();
  for (const v of a) { da.push(v); du.push(v); }
  for (const v of b) { db.push(v); du.push(v); }
  da.merge(db);
  const union = new Float64Array(a.length + b.length);
  union.set(a);
  union.set(b, a.length);
  union.sort();
  t.equal(da.count, union.length);
  t.equal(da.min, union[0]);
  t.equal(da.max, union[union.length - 1]);
  for (const q of QS) {
    const merged = da.quantile(q);
    const direct = du.quantile(q);
    t.ok(rankError(union, merged, q) <= 0.01, `q=${q}: merged ${merged.toFixed(4)} within 1% rank of the union (seed=${seed})`);
    t.ok(Math.abs(rankError(union, merged, q) - rankError(union, direct, q)) <= 0.01, `q=${q}: merged ~ digest of the union (${direct.toFixed(4)})`);
  }
  t.ok(da.centroidCount <= DIGEST_COMPRESSION + 2);
  t.end();
});

t.test('many small digests concatenated and compressed (fleet merging) stay within 1%', (t) => {
  const rand = rng(seed ^ 0xf1ee7);
  const all: number[] = [];
  const means: number[] = [];
  const weights: number[] = [];
  for (let p = 0; p < 2000; p++) {
    const d = new MergingDigest();
    const level = rand() * 50;
    for (let i = 0; i < 50; i++) {
      const v = level + rand() * 20;
      d.push(v);
      all.push(v);
    }
    const c = d.centroids();
    means.push(...c.means);
    weights.push(...c.weights);
    if (means.length > 1024) compressLists(means, weights);
  }
  compressLists(means, weights);
  const sorted = Float64Array.from(all).sort();
  t.equal(weights.reduce((x, y) => x + y, 0), all.length, 'weight conserved');
  t.ok(means.length <= DIGEST_COMPRESSION + 2, `${means.length} centroids`);
  for (const q of QS) {
    const est = quantileSorted(means, weights, means.length, sorted[0]!, sorted[sorted.length - 1]!, q);
    t.ok(rankError(sorted, est, q) <= 0.01, `q=${q}: ${est.toFixed(4)} (seed=${seed})`);
  }
  t.end();
});

t.test('the centroid count stays bounded by compression + 2 for any compression', (t) => {
  const rand = rng(seed ^ 0xb0b);
  for (const compression of [20, 100, 200, 500]) {
    const d = new MergingDigest(compression, 100);
    for (let i = 0; i < 200_000; i++) d.push(rand() < 0.5 ? rand() : 1e6 * rand() * rand());
    t.ok(d.centroidCount <= compression + 2, `compression ${compression}: ${d.centroidCount} centroids`);
    t.equal(d.count, 200_000);
  }
  t.throws(() => new MergingDigest(1), /compression/);
  t.end();
});

t.test('empty, single value, two values', (t) => {
  const empty = new MergingDigest();
  t.equal(empty.count, 0);
  t.ok(Number.isNaN(empty.quantile(0.5)));
  t.ok(Number.isNaN(empty.min) && Number.isNaN(empty.max));
  t.same(empty.centroids(), { means: [], weights: [] });
  t.ok(Number.isNaN(quantileSorted([], [], 0, 0, 0, 0.5)));
  const one = new MergingDigest();
  one.push(42);
  for (const q of [0, 0.001, 0.5, 0.999, 1]) t.equal(one.quantile(q), 42, `single value at q=${q}`);
  const two = new MergingDigest();
  two.push(10);
  two.push(20);
  t.equal(two.quantile(0), 10);
  t.equal(two.quantile(0.25), 10, 'a weight-1 centroid is an exact value over its rank range');
  t.equal(two.quantile(0.75), 20);
  t.equal(two.quantile(1), 20);
  t.throws(() => two.quantile(1.5), /within \[0, 1\]/);
  t.throws(() => two.push(NaN), /finite/);
  const merged = new MergingDigest();
  merged.merge(empty);
  t.equal(merged.count, 0, 'merging an empty digest changes nothing');
  t.end();
});

t.test('compressRange: sorted output, weight conserved, raw-tail path equals weighted path', (t) => {
  const rand = rng(seed ^ 0xc0);
  const prefix = new MergingDigest();
  for (let i = 0; i < 5000; i++) prefix.push(rand() * 100);
  const c = prefix.centroids();
  const tail = Array.from({ length: 700 }, () => rand() * 120 - 10);
  const build = (): [Float64Array, Float64Array] => {
    const m = new Float64Array(3 + c.means.length + tail.length);
    const w = new Float64Array(m.length);
    m.set(c.means, 3);
    w.set(c.weights, 3);
    m.set(tail, 3 + c.means.length);
    w.fill(1, 3 + c.means.length);
    return [m, w];
  };
  const [m1, w1] = build();
  const [m2, w2] = build();
  const end = m1.length;
  const n1 = compressRange(m1, w1, 3, 3 + c.means.length, end, true);
  const n2 = compressRange(m2, w2, 3, 3 + c.means.length, end, false);
  t.equal(n1, n2);
  t.same(Array.from(m1.subarray(3, 3 + n1)), Array.from(m2.subarray(3, 3 + n2)), 'same means');
  t.same(Array.from(w1.subarray(3, 3 + n1)), Array.from(w2.subarray(3, 3 + n2)), 'same weights');
  let total = 0;
  for (let i = 3; i < 3 + n1; i++) {
    total += w1[i]!;
    if (i > 3 && m1[i]! < m1[i - 1]!) t.fail(`unsorted at ${i}`);
  }
  t.equal(total, 5000 + tail.length, 'total weight conserved');
  t.ok(n1 <= DIGEST_COMPRESSION + 2);
  t.throws(() => compressRange(m1, w1, 5, 4, 6), /bad bounds/);
  t.end();
});

t.test('sortByMean and sortValues sort like a plain sort, keeping pairs together', (t) => {
  const rand = rng(seed ^ 0x5011);
  const gens: Record<string, () => number> = {
    uniform: () => rand() * 1000,
    skewed: () => Math.exp(8 * normal(rand)), // crowds the buckets: the comparison-sort fallback
    fewValues: () => Math.floor(rand() * 3),
    equal: () => 7,
    tiny: () => 1 + rand() * 1e-300, // a range too narrow to scale
  };
  for (const [name, gen] of Object.entries(gens)) {
    for (const n of [0, 1, 5, 24, 25, 100, 1000, 5000]) {
      const means = new Float64Array(n + 2);
      const weights = new Float64Array(n + 2);
      for (let i = 1; i <= n; i++) { means[i] = gen(); weights[i] = means[i]! * 3 + 1; }
      means[0] = -1; means[n + 1] = -2; // outside the range: must not move
      const values = means.slice();
      const expected = Array.from(means.subarray(1, n + 1)).sort((a, b) => a - b);
      sortByMean(means, weights, 1, n + 1);
      sortValues(values, 1, n + 1);
      t.same(Array.from(means.subarray(1, n + 1)), expected, `${name} n=${n}: sortByMean (seed=${seed})`);
      t.same(Array.from(values.subarray(1, n + 1)), expected, `${name} n=${n}: sortValues`);
      let paired = true;
      for (let i = 1; i <= n; i++) if (weights[i] !== means[i]! * 3 + 1) paired = false;
      t.ok(paired, `${name} n=${n}: weights moved with their means`);
      t.same([means[0], means[n + 1], values[0], values[n + 1]], [-1, -2, -1, -2], 'outside the range untouched');
    }
  }
  t.end();
});

t.test('compressLists sorts an unsorted wire list and rejects mismatched lengths', (t) => {
  const means = [5, 1, 3, 3, 2];
  const weights = [1, 1, 2, 1, 1];
  compressLists(means, weights);
  t.same(means, [1, 2, 3, 5], 'sorted; equal means merged');
  t.same(weights, [1, 1, 3, 1]);
  t.throws(() => compressLists([1, 2], [1]), /2 means but 1 weights/);
  t.end();
});
