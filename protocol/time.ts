/**
 * Timestamps: epoch milliseconds (or s, us, ns with an explicit precision) or ISO-8601 strings,
 * always read as UTC when no zone is given. Pure; used for event timestamps and query parameters.
 *
 * Contract: nothing here throws, whatever the input; formatTime() prints any number (a value
 * outside Date's range is printed as the number, where Date.toISOString would throw).
 */

import type { ErrorCode } from './errors';

/** The units a numeric timestamp may be sent in (`?precision=`, as InfluxDB's write API). */
export const TIME_PRECISIONS = ['s', 'ms', 'us', 'ns'] as const;
export type TimePrecision = typeof TIME_PRECISIONS[number];

/** The last instant Date can represent: a timestamp beyond it is no time at all. */
export const EPOCH_MS_MAX = 8.64e15;
/**
 * An unqualified numeric timestamp below this (1973-03-03 in ms, year 5138 in s) is taken for
 * seconds and refused with a reason, rather than read as a date in January 1970.
 */
export const UNQUALIFIED_MS_MIN = 1e11;
/** unqualified values from here up look like microseconds (now in us is ~1.8e15) ... */
const LOOKS_LIKE_US = 1e14;
/** ... and from here up like nanoseconds (now in ns is ~1.8e18) */
const LOOKS_LIKE_NS = 1e17;

/** Parses `?precision=`: one of TIME_PRECISIONS, null when absent, undefined when not one of them. */
export function parsePrecision(text: string | null): TimePrecision | null | undefined {
  if (text === null || text === '') return null;
  return (TIME_PRECISIONS as readonly string[]).includes(text) ? text as TimePrecision : undefined;
}

/** A numeric timestamp in its precision, as epoch ms (null: unqualified, already ms). */
export function toEpochMs(raw: number, precision: TimePrecision | null): number {
  switch (precision) {
    case 's': return raw * 1000;
    case 'us': return raw / 1e3;
    case 'ns': return raw / 1e6;
    default: return raw;
  }
}

/** Epoch ms as ISO-8601 when Date can show it, else the bare number; never throws. */
export function formatTime(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= EPOCH_MS_MAX ? new Date(ms).toISOString() : String(ms);
}

/** The lowest epoch ms a numeric timestamp of this precision may give. */
export function epochMsMin(precision: TimePrecision | null): number {
  return precision === null ? UNQUALIFIED_MS_MIN : 0;
}

/**
 * Why a numeric timestamp is refused: raw as sent, its precision (null: unqualified ms), and the
 * latest epoch ms accepted (now + skew). Call it only for a value outside
 * [epochMsMin(precision), futureMaxMs]; the reason names the field and, where the magnitude
 * gives the unit away, says how to send it.
 */
export function numericTimestampProblem(field: string, raw: number, precision: TimePrecision | null,
  futureMaxMs: number, skewMs: number): { code: ErrorCode; reason: string } {
  const unit = precision === null ? 'epoch milliseconds' : `epoch ${precision === 's' ? 'seconds' : precision === 'us' ? 'microseconds' : precision === 'ns' ? 'nanoseconds' : 'milliseconds'} (precision=${precision})`;
  if (!Number.isFinite(raw) || raw < 0) {
    return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: must be finite non-negative ${unit}, got ${raw}` };
  }
  const ms = toEpochMs(raw, precision);
  if (precision === null) {
    if (ms < UNQUALIFIED_MS_MIN) {
      return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: ${raw} is before 1973 as epoch milliseconds and looks like epoch seconds: send milliseconds, an ISO-8601 string, or add ?precision=s` };
    }
    if (ms > EPOCH_MS_MAX * 1e6) {
      return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: ${raw} is far outside the range of epoch milliseconds (and of any precision): send milliseconds or an ISO-8601 string` };
    }
    if (ms >= LOOKS_LIKE_NS) {
      return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: ${raw} is far outside the range of epoch milliseconds and looks like nanoseconds: send milliseconds, an ISO-8601 string, or add ?precision=ns` };
    }
    if (ms >= LOOKS_LIKE_US) {
      return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: ${raw} is far outside the range of epoch milliseconds and looks like microseconds: send milliseconds, an ISO-8601 string, or add ?precision=us` };
    }
  } else if (ms > EPOCH_MS_MAX) {
    return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: ${raw} as ${unit} is beyond the year 275760: check the precision` };
  }
  if (ms > futureMaxMs) {
    return { code: 'SLUICE_E_FUTURE_TIMESTAMP', reason: `${field}: ${formatTime(ms)} is more than ${skewMs} ms in the future` };
  }
  return { code: 'SLUICE_E_BAD_TIMESTAMP', reason: `${field}: ${raw} is not accepted as ${unit}` };
}

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
  // Date.UTC reads years 0-99 as 1900-1999: shift by 400 years (exactly 146,097 days) and back
  const shifted = y < 100;
  let t = Date.UTC(shifted ? y + 400 : y, mo - 1, d, h, mi, s === 60 ? 59 : s, ms) - (shifted ? 146_097 * 86_400_000 : 0);
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

/** A query parameter: digits are epoch ms (within Date's range), anything else must be ISO-8601. */
export function parseTimeParam(text: string): number {
  if (/^\d{1,16}$/.test(text)) {
    const t = +text;
    return t <= EPOCH_MS_MAX ? t : NaN;
  }
  return parseIsoTimestamp(text);
}
