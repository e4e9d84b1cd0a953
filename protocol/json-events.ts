/**
 * A hand-written JSON scanner for the common ingest bodies: an array of events, an envelope
 * {"seq"?, "deviceId"?, "events": [...]} whose "events" is its last key (checked at its end: an
 * envelope with keys after it is given up and decoded whole), or one event object; each event
 * {"deviceId"?, "timestamp": number, "metrics": {"name": number}} or the flat {"deviceId"?,
 * "timestamp", "name": number, ...}. It reads the UTF-8 bytes once into a PackedEvent per event
 * (packed-event.ts), with no string or object per event; anything unusual goes to JSON.parse.
 *
 * Contract. Front-end thread, one body at a time, as msgpack-events.ts: frame(), next() until
 * SCAN_END, atEnd. An event with an escape in a string, a literal, an array, a string timestamp,
 * tags... answers SCAN_SLOW: slowEvent() is JSON.parse of its bytes (decoded as decodeJson decodes
 * the body, so the value is the one the whole body would give). Bytes that are not JSON answer
 * SCAN_FRAME (or make slowEvent throw): the body is then parsed whole by codecs.ts, which words the
 * error. Never throws outside slowEvent.
 *
 * Numbers are read as JSON.parse reads them: an integer mantissa of at most 15 digits scaled by at
 * most 10^22 is one IEEE multiplication or division of two exact values, which is correctly
 * rounded (Clinger's fast path); any other number (16-17 digits, as JSON.stringify prints most
 * computed doubles, or a large exponent) is Number() of its text, after the scanner checked it
 * follows JSON's grammar (a string for that number only, not a JSON.parse of the event).
 */

import {
  type EventScanner, type PackedFrame, PackedEvent, SCAN_OK, SCAN_SLOW, SCAN_FRAME, SCAN_END,
  KEY_DEVICE, KEY_TIMESTAMP, KEY_METRICS, KEY_OTHER, DEVICE_NAME, METRIC_NAME, NAME_BYTES, DEVICE_BYTES_MAX,
  METRIC_BYTES_MAX, keyKind, nameHash, asciiString, isOddKey, metricKeyHash,
} from './packed-event';

const EMPTY = new Uint8Array(0);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
/** exact powers of ten (10^22 is the largest double that is one) */
const POW10 = new Float64Array(23);
for (let i = 0, p = 1; i <= 22; i++, p *= 10) POW10[i] = p;
const DIGITS_MAX = 15;

/** 4 ASCII bytes as a little-endian u32: the known keys are compared 4 bytes at a time */
function le32(s: string): number {
  return (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) >>> 0;
}
const W_DEVI = le32('devi');
const W_CEID = le32('ceId');
const W_TIME = le32('time');
const W_STAM = le32('stam');
const W_METR = le32('metr');
const W_ICS_ = le32('ics"');

/** seq, events, timestamps: keys that make an object a batch for the generic decoder (codecs.ts toBatch) */
function isBatchKey(b: Uint8Array, at: number, len: number): boolean {
  if (len === 3) return b[at] === 115 && b[at + 1] === 101 && b[at + 2] === 113;
  if (len === 6) return b[at] === 101 && b[at + 1] === 118 && b[at + 2] === 101 && b[at + 3] === 110 && b[at + 4] === 116 && b[at + 5] === 115;
  if (len === 10) {
    const w = 'timestamps';
    for (let i = 0; i < 10; i++) if (b[at + i] !== w.charCodeAt(i)) return false;
    return true;
  }
  return false;
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export class JsonEventReader implements EventScanner {
  private b: Uint8Array = EMPTY;
  private dv: DataView = new DataView(EMPTY.buffer);
  private end = 0;
  /** the metric-name hash of the key readKey() read (KEY_OTHER), -1 when it is not a valid name */
  private keyHash = -1;
  pos = 0;
  eventStart = 0;
  /** 0: before the first event, 1: after an event, 2: the array ended */
  private state = 0;
  /** the events array sits in an envelope (a `}` closes the body after it) */
  private enveloped = false;
  /** the body is one event object (not an array, not an envelope) */
  private single = false;
  private ended = false;
  private num = 0;
  private strAt = 0;
  private strLen = 0;

  frame(bytes: Uint8Array): PackedFrame | null {
    this.b = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.byteLength;
    this.pos = 0;
    this.state = 0;
    this.ended = false;
    this.ws();
    if (this.pos >= this.end) return null;
    const t = this.b[this.pos];
    this.single = false;
    if (t === LBRACKET) {
      this.pos++;
      this.enveloped = false;
      return { seq: undefined, deviceId: undefined, count: -1 };
    }
    if (t !== LBRACE) return null;
    const objectAt = this.pos;
    this.pos++;
    this.enveloped = true;
    let seq: number | undefined;
    let deviceAt = -1;
    let deviceLen = 0;
    const b = this.b;
    for (let k = 0; ; k++) {
      this.ws();
      if (k > 0) {
        if (b[this.pos] !== COMMA) return null;
        this.pos++;
        this.ws();
      }
      if (!this.readStr() || !this.colon()) return null;
      const at = this.strAt;
      const len = this.strLen;
      const kind = keyKind(b, at, len);
      if (kind === KEY_DEVICE) {
        if (deviceAt >= 0 || !this.readStr()) return null;
        // a deviceId the scanner would have to word an error for goes to the generic path
        if (nameHash(b, this.strAt, this.strLen, DEVICE_NAME) < 0) return null;
        deviceAt = this.strAt;
        deviceLen = this.strLen;
      } else if (seq === undefined && !isBatchKey(b, at, len)) {
        // timestamp, metrics, a metric...: the body is one event (HTTP's one-event POST); read from its `{`
        this.pos = objectAt;
        this.enveloped = false;
        this.single = true;
        return { seq: undefined, deviceId: undefined, count: 1 };
      } else if (len === 3 && b[at] === 115 && b[at + 1] === 101 && b[at + 2] === 113) { // seq
        if (seq !== undefined || !this.readNumber()) return null;
        const s = this.num;
        if (!Number.isSafeInteger(s) || s < 0) return null;
        seq = s;
      } else if (len === 6 && b[at] === 101 && b[at + 1] === 118 && b[at + 5] === 115 &&
        b[at + 2] === 101 && b[at + 3] === 110 && b[at + 4] === 116) { // events: the last key
        if (b[this.pos] !== LBRACKET) return null;
        this.pos++;
        return { seq, deviceId: deviceAt < 0 ? undefined : asciiString(b, deviceAt, deviceLen), count: -1 };
      } else return null;
    }
  }

  /** metric names are ranges of the frame */
  get nameBytes(): Uint8Array {
    return this.b;
  }

  get atEnd(): boolean {
    return this.ended;
  }

  slowEvent(): unknown {
    const b = this.b;
    return JSON.parse(Buffer.from(b.buffer, b.byteOffset + this.eventStart, this.pos - this.eventStart).toString('utf8'));
  }

  next(ev: PackedEvent): number {
    if (this.state === 2) return SCAN_END;
    if (this.single) return this.nextSingle(ev);
    this.ws();
    if (this.pos >= this.end) return SCAN_FRAME;
    const c = this.b[this.pos];
    if (c === RBRACKET) {
      this.pos++;
      this.state = 2;
      this.closeBody();
      return SCAN_END;
    }
    if (this.state === 1) {
      if (c !== COMMA) return SCAN_FRAME;
      this.pos++;
      this.ws();
    }
    this.state = 1;
    this.eventStart = this.pos;
    const r = this.readEvent(ev);
    if (r !== SCAN_SLOW) return r;
    this.pos = this.eventStart;
    return this.skip() ? SCAN_SLOW : SCAN_FRAME;
  }

  /**
   * The one event of a single-event body. Anything unusual in it is SCAN_FRAME, not SCAN_SLOW: the
   * generic decoder reads such a body as a batch first (a `seq`, `events` or `timestamps` key
   * changes what it is), so only the whole body decodes it as the generic path would.
   */
  private nextSingle(ev: PackedEvent): number {
    this.state = 2;
    this.eventStart = this.pos;
    const r = this.readEvent(ev);
    if (r !== SCAN_OK) return SCAN_FRAME;
    this.closeBody();
    return SCAN_OK;
  }

  /** After the events array: the envelope's `}` and nothing but whitespace. */
  private closeBody(): void {
    this.ws();
    if (this.enveloped) {
      if (this.pos >= this.end || this.b[this.pos] !== RBRACE) return;
      this.pos++;
      this.ws();
    }
    this.ended = this.pos === this.end;
  }

  private readEvent(ev: PackedEvent): number {
    ev.reset();
    const b = this.b;
    if (b[this.pos] !== LBRACE) return SCAN_SLOW;
    this.pos++;
    this.ws();
    if (b[this.pos] === RBRACE) return SCAN_SLOW; // {}: the generic path words it
    for (;;) {
      const kind = this.readKey();
      if (kind < 0 || !this.colon()) return SCAN_SLOW;
      switch (kind) {
        case KEY_DEVICE: {
          const h = this.readName(DEVICE_NAME);
          if (h < 0 || !ev.setDevice(this.strAt, this.strLen, h)) return SCAN_SLOW;
          break;
        }
        case KEY_TIMESTAMP:
          if (!this.readNumber() || !ev.setTimestamp(this.num)) return SCAN_SLOW;
          break;
        case KEY_METRICS:
          if (ev.nested || ev.flat || !this.readMetrics(ev)) return SCAN_SLOW;
          ev.nested = true;
          break;
        case KEY_OTHER: {
          const at = this.strAt;
          const len = this.strLen;
          const h = this.keyHash;
          if (this.single && isBatchKey(b, at, len)) return SCAN_FRAME;
          if (ev.nested || !this.readNumber() || !ev.addHashed(b, at, len, h, this.num)) return SCAN_SLOW;
          ev.flat = true;
          break;
        }
        default:
          return SCAN_SLOW;
      }
      this.ws();
      const c = b[this.pos];
      if (c === RBRACE) {
        this.pos++;
        break;
      }
      if (c !== COMMA) return SCAN_SLOW;
      this.pos++;
      this.ws();
    }
    return ev.hasTimestamp && ev.metricCount > 0 ? SCAN_OK : SCAN_SLOW;
  }

  /**
   * An event's key at pos: its kind (strAt/strLen set, pos after the closing quote; for KEY_OTHER
   * keyHash = its metric-name hash or -1), or -1 when it is not a plain string. The three known
   * keys are matched 4 bytes at a time.
   */
  private readKey(): number {
    const b = this.b;
    const p = this.pos;
    if (p + 11 <= this.end && b[p] === QUOTE) {
      const dv = this.dv;
      const w0 = dv.getUint32(p + 1, true);
      const w1 = dv.getUint32(p + 5, true);
      if (w0 === W_DEVI && w1 === W_CEID && b[p + 9] === QUOTE) {
        this.strAt = p + 1;
        this.strLen = 8;
        this.pos = p + 10;
        return KEY_DEVICE;
      }
      if (w0 === W_TIME && w1 === W_STAM && b[p + 9] === 112 && b[p + 10] === QUOTE) {
        this.strAt = p + 1;
        this.strLen = 9;
        this.pos = p + 11;
        return KEY_TIMESTAMP;
      }
      if (w0 === W_METR && w1 === W_ICS_) {
        this.strAt = p + 1;
        this.strLen = 7;
        this.pos = p + 9;
        return KEY_METRICS;
      }
    }
    if (!this.readStr()) return -1;
    const kind = keyKind(b, this.strAt, this.strLen);
    if (kind === KEY_OTHER) this.keyHash = metricKeyHash(b, this.strAt, this.strLen);
    return kind;
  }

  private readMetrics(ev: PackedEvent): boolean {
    const b = this.b;
    if (b[this.pos] !== LBRACE) return false;
    this.pos++;
    this.ws();
    if (b[this.pos] === RBRACE) return false;
    for (;;) {
      const h = this.readName(METRIC_NAME);
      if (h < 0) return false;
      const at = this.strAt;
      const len = this.strLen;
      if (isOddKey(b, at, len) || !this.colon() || !this.readNumber() || !ev.addHashed(b, at, len, h, this.num)) return false;
      this.ws();
      const c = b[this.pos];
      if (c === RBRACE) {
        this.pos++;
        return true;
      }
      if (c !== COMMA) return false;
      this.pos++;
      this.ws();
    }
  }

  /**
   * A string at pos made only of name bytes of `kind` (no escape, 1 to the kind's maximum): its
   * nameHash (one pass: validation and hash), strAt/strLen set and pos after the closing quote;
   * -1 otherwise (pos unchanged).
   */
  private readName(kind: number): number {
    const b = this.b;
    const end = this.end;
    let p = this.pos;
    if (p >= end || b[p] !== QUOTE) return -1;
    const at = ++p;
    let h = 0x811c9dc5;
    for (;;) {
      if (p >= end) return -1;
      const c = b[p];
      if (c === QUOTE) break;
      if ((NAME_BYTES[c] & kind) === 0) return -1;
      h = Math.imul(h ^ c, 0x01000193);
      p++;
    }
    const len = p - at;
    if (len === 0 || len > (kind === DEVICE_NAME ? DEVICE_BYTES_MAX : METRIC_BYTES_MAX)) return -1;
    this.strAt = at;
    this.strLen = len;
    this.pos = p + 1;
    return h >>> 0;
  }

  private ws(): void {
    const b = this.b;
    let p = this.pos;
    while (p < this.end && isWs(b[p])) p++;
    this.pos = p;
  }

  /** `:` between whitespace, and the whitespace after it. */
  private colon(): boolean {
    this.ws();
    if (this.pos >= this.end || this.b[this.pos] !== COLON) return false;
    this.pos++;
    this.ws();
    return true;
  }

  /** A string of plain ASCII without escapes: strAt/strLen set, pos after the closing quote. */
  private readStr(): boolean {
    const b = this.b;
    let p = this.pos;
    if (p >= this.end || b[p] !== QUOTE) return false;
    const at = ++p;
    for (;;) {
      if (p >= this.end) return false;
      const c = b[p];
      if (c === QUOTE) break;
      // escapes, control characters, non-ASCII: JSON.parse reads those
      if (c === BACKSLASH || c < 0x20 || c >= 0x80) return false;
      p++;
    }
    this.strAt = at;
    this.strLen = p - at;
    this.pos = p + 1;
    return true;
  }

  /** A JSON number whose value this fast path computes exactly (see the header); false otherwise. */
  private readNumber(): boolean {
    const b = this.b;
    const end = this.end;
    let p = this.pos;
    let neg = false;
    if (p < end && b[p] === 45) { neg = true; p++; }
    if (p >= end) return false;
    let c = b[p];
    if (c < 48 || c > 57) return false;
    let mant = 0;
    let digits = 0;
    if (c === 48) {
      p++;
      if (p < end && b[p] >= 48 && b[p] <= 57) return false; // a leading zero: not JSON
    } else {
      while (p < end && (c = b[p]) >= 48 && c <= 57) {
        mant = mant * 10 + (c - 48);
        digits++;
        p++;
      }
    }
    let scale = 0;
    if (p < end && b[p] === 46) {
      p++;
      const first = p;
      while (p < end && (c = b[p]) >= 48 && c <= 57) {
        // zeros before the first significant digit do not count against the digits
        if (digits > 0 || c !== 48) digits++;
        mant = mant * 10 + (c - 48);
        scale--;
        p++;
      }
      if (p === first) return false;
    }
    if (p < end && (b[p] === 101 || b[p] === 69)) {
      p++;
      let eneg = false;
      if (p < end && (b[p] === 43 || b[p] === 45)) { eneg = b[p] === 45; p++; }
      const first = p;
      let e = 0;
      while (p < end && (c = b[p]) >= 48 && c <= 57 && e < 1000) {
        e = e * 10 + (c - 48);
        p++;
      }
      if (p === first || (p < end && b[p] >= 48 && b[p] <= 57)) return false;
      scale += eneg ? -e : e;
    }
    let v: number;
    if (digits > DIGITS_MAX) {
      // 16-17 significant digits (what JSON.stringify prints for most computed doubles) or more:
      // Number() of the text, already checked as JSON grammar, rounds as JSON.parse does
      this.num = Number(asciiString(b, this.pos, p - this.pos));
      this.pos = p;
      return true;
    }
    if (scale === 0) v = mant;
    else if (scale > 0 && scale <= 22) v = mant * POW10[scale];
    else if (scale < 0 && scale >= -22) v = mant / POW10[-scale];
    else if (mant === 0) v = 0;
    else v = Number(asciiString(b, neg ? this.pos + 1 : this.pos, neg ? p - this.pos - 1 : p - this.pos));
    this.num = neg ? -v : v;
    this.pos = p;
    return true;
  }

  /** Skips one value (its extent for slowEvent): strings with escapes, nested brackets, scalars. */
  private skip(): boolean {
    const b = this.b;
    const end = this.end;
    let p = this.pos;
    if (p >= end) return false;
    const first = b[p];
    if (first === QUOTE) return this.skipString(p);
    if (first !== LBRACE && first !== LBRACKET) {
      // a scalar (number, literal) runs to the next delimiter; JSON.parse judges it
      while (p < end && b[p] !== COMMA && b[p] !== RBRACKET && b[p] !== RBRACE && !isWs(b[p])) p++;
      if (p === this.pos) return false;
      this.pos = p;
      return true;
    }
    let depth = 0;
    while (p < end) {
      const c = b[p];
      if (c === QUOTE) {
        if (!this.skipString(p)) return false;
        p = this.pos;
        continue;
      }
      if (c === LBRACE || c === LBRACKET) depth++;
      else if (c === RBRACE || c === RBRACKET) {
        depth--;
        if (depth === 0) {
          this.pos = p + 1;
          return true;
        }
      }
      p++;
    }
    return false;
  }

  /** Skips the string starting at p (escapes included): pos after its closing quote. */
  private skipString(p: number): boolean {
    const b = this.b;
    const end = this.end;
    p++;
    while (p < end && b[p] !== QUOTE) p += b[p] === BACKSLASH ? 2 : 1;
    if (p >= end) return false;
    this.pos = p + 1;
    return true;
  }
}
