import t from 'tap';
import fc from 'fast-check';
import { EventScratch, ERRORS, isValidDeviceId, type ErrorCode, type TimePrecision } from '../../protocol';
import { anyDeviceId, anyMetricName, anyMetricValue, anyTimestamp, assertProperty, isSluiceCode } from '../helpers/property';

const limits = { batchEventsMax: 10_000, metricsPerEventMax: 4, futureSkewMs: 60_000 };
const NOW = Date.UTC(2026, 0, 1);

function check(raw: unknown, pinned: string | null = null): EventScratch {
  const ev = new EventScratch(limits);
  ev.validate(raw, pinned, NOW);
  return ev;
}

function metricsOf(ev: EventScratch): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < ev.metricCount; i++) out[ev.names[i]] = ev.values[i];
  return out;
}

t.test('the canonical shape and the seed shapes are accepted and mapped to metrics', async (t) => {
  const ev = new EventScratch(limits);
  t.ok(ev.validate({ deviceId: 'dev-1', timestamp: NOW - 5, metrics: { cpu: 1.5, mem: 2 }, tags: { fw: '1.2' } }, null, NOW));
  t.equal(ev.deviceId, 'dev-1');
  t.equal(ev.timestamp, NOW - 5);
  t.same(metricsOf(ev), { cpu: 1.5, mem: 2 });

  t.ok(ev.validate({ timestamp: '2020-01-01T00:00:00Z', deviceId: 'device-1234', clientVersion: 'v1.2.3', cpu: 83.2 }, null, NOW));
  t.equal(ev.timestamp, Date.UTC(2020, 0, 1));
  t.same(metricsOf(ev), { cpu: 83.2 }, 'clientVersion is a tag, cpu the metric');

  // May 1970 in ms: accepted only with an explicit precision (unqualified, it looks like seconds)
  t.notOk(ev.validate({ deviceId: 'device-11', timestamp: 12385439653, cpuUsage: 78.986 }, null, NOW));
  t.match(ev.errorReason, /looks like epoch seconds/);
  ev.precision = 'ms';
  t.ok(ev.validate({ deviceId: 'device-11', timestamp: 12385439653, cpuUsage: 78.986 }, null, NOW));
  t.same(metricsOf(ev), { cpuUsage: 78.986 });
  t.equal(ev.timestamp, 12385439653);
  ev.precision = null;

  t.ok(ev.validate({ deviceId: 'sensor.7', timestamp: '2020-01-13 15:12:00', temperature: 2, humidity: 40 }, null, NOW));
  t.equal(ev.timestamp, Date.UTC(2020, 0, 13, 15, 12), 'a date-time without zone is UTC');
  t.same(metricsOf(ev), { temperature: 2, humidity: 40 });
});

t.test('pinned connections: deviceId may be omitted, may not differ', async (t) => {
  const ev = check({ timestamp: NOW, metrics: { cpu: 1 } }, 'pinned-1');
  t.equal(ev.errorReason, '');
  t.equal(ev.deviceId, 'pinned-1');
  const other = check({ deviceId: 'other', timestamp: NOW, metrics: { cpu: 1 } }, 'pinned-1');
  t.equal(other.errorCode, 'SLUICE_E_DEVICE_MISMATCH');
  t.match(other.errorReason, /^deviceId: "other" on a connection pinned to "pinned-1"/);
});

const REJECTIONS: [string, unknown, ErrorCode, RegExp][] = [
  ['not an object', 42, 'SLUICE_E_BAD_EVENT', /^event must be an object, got 42/],
  ['an array', [1], 'SLUICE_E_BAD_EVENT', /^event must be an object, got an array/],
  ['no deviceId', { timestamp: NOW, cpu: 1 }, 'SLUICE_E_BAD_DEVICE_ID', /^deviceId: missing/],
  ['deviceId with a space', { deviceId: 'a b', timestamp: NOW, cpu: 1 }, 'SLUICE_E_BAD_DEVICE_ID', /^deviceId: must be 1-128 characters/],
  ['deviceId too long', { deviceId: 'x'.repeat(129), timestamp: NOW, cpu: 1 }, 'SLUICE_E_BAD_DEVICE_ID', /^deviceId:/],
  ['deviceId empty', { deviceId: '', timestamp: NOW, cpu: 1 }, 'SLUICE_E_BAD_DEVICE_ID', /^deviceId:/],
  ['deviceId a number', { deviceId: 7, timestamp: NOW, cpu: 1 }, 'SLUICE_E_BAD_DEVICE_ID', /got 7/],
  ['no timestamp', { deviceId: 'd', cpu: 1 }, 'SLUICE_E_BAD_TIMESTAMP', /^timestamp: missing/],
  ['timestamp garbage', { deviceId: 'd', timestamp: 'yesterday', cpu: 1 }, 'SLUICE_E_BAD_TIMESTAMP', /^timestamp: must be epoch milliseconds or an ISO-8601 string, got "yesterday"/],
  ['timestamp Feb 30', { deviceId: 'd', timestamp: '2020-02-30T00:00:00Z', cpu: 1 }, 'SLUICE_E_BAD_TIMESTAMP', /^timestamp:/],
  ['timestamp negative', { deviceId: 'd', timestamp: -1, cpu: 1 }, 'SLUICE_E_BAD_TIMESTAMP', /^timestamp:/],
  ['timestamp in the future', { deviceId: 'd', timestamp: NOW + 61_000, cpu: 1 }, 'SLUICE_E_FUTURE_TIMESTAMP', /^timestamp: .* more than 60000 ms in the future/],
  ['metrics not an object', { deviceId: 'd', timestamp: NOW, metrics: 3 }, 'SLUICE_E_BAD_METRIC_VALUE', /^metrics: must be an object/],
  ['metric value a string', { deviceId: 'd', timestamp: NOW, metrics: { cpu: 'high' } }, 'SLUICE_E_BAD_METRIC_VALUE', /^metrics\.cpu: must be a finite number, got "high"/],
  ['metric value infinite', { deviceId: 'd', timestamp: NOW, metrics: { cpu: Infinity } }, 'SLUICE_E_BAD_METRIC_VALUE', /^metrics\.cpu: must be a finite number, got Infinity/],
  ['metric name bad', { deviceId: 'd', timestamp: NOW, metrics: { 'cpu load': 1 } }, 'SLUICE_E_BAD_METRIC_NAME', /^metrics\.cpu load: metric name "cpu load"/],
  ['metric name too long', { deviceId: 'd', timestamp: NOW, metrics: { ['m'.repeat(65)]: 1 } }, 'SLUICE_E_BAD_METRIC_NAME', /must be 1-64 characters/],
  ['no metrics (nested)', { deviceId: 'd', timestamp: NOW, metrics: {} }, 'SLUICE_E_NO_METRICS', /^metrics: the event carries no metric/],
  ['no metrics (flat)', { deviceId: 'd', timestamp: NOW, fw: 'x' }, 'SLUICE_E_NO_METRICS', /^metrics:/],
  ['too many metrics', { deviceId: 'd', timestamp: NOW, metrics: { a: 1, b: 2, c: 3, d: 4, e: 5 } }, 'SLUICE_E_TOO_MANY_METRICS', /more than 4 metrics/],
  ['unexpected field next to metrics', { deviceId: 'd', timestamp: NOW, metrics: { a: 1 }, extra: 1 }, 'SLUICE_E_BAD_EVENT', /^extra: unexpected field/],
  ['flat field of another type', { deviceId: 'd', timestamp: NOW, cpu: 1, on: true }, 'SLUICE_E_BAD_METRIC_VALUE', /^on: must be a finite number \(a metric\) or a string \(a tag\), got true/],
  ['tags not an object', { deviceId: 'd', timestamp: NOW, metrics: { a: 1 }, tags: 'x' }, 'SLUICE_E_BAD_TAG', /^tags: must be an object/],
  ['tag value a number', { deviceId: 'd', timestamp: NOW, metrics: { a: 1 }, tags: { fw: 2 } }, 'SLUICE_E_BAD_TAG', /^tags\.fw: must be a string/],
  ['tag value too long', { deviceId: 'd', timestamp: NOW, cpu: 1, fw: 'v'.repeat(257) }, 'SLUICE_E_BAD_TAG', /^fw: must be a string of at most 256/],
];

t.test('every rejection names the field', async (t) => {
  const seen = new Set<ErrorCode>();
  for (const [name, raw, code, reason] of REJECTIONS) {
    const ev = new EventScratch(limits);
    t.equal(ev.validate(raw, null, NOW), false, `${name}: rejected`);
    t.equal(ev.errorCode, code, `${name}: code`);
    t.match(ev.errorReason, reason, `${name}: reason`);
    t.ok(ERRORS[ev.errorCode], `${name}: the code is registered`);
    seen.add(code);
  }
  t.same([...seen].sort(), ['SLUICE_E_BAD_DEVICE_ID', 'SLUICE_E_BAD_EVENT', 'SLUICE_E_BAD_METRIC_NAME', 'SLUICE_E_BAD_METRIC_VALUE',
    'SLUICE_E_BAD_TAG', 'SLUICE_E_BAD_TIMESTAMP', 'SLUICE_E_FUTURE_TIMESTAMP', 'SLUICE_E_NO_METRICS', 'SLUICE_E_TOO_MANY_METRICS'],
  'the table covers every event-level code');
});

t.test('a scratch reused after a rejection starts clean', async (t) => {
  const ev = new EventScratch(limits);
  t.notOk(ev.validate({ deviceId: 'd', timestamp: NOW, metrics: { a: 1, b: 'x' } }, null, NOW));
  t.ok(ev.validate({ deviceId: 'd', timestamp: NOW, metrics: { c: 3 } }, null, NOW));
  t.same(metricsOf(ev), { c: 3 });
});

t.test('precision: s, ms, us and ns of one instant validate to the same timestamp', async (t) => {
  const ms = NOW - 10_000;
  for (const [p, raw] of [['s', ms / 1000], ['ms', ms], ['us', ms * 1000], ['ns', ms * 1e6], [null, ms]] as const) {
    const ev = new EventScratch(limits);
    ev.precision = p;
    t.ok(ev.validate({ deviceId: 'd', timestamp: raw, metrics: { cpu: 1 } }, null, NOW), `precision ${p}`);
    t.equal(ev.timestamp, ms, `precision ${p}`);
  }
  const ev = new EventScratch(limits);
  t.notOk(ev.validate({ deviceId: 'd', timestamp: ms / 1000, metrics: { cpu: 1 } }, null, NOW), 'seconds without precision');
  t.equal(ev.errorCode, 'SLUICE_E_BAD_TIMESTAMP');
  t.match(ev.errorReason, /^timestamp: \d+ is before 1973 as epoch milliseconds and looks like epoch seconds: .*precision=s/);
  t.notOk(ev.validate({ deviceId: 'd', timestamp: 1796174194000000000, metrics: { cpu: 1 } }, null, NOW), 'nanoseconds without precision');
  t.equal(ev.errorCode, 'SLUICE_E_BAD_TIMESTAMP');
  t.match(ev.errorReason, /looks like nanoseconds/);
  t.ok(ev.validate({ deviceId: 'd', timestamp: '2025-12-31T23:59:50Z', metrics: { cpu: 1 } }, null, NOW), 'ISO-8601 unchanged');
});

t.test('property: validate is total; an accepted event is within bounds, a refused one has a code and a reason', async () => {
  const event = fc.oneof(
    fc.record({ deviceId: anyDeviceId, timestamp: anyTimestamp, metrics: fc.dictionary(anyMetricName, anyMetricValue, { maxKeys: 6 }) }, { requiredKeys: [] }),
    fc.record({ deviceId: anyDeviceId, timestamp: anyTimestamp, cpu: anyMetricValue, tags: fc.anything() }, { requiredKeys: [] }),
    fc.anything(),
  );
  const ev = new EventScratch(limits);
  assertProperty(fc.property(event, fc.constantFrom(null, 's', 'ms', 'us', 'ns'), fc.option(fc.constantFrom('pinned-1')), (raw, p, pinned) => {
    ev.precision = p as TimePrecision | null;
    if (ev.validate(raw, pinned, NOW)) {
      const min = p === null ? 1e11 : 0;
      if (!(ev.timestamp >= min && ev.timestamp <= NOW + limits.futureSkewMs)) return false;
      if (!isValidDeviceId(ev.deviceId) || ev.metricCount < 1) return false;
      for (let i = 0; i < ev.metricCount; i++) if (!Number.isFinite(ev.values[i])) return false;
      return true;
    }
    return isSluiceCode(ev.errorCode) && ev.errorReason.length > 0;
  }));
});
