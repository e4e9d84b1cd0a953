import t from 'tap';
import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { SeriesTable, type LegacySeriesRows, type RowMark, type SeriesRows } from '../../workers/series-table';
import { assertProperty } from '../helpers/property';
import { rng } from '../helpers/rng';

t.test('series by (device, metric): created once, stable indexes, listed by device and metric', async (t) => {
  const st = new SeriesTable();
  st.defineDevice(10, 'dev-10');
  st.defineDevice(3, 'dev-3');
  st.defineMetric(1, 'cpu');
  st.defineMetric(2, 'mem');
  t.equal(st.seriesOf(10, 1), 0);
  t.equal(st.seriesOf(3, 1), 1);
  t.equal(st.seriesOf(10, 2), 2);
  t.equal(st.seriesOf(10, 1), 0, 'the same pair, the same series');
  t.equal(st.findSeries(3, 2), -1);
  t.equal(st.findSeries(-1, 2), -1);
  t.same(st.seriesOfDevice(10), [0, 2], 'oldest first');
  t.same(st.seriesOfDevice(99), []);
  t.same(st.seriesOfMetric(1), [0, 1]);
  t.same([st.seriesDevice(2), st.seriesMetric(2)], [10, 2]);
  t.same(st.sortedDeviceNames(), ['dev-10', 'dev-3']);
  t.equal(st.deviceIdOf('dev-3'), 3);
  t.equal(st.metricIdOf('nope'), -1);
  t.throws(() => st.seriesOf(11, 1), /BUG: device id 11 used before its DEFINE/);
  t.throws(() => st.defineDevice(10, 'other'), /bound to "dev-10"/);
  st.defineDevice(10, 'dev-10');
  t.equal(st.deviceCount, 2, 'a repeated DEFINE is a no-op');
});

t.test('grows past its initial capacity; checkpoints in increments restore the same table', async (t) => {
  const st = new SeriesTable();
  const random = rng(5);
  const parts = [];
  let mark = st.rowMark();
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 1500; i++) {
      const d = Math.floor(random() * 3000);
      const m = Math.floor(random() * 3);
      st.defineDevice(d, `d${d}`);
      st.defineMetric(m, `m${m}`);
      st.seriesOf(d, m);
    }
    const now = st.rowMark();
    parts.push(st.rows(mark, now));
    mark = now;
  }
  const back = new SeriesTable();
  for (const p of parts) back.restore(p);
  t.equal(back.seriesCount, st.seriesCount);
  for (let s = 0; s < st.seriesCount; s++) {
    if (back.seriesDevice(s) !== st.seriesDevice(s) || back.seriesMetric(s) !== st.seriesMetric(s)) {
      t.fail(`series ${s} differs`);
      break;
    }
  }
  for (const d of [0, 17, 2999]) t.same(back.seriesOfDevice(d), st.seriesOfDevice(d), `device ${d}`);
  t.same(back.sortedDeviceNames(), st.sortedDeviceNames());
  t.throws(() => back.restore({ from: back.seriesCount + 5, pairs: [0, 0], devices: [], metrics: [] }), /BUG/);
  t.ok(st.typedArrayBytes() > 0);
});

/** The table's content, for comparisons: series, names, and the logs' lengths. */
function contentOf(st: SeriesTable): string {
  const series: string[] = [];
  for (let s = 0; s < st.seriesCount; s++) series.push(`${st.seriesDevice(s)}/${st.seriesMetric(s)}`);
  const devices = st.sortedDeviceNames().map((n) => `${n}=${st.deviceIdOf(n)}`);
  const metrics = st.metricIdList().map((m) => `${m}=${st.metricName(m)}`).sort();
  return JSON.stringify({ series, devices, metrics, mark: st.rowMark() });
}

const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false });
/** through msgpack and back, as a checkpoint stores rows */
const stored = (rows: SeriesRows): SeriesRows => unpackr.unpack(packr.pack(rows)) as SeriesRows;

t.test('rows between marks are typed arrays; ranges restore in order, through msgpack, non-ASCII and long names too', async (t) => {
  const st = new SeriesTable(undefined, 4);
  st.defineMetric(7, 'cpu');
  st.defineDevice(1, 'dev-1');
  st.seriesOf(1, 7);
  const m1 = st.rowMark();
  st.defineDevice(2, 'capteur-é-ü-温度-🌡');
  st.defineDevice(3, 'x'.repeat(300)); // longer than 255 bytes: 16-bit lengths
  st.defineMetric(8, 'mem');
  st.seriesOf(2, 8);
  st.seriesOf(3, 7);
  st.seriesOf(1, 8);
  const m2 = st.rowMark();
  st.defineDevice(4, 'idle'); // a name without a series yet
  const m3 = st.rowMark();
  const a = st.rows({ series: 0, devices: 0, metrics: 0 }, m1);
  const b = st.rows(m1, m2);
  const c = st.rows(m2, m3);
  t.ok(a.device instanceof Int32Array && a.metric instanceof Int32Array && a.deviceNames.ids instanceof Int32Array);
  t.same([...b.device], [2, 3, 1]);
  t.same([...b.metric], [8, 7, 8]);
  t.same([...b.deviceNames.ids], [2, 3]);
  t.ok(b.deviceNames.lengths instanceof Uint16Array, 'a name over 255 bytes widens the lengths');
  t.ok(a.deviceNames.lengths instanceof Uint8Array);
  t.same([c.device.length, c.deviceNames.ids.length, c.metricNames.ids.length], [0, 1, 0]);
  const back = new SeriesTable(undefined, 4);
  for (const rows of [a, b, c].map(stored)) back.restore(rows);
  t.equal(contentOf(back), contentOf(st));
  t.equal(back.deviceName(2), 'capteur-é-ü-温度-🌡');
  t.equal(back.deviceName(3), 'x'.repeat(300));
  t.throws(() => st.rows(m2, m1), RangeError);
  t.throws(() => st.markAt(2), /multiples of 4/);
  t.same(st.markAt(0), { series: 0, devices: 1, metrics: 1 }, 'the names defined when series 0 was created');
});

t.test('restore refuses malformed rows and rows out of order; rows already held are checked, not added twice', async (t) => {
  const st = new SeriesTable();
  st.defineMetric(0, 'cpu');
  for (let d = 0; d < 5; d++) {
    st.defineDevice(d, `d${d}`);
    st.seriesOf(d, 0);
  }
  const all = st.rows({ series: 0, devices: 0, metrics: 0 }, st.rowMark());
  const back = new SeriesTable();
  back.restore(stored(all));
  back.restore(stored(all));
  t.equal(back.seriesCount, 5, 'a repeat adds nothing');
  const bad = stored(all);
  bad.deviceNames.lengths[0] = 9;
  t.throws(() => new SeriesTable().restore(bad), /lengths add up/);
  const short = stored(all);
  short.metric = short.metric.subarray(1);
  t.throws(() => new SeriesTable().restore(short), /malformed/);
  const noNames = stored(all) as Partial<SeriesRows>;
  delete noNames.deviceNames;
  t.throws(() => new SeriesTable().restore(noNames as SeriesRows), /names are malformed/);
  const later = st.rows({ series: 2, devices: 2, metrics: 1 }, st.rowMark());
  t.throws(() => new SeriesTable().restore(later), /BUG: series rows from 2 restored onto 0/);
  const swapped = stored(all);
  swapped.device.reverse();
  t.throws(() => back.restore(swapped), /series 0 restored as 4: checkpoint rows out of order/, 'rows that disagree with the rows held');
});

t.test('rows of the previous format (number arrays, [id, name] pairs) restore, and later rows follow them', async (t) => {
  const old: LegacySeriesRows[] = [
    { from: 0, pairs: [10, 1, 3, 1], devices: [[10, 'dev-10'], [3, 'dev-3']], metrics: [[1, 'cpu']] },
    { from: 2, pairs: [10, 2], devices: [], metrics: [[2, 'mem']] },
  ];
  const oldPackr = new Packr({ useRecords: false });
  const back = new SeriesTable();
  for (const rows of old) back.restore(unpackr.unpack(oldPackr.pack(rows)) as LegacySeriesRows);
  t.same(back.seriesOfDevice(10), [0, 2]);
  t.equal(back.metricName(2), 'mem');
  t.same(back.rowMark(), { series: 3, devices: 2, metrics: 2 });
  const parts = back.takeRestoredParts();
  t.same(parts.map((p) => p.end.series), [2, 3], 'each restore noted its end');
  t.same(back.takeRestoredParts(), []);
  // new rows after the legacy ones: a range from the restored mark
  const mark = back.rowMark();
  back.defineDevice(11, 'dev-11');
  back.seriesOf(11, 1);
  const again = new SeriesTable();
  for (const rows of old) again.restore(rows);
  again.restore(stored(back.rows(mark, back.rowMark())));
  t.equal(contentOf(again), contentOf(back));
});

t.test('property: any cut of the logs at rowMark() and markAt() marks restores the table', async () => {
  type Op = { kind: 'device' } | { kind: 'metric' } | { kind: 'series'; d: number; m: number } | { kind: 'mark' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.constant({ kind: 'device' as const }), fc.constant({ kind: 'metric' as const }), fc.constant({ kind: 'mark' as const }),
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('series' as const), d: fc.nat(), m: fc.nat() }) },
  );
  assertProperty(fc.property(fc.array(op, { maxLength: 120 }), fc.integer({ min: 1, max: 6 }), fc.array(fc.nat(), { maxLength: 6 }), (ops, every, picks) => {
    const st = new SeriesTable(undefined, every);
    const marks: RowMark[] = [st.rowMark()];
    let devices = 0;
    let metrics = 0;
    for (const o of ops) {
      if (o.kind === 'device') st.defineDevice(devices * 5 + 2, `d-${devices++}`);
      else if (o.kind === 'metric') st.defineMetric(metrics, `m.${metrics++}`);
      else if (o.kind === 'mark') marks.push(st.rowMark());
      else if (devices > 0 && metrics > 0) st.seriesOf((o.d % devices) * 5 + 2, o.m % metrics);
    }
    marks.push(st.rowMark());
    // add marks at multiples of `every`, the cuts a checkpoint may make
    for (const p of picks) {
      const k = Math.floor(st.seriesCount / every);
      if (k > 0) marks.push(st.markAt((p % k) * every));
    }
    marks.sort((a, b) => a.series - b.series || a.devices - b.devices || a.metrics - b.metrics);
    for (let i = 1; i < marks.length; i++) {
      const [a, b] = [marks[i - 1]!, marks[i]!];
      if (!(a.devices <= b.devices && a.metrics <= b.metrics)) throw new Error(`marks not ordered in every log: ${JSON.stringify([a, b])}`);
    }
    const back = new SeriesTable(undefined, every);
    for (let i = 1; i < marks.length; i++) back.restore(stored(st.rows(marks[i - 1]!, marks[i]!)));
    if (contentOf(back) !== contentOf(st)) throw new Error('restored table differs');
  }), 2_000);
});
