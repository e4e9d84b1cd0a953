import t from 'tap';
import fc from 'fast-check';
import { SluiceError } from '../../protocol';
import {
  decodePathParam, parseIntParam, parseQuantiles, parseRange, parseResolution, parseTopBy,
} from '../../engine/query-params';
import { anyNumber, assertProperty, isoLike, valueOrSluiceError } from '../helpers/property';

const NOW = Date.UTC(2026, 11, 1);
const RESOLUTIONS = [10_000, 60_000, 3_600_000, 86_400_000];

/** What clients put in a query parameter: plausible values, numbers of every magnitude, garbage. */
const anyParam: fc.Arbitrary<string | null> = fc.oneof(
  fc.constant(null), fc.constant(''), fc.string(), isoLike, fc.stringMatching(/^\d{1,25}$/),
  anyNumber.map(String), fc.constantFrom('10s', '1m', '5m', '1h', '1d', '0s', '-1m', '1e3', '0.5', '1,0.5,2', 'p99', '%E0%A4%A', '%'),
);

function params(entries: Record<string, string | null>): URLSearchParams {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(entries)) if (v !== null) p.set(k, v);
  return p;
}

t.test('a from after to names both, and cannot throw for times outside Date\'s range', async (t) => {
  const e = valueOrSluiceError(() => parseRange(params({ from: '9999999999999999', to: '1' }), NOW));
  t.type(e, SluiceError, 'beyond Date\'s range: refused');
  const f = valueOrSluiceError(() => parseRange(params({ from: '2000', to: '1000' }), NOW));
  t.type(f, SluiceError);
  t.match((f as SluiceError).message, /^from: 1970-01-01T00:00:02.000Z is after to \(1970-01-01T00:00:01.000Z\)/);
});

t.test('property: every query parameter parses to a value or a SLUICE_E_BAD_PARAM naming it', async () => {
  assertProperty(fc.property(anyParam, anyParam, anyParam, anyParam, anyParam, anyParam, (from, to, resolution, q, limit, by) => {
    const p = params({ from, to, resolution, q, limit, by });
    const range = valueOrSluiceError(() => parseRange(p, NOW));
    if (range instanceof SluiceError) return /^(from|to): /.test(range.message);
    if (!(range.from <= range.to) || !Number.isFinite(range.from) || !Number.isFinite(range.to)) return false;
    const res = valueOrSluiceError(() => parseResolution(p, RESOLUTIONS, range));
    if (res instanceof SluiceError ? !res.message.startsWith('resolution: ') : !RESOLUTIONS.includes(res)) return false;
    const qs = valueOrSluiceError(() => parseQuantiles(p, [0.5]));
    if (qs instanceof SluiceError ? !qs.message.startsWith('q: ') : !qs.every((x) => x >= 0 && x <= 1)) return false;
    const n = valueOrSluiceError(() => parseIntParam(p, 'limit', 100, 1, 10_000));
    if (n instanceof SluiceError ? !n.message.startsWith('limit: ') : !(Number.isInteger(n) && n >= 1 && n <= 10_000)) return false;
    const top = valueOrSluiceError(() => parseTopBy(p));
    return top instanceof SluiceError ? top.message.startsWith('by: ') : typeof top === 'string';
  }));
  assertProperty(fc.property(fc.oneof(fc.string(), fc.stringMatching(/^(%[0-9A-Fa-f]{0,2}|[a-z])*$/)), (raw) => {
    const v = valueOrSluiceError(() => decodePathParam('metric', raw));
    return v instanceof SluiceError ? v.message.startsWith('metric: ') : typeof v === 'string';
  }));
});
