/**
 * Applies ring records to the shard's PaneStore. Runs on the shard worker thread, called by
 * RingConsumer.poll for each record. Reads the ring in place through DataView / Float64Array:
 * no allocation per event (names are decoded only for DEFINE records, once per name).
 */

import {
  EVENT_METRIC_BYTES, REC_COLUMNAR, REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS, REC_MARK,
  RecordReader, type RecordHandler, type RingConsumer,
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

  private readonly r: RecordReader;

  constructor(ring: RingConsumer, private store: PaneStore, private readonly time: EventTime | null = null,
    private readonly report: ReportCounter | null = null) {
    this.r = new RecordReader(ring);
  }

  /** The store the records go to (replaced once, when the shard restores its checkpoint). */
  useStore(store: PaneStore): void {
    this.store = store;
    this.lastDevice = -1;
    this.lastMetric = -1;
  }

  onRecord(offset: number, totalBytes: number, type: number): void {
    this.records++;
    switch (type) {
      case REC_EVENTS: if (this.fresh(this.r.eventsSeq(offset))) this.applyEvents(offset); break;
      case REC_COLUMNAR: if (this.fresh(this.r.columnarSeq(offset))) this.applyColumnar(offset); break;
      case REC_MARK: {
        const seq = this.r.markSeq(offset);
        if (seq > this.lastSeq) this.lastSeq = seq;
        break;
      }
      case REC_DEFINE_DEVICE: this.store.defineDevice(this.r.defineId(offset), this.r.defineName(offset)); break;
      case REC_DEFINE_METRIC: {
        const id = this.r.defineId(offset);
        const name = this.r.defineName(offset);
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


  private seriesOf(device: number, metric: number): number {
    // consecutive events of one device and metric are the common case (pinned connections)
    if (device === this.lastDevice && metric === this.lastMetric) return this.lastSeries;
    this.lastDevice = device;
    this.lastMetric = metric;
    this.lastSeries = this.store.seriesOf(device, metric);
    return this.lastSeries;
  }

  private applyEvents(offset: number): void {
    const r = this.r;
    const store = this.store;
    const time = this.time;
    const report = this.report;
    const seconds = time !== null ? time.seconds : null;
    const count = r.eventsCount(offset);
    const seq = r.eventsSeq(offset);
    let e = r.firstEvent(offset);
    for (let i = 0; i < count; i++) {
      const device = r.eventDevice(e);
      const metrics = r.eventMetricCount(e);
      const ts = r.eventTs(e);
      let p = r.firstMetric(e);
      e = p + metrics * EVENT_METRIC_BYTES;
      if (time !== null && time.isLate(ts)) {
        for (let m = 0; m < metrics; m++, p += EVENT_METRIC_BYTES) {
          const metric = r.metricId(p);
          const value = r.metricValue(p);
          time.recordLate(device, metric, ts, value, seq);
          if (report !== null) report.count(metric, device, value);
        }
        this.lateEvents++;
        continue;
      }
      if (time !== null) time.observe(ts);
      for (let m = 0; m < metrics; m++) {
        const metric = r.metricId(p);
        const value = r.metricValue(p);
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
    const r = this.r;
    const f64 = r.f64;
    const store = this.store;
    const device = r.columnarDevice(offset);
    const rows = r.columnarRows(offset);
    const metrics = r.columnarMetrics(offset);
    const tsIndex = r.columnarTsIndex(offset);
    const time = this.time;
    const report = this.report;
    if (time === null) {
      for (let m = 0; m < metrics; m++) {
        const metric = r.columnarMetricId(offset, m);
        const series = this.seriesOf(device, metric);
        const valueIndex = r.columnarValueIndex(offset, m);
        for (let i = 0; i < rows; i++) store.add(series, f64[tsIndex + i], f64[valueIndex + i]);
        if (report !== null) for (let i = 0; i < rows; i++) report.count(metric, device, f64[valueIndex + i]);
      }
      this.events += rows;
      return;
    }
    // lateness is decided row by row against the watermark before this record, as for row records
    const seq = r.columnarSeq(offset);
    if (this.columnSeries.length < metrics) {
      this.columnSeries = new Int32Array(metrics);
      this.columnMetrics = new Int32Array(metrics);
    }
    const columnSeries = this.columnSeries;
    const columnMetrics = this.columnMetrics;
    for (let m = 0; m < metrics; m++) {
      columnMetrics[m] = r.columnarMetricId(offset, m);
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
        const valueIndex = r.columnarValueIndex(offset, m);
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
        const value = f64[r.columnarValueIndex(offset, m) + i];
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
