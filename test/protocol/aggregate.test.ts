import t from 'tap';
import { rng } from '../helpers/rng';
import { TDigest } from 'tdigest';
import {
  CENTROIDS_MAX_DEFAULT, compressAggregate, emptyAggregate, histogramBucket, mergeAggregate, quantileOf, quantilesOf, toWindowJson,
} from '../../protocol/aggregate';
import type { WindowAggregateWire } from '../../protocol/messages';
import { aggregateOf } from '../helpers/aggregates';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const DIV = 10;

/** builds a wire aggregate straight from raw (ts, value) pairs: the reference, not the code under test */
function fromRaw(start: number, end: number, points: [number, number][], devices?: number): WindowAggregateWire {
  const w = emptyAggregate(start, end, DIV);
  for (const [ts, v] of points) {
    if (w.count === 0) { w.min = v; w.max = v; w.last = v; w.lastTs = ts; }
    w.count++;
    w.sum += v;
    w.min = Math.min(w.min, v);
    w.max = Math.max(w.max, v);
    if (ts > w.lastTs || (ts === w.lastTs && v > w.last)) { w.last = v; w.lastTs = ts; }
    if (v < 0) w.under++;
    else if (v > 100) w.over++;
    else w.histogram[Math.min(DIV - 1, Math.floor(v / 10))]!++;
    w.means.push(v);
    w.weights.push(1);
  }
  if (devices !== undefined) w.devices = devices;
  return w;
}

function exactFields(w: WindowAggregateWire): unknown {
  return {
    start: w.start, end: w.end, count: w.count, sum: w.sum, min: w.min, max: w.max, last: w.last, lastTs: w.lastTs,
    histogram: w.histogram, under: w.under, over: w.over, devices: w.devices, weight: w.weights.reduce((a, b) => a + b, 0),
  };
}

function clone(w: WindowAggregateWire): WindowAggregateWire {
  return structuredClone(w);
}

function randomAgg(rand: () => number): WindowAggregateWire {
  const n = rand() < 0.2 ? 0 : 1 + Math.floor(rand() * 50);
  const start = Math.floor(rand() * 10) * 1000;
  const points: [number, number][] = [];
  // ts from a small set so equal lastTs across parts happens; values multiples of 1/4: sums exact
  for (let i = 0; i < n; i++) points.push([start + Math.floor(rand() * 5) * 100, Math.round((rand() * 140 - 20) * 4) / 4]);
  return fromRaw(start, start + 1000, points, rand() < 0.5 ? Math.floor(rand() * 5) : undefined);
}

t.test('merge is associative and commutative on the exact fields', (t) => {
  const rand = rng(seed);
  for (let round = 0; round < 300; round++) {
    const [a, b, c] = [randomAgg(rand), randomAgg(rand), randomAgg(rand)];
    const ab = mergeAggregate(clone(a), b);
    const ba = mergeAggregate(clone(b), a);
    if (JSON.stringify(exactFields(ab)) !== JSON.stringify(exactFields(ba))) {
      t.same(exactFields(ab), exactFields(ba), `commutative (seed=${seed}, round=${round})`);
      return t.end();
    }
    const left = mergeAggregate(mergeAggregate(clone(a), b), c);
    const right = mergeAggregate(clone(a), mergeAggregate(clone(b), c));
    if (JSON.stringify(exactFields(left)) !== JSON.stringify(exactFields(right))) {
      t.same(exactFields(left), exactFields(right), `associative (seed=${seed}, round=${round})`);
      return t.end();
    }
    // and both equal the aggregate of the union of the raw points, computed independently
    const union = [a, b, c];
    const count = union.reduce((s, x) => s + x.count, 0);
    t.equal(left.count, count);
    if (count > 0) {
      t.equal(left.min, Math.min(...union.filter((x) => x.count > 0).map((x) => x.min)));
      t.equal(left.max, Math.max(...union.filter((x) => x.count > 0).map((x) => x.max)));
    }
  }
  t.end();
});

t.test('merging into an empty aggregate copies; merging an empty one changes nothing but bounds', (t) => {
  const a = fromRaw(1000, 2000, [[1500, 3], [1600, -7], [1550, 120]]);
  const e = emptyAggregate(0, 1000, DIV);
  const into = mergeAggregate(clone(e), a);
  t.same(exactFields(into), { ...(exactFields(a) as object), start: 0 });
  const back = mergeAggregate(clone(a), e);
  t.same(exactFields(back), { ...(exactFields(a) as object), start: 0 });
  t.equal(back.last, -7, 'last by event time (ts 1600), not by arrival');
  t.throws(() => mergeAggregate(emptyAggregate(0, 1, 5), a), /divisions differ/);
  t.end();
});

t.test('merging 360 panes equals one pane fed all values', (t) => {
  const rand = rng(seed ^ 0x360);
  const paneMs = 10_000;
  const perPane: [number, number][][] = [];
  const all: [number, number][] = [];
  const values: number[] = [];
  for (let p = 0; p < 360; p++) {
    const n = 1 + Math.floor(rand() * 300);
    const pane: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      const ts = p * paneMs + Math.floor(rand() * paneMs);
      const v = Math.round((rand() < 0.9 ? 50 + 15 * Math.sin(p / 20) + (rand() - 0.5) * 40 : rand() * 130 - 15) * 4) / 4;
      pane.push([ts, v]);
      all.push([ts, v]);
      values.push(v);
    }
    perPane.push(pane);
  }
  const merged = emptyAggregate(0, 360 * paneMs, DIV);
  let panes = 0;
  for (let p = perPane.length - 1; p >= 0; p--) {
    const w = aggregateOf(perPane[p]!, p * paneMs, (p + 1) * paneMs, DIV);
    compressAggregate(w);
    mergeAggregate(merged, w);
    panes++;
  }
  t.equal(panes, 360);
  const one = aggregateOf(all, 0, 360 * paneMs, DIV);
  t.same(exactFields(merged), exactFields(one), 'count, sum, min, max, last, histogram equal');
  t.equal(merged.count, values.length, 'count equals the raw count');
  t.equal(merged.sum, values.reduce((a, b) => a + b, 0), 'sum equals the raw sum');
  t.ok(merged.means.length <= CENTROIDS_MAX_DEFAULT, `merged digest stays bounded (${merged.means.length} centroids)`);
  const sorted = values.slice().sort((a, b) => a - b);
  const rankOf = (x: number): number => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m]! < x) lo = m + 1; else hi = m; }
    return lo / sorted.length;
  };
  for (const q of [0.01, 0.1, 0.5, 0.9, 0.99]) {
    const m = quantileOf(merged, q)!;
    const o = quantileOf(one, q)!;
    t.ok(Math.abs(rankOf(m) - q) <= 0.01, `merged q=${q}: ${m} within 1% rank (got ${rankOf(m).toFixed(4)}, seed=${seed})`);
    t.ok(Math.abs(rankOf(o) - q) <= 0.01, `single q=${q}: ${o} within 1% rank (got ${rankOf(o).toFixed(4)})`);
  }
  t.end();
});

t.test('quantileOf interpolates like TDigest.percentile between centroid mid-ranks', (t) => {
  // Reference check of the interpolation against the `tdigest` package on its own centroids.
  // Where the bracketing centroids are both heavier than 1 the answers must be equal; next to a
  // weight-1 centroid ours differs on purpose (a single value is exact over its rank range).
  const rand = rng(seed ^ 0xd16);
  const d = new TDigest();
  const w = emptyAggregate(0, 1, DIV);
  for (let i = 0; i < 5000; i++) {
    const v = rand() * 1000;
    d.push(v);
    w.count++;
    w.min = i === 0 ? v : Math.min(w.min, v);
    w.max = Math.max(w.max, v);
  }
  for (const c of d.toArray()) { w.means.push(c.mean); w.weights.push(c.n); }
  const mids: number[] = [];
  let cum = 0;
  for (const x of w.weights) { mids.push(cum + x / 2); cum += x; }
  let compared = 0;
  for (let k = 1; k < 200; k++) {
    const q = k / 200;
    const h = q * cum;
    const upper = mids.findIndex((m) => m > h);
    if (upper <= 0 || w.weights[upper]! <= 1 || w.weights[upper - 1]! <= 1) continue;
    compared++;
    if (Math.abs(quantileOf(w, q)! - d.percentile(q)) >= 1e-9) t.fail(`q=${q}: ${quantileOf(w, q)} vs tdigest ${d.percentile(q)} (seed=${seed})`);
  }
  t.ok(compared >= 150, `${compared} quantiles compared`);
  t.end();
});

t.test('small exact cases', (t) => {
  const w = fromRaw(0, 1, [[0, 5], [0, 1], [0, 3], [0, 2], [0, 4]]);
  t.equal(quantileOf(w, 0.5), 3, 'median of 1..5');
  t.equal(quantileOf(w, 0), 1);
  t.equal(quantileOf(w, 1), 5);
  const single = fromRaw(0, 1, [[0, 42]]);
  t.equal(quantileOf(single, 0.99), 42);
  t.equal(quantileOf(emptyAggregate(0, 1, DIV), 0.5), null);
  t.end();
});

t.test('quantilesOf keys as written, null when empty, range checked', (t) => {
  const w = fromRaw(0, 1, [[0, 10], [1, 20], [2, 30]]);
  const out = quantilesOf(w, ['0.5', '0.50', 0.99, 0]);
  // (JS orders the integer-like key "0" first; the set of keys is what the query wrote)
  t.same(Object.keys(out).sort(), ['0', '0.5', '0.50', '0.99']);
  t.equal(out['0.5'], 20);
  t.equal(out['0.50'], 20);
  t.equal(out['0'], 10);
  t.same(quantilesOf(emptyAggregate(0, 1, DIV), ['0.5', 0.9]), { '0.5': null, '0.9': null });
  t.throws(() => quantilesOf(w, [1.5]));
  t.throws(() => quantilesOf(w, ['abc']));
  t.end();
});

t.test('toWindowJson: public shape, mean, nulls when empty, devices only when present', (t) => {
  const w = fromRaw(60_000, 120_000, [[60_001, 10], [60_005, 30], [60_003, 101], [60_004, -1]], 3);
  const j = toWindowJson(w, ['0.5'], 0, 100);
  t.equal(j.start, 60_000);
  t.equal(j.end, 120_000);
  t.equal(j.count, 4);
  t.equal(j.sum, 140);
  t.equal(j.mean, 35);
  t.equal(j.min, -1);
  t.equal(j.max, 101);
  t.equal(j.last, 30);
  t.same(j.histogram, { min: 0, max: 100, divisions: [0, 1, 0, 1, 0, 0, 0, 0, 0, 0], under: 1, over: 1 });
  t.equal(j.devices, 3);
  t.same(Object.keys(j.quantiles), ['0.5']);
  const e = toWindowJson(emptyAggregate(0, 10, DIV), [0.5], 0, 100);
  t.same({ min: e.min, max: e.max, mean: e.mean, last: e.last, q: e.quantiles['0.5'] }, { min: null, max: null, mean: null, last: null, q: null });
  t.notOk('devices' in e);
  t.doesNotThrow(() => JSON.parse(JSON.stringify(j)));
  t.end();
});

t.test('compressAggregate bounds the centroid count, keeps the weight, sorts, and keeps quantiles', (t) => {
  const rand = rng(seed ^ 0xc0de);
  const n = 100_000;
  const values: number[] = [];
  for (let i = 0; i < n; i++) values.push(rand() < 0.5 ? rand() * rand() * 50 : 40 + rand() * 60);
  const w = fromRaw(0, 1, values.map((v) => [0, v] as [number, number]));
  compressAggregate(w);
  t.ok(w.means.length < 1000, `${w.means.length} centroids for ${n} values`);
  t.equal(w.weights.reduce((a, b) => a + b, 0), n, 'total weight conserved');
  t.ok(w.means.every((m, i) => i === 0 || m >= w.means[i - 1]!), 'sorted by mean');
  const sorted = values.slice().sort((a, b) => a - b);
  const rankOf = (x: number): number => {
    let lo = 0;
    let hi = n;
    while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m]! < x) lo = m + 1; else hi = m; }
    return lo / n;
  };
  for (const q of [0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999]) {
    const est = quantileOf(w, q)!;
    t.ok(Math.abs(rankOf(est) - q) <= 0.01, `q=${q}: ${est} rank ${rankOf(est).toFixed(5)} (seed=${seed})`);
  }
  const dup = fromRaw(0, 1, [[0, 5], [0, 5], [0, 5], [0, 1]]);
  compressAggregate(dup);
  t.same({ means: dup.means, weights: dup.weights }, { means: [1, 5], weights: [1, 3] }, 'equal means merge, the extremes stay');
  t.end();
});

t.test('histogram buckets: [min, max] closed at max, under and over outside', async (t) => {
  t.equal(histogramBucket(0, 0, 100, 10), 0);
  t.equal(histogramBucket(9.99, 0, 100, 10), 0);
  t.equal(histogramBucket(10, 0, 100, 10), 1);
  t.equal(histogramBucket(30, 0, 100, 10), 3, 'exact on an integer edge');
  t.equal(histogramBucket(90, 0, 100, 10), 9);
  t.equal(histogramBucket(100, 0, 100, 10), 9);
  t.equal(histogramBucket(-0.001, 0, 100, 10), 10, 'under');
  t.equal(histogramBucket(100.001, 0, 100, 10), 11, 'over');
});
