import t from 'tap';
import { PaneStore } from '../../workers/pane-store';
import { emptyAggregate, quantileOf } from '../../protocol/aggregate';
import type { WindowAggregateWire } from '../../protocol/messages';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const OPTS = { paneMs: 10_000, histogramDivisions: 10, histogramMin: 0, histogramMax: 100 };

function paneWire(store: PaneStore, series: number, paneNo: number): WindowAggregateWire | null {
  const slot = store.findPane(series, paneNo);
  if (slot < 0) return null;
  const w = emptyAggregate(paneNo * store.paneMs, (paneNo + 1) * store.paneMs, store.histogramDivisions);
  store.mergePaneInto(slot, w);
  return w;
}

interface Expected { count: number; sum: number; min: number; max: number; last: number; lastTs: number; values: number[] }

t.test('exact count/sum/min/max/last per pane on a shuffled multi-series stream', (t) => {
  const rand = rng(seed);
  const store = new PaneStore({ ...OPTS, initialSeries: 2, initialPanes: 2 });
  store.defineMetric(7, 'cpu');
  store.defineMetric(9, 'temp');
  const series: number[] = [];
  for (let d = 0; d < 20; d++) {
    store.defineDevice(1000 + d * 37, `dev-${d}`);
    series.push(store.seriesOf(1000 + d * 37, d % 2 === 0 ? 7 : 9));
  }
  const base = 1_700_000_000_000;
  // Values are multiples of 1/4, so sums are exact in any order; timestamps repeat to exercise ties.
  const events: { s: number; ts: number; v: number }[] = [];
  for (let i = 0; i < 20_000; i++) {
    const s = series[Math.floor(rand() * series.length)]!;
    const ts = base + Math.floor(rand() * 12) * 10_000 + Math.floor(rand() * 40) * 250;
    const v = Math.round((rand() * 140 - 20) * 4) / 4;
    events.push({ s, ts, v });
  }
  // Mostly in order per series (like a real stream) with 10% of events swapped far back.
  events.sort((a, b) => a.ts - b.ts);
  for (let i = 0; i < events.length / 10; i++) {
    const a = Math.floor(rand() * events.length);
    const b = Math.floor(rand() * events.length);
    [events[a], events[b]] = [events[b]!, events[a]!];
  }
  const expected = new Map<string, Expected>();
  for (const e of events) {
    store.add(e.s, e.ts, e.v);
    const key = `${e.s}:${Math.floor(e.ts / 10_000)}`;
    const x = expected.get(key);
    if (x === undefined) expected.set(key, { count: 1, sum: e.v, min: e.v, max: e.v, last: e.v, lastTs: e.ts, values: [e.v] });
    else {
      x.count++;
      x.sum += e.v;
      x.min = Math.min(x.min, e.v);
      x.max = Math.max(x.max, e.v);
      if (e.ts >= x.lastTs) { x.last = e.v; x.lastTs = e.ts; }
      x.values.push(e.v);
    }
  }
  t.equal(store.eventsApplied, events.length, 'eventsApplied counts add calls');
  t.equal(store.paneCount, expected.size, 'one pane per (series, pane number) seen');
  t.equal(store.seriesCount, 20);
  t.equal(store.deviceCount, 20);
  let mismatches = 0;
  for (const [key, x] of expected) {
    const [s, paneNo] = key.split(':').map(Number) as [number, number];
    const w = paneWire(store, s, paneNo);
    const ok = w !== null && w.count === x.count && w.sum === x.sum && w.min === x.min && w.max === x.max
      && w.last === x.last && w.lastTs === x.lastTs
      && w.weights.reduce((a, b) => a + b, 0) === x.count;
    if (!ok) {
      mismatches++;
      if (mismatches < 5) t.fail(`pane ${key}: got ${JSON.stringify(w && { ...w, means: w.means.length, weights: undefined })}, expected ${JSON.stringify({ ...x, values: undefined })} (seed=${seed})`);
    }
  }
  t.equal(mismatches, 0, 'every pane matches the raw stream (and its digest holds every value)');
  t.end();
});

t.test('out-of-order panes are linked newest first and found again', (t) => {
  const store = new PaneStore(OPTS);
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  const order = [5, 3, 5, 7, 3, 1, 6, 7, 2];
  for (const p of order) store.add(s, p * 10_000 + 1, p);
  const walked: number[] = [];
  for (let slot = store.newestPane(s); slot >= 0; slot = store.olderPane(slot)) walked.push(store.paneNumber(slot));
  t.same(walked, [7, 6, 5, 3, 2, 1], 'distinct panes, descending');
  for (const p of [1, 2, 3, 5, 6, 7]) {
    const n = order.filter((x) => x === p).length;
    t.equal(paneWire(store, s, p)!.count, n, `pane ${p} holds its ${n} events`);
  }
  t.equal(store.findPane(s, 4), -1, 'no pane 4');
  t.end();
});

t.test('last: latest event time wins; on equal time the later call wins', (t) => {
  const store = new PaneStore(OPTS);
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  store.add(s, 5000, 1);
  store.add(s, 9000, 2);
  store.add(s, 7000, 3); // older: not last
  store.add(s, 9000, 4); // same time, later call: last
  const w = paneWire(store, s, 0)!;
  t.equal(w.last, 4);
  t.equal(w.lastTs, 9000);
  t.end();
});

t.test('histogram edges: lower bound inclusive, value == max in the last division, under/over', (t) => {
  const store = new PaneStore(OPTS);
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  // [value, expected division] with divisions of width 10 over [0, 100]; -1 under, 10 over
  const cases: [number, number][] = [
    [-0.001, -1], [-50, -1], [0, 0], [9.999, 0], [10, 1], [29.999999, 2], [30, 3], [55, 5], [70, 7],
    [89.99, 8], [90, 9], [99.999, 9], [100, 9], [100.001, 10], [1e9, 10],
  ];
  for (const [v] of cases) store.add(s, 1, v);
  const expected = new Array<number>(10).fill(0);
  let under = 0;
  let over = 0;
  for (const [, d] of cases) {
    if (d === -1) under++;
    else if (d === 10) over++;
    else expected[d]!++;
  }
  const w = paneWire(store, s, 0)!;
  t.same(w.histogram, expected);
  t.equal(w.under, under);
  t.equal(w.over, over);
  t.end();
});

t.test('histogram over a range with non-integer division width', (t) => {
  const store = new PaneStore({ paneMs: 1000, histogramDivisions: 3, histogramMin: -1, histogramMax: 1 });
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  // divisions [-1, -1/3), [-1/3, 1/3), [1/3, 1]
  for (const v of [-1, -0.34, -0.33, 0, 0.33, 0.34, 1, 1.0000001, -1.0000001]) store.add(s, 0, v);
  const w = paneWire(store, s, 0)!;
  t.same(w.histogram, [2, 3, 2]);
  t.equal(w.under, 1);
  t.equal(w.over, 1);
  t.end();
});

t.test('quantiles are within 1% rank error of exact sorting on 100k random values', (t) => {
  const rand = rng(seed ^ 0x5eed);
  const store = new PaneStore({ ...OPTS, paneMs: 1_000_000 });
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  const n = 100_000;
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // a skewed mix: exponential body with a uniform tail
    values[i] = rand() < 0.8 ? -Math.log(1 - rand()) * 10 : rand() * 100;
    store.add(s, i, values[i]!);
  }
  const sorted = Float64Array.from(values).sort();
  const rankOf = (x: number): number => {
    // fraction of values <= x (upper rank) and < x (lower rank); error is distance to the band
    let lo = 0;
    let hi = n;
    while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m]! < x) lo = m + 1; else hi = m; }
    return lo / n;
  };
  const w = paneWire(store, s, 0)!;
  const digest = store.paneDigest(store.findPane(s, 0))!;
  for (const q of [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]) {
    const est = quantileOf(w, q)!;
    const err = Math.abs(rankOf(est) - q);
    t.ok(err <= 0.01, `q=${q}: estimate ${est.toFixed(4)} has rank error ${err.toFixed(5)} (seed=${seed})`);
    const lib = digest.percentile(q);
    t.ok(Math.abs(rankOf(lib) - q) <= 0.01, `q=${q}: the pane's TDigest.percentile agrees within 1% rank too`);
  }
  t.equal(quantileOf(w, 0), sorted[0], 'q=0 is the exact min');
  t.equal(quantileOf(w, 1), sorted[n - 1], 'q=1 is the exact max');
  t.end();
});

t.test('names: idempotent definitions, conflicts throw, ids must be defined before use', (t) => {
  const store = new PaneStore(OPTS);
  store.defineDevice(3_000_000, 'far');
  store.defineDevice(3_000_000, 'far');
  t.equal(store.deviceCount, 1);
  t.throws(() => store.defineDevice(3_000_000, 'other'), /already bound/);
  t.throws(() => store.defineDevice(4, 'far'), /already bound/);
  store.defineMetric(2, 'cpu');
  store.defineMetric(2, 'cpu');
  t.throws(() => store.defineMetric(2, 'mem'), /already bound/);
  t.throws(() => store.seriesOf(5, 2), /before defineDevice/);
  t.throws(() => store.seriesOf(3_000_000, 3), /before defineMetric/);
  const s = store.seriesOf(3_000_000, 2);
  t.equal(store.seriesOf(3_000_000, 2), s, 'seriesOf is get-or-create');
  t.equal(store.findSeries(3_000_000, 9), -1);
  t.same(store.seriesOfDevice(3_000_000), [s]);
  t.same(store.seriesOfMetric(2), [s]);
  t.equal(store.deviceIdOf('far'), 3_000_000);
  t.equal(store.metricIdOf('cpu'), 2);
  t.throws(() => store.add(s + 1, 0, 1), /unknown series/);
  t.throws(() => store.add(s, -20_000, 1), /out of range/);
  t.end();
});

t.test('freePane unlinks the pane, forgets it, and reuses its slot', (t) => {
  const store = new PaneStore({ ...OPTS, initialPanes: 1 });
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  for (const p of [1, 2, 3]) for (let i = 0; i < 40; i++) store.add(s, p * 10_000 + i, i);
  const middle = store.findPane(s, 2);
  store.freePane(middle);
  t.equal(store.paneCount, 2);
  t.equal(store.findPane(s, 2), -1);
  const walked: number[] = [];
  for (let slot = store.newestPane(s); slot >= 0; slot = store.olderPane(slot)) walked.push(store.paneNumber(slot));
  t.same(walked, [3, 1]);
  const latest = store.findPane(s, 3);
  store.freePane(latest); // the cached latest pane, with values still buffered
  t.equal(store.paneCount, 1);
  store.add(s, 9 * 10_000, 5);
  const reused = store.findPane(s, 9);
  t.ok(reused === middle || reused === latest, `slot ${reused} was reused from the free list`);
  store.add(s, 9 * 10_000 + 1, 7);
  const w = paneWire(store, s, 9)!;
  t.equal(w.count, 2);
  t.equal(w.sum, 12);
  t.equal(w.weights.reduce((a, b) => a + b, 0), 2, 'no values of the freed pane leak into the new one');
  t.throws(() => store.freePane(store.findPane(s, 3)), /not in use/);
  t.end();
});
