import t from 'tap';
import { rng } from '../helpers/rng';
import { histogramBucket, quantileOf, type WindowAggregateWire } from '../../protocol';
import { HeadSlices, SealedSlice } from '../../workers/head-slices';
import { HeadSummaries, WARM_MS, type HeadSummary } from '../../workers/head-summaries';
import { SeriesTable } from '../../workers/series-table';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const HIST = { divisions: 8, min: 0, max: 100 };
const DEVICES = 40;
/** device ids spread out (bitmaps of several bytes, not dense from 0) */
const deviceId = (i: number): number => 5 + 13 * i;
const METRICS = ['a', 'b', 'r'];

interface Reading { series: number; device: number; metric: number; offset: number; v: number }

/** the brute-force reference of one pane, a window of the slice, or a cell */
interface Ref {
  count: number; sum: number; min: number; max: number; last: number; lastTs: number;
  histogram: number[]; under: number; over: number; devices: Set<number>; values: number[];
}

function refOf(rs: readonly Reading[], start: number, from: number, to: number): Ref {
  const r: Ref = { count: 0, sum: 0, min: 0, max: 0, last: 0, lastTs: 0, histogram: new Array<number>(HIST.divisions).fill(0), under: 0, over: 0, devices: new Set(), values: [] };
  for (const x of rs) {
    if (x.offset < from || x.offset >= to) continue;
    const ts = start + x.offset;
    if (r.count === 0) {
      r.min = r.max = r.last = x.v;
      r.lastTs = ts;
    } else {
      r.min = Math.min(r.min, x.v);
      r.max = Math.max(r.max, x.v);
      if (ts > r.lastTs || (ts === r.lastTs && x.v > r.last)) {
        r.last = x.v;
        r.lastTs = ts;
      }
    }
    r.count++;
    r.sum += x.v;
    const b = histogramBucket(x.v, HIST.min, HIST.max, HIST.divisions);
    if (b < HIST.divisions) r.histogram[b]!++;
    else if (b === HIST.divisions) r.under++;
    else r.over++;
    r.devices.add(x.device);
    r.values.push(x.v);
  }
  return r;
}

function bitsOf(bits: Uint8Array): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < bits.length * 8; i++) if ((bits[i >>> 3]! & (1 << (i & 7))) !== 0) out.add(i);
  return out;
}

/** within 2% of rank plus one value (a compressed digest) */
function quantileOk(values: number[], q: number, got: number | null): boolean {
  const sorted = values.slice().sort((a, b) => a - b);
  const n = sorted.length;
  const lo = sorted[Math.max(0, Math.floor((q - 0.02) * n) - 1)]!;
  const hi = sorted[Math.min(n - 1, Math.ceil((q + 0.02) * n))]!;
  return got !== null && got >= lo && got <= hi;
}

/** '' when the window matches the reference, else what differs */
function diff(w: WindowAggregateWire, bits: Uint8Array, r: Ref): string {
  const got = {
    count: w.count, sum: w.sum, min: w.min, max: w.max, last: w.last, lastTs: w.lastTs, histogram: w.histogram, under: w.under, over: w.over,
    devices: w.devices, bits: [...bitsOf(bits)].sort((a, b) => a - b), weight: w.weights.reduce((a, b) => a + b, 0),
  };
  const want = {
    count: r.count, sum: r.sum, min: r.min, max: r.max, last: r.last, lastTs: r.lastTs, histogram: r.histogram, under: r.under, over: r.over,
    devices: r.devices.size, bits: [...r.devices].sort((a, b) => a - b), weight: r.count,
  };
  if (JSON.stringify(got) !== JSON.stringify(want)) return `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`;
  if (r.count === 0) return '';
  for (const q of [0.1, 0.5, 0.9, 0.99]) if (!quantileOk(r.values, q, quantileOf(w, q))) return `q${q} = ${quantileOf(w, q)}`;
  return '';
}

/** every pane, the slice and every cell of a summary against the readings */
function check(h: HeadSummary | null, rs: readonly Reading[], sliceMs: number, paneMs: number): string {
  if (rs.length === 0) return h === null ? '' : `a summary of ${h.readings} readings, want none`;
  if (h === null) return `no summary, want ${rs.length} readings`;
  const start = h.start;
  const m = h.summary();
  let d = diff(m.slice, m.sliceBits, refOf(rs, start, 0, sliceMs));
  if (d !== '') return `slice: ${d}`;
  if (m.devices !== m.slice.devices) return `devices ${m.devices}, the slice's window ${m.slice.devices}`;
  for (let p = 0; p < m.panes.length; p++) {
    d = diff(m.panes[p]!, m.paneBits[p]!, refOf(rs, start, p * paneMs, (p + 1) * paneMs));
    if (d !== '') return `pane ${p}: ${d}`;
    if (m.panes[p]!.start !== start + p * paneMs || m.panes[p]!.end !== start + (p + 1) * paneMs) return `pane ${p}: bounds`;
  }
  for (let c = 0; c < h.cCount.length; c++) {
    const r = refOf(rs, start, c * h.cellMs, (c + 1) * h.cellMs);
    const got = [h.cCount[c], h.cSum[c], r.count === 0 ? 0 : h.cMin[c], r.count === 0 ? 0 : h.cMax[c]];
    if (JSON.stringify(got) !== JSON.stringify([r.count, r.sum, r.min, r.max])) return `cell ${c}: ${JSON.stringify(got)}, want ${JSON.stringify([r.count, r.sum, r.min, r.max])}`;
  }
  const newest = Math.max(...rs.map((x) => Math.floor(x.offset / paneMs)));
  if (h.newestPane() !== newest) return `newest pane ${h.newestPane()}, want ${newest}`;
  return '';
}

/** devices d0.. with the given metrics, one-minute slices of 10 s panes, and a cache over them */
function minuteHead(devices: number, metrics: string[], opts: { warmAllMetricsMax?: number } = {}): { table: SeriesTable; head: HeadSlices; cache: HeadSummaries } {
  const table = new SeriesTable();
  metrics.forEach((m, i) => table.defineMetric(i, m));
  for (let d = 0; d < devices; d++) table.defineDevice(d, `d${d}`);
  const head = new HeadSlices({ sliceMs: 60_000, paneMs: 10_000 });
  return { table, head, cache: new HeadSummaries(head, table, { sliceMs: 60_000, paneMs: 10_000, histogram: HIST, ...opts }) };
}

for (const [sliceMs, paneMs] of [[60_000, 10_000], [4_500, 1_500]] as const) {
  t.test(`summaries extended between appends match the readings (slices of ${sliceMs} ms, panes of ${paneMs} ms)`, async (t) => {
    const rand = rng(seed ^ sliceMs);
    const table = new SeriesTable();
    for (let i = 0; i < DEVICES; i++) table.defineDevice(deviceId(i), `d${i}`);
    METRICS.forEach((m, i) => table.defineMetric(i, m));
    const head = new HeadSlices({ sliceMs, paneMs, pageReadings: 64 });
    // one cache per way of reading the head, and one that must evict
    const ways: [string, boolean | undefined, HeadSummaries][] = [
      ['cheaper', undefined, new HeadSummaries(head, table, { sliceMs, paneMs, histogram: HIST })],
      ['rows', true, new HeadSummaries(head, table, { sliceMs, paneMs, histogram: HIST })],
      ['chains', false, new HeadSummaries(head, table, { sliceMs, paneMs, histogram: HIST })],
      ['evicting', undefined, new HeadSummaries(head, table, { sliceMs, paneMs, histogram: HIST, bytesMax: 20_000 })],
      // brought part of the way by warm steps and warm() (small budgets) before each get()
      ['stepped', undefined, new HeadSummaries(head, table, { sliceMs, paneMs, histogram: HIST })],
    ];
    const ref = new Map<number, Reading[]>();
    let first = 1_000_000;
    let appended = 0;
    let reopened = 0;
    for (let round = 0; round < 150; round++) {
      // a slice sealed and opened again under the same number, between two queries: a new epoch
      // from row 0 (its first appends go to it)
      let again = -1;
      if (rand() < 0.08) {
        again = first + Math.floor(rand() * 4);
        if (head.seal(again, new SealedSlice())) reopened++;
        ref.delete(again);
      }
      // appends: mostly into the newest of 4 open slices, some late; metric r from 3 devices only
      const k = Math.floor(rand() * rand() * 400) + (again >= 0 ? 50 : 0);
      for (let i = 0; i < k; i++) {
        const no = i < 50 && again >= 0 ? again : first + (rand() < 0.7 ? 3 : Math.floor(rand() * 4));
        const metric = rand() < 0.03 ? 2 : rand() < 0.5 ? 0 : 1;
        const dev = metric === 2 ? Math.floor(rand() * 3) : Math.floor(rand() * DEVICES);
        const series = table.seriesOf(deviceId(dev), metric);
        const offset = Math.floor(rand() * sliceMs);
        const v = Math.round((rand() * 130 - 15) * 4) / 4;
        head.append(series, no * sliceMs + offset + rand() * 0.99, v);
        let rs = ref.get(no);
        if (rs === undefined) ref.set(no, rs = []);
        rs.push({ series, device: deviceId(dev), metric, offset, v });
        appended++;
      }
      if (rand() < 0.1) {
        // the oldest slice sealed; a new one opens
        head.seal(first, new SealedSlice());
        ref.delete(first);
        first++;
      }
      for (const [name, columns, cache] of ways) {
        for (let no = first - 1; no <= first + 4; no++) {
          for (let metric = 0; metric < METRICS.length; metric++) {
            if (rand() < 0.3) continue; // some entries fall behind by several rounds
            const rs = (ref.get(no) ?? []).filter((x) => x.metric === metric);
            if (name === 'stepped') {
              for (let k = Math.floor(rand() * 3); k > 0; k--) cache.warmStep(metric, 1 + Math.floor(rand() * 40));
              if (rand() < 0.5) cache.warm(Date.now(), 1 + Math.floor(rand() * 40));
            }
            const d = check(cache.get(no, metric, columns), rs, sliceMs, paneMs);
            if (d !== '') {
              t.fail(`${name}: round ${round}, slice ${no}, metric ${METRICS[metric]}: ${d} (seed=${seed})`);
              return;
            }
          }
        }
      }
    }
    t.ok(reopened > 0, `${reopened} slices opened again`);
    const [cheaper, rows, chains, evicting, stepped] = ways.map((w) => w[2].counters);
    t.ok(stepped!.rowsRead > 0, `stepped: rows read in steps too (${stepped!.rowsRead})`);
    t.ok(rows!.readingsAdded <= appended, `rows: each reading added at most once (${rows!.readingsAdded} of ${appended})`);
    t.ok(rows!.rowsRead <= METRICS.length * appended, `rows: each row read at most once per metric (${rows!.rowsRead})`);
    t.equal(rows!.chainBuilds, 0, 'rows: never from the chains');
    t.ok(chains!.chainBuilds > 0 && chains!.rowsRead === 0, 'chains: always from the chains');
    t.ok(cheaper!.chainBuilds > 0 && cheaper!.rowsRead > 0, `the cheaper way: both (${cheaper!.chainBuilds} chain builds, ${cheaper!.rowsRead} rows read)`);
    t.ok(cheaper!.dropped > 0, `entries of sealed or reopened slices dropped (${cheaper!.dropped})`);
    t.ok(evicting!.evicted > 0 && ways[3]![2].bytes <= 20_000 + 2 * ways[0]![2].bytes / Math.max(1, ways[0]![2].entries),
      `bounded: ${evicting!.evicted} evicted, ${ways[3]![2].bytes} bytes held`);
  });
}

t.test('a slice or metric without readings answers null; a metric unknown to the table too', async (t) => {
  const table = new SeriesTable();
  table.defineDevice(1, 'd');
  table.defineMetric(0, 'a');
  table.defineMetric(1, 'b');
  const head = new HeadSlices({ sliceMs: 60_000, paneMs: 10_000 });
  const cache = new HeadSummaries(head, table, { sliceMs: 60_000, paneMs: 10_000, histogram: HIST });
  t.equal(cache.get(5, 0), null, 'no open slice');
  head.append(table.seriesOf(1, 0), 5 * 60_000 + 1234, 7);
  t.equal(cache.get(5, 1), null, 'a metric without series');
  t.equal(cache.get(5, 7), null, 'an unknown metric');
  table.seriesOf(1, 1);
  t.equal(cache.get(5, 1), null, 'a metric with a series but no reading in the slice');
  const h = cache.get(5, 0);
  t.equal(h?.summary().slice.count, 1);
  t.equal(h?.summary().panes[0]!.lastTs, 5 * 60_000 + 1234);
  t.throws(() => new HeadSummaries(head, table, { sliceMs: 60_000, paneMs: 1_000, histogram: HIST }), RangeError, 'more panes than a slice may hold');
});

t.test('extending costs the new rows: a summary asked again reads only what was appended since', async (t) => {
  const { table, head, cache } = minuteHead(1000, ['a']);
  for (let d = 0; d < 1000; d++) head.append(table.seriesOf(d, 0), 60_000 + d * 7, d % 100);
  cache.get(1, 0, true);
  t.equal(cache.counters.rowsRead, 1000);
  for (let d = 0; d < 10; d++) head.append(table.seriesOf(d, 0), 60_000 + 30_000 + d, 50);
  const h = cache.get(1, 0, true)!;
  t.equal(cache.counters.rowsRead, 1010, 'the 10 new rows only');
  t.equal(h.summary().slice.count, 1010);
  t.equal(h.summary().slice.devices, 1000);
  cache.get(1, 0, true);
  t.equal(cache.counters.rowsRead, 1010, 'nothing new: nothing read');
});

t.test('warm steps build a cold entry by at most their budget; warm() keeps asked metrics current, and stops', async (t) => {
  const { table, head, cache } = minuteHead(1000, ['a', 'b'], { warmAllMetricsMax: 0 });
  for (let d = 0; d < 1000; d++) head.append(table.seriesOf(d, 0), 60_000 + d * 7, d % 100);
  t.equal(cache.warm(Date.now(), 1e9), 0, 'no query asked: warm() does nothing');
  let steps = 0;
  while (!cache.warmStep(0, 300)) {
    steps++;
    t.ok(cache.counters.rowsRead <= 300 * steps, `step ${steps}: at most 300 rows each (${cache.counters.rowsRead})`);
  }
  t.equal(steps, 3, '1000 rows in steps of 300: three unfinished steps, the fourth finishes');
  t.equal(cache.counters.rowsRead, 1000);
  for (let d = 0; d < 500; d++) head.append(table.seriesOf(d, 0), 60_000 + 40_000 + d, 50);
  t.equal(cache.warm(Date.now(), 200), 200, 'warm() adds at most its budget');
  t.equal(cache.warm(Date.now(), 1e9), 300, 'and the rest at the next call');
  const rowsBefore = cache.counters.rowsRead;
  const h = cache.get(1, 0)!;
  t.equal(cache.counters.rowsRead, rowsBefore, 'the query finds the entry current: nothing to read');
  t.equal(h.summary().slice.count, 1500);
  head.append(table.seriesOf(3, 0), 60_000 + 50_000, 1);
  t.equal(cache.warm(Date.now() + WARM_MS + 1000, 1e9), 0, 'nothing asked for WARM_MS: warm() stops keeping it current');
  t.equal(cache.get(1, 0)!.summary().slice.count, 1501, 'the next query brings it current itself');
});

t.test('a shard with few metrics keeps all of them warm before any query; with more, only those asked', async (t) => {
  const few = minuteHead(1000, ['a', 'b'], { warmAllMetricsMax: 2 });
  for (let d = 0; d < 1000; d++) few.head.append(few.table.seriesOf(d, d % 2), 60_000 + d * 7, d % 100);
  t.equal(few.cache.warm(Date.now(), 1e9), 2000, 'two metrics, never asked: warm() reads every row for each');
  const rows = few.cache.counters.rowsRead;
  t.equal(few.cache.get(1, 1)!.summary().slice.count, 500, "metric b's summary");
  t.equal(few.cache.counters.rowsRead, rows, 'the first query finds it built: nothing to read');
  const slow = minuteHead(1000, ['a', 'b'], { warmAllMetricsMax: 2 });
  for (let d = 0; d < 1000; d++) slow.head.append(slow.table.seriesOf(d, d % 2), 60_000 + d * 7, d % 100);
  t.equal(slow.cache.warm(Date.now(), 1e9, 300), 300, 'metrics nobody asked for: at most their own budget a call');
  slow.cache.get(1, 0);
  for (let d = 0; d < 100; d++) slow.head.append(slow.table.seriesOf(d, d % 2), 60_000 + 20_000 + d, 1);
  t.equal(slow.cache.warm(Date.now(), 1e9, 0), 100, 'an asked metric keeps the whole budget (its 100 new rows), the other waits');
  const many = minuteHead(1000, ['a', 'b', 'c'], { warmAllMetricsMax: 2 });
  for (let d = 0; d < 1000; d++) many.head.append(many.table.seriesOf(d, d % 3), 60_000 + d * 7, d % 100);
  t.equal(many.cache.warm(Date.now(), 1e9), 0, 'three metrics, over the bound: none warm until asked');
});

t.test('warm steps keep to their budget when the metric has many readings per series (no rebuild from the chains midway)', async (t) => {
  const { table, head, cache } = minuteHead(100, ['a']);
  // 100 series x 100 readings: after one step of 100 rows the entry holds 100 readings, far
  // fewer than the metric's 10,000 (the rebuild rule for a complete entry would pick the chains)
  for (let k = 0; k < 100; k++) for (let d = 0; d < 100; d++) head.append(table.seriesOf(d, 0), 60_000 + k * 500 + d, k);
  let steps = 1;
  while (!cache.warmStep(0, 100)) steps++;
  t.equal(steps, 100, '10,000 rows in steps of 100');
  t.equal(cache.counters.chainBuilds, 0, 'never rebuilt from the chains');
  t.equal(cache.counters.rowsRead, 10_000);
  t.equal(cache.get(1, 0)!.summary().slice.count, 10_000);
});

t.test('warming a metric that is one of several extends its entries by rows, not from the chains at every ring slice', async (t) => {
  // 3 metrics of 1,000 devices: each metric is a third of the slice's series (under
  // SCAN_COLUMNS_FRACTION), so a new entry is built from its chains; after that, each ring
  // slice's rows extend it (the bug: every bounded step rebuilt it from the chains, reading the
  // whole slice again each time)
  const { table, head, cache } = minuteHead(1000, ['a', 'b', 'c']);
  let ts = 60_000;
  const slices = 20;
  for (let round = 0; round < slices; round++) {
    let applied = 0;
    for (let d = 0; d < 1000; d++) {
      for (let m = 0; m < 3; m++) {
        head.append(table.seriesOf(d, m), ts, d + m);
        applied++;
      }
    }
    ts += 2000;
    // as the shard worker calls it after each ring slice (WARM_ROWS, twice the events applied)
    cache.warm(Date.now(), 65_536, 2 * applied);
  }
  t.ok(cache.counters.chainBuilds <= 3, `at most one build from the chains per metric (${cache.counters.chainBuilds})`);
  t.ok(cache.counters.rowsRead <= 3 * slices * 3000, `rows read ${cache.counters.rowsRead}: each slice's rows once per metric at most`);
  for (let m = 0; m < 3; m++) t.equal(cache.get(1, m)!.summary().slice.count, slices * 1000, `metric ${m} holds every reading`);
});
