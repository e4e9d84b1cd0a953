import t from 'tap';
import { rng } from '../helpers/rng';
import { Packr } from 'msgpackr';
import { PaneStore, type PaneStoreSnapshot } from '../../workers/pane-store';
import { deviceSeries, fleetSeries, listDevices, topDevices } from '../../workers/shard-queries';
import { emptyAggregate, quantileOf } from '../../protocol/aggregate';
import { DIGEST_COMPRESSION, quantileSorted } from '../../protocol/digest';
import type { WindowAggregateWire } from '../../protocol/messages';

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
  t.ok(digest.means.length <= DIGEST_COMPRESSION + 2, `bounded: ${digest.means.length} centroids for ${n} values`);
  t.equal(digest.weights.reduce((a, b) => a + b, 0), n, 'the centroids hold every value');
  for (const q of [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]) {
    const est = quantileOf(w, q)!;
    const err = Math.abs(rankOf(est) - q);
    t.ok(err <= 0.01, `q=${q}: estimate ${est.toFixed(4)} has rank error ${err.toFixed(5)} (seed=${seed})`);
    const own = quantileSorted(digest.means, digest.weights, digest.means.length, sorted[0]!, sorted[n - 1]!, q);
    t.equal(own, est, `q=${q}: the pane's own centroids (paneDigest) give the same answer`);
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

t.test('snapshot -> msgpackr -> restore gives a store that answers identically, now and after more events', (t) => {
  const rand = rng(seed ^ 0x5a7);
  const store = new PaneStore({ ...OPTS, initialSeries: 4, initialPanes: 8 });
  const devices = ['d-a', 'd-b', 'd-c', 'd-d', 'd-e'];
  devices.forEach((d, i) => store.defineDevice(100 + i * 7, d));
  store.defineMetric(3, 'cpu');
  store.defineMetric(4, 'temp');
  store.defineMetric(5, 'unused');
  store.defineDevice(999, 'no-series-yet');
  const base = 1_700_000_000_000 - (1_700_000_000_000 % 60_000);
  const feed = (target: PaneStore[], n: number, from: number, span: number, r: () => number): void => {
    for (let i = 0; i < n; i++) {
      const d = Math.floor(r() * devices.length);
      const m = r() < 0.7 ? 3 : 4;
      // busy and sparse series, in order with 10% late events; values on a 1/4 grid: exact sums
      const ts = from + Math.floor((r() < 0.9 ? i / n : r()) * span);
      const v = Math.round((d === 0 ? r() * 5 : r() * r() * 140 - 10) * 4) / 4;
      for (const s of target) s.add(s.seriesOf(100 + d * 7, m), ts, v);
    }
  };
  feed([store], 30_000, base, 300_000, rand);
  const queries = (s: PaneStore): unknown => ({
    fleet: ['cpu', 'temp'].map((metric) => fleetSeries(s, { kind: 'fleetSeries', metric, from: base, to: base + 900_000, resolutionMs: 60_000 })),
    device: devices.map((deviceId) => deviceSeries(s, { kind: 'deviceSeries', deviceId, metric: 'cpu', from: base, to: base + 900_000, resolutionMs: 10_000 })),
    top: (['p50', 'p99', 'max', 'count'] as const).map((by) => topDevices(s, { kind: 'top', metric: 'cpu', from: base, to: base + 900_000, by, n: 10 })),
    list: listDevices(s, { kind: 'devices', prefix: '', limit: 100 }),
    counts: [s.seriesCount, s.paneCount, s.deviceCount, s.eventsApplied],
  });
  const snap = store.snapshot();
  const packr = new Packr({ moreTypes: true });
  const bytes = packr.pack(snap);
  const decoded = packr.unpack(bytes) as PaneStoreSnapshot;
  t.ok(decoded.groups[0]!.means instanceof Float64Array && decoded.groups[0]!.paneSeries instanceof Int32Array, 'typed arrays survive msgpackr (moreTypes)');
  const restored = PaneStore.restore(OPTS, decoded);
  t.equal(restored.paneCount, store.paneCount);
  t.equal(restored.seriesCount, store.seriesCount);
  t.equal(restored.eventsApplied, 30_000);
  t.equal(restored.deviceIdOf('no-series-yet'), 999, 'names without series are kept');
  t.equal(restored.metricIdOf('unused'), 5);
  t.same(queries(restored), queries(store), 'identical answers right after restore');
  // more events (some late, into restored old panes; some into new panes), same stream for both
  const seed2 = Math.floor(rand() * 1e9);
  feed([store], 20_000, base + 200_000, 600_000, rng(seed2));
  feed([restored], 20_000, base + 200_000, 600_000, rng(seed2));
  const a = queries(store);
  const b = queries(restored);
  t.same(b, a, `identical answers after 20k more events, exact fields and quantiles (seed=${seed})`);
  t.ok(JSON.stringify(a).includes('"means"'), 'the compared answers carry centroids');
  // (snapshot() also normalises the store it reads, so it is compared last)
  t.same(restored.snapshot(), store.snapshot(), 'and their snapshots are equal');
  t.end();
});

t.test('restore refuses other settings and an inconsistent snapshot', (t) => {
  const store = new PaneStore(OPTS);
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  for (let i = 0; i < 500; i++) store.add(s, i * 50, i % 37);
  const snap = store.snapshot();
  t.throws(() => PaneStore.restore({ ...OPTS, paneMs: 5000 }, snap), /paneMs/);
  t.throws(() => PaneStore.restore({ ...OPTS, histogramDivisions: 20 }, snap), /histogramDivisions/);
  t.throws(() => PaneStore.restore({ ...OPTS, digest: false }, snap), /digest/);
  const badWeight = structuredClone(snap);
  badWeight.groups[0]!.weights[0] = badWeight.groups[0]!.weights[0]! + 1;
  t.throws(() => PaneStore.restore(OPTS, badWeight), /centroids weigh/);
  const badHist = structuredClone(snap);
  badHist.groups[0]!.histogram[0] = badHist.groups[0]!.histogram[0]! + 1;
  t.throws(() => PaneStore.restore(OPTS, badHist), /histogram holds/);
  const missing = structuredClone(snap);
  missing.groups.pop();
  t.throws(() => PaneStore.restore(OPTS, missing), /pane groups for/);
  const renamed = structuredClone(snap);
  renamed.groups[1]!.paneNo = renamed.groups[0]!.paneNo + 0.5;
  t.throws(() => PaneStore.restore(OPTS, renamed), /was recorded/);
  const twice = structuredClone(snap);
  twice.groups[0]!.paneSeries = Int32Array.from([s, s]);
  twice.livePanes[0] = 2;
  t.throws(() => PaneStore.restore(OPTS, twice), /order|entries/);
  t.throws(() => PaneStore.restore(OPTS, { ...snap, version: 99 }), /version/);
  t.doesNotThrow(() => PaneStore.restore(OPTS, structuredClone(snap)), 'a structured clone restores');
  const noDigest = new PaneStore({ ...OPTS, digest: false });
  noDigest.defineDevice(1, 'a');
  noDigest.defineMetric(1, 'm');
  noDigest.add(noDigest.seriesOf(1, 1), 5, 5);
  const plain = noDigest.snapshot();
  t.equal(plain.groups[0]!.means.length, 0);
  t.equal(PaneStore.restore({ ...OPTS, digest: false }, plain).paneCount, 1);
  t.end();
});

t.test('late events into older panes keep exact fields and quantiles within 1%', (t) => {
  const rand = rng(seed ^ 0x1a7e);
  const store = new PaneStore({ ...OPTS, paneMs: 1000 });
  store.defineDevice(1, 'a');
  store.defineMetric(1, 'm');
  const s = store.seriesOf(1, 1);
  const byPane: number[][] = [[], [], []];
  // pane 2 gets in-order events, then panes 0 and 1 get 20k late events each, interleaved
  for (let i = 0; i < 3000; i++) { const v = rand() * 100; store.add(s, 2000 + (i % 1000), v); byPane[2]!.push(v); }
  for (let i = 0; i < 40_000; i++) {
    const p = i % 2;
    const v = p === 0 ? -Math.log(1 - rand()) * 10 : 50 + 10 * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    store.add(s, p * 1000 + (i % 1000), v);
    byPane[p]!.push(v);
  }
  for (let p = 0; p < 3; p++) {
    const values = byPane[p]!;
    const sorted = Float64Array.from(values).sort();
    const w = paneWire(store, s, p)!;
    t.equal(w.count, values.length, `pane ${p}: count`);
    t.equal(w.min, sorted[0], `pane ${p}: min`);
    t.equal(w.max, sorted[sorted.length - 1], `pane ${p}: max`);
    t.ok(w.means.length <= DIGEST_COMPRESSION + 2, `pane ${p}: ${w.means.length} centroids`);
    for (const q of [0.01, 0.5, 0.99]) {
      const est = quantileOf(w, q)!;
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m]! < est) lo = m + 1; else hi = m; }
      t.ok(Math.abs(lo / sorted.length - q) <= 0.01, `pane ${p} q=${q}: rank ${(lo / sorted.length).toFixed(4)} (seed=${seed})`);
    }
  }
  t.end();
});

t.test('incremental snapshots: a store of the latest group per pane number restores the same store', (t) => {
  const rand = rng(seed ^ 0x1c3);
  const store = new PaneStore({ ...OPTS, initialSeries: 4, initialPanes: 8 });
  store.defineMetric(1, 'cpu');
  for (let d = 0; d < 50; d++) store.defineDevice(d, `dev-${d}`);
  const base = 1_700_000_000_000 - (1_700_000_000_000 % 60_000);
  // the checkpoint store: pane number -> its group, as Store.writeCheckpoint keeps them
  const stored = new Map<number, PaneStoreSnapshot['groups'][number]>();
  let last: PaneStoreSnapshot | null = null;
  const checkpoint = (full: boolean): PaneStoreSnapshot => {
    const snap = structuredClone(store.snapshot(full));
    if (full) stored.clear();
    for (const g of snap.groups) stored.set(g.paneNo, g);
    const live = new Set(snap.livePaneNos);
    for (const p of [...stored.keys()]) if (!live.has(p)) stored.delete(p);
    last = snap;
    return snap;
  };
  let now = base;
  let written = 0;
  let total = 0;
  for (let round = 0; round < 60; round++) {
    // in-order load with some late events, and the oldest pane numbers closed as a watermark would
    for (let i = 0; i < 300; i++) {
      const ts = rand() < 0.997 ? now + Math.floor(rand() * 10_000) : now - Math.floor(rand() * 60_000);
      store.add(store.seriesOf(Math.floor(rand() * 50), 1), ts, Math.round(rand() * 400) / 4);
    }
    now += 10_000;
    const closeBelow = Math.floor((now - 90_000) / 10_000);
    for (let s = 0; s < store.seriesCount; s++) {
      const old: number[] = [];
      for (let p = store.newestPane(s); p >= 0; p = store.olderPane(p)) if (store.paneNumber(p) < closeBelow) old.push(p);
      for (const p of old) store.freePane(p);
    }
    const snap = checkpoint(round === 0);
    written += snap.groups.length;
    total += snap.livePaneNos.length;
  }
  t.ok(written < total / 2, `an incremental checkpoint writes a fraction of the groups (${written} of ${total})`);
  let linked = true;
  for (let s = 0; s < store.seriesCount; s++) {
    const down: number[] = [];
    for (let p = store.newestPane(s); p >= 0; p = store.olderPane(p)) down.push(p);
    const up: number[] = [];
    for (let p = store.oldestPane(s); p >= 0; p = store.newerPane(p)) up.push(p);
    if (JSON.stringify(up) !== JSON.stringify(down.reverse())) linked = false;
  }
  t.ok(linked, 'every series: oldest-to-newest is newest-to-oldest reversed, after creating and freeing panes');
  const restored = PaneStore.restore(OPTS, { ...last!, groups: [...stored.values()] });
  t.equal(restored.paneCount, store.paneCount);
  const answer = (s: PaneStore): unknown => fleetSeries(s, { kind: 'fleetSeries', metric: 'cpu', from: base, to: now + 60_000, resolutionMs: 10_000 });
  t.same(answer(restored), answer(store), 'the restored store answers as the live one');
  t.same(store.snapshot(false).groups, [], 'nothing changed: an incremental snapshot writes no group');
  t.same(restored.snapshot(false).groups, [], 'a restored store has nothing to write either');
  store.add(store.seriesOf(3, 1), now - 20_000, 50);
  t.same(store.snapshot(false).groups.map((g) => g.paneNo), [Math.floor((now - 20_000) / 10_000)], 'one late event: its pane number only');
  t.end();
});
