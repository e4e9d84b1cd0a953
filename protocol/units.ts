/**
 * Durations and sizes as people write them in flags, environment variables and config files.
 *
 * Contract: pure functions, any thread, no I/O. Parsing accepts a non-negative number followed by
 * a unit (optionally separated by spaces), or a plain whole number in the base unit (milliseconds,
 * bytes) given as a JS number or a digit string. A decimal is accepted only when the result is a
 * whole number of base units (`1.5s` = 1500 ms, `0.5KiB` = 512 B; `1.5ms` is rejected). Units are
 * case-sensitive, so `MB` (10^6 bytes) never passes for `Mb` or `mb`. Results are safe integers.
 * Every rejection throws an Error whose message quotes the bad text and lists the accepted forms.
 * Formatting gives the shortest exact form, so format(parse(format(x))) === format(x).
 */

const MS_PER_SECOND = 1000;
const MS_PER_MINUTE = 60 * MS_PER_SECOND;
const MS_PER_HOUR = 60 * MS_PER_MINUTE;
const MS_PER_DAY = 24 * MS_PER_HOUR;

/** Unit suffixes and their factors, largest first (formatting prefers the earlier on a tie). */
const DURATION_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', MS_PER_DAY],
  ['h', MS_PER_HOUR],
  ['m', MS_PER_MINUTE],
  ['s', MS_PER_SECOND],
  ['ms', 1],
];

const KIB = 1024;
const SIZE_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['GiB', KIB * KIB * KIB],
  ['MiB', KIB * KIB],
  ['KiB', KIB],
  ['GB', 1e9],
  ['MB', 1e6],
  ['KB', 1e3],
  ['B', 1],
];

export const DURATION_FORMS =
  'a whole number of milliseconds, or a number followed by ms, s, m, h or d (e.g. 250ms, 10s, 5m, 1h, 1d)';
export const SIZE_FORMS =
  'a whole number of bytes, or a number followed by B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000) (e.g. 512B, 1KiB, 16MiB, 2GiB)';

const QUANTITY = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$/;

/** Parses `text` against `units`; returns undefined when it is not an exact, safe, whole amount. */
function parseQuantity(
  text: string | number,
  units: ReadonlyArray<readonly [string, number]>,
): number | undefined {
  if (typeof text === 'number') {
    return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  }
  if (typeof text !== 'string') return undefined;
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const [, digits, suffix] = match as unknown as [string, string, string];
  let factor = 1;
  if (suffix !== '') {
    const unit = units.find(([name]) => name === suffix);
    if (unit === undefined) return undefined;
    factor = unit[1];
  } else if (digits.includes('.')) {
    return undefined; // a bare number is in base units, which are whole
  }
  const value = Number(digits) * factor;
  // Rounding guards against binary fractions (0.1 * 1000); an inexact decimal still fails below.
  const rounded = Math.round(value);
  if (Math.abs(value - rounded) > 1e-9 * Math.max(1, Math.abs(value))) return undefined;
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}

function quote(text: unknown): string {
  return typeof text === 'string' ? JSON.stringify(text) : String(text);
}

/** Milliseconds in `text`: `250ms`, `10s`, `5m`, `1h`, `1d`, `1.5s`, `1500` or 1500. Throws on anything else. */
export function parseDuration(text: string | number): number {
  const ms = parseQuantity(text, DURATION_UNITS);
  if (ms === undefined) throw new Error(`invalid duration ${quote(text)} (accepted: ${DURATION_FORMS})`);
  return ms;
}

/** Bytes in `text`: `512B`, `1KiB`, `16MiB`, `2GiB`, `1KB` (1000), `1MB`, `1GB`, `4096` or 4096. Throws on anything else. */
export function parseSize(text: string | number): number {
  const bytes = parseQuantity(text, SIZE_UNITS);
  if (bytes === undefined) throw new Error(`invalid size ${quote(text)} (accepted: ${SIZE_FORMS})`);
  return bytes;
}

/** The shortest `<whole number><unit>` that equals `value` exactly; ties go to the earlier unit. */
function formatQuantity(value: number, units: ReadonlyArray<readonly [string, number]>, kind: string): string {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`cannot format ${quote(value)} as a ${kind}: not a non-negative whole number`);
  }
  if (value === 0) return `0${units[units.length - 1]![0]}`; // `0ms`, `0B`: not `0d`
  let best: string | undefined;
  for (const [name, factor] of units) {
    if (value % factor !== 0) continue;
    const candidate = `${value / factor}${name}`;
    if (best === undefined || candidate.length < best.length) best = candidate;
  }
  // The base unit (factor 1) is always a candidate, so best is set.
  return best as string;
}

/** `10000` -> `10s`, `1500` -> `1500ms`, `86400000` -> `1d`, `0` -> `0ms`. */
export function formatDuration(ms: number): string {
  return formatQuantity(ms, DURATION_UNITS, 'duration');
}

/** `16777216` -> `16MiB`, `1000000` -> `1MB`, `1000` -> `1KB`, `1500` -> `1500B`, `0` -> `0B`. */
export function formatSize(bytes: number): string {
  return formatQuantity(bytes, SIZE_UNITS, 'size');
}
