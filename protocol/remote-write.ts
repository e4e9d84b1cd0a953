/**
 * Prometheus remote-write 1.0 wire format: the protobuf `prometheus.WriteRequest` (prompb), read
 * from its bytes once snappy has decompressed it (the engine does that: a native module is no
 * business of protocol/).
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
 *                  repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }
 *
 * Contract. Pure, any thread. decodeWriteRequest() never throws on input: every byte string maps
 * to a WriteRequestView or a WireFault whose reason names the message and offset. Samples, labels
 * and the counts of what Sluice does not read (exemplars, native histograms, metadata) are
 * reported; unknown fields are skipped, as protobuf 3 requires. A staleness marker is recognised
 * from its bytes (0x7ff0000000000002), not from the decoded double, because that NaN is a
 * signalling one and nothing promises that its payload survives a trip through a JS number.
 *
 * Why hand-written and not protobufjs (which the tests use as the reference encoder): it reads
 * int64 timestamps straight into numbers (protobufjs builds a LongBits per varint, and a Long
 * unless util.Long is switched off for the whole process), builds no object per label or sample
 * (samples land in two reused Float64Arrays), and sees the stale marker's bits. Measured in
 * test/protocol/remote-write.test.ts ('decode speed'), see the figure in its log line.
 */

/** One series of a request: its labels as given (names and values alternate), its samples' range. */
export interface SeriesView {
  /** name0, value0, name1, value1, ... in the order sent (sorted by name, per the spec) */
  labels: string[];
  /** index of the first sample of this series in WriteRequestView's sample columns */
  sampleStart: number;
  /** samples of this series: sampleStart .. sampleStart + sampleCount - 1 */
  sampleCount: number;
}

/** A decoded WriteRequest. The sample columns are views valid until the next decode by the same decoder. */
export interface WriteRequestView {
  series: SeriesView[];
  samples: number;
  /** sample values (a stale marker's value reads NaN; isStale says which) */
  values: Float64Array;
  /** sample timestamps, epoch ms */
  timestamps: Float64Array;
  /** 1 where the sample is a staleness marker */
  isStale: Uint8Array;
  /** what Sluice does not read, counted */
  exemplars: number;
  histograms: number;
  metadata: number;
}

export interface WireFault {
  fault: string;
}

export function isWireFault(r: WriteRequestView | WireFault): r is WireFault {
  return (r as WireFault).fault !== undefined;
}

/** thrown inside the decoder only, caught by decode(): never leaves this module */
class Malformed {
  constructor(readonly reason: string) {}
}

const TWO_POW_32 = 4294967296;
const EMPTY = new Uint8Array(0);
const SAMPLES_INITIAL = 1024;
/** a label name or value longer than this is no label (the request is refused whole): Sluice's own bounds are far below */
const LABEL_BYTES_MAX = 64 * 1024;

/**
 * Reads WriteRequests; one per thread, reused: the sample columns grow to the largest request
 * seen and are overwritten by each decode.
 */
export class WriteRequestDecoder {
  private buf: Uint8Array<ArrayBufferLike> = EMPTY;
  /** the body's length: kept apart, a typed array's byteLength is no plain field load */
  private end = 0;
  private pos = 0;
  private values = new Float64Array(SAMPLES_INITIAL);
  private timestamps = new Float64Array(SAMPLES_INITIAL);
  private stale = new Uint8Array(SAMPLES_INITIAL);
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private samples = 0;
  private readonly text = new TextDecoder('utf-8', { fatal: false });
  private readonly interned = new StringInterner();

  decode(bytes: Uint8Array): WriteRequestView | WireFault {
    // always a plain Uint8Array (never a Buffer, a subclass): one element kind keeps the loads monomorphic
    this.buf = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = bytes.byteLength;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    this.samples = 0;
    const out: WriteRequestView = {
      series: [], samples: 0, values: this.values, timestamps: this.timestamps, isStale: this.stale,
      exemplars: 0, histograms: 0, metadata: 0,
    };
    try {
      this.readRequest(out);
    } catch (err) {
      if (err instanceof Malformed) return { fault: err.reason };
      throw err;
    } finally {
      // the body may be a view uWS neuters when its callback returns: no reference is kept
      this.buf = EMPTY;
      this.end = 0;
      this.view = new DataView(new ArrayBuffer(0));
    }
    out.samples = this.samples;
    out.values = this.values;
    out.timestamps = this.timestamps;
    out.isStale = this.stale;
    return out;
  }

  private readRequest(out: WriteRequestView): void {
    const end = this.end;
    while (this.pos < end) {
      const tag = this.varint32('WriteRequest');
      const field = tag >>> 3;
      if (field === 1 && (tag & 7) === 2) out.series.push(this.readSeries(out, this.lengthEnd('WriteRequest.timeseries')));
      else if (field === 3 && (tag & 7) === 2) {
        this.pos = this.lengthEnd('WriteRequest.metadata');
        out.metadata++;
      } else this.skip(tag, 'WriteRequest');
    }
  }

  private readSeries(out: WriteRequestView, end: number): SeriesView {
    const s: SeriesView = { labels: [], sampleStart: this.samples, sampleCount: 0 };
    while (this.pos < end) {
      const tag = this.varint32('TimeSeries');
      const field = tag >>> 3;
      const lengthDelimited = (tag & 7) === 2;
      if (field === 1 && lengthDelimited) this.readLabel(s.labels, this.lengthEnd('TimeSeries.labels', end));
      else if (field === 2 && lengthDelimited) this.readSample(this.lengthEnd('TimeSeries.samples', end));
      else if (field === 3 && lengthDelimited) {
        this.pos = this.lengthEnd('TimeSeries.exemplars', end);
        out.exemplars++;
      } else if (field === 4 && lengthDelimited) {
        this.pos = this.lengthEnd('TimeSeries.histograms', end);
        out.histograms++;
      } else this.skip(tag, 'TimeSeries', end);
    }
    this.endAt(end, 'TimeSeries');
    s.sampleCount = this.samples - s.sampleStart;
    return s;
  }

  private readLabel(labels: string[], end: number): void {
    let name = '';
    let value = '';
    while (this.pos < end) {
      const tag = this.varint32('Label');
      const field = tag >>> 3;
      if ((field === 1 || field === 2) && (tag & 7) === 2) {
        const stop = this.lengthEnd(field === 1 ? 'Label.name' : 'Label.value', end);
        if (stop - this.pos > LABEL_BYTES_MAX) throw new Malformed(`Label: a ${field === 1 ? 'name' : 'value'} of ${stop - this.pos} bytes at offset ${this.pos} (at most ${LABEL_BYTES_MAX})`);
        const str = this.string(this.pos, stop);
        this.pos = stop;
        if (field === 1) name = str;
        else value = str;
      } else this.skip(tag, 'Label', end);
    }
    this.endAt(end, 'Label');
    labels.push(name, value);
  }

  private readSample(end: number): void {
    let value = 0;
    let ts = 0;
    let stale = 0;
    while (this.pos < end) {
      const tag = this.varint32('Sample');
      const field = tag >>> 3;
      if (field === 1 && (tag & 7) === 1) {
        if (end - this.pos < 8) throw new Malformed(`Sample.value: 8 bytes needed at offset ${this.pos}, ${end - this.pos} left`);
        const lo = this.view.getUint32(this.pos, true);
        const hi = this.view.getUint32(this.pos + 4, true);
        stale = hi === 0x7ff00000 && lo === 2 ? 1 : 0;
        value = this.view.getFloat64(this.pos, true);
        this.pos += 8;
      } else if (field === 2 && (tag & 7) === 0) ts = this.varint64('Sample.timestamp', end);
      else this.skip(tag, 'Sample', end);
    }
    this.endAt(end, 'Sample');
    const i = this.samples;
    if (i === this.values.length) this.grow();
    this.values[i] = value;
    this.timestamps[i] = ts;
    this.stale[i] = stale;
    this.samples = i + 1;
  }

  private grow(): void {
    const n = this.values.length * 2;
    const v = new Float64Array(n);
    v.set(this.values);
    this.values = v;
    const t = new Float64Array(n);
    t.set(this.timestamps);
    this.timestamps = t;
    const s = new Uint8Array(n);
    s.set(this.stale);
    this.stale = s;
  }

  private string(start: number, stop: number): string {
    const len = stop - start;
    if (len > INTERN_BYTES_MAX) return this.text.decode(this.buf.subarray(start, stop));
    return this.interned.get(this.buf, start, len);
  }

  /** A varint that must fit 32 bits (tags, lengths): most are one byte. */
  private varint32(what: string): number {
    const b = this.buf;
    const p = this.pos;
    if (p < this.end) {
      const c = b[p];
      if (c < 0x80) {
        this.pos = p + 1;
        return c;
      }
    }
    return this.varint32Long(what);
  }

  private varint32Long(what: string): number {
    const b = this.buf;
    const end = this.end;
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (this.pos >= end) throw new Malformed(`${what}: truncated varint at offset ${this.pos}`);
      const c = b[this.pos++];
      result |= (c & 0x7f) << shift;
      if (c < 0x80) return result;
    }
    if (this.pos >= end) throw new Malformed(`${what}: truncated varint at offset ${this.pos}`);
    const c = b[this.pos++];
    if (c > 0x0f) throw new Malformed(`${what}: varint over 32 bits at offset ${this.pos - 1}`);
    return (result | (c << 28)) >>> 0;
  }

  /** An int64 varint as a number (exact within ±2^53; two's complement for negatives, 10 bytes). */
  private varint64(what: string, end: number): number {
    const b = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new Malformed(`${what}: truncated varint at offset ${this.pos}`);
      const c = b[this.pos++] & 0xff;
      const bits = c & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (7 * i - 32);
      if (c < 0x80) {
        if (hi >>> 31 === 0) return (hi >>> 0) * TWO_POW_32 + (lo >>> 0);
        // negative: the magnitude is the two's complement of the 64 bits
        const nlo = (~lo + 1) >>> 0;
        const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
        return -(nhi * TWO_POW_32 + nlo);
      }
    }
    throw new Malformed(`${what}: varint over 64 bits at offset ${this.pos}`);
  }

  /** The end offset of a length-delimited field that starts here, checked against its parent's end. */
  private lengthEnd(what: string, parentEnd = this.end): number {
    const len = this.varint32(what);
    const stop = this.pos + len;
    if (stop > parentEnd) throw new Malformed(`${what}: length ${len} at offset ${this.pos} runs past the end of its message (${parentEnd - this.pos} bytes left)`);
    return stop;
  }

  private endAt(end: number, what: string): void {
    if (this.pos !== end) throw new Malformed(`${what}: a field runs past the end of the message at offset ${this.pos}`);
  }

  /** Skips an unknown field (protobuf 3: a reader ignores fields it does not know). */
  private skip(tag: number, what: string, parentEnd = this.end): void {
    const field = tag >>> 3;
    if (field === 0) throw new Malformed(`${what}: field number 0 at offset ${this.pos} (not protobuf)`);
    switch (tag & 7) {
      case 0:
        this.varint64(`${what} field ${field}`, parentEnd);
        return;
      case 1:
        this.advance(8, what, parentEnd);
        return;
      case 2:
        this.pos = this.lengthEnd(`${what} field ${field}`, parentEnd);
        return;
      case 5:
        this.advance(4, what, parentEnd);
        return;
      default:
        throw new Malformed(`${what}: wire type ${tag & 7} of field ${field} at offset ${this.pos} (not protobuf 3)`);
    }
  }

  private advance(n: number, what: string, parentEnd: number): void {
    if (this.pos + n > parentEnd) throw new Malformed(`${what}: ${n} bytes needed at offset ${this.pos}, ${parentEnd - this.pos} left`);
    this.pos += n;
  }
}

/** Strings up to this many bytes go through the interner; longer ones are decoded each time. */
const INTERN_BYTES_MAX = 64;
const INTERN_SLOTS = 4096;

/**
 * Label names and most values repeat in every series and every request (`__name__`, `instance`,
 * `job`, a target's address): hashing and comparing their bytes costs less than building the
 * string again (UTF-8 decoding was about 60-110 ns a string, the decoder's largest cost). A
 * direct-mapped table: a collision replaces the slot, so its size is bounded whatever is sent.
 */
class StringInterner {
  private readonly bytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(INTERN_SLOTS).fill(null);
  private readonly strings: string[] = new Array<string>(INTERN_SLOTS).fill('');
  private readonly text = new TextDecoder('utf-8', { fatal: false });

  get(b: Uint8Array, start: number, len: number): string {
    let h = 0x811c9dc5;
    for (let i = 0; i < len; i++) h = Math.imul(h ^ b[start + i], 0x01000193);
    const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
    const known = this.bytes[slot];
    if (known !== null && known.byteLength === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (known[i] !== b[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return this.strings[slot];
    }
    const copy = b.slice(start, start + len);
    const str = this.text.decode(copy);
    this.bytes[slot] = copy;
    this.strings[slot] = str;
    return str;
  }
}

/**
 * The decompressed length a snappy block announces (its leading varint), or -1 when the
 * preamble is not one. Read before decompressing so that --body-max holds for the decompressed
 * size without allocating it first.
 */
export function snappyDecodedLength(block: Uint8Array): number {
  let result = 0;
  for (let i = 0; i < 5 && i < block.byteLength; i++) {
    const c = block[i];
    result += (c & 0x7f) * 2 ** (7 * i);
    if (c < 0x80) return result <= 0xffffffff ? result : -1;
  }
  return -1;
}
