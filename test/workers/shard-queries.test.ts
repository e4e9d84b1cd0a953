import t from 'tap';
import { rng } from '../helpers/rng';
import { PaneStore } from '../../workers/pane-store';
import { deviceSeries, distinctDevices, fleetSeries, listDevices, metricLatest, shardStats, topDevices } from '../../workers/shard-queries';
import type { TopBy, WindowAggregateWire } from '../../protocol/messages';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const PANE = 10_000;
if ((1_699_999_980_000 / 60_000) % 1 !== 0) throw new Error('BASE must be minute-aligned');
const BASE = 1_699_999_980_000; // a multiple of 1 min (and so of 10 s)
interface Ev { device: string; metric: string; ts: number; v: number }

const DEVICES = ['alpha-1', 'alpha-2', 'alpha-10', 'beta-1', 'beta-2', 'gamma'];
const METRICS = ['cpu', 'temp', 'mem'];

function build(rand: () => number): { store: PaneStore; events: Ev[] } {
  const store = new PaneStore({ paneMs: PANE, histogramDivisions: 10, histogramMin: 0, histogramMax: 100 });
  const events: Ev[] = [];
  // sparse global ids, as the front-end assigns them
  DEVICES.forEach((d, i) => store.defineDevice(1000 + i * 50_000, d));
  METRICS.forEach((m, i) => store.defineMetric(7 + i * 3, m));
  for (let i = 0; i < 30_000; i++) {
    const di = Math.floor(rand() * DEVICES.length);
    const mi = rand() < 0.1 ? 2 : Math.floor(rand() * 2);
    if (DEVICES[di] === 'gamma' && mi === 0) continue; // gamma sends no cpu
    // 10 minutes of data; gaps come from the randomness at pane level for some devices
    const ts = BASE + Math.floor(rand() * 600_000);
    if (DEVICES[di] === 'beta-2' && Math.floor((ts - BASE) / 60_000) % 3 === 1) continue; // silent minutes
    const v = Math.round((rand() * 120 - 10 + di * 3) * 4) / 4;
    events.push({ device: DEVICES[di]!, metric: METRICS[mi]!, ts, v });
  }
  // mostly in time order, with some late arrivals
  events.sort((a, b) => a.ts - b.ts);
  for (let i = 0; i < 1000; i++) {
    const a = Math.floor(rand() * events.length);
    const b = Math.min(events.length - 1, a + Math.floor(rand() * 500));
    [events[a], events[b]] = [events[b]!, events[a]!];
  }
  for (const e of events) {
    const s = store.seriesOf(1000 + DEVICES.indexOf(e.device) * 50_000, 7 + METRICS.indexOf(e.metric) * 3);
    store.add(s, e.ts, e.v);
  }
  return { store, events };
}

interface Ref { start: number; count: number; sum: number; min: number; max: number; under: number; over: number; devices: Set<string> }

/** expected windows from the raw events alone */
function refWindows(events: Ev[], from: number, to: number, res: number, pick: (e: Ev) => boolean): Ref[] {
  const map = new Map<number, Ref>();
  for (const e of events) {
    if (!pick(e)) continue;
    const start = Math.floor(e.ts / res) * res;
    if (!(start < to && start + res > from)) continue;
    let r = map.get(start);
    if (!r) { r = { start, count: 0, sum: 0, min: Infinity, max: -Infinity, under: 0, over: 0, devices: new Set() }; map.set(start, r); }
    r.count++;
    r.sum += e.v;
    r.min = Math.min(r.min, e.v);
    r.max = Math.max(r.max, e.v);
    if (e.v < 0) r.under++;
    if (e.v > 100) r.over++;
    r.devices.add(e.device);
  }
  return [...map.values()].sort((a, b) => a.start - b.start);
}

function shape(w: WindowAggregateWire, res: number): unknown {
  return { start: w.start, end: w.end - res, count: w.count, sum: w.sum, min: w.min, max: w.max, under: w.under, over: w.over, histTotal: w.histogram.reduce((a, b) => a + b, 0) + w.under + w.over };
}
function refShape(r: Ref): unknown {
  return { start: r.start, end: r.start, count: r.count, sum: r.sum, min: r.min, max: r.max, under: r.under, over: r.over, histTotal: r.count };
}

const { store, events } = build(rng(seed));
// ranges not aligned to panes nor to minutes
const RANGES: [number, number][] = [[BASE + 95_000, BASE + 431_000], [BASE + 60_000, BASE + 180_000], [BASE - 60_000, BASE + 700_000], [BASE + 120_000, BASE + 120_001], [BASE + 5_000, BASE + 5_000]];

t.test('deviceSeries matches windows computed from the raw events, at pane and coarser resolutions', (t) => {
  for (const res of [PANE, 60_000, 300_000]) {
    for (const [from, to] of RANGES) {
      for (const device of DEVICES) {
        for (const metric of METRICS) {
          const r = deviceSeries(store, { kind: 'deviceSeries', deviceId: device, metric, from, to, resolutionMs: res });
          const exp = refWindows(events, from, to, res, (e) => e.device === device && e.metric === metric);
          const got = r.windows.map((w) => shape(w, res));
          if (JSON.stringify(got) !== JSON.stringify(exp.map(refShape))) {
            t.same(got, exp.map(refShape), `${device}/${metric} res=${res} [${from - BASE}, ${to - BASE}) (seed=${seed})`);
            return t.end();
          }
          if (!r.found) t.fail('known device reported as not found');
        }
      }
    }
  }
  t.pass('all device/metric/range/resolution combinations match');
  t.end();
});

t.test('deviceSeries: unknown device is not found; unknown metric is an empty series; resolution checked', (t) => {
  t.same(deviceSeries(store, { kind: 'deviceSeries', deviceId: 'nobody', metric: 'cpu', from: BASE, to: BASE + 1e6, resolutionMs: PANE }), { found: false, windows: [] });
  t.same(deviceSeries(store, { kind: 'deviceSeries', deviceId: 'gamma', metric: 'cpu', from: BASE, to: BASE + 1e6, resolutionMs: PANE }), { found: true, windows: [] });
  t.same(deviceSeries(store, { kind: 'deviceSeries', deviceId: 'gamma', metric: 'nope', from: BASE, to: BASE + 1e6, resolutionMs: PANE }), { found: true, windows: [] });
  t.throws(() => deviceSeries(store, { kind: 'deviceSeries', deviceId: 'gamma', metric: 'temp', from: BASE, to: BASE + 1e6, resolutionMs: 15_000 }), /multiple of paneMs/);
  t.end();
});

t.test('fleetSeries merges all devices per window with exact distinct device counts', (t) => {
  for (const res of [PANE, 60_000, 600_000]) {
    for (const [from, to] of RANGES) {
      for (const metric of METRICS) {
        const r = fleetSeries(store, { kind: 'fleetSeries', metric, from, to, resolutionMs: res });
        const exp = refWindows(events, from, to, res, (e) => e.metric === metric);
        const got = r.windows.map((w) => ({ ...(shape(w, res) as object), devices: w.devices }));
        const want = exp.map((x) => ({ ...(refShape(x) as object), devices: x.devices.size }));
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          t.same(got, want, `${metric} res=${res} [${from - BASE}, ${to - BASE}) (seed=${seed})`);
          return t.end();
        }
        const distinct = new Set(exp.flatMap((x) => [...x.devices]));
        t.equal(r.devices, distinct.size, `${metric} res=${res}: distinct devices over the range`);
      }
    }
  }
  t.same(fleetSeries(store, { kind: 'fleetSeries', metric: 'nope', from: BASE, to: BASE + 1, resolutionMs: PANE }), { windows: [], devices: 0 });
  t.end();
});

t.test('a silent device lowers the distinct count of the windows it skipped', (t) => {
  // beta-2 sends nothing in minutes 1, 4, 7 (see build): those minute windows count one device fewer
  const r = fleetSeries(store, { kind: 'fleetSeries', metric: 'temp', from: BASE, to: BASE + 600_000, resolutionMs: 60_000 });
  const byMinute = r.windows.map((w) => w.devices);
  t.same(byMinute, [6, 5, 6, 6, 5, 6, 6, 5, 6, 6]);
  t.end();
});

t.test('distinctDevices: exact distinct devices across several metrics, as the raw events give', (t) => {
  for (const res of [PANE, 60_000, 600_000]) {
    for (const [from, to] of RANGES) {
      for (const metrics of [['cpu'], ['cpu', 'temp'], ['temp', 'mem', 'cpu'], ['mem', 'nope']]) {
        const r = distinctDevices(store, { kind: 'distinctDevices', metrics, from, to, resolutionMs: res });
        const exp = new Set(refWindows(events, from, to, res, (e) => metrics.includes(e.metric)).flatMap((x) => [...x.devices]));
        t.equal(r.devices, exp.size, `${metrics.join('+')} res=${res} [${from - BASE}, ${to - BASE}) (seed=${seed})`);
      }
    }
  }
  t.end();
});

t.test('distinctDevices: a device with data in both metrics counts once; windows outside the range do not count', (t) => {
  const s = new PaneStore({ paneMs: PANE, histogramDivisions: 10, histogramMin: 0, histogramMax: 100 });
  ['both', 'clicker', 'viewer', 'earlier', 'later'].forEach((d, i) => s.defineDevice(i * 3, d));
  s.defineMetric(0, 'click');
  s.defineMetric(1, 'impression');
  const hour = 3_600_000;
  const H = Math.floor(BASE / hour) * hour;
  s.add(s.seriesOf(0, 0), H + 5, 1);
  s.add(s.seriesOf(0, 1), H + 1_800_000, 1);
  s.add(s.seriesOf(3, 0), H + hour - 1, 1);
  s.add(s.seriesOf(6, 1), H + 10, 1);
  s.add(s.seriesOf(9, 0), H - 1, 1);
  s.add(s.seriesOf(12, 1), H + hour, 1);
  const task = { kind: 'distinctDevices' as const, metrics: ['click', 'impression'], from: H, to: H + hour, resolutionMs: hour };
  t.same(distinctDevices(s, task), { devices: 3 });
  t.same(distinctDevices(s, { ...task, metrics: ['click'] }), { devices: 2 });
  t.same(distinctDevices(s, { ...task, metrics: ['impression'] }), { devices: 2 });
  t.same(distinctDevices(s, { ...task, from: H - hour, to: H + 2 * hour }), { devices: 5 });
  t.same(distinctDevices(s, { ...task, metrics: [] }), { devices: 0 });
  t.throws(() => distinctDevices(s, { ...task, resolutionMs: 15_000 }), /multiple of paneMs/);
  t.end();
});

t.test('metricLatest: start of the newest pane of the metric, of one device or of all', (t) => {
  const newest = (pick: (e: Ev) => boolean): number | null => {
    let m: number | null = null;
    for (const e of events) if (pick(e) && (m === null || e.ts > m)) m = e.ts;
    return m === null ? null : Math.floor(m / PANE) * PANE;
  };
  for (const metric of METRICS) {
    t.same(metricLatest(store, { kind: 'metricLatest', metric }), { start: newest((e) => e.metric === metric) }, metric);
    for (const device of DEVICES) {
      t.same(metricLatest(store, { kind: 'metricLatest', metric, deviceId: device }),
        { start: newest((e) => e.metric === metric && e.device === device) }, `${device}/${metric}`);
    }
  }
  t.same(metricLatest(store, { kind: 'metricLatest', metric: 'nope' }), { start: null });
  t.same(metricLatest(store, { kind: 'metricLatest', metric: 'cpu', deviceId: 'nobody' }), { start: null });
  t.end();
});

function exactQuantile(sorted: number[], q: number): [number, number] {
  // the band of values whose rank is within 2% of q (small samples: a digest is close, not exact)
  const lo = sorted[Math.max(0, Math.floor((q - 0.02) * sorted.length))]!;
  const hi = sorted[Math.min(sorted.length - 1, Math.ceil((q + 0.02) * sorted.length))]!;
  return [lo, hi];
}

t.test('topDevices by every `by` matches the raw events (pane granularity, ties by deviceId)', (t) => {
  const [from, to] = [BASE + 95_000, BASE + 431_000];
  const perDevice = new Map<string, number[]>();
  for (const e of events) {
    const ps = Math.floor(e.ts / PANE) * PANE;
    if (e.metric !== 'temp' || !(ps < to && ps + PANE > from)) continue;
    const list = perDevice.get(e.device) ?? [];
    list.push(e.v);
    perDevice.set(e.device, list);
  }
  const stats = [...perDevice].map(([device, vs]) => {
    const sum = vs.reduce((a, b) => a + b, 0);
    return { device, count: vs.length, sum, min: Math.min(...vs), max: Math.max(...vs), mean: sum / vs.length, sorted: vs.slice().sort((a, b) => a - b) };
  });
  for (const by of ['count', 'sum', 'min', 'max', 'mean'] as TopBy[]) {
    for (const n of [1, 3, 100]) {
      const r = topDevices(store, { kind: 'top', metric: 'temp', from, to, by, n });
      const want = stats.map((s) => ({ deviceId: s.device, value: s[by as 'count'], count: s.count, sum: s.sum, min: s.min, max: s.max, mean: s.mean }))
        .sort((a, b) => (b.value - a.value) || (a.deviceId < b.deviceId ? -1 : 1)).slice(0, n);
      t.same(r.rows, want, `by=${by} n=${n}`);
    }
  }
  for (const [by, q] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]] as [TopBy, number][]) {
    const r = topDevices(store, { kind: 'top', metric: 'temp', from, to, by, n: 100 });
    t.equal(r.rows.length, stats.length, `by=${by}: every device with data`);
    for (const row of r.rows) {
      const s = stats.find((x) => x.device === row.deviceId)!;
      const [lo, hi] = exactQuantile(s.sorted, q);
      t.ok(row.value >= lo && row.value <= hi, `by=${by} ${row.deviceId}: ${row.value} within [${lo}, ${hi}] (seed=${seed})`);
      t.equal(row.count, s.count);
    }
    for (let i = 1; i < r.rows.length; i++) t.ok(r.rows[i - 1]!.value >= r.rows[i]!.value, `by=${by}: sorted descending`);
  }
  t.end();
});

t.test('topDevices: ties ordered by deviceId ascending, n respected, quantiles separate distinct devices', (t) => {
  const s = new PaneStore({ paneMs: PANE, histogramDivisions: 4, histogramMin: 0, histogramMax: 100 });
  s.defineMetric(1, 'm');
  const names = ['d-c', 'd-a', 'd-b', 'd-z'];
  names.forEach((n, i) => s.defineDevice(i, n));
  // d-a, d-b, d-c share max 50 (capped); d-z has max 19 but the most values; distributions are shifted by device
  const shift: Record<string, number> = { 'd-a': 0, 'd-b': 10, 'd-c': 20, 'd-z': -40 };
  names.forEach((n, i) => {
    const series = s.seriesOf(i, 1);
    const count = n === 'd-z' ? 500 : 200;
    for (let k = 0; k < count; k++) s.add(series, BASE + k * 37, Math.min(50, shift[n]! + (k % 60)));
  });
  const byMax = topDevices(s, { kind: 'top', metric: 'm', from: BASE, to: BASE + 1e6, by: 'max', n: 3 });
  t.same(byMax.rows.map((r) => r.deviceId), ['d-a', 'd-b', 'd-c'], 'equal max: deviceId ascending; n=3 cuts d-z');
  const byCount = topDevices(s, { kind: 'top', metric: 'm', from: BASE, to: BASE + 1e6, by: 'count', n: 1 });
  t.same(byCount.rows.map((r) => [r.deviceId, r.value]), [['d-z', 500]]);
  const byP50 = topDevices(s, { kind: 'top', metric: 'm', from: BASE, to: BASE + 1e6, by: 'p50', n: 4 });
  t.same(byP50.rows.map((r) => r.deviceId), ['d-c', 'd-b', 'd-a', 'd-z'], 'p50 orders by the shifted medians');
  t.same(topDevices(s, { kind: 'top', metric: 'm', from: BASE + 1e7, to: BASE + 2e7, by: 'max', n: 3 }).rows, [], 'no data in range');
  t.end();
});

t.test('listDevices by prefix: sorted, limited, metrics sorted', (t) => {
  const metricsOf = (d: string): string[] => [...new Set(events.filter((e) => e.device === d).map((e) => e.metric))].sort();
  const expect = (prefix: string, limit: number): unknown =>
    DEVICES.filter((d) => d.startsWith(prefix)).sort().slice(0, limit).map((d) => ({ deviceId: d, metrics: metricsOf(d) }));
  for (const [prefix, limit] of [['alpha', 10], ['alpha-1', 10], ['alpha', 2], ['', 100], ['b', 1], ['zzz', 5], ['gamma', 5]] as [string, number][]) {
    t.same(listDevices(store, { kind: 'devices', prefix, limit }), { devices: expect(prefix, limit) }, `prefix=${JSON.stringify(prefix)} limit=${limit}`);
  }
  t.same(listDevices(store, { kind: 'devices', prefix: 'alpha', limit: 10 }).devices.map((d) => d.deviceId), ['alpha-1', 'alpha-10', 'alpha-2']);
  t.end();
});

t.test('shardStats reports the store counters', (t) => {
  const series = new Set(events.map((e) => `${e.device}/${e.metric}`)).size;
  const panes = new Set(events.map((e) => `${e.device}/${e.metric}/${Math.floor(e.ts / PANE)}`)).size;
  t.match(shardStats({ store, rollups: null, time: null, resolutions: [PANE], shard: 3 }, 42, 7),
    { shard: 3, devices: DEVICES.length, series, panes, eventsApplied: events.length, recordsApplied: 42, lateEvents: 7, watermark: null });
  t.equal(shardStats(store).recordsApplied, 0);
  t.end();
});
