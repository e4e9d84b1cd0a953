import t from 'tap';
import fc from 'fast-check';
import {
  parseIsoTimestamp, parseTimeParam, parseTimestamp, parsePrecision, toEpochMs, formatTime, epochMsMin,
  numericTimestampProblem, type TimePrecision,
} from '../../protocol';
import { anyNumber, anyTimestamp, assertProperty, isoLike } from '../helpers/property';

t.test('ISO-8601 forms, UTC when no zone', async (t) => {
  t.equal(parseIsoTimestamp('2020-01-13T15:12:00Z'), Date.UTC(2020, 0, 13, 15, 12));
  t.equal(parseIsoTimestamp('2020-01-13 15:12:00'), Date.UTC(2020, 0, 13, 15, 12));
  t.equal(parseIsoTimestamp('2020-01-13T15:12:00.123456Z'), Date.UTC(2020, 0, 13, 15, 12, 0, 123));
  t.equal(parseIsoTimestamp('2020-01-13T15:12:00+02:00'), Date.UTC(2020, 0, 13, 13, 12));
  t.equal(parseIsoTimestamp('2020-01-13T15:12:00-0530'), Date.UTC(2020, 0, 13, 20, 42));
  t.equal(parseIsoTimestamp('2020-01-13'), Date.UTC(2020, 0, 13));
  t.equal(parseIsoTimestamp('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
});

t.test('impossible dates and other text are NaN', async (t) => {
  for (const s of ['2023-02-29T00:00:00Z', '2020-13-01', '2020-01-32', '2020-01-01T25:00', 'now', '', '2020-01-01T00:00:00+25:00', '1577836800000x']) {
    t.ok(Number.isNaN(parseIsoTimestamp(s)), s);
  }
});

t.test('event timestamps: numbers or ISO strings; query params: digits or ISO', async (t) => {
  t.equal(parseTimestamp(12385439653), 12385439653);
  t.ok(Number.isNaN(parseTimestamp(-5)));
  t.ok(Number.isNaN(parseTimestamp(NaN)));
  t.ok(Number.isNaN(parseTimestamp(null)));
  t.equal(parseTimeParam('1577836800000'), 1577836800000);
  t.equal(parseTimeParam('2020-01-01T00:00:00Z'), 1577836800000);
  t.ok(Number.isNaN(parseTimeParam('-1')));
});

t.test('precision: s, ms, us and ns of one instant give the same epoch ms', async (t) => {
  const ms = Date.UTC(2026, 11, 1, 10, 0, 0);
  t.equal(toEpochMs(ms / 1000, 's'), ms);
  t.equal(toEpochMs(ms, 'ms'), ms);
  t.equal(toEpochMs(ms * 1000, 'us'), ms);
  t.equal(toEpochMs(ms * 1e6, 'ns'), ms);
  t.equal(toEpochMs(ms, null), ms, 'unqualified is ms');
  t.equal(parsePrecision(null), null);
  t.equal(parsePrecision(''), null);
  t.equal(parsePrecision('ns'), 'ns');
  t.equal(parsePrecision('NS'), undefined, 'case-sensitive as in InfluxDB');
  t.equal(parsePrecision('m'), undefined);
});

t.test('a refused numeric timestamp says what it looks like', async (t) => {
  const now = Date.UTC(2026, 11, 1);
  const why = (raw: number, p: TimePrecision | null = null): { code: string; reason: string } =>
    numericTimestampProblem('timestamp', raw, p, now + 60_000, 60_000);
  t.match(why(1796174194000000000), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /looks like nanoseconds.*precision=ns/ });
  t.match(why(1796174194000000), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /looks like microseconds.*precision=us/ });
  t.match(why(1764590000), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /looks like epoch seconds.*precision=s/ });
  t.match(why(1e300), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /far outside/ });
  t.match(why(-1e300), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /non-negative/ });
  t.match(why(NaN), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /finite/ });
  t.match(why(now + 3_600_000), { code: 'SLUICE_E_FUTURE_TIMESTAMP', reason: /2026-12-01T01:00:00.000Z is more than 60000 ms in the future/ });
  t.match(why(1e300, 'ns'), { code: 'SLUICE_E_BAD_TIMESTAMP', reason: /beyond the year 275760/ });
  t.match(why((now + 3_600_000) * 1e6, 'ns'), { code: 'SLUICE_E_FUTURE_TIMESTAMP' });
});

t.test('formatTime prints any number, ISO-8601 inside Date\'s range', async (t) => {
  t.equal(formatTime(0), '1970-01-01T00:00:00.000Z');
  t.equal(formatTime(8.64e15), '+275760-09-13T00:00:00.000Z');
  t.equal(formatTime(8.64e15 + 1), '8640000000000001');
  t.equal(formatTime(1e300), '1e+300');
  t.equal(formatTime(NaN), 'NaN');
  assertProperty(fc.property(anyNumber, (n) => typeof formatTime(n) === 'string'));
});

t.test('years 0-99 are read as written, not as 1900-1999', async (t) => {
  t.equal(new Date(parseIsoTimestamp('0099-01-01T00:00:00Z')).toISOString(), '0099-01-01T00:00:00.000Z');
  t.equal(new Date(parseIsoTimestamp('0050-06-15T00:00:00Z')).getUTCFullYear(), 50);
});

t.test('property: parsers are total over timestamps of every magnitude and form', async () => {
  assertProperty(fc.property(anyTimestamp, (v) => {
    const ms = parseTimestamp(v);
    return Number.isNaN(ms) || (typeof ms === 'number' && Number.isFinite(ms));
  }));
  assertProperty(fc.property(fc.oneof(isoLike, fc.string(), fc.stringMatching(/^\d{1,20}$/)), (text) => {
    const ms = parseTimeParam(text);
    return Number.isNaN(ms) || (Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 + 86_400_000 * 2);
  }));
  const now = Date.UTC(2026, 11, 1);
  assertProperty(fc.property(anyNumber, fc.constantFrom(null, 's', 'ms', 'us', 'ns'), (raw, p) => {
    const ms = toEpochMs(raw, p as TimePrecision | null);
    if (ms >= epochMsMin(p as TimePrecision | null) && ms <= now + 60_000) return true;
    const why = numericTimestampProblem('timestamp', raw, p as TimePrecision | null, now + 60_000, 60_000);
    return (why.code === 'SLUICE_E_BAD_TIMESTAMP' || why.code === 'SLUICE_E_FUTURE_TIMESTAMP') && why.reason.startsWith('timestamp: ');
  }));
});
