/**
 * Parsing of query-string parameters. Every failure is a SluiceError SLUICE_E_BAD_PARAM whose
 * message names the parameter and what it accepts.
 */

import { SluiceError, TOP_BY, parseDuration, parseTimeParam, formatDuration, formatTime, type TopBy } from '../protocol';

export const DEFAULT_RANGE_MS = 3600_000;
export const TOP_N_MAX = 1000;
export const DEVICES_LIMIT_MAX = 10_000;
export const WINDOWS_MAX = 100_000;

function bad(name: string, message: string): SluiceError {
  return new SluiceError('SLUICE_E_BAD_PARAM', `${name}: ${message}`);
}

export interface TimeRange {
  from: number;
  to: number;
}

/** from/to as epoch ms or ISO-8601; default: the last hour up to now (the open window included). */
export function parseRange(p: URLSearchParams, nowMs: number): TimeRange {
  const toText = p.get('to');
  const fromText = p.get('from');
  const to = toText === null || toText === '' ? nowMs : parseTimeParam(toText);
  if (Number.isNaN(to)) throw bad('to', `${JSON.stringify(toText)} is neither epoch milliseconds nor ISO-8601`);
  const from = fromText === null || fromText === '' ? to - DEFAULT_RANGE_MS : parseTimeParam(fromText);
  if (Number.isNaN(from)) throw bad('from', `${JSON.stringify(fromText)} is neither epoch milliseconds nor ISO-8601`);
  if (from > to) throw bad('from', `${formatTime(from)} is after to (${formatTime(to)})`);
  return { from, to };
}

export function parseQuantiles(p: URLSearchParams, defaults: number[]): number[] {
  const text = p.get('q');
  if (text === null || text === '') return defaults;
  const parts = text.split(',');
  if (parts.length > 32) throw bad('q', 'at most 32 quantiles');
  return parts.map((s) => {
    const q = Number(s.trim());
    if (s.trim() === '' || !Number.isFinite(q) || q < 0 || q > 1) throw bad('q', `${JSON.stringify(s)} is not a number in [0, 1]`);
    return q;
  });
}

export const DEFAULT_WINDOWS_MAX = 1000;

/**
 * One of the configured resolutions; default: the finest that gives at most 1,000 windows over
 * the range (the coarsest when none does).
 */
export function parseResolution(p: URLSearchParams, resolutions: number[], range: TimeRange): number {
  const text = p.get('resolution');
  const span = range.to - range.from;
  if (text === null || text === '') {
    for (const r of resolutions) if (Math.ceil(span / r) + 1 <= DEFAULT_WINDOWS_MAX) return r;
    return resolutions[resolutions.length - 1];
  }
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw bad('resolution', `${JSON.stringify(text)} is not a duration (${resolutions.map(formatDuration).join(', ')})`);
  }
  if (!resolutions.includes(ms)) {
    throw bad('resolution', `${text} is not one of ${resolutions.map(formatDuration).join(', ')} (--resolutions)`);
  }
  if (span / ms > WINDOWS_MAX) {
    throw bad('resolution', `${formatDuration(ms)} gives more than ${WINDOWS_MAX} windows over this range: use a coarser resolution or a shorter range`);
  }
  return ms;
}

export function parseIntParam(p: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const text = p.get(name);
  if (text === null || text === '') return def;
  if (!/^\d+$/.test(text)) throw bad(name, `${JSON.stringify(text)} is not an integer`);
  const n = Number(text);
  if (n < min || n > max) throw bad(name, `${n} is out of range (allowed: ${min}..${max})`);
  return n;
}

export function parseTopBy(p: URLSearchParams): TopBy {
  const text = p.get('by');
  if (text === null || text === '') return 'mean';
  if (!(TOP_BY as readonly string[]).includes(text)) throw bad('by', `${JSON.stringify(text)} is not one of ${TOP_BY.join(', ')}`);
  return text as TopBy;
}

export function decodePathParam(name: string, raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw bad(name, `${JSON.stringify(raw)} is not valid percent-encoding`);
  }
}
