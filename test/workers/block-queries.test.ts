import fs from 'node:fs';
import t from 'tap';
import { rng } from '../helpers/rng';
import { tempDir } from '../helpers/engine';
import { BlockStore, RollupStore } from '../../storage';
import { histogramBucket, quantileOf, emptyAggregate, type TopBy, type WindowAggregateWire } from '../../protocol';
import { ROUTE_HEAD, ROUTE_LATE, ShardState } from '../../workers/shard-state';
import {
  deviceSeries, distinctDevices, fleetSeries, forceHeadScanForTests, headSummariesOf, listDevices, metricLatest, sensorRange, shardStats, topDevices,
} from '../../workers/block-queries';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const PANE = 10_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const RESOLUTIONS = [PANE, MIN, HOUR, DAY];
const HIST = { divisions: 10, min: 0, max: 100 };
/** 20 min before a day (and hour) boundary: the data crosses both */
const DAY0 = Math.floor(1_700_000_000_000 / DAY) * DAY + DAY;
const BASE = DAY0 - 20 * MIN;
const SPAN_MS = 40 * MIN;

interface Reading { device: string; deviceId: number; metric: string; ts: number; v: number }

interface Built {
  state: ShardState;
  readings: Reading[];
  close(): Promise<void>;
}

/**
 * sealDelayMs: 5 min (the lateness: slices sealed as the watermark passes them, so many stay open
 * for the head's query paths) unless a test asks for the default (early sealing, ~2 open slices).
 */
function open(chunkSeries: number, sealDelayMs: number | undefined = 300_000): { state: ShardState; close(): Promise<void> } {
  const dir = tempDir('sluice-block-queries-');
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  const state = new ShardState({
    shard: 0, paneMs: PANE, latenessMs: 300_000, lateHorizonMs: 600_000, resolutions: RESOLUTIONS, histogram: HIST, lateLogSize: 1000, chunkSeries, sealDelayMs,
  }, blocks, rollups, (e) => { throw e; });
  return {
    state,
    close: async () => {
      await blocks.close();
      await rollups.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const DEVICES = Array.from({ length: 14 }, (_, i) => `dev-${String(i).padStart(2, '0')}`);
const METRICS = ['cpu', 'temp', 'mem', 'rare'];

/**
 * A seeded stream as the applier feeds it: 40 minutes of readings from 14 devices (sparse global
 * ids) in 4 metrics, the clock moving forward with readings up to ~5 min late (some too late,
 * left out), a batch's afterRecord() every few readings. 'rare' comes from two devices only; 'quiet'
 * sends temp in the first minutes only. `afterRecord` (queries between appends) sees each batch.
 */
/** batch seqs for afterRecord, as the ring's records carry them */
let seqs = 0;
function nextSeq(): number {
  return ++seqs;
}

async function build(s: number, afterRecord?: (state: ShardState, readings: Reading[], records: number) => Promise<void>,
  sealDelayMs: number | undefined = 300_000): Promise<Built> {
  const rand = rng(s);
  const { state, close } = open(8, sealDelayMs);
  const table = state.series;
  const ids = new Map<string, number>();
  [...DEVICES, 'quiet'].forEach((d, i) => {
    ids.set(d, 1000 + i * 37);
    table.defineDevice(1000 + i * 37, d);
  });
  METRICS.forEach((m, i) => table.defineMetric(3 + i * 5, m));
  const metricId = (m: string): number => 3 + METRICS.indexOf(m) * 5;
  const readings: Reading[] = [];
  let clock = BASE;
  let records = 0;
  const push = (device: string, metric: string, ts: number, v: number): void => {
    const series = table.seriesOf(ids.get(device)!, metricId(metric));
    // as the applier: the head, a correction of a sealed slice (a delta block), or too late
    const route = state.route(ts);
    if (route === ROUTE_LATE) return;
    if (route === ROUTE_HEAD) state.apply(series, ts, v);
    else state.correct(series, ts, v);
    readings.push({ device, deviceId: ids.get(device)!, metric, ts, v });
  };
  while (clock < BASE + SPAN_MS) {
    for (let k = 0; k < 20; k++) {
      clock += Math.floor(rand() * 400);
      const di = Math.floor(rand() * DEVICES.length);
      let metric = METRICS[Math.floor(rand() * 3)]!;
      if (rand() < 0.02) metric = 'rare';
      const device = metric === 'rare' ? DEVICES[di % 2]! : DEVICES[di]!;
      if (device === 'dev-05' && metric === 'cpu') continue; // dev-05 sends no cpu
      if (device === 'dev-07' && Math.floor((clock - BASE) / MIN) % 4 === 1) continue; // silent minutes
      // up to 11 min late: within the lateness (the head), corrections of sealed slices (deltas), beyond the 10 min horizon
      const late = rand() < 0.25 ? Math.floor(rand() * 660_000) : Math.floor(rand() * 3000);
      const ts = Math.max(BASE, clock - late);
      // quarter values (sums exact in any order), some under 0 and over 100
      const v = Math.round((rand() * 120 - 10) * 4) / 4;
      push(device, metric, ts, v);
      if (clock - BASE < 5 * MIN && rand() < 0.2) push('quiet', 'temp', ts, Math.round(rand() * 400) / 4);
    }
    state.afterRecord(++records);
    if (afterRecord !== undefined) await afterRecord(state, readings, records);
  }
  await state.pending;
  return { state, readings, close };
}

// ---- the brute-force reference -------------------------------------------------------------

interface RefWin {
  start: number; count: number; sum: number; min: number; max: number; last: number; lastTs: number;
  histogram: number[]; under: number; over: number; devices: Set<number>; values: number[];
}

function refWindows(readings: Reading[], from: number, to: number, res: number, pick: (r: Reading) => boolean): RefWin[] {
  const map = new Map<number, RefWin>();
  for (const r of readings) {
    if (!pick(r)) continue;
    const start = Math.floor(r.ts / res) * res;
    if (!(start < to && start + res > from)) continue;
    let w = map.get(start);
    if (w === undefined) {
      w = { start, count: 0, sum: 0, min: Infinity, max: -Infinity, last: 0, lastTs: -Infinity, histogram: new Array<number>(HIST.divisions).fill(0), under: 0, over: 0, devices: new Set(), values: [] };
      map.set(start, w);
    }
    w.count++;
    w.sum += r.v;
    w.min = Math.min(w.min, r.v);
    w.max = Math.max(w.max, r.v);
    if (r.ts > w.lastTs || (r.ts === w.lastTs && r.v > w.last)) {
      w.last = r.v;
      w.lastTs = r.ts;
    }
    const b = histogramBucket(r.v, HIST.min, HIST.max, HIST.divisions);
    if (b < HIST.divisions) w.histogram[b]!++;
    else if (b === HIST.divisions) w.under++;
    else w.over++;
    w.devices.add(r.deviceId);
    w.values.push(r.v);
  }
  return [...map.values()].sort((a, b) => a.start - b.start);
}

function exactPart(w: WindowAggregateWire, res: number, fleet: boolean): unknown {
  const out: Record<string, unknown> = {
    start: w.start, end: w.end - res, count: w.count, sum: w.sum, min: w.min, max: w.max, last: w.last, lastTs: w.lastTs,
    histogram: w.histogram, under: w.under, over: w.over, weight: w.weights.reduce((a, b) => a + b, 0),
  };
  if (fleet) out['devices'] = w.devices;
  return out;
}

function refExactPart(w: RefWin, fleet: boolean): unknown {
  const out: Record<string, unknown> = {
    start: w.start, end: w.start, count: w.count, sum: w.sum, min: w.min, max: w.max, last: w.last, lastTs: w.lastTs,
    histogram: w.histogram, under: w.under, over: w.over, weight: w.count,
  };
  if (fleet) out['devices'] = w.devices.size;
  return out;
}

/** the quantile a digest of exactly these values (weight-1 centroids) answers */
function exactQuantile(values: number[], q: number): number {
  const agg = emptyAggregate(0, 1, 1);
  agg.count = values.length;
  agg.min = Math.min(...values);
  agg.max = Math.max(...values);
  agg.means = values.slice();
  agg.weights = values.map(() => 1);
  return quantileOf(agg, q)!;
}

/**
 * Raw digests (device windows, up to 1024 values) answer exactly what weight-1 centroids of the
 * values answer; compressed ones (fleet windows from summaries) within 2% of rank plus one value.
 */
function quantileOk(values: number[], q: number, got: number | null, raw: boolean): boolean {
  if (raw && values.length <= 1024) return got === exactQuantile(values, q);
  const sorted = values.slice().sort((a, b) => a - b);
  const n = sorted.length;
  const lo = sorted[Math.max(0, Math.floor((q - 0.02) * n) - 1)]!;
  const hi = sorted[Math.min(n - 1, Math.ceil((q + 0.02) * n))]!;
  return got !== null && got >= lo && got <= hi;
}

/** what checkWindows needs of a test */
type Asserts = Pick<typeof t, 'same' | 'fail' | 'equal'>;

function checkWindows(t: Asserts, got: WindowAggregateWire[], want: RefWin[], res: number, fleet: boolean, what: string): boolean {
  const g = JSON.stringify(got.map((w) => exactPart(w, res, fleet)));
  const e = JSON.stringify(want.map((w) => refExactPart(w, fleet)));
  if (g !== e) {
    t.same(got.map((w) => exactPart(w, res, fleet)), want.map((w) => refExactPart(w, fleet)), `${what} (seed=${seed})`);
    return false;
  }
  for (let i = 0; i < got.length; i++) {
    for (const q of [0.5, 0.9, 0.99]) {
      if (!quantileOk(want[i]!.values, q, quantileOf(got[i]!, q), !fleet)) {
        t.fail(`${what}: window ${got[i]!.start} q${q} = ${quantileOf(got[i]!, q)} (seed=${seed})`);
        return false;
      }
    }
  }
  return true;
}

// ---- the tests ---------------------------------------------------------------------------------

for (const [how, sealDelayMs] of [['sealed at the watermark', 300_000], ['sealed early (the default delay)', undefined]] as const) {
  t.test(`queries over sealed blocks and the open head match the accepted readings (${how})`, async (t) => {
    const { state, readings, close } = await build(seed, undefined, sealDelayMs);
    // the head's scan modes over many open slices (sealed at the watermark); with early sealing
    // (~2 open slices) the cheaper mode only: the suite's longest test otherwise
    const scanModes = sealDelayMs === undefined ? [undefined] : [undefined, true, false];
    t.ok(state.deltaReadings > 0, `${state.deltaReadings} readings came after their slice was sealed: corrections in delta blocks`);
    t.teardown(close);
    const open = state.head.openSlices();
    t.ok(open.length >= (sealDelayMs === undefined ? 1 : 4) && state.sealer.counters.slices >= 25, `${state.sealer.counters.slices} slices sealed, ${open.length} open`);
    t.ok(state.sealer.counters.chunks >= 3 * state.sealer.counters.slices, 'several chunks per slice');
    const sealEdge = open[0]! * state.sliceMs; // the first open slice: sealed before it, open from it
    const rand = rng(seed ^ 0x5eed);
    const ranges: [number, number][] = [
      [BASE - HOUR, BASE + 2 * HOUR], [sealEdge - 90_000, sealEdge + 90_000], [sealEdge - 5_000, sealEdge + 1],
      [DAY0 - 65_000, DAY0 + 35_001], [BASE + 95_000, BASE + 431_000], [sealEdge + 12_345, sealEdge + 12_345],
      [BASE + SPAN_MS + HOUR, BASE + SPAN_MS + 2 * HOUR],
    ];
    for (let i = 0; i < 8; i++) {
      const a = BASE - 2 * MIN + Math.floor(rand() * (SPAN_MS + 4 * MIN));
      ranges.push([a, a + Math.floor(rand() * 15 * MIN)]);
    }
    const resolutions = [PANE, MIN, 30_000, 90_000, HOUR, DAY];
    for (const mode of scanModes) {
      forceHeadScanForTests(mode);
      t.test(`head scan: ${mode === undefined ? 'the cheaper' : mode ? 'columns' : 'chains'}`, async (t) => {
        let ok = true;
        for (const res of resolutions) {
          for (const [from, to] of ranges) {
            const where = `res=${res} [${from - BASE}, ${to - BASE})`;
            for (const metric of METRICS) {
              for (const device of [...DEVICES.slice(0, 8), 'quiet']) {
                const r = deviceSeries(state, { kind: 'deviceSeries', deviceId: device, metric, from, to, resolutionMs: res });
                if (!r.found) t.fail(`${device} not found`);
                const want = refWindows(readings, from, to, res, (x) => x.device === device && x.metric === metric);
                ok = checkWindows(t, r.windows, want, res, false, `device ${device}/${metric} ${where}`) && ok;
                if (!ok) return;
              }
              const f = fleetSeries(state, { kind: 'fleetSeries', metric, from, to, resolutionMs: res });
              const want = refWindows(readings, from, to, res, (x) => x.metric === metric);
              ok = checkWindows(t, f.windows, want, res, true, `fleet ${metric} ${where}`) && ok;
              const all = new Set(want.flatMap((w) => [...w.devices]));
              if (f.devices !== all.size) t.equal(f.devices, all.size, `fleet ${metric} ${where}: distinct devices over the range`);
              if (!ok) return;
            }
            for (const metrics of [['cpu'], ['cpu', 'temp'], ['rare', 'temp', 'mem', 'cpu'], ['rare'], ['mem', 'nope'], []]) {
              const d = distinctDevices(state, { kind: 'distinctDevices', metrics, from, to, resolutionMs: res });
              const want = new Set(refWindows(readings, from, to, res, (x) => metrics.includes(x.metric)).flatMap((w) => [...w.devices]));
              if (d.devices !== want.size) {
                t.equal(d.devices, want.size, `distinct ${metrics.join('+')} ${where} (seed=${seed})`);
                return;
              }
            }
          }
        }
        t.pass('every device, fleet and distinct query matches the reference');
      });
    }
    forceHeadScanForTests(undefined);

    t.test('sensorRange: exact to the second across sealed and open slices', async (t) => {
      const cases: [number, number][] = [
        [BASE - HOUR, BASE + 2 * HOUR], [sealEdge - 61_500, sealEdge + 4_200], [sealEdge - 999, sealEdge + 1], [sealEdge + 1, sealEdge + 999],
        [DAY0 - 12_345, DAY0 + 6_789], [BASE + 1, BASE + 1], [sealEdge, sealEdge - 5000],
      ];
      for (let i = 0; i < 60; i++) {
        const a = BASE - MIN + rand() * (SPAN_MS + 2 * MIN);
        cases.push([a, a + rand() * (rand() < 0.5 ? 30_000 : 20 * MIN)]);
      }
      for (const mode of scanModes) {
        forceHeadScanForTests(mode);
        for (const [from, to] of cases) {
          for (const metric of METRICS) {
            const a = Math.ceil(from / 1000) * 1000;
            const b = Math.ceil(to / 1000) * 1000;
            const vs = readings.filter((x) => x.metric === metric && x.ts >= a && x.ts < b).map((x) => x.v);
            const want = vs.length === 0 ? { count: 0, sum: 0, min: 0, max: 0 }
              : { count: vs.length, sum: vs.reduce((p, c) => p + c, 0), min: Math.min(...vs), max: Math.max(...vs) };
            const got = sensorRange(state, { kind: 'sensorRange', metric, from, to });
            if (JSON.stringify(got) !== JSON.stringify(want)) {
              t.same(got, want, `${metric} [${from - BASE}, ${to - BASE}) scan ${String(mode)} (seed=${seed})`);
              forceHeadScanForTests(undefined);
              return;
            }
          }
        }
      }
      forceHeadScanForTests(undefined);
      t.same(sensorRange(state, { kind: 'sensorRange', metric: 'nope', from: BASE, to: BASE + HOUR }), { count: 0, sum: 0, min: 0, max: 0 });
      t.throws(() => sensorRange(state, { kind: 'sensorRange', metric: 'cpu', from: BASE, to: Infinity }), RangeError);
      t.pass('every range matches');
    });

    t.test('metricLatest: the newest pane of the metric, fleet and per device, open or sealed', async (t) => {
      const newest = (pick: (r: Reading) => boolean): number | null => {
        let m: number | null = null;
        for (const r of readings) if (pick(r) && (m === null || r.ts > m)) m = r.ts;
        return m === null ? null : Math.floor(m / PANE) * PANE;
      };
      for (const metric of METRICS) {
        t.same(metricLatest(state, { kind: 'metricLatest', metric }), { start: newest((r) => r.metric === metric) }, metric);
        for (const device of [...DEVICES, 'quiet']) {
          t.same(metricLatest(state, { kind: 'metricLatest', metric, deviceId: device }),
            { start: newest((r) => r.metric === metric && r.device === device) }, `${device}/${metric}`);
        }
      }
      const quiet = newest((r) => r.device === 'quiet');
      t.ok(quiet !== null && quiet < sealEdge, 'quiet: its newest pane is sealed (found by walking the summaries back)');
      t.same(metricLatest(state, { kind: 'metricLatest', metric: 'nope' }), { start: null });
      t.same(metricLatest(state, { kind: 'metricLatest', metric: 'cpu', deviceId: 'nobody' }), { start: null });
      t.same(metricLatest(state, { kind: 'metricLatest', metric: 'cpu', deviceId: 'dev-05' }), { start: null }, 'a device without the metric');
    });

    t.test('topDevices by every `by`, at several resolutions, matches the raw readings', async (t) => {
      const cases: [number, number, number | undefined][] = [
        [BASE + 95_000, BASE + 431_000, undefined], [sealEdge - 95_000, sealEdge + 61_000, MIN], [BASE - HOUR, BASE + 2 * HOUR, HOUR],
        [sealEdge - 1, sealEdge + 1, undefined], [BASE + 12 * MIN, BASE + 13 * MIN, DAY],
      ];
      for (const mode of scanModes) {
        forceHeadScanForTests(mode);
        for (const [from, to, res] of cases) {
          const r = res ?? PANE;
          const [a, b] = [Math.floor(from / r) * r, Math.ceil(to / r) * r];
          for (const metric of ['temp', 'cpu', 'rare']) {
            const per = new Map<string, number[]>();
            for (const x of readings) {
              if (x.metric !== metric || x.ts < a || x.ts >= b) continue;
              const list = per.get(x.device);
              if (list === undefined) per.set(x.device, [x.v]);
              else list.push(x.v);
            }
            const stats = [...per].map(([deviceId, vs]) => {
              const sum = vs.reduce((p, c) => p + c, 0);
              return { deviceId, vs, count: vs.length, sum, min: Math.min(...vs), max: Math.max(...vs), mean: sum / vs.length };
            });
            for (const by of ['count', 'sum', 'min', 'max', 'mean', 'p50', 'p90', 'p99'] as TopBy[]) {
              const q = by === 'p50' ? 0.5 : by === 'p90' ? 0.9 : by === 'p99' ? 0.99 : 0;
              for (const n of [1, 3, 100]) {
                const got = topDevices(state, { kind: 'top', metric, from, to, by, n, ...(res === undefined ? {} : { resolutionMs: res }) });
                const want = stats.map((s) => ({
                  deviceId: s.deviceId, value: q > 0 ? exactQuantile(s.vs, q) : s[by as 'count'], count: s.count, sum: s.sum, min: s.min, max: s.max, mean: s.mean,
                })).sort((x, y) => (y.value - x.value) || (x.deviceId < y.deviceId ? -1 : 1)).slice(0, n);
                if (JSON.stringify(got.rows) !== JSON.stringify(want)) {
                  t.same(got.rows, want, `${metric} by=${by} n=${n} res=${String(res)} [${from - BASE}, ${to - BASE}) scan ${String(mode)} (seed=${seed})`);
                  forceHeadScanForTests(undefined);
                  return;
                }
              }
            }
          }
        }
      }
      forceHeadScanForTests(undefined);
      t.same(topDevices(state, { kind: 'top', metric: 'nope', from: BASE, to: BASE + HOUR, by: 'max', n: 3 }), { rows: [] });
      t.same(topDevices(state, { kind: 'top', metric: 'cpu', from: BASE, to: BASE + HOUR, by: 'max', n: 0 }), { rows: [] });
      t.throws(() => topDevices(state, { kind: 'top', metric: 'cpu', from: BASE, to: BASE + HOUR, by: 'max', n: 3, resolutionMs: 15_000 }), /multiple of paneMs/);
      t.pass('every top matches');
    });

    t.test('unknown names, a device silent in the range, bad ranges and resolutions', async (t) => {
      const q = { kind: 'deviceSeries' as const, from: BASE, to: BASE + HOUR, resolutionMs: MIN };
      t.same(deviceSeries(state, { ...q, deviceId: 'nobody', metric: 'cpu' }), { found: false, windows: [] });
      t.same(deviceSeries(state, { ...q, deviceId: 'dev-01', metric: 'nope' }), { found: true, windows: [] });
      t.same(deviceSeries(state, { ...q, deviceId: 'dev-05', metric: 'cpu' }), { found: true, windows: [] }, 'a device without the metric');
      t.same(deviceSeries(state, { ...q, deviceId: 'quiet', metric: 'temp', from: BASE + 10 * MIN }), { found: true, windows: [] }, 'no readings in the range');
      t.same(fleetSeries(state, { kind: 'fleetSeries', metric: 'nope', from: BASE, to: BASE + HOUR, resolutionMs: MIN }), { windows: [], devices: 0 });
      t.same(fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: 0, to: BASE - DAY, resolutionMs: MIN }), { windows: [], devices: 0 }, 'before the data');
      t.throws(() => deviceSeries(state, { ...q, deviceId: 'dev-01', metric: 'cpu', resolutionMs: 15_000 }), /multiple of paneMs/);
      t.throws(() => fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: BASE, to: BASE + HOUR, resolutionMs: 0 }), /multiple of paneMs/);
      t.throws(() => distinctDevices(state, { kind: 'distinctDevices', metrics: ['cpu'], from: NaN, to: BASE, resolutionMs: MIN }), /finite/);
      t.throws(() => deviceSeries(state, { ...q, deviceId: 'dev-01', metric: 'cpu', from: -Infinity }), /finite/);
    });

    t.test('listDevices and shardStats read the series table and the head', async (t) => {
      t.same(listDevices(state, { kind: 'devices', prefix: 'dev-0', limit: 3 }).devices.map((d) => d.deviceId), ['dev-00', 'dev-01', 'dev-02']);
      t.same(listDevices(state, { kind: 'devices', prefix: 'dev-00', limit: 10 }).devices, [{ deviceId: 'dev-00', metrics: ['cpu', 'mem', 'rare', 'temp'] }]);
      t.same(listDevices(state, { kind: 'devices', prefix: 'q', limit: 10 }).devices, [{ deviceId: 'quiet', metrics: ['temp'] }]);
      t.same(listDevices(state, { kind: 'devices', prefix: 'zzz', limit: 10 }).devices, []);
      const st = shardStats(state, 7, 3);
      t.match(st, { shard: 0, devices: DEVICES.length + 1, series: state.series.seriesCount, panes: state.head.readingsHeld, eventsApplied: readings.length, recordsApplied: 7, lateEvents: 3 });
      t.equal(st.maxEventTime, Math.max(...readings.map((r) => r.ts)));
      t.equal(st.watermark, st.maxEventTime! - 300_000);
      t.ok(st.paneStoreBytes > 0);
    });
  });
}

/**
 * The fleet queries over the head (and across the seal edge) against the readings so far; '' or
 * what differs (reported through t). Every slice is open or sealed once `state.pending` resolved.
 */
function checkHead(t: Asserts, state: ShardState, readings: Reading[]): boolean {
  const open = state.head.openSlices();
  if (open.length === 0) return true;
  const edge = open[0]! * state.sliceMs;
  const newest = Math.max(...readings.map((r) => r.ts));
  const ranges: [number, number][] = [[edge - 2 * MIN, newest + 1], [edge + 15_500, newest - 20_000], [newest - 30_000, newest + 1]];
  for (const [from, to] of ranges) {
    const where = `[${from - BASE}, ${to - BASE}) with the head from ${edge - BASE}`;
    for (const res of [PANE, MIN, 90_000, HOUR]) {
      for (const metric of METRICS) {
        const f = fleetSeries(state, { kind: 'fleetSeries', metric, from, to, resolutionMs: res });
        const want = refWindows(readings, from, to, res, (x) => x.metric === metric);
        if (!checkWindows(t, f.windows, want, res, true, `fleet ${metric} res=${res} ${where}`)) return false;
        const all = new Set(want.flatMap((w) => [...w.devices])).size;
        if (f.devices !== all) {
          t.equal(f.devices, all, `fleet ${metric} res=${res} ${where}: devices (seed=${seed})`);
          return false;
        }
      }
      for (const metrics of [['cpu', 'temp'], ['rare']]) {
        const d = distinctDevices(state, { kind: 'distinctDevices', metrics, from, to, resolutionMs: res });
        const want = new Set(refWindows(readings, from, to, res, (x) => metrics.includes(x.metric)).flatMap((w) => [...w.devices])).size;
        if (d.devices !== want) {
          t.equal(d.devices, want, `distinct ${metrics.join('+')} res=${res} ${where} (seed=${seed})`);
          return false;
        }
      }
    }
    for (const metric of METRICS) {
      const [a, b] = [Math.ceil((from + 0.5) / 1000) * 1000, Math.ceil((to + 0.5) / 1000) * 1000];
      const vs = readings.filter((x) => x.metric === metric && x.ts >= a && x.ts < b).map((x) => x.v);
      const want = vs.length === 0 ? { count: 0, sum: 0, min: 0, max: 0 }
        : { count: vs.length, sum: vs.reduce((p, c) => p + c, 0), min: Math.min(...vs), max: Math.max(...vs) };
      const got = sensorRange(state, { kind: 'sensorRange', metric, from: from + 0.5, to: to + 0.5 });
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.same(got, want, `sensorRange ${metric} ${where} (seed=${seed})`);
        return false;
      }
    }
  }
  for (const metric of METRICS) {
    let m = -1;
    for (const r of readings) if (r.metric === metric && r.ts > m) m = r.ts;
    const want = { start: m < 0 ? null : Math.floor(m / PANE) * PANE };
    const got = metricLatest(state, { kind: 'metricLatest', metric });
    if (got.start !== want.start) {
      t.same(got, want, `metricLatest ${metric} (seed=${seed})`);
      return false;
    }
  }
  return true;
}

t.test('fleet queries between appends (the head\'s summaries extended, dropped when sealed) match the readings so far', async (t) => {
  for (const mode of [undefined, true, false]) {
    forceHeadScanForTests(mode);
    let ok = true;
    let rounds = 0;
    let midSeal = 0;
    // as the shard worker queries: not waiting for seals in progress (their slices are read from
    // the head, their blocks ignored until the drop), with the default (early) seal delay
    const { state, close } = await build(seed ^ 0x1f, async (state, readings, records) => {
      if (!ok || records % 23 !== 0) return;
      await state.queryPending;
      if (state.sealer.sealing > 0) midSeal++;
      rounds++;
      ok = checkHead(t, state, readings);
    }, undefined);
    const cache = headSummariesOf(state);
    await close();
    if (!ok) break;
    // with corrections this frequent, most rounds wait for the seals (a delta goes after queued
    // seals); test/workers/sealer.test.ts reads a slice mid-seal on purpose
    t.comment(`${midSeal} of ${rounds} rounds queried while a seal was in progress`);
    t.ok(rounds >= 20 && cache.counters.dropped > 0, `scan ${String(mode)}: ${rounds} rounds, ${cache.counters.dropped} summaries of sealed slices dropped, ` +
      `${cache.counters.readingsAdded} readings added, ${cache.counters.rowsRead} rows read, ${cache.counters.chainBuilds} chain builds`);
  }
  forceHeadScanForTests(undefined);
});

t.test('dense series: digests past 1024 values (device windows, top) and past a fleet window\'s buffer', async (t) => {
  const { state, close } = open(2);
  t.teardown(close);
  const rand = rng(seed ^ 0xde75e);
  const names = ['d0', 'd1', 'd2', 'd3', 'd4'];
  names.forEach((d, i) => state.series.defineDevice(i, d));
  state.series.defineMetric(0, 'cpu');
  const readings: Reading[] = [];
  // 5 devices, a reading every 20 ms each for 9 minutes (~135k readings; ~18k per device-minute
  // window, ~90k in the fleet's hour), up to 2 s out of order
  for (let ms = 0; ms < 9 * MIN; ms += 20) {
    for (let d = 0; d < names.length; d++) {
      const ts = DAY0 + Math.max(0, ms - Math.floor(rand() * 2000));
      const v = Math.round(rand() * rand() * 4000) / 4 - 50;
      if (state.route(ts) !== ROUTE_HEAD) continue;
      state.apply(state.series.seriesOf(d, 0), ts, v);
      readings.push({ device: names[d]!, deviceId: d, metric: 'cpu', ts, v });
    }
    if (ms % 1000 === 0) state.afterRecord(nextSeq());
  }
  state.afterRecord(nextSeq());
  await state.pending;
  t.ok(state.sealer.counters.slices >= 3 && state.head.openSliceCount >= 3, 'sealed and open slices');
  const [from, to] = [DAY0 + 30_000, DAY0 + 8 * MIN];
  for (const res of [MIN, HOUR]) {
    for (const device of ['d0', 'd3']) {
      const r = deviceSeries(state, { kind: 'deviceSeries', deviceId: device, metric: 'cpu', from, to, resolutionMs: res });
      checkWindows(t, r.windows, refWindows(readings, from, to, res, (x) => x.device === device), res, false, `dense device ${device} res=${res}`);
    }
    const f = fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from, to, resolutionMs: res });
    const want = refWindows(readings, from, to, res, () => true);
    checkWindows(t, f.windows, want, res, true, `dense fleet res=${res}`);
    t.equal(f.devices, names.length);
  }
  t.ok(refWindows(readings, from, to, HOUR, () => true)[0]!.count > 65_536, 'the fleet hour holds more than a window buffers');
  const perDevice = new Map<string, number[]>();
  for (const x of readings) {
    if (x.ts < Math.floor(from / MIN) * MIN || x.ts >= Math.ceil(to / MIN) * MIN) continue;
    const list = perDevice.get(x.device);
    if (list === undefined) perDevice.set(x.device, [x.v]);
    else list.push(x.v);
  }
  for (const by of ['p50', 'p90', 'p99'] as TopBy[]) {
    const q = by === 'p50' ? 0.5 : by === 'p90' ? 0.9 : 0.99;
    const rows = topDevices(state, { kind: 'top', metric: 'cpu', from, to, by, n: 10, resolutionMs: MIN }).rows;
    t.equal(rows.length, names.length);
    for (const row of rows) {
      const vs = perDevice.get(row.deviceId)!;
      t.equal(row.count, vs.length);
      t.ok(quantileOk(vs, q, row.value, false), `top ${by}: ${row.deviceId} ${row.value} within 2% of rank (${vs.length} values)`);
    }
    t.ok(rows.every((r, i) => i === 0 || rows[i - 1]!.value >= r.value), `top ${by}: ordered by value`);
  }
});

t.test('an empty shard answers empty', async (t) => {
  const { state, close } = open(8);
  t.teardown(close);
  state.series.defineDevice(1, 'a');
  state.series.defineMetric(1, 'cpu');
  t.same(fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: 0, to: DAY, resolutionMs: MIN }), { windows: [], devices: 0 });
  t.same(deviceSeries(state, { kind: 'deviceSeries', deviceId: 'a', metric: 'cpu', from: 0, to: DAY, resolutionMs: MIN }), { found: true, windows: [] });
  t.same(metricLatest(state, { kind: 'metricLatest', metric: 'cpu' }), { start: null });
  t.same(sensorRange(state, { kind: 'sensorRange', metric: 'cpu', from: 0, to: DAY }), { count: 0, sum: 0, min: 0, max: 0 });
  t.same(topDevices(state, { kind: 'top', metric: 'cpu', from: 0, to: DAY, by: 'p99', n: 5 }), { rows: [] });
  t.same(distinctDevices(state, { kind: 'distinctDevices', metrics: ['cpu'], from: 0, to: DAY, resolutionMs: MIN }), { devices: 0 });
  t.equal(shardStats(state).watermark, null);
});

t.test('timing at 10k series (a print, not an assertion)', async (t) => {
  const { state, close } = open(4096);
  t.teardown(close);
  const N = 10_000;
  const table = state.series;
  table.defineMetric(0, 'cpu');
  for (let d = 0; d < N; d++) table.defineDevice(d, `d${d}`);
  const series = Array.from({ length: N }, (_, d) => table.seriesOf(d, 0));
  const rand = rng(seed);
  const T0 = DAY0;
  const minutes = 70;
  const t0 = performance.now();
  // one reading per 10 s per device, at a random ms of its pane, in time order per pane
  for (let p = 0; p < minutes * 6; p++) {
    for (let d = 0; d < N; d++) {
      const ts = T0 + p * PANE + Math.floor(rand() * PANE);
      if (state.route(ts) === ROUTE_HEAD) state.apply(series[d]!, ts, Math.round(rand() * 1000) / 10);
      if ((d & 1023) === 1023) state.afterRecord(nextSeq());
    }
    state.afterRecord(nextSeq());
  }
  await state.pending;
  const fill = performance.now() - t0;
  const sealedTo = state.head.openSlices()[0]! * state.sliceMs;
  const pct = (xs: number[], q: number): string => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!.toFixed(2);
  const time = (runs: number, f: (i: number) => unknown): number[] => {
    const out: number[] = [];
    for (let i = 0; i < runs; i++) {
      const a = performance.now();
      f(i);
      out.push(performance.now() - a);
    }
    return out;
  };
  const lines: string[] = [`filled ${N} series x ${minutes} min (${state.sealer.counters.slices} slices sealed, ${state.head.openSliceCount} open, ` +
    `${state.head.readingsHeld} readings in the head) in ${fill.toFixed(0)} ms`];
  // a past hour: [T0, T0 + 1 h) is sealed whole (hour-aligned, so its 1 h window is too); the
  // last hour ends with the head's newest reading (its 6 open slices scanned raw)
  t.ok(sealedTo >= T0 + HOUR, 'the first hour is sealed');
  for (const [label, from] of [['a past hour (sealed)', T0], ['the last hour (with the head)', T0 + minutes * MIN - HOUR]] as [string, number][]) {
    const to = from + HOUR;
    time(20, (i) => deviceSeries(state, { kind: 'deviceSeries', deviceId: `d${(i * 7919) % N}`, metric: 'cpu', from, to, resolutionMs: MIN }));
    const dev = time(200, (i) => deviceSeries(state, { kind: 'deviceSeries', deviceId: `d${(i * 7919) % N}`, metric: 'cpu', from, to, resolutionMs: MIN }));
    time(3, () => fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from, to, resolutionMs: MIN }));
    const fleet = time(30, () => fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from, to, resolutionMs: MIN }));
    const fleetH = time(30, () => fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from, to, resolutionMs: HOUR }));
    const distinct = time(30, () => distinctDevices(state, { kind: 'distinctDevices', metrics: ['cpu'], from, to, resolutionMs: MIN }));
    const top = time(5, () => topDevices(state, { kind: 'top', metric: 'cpu', from, to, by: 'p99', n: 10, resolutionMs: MIN }));
    const topMin = time(10, () => topDevices(state, { kind: 'top', metric: 'cpu', from: to - 2 * MIN, to: to - MIN, by: 'p99', n: 10, resolutionMs: MIN }));
    const latest = time(30, () => metricLatest(state, { kind: 'metricLatest', metric: 'cpu' }));
    const sensor = time(30, () => sensorRange(state, { kind: 'sensorRange', metric: 'cpu', from: from + 1234, to: to - 4321 }));
    lines.push(`${label}: device 1h@1m p50 ${pct(dev, 0.5)} p99 ${pct(dev, 0.99)} ms; fleet 1h@1m p50 ${pct(fleet, 0.5)} p99 ${pct(fleet, 0.99)} ms; ` +
      `fleet 1h@1h p50 ${pct(fleetH, 0.5)} ms; distinct 1h@1m p50 ${pct(distinct, 0.5)} ms; top p99 1h@1m p50 ${pct(top, 0.5)} ms; ` +
      `top p99 1 min p50 ${pct(topMin, 0.5)} ms; metricLatest fleet p50 ${pct(latest, 0.5)} ms; sensorRange ~1h p50 ${pct(sensor, 0.5)} ms`);
  }
  // the head's summaries: the first fleet query over the head builds them (cold: forcing the
  // scan way drops them), the next ones extend them with the readings appended since
  const lastFrom = T0 + minutes * MIN - HOUR;
  const cold = time(5, () => {
    forceHeadScanForTests(undefined);
    fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: lastFrom, to: lastFrom + HOUR, resolutionMs: MIN });
  });
  const inc: number[][] = [[], [], [], [], []];
  for (let round = 0; round < 40; round++) {
    // 1 s of event time: a tenth of the devices report (1000 readings)
    const sec = minutes * 60 + round;
    for (let d = round % 10; d < N; d += 10) state.apply(series[d]!, T0 + sec * 1000 + Math.floor(rand() * 1000), Math.round(rand() * 1000) / 10);
    state.afterRecord(nextSeq());
    await state.pending;
    const to = T0 + (sec + 1) * 1000;
    const queries = [
      () => fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: to - HOUR, to, resolutionMs: MIN }),
      () => fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: to - HOUR, to, resolutionMs: HOUR }),
      () => distinctDevices(state, { kind: 'distinctDevices', metrics: ['cpu'], from: to - HOUR, to, resolutionMs: MIN }),
      () => sensorRange(state, { kind: 'sensorRange', metric: 'cpu', from: to - HOUR + 1234, to }),
      () => metricLatest(state, { kind: 'metricLatest', metric: 'cpu' }),
    ];
    // each kind first after the appends in turn (the one that extends the summaries)
    for (let k = 0; k < queries.length; k++) {
      const q = (round + k) % queries.length;
      inc[q]!.push(time(1, queries[q]!)[0]!);
    }
  }
  const heads = headSummariesOf(state);
  lines.push(`the head's summaries: fleet 1h@1m cold (built from ${state.head.readingsHeld} head readings) p50 ${pct(cold, 0.5)} ms; ` +
    `after each 1 s of new readings (1000): fleet 1h@1m p50 ${pct(inc[0]!, 0.5)} p99 ${pct(inc[0]!, 0.99)} ms, fleet 1h@1h p50 ${pct(inc[1]!, 0.5)} ms, ` +
    `distinct 1h@1m p50 ${pct(inc[2]!, 0.5)} ms, sensorRange ~1h p50 ${pct(inc[3]!, 0.5)} ms, metricLatest fleet p50 ${pct(inc[4]!, 0.5)} ms; ` +
    `${heads.entries} summaries held, ${(heads.bytes / 1024).toFixed(0)} KiB`);
  for (const l of lines) t.comment(l);
  const check = fleetSeries(state, { kind: 'fleetSeries', metric: 'cpu', from: T0, to: T0 + HOUR, resolutionMs: MIN });
  t.equal(check.devices, N, 'every device in the hour');
  t.ok(check.windows.every((w) => w.devices === N && w.count === 6 * N), 'every minute: every device, six readings each');
});
