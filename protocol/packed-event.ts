/**
 * The scratch of the byte-level event scanners (msgpack-events.ts, json-events.ts): one event read
 * straight from a frame's bytes, names kept as byte ranges of the frame with their hash, so the
 * front-end can intern them into integer ids without building a string or an object per event.
 *
 * Contract. A scanner answers each event with one of three verdicts:
 *   SCAN_OK     the event has the common shape and every field the scanner read is valid: its
 *               deviceId (a range, or absent), numeric timestamp (as sent) and metrics (ranges and
 *               finite values) are in the scratch. The caller still checks what depends on the
 *               connection: the pinned device, the timestamp's precision and range, metric count.
 *   SCAN_SLOW   the scanner does not take this event (tags, an ISO timestamp, a duplicate key, an
 *               invalid field...): its bytes are [eventStart, pos) and the caller decodes it with
 *               the generic codec and validates it with EventScratch, so every rejection keeps
 *               its old wording. Only scanners that can decode an event on its own answer this.
 *   SCAN_FRAME  the frame as a whole must take the generic path (malformed bytes, a form the
 *               scanner does not read): the caller drops what it staged and decodes the frame
 *               again with codecs.ts, which also words the error.
 * The scanners accept an event only where the generic decoder + EventScratch.validate would accept
 * it with the same values, names and metric order; the property tests pin that (test/protocol).
 * Pure; no allocation per event.
 */

export const SCAN_OK = 0;
export const SCAN_SLOW = 1;
export const SCAN_FRAME = 2;
/** no event left in the frame's array */
export const SCAN_END = 3;

/** The top of a frame a scanner takes: an array of events, or an envelope {seq?, deviceId?, events}. */
export interface PackedFrame {
  seq: number | undefined;
  deviceId: string | undefined;
  /** events in the array, -1 when the codec does not say (JSON) */
  count: number;
}

/** A byte-level scanner of one codec (msgpack-events.ts, json-events.ts): see the contract above. */
export interface EventScanner {
  /** Reads the frame's top; null when it is not a frame this scanner takes (decode it whole). */
  frame(bytes: Uint8Array): PackedFrame | null;
  /** The next event into ev: SCAN_OK, SCAN_SLOW, SCAN_FRAME or SCAN_END. */
  next(ev: PackedEvent): number;
  /** The generic decode of the event next() answered SCAN_SLOW for; throws where the codec would. */
  slowEvent(): unknown;
  /** After SCAN_END: true when the frame ends there (nothing but what the codec allows after it). */
  readonly atEnd: boolean;
  /**
   * The bytes PackedEvent.nameAt/nameLen index: the frame itself for codecs whose names are byte
   * ranges of it (msgpack, JSON), the scanner's own name arena for line protocol (whose `m.f` names
   * are not). Read it when used: an arena may be replaced by a larger one during a frame.
   */
  readonly nameBytes: Uint8Array;
}

/** bit 1: a deviceId byte ([A-Za-z0-9_.:-]); bit 2: a metric name byte ([A-Za-z0-9_.]) */
export const NAME_BYTES = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alnum = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
  if (alnum || c === 95 || c === 46) NAME_BYTES[c] = 3;
  else if (c === 58 || c === 45) NAME_BYTES[c] = 1;
}
export const DEVICE_NAME = 1;
export const METRIC_NAME = 2;
export const DEVICE_BYTES_MAX = 128;
export const METRIC_BYTES_MAX = 64;

/**
 * FNV-1a (32 bits) of bytes [at, at + len) when they form a valid name of `kind` (DEVICE_NAME or
 * METRIC_NAME: charset and length as event.ts's isValidDeviceId / isValidMetricName), else -1.
 * One pass: validation and hash share the loop.
 */
export function nameHash(bytes: Uint8Array, at: number, len: number, kind: number): number {
  if (len === 0 || len > (kind === DEVICE_NAME ? DEVICE_BYTES_MAX : METRIC_BYTES_MAX)) return -1;
  let h = 0x811c9dc5;
  const end = at + len;
  for (let i = at; i < end; i++) {
    const c = bytes[i];
    if ((NAME_BYTES[c] & kind) === 0) return -1;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h >>> 0;
}

/**
 * True when a metric name read as bytes would not keep its place or its name as an object key in
 * the generic path: a key that starts with a digit may be an array index (objects list those
 * first), and msgpackr renames `__proto__`. Such an event takes the generic path.
 */
export function isOddKey(bytes: Uint8Array, at: number, len: number): boolean {
  const c = bytes[at];
  if (c >= 48 && c <= 57) return true;
  return len === 9 && c === 95 && bytes[at + 1] === 95 && bytes[at + 2] === 112 && bytes[at + 8] === 95 &&
    bytes[at + 3] === 114 && bytes[at + 4] === 111 && bytes[at + 5] === 116 && bytes[at + 6] === 111 && bytes[at + 7] === 95;
}

/** The metric-name hash of a key (nameHash), -1 when it is not a valid name or isOddKey. */
export function metricKeyHash(b: Uint8Array, at: number, len: number): number {
  const h = nameHash(b, at, len, METRIC_NAME);
  return h < 0 || isOddKey(b, at, len) ? -1 : h;
}

/** Key kinds of an event's fields. */
export const KEY_OTHER = 0;
export const KEY_DEVICE = 1;
export const KEY_TIMESTAMP = 2;
export const KEY_METRICS = 3;
export const KEY_TAGS = 4;

/** The kind of the key in bytes [at, at + len). */
export function keyKind(b: Uint8Array, at: number, len: number): number {
  switch (len) {
    case 8: // deviceId
      return b[at] === 100 && b[at + 1] === 101 && b[at + 2] === 118 && b[at + 3] === 105 && b[at + 4] === 99 &&
        b[at + 5] === 101 && b[at + 6] === 73 && b[at + 7] === 100 ? KEY_DEVICE : KEY_OTHER;
    case 9: // timestamp
      return b[at] === 116 && b[at + 1] === 105 && b[at + 2] === 109 && b[at + 3] === 101 && b[at + 4] === 115 &&
        b[at + 5] === 116 && b[at + 6] === 97 && b[at + 7] === 109 && b[at + 8] === 112 ? KEY_TIMESTAMP : KEY_OTHER;
    case 7: // metrics
      return b[at] === 109 && b[at + 1] === 101 && b[at + 2] === 116 && b[at + 3] === 114 && b[at + 4] === 105 &&
        b[at + 5] === 99 && b[at + 6] === 115 ? KEY_METRICS : KEY_OTHER;
    case 4: // tags
      return b[at] === 116 && b[at + 1] === 97 && b[at + 2] === 103 && b[at + 3] === 115 ? KEY_TAGS : KEY_OTHER;
    default:
      return KEY_OTHER;
  }
}

/** True when bytes [at, at + len) spell the ASCII string s. */
export function bytesEqual(b: Uint8Array, at: number, len: number, s: string): boolean {
  if (len !== s.length) return false;
  for (let i = 0; i < len; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
  return true;
}

/** The ASCII (validated) bytes [at, at + len) as a string: only for names seen the first time. */
export function asciiString(b: Uint8Array, at: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[at + i]);
  return s;
}

/** One event as a scanner read it: reused across a batch. */
export class PackedEvent {
  /** deviceId's byte range in the frame, deviceAt = -1 when the event has none */
  deviceAt = -1;
  deviceLen = 0;
  deviceHash = 0;
  /** the timestamp as sent (a number; the caller applies the precision) */
  tsRaw = 0;
  hasTimestamp = false;
  metricCount = 0;
  /** per metric: name range, name hash, value */
  readonly nameAt: Int32Array;
  readonly nameLen: Int32Array;
  readonly nameHash: Float64Array;
  readonly values: Float64Array;
  /** flat shape (metrics as top-level numeric fields) seen / a metrics object seen */
  flat = false;
  nested = false;

  constructor(readonly metricsMax: number) {
    this.nameAt = new Int32Array(metricsMax);
    this.nameLen = new Int32Array(metricsMax);
    this.nameHash = new Float64Array(metricsMax);
    this.values = new Float64Array(metricsMax);
  }

  /** the deviceId read at [at, at + len) with its name hash; false when the event named one already */
  setDevice(at: number, len: number, hash: number): boolean {
    if (this.deviceAt >= 0) return false;
    this.deviceAt = at;
    this.deviceLen = len;
    this.deviceHash = hash;
    return true;
  }

  /** the timestamp read; false when the event had one already */
  setTimestamp(raw: number): boolean {
    if (this.hasTimestamp) return false;
    this.tsRaw = raw;
    this.hasTimestamp = true;
    return true;
  }

  reset(): void {
    this.deviceAt = -1;
    this.hasTimestamp = false;
    this.metricCount = 0;
    this.flat = false;
    this.nested = false;
  }

  /**
   * Adds a metric read from bytes; false when the event must take the generic path (invalid or
   * odd name, non-finite value, a duplicate name, more metrics than allowed).
   */
  addMetric(b: Uint8Array, at: number, len: number, value: number): boolean {
    const h = nameHash(b, at, len, METRIC_NAME);
    if (h < 0 || isOddKey(b, at, len)) return false;
    return this.addHashed(b, at, len, h, value);
  }

  /** addMetric for a name whose hash was taken before (a record's key): h = -1 for an invalid or odd name. */
  addHashed(b: Uint8Array, at: number, len: number, h: number, value: number): boolean {
    if (h < 0 || value - value !== 0) return false;
    const n = this.metricCount;
    if (n >= this.metricsMax) return false;
    for (let m = 0; m < n; m++) {
      if (this.nameHash[m] === h && this.nameLen[m] === len && sameBytes(b, this.nameAt[m], at, len)) return false;
    }
    this.nameAt[n] = at;
    this.nameLen[n] = len;
    this.nameHash[n] = h;
    this.values[n] = value;
    this.metricCount = n + 1;
    return true;
  }
}

export function sameBytes(b: Uint8Array, x: number, y: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (b[x + i] !== b[y + i]) return false;
  return true;
}
