import t from 'tap';
import fc from 'fast-check';
import { validateColumnar, isColumnarFault, type ColumnarRows, type ColumnarFault, type TimePrecision } from '../../protocol';
import { anyDeviceId, anyMetricName, anyNumber, assertProperty, isSluiceCode } from '../helpers/property';

const limits = { batchEventsMax: 100, metricsPerEventMax: 2, futureSkewMs: 60_000 };
const NOW = 1_700_000_000_000;
const f64 = (xs: number[]): Uint8Array => new Uint8Array(new Float64Array(xs).buffer);

function rows(v: ColumnarRows | ColumnarFault): ColumnarRows {
  if (isColumnarFault(v)) throw new Error(v.reason);
  return v;
}

t.test('a valid batch keeps every row and its columns', async (t) => {
  const r = rows(validateColumnar({ deviceId: 'gw', timestamps: f64([NOW, NOW + 1]), metrics: { cpu: f64([1, 2]), mem: f64([3, 4]) } }, null, NOW, limits));
  t.equal(r.rows, 2);
  t.same(r.names, ['cpu', 'mem']);
  t.equal(r.rowOk, null);
  t.same(r.rejections, []);
});

t.test('unaligned bins are read correctly', async (t) => {
  const buf = new Uint8Array(1 + 16);
  buf.set(f64([NOW, NOW - 5]), 1);
  const vals = new Uint8Array(3 + 16);
  vals.set(f64([7, Number.NaN]), 3);
  const r = rows(validateColumnar({ deviceId: 'gw', timestamps: buf.subarray(1), metrics: { cpu: vals.subarray(3) } }, null, NOW, limits));
  t.same(Array.from(r.rowOk!), [1, 0]);
  t.match(r.rejections[0].reason, /^metrics\.cpu\[1\]: must be a finite number, got NaN/);
});

t.test('bad rows are rejected alone, by index', async (t) => {
  const r = rows(validateColumnar({ deviceId: 'gw', timestamps: f64([NOW, -1, NOW + 120_000, NOW]), metrics: { cpu: f64([1, 2, 3, Infinity]) } }, null, NOW, limits));
  t.same(Array.from(r.rowOk!), [1, 0, 0, 0]);
  t.same(r.rejections.map((x) => [x.index, x.code]), [[1, 'SLUICE_E_BAD_TIMESTAMP'], [2, 'SLUICE_E_FUTURE_TIMESTAMP'], [3, 'SLUICE_E_BAD_METRIC_VALUE']]);
});

t.test('batch-level faults name the field', async (t) => {
  const cases: [Parameters<typeof validateColumnar>[0], string | null, RegExp][] = [
    [{ deviceId: 'a b', timestamps: f64([NOW]), metrics: { cpu: f64([1]) } }, null, /^deviceId: must be/],
    [{ deviceId: 'x', timestamps: f64([NOW]), metrics: { cpu: f64([1]) } }, 'y', /^deviceId: "x" on a connection pinned to "y"/],
    [{ deviceId: 'a', timestamps: new Uint8Array(12), metrics: { cpu: f64([1]) } }, null, /^timestamps: 12 bytes is not a positive multiple of 8/],
    [{ deviceId: 'a', timestamps: f64([NOW, NOW]), metrics: { cpu: f64([1]) } }, null, /^metrics\.cpu: must be a bin of 16 bytes/],
    [{ deviceId: 'a', timestamps: f64([NOW]), metrics: {} }, null, /^metrics: the columnar batch carries no metric/],
    [{ deviceId: 'a', timestamps: f64([NOW]), metrics: { a: f64([1]), b: f64([1]), c: f64([1]) } }, null, /^metrics: 3 metrics, more than 2/],
    [{ deviceId: 'a', timestamps: f64([NOW]), metrics: { 'bad name': f64([1]) } }, null, /^metrics: name "bad name"/],
    [{ deviceId: 'a', timestamps: f64(new Array(101).fill(NOW)), metrics: { cpu: f64(new Array(101).fill(1)) } }, null, /^timestamps: 101 rows, more than the 100/],
  ];
  for (const [b, pinned, re] of cases) {
    const r = validateColumnar(b, pinned, NOW, limits);
    t.ok(isColumnarFault(r), String(re));
    t.match((r as ColumnarFault).reason, re);
  }
  const pinnedOk = rows(validateColumnar({ deviceId: undefined, timestamps: f64([NOW]), metrics: { cpu: f64([1]) } }, 'p', NOW, limits));
  t.equal(pinnedOk.deviceId, 'p', 'a pinned connection may omit deviceId');
});

t.test('precision: the timestamps column is converted to ms, the sender\'s bytes untouched', async (t) => {
  const ms = [NOW - 20_000, NOW - 10_000];
  const sent = f64(ms.map((x) => x * 1e6));
  const r = rows(validateColumnar({ deviceId: 'd', timestamps: sent, metrics: { cpu: f64([1, 2]) } }, null, NOW, limits, 'ns'));
  t.same([...new Float64Array(r.timestamps.slice().buffer)], ms);
  t.same([...new Float64Array(sent.slice().buffer)], ms.map((x) => x * 1e6), 'input unchanged');
  const secs = rows(validateColumnar({ deviceId: 'd', timestamps: f64(ms.map((x) => x / 1000)), metrics: { cpu: f64([1, 2]) } }, null, NOW, limits));
  t.same(secs.rejections.map((x) => x.code), ['SLUICE_E_BAD_TIMESTAMP', 'SLUICE_E_BAD_TIMESTAMP'], 'seconds without precision');
  t.match(secs.rejections[0].reason, /^timestamps\[0\]: .*looks like epoch seconds/);
});

t.test('property: validateColumnar is total over shapes, lengths and values', async () => {
  const column = fc.oneof(
    fc.array(anyNumber, { maxLength: 12 }).map((xs) => f64(xs)),
    fc.uint8Array({ maxLength: 40 }),
    fc.anything(),
  );
  const batch = fc.record({
    deviceId: anyDeviceId,
    timestamps: fc.oneof(fc.array(fc.oneof(anyNumber, fc.double({ min: NOW - 1e9, max: NOW })), { maxLength: 12 }).map((xs) => f64(xs)), fc.uint8Array({ maxLength: 40 })),
    metrics: fc.dictionary(anyMetricName, column, { maxKeys: 3 }),
  });
  assertProperty(fc.property(batch, fc.constantFrom(null, 's', 'ms', 'us', 'ns'), (b, p) => {
    const r = validateColumnar(b as never, null, NOW, limits, p as TimePrecision | null);
    if (isColumnarFault(r)) return isSluiceCode(r.code) && r.reason.length > 0;
    const tv = new DataView(r.timestamps.buffer, r.timestamps.byteOffset, r.timestamps.byteLength);
    for (let i = 0; i < r.rows; i++) {
      if (r.rowOk !== null && r.rowOk[i] === 0) continue;
      const ts = tv.getFloat64(i * 8, true);
      if (!(ts >= (p === null ? 1e11 : 0) && ts <= NOW + limits.futureSkewMs)) return false;
    }
    return r.rejections.every((x) => isSluiceCode(x.code) && x.reason.length > 0 && x.index < r.rows);
  }));
});
