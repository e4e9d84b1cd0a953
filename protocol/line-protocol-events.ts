/**
 * A byte-level scanner of InfluxDB line protocol bodies (line-protocol.ts has the grammar and the
 * mapping): each point read once into a PackedEvent (packed-event.ts), with no string or object
 * per line.
 *
 * Contract. Front-end thread, one body at a time, as json-events.ts: configure(), frame(), next()
 * until SCAN_END, atEnd (always true: every byte belongs to a line). A point of the common shape
 * (no escape, no quote inside a name, numbers the fast path computes exactly, valid names, device
 * tag present) is SCAN_OK; any other point is SCAN_SLOW, and slowEvent() is line-protocol.ts's
 * parsePoint of it (an event, or a LineParseFailure for a line that does not parse), which also
 * says where the next line starts. Never SCAN_FRAME; never throws.
 *
 * Metric names. `m.f` is not a byte range of the body, so the scanner writes every metric name
 * into its own arena (nameBytes) and gives the PackedEvent arena ranges. A name is written once
 * per frame (a per-frame table finds it again by hash and bytes): repeated points give the same
 * range, which keeps the ingest's memo by position effective. The deviceId stays a range of the
 * body. The arena may be replaced by a larger one during a frame: read nameBytes when you use it.
 *
 * Numbers as line-protocol.ts reads them: a float of at most 15 significant digits scaled by at
 * most 10^22 is one correctly rounded IEEE operation (Clinger's fast path, as json-events.ts);
 * others go slow. Integers (fields `1i`/`1u` up to 15 digits, timestamps up to 19) are exact up
 * to 2^53 and above it built as hi * 2^32 + lo, one rounding: the same double as Number(BigInt).
 */

import {
  type EventScanner, type PackedFrame, PackedEvent, SCAN_OK, SCAN_SLOW, SCAN_END,
  NAME_BYTES, DEVICE_NAME, METRIC_NAME, DEVICE_BYTES_MAX, METRIC_BYTES_MAX, asciiString,
} from './packed-event';
import { type LineProtocolOptions, lpReceiveTime, lpTimestampScale, parsePoint, skipToPoint } from './line-protocol';
import { TAG_NAME_LENGTH_MAX, TAG_VALUE_LENGTH_MAX } from './event';

const EMPTY = new Uint8Array(0);
const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const COMMA = 0x2c;
const EQUALS = 0x3d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const MINUS = 0x2d;
/** FNV-1a's offset basis as an int32: the hash stays a small integer in the loops (same bits as nameHash's) */
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
const POW10 = new Float64Array(23);
for (let i = 0, p = 1; i <= 22; i++, p *= 10) POW10[i] = p;
const DIGITS_MAX = 15;
const TWO32 = 4294967296;
/** the high 32-bit word of LP_TIME_MAX (2^63 - 2): at most this, and then a low word <= 2^32 - 2 */
const TIME_HI_MAX = 0x7fffffff;
const TIME_LO_MAX = 0xfffffffe;
/** tags per point the fast path compares for duplicates; a point with more goes slow */
const TAGS_MAX = 32;
/** the top of every line protocol frame: no seq, no envelope device, count unknown */
const FRAME_TOP: PackedFrame = Object.freeze({ seq: undefined, deviceId: undefined, count: -1 });

/** bit 1: ends a tag value ( , space = \ newline CR) */
const TAG_VALUE_STOP = new Uint8Array(256);
for (const c of [COMMA, SPACE, EQUALS, BACKSLASH, NL, CR]) TAG_VALUE_STOP[c] = 1;

export class LineProtocolReader implements EventScanner {
  private b: Uint8Array = EMPTY;
  private end = 0;
  pos = 0;
  eventStart = 0;
  private opts: LineProtocolOptions = { deviceTag: 'host', precision: 'ns' };
  private devTag: Uint8Array = new Uint8Array(0);
  private scale = 1;
  private receiveRaw = 0;
  private slow: unknown = null;
  /** the number readNumber() read */
  private num = 0;
  // the metric-name arena and its per-frame table (gen-stamped slots: no clearing per frame)
  private arena = new Uint8Array(4096);
  private arenaUsed = 0;
  private slotGen = new Int32Array(1024);
  private slotEntry = new Int32Array(1024);
  private mask = 1023;
  private gen = 0;
  private entAt = new Int32Array(256);
  private entLen = new Int32Array(256);
  private entHash = new Float64Array(256);
  private entries = 0;
  private readonly tagAt = new Int32Array(TAGS_MAX);
  private readonly tagLen = new Int32Array(TAGS_MAX);

  /** The request's device tag and precision, and its receive time (the timestamp of a point without one). */
  configure(opts: LineProtocolOptions, nowMs: number): void {
    if (opts.deviceTag !== this.opts.deviceTag) this.devTag = Buffer.from(opts.deviceTag, 'utf8');
    else if (this.devTag.length === 0) this.devTag = Buffer.from(opts.deviceTag, 'utf8');
    this.opts = opts;
    this.scale = lpTimestampScale(opts.precision);
    this.receiveRaw = lpReceiveTime(nowMs, opts.precision);
  }

  get nameBytes(): Uint8Array {
    return this.arena;
  }

  get atEnd(): boolean {
    return true;
  }

  frame(bytes: Uint8Array): PackedFrame | null {
    if (bytes.byteLength === 0) return null;
    this.b = bytes;
    this.end = bytes.byteLength;
    this.pos = 0;
    this.arenaUsed = 0;
    this.entries = 0;
    this.gen++;
    if (this.gen === 0x7fffffff) {
      this.slotGen.fill(0);
      this.gen = 1;
    }
    return FRAME_TOP;
  }

  /**
   * The generic decode of the last point: parsed when next() answered SCAN_SLOW, and here for a
   * SCAN_OK point the caller turned down (a timestamp out of range, a device over the limit).
   */
  slowEvent(): unknown {
    if (this.slow === null) this.slow = parsePoint(this.b, this.eventStart, this.end, this.opts, this.receiveRaw).value;
    return this.slow;
  }

  next(ev: PackedEvent): number {
    const p = skipToPoint(this.b, this.pos, this.end);
    if (p >= this.end) {
      this.pos = this.end;
      return SCAN_END;
    }
    this.eventStart = p;
    this.pos = p;
    this.slow = null;
    if (this.readPoint(ev)) return SCAN_OK;
    const point = parsePoint(this.b, p, this.end, this.opts, this.receiveRaw);
    this.slow = point.value;
    this.pos = point.next;
    return SCAN_SLOW;
  }

  /** The fast path: true with the point in ev and pos at the next line; false: take it slow. */
  private readPoint(ev: PackedEvent): boolean {
    ev.reset();
    const b = this.b;
    const end = this.end;
    let p = this.pos;
    // measurement: metric-name bytes, hashed as it goes (every metric name starts with it)
    const mAt = p;
    let mh = FNV_OFFSET;
    let c = 0;
    while (p < end && (NAME_BYTES[c = b[p]] & METRIC_NAME) !== 0) {
      mh = Math.imul(mh ^ c, FNV_PRIME);
      p++;
    }
    const mLen = p - mAt;
    // a name starting with a digit may be an array index as an object key (the generic path orders those first)
    if (p >= end || mLen === 0 || mLen > METRIC_BYTES_MAX || (b[mAt] >= 48 && b[mAt] <= 57)) return false;
    let tags = 0;
    if (c === COMMA) {
      for (;;) {
        p++;
        const kAt = p;
        while (p < end && (NAME_BYTES[c = b[p]] & METRIC_NAME) !== 0) p++;
        const kLen = p - kAt;
        if (p >= end || c !== EQUALS || kLen === 0 || kLen > TAG_NAME_LENGTH_MAX || tags === TAGS_MAX) return false;
        for (let t = 0; t < tags; t++) {
          if (this.tagLen[t] === kLen && sameRange(b, this.tagAt[t], kAt, kLen)) return false;
        }
        this.tagAt[tags] = kAt;
        this.tagLen[tags] = kLen;
        tags++;
        p++;
        const vAt = p;
        if (this.isDeviceTag(kAt, kLen)) {
          let h = FNV_OFFSET;
          while (p < end && (NAME_BYTES[c = b[p]] & DEVICE_NAME) !== 0) {
            h = Math.imul(h ^ c, FNV_PRIME);
            p++;
          }
          const vLen = p - vAt;
          if (vLen === 0 || vLen > DEVICE_BYTES_MAX) return false;
          ev.setDevice(vAt, vLen, h >>> 0);
        } else {
          while (p < end && TAG_VALUE_STOP[b[p]] === 0) p++;
          // UTF-16 length <= bytes: at most the limit in bytes is within it whatever the text
          const vLen = p - vAt;
          if (vLen === 0 || vLen > TAG_VALUE_LENGTH_MAX) return false;
        }
        if (p >= end) return false;
        c = b[p];
        if (c !== COMMA) break;
      }
    }
    if (c !== SPACE || ev.deviceAt < 0) return false;
    while (p < end && b[p] === SPACE) p++;
    // fields
    for (;;) {
      const kAt = p;
      let h = Math.imul(mh ^ DOT, FNV_PRIME);
      while (p < end && (NAME_BYTES[c = b[p]] & METRIC_NAME) !== 0) {
        h = Math.imul(h ^ c, FNV_PRIME);
        p++;
      }
      const kLen = p - kAt;
      if (p >= end || c !== EQUALS || kLen === 0) return false;
      p++;
      if (p >= end) return false;
      c = b[p];
      if (c === QUOTE) {
        // a string field is a tag: its name and length are checked, its text is not kept
        if (kLen > TAG_NAME_LENGTH_MAX) return false;
        const sAt = ++p;
        while (p < end && (c = b[p]) !== QUOTE && c !== BACKSLASH && c !== NL) p++;
        if (p >= end || c !== QUOTE || p - sAt > TAG_VALUE_LENGTH_MAX) return false;
        p++;
      } else {
        p = this.readValue(p);
        if (p < 0) return false;
        const isValue = kLen === 5 && b[kAt] === 118 && b[kAt + 1] === 97 && b[kAt + 2] === 108 && b[kAt + 3] === 117 && b[kAt + 4] === 101;
        const len = isValue ? mLen : mLen + 1 + kLen;
        if (len > METRIC_BYTES_MAX) return false;
        const nh = (isValue ? mh : h) >>> 0;
        const at = this.nameAt(nh, mAt, mLen, isValue ? -1 : kAt, kLen);
        if (!ev.addHashed(this.arena, at, len, nh, this.num)) return false;
      }
      if (p >= end) break;
      c = b[p];
      if (c === COMMA) {
        p++;
        continue;
      }
      break;
    }
    if (ev.metricCount === 0) return false;
    // timestamp
    if (p < end && c === SPACE) {
      while (p < end && b[p] === SPACE) p++;
      if (p < end && b[p] !== NL && !(b[p] === CR && (p + 1 === end || b[p + 1] === NL))) {
        p = this.readTimestamp(p);
        if (p < 0) return false;
        while (p < end && b[p] === SPACE) p++;
        ev.setTimestamp(this.num * this.scale);
      }
    }
    if (!ev.hasTimestamp) ev.setTimestamp(this.receiveRaw);
    if (p < end && b[p] === CR) p++;
    if (p < end) {
      if (b[p] !== NL) return false;
      p++;
    }
    this.pos = p;
    return true;
  }

  private isDeviceTag(at: number, len: number): boolean {
    const d = this.devTag;
    if (len !== d.length) return false;
    const b = this.b;
    for (let i = 0; i < len; i++) if (b[at + i] !== d[i]) return false;
    return true;
  }

  /**
   * The arena position of metric name `m.f` (kAt < 0: `m` alone) of hash h: the one this frame
   * wrote already, else newly written.
   */
  private nameAt(h: number, mAt: number, mLen: number, kAt: number, kLen: number): number {
    const len = kAt < 0 ? mLen : mLen + 1 + kLen;
    const gen = this.gen;
    let s = h & this.mask;
    while (this.slotGen[s] === gen) {
      const e = this.slotEntry[s];
      if (this.entHash[e] === h && this.entLen[e] === len && this.arenaHolds(this.entAt[e], mAt, mLen, kAt, kLen)) return this.entAt[e];
      s = (s + 1) & this.mask;
    }
    return this.addName(h, s, mAt, mLen, kAt, kLen, len);
  }

  private arenaHolds(at: number, mAt: number, mLen: number, kAt: number, kLen: number): boolean {
    const a = this.arena;
    const b = this.b;
    for (let i = 0; i < mLen; i++) if (a[at + i] !== b[mAt + i]) return false;
    if (kAt < 0) return true;
    const k = at + mLen + 1;
    for (let i = 0; i < kLen; i++) if (a[k + i] !== b[kAt + i]) return false;
    return true;
  }

  private addName(h: number, slot: number, mAt: number, mLen: number, kAt: number, kLen: number, len: number): number {
    if (this.arenaUsed + len > this.arena.length) {
      const next = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + len));
      next.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = next;
    }
    const at = this.arenaUsed;
    const a = this.arena;
    a.set(this.b.subarray(mAt, mAt + mLen), at);
    if (kAt >= 0) {
      a[at + mLen] = DOT;
      a.set(this.b.subarray(kAt, kAt + kLen), at + mLen + 1);
    }
    this.arenaUsed += len;
    if (this.entries === this.entAt.length) this.growEntries();
    const e = this.entries++;
    this.entAt[e] = at;
    this.entLen[e] = len;
    this.entHash[e] = h;
    if (this.entries * 2 > this.slotGen.length) this.growSlots();
    else {
      this.slotGen[slot] = this.gen;
      this.slotEntry[slot] = e;
    }
    return at;
  }

  private growEntries(): void {
    const n = this.entAt.length * 2;
    const at = new Int32Array(n); at.set(this.entAt); this.entAt = at;
    const len = new Int32Array(n); len.set(this.entLen); this.entLen = len;
    const h = new Float64Array(n); h.set(this.entHash); this.entHash = h;
  }

  /** Doubles the table and places every entry of this frame again (the new entry included). */
  private growSlots(): void {
    const n = this.slotGen.length * 2;
    this.slotGen = new Int32Array(n);
    this.slotEntry = new Int32Array(n);
    this.mask = n - 1;
    if (this.gen === 0) this.gen = 1;
    for (let e = 0; e < this.entries; e++) {
      let s = this.entHash[e] & this.mask;
      while (this.slotGen[s] === this.gen) s = (s + 1) & this.mask;
      this.slotGen[s] = this.gen;
      this.slotEntry[s] = e;
    }
  }

  /**
   * A field's unquoted value at p: a float, `<int>i`, `<uint>u` or a boolean, into num, ending at
   * a delimiter (`,` space, the line's end). The position after it, or -1: take the point slow.
   */
  private readValue(p: number): number {
    const b = this.b;
    const end = this.end;
    const at = p;
    let c = b[p];
    if (c === 116 || c === 84 || c === 102 || c === 70) return this.readBoolean(p);
    let neg = false;
    if (c === MINUS) {
      neg = true;
      p++;
    }
    let mant = 0;
    let digits = 0;
    let intDigits = 0;
    while (p < end && (c = b[p]) >= 48 && c <= 57) {
      // leading zeros are not significant digits
      if (digits > 0 || c !== 48) digits++;
      mant = mant * 10 + (c - 48);
      intDigits++;
      p++;
    }
    let scale = 0;
    let isFloat = false;
    if (p < end && c === DOT) {
      isFloat = true;
      p++;
      while (p < end && (c = b[p]) >= 48 && c <= 57) {
        if (digits > 0 || c !== 48) digits++;
        mant = mant * 10 + (c - 48);
        scale--;
        p++;
      }
      if (intDigits === 0 && scale === 0) return -1;
    } else if (intDigits === 0) return -1;
    if (p < end && (c === 101 || c === 69)) {
      isFloat = true;
      p++;
      let eneg = false;
      if (p < end && (b[p] === 43 || b[p] === MINUS)) {
        eneg = b[p] === MINUS;
        p++;
      }
      const first = p;
      let e = 0;
      while (p < end && (c = b[p]) >= 48 && c <= 57 && e < 1000) {
        e = e * 10 + (c - 48);
        p++;
      }
      if (p === first) return -1;
      scale += eneg ? -e : e;
    }
    let isInt = false;
    if (p < end) {
      c = b[p];
      if (c === 105 || c === 117) { // i, u
        if (isFloat || (c === 117 && neg)) return -1;
        isInt = true;
        p++;
      }
    }
    if (p < end && (c = b[p]) !== COMMA && c !== SPACE && c !== NL && c !== CR) return -1;
    if (digits > DIGITS_MAX) {
      // a float of 16-17 digits (how Go and Telegraf print most computed values): Number() of its
      // text, checked above as the grammar, rounds as the generic decoder's Number() does; an
      // integer that long keeps the generic path's range check
      if (isInt) return -1;
      const w = Number(asciiString(b, at, p - at));
      if (w - w !== 0) return -1;
      this.num = w;
      return p;
    }
    let v: number;
    if (scale === 0) v = mant;
    else if (scale > 0 && scale <= 22) v = mant * POW10[scale];
    else if (scale < 0 && scale >= -22) v = mant / POW10[-scale];
    else if (mant === 0) v = 0;
    else return -1;
    if (v - v !== 0) return -1;
    // an integer has no -0 (Number(BigInt) of "-0" is 0); a float has
    this.num = neg && !(isInt && v === 0) ? -v : v;
    return p;
  }

  /** t T true True TRUE f F false False FALSE, ending at a delimiter; -1 otherwise. */
  private readBoolean(p: number): number {
    const b = this.b;
    const end = this.end;
    const at = p;
    while (p < end && (b[p] | 0x20) >= 97 && (b[p] | 0x20) <= 122) p++;
    if (p < end && b[p] !== COMMA && b[p] !== SPACE && b[p] !== NL && b[p] !== CR) return -1;
    const len = p - at;
    const c0 = b[at];
    const upper = c0 === 84 || c0 === 70;
    if (len === 1) {
      this.num = c0 === 116 || c0 === 84 ? 1 : 0;
      return p;
    }
    const word = c0 === 116 || c0 === 84 ? 'true' : 'false';
    if (len !== word.length) return -1;
    // true, True, TRUE (false alike): the rest all lower case, or all upper case after an upper first letter
    let lower = true;
    let allUpper = upper;
    for (let i = 1; i < len; i++) {
      const c = b[at + i];
      const w = word.charCodeAt(i);
      if (c !== w) lower = false;
      if (c !== w - 32) allUpper = false;
    }
    if (!lower && !allUpper) return -1;
    this.num = word === 'true' ? 1 : 0;
    return p;
  }

  /**
   * A timestamp at p: digits (a negative one goes slow: Sluice refuses it, EventScratch words why)
   * within InfluxDB's range, into num. The position after it, or -1.
   */
  private readTimestamp(p: number): number {
    const b = this.b;
    const end = this.end;
    let c = 0;
    let mant = 0;
    let digits = 0;
    const at = p;
    while (p < end && (c = b[p]) >= 48 && c <= 57 && digits < DIGITS_MAX) {
      if (digits > 0 || c !== 48) digits++;
      mant = mant * 10 + (c - 48);
      p++;
    }
    if (p === at) return -1;
    if (p < end && b[p] >= 48 && b[p] <= 57) {
      // past 15 digits (a nanosecond timestamp has 19): the rest, at most 4 digits (more is past
      // 2^63), then mant * 10^k + rest exactly as hi * 2^32 + lo, one rounding at the end
      let rest = 0;
      let k = 0;
      while (p < end && (c = b[p]) >= 48 && c <= 57) {
        if (++k > 4) return -1;
        rest = rest * 10 + (c - 48);
        p++;
      }
      const scale = POW10[k];
      const hi0 = Math.floor(mant / TWO32);
      const lo0 = (mant - hi0 * TWO32) * scale + rest;
      const carry = Math.floor(lo0 / TWO32);
      const lo = lo0 - carry * TWO32;
      const hi = hi0 * scale + carry;
      if (hi > TIME_HI_MAX || (hi === TIME_HI_MAX && lo > TIME_LO_MAX)) return -1;
      mant = hi * TWO32 + lo;
    }
    if (p < end && (c = b[p]) !== SPACE && c !== NL && c !== CR) return -1;
    this.num = mant;
    return p;
  }
}

function sameRange(b: Uint8Array, x: number, y: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (b[x + i] !== b[y + i]) return false;
  return true;
}
