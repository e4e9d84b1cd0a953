/**
 * Timestamps: epoch milliseconds or ISO-8601 strings, always read as UTC when no zone is given.
 * Pure; used for event timestamps and for query parameters alike.
 */

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** Epoch ms of an ISO-8601 date or date-time (no zone = UTC), or NaN when it is not one. */
export function parseIsoTimestamp(text: string): number {
  const m = ISO_RE.exec(text);
  if (m === null) return NaN;
  const y = +m[1], mo = +m[2], d = +m[3];
  const h = m[4] === undefined ? 0 : +m[4];
  const mi = m[5] === undefined ? 0 : +m[5];
  const s = m[6] === undefined ? 0 : +m[6];
  const ms = m[7] === undefined ? 0 : Math.floor(+(m[7] + '000').slice(0, 3));
  if (mo < 1 || mo > 12 || d < 1) return NaN;
  if (d > (mo === 2 && isLeap(y) ? 29 : DAYS_IN_MONTH[mo - 1])) return NaN;
  if (h > 24 || mi > 59 || s > 60 || (h === 24 && (mi !== 0 || s !== 0 || ms !== 0))) return NaN;
  let t = Date.UTC(y, mo - 1, d, h, mi, s === 60 ? 59 : s, ms);
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = +digits.slice(0, 2), om = digits.length > 2 ? +digits.slice(2, 4) : 0;
    if (oh > 23 || om > 59) return NaN;
    t -= sign * (oh * 3600_000 + om * 60_000);
  }
  return t;
}

/**
 * An event or query time: a finite non-negative number of epoch ms, or an ISO-8601 string.
 * Returns NaN when it is neither.
 */
export function parseTimestamp(value: unknown): number {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : NaN;
  if (typeof value === 'string') return parseIsoTimestamp(value);
  return NaN;
}

/** A query parameter: digits are epoch ms, anything else must be ISO-8601. */
export function parseTimeParam(text: string): number {
  if (/^\d{1,16}$/.test(text)) return +text;
  return parseIsoTimestamp(text);
}
