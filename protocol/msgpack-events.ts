/**
 * A hand-written msgpack scanner for the common ingest frames: an array of events, or an envelope
 * {seq?, deviceId?, events: [...]} (a map or a msgpackr record) whose `events` is its last key,
 * each event a map (or a msgpackr
 * record) {deviceId?, timestamp: number, metrics: {name: number}} or the flat {deviceId?,
 * timestamp, name: number, ...}. It reads the frame's bytes once, straight into a PackedEvent per
 * event (packed-event.ts): no object, string or array per event.
 *
 * Contract. Front-end thread, one frame at a time: frame() reads the top level (null: not a frame
 * this scanner takes, decode it with codecs.ts's decodeMsgpack), then next() once per event, then
 * atEnd. Verdicts as packed-event.ts says; SCAN_SLOW only for plain maps (an event decodes on its
 * own with slowEvent()), a frame that uses msgpackr records answers SCAN_FRAME for an event it
 * cannot take (a record's keys live earlier in the frame). Never throws on any input: every read
 * is bounds-checked, a byte the scanner does not know is SCAN_FRAME. Values agree with msgpackr's
 * Unpackr({mapsAsObjects: true, int64AsType: 'number'}), the codec of codecs.ts: 64-bit integers
 * are read as hi * 2^32 + lo as it does, float32 as is.
 *
 * msgpackr records (what `new Packr({useRecords: true})` writes): a definition `d4 72 id` + an
 * array of keys, then the values; later `0x40 | id` + the values. A frame may define up to 64
 * (ids 0x40-0x7f); the two-byte form (d5 72) is left to msgpackr (SCAN_FRAME).
 */

import { Unpackr } from 'msgpackr';
import {
  type EventScanner, type PackedFrame, PackedEvent, SCAN_OK, SCAN_SLOW, SCAN_FRAME, SCAN_END, KEY_DEVICE, KEY_TIMESTAMP, KEY_METRICS, KEY_OTHER,
  DEVICE_NAME, keyKind, nameHash, asciiString, metricKeyHash,
} from './packed-event';

/** keys a record (structure) may have here; more: the frame goes to msgpackr */
const STRUCT_KEYS_MAX = 32;
const STRUCTS = 64;
/** nesting the generic skip follows (msgpackr follows more: a deeper frame goes to msgpackr) */
const SKIP_DEPTH_MAX = 32;

const EMPTY = new Uint8Array(0);
// the same options as codecs.ts's decoder: an event decoded alone reads as it does inside its frame
const slowUnpackr = new Unpackr({ mapsAsObjects: true, int64AsType: 'number' });

export class MsgpackEventReader implements EventScanner {
  private b: Uint8Array = EMPTY;
  private v: DataView = new DataView(EMPTY.buffer);
  private end = 0;
  pos = 0;
  eventStart = 0;
  /** events of the array not read yet */
  private remaining = 0;
  /** the number the last readNumber() read */
  private num = 0;
  /** a string's range from readStr() */
  private strAt = 0;
  private strLen = 0;
  /** records defined in this frame: key count (-1 undefined), keys' ranges and kinds */
  private readonly structKeys = new Int32Array(STRUCTS).fill(-1);
  private readonly keyAt = new Int32Array(STRUCTS * STRUCT_KEYS_MAX);
  private readonly keyLen = new Int32Array(STRUCTS * STRUCT_KEYS_MAX);
  private readonly keyKinds = new Uint8Array(STRUCTS * STRUCT_KEYS_MAX);
  /** a record key's metric-name hash, taken once at the definition (-1: not a valid name) */
  private readonly keyHashes = new Float64Array(STRUCTS * STRUCT_KEYS_MAX);
  private recordsSeen = false;
  /** map opened by openMap(): pairs, and the record id (-1: a plain map, keys inline) */
  private mapRecord = -1;

  /** Reads the frame's top level; null when it is not an array of events or an envelope whose events come last. */
  frame(bytes: Uint8Array): PackedFrame | null {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.byteLength;
    this.pos = 0;
    if (this.recordsSeen) {
      this.structKeys.fill(-1);
      this.recordsSeen = false;
    }
    if (this.end === 0) return null;
    const n = this.arrayHeader();
    if (n >= 0) {
      this.remaining = n;
      return { seq: undefined, deviceId: undefined, count: n };
    }
    // an envelope: a map, or a record (what a msgpackr client with useRecords sends)
    const pairs = this.openMap();
    if (pairs < 0) return null;
    const rec = this.mapRecord;
    let seq: number | undefined;
    let deviceId: string | undefined;
    for (let k = 0; k < pairs; k++) {
      let at: number;
      let len: number;
      if (rec >= 0) {
        at = this.keyAt[rec * STRUCT_KEYS_MAX + k];
        len = this.keyLen[rec * STRUCT_KEYS_MAX + k];
      } else {
        if (!this.readStr()) return null;
        at = this.strAt;
        len = this.strLen;
      }
      if (keyKind(this.b, at, len) === KEY_DEVICE) {
        if (deviceId !== undefined || !this.readStr()) return null;
        // a deviceId the scanner would have to word an error for goes to the generic path
        if (nameHash(this.b, this.strAt, this.strLen, DEVICE_NAME) < 0) return null;
        deviceId = asciiString(this.b, this.strAt, this.strLen);
      } else if (len === 3 && this.b[at] === 115 && this.b[at + 1] === 101 && this.b[at + 2] === 113) { // seq
        if (seq !== undefined || !this.readNumber()) return null;
        const s = this.num;
        if (!Number.isSafeInteger(s) || s < 0) return null;
        seq = s;
      } else if (len === 6 && this.b[at] === 101 && this.b[at + 1] === 118 && this.b[at + 5] === 115 &&
        this.b[at + 2] === 101 && this.b[at + 3] === 110 && this.b[at + 4] === 116) { // events
        if (k !== pairs - 1) return null;
        const count = this.arrayHeader();
        if (count < 0) return null;
        this.remaining = count;
        return { seq, deviceId, count };
      } else return null;
    }
    return null;
  }

  /** True when the frame was read to its last byte (msgpackr refuses trailing bytes). */
  /** metric names are ranges of the frame */
  get nameBytes(): Uint8Array {
    return this.b;
  }

  get atEnd(): boolean {
    return this.pos === this.end;
  }

  /** The generic decode of the event [eventStart, pos) after SCAN_SLOW; throws on bytes msgpackr refuses. */
  slowEvent(): unknown {
    return slowUnpackr.unpack(this.b.subarray(this.eventStart, this.pos));
  }

  /** Reads one event into ev: SCAN_OK, SCAN_SLOW or SCAN_FRAME; SCAN_END after the last. */
  next(ev: PackedEvent): number {
    if (this.remaining === 0) return SCAN_END;
    this.remaining--;
    this.eventStart = this.pos;
    const r = this.readEvent(ev);
    if (r !== SCAN_SLOW) return r;
    if (this.recordsSeen) return SCAN_FRAME;
    this.pos = this.eventStart;
    return this.skip(0) ? SCAN_SLOW : SCAN_FRAME;
  }

  private readEvent(ev: PackedEvent): number {
    ev.reset();
    const pairs = this.openMap();
    if (pairs < 0) return pairs === -1 ? SCAN_SLOW : SCAN_FRAME;
    const rec = this.mapRecord;
    const b = this.b;
    for (let k = 0; k < pairs; k++) {
      let kind: number;
      let at: number;
      let len: number;
      let h = -2; // -2: not taken yet (a map's key)
      if (rec >= 0) {
        const i = rec * STRUCT_KEYS_MAX + k;
        kind = this.keyKinds[i];
        at = this.keyAt[i];
        len = this.keyLen[i];
        h = this.keyHashes[i];
      } else {
        if (!this.readStr()) return SCAN_SLOW;
        at = this.strAt;
        len = this.strLen;
        kind = keyKind(b, at, len);
      }
      switch (kind) {
        case KEY_DEVICE: {
          if (!this.readStr()) return SCAN_SLOW;
          const h = nameHash(b, this.strAt, this.strLen, DEVICE_NAME);
          if (h < 0 || !ev.setDevice(this.strAt, this.strLen, h)) return SCAN_SLOW;
          break;
        }
        case KEY_TIMESTAMP:
          if (!this.readNumber() || !ev.setTimestamp(this.num)) return SCAN_SLOW;
          break;
        case KEY_METRICS: {
          if (ev.nested || ev.flat) return SCAN_SLOW;
          ev.nested = true;
          const r = this.readMetrics(ev);
          if (r !== SCAN_OK) return r;
          break;
        }
        case KEY_OTHER:
          // a flat metric; after a metrics object it is an unexpected field (the generic path words it)
          if (ev.nested || !this.readNumber()) return SCAN_SLOW;
          if (h === -2 ? !ev.addMetric(b, at, len, this.num) : !ev.addHashed(b, at, len, h, this.num)) return SCAN_SLOW;
          ev.flat = true;
          break;
        default: // tags: validated by the generic path
          return SCAN_SLOW;
      }
    }
    return ev.hasTimestamp && ev.metricCount > 0 ? SCAN_OK : SCAN_SLOW;
  }

  private readMetrics(ev: PackedEvent): number {
    const pairs = this.openMap();
    if (pairs < 0) return pairs === -1 ? SCAN_SLOW : SCAN_FRAME;
    const rec = this.mapRecord;
    for (let k = 0; k < pairs; k++) {
      if (rec >= 0) {
        const i = rec * STRUCT_KEYS_MAX + k;
        if (!this.readNumber() || !ev.addHashed(this.b, this.keyAt[i], this.keyLen[i], this.keyHashes[i], this.num)) return SCAN_SLOW;
      } else {
        if (!this.readStr()) return SCAN_SLOW;
        const at = this.strAt;
        const len = this.strLen;
        if (!this.readNumber() || !ev.addMetric(this.b, at, len, this.num)) return SCAN_SLOW;
      }
    }
    return SCAN_OK;
  }

  /**
   * Opens a map or a record at pos: its pairs, mapRecord = the record id or -1; -1 when the value
   * is something else (pos unchanged), -2 when the frame goes to msgpackr.
   */
  private openMap(): number {
    const p = this.pos;
    if (p >= this.end) return -2;
    const t = this.b[p];
    this.mapRecord = -1;
    if (t >= 0x80 && t <= 0x8f) {
      this.pos = p + 1;
      return t - 0x80;
    }
    if (t === 0xde) {
      if (p + 3 > this.end) return -2;
      this.pos = p + 3;
      return this.v.getUint16(p + 1);
    }
    if (t === 0xdf) {
      if (p + 5 > this.end) return -2;
      const n = this.v.getUint32(p + 1);
      if (n > this.end) return -2;
      this.pos = p + 5;
      return n;
    }
    if (t >= 0x40 && t <= 0x7f) {
      const id = t & 0x3f;
      const n = this.structKeys[id];
      if (n < 0) return -1; // a plain positive fixint
      this.pos = p + 1;
      this.mapRecord = id;
      return n;
    }
    if (t === 0xd4 && p + 3 <= this.end && this.b[p + 1] === 0x72) return this.defineRecord(this.b[p + 2] & 0x3f, p + 3);
    if (t === 0xd4 || t === 0xd5) return -2; // other extensions, two-byte record ids: msgpackr
    return -1;
  }

  /** A record definition: its keys (strings) then, as with a map, the first object's values. */
  private defineRecord(id: number, keysAt: number): number {
    this.pos = keysAt;
    const n = this.arrayHeader();
    if (n < 0 || n > STRUCT_KEYS_MAX) return -2;
    const base = id * STRUCT_KEYS_MAX;
    for (let k = 0; k < n; k++) {
      if (!this.readStr()) return -2;
      // a key msgpackr would rename (__proto__) or that is not ASCII: the frame goes to msgpackr
      for (let i = 0; i < this.strLen; i++) if (this.b[this.strAt + i] >= 0x80) return -2;
      if (this.strLen === 9 && this.b[this.strAt] === 95 && this.b[this.strAt + 1] === 95) return -2;
      this.keyAt[base + k] = this.strAt;
      this.keyLen[base + k] = this.strLen;
      this.keyKinds[base + k] = keyKind(this.b, this.strAt, this.strLen);
      this.keyHashes[base + k] = metricKeyHash(this.b, this.strAt, this.strLen);
    }
    this.structKeys[id] = n;
    this.recordsSeen = true;
    this.mapRecord = id;
    return n;
  }

  /** An array header at pos: its length (pos after it), or -1 (pos unchanged). */
  private arrayHeader(): number {
    const p = this.pos;
    if (p >= this.end) return -1;
    const t = this.b[p];
    if (t >= 0x90 && t <= 0x9f) {
      this.pos = p + 1;
      return t - 0x90;
    }
    if (t === 0xdc && p + 3 <= this.end) {
      this.pos = p + 3;
      return this.v.getUint16(p + 1);
    }
    if (t === 0xdd && p + 5 <= this.end) {
      const n = this.v.getUint32(p + 1);
      if (n > this.end) return -1;
      this.pos = p + 5;
      return n;
    }
    return -1;
  }

  /** A str at pos: true with strAt/strLen set and pos after it; false (pos unchanged) otherwise. */
  private readStr(): boolean {
    const p = this.pos;
    if (p >= this.end) return false;
    const t = this.b[p];
    let at: number;
    let len: number;
    if (t >= 0xa0 && t <= 0xbf) {
      at = p + 1;
      len = t - 0xa0;
    } else if (t === 0xd9 && p + 2 <= this.end) {
      at = p + 2;
      len = this.b[p + 1];
    } else if (t === 0xda && p + 3 <= this.end) {
      at = p + 3;
      len = this.v.getUint16(p + 1);
    } else if (t === 0xdb && p + 5 <= this.end) {
      at = p + 5;
      len = this.v.getUint32(p + 1);
    } else return false;
    if (at + len > this.end) return false;
    this.strAt = at;
    this.strLen = len;
    this.pos = at + len;
    return true;
  }

  /** A number at pos (any int or float type): true with num set and pos after it; false (pos unchanged) otherwise. */
  private readNumber(): boolean {
    const p = this.pos;
    if (p >= this.end) return false;
    const t = this.b[p];
    if (t < 0x80) {
      // 0x40-0x7f is a record reference once that record is defined
      if (t >= 0x40 && this.structKeys[t & 0x3f] >= 0) return false;
      this.num = t;
      this.pos = p + 1;
      return true;
    }
    if (t >= 0xe0) {
      this.num = t - 0x100;
      this.pos = p + 1;
      return true;
    }
    const v = this.v;
    let size: number;
    switch (t) {
      case 0xcb: size = 8; if (p + 9 > this.end) return false; this.num = v.getFloat64(p + 1); break;
      case 0xca: size = 4; if (p + 5 > this.end) return false; this.num = v.getFloat32(p + 1); break;
      case 0xcc: size = 1; if (p + 2 > this.end) return false; this.num = this.b[p + 1]; break;
      case 0xcd: size = 2; if (p + 3 > this.end) return false; this.num = v.getUint16(p + 1); break;
      case 0xce: size = 4; if (p + 5 > this.end) return false; this.num = v.getUint32(p + 1); break;
      case 0xcf: size = 8; if (p + 9 > this.end) return false; this.num = v.getUint32(p + 1) * 0x100000000 + v.getUint32(p + 5); break;
      case 0xd0: size = 1; if (p + 2 > this.end) return false; this.num = v.getInt8(p + 1); break;
      case 0xd1: size = 2; if (p + 3 > this.end) return false; this.num = v.getInt16(p + 1); break;
      case 0xd2: size = 4; if (p + 5 > this.end) return false; this.num = v.getInt32(p + 1); break;
      case 0xd3: size = 8; if (p + 9 > this.end) return false; this.num = v.getInt32(p + 1) * 0x100000000 + v.getUint32(p + 5); break;
      default: return false;
    }
    this.pos = p + 1 + size;
    return true;
  }

  /** Skips one value of a frame without records (its extent for slowEvent); false when malformed or unusual. */
  private skip(depth: number): boolean {
    if (depth > SKIP_DEPTH_MAX) return false;
    const p = this.pos;
    if (p >= this.end) return false;
    const t = this.b[p];
    const v = this.v;
    let n = 0;
    let items = 0;
    if (t < 0x80 || t >= 0xe0 || (t >= 0xc0 && t <= 0xc3)) { this.pos = p + 1; return true; }
    if (t <= 0x8f) { items = 2 * (t - 0x80); this.pos = p + 1; } else if (t <= 0x9f) { items = t - 0x90; this.pos = p + 1; } else if (t <= 0xbf) n = 1 + t - 0xa0;
    else {
      switch (t) {
        case 0xc4: case 0xd9: if (p + 2 > this.end) return false; n = 2 + this.b[p + 1]; break;
        case 0xc5: case 0xda: if (p + 3 > this.end) return false; n = 3 + v.getUint16(p + 1); break;
        case 0xc6: case 0xdb: if (p + 5 > this.end) return false; n = 5 + v.getUint32(p + 1); break;
        case 0xca: case 0xce: case 0xd2: n = 5; break;
        case 0xcb: case 0xcf: case 0xd3: n = 9; break;
        case 0xcc: case 0xd0: n = 2; break;
        case 0xcd: case 0xd1: n = 3; break;
        // extensions (records, bundled strings, dates...): decoded by msgpackr on the frame as a whole
        case 0xdc: if (p + 3 > this.end) return false; items = v.getUint16(p + 1); this.pos = p + 3; break;
        case 0xdd: if (p + 5 > this.end) return false; items = v.getUint32(p + 1); this.pos = p + 5; break;
        case 0xde: if (p + 3 > this.end) return false; items = 2 * v.getUint16(p + 1); this.pos = p + 3; break;
        case 0xdf: if (p + 5 > this.end) return false; items = 2 * v.getUint32(p + 1); this.pos = p + 5; break;
        default: return false;
      }
    }
    if (n > 0) {
      if (p + n > this.end) return false;
      this.pos = p + n;
      return true;
    }
    if (items > this.end - this.pos) return false;
    for (let i = 0; i < items; i++) if (!this.skip(depth + 1)) return false;
    return true;
  }
}
