import t from 'tap';
import fc from 'fast-check';
import { rng } from '../helpers/rng';
import { assertProperty } from '../helpers/property';
import { BLOCK_SLICE, BlockEncoder, BlockReader, type BlockColumns, type BlockShape } from '../../storage/block-codec';
import { emptyAggregate, histogramBucket, mergeAggregate, quantileOf } from '../../protocol/aggregate';
import type { WindowAggregateWire } from '../../protocol/messages';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const SPEC = { divisions: 10, min: 0, max: 100 };
const U32_MAX = 0xffffffff;
const SLICE_START = 1_764_590_400_000; // a whole minute (and hour)

/** one series as the test built it: the reference */
interface RefSeries { id: number; device: number; metric: number; offsets: number[]; values: number[] }

interface Built { slice: BlockColumns & BlockShape; series: RefSeries[] }

/** the columns of a slice from reference series (sorted by id here, arrival order kept) */
function build(series: RefSeries[], sliceStart: number, sliceMs: number, paneMs: number, pad = 0): Built {
  const sorted = [...series].sort((a, b) => a.id - b.id);
  const n = sorted.reduce((a, s) => a + s.offsets.length, 0);
  const col = { series: new Uint32Array(n + pad), offset: new Uint32Array(n + pad), value: new Float64Array(n + pad) };
  let i = 0;
  for (const s of sorted) {
    for (let k = 0; k < s.offsets.length; k++, i++) {
      col.series[i] = s.id;
      col.offset[i] = s.offsets[k]!;
      col.value[i] = s.values[k]!;
    }
  }
  for (let k = n; k < n + pad; k++) col.series[k] = 7; // past n: must be ignored
  const byId = new Map(sorted.map((s) => [s.id, s]));
  return {
    series: sorted,
    slice: {
      sliceStart, sliceMs, paneMs, n, ...col,
      seriesDevice: (id) => byId.get(id)!.device,
      seriesMetric: (id) => byId.get(id)!.metric,
    },
  };
}

type ValueKind = 'decimal' | 'integer' | 'f64' | 'constant' | 'wild';

function value(rand: () => number, kind: ValueKind, constant: number): number {
  switch (kind) {
    case 'decimal': return Math.round(rand() * 1300 - 150) / 10; // under and over the histogram too
    case 'integer': return Math.floor(rand() * 200) - 50;
    case 'f64': return rand() * 120 - 10;
    case 'constant': return constant;
    case 'wild': return [0, -0, 0.1 + 0.2, 1e300, -1e300, 5e-324, 2 ** 30 - 1, 2 ** 30, -(2 ** 30), 123456.789, 1e-7, 100, 0.05][Math.floor(rand() * 13)]!;
  }
}

/** random series: ids spread over u32 (0 and 2^32 - 1 included sometimes), values of every kind */
function randomSeries(rand: () => number, count: number, sliceMs: number, metrics: number[], devices: number): RefSeries[] {
  const ids = new Set<number>();
  if (rand() < 0.5) ids.add(0);
  if (rand() < 0.5) ids.add(U32_MAX);
  let next = Math.floor(rand() * 1000);
  while (ids.size < count) {
    next += rand() < 0.7 ? 1 + Math.floor(rand() * 3) : Math.floor(rand() * 2 ** 26);
    ids.add(next > U32_MAX ? Math.floor(rand() * U32_MAX) : next);
  }
  const kinds: ValueKind[] = ['decimal', 'decimal', 'decimal', 'integer', 'f64', 'constant', 'wild'];
  const out: RefSeries[] = [];
  for (const id of ids) {
    const n = rand() < 0.05 ? 20 + Math.floor(rand() * 200) : 1 + Math.floor(rand() * 8);
    const kind = kinds[Math.floor(rand() * kinds.length)]!;
    const constant = Math.round(rand() * 1000) / 10;
    const offsets: number[] = [];
    const values: number[] = [];
    for (let k = 0; k < n; k++) {
      // edges, repeated offsets (the last tie rule), anything in between
      const r = rand();
      offsets.push(r < 0.05 ? 0 : r < 0.1 ? sliceMs - 1 : r < 0.2 && k > 0 ? offsets[k - 1]! : Math.floor(rand() * sliceMs));
      values.push(value(rand, kind, constant));
    }
    out.push({
      id,
      device: rand() < 0.02 ? U32_MAX : Math.floor(rand() * devices) * 8 + 3,
      metric: metrics[Math.floor(rand() * metrics.length)]!,
      offsets,
      values,
    });
  }
  return out;
}

/** the reference window: readings with offset in [from, to), in the given order */
function refWindow(s: RefSeries[], from: number, to: number, start: number, end: number, sliceStart: number): WindowAggregateWire {
  const w = emptyAggregate(start, end, SPEC.divisions);
  let sum = 0;
  for (const x of s) {
    for (let k = 0; k < x.offsets.length; k++) {
      const off = x.offsets[k]!;
      const v = x.values[k]!;
      if (off < from || off >= to) continue;
      const ts = sliceStart + off;
      if (w.count === 0 || ts > w.lastTs || (ts === w.lastTs && v > w.last)) {
        w.last = v;
        w.lastTs = ts;
      }
      w.min = w.count === 0 ? v : Math.min(w.min, v);
      w.max = w.count === 0 ? v : Math.max(w.max, v);
      w.count++;
      sum += v;
      const b = histogramBucket(v, SPEC.min, SPEC.max, SPEC.divisions);
      if (b < SPEC.divisions) w.histogram[b]!++;
      else if (b === SPEC.divisions) w.under++;
      else w.over++;
      w.means.push(v);
      w.weights.push(1);
    }
  }
  w.sum = sum;
  return w;
}

function exact(w: WindowAggregateWire): unknown {
  return {
    start: w.start, end: w.end, count: w.count, sum: w.sum, min: w.min, max: w.max, last: w.last, lastTs: w.lastTs,
    histogram: w.histogram, under: w.under, over: w.over, weight: w.weights.reduce((a, b) => a + b, 0),
  };
}

/** distance of q from the rank range of `est` among the sorted values */
function rankError(sorted: number[], est: number, q: number): number {
  let lo = 0;
  while (lo < sorted.length && sorted[lo]! < est) lo++;
  let hi = lo;
  while (hi < sorted.length && sorted[hi]! <= est) hi++;
  const n = sorted.length;
  return q < lo / n ? lo / n - q : q > hi / n ? q - hi / n : 0;
}

function checkQuantiles(t: tap.Test, agg: WindowAggregateWire, values: number[], what: string): void {
  const sorted = [...values].sort((a, b) => a - b);
  let worst = 0;
  for (const q of [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) worst = Math.max(worst, rankError(sorted, quantileOf(agg, q)!, q));
  // a centroid near the median may hold pi / DIGEST_COMPRESSION = 1.6% of the mass: half of it, plus one value
  if (worst > 0.02 + 1 / sorted.length) t.fail(`${what}: quantile rank error ${worst} over ${sorted.length} values`);
}

/** checks every window of every series and of the fleet against the reference; returns the checks made */
function checkBlock(t: tap.Test, reader: BlockReader, built: Built, what: string): number {
  const { sliceStart, sliceMs, paneMs } = built.slice;
  const panes = sliceMs / paneMs;
  reader.verify();
  t.same([reader.sliceStart, reader.sliceMs, reader.paneMs, reader.seriesCount, reader.readingCount],
    [sliceStart, sliceMs, paneMs, built.series.length, built.slice.n], `${what}: header`);
  let checks = 0;
  const outOffsets = new Float64Array(20_000);
  const outValues = new Float64Array(20_000);
  let mismatch = '';
  built.series.forEach((s, ordinal) => {
    if (mismatch) return;
    if (reader.findSeries(s.id) !== ordinal) mismatch = `findSeries(${s.id}) is not ${ordinal}`;
    const n = reader.readSeries(s.id, outOffsets, outValues);
    const same = n === s.offsets.length && s.offsets.every((o, k) => outOffsets[k] === o && Object.is(outValues[k], s.values[k]));
    if (!same) mismatch = `series ${s.id}: readings differ`;
    for (let w = -1; w < panes && !mismatch; w++) {
      const [from, to] = w < 0 ? [0, sliceMs] : [w * paneMs, (w + 1) * paneMs];
      const ref = refWindow([s], from, to, sliceStart + from, sliceStart + to, sliceStart);
      const got = emptyAggregate(sliceStart + from, sliceStart + to, SPEC.divisions);
      const merged = reader.seriesWindow(s.id, from, to, got);
      if (merged !== ref.count || JSON.stringify(exact(got)) !== JSON.stringify(exact(ref))) {
        mismatch = `series ${s.id} window ${w}: ${JSON.stringify(exact(got))} vs ${JSON.stringify(exact(ref))}`;
      } else if (ref.count <= 1024) {
        // raw centroids: the multiset of values itself
        const a = [...got.means].sort((x, y) => x - y);
        const b = [...ref.means].sort((x, y) => x - y);
        if (!a.every((x, k) => Object.is(x, b[k]))) mismatch = `series ${s.id} window ${w}: centroids differ`;
      } else checkQuantiles(t, got, ref.means, `series ${s.id} window ${w}`);
      checks++;
    }
  });
  t.equal(mismatch, '', `${what}: every series' readings, pane and slice windows equal the reference (${checks} windows)`);

  // the fleet: per metric, against the readings in block order (sum bit for bit) and against
  // mergeAggregate of the per-series windows (exact fields; sum up to rounding order)
  const metrics = [...new Set(built.series.map((s) => s.metric))].sort((a, b) => a - b);
  t.same(reader.metrics(), metrics, `${what}: footer metrics`);
  for (const m of metrics) {
    const ss = built.series.filter((s) => s.metric === m);
    const f = reader.fleet(m)!;
    const fleetOk: string[] = [];
    for (let w = -1; w < panes; w++) {
      const [from, to] = w < 0 ? [0, sliceMs] : [w * paneMs, (w + 1) * paneMs];
      const got = w < 0 ? f.slice : f.panes[w]!;
      const ref = refWindow(ss, from, to, sliceStart + from, sliceStart + to, sliceStart);
      const devices = [...new Set(ss.filter((s) => s.offsets.some((o) => o >= from && o < to)).map((s) => s.device))].sort((a, b) => a - b);
      ref.devices = devices.length;
      const merged = emptyAggregate(sliceStart + from, sliceStart + to, SPEC.divisions);
      for (const s of ss) mergeAggregate(merged, refWindow([s], from, to, sliceStart + from, sliceStart + to, sliceStart));
      const exactNoSum = (x: WindowAggregateWire): unknown => ({ ...(exact(x) as object), sum: 0 });
      if (JSON.stringify(exact(got)) !== JSON.stringify(exact(ref)) || got.devices !== ref.devices) fleetOk.push(`window ${w} vs readings`);
      if (JSON.stringify(exactNoSum(got)) !== JSON.stringify(exactNoSum(merged)) || Math.abs(got.sum - merged.sum) > 1e-9 * Math.max(1, Math.abs(merged.sum), ...merged.means.map(Math.abs))) {
        fleetOk.push(`window ${w} vs mergeAggregate`);
      }
      if (JSON.stringify(Array.from(reader.readDevices(m, w < 0 ? BLOCK_SLICE : w))) !== JSON.stringify(devices)) fleetOk.push(`window ${w} devices`);
      if (ref.count > 0) checkQuantiles(t, got, ref.means, `${what} metric ${m} window ${w}`);
      // fleetWindow merges the same figures
      const again = emptyAggregate(got.start, got.end, SPEC.divisions);
      reader.fleetWindow(m, w < 0 ? BLOCK_SLICE : w, again);
      if (JSON.stringify(again) !== JSON.stringify(got)) fleetOk.push(`window ${w} fleetWindow`);
    }
    t.same(fleetOk, [], `${what}: metric ${m} fleet windows (${ss.length} series) equal the reference`);
    t.equal(f.devices, new Set(ss.map((s) => s.device)).size, `${what}: metric ${m} distinct devices`);
  }
  return checks;
}

t.test('round trip: random slices against a brute-force reference', (t) => {
  const rand = rng(seed);
  const encoder = new BlockEncoder(SPEC);
  for (let round = 0; round < 12; round++) {
    // 1 min of 10 s panes; 1 h of 5 min panes (u32 offsets); 32 panes (the top bit of a pane mask)
    const [sliceMs, paneMs] = round % 4 === 3 ? [3_600_000, 300_000] : round % 4 === 1 ? [64_000, 2_000] : [60_000, 10_000];
    const count = [1, 5, 63, 64, 65, 300, 2000][round % 7]!;
    const metrics = round % 3 === 0 ? [7] : [1, 42, U32_MAX];
    const series = randomSeries(rand, count, sliceMs, metrics, 1 + Math.floor(rand() * count));
    const built = build(series, SLICE_START, sliceMs, paneMs, round % 2 === 0 ? 5 : 0);
    const bytes = Uint8Array.from(encoder.encode(built.slice, built.slice));
    checkBlock(t, new BlockReader(bytes), built, `round ${round} (${count} series, ${built.slice.n} readings, ${bytes.byteLength} B)`);
  }
  t.end();
});

t.test('findSeries: absent ids, below, between and above the present ones', (t) => {
  const rand = rng(seed + 1);
  const encoder = new BlockEncoder(SPEC, 4);
  const series = randomSeries(rand, 100, 60_000, [1], 50).filter((s) => s.id !== 0 && s.id !== U32_MAX);
  const built = build(series, SLICE_START, 60_000, 10_000);
  const reader = new BlockReader(Uint8Array.from(encoder.encode(built.slice, built.slice)));
  const present = new Set(series.map((s) => s.id));
  const probes = [0, U32_MAX, 1, U32_MAX - 1, -1, 2 ** 32, 0.5, NaN];
  for (const s of built.series) probes.push(s.id - 1, s.id + 1);
  const wrong = probes.filter((id) => !present.has(id) && reader.findSeries(id) !== -1);
  t.same(wrong, [], 'every absent id answers -1');
  const agg = emptyAggregate(0, 1, SPEC.divisions);
  t.equal(reader.seriesWindow(3, 0, 60_000, agg), present.has(3) ? reader.seriesReadings(3) : 0, 'seriesWindow of an absent series merges nothing');
  t.equal(reader.seriesReadings(U32_MAX), 0);
  t.equal(reader.readSeries(U32_MAX, new Float64Array(1), new Float64Array(1)), 0);
  t.end();
});

t.test('an empty slice: no series, no metric', (t) => {
  const encoder = new BlockEncoder(SPEC);
  const built = build([], SLICE_START, 60_000, 10_000);
  const bytes = Uint8Array.from(encoder.encode(built.slice, built.slice));
  const reader = new BlockReader(bytes);
  reader.verify();
  t.equal(bytes.byteLength, 72, 'the header alone');
  t.same([reader.seriesCount, reader.readingCount, reader.metricCount], [0, 0, 0]);
  t.equal(reader.findSeries(0), -1);
  t.same(reader.metrics(), []);
  t.equal(reader.fleet(1), null);
  t.same(Array.from(reader.readDevices(1, BLOCK_SLICE)), []);
  let visited = 0;
  reader.forEachSeries(() => visited++);
  t.equal(visited, 0);
  t.end();
});

t.test('one dense series of 10,000 readings, ids and device at 2^32 - 1, offsets at the edges', (t) => {
  const rand = rng(seed + 2);
  const offsets: number[] = [];
  const values: number[] = [];
  for (let k = 0; k < 10_000; k++) {
    offsets.push(k === 0 ? 59_999 : k === 1 ? 0 : Math.floor(rand() * 60_000));
    values.push(Math.round(rand() * 1000) / 10);
  }
  const series: RefSeries[] = [
    { id: 0, device: 0, metric: 0, offsets: [0, 59_999], values: [1.5, -2.5] },
    { id: U32_MAX, device: U32_MAX, metric: U32_MAX, offsets, values },
  ];
  const built = build(series, SLICE_START, 60_000, 10_000);
  const encoder = new BlockEncoder(SPEC);
  const bytes = Uint8Array.from(encoder.encode(built.slice, built.slice));
  const reader = new BlockReader(bytes);
  checkBlock(t, reader, built, 'dense');
  const agg = emptyAggregate(SLICE_START, SLICE_START + 60_000, SPEC.divisions);
  reader.seriesWindow(U32_MAX, 0, 60_000, agg);
  t.ok(agg.means.length <= 1024, `a dense window's digest is compressed (${agg.means.length} centroids)`);
  t.equal(agg.lastTs, SLICE_START + 59_999, 'last at the slice\'s last ms');
  t.same(Array.from(reader.readDevices(U32_MAX, BLOCK_SLICE)), [U32_MAX], 'device 2^32 - 1');
  t.ok(reader.dataBytes <= 10_002 * 4 + 8, `decimal values: ${reader.dataBytes} B of readings for 10,002 (${bytes.byteLength} B with the footer)`);
  t.end();
});

t.test('values round-trip bit for bit whatever the mode (-0, 0.1 + 0.2, huge, subnormal)', (t) => {
  const encoder = new BlockEncoder(SPEC);
  const out = { offsets: new Float64Array(64), values: new Float64Array(64) };
  assertProperty(fc.property(
    fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 20 }),
    fc.array(fc.integer({ min: -1_000_000, max: 1_000_000 }), { minLength: 1, maxLength: 20 }),
    fc.integer({ min: 0, max: 4 }),
    (doubles, ints, decimals) => {
      const values = [...doubles, ...ints.map((k) => k / 10 ** decimals)];
      const built = build([{ id: 5, device: 1, metric: 1, offsets: values.map((_, k) => k * 1000), values }], SLICE_START, 60_000, 10_000);
      const reader = new BlockReader(encoder.encode(built.slice, built.slice));
      const n = reader.readSeries(5, out.offsets, out.values);
      return n === values.length && values.every((v, k) => Object.is(out.values[k], v));
    },
  ), 2000);
  t.pass('2000 random series of doubles and decimals');
  t.end();
});

t.test('value modes: decimals and constants are smaller than f64, and exact', (t) => {
  const encoder = new BlockEncoder(SPEC);
  const size = (values: number[]): number => {
    const built = build([{ id: 1, device: 1, metric: 1, offsets: values.map((_, k) => k * 10_000), values }], SLICE_START, 60_000, 10_000);
    const bytes = Uint8Array.from(encoder.encode(built.slice, built.slice));
    const r = new BlockReader(bytes);
    r.verify();
    return r.dataBytes;
  };
  t.equal(size([12.3, 45.6, 78.9, 0.1, 99.9, 50]), 6 * 2 + 6 * 2, 'one decimal: 2-byte varints of the deltas');
  t.equal(size([21.5, 21.5, 21.6, 21.4]), 4 * 2 + 2 + 3, 'a slow sensor: 1-byte deltas after the first');
  t.equal(size([3.14159265, 3.14159265, 3.14159265, 3.14159265]), 4 * 2 + 8, 'constant: one f64');
  t.equal(size([Math.PI, Math.E, Math.SQRT2]), 3 * 2 + 3 * 8, 'arbitrary doubles: f64');
  t.equal(size([-0, -0]), 2 * 2 + 8, '-0 twice: constant');
  t.equal(size([0.1 + 0.2]), 2 + 8, '0.30000000000000004 is not 3/10: f64');
  t.end();
});

t.test('device sets: a pane every device reported in is 9 bytes; sparse panes as ranks', (t) => {
  const encoder = new BlockEncoder(SPEC);
  const full: RefSeries[] = [];
  for (let i = 0; i < 1000; i++) full.push({ id: i, device: i * 8, metric: 1, offsets: [0, 10_000, 20_000, 30_000, 40_000, 50_000], values: [1, 2, 3, 4, 5, 6] });
  const fullBuilt = build(full, SLICE_START, 60_000, 10_000);
  encoder.encode(fullBuilt.slice, fullBuilt.slice);
  const fullBytes = encoder.lastDeviceSetBytes;
  t.ok(fullBytes <= 9 * 7 + 4 + 1000, `1000 devices in every pane: ${fullBytes} B of device sets`);
  const sparse = full.map((s, i) => ({ ...s, offsets: [(i % 6) * 10_000], values: [1] }));
  const built = build(sparse, SLICE_START, 60_000, 10_000);
  const reader = new BlockReader(Uint8Array.from(encoder.encode(built.slice, built.slice)));
  reader.verify();
  for (let p = 0; p < 6; p++) {
    const want = sparse.filter((_, i) => i % 6 === p).map((s) => s.device);
    t.same(Array.from(reader.readDevices(1, p)), want, `pane ${p}: its ${want.length} devices`);
  }
  const bits = reader.orDevices(1, 2, new Uint8Array(0));
  t.same([...bits.keys()].flatMap((i) => [0, 1, 2, 3, 4, 5, 6, 7].filter((b) => (bits[i]! & (1 << b)) !== 0).map((b) => i * 8 + b)),
    sparse.filter((_, i) => i % 6 === 2).map((s) => s.device), 'orDevices sets the device-bits of a pane');
  t.end();
});

t.test('the encoder reuses its scratch: the view is valid until the next encode', (t) => {
  const rand = rng(seed + 3);
  const encoder = new BlockEncoder(SPEC);
  const a = build(randomSeries(rand, 50, 60_000, [1], 20), SLICE_START, 60_000, 10_000);
  const b = build(randomSeries(rand, 5000, 60_000, [1, 2], 2000), SLICE_START + 60_000, 60_000, 10_000);
  const first = Uint8Array.from(encoder.encode(a.slice, a.slice));
  const second = Uint8Array.from(encoder.encode(b.slice, b.slice));
  const again = encoder.encode(a.slice, a.slice);
  t.same(Buffer.from(again), Buffer.from(first), 'the same slice encodes to the same bytes after a bigger one');
  checkBlock(t, new BlockReader(second), b, 'second');
  t.end();
});

t.test('forEachSeries walks every series with its readings', (t) => {
  const rand = rng(seed + 4);
  const built = build(randomSeries(rand, 700, 60_000, [1, 2], 300), SLICE_START, 60_000, 10_000);
  const reader = new BlockReader(Uint8Array.from(new BlockEncoder(SPEC, 16).encode(built.slice, built.slice)));
  const seen: RefSeries[] = [];
  reader.forEachSeries((id, count, offsets, values) => {
    seen.push({ id, device: 0, metric: 0, offsets: Array.from(offsets.subarray(0, count)), values: Array.from(values.subarray(0, count)) });
  });
  t.same(seen.map((s) => [s.id, s.offsets, s.values.map((v) => (Object.is(v, -0) ? '-0' : v))]),
    built.series.map((s) => [s.id, s.offsets, s.values.map((v) => (Object.is(v, -0) ? '-0' : v))]));
  t.end();
});

t.test('a truncated or corrupt block throws a clear Error', (t) => {
  const rand = rng(seed + 5);
  const built = build(randomSeries(rand, 40, 60_000, [1, 2], 30), SLICE_START, 60_000, 10_000);
  const bytes = Uint8Array.from(new BlockEncoder(SPEC, 8).encode(built.slice, built.slice));
  const failures: string[] = [];
  for (let len = 0; len < bytes.byteLength; len++) {
    try {
      new BlockReader(bytes.subarray(0, len));
      failures.push(`truncated to ${len}: opened`);
    } catch (e) {
      if (!(e instanceof Error) || !/^block/.test(e.message)) failures.push(`truncated to ${len}: ${String(e)}`);
    }
  }
  t.same(failures, [], `every truncation of a ${bytes.byteLength}-byte block throws on open`);
  const padded = new Uint8Array(bytes.byteLength + 1);
  padded.set(bytes);
  t.throws(() => new BlockReader(padded), /block truncated or padded/);
  for (let i = 0; i < bytes.byteLength; i++) {
    for (const flip of [0x01, 0x80]) {
      const bad = Uint8Array.from(bytes);
      bad[i] ^= flip;
      try {
        new BlockReader(bad).verify();
        failures.push(`byte ${i} ^ ${flip}: verified`);
      } catch (e) {
        if (!(e instanceof Error) || !/^block/.test(e.message)) failures.push(`byte ${i} ^ ${flip}: ${String(e)}`);
      }
    }
  }
  t.same(failures, [], 'every flipped bit fails verify() (or the open) with a block error');
  const other = Uint8Array.from(bytes);
  other[0] = 2;
  t.throws(() => new BlockReader(other), /block format 2, this engine reads 1/);
  // a corrupt directory without verify(): lookups throw a block error or answer, never hang
  const dirCorrupt = Uint8Array.from(bytes);
  const reader = new BlockReader(bytes);
  const dirAt = 72 + reader.sparseBytes;
  dirCorrupt.fill(0xff, dirAt, dirAt + reader.directoryBytes);
  const broken = new BlockReader(dirCorrupt);
  t.throws(() => { for (const s of built.series) broken.findSeries(s.id); }, /block corrupt/);
  t.end();
});

t.test('the encoder refuses what the head must never hand it', (t) => {
  const encoder = new BlockEncoder(SPEC);
  const ok = (): Built => build([{ id: 1, device: 1, metric: 1, offsets: [5], values: [1] }, { id: 2, device: 2, metric: 1, offsets: [6], values: [2] }], SLICE_START, 60_000, 10_000);
  const unsorted = ok();
  unsorted.slice.series.reverse();
  t.throws(() => encoder.encode(unsorted.slice, unsorted.slice), /series ids must ascend/);
  const late = ok();
  late.slice.offset[0] = 60_000;
  t.throws(() => encoder.encode(late.slice, late.slice), /not within the slice/);
  const nan = ok();
  nan.slice.value[1] = NaN;
  t.throws(() => encoder.encode(nan.slice, nan.slice), /not finite/);
  t.throws(() => encoder.encode(ok().slice, { ...ok().slice, paneMs: 1000 }), /60 panes per slice, at most 32/);
  t.throws(() => encoder.encode(ok().slice, { ...ok().slice, paneMs: 7000 }), /must be a positive integer dividing/);
  t.throws(() => encoder.encode({ ...ok().slice, sliceStart: SLICE_START + 1 }, ok().slice), /multiple of sliceMs/);
  t.throws(() => encoder.encode({ ...ok().slice, n: 3 }, ok().slice), /columns of 2/);
  t.throws(() => new BlockEncoder({ divisions: 0, min: 0, max: 1 }), /divisions/);
  t.end();
});
