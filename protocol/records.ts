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
      this.view.setUint32(this.length + 4, REC_EVENTS, true);
      this.view.setUint32(this.length + 12, 0, true);
      this.seqOffsets.push(this.length + 16);
      this.length += EVENTS_HEADER_BYTES;
    }
    this.ensure(this.eventBytesMax);
    this.eventStart = this.length;
    this.eventMetrics = 0;
    this.view.setUint32(this.length, deviceId, true);
    this.view.setUint32(this.length + 4, 0, true);
    this.view.setFloat64(this.length + 8, ts, true);
    this.length += EVENT_HEADER_BYTES;
  }

  metric(metricId: number, value: number): void {
    this.view.setUint32(this.length, metricId, true);
    this.view.setUint32(this.length + 4, 0, true);
    this.view.setFloat64(this.length + 8, value, true);
    this.length += EVENT_METRIC_BYTES;
    this.eventMetrics++;
  }

  endEvent(): void {
    this.view.setUint16(this.eventStart + 4, this.eventMetrics, true);
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
      v.setUint32(at, total, true);
      v.setUint32(at + 4, REC_COLUMNAR, true);
      v.setUint32(at + 8, deviceId, true);
      v.setUint32(at + 12, n, true);
      v.setUint32(at + 16, metricCount, true);
      v.setUint32(at + 20, 0, true);
      this.seqOffsets.push(at + 24);
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
    this.view.setUint32(this.length, 16, true);
    this.view.setUint32(this.length + 4, REC_MARK, true);
    this.view.setFloat64(this.length + 8, seq, true);
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
      this.view.setUint32(this.eventsRecord, this.length - this.eventsRecord, true);
      this.view.setUint32(this.eventsRecord + 8, this.eventsCount, true);
    }
    this.eventsRecord = -1;
    this.eventsCount = 0;
  }

  private define(type: number, id: number, name: string): void {
    this.closeEvents();
    const total = RECORD_HEADER_BYTES + 8 + pad8(name.length);
    this.ensure(total);
    const at = this.length;
    this.view.setUint32(at, total, true);
    this.view.setUint32(at + 4, type, true);
    this.view.setUint32(at + 8, id, true);
    this.view.setUint32(at + 12, name.length, true);
    // names are validated ASCII, so one byte per char
    for (let i = 0; i < name.length; i++) this.buf[at + 16 + i] = name.charCodeAt(i);
    this.buf.fill(0, at + 16 + name.length, at + total);
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
