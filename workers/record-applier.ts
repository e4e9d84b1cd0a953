/**
 * Applies ring records to the shard's PaneStore. Runs on the shard worker thread, called by
 * RingConsumer.poll for each record. Reads the ring in place through DataView / Float64Array:
 * no allocation per event (names are decoded only for DEFINE records, once per name).
 */

import {
  COLUMNAR_HEADER_BYTES, EVENTS_HEADER_BYTES, EVENT_HEADER_BYTES, EVENT_METRIC_BYTES,
  REC_COLUMNAR, REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS, REC_MARK, pad8,
  type RecordHandler, type RingConsumer,
} from '../protocol';
import type { PaneStore } from './pane-store';
import type { EventTime } from './event-time';
import type { ReportCounter } from './report-counter';

export class RecordApplier implements RecordHandler {
  events = 0;
  records = 0;
  /** every batch up to this seq that touched the shard has been applied */
  lastSeq = 0;
  /** batches up to this seq are in the checkpoint the shard started from: replays skip them */
  skipUpTo = 0;
  skippedRecords = 0;
  private lastDevice = -1;
  private lastMetric = -1;
  private lastSeries = -1;

  lateEvents = 0;
  private columnSeries = new Int32Array(64);
  private columnMetrics = new Int32Array(64);

  constructor(private readonly ring: RingConsumer, private store: PaneStore, private readonly time: EventTime | null = null,
    private readonly report: ReportCounter | null = null) {}

  /** The store the records go to (replaced once, when the shard restores its checkpoint). */
  useStore(store: PaneStore): void {
    this.store = store;
    this.lastDevice = -1;
    this.lastMetric = -1;
  }

  onRecord(offset: number, totalBytes: number, type: number): void {
    this.records++;
    switch (type) {
      case REC_EVENTS: if (this.fresh(this.ring.view.getFloat64(offset + 16, true))) this.applyEvents(offset); break;
      case REC_COLUMNAR: if (this.fresh(this.ring.view.getFloat64(offset + 24, true))) this.applyColumnar(offset); break;
      case REC_MARK: {
        const seq = this.ring.view.getFloat64(offset + 8, true);
        if (seq > this.lastSeq) this.lastSeq = seq;
        break;
      }
      case REC_DEFINE_DEVICE: this.store.defineDevice(this.ring.view.getUint32(offset + 8, true), this.nameAt(offset)); break;
      case REC_DEFINE_METRIC: {
        const id = this.ring.view.getUint32(offset + 8, true);
        const name = this.nameAt(offset);
        this.store.defineMetric(id, name);
        if (this.report !== null) this.report.defineMetric(id, name);
        break;
      }
      default: throw new Error(`ring record of unknown type ${type} (${totalBytes} bytes at ${offset})`);
    }
  }

  /** Records arrive in seq order per ring; one at or below skipUpTo is a replay already applied. */
  private fresh(seq: number): boolean {
    if (seq <= this.skipUpTo) {
      this.skippedRecords++;
      return false;
    }
    if (seq > this.lastSeq) this.lastSeq = seq;
    return true;
  }

  private nameAt(offset: number): string {
    const len = this.ring.view.getUint32(offset + 12, true);
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(this.ring.bytes[offset + 16 + i]);
    return s;
  }

  private seriesOf(device: number, metric: number): number {
    // consecutive events of one device and metric are the common case (pinned connections)
    if (device === this.lastDevice && metric === this.lastMetric) return this.lastSeries;
    this.lastDevice = device;
    this.lastMetric = metric;
    this.lastSeries = this.store.seriesOf(device, metric);
    return this.lastSeries;
  }

  private applyEvents(offset: number): void {
    const v = this.ring.view;
    const store = this.store;
    const time = this.time;
    const report = this.report;
    const seconds = time !== null ? time.seconds : null;
    const count = v.getUint32(offset + 8, true);
    const seq = v.getFloat64(offset + 16, true);
    let p = offset + EVENTS_HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      const device = v.getUint32(p, true);
      const metrics = v.getUint16(p + 4, true);
      const ts = v.getFloat64(p + 8, true);
      p += EVENT_HEADER_BYTES;
      if (time !== null && time.isLate(ts)) {
        for (let m = 0; m < metrics; m++, p += EVENT_METRIC_BYTES) {
          const metric = v.getUint32(p, true);
          const value = v.getFloat64(p + 8, true);
          time.recordLate(device, metric, ts, value, seq);
          if (report !== null) report.count(metric, device, value);
        }
        this.lateEvents++;
        continue;
      }
      if (time !== null) time.observe(ts);
      for (let m = 0; m < metrics; m++) {
        const metric = v.getUint32(p, true);
        const value = v.getFloat64(p + 8, true);
        store.add(this.seriesOf(device, metric), ts, value);
        if (seconds !== null) seconds.add(metric, ts, value);
        if (report !== null) report.count(metric, device, value);
        p += EVENT_METRIC_BYTES;
      }
    }
    this.events += count;
    if (time !== null) time.afterRecord();
  }

  private applyColumnar(offset: number): void {
    const v = this.ring.view;
    const f64 = this.ring.f64;
    const store = this.store;
    const device = v.getUint32(offset + 8, true);
    const rows = v.getUint32(offset + 12, true);
    const metrics = v.getUint32(offset + 16, true);
    const tsIndex = (offset + COLUMNAR_HEADER_BYTES + pad8(4 * metrics)) >>> 3;
    const time = this.time;
    const report = this.report;
    if (time === null) {
      for (let m = 0; m < metrics; m++) {
        const metric = v.getUint32(offset + COLUMNAR_HEADER_BYTES + 4 * m, true);
        const series = this.seriesOf(device, metric);
        const valueIndex = tsIndex + rows * (m + 1);
        for (let i = 0; i < rows; i++) store.add(series, f64[tsIndex + i], f64[valueIndex + i]);
        if (report !== null) for (let i = 0; i < rows; i++) report.count(metric, device, f64[valueIndex + i]);
      }
      this.events += rows;
      return;
    }
    // lateness is decided row by row against the watermark before this record, as for row records
    const seq = v.getFloat64(offset + 24, true);
    if (this.columnSeries.length < metrics) {
      this.columnSeries = new Int32Array(metrics);
      this.columnMetrics = new Int32Array(metrics);
    }
    const columnSeries = this.columnSeries;
    const columnMetrics = this.columnMetrics;
    for (let m = 0; m < metrics; m++) {
      columnMetrics[m] = v.getUint32(offset + COLUMNAR_HEADER_BYTES + 4 * m, true);
      columnSeries[m] = this.seriesOf(device, columnMetrics[m]);
    }
    // the common case, no row too late: column by column, as tight as without event time
    let minTs = Infinity;
    let maxTs = -Infinity;
    for (let i = 0; i < rows; i++) {
      const ts = f64[tsIndex + i];
      if (ts < minTs) minTs = ts;
      if (ts > maxTs) maxTs = ts;
    }
    if (!time.isLate(minTs)) {
      time.observe(maxTs);
      for (let m = 0; m < metrics; m++) {
        const series = columnSeries[m];
        const valueIndex = tsIndex + rows * (m + 1);
        for (let i = 0; i < rows; i++) store.add(series, f64[tsIndex + i], f64[valueIndex + i]);
        const seconds = time.seconds;
        for (let i = 0; i < rows; i++) seconds.add(columnMetrics[m], f64[tsIndex + i], f64[valueIndex + i]);
        if (report !== null) for (let i = 0; i < rows; i++) report.count(columnMetrics[m], device, f64[valueIndex + i]);
      }
      this.events += rows;
      time.afterRecord();
      return;
    }
    for (let i = 0; i < rows; i++) {
      const ts = f64[tsIndex + i];
      const late = time.isLate(ts);
      if (late) this.lateEvents++;
      else time.observe(ts);
      for (let m = 0; m < metrics; m++) {
        const value = f64[tsIndex + rows * (m + 1) + i];
        if (late) time.recordLate(device, columnMetrics[m], ts, value, seq);
        else {
          store.add(columnSeries[m], ts, value);
          time.seconds.add(columnMetrics[m], ts, value);
        }
        if (report !== null) report.count(columnMetrics[m], device, value);
      }
    }
    this.events += rows;
    time.afterRecord();
  }
}
