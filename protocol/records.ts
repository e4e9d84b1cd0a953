/**
 * Ring record format: what the front-end writes after validation and a shard worker applies.
 *
 * Devices and metric names travel as integer ids from the front-end's dictionary. The first time a
 * shard is sent an id, a DEFINE record carrying the name precedes it in the same ring, so a worker
 * always knows a name before its first use (the ring is FIFO). Layouts (little-endian; every
 * record and every f64 field 8-byte aligned so the worker may read Float64Array views):
 *
 *   header         [u32 totalBytes][u32 type]
 *   DEFINE_*       [u32 id][u32 byteLength][latin1 bytes, zero-padded to 8]
 *   EVENTS         [u32 count][u32 0][f64 batchSeq] then per event
 *                  [u32 deviceId][u16 metricCount][u16 0][f64 ts] + metricCount x [u32 metricId][u32 0][f64 value]
 *   COLUMNAR       [u32 deviceId][u32 rows][u32 metrics][u32 0][f64 batchSeq]
 *                  [metrics x u32 metricId, zero-padded to 8][rows x f64 ts][metrics x rows x f64 value]
 *   MARK           [f64 seq]: every batch up to seq has reached this ring (checkpoints use it, so
 *                  a shard that saw no batch for a while still knows how far the WAL has gone)
 *
 * batchSeq is the admission sequence of the batch the events came in (the WAL sequence once the
 * WAL exists), patched into every record of a batch when the batch commits.
 */

import { RECORD_HEADER_BYTES } from './ring';

export const REC_DEFINE_DEVICE = 1;
export const REC_DEFINE_METRIC = 2;
export const REC_EVENTS = 3;
export const REC_COLUMNAR = 4;
export const REC_MARK = 5;
/** the records that carry events: a batch whose WAL write failed has these turned to padding */
export const EVENT_RECORD_TYPES: readonly number[] = [REC_EVENTS, REC_COLUMNAR];

export const EVENTS_HEADER_BYTES = RECORD_HEADER_BYTES + 16;
export const EVENT_HEADER_BYTES = 16;
export const EVENT_METRIC_BYTES = 16;
export const COLUMNAR_HEADER_BYTES = RECORD_HEADER_BYTES + 24;

// Field offsets, in bytes from the start of the record (or of the event / metric entry): the
// layouts in the header, named once for RecordBuilder's writes and RecordReader's reads.
export const REC_OFF_BYTES = 0;
export const REC_OFF_TYPE = 4;
export const DEFINE_OFF_ID = 8;
export const DEFINE_OFF_LENGTH = 12;
export const DEFINE_OFF_NAME = 16;
export const EVENTS_OFF_COUNT = 8;
export const EVENTS_OFF_SEQ = 16;
export const EVENT_OFF_DEVICE = 0;
export const EVENT_OFF_METRICS = 4;
export const EVENT_OFF_TS = 8;
export const METRIC_OFF_ID = 0;
export const METRIC_OFF_VALUE = 8;
export const COLUMNAR_OFF_DEVICE = 8;
export const COLUMNAR_OFF_ROWS = 12;
export const COLUMNAR_OFF_METRICS = 16;
export const COLUMNAR_OFF_SEQ = 24;
export const MARK_OFF_SEQ = 8;

export function pad8(n: number): number {
  return (n + 7) & ~7;
}

export function columnarRecordBytes(rows: number, metrics: number): number {
  return COLUMNAR_HEADER_BYTES + pad8(4 * metrics) + 8 * rows + 8 * rows * metrics;
}

/**
 * Stages the records of one batch for one shard in a reusable buffer. Owned by one thread; reset()
 * per batch. Records never exceed recordBytesMax, so each fits the ring once it drains.
 */
export class RecordBuilder {
  buf: Uint8Array;
  view: DataView;
  length = 0;
  /** offsets of the batchSeq fields to patch at commit */
  private seqOffsets: number[] = [];
  private eventsRecord = -1;
  private eventsCount = 0;
  private eventStart = -1;
  private eventMetrics = 0;
  private readonly eventBytesMax: number;

  constructor(readonly recordBytesMax: number, metricsPerEventMax: number) {
    this.eventBytesMax = EVENT_HEADER_BYTES + EVENT_METRIC_BYTES * metricsPerEventMax;
    if (EVENTS_HEADER_BYTES + this.eventBytesMax > recordBytesMax) {
      throw new RangeError(`ring records of ${recordBytesMax} bytes cannot hold one event of ${metricsPerEventMax} metrics: use a larger ring`);
    }
    this.buf = new Uint8Array(64 * 1024);
    this.view = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.length = 0;
    this.seqOffsets.length = 0;
    this.eventsRecord = -1;
    this.eventsCount = 0;
    this.eventStart = -1;
  }

  get isEmpty(): boolean {
    return this.length === 0;
  }

  defineDevice(id: number, name: string): void {
    this.define(REC_DEFINE_DEVICE, id, name);
  }

  defineMetric(id: number, name: string): void {
    this.define(REC_DEFINE_METRIC, id, name);
  }

  beginEvent(deviceId: number, ts: number): void {
    if (this.eventsRecord < 0 || this.length - this.eventsRecord + this.eventBytesMax > this.recordBytesMax) {
      this.closeEvents();
      this.ensure(EVENTS_HEADER_BYTES);
      this.eventsRecord = this.length;
      this.view.setUint32(this.length + REC_OFF_TYPE, REC_EVENTS, true);
      this.view.setUint32(this.length + EVENTS_OFF_COUNT + 4, 0, true);
      this.seqOffsets.push(this.length + EVENTS_OFF_SEQ);
      this.length += EVENTS_HEADER_BYTES;
    }
    this.ensure(this.eventBytesMax);
    this.eventStart = this.length;
    this.eventMetrics = 0;
    this.view.setUint32(this.length + EVENT_OFF_DEVICE, deviceId, true);
    this.view.setUint32(this.length + EVENT_OFF_METRICS, 0, true);
    this.view.setFloat64(this.length + EVENT_OFF_TS, ts, true);
    this.length += EVENT_HEADER_BYTES;
  }

  metric(metricId: number, value: number): void {
    this.view.setUint32(this.length + METRIC_OFF_ID, metricId, true);
    this.view.setUint32(this.length + METRIC_OFF_ID + 4, 0, true);
    this.view.setFloat64(this.length + METRIC_OFF_VALUE, value, true);
    this.length += EVENT_METRIC_BYTES;
    this.eventMetrics++;
  }

  endEvent(): void {
    this.view.setUint16(this.eventStart + EVENT_OFF_METRICS, this.eventMetrics, true);
    this.eventsCount++;
    this.eventStart = -1;
  }

  /**
   * One device's rows, copied column by column from little-endian f64 byte strings. Split into
   * several records when the rows do not fit one.
   */
  columnar(deviceId: number, rows: number, metricIds: ArrayLike<number>, metricCount: number,
    timestamps: Uint8Array, columns: Uint8Array[]): void {
    this.closeEvents();
    const fixed = COLUMNAR_HEADER_BYTES + pad8(4 * metricCount);
    const rowsPerRecord = Math.floor((this.recordBytesMax - fixed) / (8 + 8 * metricCount));
    for (let first = 0; first < rows; first += rowsPerRecord) {
      const n = Math.min(rowsPerRecord, rows - first);
      const total = columnarRecordBytes(n, metricCount);
      this.ensure(total);
      const at = this.length;
      const v = this.view;
      v.setUint32(at + REC_OFF_BYTES, total, true);
      v.setUint32(at + REC_OFF_TYPE, REC_COLUMNAR, true);
      v.setUint32(at + COLUMNAR_OFF_DEVICE, deviceId, true);
      v.setUint32(at + COLUMNAR_OFF_ROWS, n, true);
      v.setUint32(at + COLUMNAR_OFF_METRICS, metricCount, true);
      v.setUint32(at + COLUMNAR_OFF_METRICS + 4, 0, true);
      this.seqOffsets.push(at + COLUMNAR_OFF_SEQ);
      let p = at + COLUMNAR_HEADER_BYTES;
      for (let m = 0; m < metricCount; m++, p += 4) v.setUint32(p, metricIds[m], true);
      p = at + fixed;
      this.buf.fill(0, at + COLUMNAR_HEADER_BYTES + 4 * metricCount, p);
      this.buf.set(timestamps.subarray(first * 8, (first + n) * 8), p);
      p += 8 * n;
      for (let m = 0; m < metricCount; m++, p += 8 * n) this.buf.set(columns[m].subarray(first * 8, (first + n) * 8), p);
      this.length = at + total;
    }
  }

  /** A MARK record: every batch up to seq has been written to the ring before it. */
  mark(seq: number): void {
    this.closeEvents();
    this.ensure(16);
    this.view.setUint32(this.length + REC_OFF_BYTES, 16, true);
    this.view.setUint32(this.length + REC_OFF_TYPE, REC_MARK, true);
    this.view.setFloat64(this.length + MARK_OFF_SEQ, seq, true);
    this.length += 16;
  }

  /** offsets of the batchSeq fields, relative to the start of the buffer */
  get sequenceOffsets(): readonly number[] {
    return this.seqOffsets;
  }

  /** Closes the open record and stamps the batch sequence into every record of the batch. */
  seal(batchSeq: number): void {
    this.closeEvents();
    for (let i = 0; i < this.seqOffsets.length; i++) this.view.setFloat64(this.seqOffsets[i], batchSeq, true);
  }

  private closeEvents(): void {
    if (this.eventsRecord < 0) return;
    if (this.eventsCount === 0) {
      this.length = this.eventsRecord;
      this.seqOffsets.pop();
    } else {
      this.view.setUint32(this.eventsRecord + REC_OFF_BYTES, this.length - this.eventsRecord, true);
      this.view.setUint32(this.eventsRecord + EVENTS_OFF_COUNT, this.eventsCount, true);
    }
    this.eventsRecord = -1;
    this.eventsCount = 0;
  }

  private define(type: number, id: number, name: string): void {
    this.closeEvents();
    const total = RECORD_HEADER_BYTES + 8 + pad8(name.length);
    this.ensure(total);
    const at = this.length;
    this.view.setUint32(at + REC_OFF_BYTES, total, true);
    this.view.setUint32(at + REC_OFF_TYPE, type, true);
    this.view.setUint32(at + DEFINE_OFF_ID, id, true);
    this.view.setUint32(at + DEFINE_OFF_LENGTH, name.length, true);
    // names are validated ASCII, so one byte per char
    for (let i = 0; i < name.length; i++) this.buf[at + DEFINE_OFF_NAME + i] = name.charCodeAt(i);
    this.buf.fill(0, at + DEFINE_OFF_NAME + name.length, at + total);
    this.length = at + total;
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.byteLength) return;
    let size = this.buf.byteLength * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}


/**
 * Reads records in place (a ring's bytes, or a WAL entry's): the other half of RecordBuilder.
 * Offsets are byte offsets into `bytes`; record fields are read at a record's offset, event
 * fields at an event's, metric fields at a metric entry's. Walk an EVENTS record with
 * firstEvent(), then per event firstMetric() and METRIC_ENTRY_BYTES steps, then the next event
 * starts where its last metric ended. Small methods: V8 inlines them in the hot loops, so reading
 * through the reader costs what reading the DataView by hand did. No allocation but names.
 */
export interface RecordBytes {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** over the same bytes: f64 index i is byte offset 8 * i */
  readonly f64: Float64Array;
}

export class RecordReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly f64: Float64Array;

  /** Reads records in `source` (a ring: RingConsumer has the three views). */
  constructor(source: RecordBytes) {
    this.bytes = source.bytes;
    this.view = source.view;
    this.f64 = source.f64;
  }

  /** A reader over a buffer of records (8-byte aligned, as RecordBuilder writes them). */
  static over(buf: Uint8Array): RecordReader {
    if (buf.byteOffset % 8 !== 0) throw new RangeError('RecordReader.over: records must start 8-byte aligned');
    return new RecordReader({
      bytes: buf,
      view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
      f64: new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 3),
    });
  }

  recordBytes(o: number): number { return this.view.getUint32(o + REC_OFF_BYTES, true); }
  recordType(o: number): number { return this.view.getUint32(o + REC_OFF_TYPE, true); }

  /** DEFINE_DEVICE / DEFINE_METRIC */
  defineId(o: number): number { return this.view.getUint32(o + DEFINE_OFF_ID, true); }
  defineName(o: number): string {
    const len = this.view.getUint32(o + DEFINE_OFF_LENGTH, true);
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(this.bytes[o + DEFINE_OFF_NAME + i]);
    return s;
  }

  /** EVENTS */
  eventsCount(o: number): number { return this.view.getUint32(o + EVENTS_OFF_COUNT, true); }
  eventsSeq(o: number): number { return this.view.getFloat64(o + EVENTS_OFF_SEQ, true); }
  firstEvent(o: number): number { return o + EVENTS_HEADER_BYTES; }
  eventDevice(e: number): number { return this.view.getUint32(e + EVENT_OFF_DEVICE, true); }
  eventMetricCount(e: number): number { return this.view.getUint16(e + EVENT_OFF_METRICS, true); }
  eventTs(e: number): number { return this.view.getFloat64(e + EVENT_OFF_TS, true); }
  firstMetric(e: number): number { return e + EVENT_HEADER_BYTES; }
  metricId(m: number): number { return this.view.getUint32(m + METRIC_OFF_ID, true); }
  metricValue(m: number): number { return this.view.getFloat64(m + METRIC_OFF_VALUE, true); }

  /** COLUMNAR: timestamps and value columns as indexes into f64 */
  columnarDevice(o: number): number { return this.view.getUint32(o + COLUMNAR_OFF_DEVICE, true); }
  columnarRows(o: number): number { return this.view.getUint32(o + COLUMNAR_OFF_ROWS, true); }
  columnarMetrics(o: number): number { return this.view.getUint32(o + COLUMNAR_OFF_METRICS, true); }
  columnarSeq(o: number): number { return this.view.getFloat64(o + COLUMNAR_OFF_SEQ, true); }
  columnarMetricId(o: number, m: number): number { return this.view.getUint32(o + COLUMNAR_HEADER_BYTES + 4 * m, true); }
  /** f64 index of the first timestamp */
  columnarTsIndex(o: number): number {
    return (o + COLUMNAR_HEADER_BYTES + pad8(4 * this.columnarMetrics(o))) >>> 3;
  }
  /** f64 index of metric m's first value */
  columnarValueIndex(o: number, m: number): number {
    return this.columnarTsIndex(o) + this.columnarRows(o) * (m + 1);
  }

  /** MARK */
  markSeq(o: number): number { return this.view.getFloat64(o + MARK_OFF_SEQ, true); }
}
