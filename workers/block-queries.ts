/**
 * Queries over one shard's ShardState (workers/shard-state.ts), answering the tasks of
 * protocol/messages.ts: the open slices' raw readings in the head (workers/head-slices.ts) and the
 * sealed slices in LMDB (storage/block-store.ts: one block per chunk of series per slice, plus the
 * slice's summary under SUMMARY_CHUNK, storage/slice-summary.ts).
 *
 * Contract:
 * - Runs in the shard worker that owns the state, between ring drains, after `state.pending`
 *   resolved (the worker's consistent()): then a slice is in exactly one place, open in the head
 *   or sealed in the blocks, and every function here reads each slice from that one place (a
 *   slice open in the head is never read from the blocks). Synchronous: nothing awaits.
 * - Results are plain data (structured-clone-able) in the wire form the engine merges, the same
 *   types and meaning as the PaneStore queries they replace (workers/shard-queries.ts).
 * - A block or summary that does not decode throws (a damaged store is a bug or a broken disk:
 *   never answer from it); the worker turns it into the task's error.
 *
 * Semantics (kept from workers/shard-queries.ts):
 * - Windows are `resolutionMs` long (a positive multiple of paneMs, RangeError otherwise), aligned
 *   to the epoch. A window is included when it overlaps [from, to) (start < to && start + res >
 *   from) and is then whole: all its readings, also those outside [from, to). So a query reads the
 *   span [floor(from / res) * res, ceil(to / res) * res) and nothing else. Only windows with data,
 *   sorted by start. Ranges must be finite (RangeError).
 * - A window's aggregate from raw readings: count, sum, min, max, last (by event time; on equal
 *   times the greater value, as mergeAggregate), histogram (histogramBucket), the digest (the
 *   values as weight-1 centroids; past CENTROIDS_MAX_DEFAULT compressed, as mergeAggregate does).
 *   Fleet windows: summary pieces merged (mergeAggregate), the slice's or its panes' windows, from
 *   the sealed slice's summary or the open slice's head summary (workers/head-summaries.ts: the
 *   same content, built from the head's raw readings and extended as they arrive), both merged
 *   by Windows.addSummary.
 * - Fleet `devices` are exact distinct counts: a window made of one summary piece takes its count;
 *   of several, the OR of their device bitmaps (never a sum; a device has one series per metric,
 *   so distinct series of the metric are distinct devices). The range's `devices`: the same over
 *   every returned window.
 * - sensorRange: whole seconds [ceil(from / 1000), ceil(to / 1000)), exact to the second: a sealed
 *   slice (or pane) wholly inside from its summary, its edges from raw readings; an open slice
 *   from its head summary's cells (gcd(paneMs, 1000) ms: a whole second is whole cells).
 * - metricLatest: the start of the newest pane holding a reading of the metric (of the device):
 *   the newest open slice with one first (open slices are newer than every sealed one), else the
 *   sealed slices from the newest back, by their summaries.
 * - topDevices: per device, the readings of the windows of resolutionMs (default paneMs)
 *   overlapping [from, to) merged; by mean/max/min/count/sum exact, p50/p90/p99 from the digest;
 *   rows by value descending, ties by deviceId ascending, at most n.
 *
 * Cost (issue #11): a device query reads ONE block per sealed slice of the span (its series'
 * chunk, a direct get) and walks its chain in each open slice. Fleet queries (fleetSeries,
 * distinctDevices, sensorRange's whole slices, metricLatest) read one summary per sealed slice,
 * never a chunk, decoded once per query; each open slice's head summary is extended with the
 * readings appended since the previous query (workers/head-summaries.ts: the slice's new rows, or
 * the metric's series' chains when they are few in the slice), so a fleet query costs the new
 * readings, not all the head's; the first query over a slice builds its summary. topDevices and
 * sensorRange's edge slices read the chunks that hold the metric's series. Sealed slices are
 * enumerated by direct gets between the first stored slice of the span (one range read) and the
 * newest stored one (BlockStore.newestStart), so a span wider than the data costs nothing more.
 *
 * Measured (test/workers/block-queries.test.ts's timing print; Node 20, a shared 2-core dev
 * container, medians of runs): 10k series of one metric, one reading per 10 s, 1-min slices,
 * 4096-series chunks, 70 min of data of which 64 slices sealed and 6 open (360k head readings).
 * - a past (sealed) hour at 1 min: one device p50 1.3-1.8 ms, p99 3.5-9.4 ms (GC: every block
 *   get is a ~118 KB copy); the fleet with exact distinct devices p50 4.1-4.7 ms, p99 6.0-7.2 ms;
 *   the fleet at 1 h 4.6-4.9 ms; distinctDevices 3.3-3.5 ms; sensorRange ~1 h 5.3-5.8 ms.
 * - the last hour, with the head: one device p50 1.2-1.3 ms; the fleet at 1 min p50 3.5-3.7 ms
 *   (p99 4.9-5.1), at 1 h 5.8-6.0 ms; distinctDevices 3.0 ms; sensorRange ~1 h 3.9-4.2 ms (the
 *   head summaries held; before them the fleet took 26-29 ms, p99 37-41, sensorRange 7.7-8.4 ms:
 *   the head's 360k raw readings ~65 ns each on every query). After each 1 s of new readings
 *   (1000): the fleet at 1 min p50 3.7-4.5 ms (p99 4.9-9.5), distinctDevices 3.1-3.5 ms,
 *   metricLatest 0.02 ms. The first fleet query over the head (summaries built from its 340k
 *   readings, ~52 ns each): 23-25 ms.
 * - 100k series, one shard (a scratch replica of bench event-time): the last hour at 1 min after
 *   each 1 s of new readings (10k) p50 9.1 ms, p99 10.8 ms, the same as a sealed hour (9.4 ms:
 *   the 54 sealed summaries' msgpack decoding is ~1/3, their bitmaps' OR ~1/10); 30 min of data
 *   at 1 h: 5.9 ms warm, 185-240 ms for the first query (3.6M head readings summarised).
 * - top by p99 over an hour at 1 min: 150-170 ms (3.6M readings decoded, ~25 ns each in
 *   BlockReader, plus a selection per device); over one minute 3.6-5.7 ms; by max over an hour
 *   ~60 ms. metricLatest (fleet, data in the head) 0.5 ms without head summaries, 0.02 with.
 * - summaries only, 1000 series, 2 days of 1-min slices: the fleet at 1 h over 30 min or 1 h
 *   2.2-2.6 ms, over 1 day 74 ms (1440 summaries: msgpack decoding and its garbage are ~3/4).
 */

import {
  CENTROIDS_MAX_DEFAULT, emptyAggregate, histogramBucket, mergeAggregate, MergingDigest,
  type DeviceEntry, type DevicesResult, type DevicesTask, type DistinctDevicesResult, type DistinctDevicesTask,
  type DeviceSeriesResult, type DeviceSeriesTask, type FleetSeriesResult, type FleetSeriesTask, type MetricLatestResult,
  type MetricLatestTask, type SensorRangeResult, type SensorRangeTask, type ShardStats, type TopBy, type TopResult,
  type TopRow, type TopTask, type WindowAggregateWire,
} from '../protocol';
import { BlockReader, SUMMARY_CHUNK, SliceSummaryBuilder, decodeSliceSummary, type MetricSummary, type SliceSummary } from '../storage';
import { countBits, hasBit, orInto } from '../storage/device-bits';
import { HeadSummaries, SCAN_COLUMNS_FRACTION, type HeadSummary } from './head-summaries';
import type { HeadSlices } from './head-slices';
import { RawDigest } from './raw-digest';
import type { ShardState } from './shard-state';

// Bound once: a call through the CommonJS re-export of '../protocol' runs its getter each time.
const bucketOf = histogramBucket;
const centroidsMax = CENTROIDS_MAX_DEFAULT;

/** a span wider than this many slices finds its first stored slice with one range read first */
const SCAN_SLICES_DIRECT = 64;
/** rows of a head slice read per batch */
const BATCH_ROWS = 4096;

// ---- scratch (module level: one worker thread, nothing here awaits) -------------------------

let offs = new Float64Array(256);
let vals = new Float64Array(256);

function ensureScratch(n: number): void {
  if (offs.length >= n) return;
  let size = offs.length;
  while (size < n) size *= 2;
  offs = new Float64Array(size);
  vals = new Float64Array(size);
}

/** the series' readings in an open slice into offs/vals; answers how many */
function headSeries(state: ShardState, sliceNo: number, series: number): number {
  const n = state.head.countOf(sliceNo, series);
  if (n === 0) return 0;
  ensureScratch(n);
  return state.head.seriesReadings(sliceNo, series, offs, vals);
}

// ---- spans and slices ---------------------------------------------------------------------

/** The whole windows of resolution res overlapping [from, to): [from, to) here are window bounds. */
interface Span {
  from: number;
  to: number;
  res: number;
}

function spanOf(from: number, to: number, res: number): Span {
  return { from: Math.floor(from / res) * res, to: Math.ceil(to / res) * res, res };
}

/**
 * Starts of the slices in [from, to) that may be sealed, ascending: slice-aligned, from the first
 * stored slice to the newest, not open in the head. A start may still have no block (a slice
 * without readings is never written): the caller's get answers undefined.
 */
function sealedStarts(state: ShardState, from: number, to: number): number[] {
  const sliceMs = state.sliceMs;
  const newest = state.blocks.newestStart(state.shard, sliceMs);
  if (newest === null) return [];
  let a = Math.max(0, Math.floor(from / sliceMs) * sliceMs);
  const b = Math.min(to, newest + sliceMs);
  if (!(a < b)) return [];
  if ((b - a) / sliceMs > SCAN_SLICES_DIRECT) {
    const first = firstStoredStart(state, a, b);
    if (first === null) return [];
    a = first;
  }
  const out: number[] = [];
  for (let s = a; s < b; s += sliceMs) if (!state.head.isOpen(s / sliceMs)) out.push(s);
  return out;
}

/** the start of the first stored slice in [from, to) (blocks or corrections), or null: one key read */
function firstStoredStart(state: ShardState, from: number, to: number): number | null {
  return state.blocks.firstStart(state.shard, state.sliceMs, from, to);
}

/** open slice numbers overlapping [from, to), ascending */
function openSlicesIn(state: ShardState, from: number, to: number): number[] {
  const sliceMs = state.sliceMs;
  return state.head.openSlices().filter((no) => no * sliceMs < to && (no + 1) * sliceMs > from);
}

/** one sealed block of a slice (a chunk of series), or null when the slice has none there */
function chunkReader(state: ShardState, start: number, chunk: number): BlockReader | null {
  const bytes = state.blocks.block(state.shard, state.sliceMs, start, chunk);
  return bytes === undefined ? null : new BlockReader(bytes);
}

/** the delta blocks of a sealed slice (its corrections: readings that came after it was sealed) */
function deltaReaders(state: ShardState, start: number): BlockReader[] {
  return state.blocks.deltas(state.shard, state.sliceMs, start).map((b) => new BlockReader(b));
}

/** a series' readings in one sealed slice, its chunk's and its corrections', into offs / vals; the count */
function sealedSeries(state: ShardState, start: number, series: number, chunk: number): number {
  // the deltas first (copies), then the chunk as a view, used up before any other read
  const deltas = deltaReaders(state, start);
  const view = state.blocks.blockView(state.shard, state.sliceMs, start, chunk);
  const r = view === undefined ? null : new BlockReader(view);
  let n = r === null ? 0 : r.seriesReadings(series);
  for (const d of deltas) n += d.seriesReadings(series);
  if (n === 0) return 0;
  ensureScratch(n);
  let k = r === null ? 0 : r.readSeries(series, offs, vals);
  for (const d of deltas) {
    const m = d.seriesReadings(series);
    if (m === 0) continue;
    k += d.readSeries(series, offs.subarray(k), vals.subarray(k));
  }
  return k;
}

/** The summaries a query reads, each fetched and decoded once (by slice start). */
class Summaries {
  private readonly cache = new Map<number, Map<number, MetricSummary> | null>();

  constructor(private readonly state: ShardState) {}

  /** the metric's summary of the sealed slice at start, or null (no slice, or no reading of it) */
  metric(start: number, metric: number): MetricSummary | null {
    let byMetric = this.cache.get(start);
    if (byMetric === undefined) {
      byMetric = this.load(start);
      this.cache.set(start, byMetric);
    }
    return byMetric?.get(metric) ?? null;
  }

  private load(start: number): Map<number, MetricSummary> | null {
    const { state } = this;
    // the base summary from the shard's cache (the sealer puts what it writes), else decoded once
    let s: SliceSummary | null = state.summaries.get(start) ?? null;
    if (s === null) {
      const bytes = state.blocks.block(state.shard, state.sliceMs, start, SUMMARY_CHUNK);
      if (bytes !== undefined) {
        s = decodeSliceSummary(bytes);
        if (s.sliceStart !== start || s.sliceMs !== state.sliceMs || s.paneMs !== state.paneMs) {
          throw new Error(`BUG: the summary of slice ${start} of shard ${state.shard} is of slice ${s.sliceStart} (${s.sliceMs} / ${s.paneMs} ms), ` +
            `the shard has ${state.sliceMs} / ${state.paneMs} ms slices / panes`);
        }
        state.summaries.put(start, s);
      }
    }
    const deltas = deltaReaders(state, start);
    if (s === null && deltas.length === 0) return null;
    if (deltas.length > 0) {
      // corrections: the slice's summary merged with its delta blocks' footers
      const merged = new SliceSummaryBuilder(start, state.sliceMs, state.paneMs, state.histogram.divisions);
      if (s !== null) merged.addSummary(s);
      for (const d of deltas) merged.add(d);
      s = merged.build();
    }
    if (s === null) return null;
    const out = new Map<number, MetricSummary>();
    for (const m of s.metrics) out.set(m.metric, m);
    return out;
  }
}

/** the k-th smallest of a[0, n) (0-based), reordering a: quickselect, O(n) expected */
function selectKth(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    // median of three as the pivot
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float64Array, i: number, j: number): void {
  const x = a[i]!;
  a[i] = a[j]!;
  a[j] = x;
}

// ---- windows ------------------------------------------------------------------------------

/** One window being built: exact fields in `agg`, raw values in `digest`, fleet devices. */
class Acc {
  readonly agg: WindowAggregateWire;
  readonly digest: RawDigest | null;
  /** summary pieces merged (fleet, sealed or open slices): their union of devices in `bits` */
  pieces = 0;
  /** the single piece's device count (pieces === 1) */
  pieceDevices = 0;
  bits: Uint8Array = NO_BITS;
  bitsOwned = false;

  constructor(start: number, end: number, divisions: number, digestBuffer: number) {
    this.agg = emptyAggregate(start, end, divisions);
    this.digest = digestBuffer > 0 ? new RawDigest(digestBuffer) : null;
  }

  /** a summary window (a slice or a pane, sealed or from the head's summaries) with its devices */
  addPiece(piece: WindowAggregateWire, bits: Uint8Array): void {
    mergeAggregate(this.agg, piece);
    if (this.pieces === 0) {
      this.bits = bits;
      this.pieceDevices = piece.devices ?? countBits(bits);
    } else {
      if (!this.bitsOwned) {
        this.bits = orInto(new Uint8Array(Math.max(this.bits.length, bits.length)), this.bits);
        this.bitsOwned = true;
      }
      this.bits = orInto(this.bits, bits);
    }
    this.pieces++;
  }

  devices(): number {
    return this.pieces === 0 ? 0 : this.pieces === 1 ? this.pieceDevices : countBits(this.bits);
  }
}

const NO_BITS = new Uint8Array(0);

/** adds one raw reading (event time ts) to a window */
function addReading(acc: Acc, ts: number, v: number, hMin: number, hMax: number, divisions: number): void {
  const a = acc.agg;
  if (a.count === 0) {
    a.min = v;
    a.max = v;
    a.last = v;
    a.lastTs = ts;
  } else {
    if (v < a.min) a.min = v;
    if (v > a.max) a.max = v;
    if (ts > a.lastTs || (ts === a.lastTs && v > a.last)) {
      a.last = v;
      a.lastTs = ts;
    }
  }
  a.count++;
  a.sum += v;
  const b = bucketOf(v, hMin, hMax, divisions);
  if (b < divisions) a.histogram[b]!++;
  else if (b === divisions) a.under++;
  else a.over++;
  if (acc.digest !== null) acc.digest.add(v);
}

/**
 * The windows of a span, built slice by slice. beginSlice(start) maps each pane of the slice to
 * its window (or to none, outside the span); add(pane, ts, v) then costs no division by res.
 */
class Windows {
  readonly byStart = new Map<number, Acc>();
  private readonly paneMs: number;
  private readonly panes: number;
  private readonly divisions: number;
  private readonly hMin: number;
  private readonly hMax: number;
  /** per pane of the current slice: its window's start (NaN: outside the span), ordinal, window */
  readonly paneWin: Float64Array;
  readonly paneOrd: Int32Array;
  private readonly paneAcc: (Acc | null)[];
  /** the current slice's windows by ordinal (starts) */
  readonly sliceWins: number[] = [];
  sliceStart = NaN;

  constructor(private readonly state: ShardState, readonly span: Span, private readonly digestBuffer: number) {
    this.paneMs = state.paneMs;
    this.panes = state.sliceMs / state.paneMs;
    const h = state.histogram;
    this.divisions = h.divisions;
    this.hMin = h.min;
    this.hMax = h.max;
    this.paneWin = new Float64Array(this.panes);
    this.paneOrd = new Int32Array(this.panes);
    this.paneAcc = new Array<Acc | null>(this.panes).fill(null);
  }

  acc(start: number): Acc {
    let w = this.byStart.get(start);
    if (w === undefined) {
      w = new Acc(start, start + this.span.res, this.divisions, this.digestBuffer);
      this.byStart.set(start, w);
    }
    return w;
  }

  beginSlice(start: number): void {
    this.sliceStart = start;
    const { res, from, to } = this.span;
    this.sliceWins.length = 0;
    for (let p = 0; p < this.panes; p++) {
      const ps = start + p * this.paneMs;
      this.paneAcc[p] = null;
      if (ps < from || ps >= to) {
        this.paneWin[p] = NaN;
        this.paneOrd[p] = -1;
        continue;
      }
      const ws = Math.floor(ps / res) * res;
      if (this.sliceWins.length === 0 || this.sliceWins[this.sliceWins.length - 1] !== ws) this.sliceWins.push(ws);
      this.paneWin[p] = ws;
      this.paneOrd[p] = this.sliceWins.length - 1;
    }
  }

  /** the pane of an offset in the current slice, -1 when outside the span */
  paneOf(offset: number): number {
    const p = Math.floor(offset / this.paneMs);
    return this.paneOrd[p]! < 0 ? -1 : p;
  }

  add(pane: number, offset: number, v: number): void {
    let acc = this.paneAcc[pane]!;
    if (acc === null) acc = this.paneAcc[pane] = this.acc(this.paneWin[pane]!);
    addReading(acc, this.sliceStart + offset, v, this.hMin, this.hMax, this.divisions);
  }

  /** one series' readings of the slice started with beginSlice (offsets from its start) */
  addSeries(n: number, o: Float64Array, v: Float64Array): void {
    for (let k = 0; k < n; k++) {
      const p = this.paneOf(o[k]!);
      if (p >= 0) this.add(p, o[k]!, v[k]!);
    }
  }

  /** the windows with data and not expired (retention), by start, finished (digests in, devices set when fleet) */
  finish(fleet: boolean): WindowAggregateWire[] {
    const out: WindowAggregateWire[] = [];
    for (const w of this.byStart.values()) {
      if (w.agg.count === 0 || this.state.isExpired(this.span.res, w.agg.start)) continue;
      w.digest?.finish(w.agg);
      if (fleet) w.agg.devices = w.devices();
      out.push(w.agg);
    }
    return out.sort((a, b) => a.start - b.start);
  }

  /**
   * Merges the metric's summary windows of a slice (begun with beginSlice; sealed, or an open
   * slice's head summary) into the windows: a window that holds the whole slice takes the slice's
   * window, else its panes'.
   */
  addSummary(m: MetricSummary): void {
    const panes = this.panes;
    for (let p = 0; p < panes;) {
      if (this.paneOrd[p]! < 0) {
        p++;
        continue;
      }
      const ws = this.paneWin[p]!;
      let q = p + 1;
      while (q < panes && this.paneWin[q] === ws) q++;
      const acc = this.acc(ws);
      if (p === 0 && q === panes) acc.addPiece(m.slice, m.sliceBits);
      else for (let k = p; k < q; k++) if (m.panes[k]!.count > 0) acc.addPiece(m.panes[k]!, m.paneBits[k]!);
      p = q;
    }
  }

  /** true when every pane of the current slice is in the span */
  sliceWhole(): boolean {
    return this.paneOrd[0]! >= 0 && this.paneOrd[this.panes - 1]! >= 0;
  }
}

// ---- open slices: the readings of a metric ------------------------------------------------

/**
 * The readings of one metric's series in one open slice, in batches (series, offsets, values;
 * arrival order within a series). Two ways, the cheaper one chosen per slice: walk each of the
 * metric's series' chains (few of the slice's series), or read the slice's columns and keep the
 * metric's rows (most of them).
 */
class HeadScan {
  series = new Uint32Array(BATCH_ROWS);
  offsets = new Float64Array(BATCH_ROWS);
  values = new Float64Array(BATCH_ROWS);
  private readonly rowSeries = new Uint32Array(BATCH_ROWS);
  private readonly rowOffsets = new Uint32Array(BATCH_ROWS);
  private readonly rowValues = new Float64Array(BATCH_ROWS);
  private state!: ShardState;
  private sliceNo = 0;
  private metric = 0;
  private list: readonly number[] = [];
  private columns = false;
  /** next row (columns) or next index in list (chains) */
  private at = 0;

  /** starts a scan; `columns` forces a way (tests), else the cheaper one */
  begin(state: ShardState, sliceNo: number, metric: number, columns?: boolean): void {
    this.state = state;
    this.sliceNo = sliceNo;
    this.metric = metric;
    this.list = state.series.seriesOfMetric(metric);
    this.columns = columns ?? this.list.length >= SCAN_COLUMNS_FRACTION * state.head.seriesCount(sliceNo);
    this.at = 0;
  }

  /** the next batch's length, 0 at the end */
  next(): number {
    return this.columns ? this.nextRows() : this.nextChains();
  }

  private nextRows(): number {
    const { state, metric } = this;
    const table = state.series;
    for (;;) {
      const k = state.head.readRows(this.sliceNo, this.at, this.rowSeries, this.rowOffsets, this.rowValues);
      if (k === 0) return 0;
      this.at += k;
      let n = 0;
      for (let i = 0; i < k; i++) {
        const s = this.rowSeries[i]!;
        if (table.seriesMetric(s) !== metric) continue;
        this.series[n] = s;
        this.offsets[n] = this.rowOffsets[i]!;
        this.values[n] = this.rowValues[i]!;
        n++;
      }
      if (n > 0) return n;
    }
  }

  private nextChains(): number {
    const head = this.state.head;
    const list = this.list;
    // a series' readings go through offs / vals (headSeries): no subarray view per series
    let n = 0;
    while (this.at < list.length) {
      const s = list[this.at]!;
      const c = head.countOf(this.sliceNo, s);
      if (c > 0) {
        if (n + c > this.values.length) {
          if (n > 0) break; // this batch is full: the series starts the next one
          this.grow(c);
        }
        headSeries(this.state, this.sliceNo, s);
        for (let k = 0; k < c; k++) {
          this.series[n] = s;
          this.offsets[n] = offs[k]!;
          this.values[n] = vals[k]!;
          n++;
        }
      }
      this.at++;
    }
    return n;
  }

  private grow(n: number): void {
    let size = this.values.length;
    while (size < n) size *= 2;
    this.series = new Uint32Array(size);
    this.offsets = new Float64Array(size);
    this.values = new Float64Array(size);
  }
}

const scan = new HeadScan();

/**
 * For tests and measurements only: force the open slices' scan to columns (true) or chains
 * (false); undefined (the default): the cheaper per slice. The head's summaries are dropped when
 * it changes, so each way builds them from nothing.
 */
let forcedScan: boolean | undefined;
let forcedGeneration = 0;
export function forceHeadScanForTests(columns: boolean | undefined): void {
  forcedScan = columns;
  forcedGeneration++;
}

// ---- the head's summaries -------------------------------------------------------------------

/** Each shard state's cache of its open slices' summaries (workers/head-summaries.ts), made on first use. */
const headCaches = new WeakMap<HeadSlices, { cache: HeadSummaries; generation: number }>();

/** the state's HeadSummaries, synced with its head (sealed or reopened slices' entries dropped) */
export function headSummariesOf(state: ShardState): HeadSummaries {
  const cache = cacheOf(state);
  cache.sync();
  return cache;
}

function cacheOf(state: ShardState): HeadSummaries {
  let c = headCaches.get(state.head);
  if (c === undefined) {
    const cache = new HeadSummaries(state.head, state.series, { sliceMs: state.sliceMs, paneMs: state.paneMs, histogram: state.histogram });
    c = { cache, generation: forcedGeneration };
    headCaches.set(state.head, c);
  }
  if (c.generation !== forcedGeneration) {
    c.cache.clear();
    c.generation = forcedGeneration;
  }
  return c.cache;
}

/**
 * Keeps the head summaries current that queries asked for recently, or every metric's while
 * the shard holds few (HeadSummaries.warm), by at most budgetRows rows; the shard worker calls it
 * between ring slices.
 */
export function warmHeadSummaries(state: ShardState, now: number, budgetRows: number, unaskedBudgetRows: number): number {
  if (state.series.metricCount === 0) return 0;
  return cacheOf(state).warm(now, budgetRows, unaskedBudgetRows);
}

/**
 * One step of bringing the metric's head summaries current before a query that reads them
 * (HeadSummaries.warmStep): true when they are (or the metric is unknown).
 */
export function warmHeadStep(state: ShardState, metricName: string, budgetRows: number): boolean {
  const metric = state.series.metricIdOf(metricName);
  if (metric < 0) return true;
  return headSummariesOf(state).warmStep(metric, budgetRows);
}

/** the metric's summary of an open slice (extended to its rows now), null without a reading of it */
function headSummary(heads: HeadSummaries, sliceNo: number, metric: number): HeadSummary | null {
  return heads.get(sliceNo, metric, forcedScan);
}

// ---- device queries -------------------------------------------------------------------------

export function deviceSeries(state: ShardState, task: DeviceSeriesTask): DeviceSeriesResult {
  checkSeriesTask(state, task.from, task.to, task.resolutionMs);
  const table = state.series;
  const device = table.deviceIdOf(task.deviceId);
  if (device < 0) return { found: false, windows: [] };
  const series = table.findSeries(device, table.metricIdOf(task.metric));
  if (series < 0) return { found: true, windows: [] };
  const span = spanOf(task.from, task.to, task.resolutionMs);
  const wins = new Windows(state, span, centroidsMax);
  const chunk = state.sealer.chunkOf(series);
  for (const start of sealedStarts(state, span.from, span.to)) {
    const n = sealedSeries(state, start, series, chunk);
    if (n === 0) continue;
    wins.beginSlice(start);
    wins.addSeries(n, offs, vals);
  }
  for (const no of openSlicesIn(state, span.from, span.to)) {
    const n = headSeries(state, no, series);
    if (n === 0) continue;
    wins.beginSlice(no * state.sliceMs);
    wins.addSeries(n, offs, vals);
  }
  return { found: true, windows: wins.finish(false) };
}

// ---- fleet queries --------------------------------------------------------------------------

export function fleetSeries(state: ShardState, task: FleetSeriesTask): FleetSeriesResult {
  checkSeriesTask(state, task.from, task.to, task.resolutionMs);
  const metric = state.series.metricIdOf(task.metric);
  if (metric < 0) return { windows: [], devices: 0 };
  const span = spanOf(task.from, task.to, task.resolutionMs);
  const wins = new Windows(state, span, 0); // summary pieces only: their digests
  const summaries = new Summaries(state);
  // the range's devices: the summaries' bitmaps ORed (whole slices, or the panes in the span)
  let rangeBits: Uint8Array = new Uint8Array(0);
  const add = (start: number, m: MetricSummary): void => {
    wins.beginSlice(start);
    wins.addSummary(m);
    if (wins.sliceWhole()) rangeBits = orInto(rangeBits, m.sliceBits);
    else for (let p = 0; p < m.panes.length; p++) if (wins.paneOrd[p]! >= 0 && m.panes[p]!.count > 0) rangeBits = orInto(rangeBits, m.paneBits[p]!);
  };
  for (const start of sealedStarts(state, span.from, span.to)) {
    const m = summaries.metric(start, metric);
    if (m !== null) add(start, m);
  }
  const heads = headSummariesOf(state);
  for (const no of openSlicesIn(state, span.from, span.to)) {
    const h = headSummary(heads, no, metric);
    if (h !== null) add(no * state.sliceMs, h.summary());
  }
  return { windows: wins.finish(true), devices: countBits(rangeBits) };
}

/**
 * Distinct devices with data in any of task.metrics in the windows of resolutionMs overlapping
 * [from, to) (as fleetSeries): the summaries' device bitmaps (sealed slices' and the head's), of
 * the whole slice or of the panes in the span, ORed. Exact: a device counts once however many
 * metrics or windows it has data in.
 */
export function distinctDevices(state: ShardState, task: DistinctDevicesTask): DistinctDevicesResult {
  checkSeriesTask(state, task.from, task.to, task.resolutionMs);
  const metrics: number[] = [];
  for (const name of task.metrics) {
    const id = state.series.metricIdOf(name);
    if (id >= 0 && !metrics.includes(id)) metrics.push(id);
  }
  if (metrics.length === 0) return { devices: 0 };
  const span = spanOf(task.from, task.to, task.resolutionMs);
  const wins = new Windows(state, span, 0); // its pane map only
  let bits: Uint8Array = new Uint8Array(0);
  const add = (m: MetricSummary, whole: boolean): void => {
    if (whole) bits = orInto(bits, m.sliceBits);
    else for (let p = 0; p < m.panes.length; p++) if (wins.paneOrd[p]! >= 0 && m.panes[p]!.count > 0) bits = orInto(bits, m.paneBits[p]!);
  };
  const summaries = new Summaries(state);
  for (const start of sealedStarts(state, span.from, span.to)) {
    wins.beginSlice(start);
    const whole = wins.sliceWhole();
    for (const metric of metrics) {
      const m = summaries.metric(start, metric);
      if (m !== null) add(m, whole);
    }
  }
  const heads = headSummariesOf(state);
  for (const no of openSlicesIn(state, span.from, span.to)) {
    wins.beginSlice(no * state.sliceMs);
    const whole = wins.sliceWhole();
    for (const metric of metrics) {
      const h = headSummary(heads, no, metric);
      if (h !== null) add(h.summary(), whole);
    }
  }
  return { devices: countBits(bits) };
}

/**
 * The metric over the shard's devices in whole seconds [ceil(from / 1000), ceil(to / 1000)):
 * count, sum, min, max. Sealed slices (and panes) wholly inside from their summaries; the slices
 * cut by an edge from their raw readings (the chunks holding the metric's series); open slices
 * from their head summaries' cells.
 */
export function sensorRange(state: ShardState, task: SensorRangeTask): SensorRangeResult {
  checkRange(task.from, task.to);
  const metric = state.series.metricIdOf(task.metric);
  const out: SensorRangeResult = { count: 0, sum: 0, min: 0, max: 0 };
  if (metric < 0) return out;
  const a = Math.ceil(task.from / 1000) * 1000;
  const b = Math.ceil(task.to / 1000) * 1000;
  if (!(a < b)) return out;
  const sliceMs = state.sliceMs;
  const summaries = new Summaries(state);
  for (const start of sealedStarts(state, a, b)) {
    const m = summaries.metric(start, metric);
    if (m === null) continue;
    if (start >= a && start + sliceMs <= b) {
      mergeRange(out, m.slice.count, m.slice.sum, m.slice.min, m.slice.max);
      continue;
    }
    const paneMs = state.paneMs;
    let cut = false;
    for (let p = 0; p < m.panes.length; p++) {
      const ps = start + p * paneMs;
      if (ps + paneMs <= a || ps >= b) continue;
      const w = m.panes[p]!;
      if (ps >= a && ps + paneMs <= b) mergeRange(out, w.count, w.sum, w.min, w.max);
      else if (w.count > 0) cut = true;
    }
    if (cut) sealedEdge(state, start, metric, a, b, out);
  }
  // open: the head's summaries' cells (whole seconds are whole cells)
  const heads = headSummariesOf(state);
  for (const no of openSlicesIn(state, a, b)) {
    const h = headSummary(heads, no, metric);
    if (h === null) continue;
    const { cCount, cSum, cMin, cMax, cellMs, start } = h;
    const c1 = Math.min(cCount.length, (b - start) / cellMs);
    for (let c = Math.max(0, (a - start) / cellMs); c < c1; c++) mergeRange(out, cCount[c]!, cSum[c]!, cMin[c]!, cMax[c]!);
  }
  return out;
}

/** the readings of the sealed slice's panes cut by the range's edges (the others are in out already) */
function sealedEdge(state: ShardState, start: number, metric: number, a: number, b: number, out: SensorRangeResult): void {
  const paneMs = state.paneMs;
  forMetricInSealed(state, start, metric, null, (_series, count, o, v) => {
    for (let k = 0; k < count; k++) {
      const ts = start + o[k]!;
      if (ts < a || ts >= b) continue;
      const ps = start + Math.floor(o[k]! / paneMs) * paneMs;
      if (ps >= a && ps + paneMs <= b) continue; // a whole pane: counted from the summary
      mergeRange(out, 1, v[k]!, v[k]!, v[k]!);
    }
  });
}

function mergeRange(out: SensorRangeResult, count: number, sum: number, min: number, max: number): void {
  if (count === 0) return;
  if (out.count === 0) {
    out.min = min;
    out.max = max;
  } else {
    if (min < out.min) out.min = min;
    if (max > out.max) out.max = max;
  }
  out.count += count;
  out.sum += sum;
}

/**
 * Visits the metric's series (those listed in `only`, positions by series id, when given) that
 * have readings in a sealed slice, reading each chunk that holds one of them once: the chunk's
 * series one by one when the metric has few of them, else the whole chunk walked.
 */
function forMetricInSealed(state: ShardState, start: number, metric: number, only: Int32Array | null,
  visit: (series: number, count: number, offsets: Float64Array, values: Float64Array) => void): void {
  const list = state.series.seriesOfMetric(metric);
  const table = state.series;
  let i = 0;
  while (i < list.length) {
    const chunk = state.sealer.chunkOf(list[i]!);
    let j = i + 1;
    while (j < list.length && state.sealer.chunkOf(list[j]!) === chunk) j++;
    const r = chunkReader(state, start, chunk);
    if (r !== null) {
      if ((j - i) * 8 >= r.seriesCount) {
        r.forEachSeries((s, count, o, v) => {
          if (table.seriesMetric(s) === metric && (only === null || only[s]! >= 0)) visit(s, count, o, v);
        });
      } else {
        for (let k = i; k < j; k++) {
          const s = list[k]!;
          if (only !== null && only[s]! < 0) continue;
          const n = r.seriesReadings(s);
          if (n === 0) continue;
          ensureScratch(n);
          r.readSeries(s, offs, vals);
          visit(s, n, offs, vals);
        }
      }
    }
    i = j;
  }
  // the slice's corrections: a series may be visited again with them
  for (const d of deltaReaders(state, start)) {
    d.forEachSeries((s, count, o, v) => {
      if (table.seriesMetric(s) === metric && (only === null || only[s]! >= 0)) visit(s, count, o, v);
    });
  }
}

/**
 * Where the metric's data ends on this shard (of one device when task.deviceId is set): the start
 * of the newest pane holding a reading. The newest open slice with one first; else the sealed
 * slices from the newest back, by their summaries (the pane device bitmaps for one device).
 * Cost: the open slices' head summaries (extended by the readings since the last query), or the
 * device's chains; then one summary per sealed slice walked back, so a device silent for long
 * costs one summary per slice since.
 */
export function metricLatest(state: ShardState, task: MetricLatestTask): MetricLatestResult {
  const table = state.series;
  const metric = table.metricIdOf(task.metric);
  if (metric < 0) return { start: null };
  let device = -1;
  let series = -1;
  if (task.deviceId !== undefined) {
    device = table.deviceIdOf(task.deviceId);
    series = table.findSeries(device, metric);
    if (series < 0) return { start: null };
  } else if (table.seriesOfMetric(metric).length === 0) {
    return { start: null };
  }
  const { sliceMs, paneMs } = state;
  const open = state.head.openSlices();
  let heads: HeadSummaries | undefined;
  for (let i = open.length - 1; i >= 0; i--) {
    const no = open[i]!;
    if (series >= 0) {
      let newest = -1;
      const n = headSeries(state, no, series);
      for (let k = 0; k < n; k++) if (offs[k]! > newest) newest = offs[k]!;
      if (newest >= 0) return { start: no * sliceMs + Math.floor(newest / paneMs) * paneMs };
    } else {
      const p = headSummary(heads ??= headSummariesOf(state), no, metric)?.newestPane() ?? -1;
      if (p >= 0) return { start: no * sliceMs + p * paneMs };
    }
  }
  const newestStart = state.blocks.newestStart(state.shard, sliceMs);
  if (newestStart === null) return { start: null };
  const oldest = firstStoredStart(state, 0, newestStart + sliceMs);
  if (oldest === null) return { start: null };
  const summaries = new Summaries(state);
  for (let start = newestStart; start >= oldest; start -= sliceMs) {
    if (state.head.isOpen(start / sliceMs)) continue;
    const m = summaries.metric(start, metric);
    if (m === null || (device >= 0 && !hasBit(m.sliceBits, device))) continue;
    for (let p = m.panes.length - 1; p >= 0; p--) {
      if (device >= 0 ? hasBit(m.paneBits[p]!, device) : m.panes[p]!.count > 0) return { start: start + p * paneMs };
    }
    throw new Error(`BUG: the summary of slice ${start} of shard ${state.shard} holds metric ${metric} in no pane`);
  }
  return { start: null };
}

// ---- top ------------------------------------------------------------------------------------

const QUANTILE_OF_BY: Partial<Record<TopBy, number>> = { p50: 0.5, p90: 0.9, p99: 0.99 };

/**
 * Per device of the metric, the readings of the windows of resolutionMs (default paneMs)
 * overlapping [from, to) merged: the chunks holding the metric's series in each sealed slice of
 * the span (each read once), the open slices' readings.
 */
export function topDevices(state: ShardState, task: TopTask): TopResult {
  checkRange(task.from, task.to);
  const res = task.resolutionMs ?? state.paneMs;
  checkResolution(state, res);
  const table = state.series;
  const metric = table.metricIdOf(task.metric);
  if (metric < 0 || task.n < 1) return { rows: [] };
  const q = QUANTILE_OF_BY[task.by];
  const list = table.seriesOfMetric(metric);
  if (list.length === 0) return { rows: [] };
  const span = spanOf(task.from, task.to, res);
  const top = new TopAcc(list, table.seriesCount, q !== undefined);
  const wins = new Windows(state, span, 0); // its pane map only
  for (const start of sealedStarts(state, span.from, span.to)) {
    wins.beginSlice(start);
    const whole = wins.sliceWhole();
    forMetricInSealed(state, start, metric, top.pos, (s, count, o, v) => {
      const i = top.pos[s]!;
      if (whole) top.addRun(i, v, count);
      else for (let k = 0; k < count; k++) if (wins.paneOf(o[k]!) >= 0) top.add(i, v[k]!);
    });
  }
  for (const no of openSlicesIn(state, span.from, span.to)) {
    wins.beginSlice(no * state.sliceMs);
    const whole = wins.sliceWhole();
    scan.begin(state, no, metric, forcedScan);
    for (let n = scan.next(); n > 0; n = scan.next()) {
      for (let k = 0; k < n; k++) if (whole || wins.paneOf(scan.offsets[k]!) >= 0) top.add(top.pos[scan.series[k]!]!, scan.values[k]!);
    }
  }
  // values first; rows only for the devices at or above the n-th value (ties included, then cut)
  const values = new Float64Array(list.length);
  const present: number[] = [];
  for (let i = 0; i < list.length; i++) {
    const count = top.count[i]!;
    if (count === 0) continue;
    values[present.length] = q !== undefined ? top.quantile(i, q) : exactValue(task.by, count, top.sum[i]!, top.min[i]!, top.max[i]!, top.sum[i]! / count);
    present.push(i);
  }
  const m = present.length;
  const nth = m <= task.n ? -Infinity : selectKth(values.slice(0, m), m, m - task.n);
  const rows: TopRow[] = [];
  for (let j = 0; j < m; j++) {
    if (values[j]! < nth) continue;
    const i = present[j]!;
    const count = top.count[i]!;
    const sum = top.sum[i]!;
    rows.push({ deviceId: table.deviceName(table.seriesDevice(list[i]!))!, value: values[j]!, count, sum, min: top.min[i]!, max: top.max[i]!, mean: sum / count });
  }
  rows.sort(compareTopRows);
  if (rows.length > task.n) rows.length = task.n;
  return { rows };
}

/** raw values a device keeps for its quantile before they go to a digest (as a raw window digest) */
const TOP_RAW_MAX = CENTROIDS_MAX_DEFAULT;
/** values per segment of TopAcc's slab (a power of two) */
const SEGMENT = 16;

/**
 * Per device (position in the metric's series list): exact fields in typed arrays and, when a
 * quantile is asked, the raw values in one slab of SEGMENT-value segments chained per device (no
 * typed array per device: allocating 2 x 10k small arrays and growing them was half of a top by
 * p99 over an hour at 10k devices). Up to TOP_RAW_MAX values a device's quantile is what a digest
 * of weight-1 centroids answers, i.e. the floor(q n)-th smallest value, found by selection (no
 * sort); past it the values go to a MergingDigest (the compressed digest's quantile).
 */
class TopAcc {
  /** position of a series id in the list, -1 for other series */
  readonly pos: Int32Array;
  readonly count: Float64Array;
  readonly sum: Float64Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  private readonly withDigest: boolean;
  private values = new Float64Array(0);
  private next = new Int32Array(0);
  private segments = 0;
  private readonly first: Int32Array;
  private readonly last: Int32Array;
  /** raw values held (not yet in a digest) */
  private readonly raw: Int32Array;
  private readonly digests = new Map<number, MergingDigest>();

  constructor(list: readonly number[], seriesCount: number, withDigest: boolean) {
    const n = list.length;
    this.pos = new Int32Array(seriesCount).fill(-1);
    for (let i = 0; i < n; i++) this.pos[list[i]!] = i;
    this.count = new Float64Array(n);
    this.sum = new Float64Array(n);
    this.min = new Float64Array(n);
    this.max = new Float64Array(n);
    this.withDigest = withDigest;
    this.first = new Int32Array(withDigest ? n : 0).fill(-1);
    this.last = new Int32Array(withDigest ? n : 0);
    this.raw = new Int32Array(withDigest ? n : 0);
  }

  add(i: number, v: number): void {
    if (this.count[i] === 0) {
      this.min[i] = v;
      this.max[i] = v;
    } else {
      if (v < this.min[i]!) this.min[i] = v;
      if (v > this.max[i]!) this.max[i] = v;
    }
    this.count[i]!++;
    this.sum[i]! += v;
    if (this.withDigest) this.addRaw(i, v);
  }

  /** adds v[0, n) to device i (the whole run: a series' readings in a slice wholly in the span) */
  addRun(i: number, v: Float64Array, n: number): void {
    let c = this.count[i]!;
    let min = c === 0 ? v[0]! : this.min[i]!;
    let max = c === 0 ? v[0]! : this.max[i]!;
    let sum = this.sum[i]!;
    for (let k = 0; k < n; k++) {
      const x = v[k]!;
      if (x < min) min = x;
      if (x > max) max = x;
      sum += x;
    }
    c += n;
    this.count[i] = c;
    this.sum[i] = sum;
    this.min[i] = min;
    this.max[i] = max;
    if (this.withDigest) for (let k = 0; k < n; k++) this.addRaw(i, v[k]!);
  }

  private addRaw(i: number, v: number): void {
    let r = this.raw[i]!;
    if (r === TOP_RAW_MAX) {
      this.spill(i);
      r = 0;
    }
    let seg: number;
    const at = r & (SEGMENT - 1);
    if (r === 0) {
      seg = this.first[i]! >= 0 ? this.first[i]! : (this.first[i] = this.alloc());
    } else if (at === 0) {
      const cur = this.last[i]!;
      seg = this.next[cur]! >= 0 ? this.next[cur]! : (this.next[cur] = this.alloc());
    } else {
      seg = this.last[i]!;
    }
    this.last[i] = seg;
    this.values[seg * SEGMENT + at] = v;
    this.raw[i] = r + 1;
  }

  private alloc(): number {
    if (this.segments * SEGMENT === this.values.length) {
      const cap = Math.max(4096, this.next.length * 2);
      const values = new Float64Array(cap * SEGMENT);
      values.set(this.values);
      const next = new Int32Array(cap);
      next.set(this.next);
      this.values = values;
      this.next = next;
    }
    this.next[this.segments] = -1;
    return this.segments++;
  }

  /** the device's raw values into offs / vals scratch `vals`; answers how many */
  private gather(i: number): number {
    const r = this.raw[i]!;
    ensureScratch(r);
    let seg = this.first[i]!;
    for (let k = 0; k < r; k += SEGMENT) {
      vals.set(this.values.subarray(seg * SEGMENT, seg * SEGMENT + Math.min(SEGMENT, r - k)), k);
      seg = this.next[seg]!;
    }
    return r;
  }

  private spill(i: number): void {
    let d = this.digests.get(i);
    if (d === undefined) this.digests.set(i, d = new MergingDigest());
    const r = this.gather(i);
    for (let k = 0; k < r; k++) d.push(vals[k]!);
    this.raw[i] = 0;
  }

  /** the q-quantile (0 < q < 1) of device i's values (see the class comment) */
  quantile(i: number, q: number): number {
    const d = this.digests.get(i);
    if (d !== undefined) {
      this.spill(i);
      return d.quantile(q);
    }
    const n = this.gather(i);
    return selectKth(vals, n, Math.min(n - 1, Math.floor(n * q)));
  }
}

function exactValue(by: TopBy, count: number, sum: number, min: number, max: number, mean: number): number {
  switch (by) {
    case 'mean': return mean;
    case 'max': return max;
    case 'min': return min;
    case 'count': return count;
    case 'sum': return sum;
    default: throw new RangeError(`top: unknown by ${String(by)}`);
  }
}

function compareTopRows(a: TopRow, b: TopRow): number {
  if (a.value !== b.value) return b.value - a.value;
  return a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0;
}

// ---- catalogue and stats ----------------------------------------------------------------------

export function listDevices(state: ShardState, task: DevicesTask): DevicesResult {
  const table = state.series;
  const ids = table.sortedDeviceIds();
  const prefix = task.prefix;
  const devices: DeviceEntry[] = [];
  // binary search for the first name >= prefix; names with the prefix follow contiguously
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (table.deviceName(ids[mid]!)! < prefix) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < ids.length && devices.length < task.limit; i++) {
    const name = table.deviceName(ids[i]!)!;
    if (!name.startsWith(prefix)) break;
    const metrics = table.seriesOfDevice(ids[i]!).map((s) => table.metricName(table.seriesMetric(s))!);
    metrics.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    devices.push({ deviceId: name, metrics });
  }
  return { devices };
}

/**
 * The shard's figures. `panes` is the readings held by the head (what RING_STAT_PANES publishes),
 * `paneStoreBytes` the head's columns and indexes plus the series table's typed arrays;
 * rollupWriteErrors is 0: a failed seal fails the shard instead of being counted.
 */
export function shardStats(state: ShardState, recordsApplied = 0, lateEvents = 0): ShardStats {
  const clock = state.clock;
  const none = clock.maxTs === -Infinity;
  const c = state.sealer.counters;
  const mem = process.memoryUsage();
  return {
    shard: state.shard,
    devices: state.series.deviceCount,
    series: state.series.seriesCount,
    panes: state.head.readingsHeld,
    eventsApplied: state.eventsApplied,
    recordsApplied,
    watermark: none ? null : clock.watermark,
    maxEventTime: none ? null : clock.maxTs,
    lateEvents,
    rollupWriteErrors: 0,
    paneStoreBytes: state.head.bytes() + state.series.typedArrayBytes(),
    heapUsedBytes: mem.heapUsed,
    memory: { heapTotalBytes: mem.heapTotal, heapUsedBytes: mem.heapUsed, arrayBuffersBytes: mem.arrayBuffers },
    seal: {
      slices: c.slices, queued: state.sealer.sealing, stepMaxMs: c.stepMaxMs, firstStepMaxMs: c.firstStepMaxMs, lastSealMs: c.lastSealMs,
      lastIdsMs: c.lastIdsMs, lastChunkMaxMs: c.lastChunkMaxMs, lastSummaryMs: c.lastSummaryMs,
    },
    summaryCache: { entries: state.summaries.entries, bytes: state.summaries.bytes, ...state.summaries.counters },
  };
}

// ---- checks -----------------------------------------------------------------------------------

function checkRange(from: number, to: number): void {
  if (!(Number.isFinite(from) && Number.isFinite(to))) throw new RangeError(`query range must be finite: [${from}, ${to})`);
}

function checkResolution(state: ShardState, resolutionMs: number): void {
  if (!(Number.isInteger(resolutionMs) && resolutionMs >= state.paneMs && resolutionMs % state.paneMs === 0)) {
    throw new RangeError(`resolutionMs ${resolutionMs} must be a positive multiple of paneMs ${state.paneMs}`);
  }
}

function checkSeriesTask(state: ShardState, from: number, to: number, resolutionMs: number): void {
  checkRange(from, to);
  checkResolution(state, resolutionMs);
}
