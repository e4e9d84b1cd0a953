/**
 * Builds one admitted batch into per-shard ring records and reserves it in every ring at once, or
 * in none: a batch that touches a full ring is refused whole, so an answer is always true.
 *
 * Front-end thread only. The stager's buffers are reused for each batch (no per-event allocation);
 * a refused batch that the caller wants to retry later is copied out with detach(). A reserved
 * batch is not visible to the workers until the commit pipeline publishes it (after its WAL write
 * in durable mode).
 */

import { type EventScratch, type ColumnarRows, RecordBuilder, RingProducer } from '../protocol';
import type { RecordBytes } from '../storage';
import { Dictionary, NOT_SENT, SENT, STAGED } from './dictionary';

/** A batch that found a ring full, copied out to be retried (HTTP's bounded wait). */
export interface DetachedBatch {
  records: (Uint8Array | null)[];
  /** per shard, where the batch sequence goes in each record */
  seqOffsets: number[][];
  devices: number[];
  metrics: number[];
  events: number;
}

export class BatchStager {
  private readonly builders: RecordBuilder[] = [];
  /** ids whose DEFINE is staged in this batch */
  private readonly stagedDevices: number[] = [];
  /** pairs (shard, metric id) whose DEFINE is staged in this batch */
  private readonly stagedMetrics: number[] = [];
  private readonly metricIds: Int32Array;
  eventsStaged = 0;
  /** ring cursors before and after the last reserved batch, per shard (equal: untouched) */
  readonly startCursors: Float64Array;
  readonly endCursors: Float64Array;

  constructor(private readonly dict: Dictionary, private readonly producers: RingProducer[],
    metricsPerEventMax: number) {
    for (const p of producers) this.builders.push(new RecordBuilder(p.recordBytesMax, metricsPerEventMax));
    this.metricIds = new Int32Array(metricsPerEventMax);
    this.startCursors = new Float64Array(producers.length);
    this.endCursors = new Float64Array(producers.length);
  }

  begin(): void {
    for (let s = 0; s < this.builders.length; s++) this.builders[s].reset();
    this.stagedDevices.length = 0;
    this.stagedMetrics.length = 0;
    this.eventsStaged = 0;
  }

  /** The device's id with its DEFINE staged if its shard has not seen it; -1 at devicesMax. */
  private stageDevice(name: string): number {
    const dict = this.dict;
    const id = dict.device(name);
    if (id < 0) return -1;
    if (dict.deviceState[id] === NOT_SENT) {
      dict.deviceState[id] = STAGED;
      this.stagedDevices.push(id);
      this.builders[dict.shardOf(id)].defineDevice(id, name);
    }
    return id;
  }

  private stageMetric(shard: number, name: string): number {
    const dict = this.dict;
    const id = dict.metric(name);
    const state = dict.metricState[shard];
    if (state[id] === NOT_SENT) {
      state[id] = STAGED;
      this.stagedMetrics.push(shard, id);
      this.builders[shard].defineMetric(id, name);
    }
    return id;
  }

  /** Stages DEFINE records for a known device (recovery tells every shard its names again). */
  stageDeviceName(id: number): void {
    if (this.dict.deviceState[id] !== NOT_SENT) return;
    this.dict.deviceState[id] = STAGED;
    this.stagedDevices.push(id);
    this.builders[this.dict.shardOf(id)].defineDevice(id, this.dict.deviceNames[id]);
  }

  stageMetricName(shard: number, id: number): void {
    this.stageMetric(shard, this.dict.metricNames[id]);
  }

  /** Stages a MARK record in every ring: all batches up to seq come before it. */
  stageMark(seq: number): void {
    for (let s = 0; s < this.builders.length; s++) this.builders[s].mark(seq);
  }

  /** Bytes staged so far (to bound a batch of DEFINEs). */
  get stagedBytes(): number {
    let n = 0;
    for (let s = 0; s < this.builders.length; s++) n += this.builders[s].length;
    return n;
  }

  /** Stages a validated event; false when the device cannot be interned (devicesMax). */
  stageEvent(ev: EventScratch): boolean {
    const dev = this.stageDevice(ev.deviceId);
    if (dev < 0) return false;
    const shard = this.dict.shardOf(dev);
    const n = ev.metricCount;
    // metric DEFINEs must precede the event in the ring, so intern before beginEvent
    for (let m = 0; m < n; m++) this.metricIds[m] = this.stageMetric(shard, ev.names[m]);
    const b = this.builders[shard];
    b.beginEvent(dev, ev.timestamp);
    for (let m = 0; m < n; m++) b.metric(this.metricIds[m], ev.values[m]);
    b.endEvent();
    this.eventsStaged++;
    return true;
  }

  /** Stages a validated columnar batch (rows already checked); false at devicesMax. */
  stageColumnar(c: ColumnarRows): boolean {
    const dev = this.stageDevice(c.deviceId);
    if (dev < 0) return false;
    const shard = this.dict.shardOf(dev);
    const m = c.names.length;
    for (let i = 0; i < m; i++) this.metricIds[i] = this.stageMetric(shard, c.names[i]);
    const b = this.builders[shard];
    if (c.rowOk === null) {
      b.columnar(dev, c.rows, this.metricIds, m, c.timestamps, c.columns);
      this.eventsStaged += c.rows;
      return true;
    }
    // a batch with rejected rows takes the row path for the rows it keeps
    const tv = new DataView(c.timestamps.buffer, c.timestamps.byteOffset, c.timestamps.byteLength);
    const views = c.columns.map((col) => new DataView(col.buffer, col.byteOffset, col.byteLength));
    for (let i = 0; i < c.rows; i++) {
      if (c.rowOk[i] === 0) continue;
      b.beginEvent(dev, tv.getFloat64(i * 8, true));
      for (let k = 0; k < m; k++) b.metric(this.metricIds[k], views[k].getFloat64(i * 8, true));
      b.endEvent();
      this.eventsStaged++;
    }
    return true;
  }

  /**
   * Writes the staged batch, stamped with seq, into every ring it touches without publishing it:
   * all rings or none. On success startCursors/endCursors bound the batch in each ring.
   */
  tryReserve(seq: number): boolean {
    const n = this.builders.length;
    for (let s = 0; s < n; s++) this.startCursors[s] = this.producers[s].reservedCursor;
    for (let s = 0; s < n; s++) {
      const b = this.builders[s];
      if (b.isEmpty) continue;
      b.seal(seq);
      if (!writeRecords(this.producers[s], b.buf, b.length)) {
        this.rewind();
        this.forgetStaged(this.stagedDevices, this.stagedMetrics);
        return false;
      }
    }
    for (let s = 0; s < n; s++) this.endCursors[s] = this.producers[s].reservedCursor;
    this.confirmStaged(this.stagedDevices, this.stagedMetrics);
    return true;
  }

  /** The reserved batch's records per shard (views of the stager's buffers, valid until the next begin()). */
  get records(): readonly RecordBytes[] {
    return this.builders;
  }

  /** Copies the refused batch out so the buffers can serve the next one. */
  detach(): DetachedBatch {
    return {
      records: this.builders.map((b) => (b.isEmpty ? null : b.buf.slice(0, b.length))),
      seqOffsets: this.builders.map((b) => b.sequenceOffsets.slice()),
      devices: this.stagedDevices.slice(),
      metrics: this.stagedMetrics.slice(),
      events: this.eventsStaged,
    };
  }

  /** Retries a detached batch under a new seq; on success the cursors bound it as tryReserve's do. */
  tryReserveDetached(d: DetachedBatch, seq: number): boolean {
    const n = this.producers.length;
    for (let s = 0; s < n; s++) this.startCursors[s] = this.producers[s].reservedCursor;
    for (let s = 0; s < n; s++) {
      const r = d.records[s];
      if (r === null) continue;
      const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
      for (const off of d.seqOffsets[s]) v.setFloat64(off, seq, true);
      if (!writeRecords(this.producers[s], r, r.byteLength)) {
        this.rewind();
        return false;
      }
    }
    for (let s = 0; s < n; s++) this.endCursors[s] = this.producers[s].reservedCursor;
    // a name another batch sent meanwhile is SENT already; one still unsent is sent by this batch
    this.confirmStaged(d.devices, d.metrics);
    return true;
  }

  /** A detached batch's records per shard. */
  detachedRecords(d: DetachedBatch): RecordBytes[] {
    return d.records.map((r) => (r === null ? EMPTY : { buf: r, length: r.byteLength }));
  }

  private rewind(): void {
    for (let s = 0; s < this.producers.length; s++) this.producers[s].rewind(this.startCursors[s]);
  }

  private confirmStaged(devices: number[], metrics: number[]): void {
    const dict = this.dict;
    for (let i = 0; i < devices.length; i++) dict.deviceState[devices[i]] = SENT;
    for (let i = 0; i < metrics.length; i += 2) dict.metricState[metrics[i]][metrics[i + 1]] = SENT;
  }

  /** Undoes the staged announcements: the next batch defines them again. */
  private forgetStaged(devices: number[], metrics: number[]): void {
    const dict = this.dict;
    for (let i = 0; i < devices.length; i++) dict.deviceState[devices[i]] = NOT_SENT;
    for (let i = 0; i < metrics.length; i += 2) dict.metricState[metrics[i]][metrics[i + 1]] = NOT_SENT;
  }
}

const EMPTY = { buf: new Uint8Array(0), length: 0 };

function writeRecords(p: RingProducer, buf: Uint8Array, length: number): boolean {
  let off = 0;
  while (off < length) {
    const total = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24);
    if (!p.tryWriteRecord(buf, off, total)) return false;
    off += total;
  }
  return true;
}
