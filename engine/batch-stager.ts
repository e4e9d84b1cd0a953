/**
 * Builds one admitted batch into per-shard ring records and reserves it in every ring at once, or
 * in none: a batch that touches a full ring is refused whole, so an answer is always true.
 *
 * Front-end thread only. The stager's buffers are reused for each batch (no per-event allocation);
 * a refused batch that the caller wants to retry later is copied out with detach(). A reserved
 * batch is not visible to the workers until the commit pipeline publishes it (after its WAL write
 * in durable mode). Events of the byte scanners (stagePacked) that form a run of one device and
 * the same metrics are written as one COLUMNAR record when the run ends; every other staging call
 * ends the open run first, so the rings keep the events in the order they were staged.
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

/**
 * A run of consecutive scanned events of one device with the same metrics (a pinned WebSocket
 * frame is one run) is staged as COLUMNAR records, not as EVENTS: 8 bytes per value and per
 * timestamp instead of 16 + 16 per metric, so the WAL, the ring and the worker's reading do half
 * the work (ws-msgpack: 1,000 events a frame, one metric). Runs shorter than this are row events.
 */
const COLUMNAR_RUN_MIN = 4;

export class BatchStager {
  private readonly builders: RecordBuilder[] = [];
  /** the open run of stagePacked: device (-1: none), its metric ids, rows; values column-major (stride runCap) */
  private runDev = -1;
  private runMetrics = 0;
  private runRows = 0;
  private runCap = 1024;
  private readonly runIds: Int32Array;
  private runTs = new Float64Array(1024);
  private runValues: Float64Array;
  private readonly runColumns: Uint8Array[] = [];
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
    this.runIds = new Int32Array(metricsPerEventMax);
    // sized for the runs seen (most carry one metric), grown by openRun / growRun
    this.runValues = new Float64Array(this.runCap * 4);
    this.startCursors = new Float64Array(producers.length);
    this.endCursors = new Float64Array(producers.length);
  }

  begin(): void {
    this.runDev = -1;
    this.runRows = 0;
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
    this.builders[this.dict.shardOf(id)].defineDevice(id, this.dict.deviceName(id));
  }

  stageMetricName(shard: number, id: number): void {
    this.stageMetric(shard, this.dict.metricNames[id]);
  }

  /** Stages a MARK record in every ring: all batches up to seq come before it. */
  stageMark(seq: number): void {
    this.flushRun();
    for (let s = 0; s < this.builders.length; s++) this.builders[s].mark(seq);
  }

  /** Bytes staged so far (to bound a batch of DEFINEs). */
  get stagedBytes(): number {
    this.flushRun();
    let n = 0;
    for (let s = 0; s < this.builders.length; s++) n += this.builders[s].length;
    return n;
  }

  /** Stages a validated event; false when the device cannot be interned (devicesMax). */
  stageEvent(ev: EventScratch): boolean {
    this.flushRun();
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

  /** The id's DEFINE staged if its shard has not seen the device (a device the NameCache found). */
  stageDeviceId(id: number): void {
    const dict = this.dict;
    if (dict.deviceState[id] === NOT_SENT) {
      dict.deviceState[id] = STAGED;
      this.stagedDevices.push(id);
      this.builders[dict.shardOf(id)].defineDevice(id, dict.deviceName(id));
    }
  }

  /**
   * Stages an event of the byte scanners (ids already interned, values checked): metric DEFINEs
   * first where the shard has not seen a name, then the event, as stageEvent does.
   */
  stagePacked(dev: number, ts: number, metricIds: Int32Array, values: Float64Array, n: number): void {
    if (dev !== this.runDev || n !== this.runMetrics || !sameIds(this.runIds, metricIds, n)) {
      this.flushRun();
      this.openRun(dev, metricIds, n);
    }
    const row = this.runRows;
    if (row === this.runCap) this.growRun();
    this.runTs[row] = ts;
    const cap = this.runCap;
    const v = this.runValues;
    for (let m = 0; m < n; m++) v[m * cap + row] = values[m];
    this.runRows = row + 1;
    this.eventsStaged++;
  }

  /** A new run: the DEFINEs its device and metrics need go into the ring now, before its events. */
  private openRun(dev: number, metricIds: Int32Array, n: number): void {
    const dict = this.dict;
    if (dict.deviceState[dev] === NOT_SENT) this.stageDeviceId(dev);
    const shard = dict.shardOf(dev);
    const state = dict.metricState[shard];
    const b = this.builders[shard];
    for (let m = 0; m < n; m++) {
      const id = metricIds[m];
      this.runIds[m] = id;
      if (state[id] === NOT_SENT) {
        state[id] = STAGED;
        this.stagedMetrics.push(shard, id);
        b.defineMetric(id, dict.metricNames[id]);
      }
    }
    if (this.runValues.length < this.runCap * n) this.runValues = new Float64Array(this.runCap * n);
    this.runDev = dev;
    this.runMetrics = n;
    this.runRows = 0;
  }

  /** Writes the open run into its shard's builder: COLUMNAR records when long enough, else EVENTS. */
  private flushRun(): void {
    const rows = this.runRows;
    const dev = this.runDev;
    if (dev < 0) return;
    this.runDev = -1;
    this.runRows = 0;
    if (rows === 0) return;
    const b = this.builders[this.dict.shardOf(dev)];
    const n = this.runMetrics;
    const cap = this.runCap;
    const v = this.runValues;
    const ids = this.runIds;
    if (rows < COLUMNAR_RUN_MIN) {
      for (let i = 0; i < rows; i++) {
        b.beginEvent(dev, this.runTs[i]);
        for (let m = 0; m < n; m++) b.metric(ids[m], v[m * cap + i]);
        b.endEvent();
      }
      return;
    }
    // views over the run's columns (once per run, not per event); the builder copies them
    const cols = this.runColumns;
    cols.length = n;
    for (let m = 0; m < n; m++) cols[m] = new Uint8Array(v.buffer, m * cap * 8, rows * 8);
    b.columnar(dev, rows, ids, n, new Uint8Array(this.runTs.buffer, 0, rows * 8), cols);
  }

  private growRun(): void {
    const cap = this.runCap * 2;
    const ts = new Float64Array(cap);
    ts.set(this.runTs);
    this.runTs = ts;
    const v = new Float64Array(cap * Math.max(this.runMetrics, 1));
    for (let m = 0; m < this.runMetrics; m++) v.set(this.runValues.subarray(m * this.runCap, m * this.runCap + this.runRows), m * cap);
    this.runValues = v;
    this.runCap = cap;
  }

  /** Drops the batch being staged (a frame the fast path gives up on): its announcements are undone. */
  abandon(): void {
    this.forgetStaged(this.stagedDevices, this.stagedMetrics);
    this.begin();
  }

  /** Stages a validated columnar batch (rows already checked); false at devicesMax. */
  stageColumnar(c: ColumnarRows): boolean {
    this.flushRun();
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
    this.flushRun();
    const n = this.builders.length;
    for (let s = 0; s < n; s++) this.startCursors[s] = this.producers[s].reservedCursor;
    for (let s = 0; s < n; s++) if (!this.builders[s].isEmpty) this.builders[s].seal(seq);
    // a refused batch is detached and retried whole (sealed: detach() copies closed records)
    if (!this.backlogRoom(this.builders)) {
      this.forgetStaged(this.stagedDevices, this.stagedMetrics);
      return false;
    }
    for (let s = 0; s < n; s++) {
      const b = this.builders[s];
      if (b.isEmpty) continue;
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
    this.flushRun();
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
    if (!this.backlogRoom(d.records)) return false;
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

  /** whether every ring the batch touches is under its backlog bound (RingProducer.hasBacklogRoom) */
  private backlogRoom(records: readonly (RecordBuilder | Uint8Array | null)[]): boolean {
    for (let s = 0; s < this.producers.length; s++) {
      const r = records[s];
      if (r === null || (r instanceof RecordBuilder && r.isEmpty)) continue;
      if (!this.producers[s].hasBacklogRoom()) return false;
    }
    return true;
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

function sameIds(a: Int32Array, b: Int32Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function writeRecords(p: RingProducer, buf: Uint8Array, length: number): boolean {
  let off = 0;
  while (off < length) {
    const total = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24);
    if (!p.tryWriteRecord(buf, off, total)) return false;
    off += total;
  }
  return true;
}
