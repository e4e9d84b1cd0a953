/**
 * Applies ring records to the shard's state. Runs on the shard worker thread, called by
 * RingConsumer.poll for each record. Reads the ring in place through RecordReader: no allocation
 * per event (names are decoded only for DEFINE records, once per name).
 *
 * Per reading, ShardState.route(): the head, a correction of a sealed slice, or too late (the late
 * log only); a reading for a final window is also listed in the late log, as a correction. Every
 * value also counts in the periodic report (by arrival, too-late ones included). After each
 * EVENTS or COLUMNAR record, ShardState.afterRecord() closes what the watermark passed, seals
 * whole slices and writes the record's corrections: decided from the records in ring order only,
 * so a replay decides the same.
 */

import { RecordReader, type RecordHandler, type RingConsumer } from '../protocol';
// from their module, not the index: tsc's `export *` re-exports through getters, and a read
// through one runs it (2.4 % of a shard worker's time at 1M devices, twice per event)
import { EVENT_METRIC_BYTES, REC_COLUMNAR, REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS, REC_MARK } from '../protocol/records';
import { ROUTE_CORRECTION, ROUTE_HEAD, ROUTE_LATE, type ShardState } from './shard-state';
import type { ReportCounter } from './report-counter';

export class RecordApplier implements RecordHandler {
  events = 0;
  records = 0;
  /** every batch up to this seq that touched the shard has been applied */
  lastSeq = 0;
  /** batches up to this seq are in the checkpoint the shard started from: replays skip them */
  skipUpTo = 0;
  skippedRecords = 0;
  /** events refused from the aggregates: beyond the late horizon */
  lateEvents = 0;
  /** events for final windows, kept as corrections */
  correctedEvents = 0;
  private lastDevice = -1;
  private lastMetric = -1;
  private lastSeries = -1;
  private columnSeries = new Int32Array(64);
  private columnMetrics = new Int32Array(64);
  private columnValues = new Int32Array(64);
  private readonly r: RecordReader;

  constructor(ring: RingConsumer, private readonly state: ShardState, private readonly report: ReportCounter) {
    this.r = new RecordReader(ring);
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
      case REC_DEFINE_DEVICE: this.state.series.defineDevice(this.r.defineId(offset), this.r.defineName(offset)); break;
      case REC_DEFINE_METRIC: {
        const id = this.r.defineId(offset);
        const name = this.r.defineName(offset);
        this.state.series.defineMetric(id, name);
        this.report.defineMetric(id, name);
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
    this.lastSeries = this.state.series.seriesOf(device, metric);
    return this.lastSeries;
  }

  private applyEvents(offset: number): void {
    const r = this.r;
    const state = this.state;
    const report = this.report;
    const count = r.eventsCount(offset);
    const seq = r.eventsSeq(offset);
    let e = r.firstEvent(offset);
    for (let i = 0; i < count; i++) {
      const device = r.eventDevice(e);
      const metrics = r.eventMetricCount(e);
      const ts = r.eventTs(e);
      let p = r.firstMetric(e);
      e = p + metrics * EVENT_METRIC_BYTES;
      const route = state.route(ts);
      const listed = route === ROUTE_LATE || state.isFinal(ts);
      if (route === ROUTE_LATE) this.lateEvents++;
      else if (listed) this.correctedEvents++;
      for (let m = 0; m < metrics; m++, p += EVENT_METRIC_BYTES) {
        const metric = r.metricId(p);
        const value = r.metricValue(p);
        if (route === ROUTE_HEAD) state.apply(this.seriesOf(device, metric), ts, value);
        else if (route === ROUTE_CORRECTION) state.correct(this.seriesOf(device, metric), ts, value);
        if (listed) state.late.record(device, metric, ts, value, seq, route !== ROUTE_LATE);
        report.count(metric, device, value);
      }
    }
    this.events += count;
    state.afterRecord(seq);
  }

  private applyColumnar(offset: number): void {
    const r = this.r;
    const f64 = r.f64;
    const state = this.state;
    const report = this.report;
    const device = r.columnarDevice(offset);
    const rows = r.columnarRows(offset);
    const metrics = r.columnarMetrics(offset);
    const tsIndex = r.columnarTsIndex(offset);
    const seq = r.columnarSeq(offset);
    if (this.columnSeries.length < metrics) {
      this.columnSeries = new Int32Array(metrics);
      this.columnMetrics = new Int32Array(metrics);
      this.columnValues = new Int32Array(metrics);
    }
    const columnSeries = this.columnSeries;
    const columnMetrics = this.columnMetrics;
    const columnValues = this.columnValues;
    for (let m = 0; m < metrics; m++) {
      columnMetrics[m] = r.columnarMetricId(offset, m);
      columnSeries[m] = this.seriesOf(device, columnMetrics[m]!);
      columnValues[m] = r.columnarValueIndex(offset, m);
    }
    // routed row by row against the state before this record, as for row records
    for (let i = 0; i < rows; i++) {
      const ts = f64[tsIndex + i]!;
      const route = state.route(ts);
      const listed = route === ROUTE_LATE || state.isFinal(ts);
      if (route === ROUTE_LATE) this.lateEvents++;
      else if (listed) this.correctedEvents++;
      for (let m = 0; m < metrics; m++) {
        const value = f64[columnValues[m]! + i]!;
        if (route === ROUTE_HEAD) state.apply(columnSeries[m]!, ts, value);
        else if (route === ROUTE_CORRECTION) state.correct(columnSeries[m]!, ts, value);
        if (listed) state.late.record(device, columnMetrics[m]!, ts, value, seq, route !== ROUTE_LATE);
        report.count(columnMetrics[m]!, device, value);
      }
    }
    this.events += rows;
    state.afterRecord(seq);
  }
}
