/**
 * InfluxDB line protocol: the grammar, the generic decoder, and the mapping onto Sluice events.
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * One point per line; blank lines and lines whose first non-blank byte is `#` are skipped (they
 * still count as line numbers); a line may end in CRLF; a quoted string field value may hold a
 * newline (the point then spans lines, as InfluxDB reads it). Escapes: `\,` `\ ` `\=` `\\` in the
 * measurement, tag keys and values and field keys; `\"` and `\\` in string field values; any other
 * backslash is itself.
 *
 * Mapping (issue #14): deviceId = the value of the device tag (`--lp-device-tag`, default `host`);
 * each numeric field `f` of measurement `m` is metric `m.f`, and a field named `value` is metric
 * `m`; floats, integers (`1i`, `1u`) and booleans (t/T/true/True/TRUE = 1, f/F/false/False/FALSE
 * = 0) are values; string fields and the other tags are tags (validated, not aggregated). The
 * timestamp is an integer in the request's precision; absent, it is the server's receive time.
 * EventScratch then validates the event as any other (names, values, timestamp range).
 *
 * Contract. Pure, never throws on any input. decodeLineProtocol() turns a body into events
 * `{deviceId?, timestamp, metrics, tags?}` (a point without the device tag has no deviceId, and
 * EventScratch rejects it) or a LineParseFailure in place of a line that does not parse, whose
 * reason names the field but not the line: event indexes map to line numbers with
 * lineProtocolEventLines() (the ingest prefixes every rejection with its line). This module is the
 * reference the byte scanner (line-protocol-events.ts) is tested against, and what the scanner
 * falls back to for a line it does not take (parsePoint), so both agree on every line's extent.
 * Cold path: it builds strings and objects per line.
 */

import { type BodyError, type DecodedBatch, LineParseFailure } from './codecs';
import type { TimePrecision } from './time';

/** the precisions the write APIs accept: 1.x n/ns, u/us, ms, s, m, h; 2.x ns, us, ms, s */
export type LpPrecision = 'ns' | 'us' | 'ms' | 's' | 'm' | 'h';

export interface LineProtocolOptions {
  /** the tag whose value is the deviceId (--lp-device-tag) */
  deviceTag: string;
  precision: LpPrecision;
}

/** The `precision` parameter of /write (v1) or /api/v2/write (v2): undefined when not one it accepts. */
export function parseLpPrecision(text: string | null, api: 'v1' | 'v2'): LpPrecision | undefined {
  if (text === null || text === '') return 'ns';
  switch (text) {
    case 'ns': case 'us': case 'ms': case 's': return text;
    case 'n': return api === 'v1' ? 'ns' : undefined;
    case 'u': return api === 'v1' ? 'us' : undefined;
    case 'm': case 'h': return api === 'v1' ? text : undefined;
    default: return undefined;
  }
}

export const LP_PRECISIONS = { v1: 'n, ns, u, us, ms, s, m, h', v2: 'ns, us, ms, s' } as const;

/**
 * The unit the ingest applies to a point's timestamp: Sluice's own precisions; minutes and hours
 * are sent on as seconds (the scanner and decoder multiply by lpTimestampScale).
 */
export function lpTimePrecision(p: LpPrecision): TimePrecision {
  return p === 'm' || p === 'h' ? 's' : p;
}

export function lpTimestampScale(p: LpPrecision): number {
  return p === 'm' ? 60 : p === 'h' ? 3600 : 1;
}

/** The receive time nowMs in lpTimePrecision(p): the timestamp of a point that gives none. */
export function lpReceiveTime(nowMs: number, p: LpPrecision): number {
  switch (lpTimePrecision(p)) {
    case 'ns': return nowMs * 1e6;
    case 'us': return nowMs * 1e3;
    case 's': return nowMs / 1e3;
    default: return nowMs;
  }
}

const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const COMMA = 0x2c;
const EQUALS = 0x3d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const HASH = 0x23;

const INT64_MAX = 9223372036854775807n;
const UINT64_MAX = 18446744073709551615n;
/** InfluxDB's own bounds for a timestamp (models.MinNanoTime / MaxNanoTime) */
export const LP_TIME_MAX = 9223372036854775806n;
const LP_TIME_MIN = -9223372036854775806n;

const FLOAT_RE = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INT_RE = /^-?\d+$/;
const UINT_RE = /^\d+$/;

/** Text quoted for a reason: at most 40 characters, JSON-escaped; never throws. */
function q(s: string): string {
  return JSON.stringify(s.length > 40 ? s.slice(0, 40) + '…' : s);
}

function utf8(bytes: number[]): string {
  return Buffer.from(bytes).toString('utf8');
}

/**
 * The start of the next point at or after p: blank lines and comments skipped. lines (if given)
 * counts the newlines passed. Returns end when no point is left.
 */
export function skipToPoint(b: Uint8Array, p: number, end: number, lines?: { n: number }): number {
  while (p < end) {
    const c = b[p];
    if (c === SPACE || c === TAB || c === CR) {
      p++;
    } else if (c === NL) {
      if (lines !== undefined) lines.n++;
      p++;
    } else if (c === HASH) {
      while (p < end && b[p] !== NL) p++;
    } else return p;
  }
  return end;
}

/** True when the body holds no point (empty, blank lines and comments only). */
export function isEmptyLineProtocol(b: Uint8Array): boolean {
  return skipToPoint(b, 0, b.byteLength) === b.byteLength;
}

/** A parsed point: its event or why it does not parse, and where the next line starts. */
export interface ParsedPoint {
  value: Record<string, unknown> | LineParseFailure;
  next: number;
}

class PointParser {
  p = 0;
  /** true once past the measurement and tags: quotes then open string field values */
  inFields = false;

  constructor(readonly b: Uint8Array, readonly end: number) {}

  /** at the end of the line: newline, CRLF or the end of the body */
  eol(): boolean {
    const p = this.p;
    if (p >= this.end) return true;
    const c = this.b[p];
    return c === NL || (c === CR && (p + 1 >= this.end || this.b[p + 1] === NL));
  }

  /**
   * A name or tag value up to an unescaped delimiter (`,` `=` or space, or the line's end), with
   * its escapes undone. stopAtEquals: false for tag values, where a bare `=` is refused.
   */
  token(stopAtEquals: boolean): { text: string; sawEquals: boolean } {
    const b = this.b;
    const out: number[] = [];
    let sawEquals = false;
    while (!this.eol()) {
      const c = b[this.p];
      if (c === BACKSLASH && this.p + 1 < this.end) {
        const n = b[this.p + 1];
        if (n === COMMA || n === EQUALS || n === SPACE || n === BACKSLASH) {
          out.push(n);
          this.p += 2;
          continue;
        }
      }
      if (c === COMMA || c === SPACE) break;
      if (c === EQUALS) {
        if (stopAtEquals) break;
        sawEquals = true;
      }
      out.push(c);
      this.p++;
    }
    return { text: utf8(out), sawEquals };
  }

  spaces(): void {
    while (this.p < this.end && this.b[this.p] === SPACE) this.p++;
  }

  /** After a failure at p: the start of the next line (a string field value's newline does not end it). */
  skipLine(): number {
    const b = this.b;
    let p = this.p;
    while (p < this.end) {
      const c = b[p];
      if (c === BACKSLASH && p + 1 < this.end && b[p + 1] !== NL) {
        p += 2;
        continue;
      }
      if (c === NL) return p + 1;
      if (c === SPACE) this.inFields = true;
      if (c === QUOTE && this.inFields && p > 0 && b[p - 1] === EQUALS) {
        p++;
        while (p < this.end && b[p] !== QUOTE) p += b[p] === BACKSLASH ? 2 : 1;
      }
      p++;
    }
    return this.end;
  }
}

/**
 * Parses the point at `start` (the caller skipped blank lines and comments). receiveRaw: the
 * timestamp of a point without one, in lpTimePrecision(opts.precision).
 */
export function parsePoint(b: Uint8Array, start: number, end: number, opts: LineProtocolOptions, receiveRaw: number): ParsedPoint {
  const r = new PointParser(b, end);
  r.p = start;
  const value = readPoint(r, opts, receiveRaw);
  if (value instanceof LineParseFailure) return { value, next: r.skipLine() };
  return { value, next: r.p < end ? r.p + 1 : end };
}

function fail(reason: string): LineParseFailure {
  return new LineParseFailure(reason);
}

function readPoint(r: PointParser, opts: LineProtocolOptions, receiveRaw: number): Record<string, unknown> | LineParseFailure {
  const b = r.b;
  const measurement = r.token(true).text;
  if (measurement === '') return fail('missing measurement');
  if (r.eol()) return fail(`measurement ${q(measurement)}: missing fields`);
  let deviceId: string | undefined;
  let tags: Record<string, string> | undefined;
  const seen = new Set<string>();
  while (b[r.p] === COMMA) {
    r.p++;
    const key = r.token(true).text;
    if (key === '') return fail('missing tag key');
    if (r.eol() || b[r.p] !== EQUALS) return fail(`tag ${q(key)}: missing tag value`);
    r.p++;
    const v = r.token(false);
    if (v.text === '') return fail(`tag ${q(key)}: missing tag value`);
    if (v.sawEquals) return fail(`tag ${q(key)}: invalid tag format (an unescaped "=" in its value)`);
    if (seen.has(key)) return fail(`tag ${q(key)}: duplicate tags`);
    seen.add(key);
    if (key === opts.deviceTag) deviceId = v.text;
    else {
      if (tags === undefined) tags = Object.create(null) as Record<string, string>;
      tags[key] = v.text;
    }
    if (r.eol()) return fail('missing fields');
  }
  if (b[r.p] !== SPACE) return fail(`measurement ${q(measurement)}: invalid format`);
  r.inFields = true;
  r.spaces();
  if (r.eol()) return fail('missing fields');
  const metrics = Object.create(null) as Record<string, number>;
  for (;;) {
    const f = r.token(true);
    const key = f.text;
    if (key === '') return fail('missing field key');
    if (r.eol() || b[r.p] !== EQUALS) return fail(`field ${q(key)}: invalid field format (no "=")`);
    r.p++;
    if (r.eol() || b[r.p] === COMMA || b[r.p] === SPACE) return fail(`field ${q(key)}: missing field value`);
    if (b[r.p] === QUOTE) {
      const s = readString(r);
      if (s === null) return fail(`field ${q(key)}: unbalanced quotes`);
      if (tags === undefined) tags = Object.create(null) as Record<string, string>;
      tags[key] = s;
    } else {
      const v = readValue(r, key);
      if (v instanceof LineParseFailure) return v;
      metrics[key === 'value' ? measurement : `${measurement}.${key}`] = v;
    }
    if (r.eol()) break;
    const c = b[r.p];
    if (c === COMMA) {
      r.p++;
      continue;
    }
    if (c === SPACE) break;
    return fail(`field ${q(key)}: invalid field format`);
  }
  r.spaces();
  let timestamp = receiveRaw;
  if (!r.eol()) {
    const at = r.p;
    while (!r.eol() && b[r.p] !== SPACE) r.p++;
    const text = utf8(Array.from(b.subarray(at, r.p)));
    r.spaces();
    if (!INT_RE.test(text) || !r.eol()) return fail(`bad timestamp ${q(text)}`);
    const t = BigInt(text);
    if (t > LP_TIME_MAX || t < LP_TIME_MIN) return fail(`timestamp ${text} outside range ${LP_TIME_MIN} - ${LP_TIME_MAX}`);
    timestamp = Number(t) * lpTimestampScale(opts.precision);
  }
  if (r.p < r.end && b[r.p] === CR) r.p++;
  const event: Record<string, unknown> = {};
  if (deviceId !== undefined) event.deviceId = deviceId;
  event.timestamp = timestamp;
  event.metrics = metrics;
  if (tags !== undefined) event.tags = tags;
  return event;
}

/** A quoted string field value at p (`\"` and `\\` undone; newlines kept), or null when it does not close. */
function readString(r: PointParser): string | null {
  const b = r.b;
  const out: number[] = [];
  let p = r.p + 1;
  for (;;) {
    if (p >= r.end) return null;
    const c = b[p];
    if (c === QUOTE) break;
    if (c === BACKSLASH && p + 1 < r.end && (b[p + 1] === QUOTE || b[p + 1] === BACKSLASH)) {
      out.push(b[p + 1]);
      p += 2;
      continue;
    }
    out.push(c);
    p++;
  }
  r.p = p + 1;
  return utf8(out);
}

const BOOLEANS: Record<string, number> = { t: 1, T: 1, true: 1, True: 1, TRUE: 1, f: 0, F: 0, false: 0, False: 0, FALSE: 0 };

/** A field's unquoted value: float, integer (`i`), unsigned (`u`) or boolean, as a number. */
function readValue(r: PointParser, key: string): number | LineParseFailure {
  const b = r.b;
  const at = r.p;
  while (!r.eol() && b[r.p] !== COMMA && b[r.p] !== SPACE) r.p++;
  const text = utf8(Array.from(b.subarray(at, r.p)));
  const last = text[text.length - 1];
  if (Object.prototype.hasOwnProperty.call(BOOLEANS, text)) return BOOLEANS[text];
  if (last === 'i' || last === 'u') {
    const digits = text.slice(0, -1);
    if (!(last === 'i' ? INT_RE : UINT_RE).test(digits)) return fail(`field ${q(key)}: invalid ${last === 'i' ? 'integer' : 'unsigned integer'} ${q(text)}`);
    const n = BigInt(digits);
    if (last === 'i' ? n > INT64_MAX || n < -INT64_MAX - 1n : n > UINT64_MAX) return fail(`field ${q(key)}: ${digits} out of range for ${last === 'i' ? 'an integer' : 'an unsigned integer'}`);
    return Number(n);
  }
  if (FLOAT_RE.test(text)) {
    const v = Number(text);
    if (!Number.isFinite(v)) return fail(`field ${q(key)}: invalid float ${q(text)} (out of range)`);
    return v;
  }
  const c = text.charCodeAt(0);
  if (c === 0x74 || c === 0x54 || c === 0x66 || c === 0x46) return fail(`field ${q(key)}: invalid boolean ${q(text)}`);
  return fail(`field ${q(key)}: invalid value ${q(text)} (a number, an integer 1i or 1u, a boolean or a "string")`);
}

/** Decodes a whole body: one event or LineParseFailure per point, in order. */
export function decodeLineProtocol(body: Uint8Array, opts: LineProtocolOptions, nowMs: number): DecodedBatch | BodyError {
  const events: unknown[] = [];
  const end = body.byteLength;
  const receiveRaw = lpReceiveTime(nowMs, opts.precision);
  let p = skipToPoint(body, 0, end);
  while (p < end) {
    const point = parsePoint(body, p, end, opts, receiveRaw);
    events.push(point.value);
    p = skipToPoint(body, point.next, end);
  }
  if (events.length === 0) return { code: 'SLUICE_E_BAD_BODY', reason: 'body: no point in the line protocol body' };
  return { seq: undefined, deviceId: undefined, events, columnar: null };
}

/** The 1-based line number of each point (event index) of a body: for the answers' `line N`. */
export function lineProtocolEventLines(body: Uint8Array, opts: LineProtocolOptions): number[] {
  const lines: number[] = [];
  const end = body.byteLength;
  const counter = { n: 1 };
  let p = skipToPoint(body, 0, end, counter);
  while (p < end) {
    lines.push(counter.n);
    const point = parsePoint(body, p, end, opts, 0);
    for (let i = p; i < point.next; i++) if (body[i] === NL) counter.n++;
    p = skipToPoint(body, point.next, end, counter);
  }
  return lines;
}

/**
 * A rejection's reason as the line protocol routes word it: `line N: ` first, and the deviceId
 * named by the tag the client sent.
 */
export function lineProtocolReason(reason: string, line: number, deviceTag: string): string {
  let r = reason;
  if (r === 'deviceId: missing') r = `missing the device tag ${q(deviceTag)} (--lp-device-tag)`;
  else if (r.startsWith('deviceId: ')) r = `tag ${q(deviceTag)}: ${r.slice(10)}`;
  return `line ${line}: ${r}`;
}
