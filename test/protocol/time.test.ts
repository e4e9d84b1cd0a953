import t from 'tap';
import { parseIsoTimestamp, parseTimeParam, parseTimestamp } from '../../protocol';

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
