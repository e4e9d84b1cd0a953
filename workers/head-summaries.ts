/**
 * HeadSummaries: one shard's cache of the open slices' fleet summaries, so that a fleet query
 * over the head costs the readings appended since the previous query, not every reading held.
 *
 * An entry is keyed by (slice number, epoch, metric) and summarises rows [0, rows) of the open
 * slice (workers/head-slices.ts: a slice's readings are rows [0, n) that only grow until it is
 * sealed; its epoch changes when a slice number is opened again). It holds what a sealed slice's
 * MetricSummary holds (storage/slice-summary.ts), built from raw readings instead of footers: per
 * pane the fleet aggregate (count, sum, min, max, last/lastTs, histogram, under/over), a
 * compressed digest and the device bitmap with its exact count; the slice's bitmap and count;
 * plus, for sensorRange, count/sum/min/max per cell of gcd(paneMs, 1000) ms (whole seconds are
 * whole cells). summary() shows it as a MetricSummary (the slice's window merged from the panes
 * as the block encoder does: pane digests concatenated, one compression), so queries merge open
 * and sealed slices by the same code (block-queries' Windows.addSummary).
 *
 * Contract:
 * - Runs in the shard worker that owns the state, called by the queries only (never on the ingest
 *   path: append() knows nothing of it), synchronously. Each get() first syncs with the head's
 *   marks(): the entries of slices sealed or opened again since are dropped, so an entry only
 *   ever grows with rows of its own epoch.
 * - get(sliceNo, metric) first extends the entry with rows [rows, n) (n: the slice's rows now):
 *   read in batches (HeadSlices.readRows), the metric's rows kept; or, when the metric has few of
 *   the slice's series, it (re)builds the entry from the metric's series' chains (cheaper than
 *   the rows of every metric). Results equal those from all the raw readings: count, min, max,
 *   last, histogram, under/over and devices exactly (a device has one series per metric, so a
 *   bitmap of devices per pane and per slice counts distinct devices; a bit is set once); sum up
 *   to rounding order; digests within the t-digest's error (new values sorted, compressed, then
 *   merged with the pane's digest: the sealed footer compresses each pane once).
 * - The MetricSummary handed out and its bitmaps are the cache's: read-only for callers, valid
 *   until the next get() of the same entry (bitmaps are extended in place).
 * - Memory: per entry ~P (panes) x (the digest, <= DIGEST_COMPRESSION + 2 centroids, the
 *   histogram and a bitmap of the highest device id / 8 bytes), plus the cells. bytesMax bounds
 *   the total: past it, the least recently used entries are dropped (rebuilt when asked again).
 *   An entry leaves with its slice (sealed or reopened), seen at the next get().
 * - A slice whose rows went backwards under the same epoch is a bug of the head: throws.
 *
 * Cost (Node 20, a shared 2-core dev container; 10k and 100k series of one metric, one reading
 * per 10 s at one decimal, 6 open 1-min slices): a first build ~52 ns per reading of the metric
 * (a CPU profile: absorb()'s exact fields, bitmaps and cells ~40%, the pane digests' radix sort
 * ~30% and folding ~25%; folding collapses runs of equal values first: 55 -> 52 ns); an extension
 * the same per new reading plus ~3 ns per new row of other metrics; summary() of a changed entry
 * rebuilds its changed panes' wire objects and the slice's window (~200 centroids per pane: tens
 * of microseconds). Held: ~55 KiB per entry at 10k devices, ~170 KiB at 100k (the bitmaps).
 */

import {
  compressRange, emptyAggregate, histogramBucket, mergeExactFields, type WindowAggregateWire,
} from '../protocol';
import type { HistogramSpec, MetricSummary } from '../storage';
import type { HeadSlices, SliceMark } from './head-slices';
import { sortValuesRadix } from '../protocol';
import type { SeriesTable } from './series-table';

// Bound once: a call through the CommonJS re-export of '../protocol' runs its getter each time.
const bucketOf = histogramBucket;
const compress = compressRange;
const mergeExact = mergeExactFields;

/**
 * How long after a query asked for a metric's summary the worker keeps it current between ring
 * slices (warm()): a dashboard that polls the fleet then pays for the readings of the last slice,
 * not for everything ingested since its previous poll (1M events/s x 2 s x ~52 ns: ~100 ms), nor
 * for a cold build (0.4 s at 100k devices, 1-1.8 s at 1M). 5 minutes: longer than a live
 * dashboard's refresh interval, up to a few minutes; the cost meanwhile is ~52 ns per reading of
 * the metric, at most 65,536 rows per ring slice.
 */
export const WARM_MS = 5 * 60_000;
/**
 * While a shard holds at most this many metrics, warm() keeps all of them current, asked or not:
 * the first fleet query then finds its summaries built (cold, it took 0.5-0.8 s at 100k devices
 * and 1.8-2.3 s at 1M). It costs ~52 ns per reading, and ~3 ns per row for each other metric
 * (each warms by reading every row): with more metrics, only those asked are kept warm.
 */
export const WARM_ALL_METRICS_MAX = 8;
/** the cache's bound by default: 64 MiB per shard (~380 entries of 100k devices, ~40 of 1M) */
export const HEAD_SUMMARY_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/**
 * An open slice is read by rows (every metric's) when the metric's series are at least this
 * fraction of the slice's series, else by the metric's series' chains.
 */
export const SCAN_COLUMNS_FRACTION = 0.5;
/** rows read per batch */
const BATCH_ROWS = 4096;
/** new values a pane buffers before they are sorted, compressed and merged into its digest */
const FOLD_VALUES = 16_384;
/**
 * An entry is rebuilt from its series' chains rather than extended by rows when it holds fewer
 * than (new rows) / this many readings: each row costs ~3 ns to read and skip, each reading of
 * the metric ~40 ns to add (a rare metric among busy ones).
 */
const CHAIN_REBUILD_RATIO = 16;

export interface HeadSummariesOptions {
  sliceMs: number;
  paneMs: number;
  histogram: HistogramSpec;
  /** bytes held at most (default HEAD_SUMMARY_BYTES_MAX_DEFAULT) */
  bytesMax?: number;
  /** warm() keeps every metric current while there are at most this many (default WARM_ALL_METRICS_MAX; 0: only those asked) */
  warmAllMetricsMax?: number;
}

/** What the cache did, for tests and measurements. */
export interface HeadSummaryCounters {
  /** rows read by extensions (every metric's) */
  rowsRead: number;
  /** readings added to entries (rows of the metric, or chains) */
  readingsAdded: number;
  /** entries built or rebuilt from their series' chains */
  chainBuilds: number;
  /** entries dropped: slice sealed or reopened */
  dropped: number;
  /** entries dropped to stay under bytesMax */
  evicted: number;
}

/** One open slice's summary of one metric (see the header). Fields are read by the queries. */
export class HeadSummary {
  /** rows [0, rows) of the slice are in */
  rows = 0;
  /** the metric's readings among them */
  readings = 0;
  lastUse = 0;
  /** bytes held, as last counted */
  bytes = 0;
  readonly start: number;
  readonly cellMs: number;
  // per pane
  readonly count: Float64Array;
  readonly sum: Float64Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly last: Float64Array;
  readonly lastTs: Float64Array;
  readonly under: Float64Array;
  readonly over: Float64Array;
  /** pane p's histogram at [p * divisions, (p + 1) * divisions) */
  readonly hist: Float64Array;
  readonly paneDevices: Int32Array;
  readonly paneBits: Uint8Array[];
  sliceBits: Uint8Array = new Uint8Array(0);
  sliceDevices = 0;
  /** pane p's compressed digest: dMeans[p] / dWeights[p] [0, dLen[p]) */
  readonly dMeans: Float64Array[];
  readonly dWeights: Float64Array[];
  readonly dLen: Int32Array;
  // per cell (sensorRange)
  readonly cCount: Float64Array;
  readonly cSum: Float64Array;
  readonly cMin: Float64Array;
  readonly cMax: Float64Array;
  /** panes changed since the view was built */
  readonly dirty: Uint8Array;
  private view: MetricSummary | null = null;

  constructor(readonly sliceNo: number, readonly epoch: number, readonly metric: number, sliceMs: number,
    private readonly paneMs: number, private readonly divisions: number) {
    const panes = sliceMs / paneMs;
    this.start = sliceNo * sliceMs;
    this.cellMs = gcd(paneMs, 1000);
    const cells = sliceMs / this.cellMs;
    this.count = new Float64Array(panes);
    this.sum = new Float64Array(panes);
    this.min = new Float64Array(panes);
    this.max = new Float64Array(panes);
    this.last = new Float64Array(panes);
    this.lastTs = new Float64Array(panes);
    this.under = new Float64Array(panes);
    this.over = new Float64Array(panes);
    this.hist = new Float64Array(panes * divisions);
    this.paneDevices = new Int32Array(panes);
    this.paneBits = Array.from({ length: panes }, () => new Uint8Array(0));
    this.dMeans = Array.from({ length: panes }, () => new Float64Array(0));
    this.dWeights = Array.from({ length: panes }, () => new Float64Array(0));
    this.dLen = new Int32Array(panes);
    this.cCount = new Float64Array(cells);
    this.cSum = new Float64Array(cells);
    this.cMin = new Float64Array(cells);
    this.cMax = new Float64Array(cells);
    this.dirty = new Uint8Array(panes);
  }

  get panes(): number {
    return this.count.length;
  }

  /** the newest pane with a reading, -1 when none */
  newestPane(): number {
    for (let p = this.count.length - 1; p >= 0; p--) if (this.count[p]! > 0) return p;
    return -1;
  }

  /** back to no rows (a rebuild); capacities kept */
  reset(): void {
    this.rows = 0;
    this.readings = 0;
    const arrays = [this.count, this.sum, this.min, this.max, this.last, this.lastTs, this.under, this.over, this.hist];
    for (const a of [...arrays, this.cCount, this.cSum, this.cMin, this.cMax]) a.fill(0);
    this.paneDevices.fill(0);
    this.dLen.fill(0);
    for (const b of this.paneBits) b.fill(0);
    this.sliceBits.fill(0);
    this.sliceDevices = 0;
    this.dirty.fill(1);
    this.view = null;
  }

  /** the summary as a sealed slice's (see the contract: read-only, valid until the next get()) */
  summary(): MetricSummary {
    let view = this.view;
    let changed = false;
    if (view === null) {
      view = this.view = { metric: this.metric, devices: 0, slice: this.window(-1), panes: [], sliceBits: this.sliceBits, paneBits: this.paneBits };
      for (let p = 0; p < this.panes; p++) view.panes.push(this.window(p));
      this.dirty.fill(0);
      changed = true;
    }
    for (let p = 0; p < this.panes; p++) {
      if (this.dirty[p] === 0) continue;
      view.panes[p] = this.window(p);
      this.dirty[p] = 0;
      changed = true;
    }
    if (changed) {
      view.slice = this.sliceWindow(view.panes);
      view.devices = this.sliceDevices;
      view.sliceBits = this.sliceBits;
    }
    return view;
  }

  private window(p: number): WindowAggregateWire {
    const start = p < 0 ? this.start : this.start + p * this.paneMs;
    const w = emptyAggregate(start, start + (p < 0 ? this.panes * this.paneMs : this.paneMs), this.divisions);
    w.devices = 0;
    if (p < 0 || this.count[p] === 0) return w;
    w.devices = this.paneDevices[p]!;
    w.count = this.count[p]!;
    w.sum = this.sum[p]!;
    w.min = this.min[p]!;
    w.max = this.max[p]!;
    w.last = this.last[p]!;
    w.lastTs = this.lastTs[p]!;
    w.under = this.under[p]!;
    w.over = this.over[p]!;
    const d = this.divisions;
    for (let k = 0; k < d; k++) w.histogram[k] = this.hist[p * d + k]!;
    const means = this.dMeans[p]!;
    const weights = this.dWeights[p]!;
    for (let k = 0; k < this.dLen[p]!; k++) {
      w.means.push(means[k]!);
      w.weights.push(weights[k]!);
    }
    return w;
  }

  /** the slice's window from its panes' (exact fields merged, digests concatenated and compressed once) */
  private sliceWindow(panes: readonly WindowAggregateWire[]): WindowAggregateWire {
    const w = emptyAggregate(this.start, this.start + this.panes * this.paneMs, this.divisions);
    w.devices = this.sliceDevices;
    let total = 0;
    for (const pw of panes) {
      if (pw.count === 0) continue;
      mergeExact(w, pw.count, pw.sum, pw.min, pw.max, pw.last, pw.lastTs);
      for (let k = 0; k < this.divisions; k++) w.histogram[k] += pw.histogram[k]!;
      w.under += pw.under;
      w.over += pw.over;
      total += pw.means.length;
    }
    if (total === 0) return w;
    ensureMerge(total);
    let o = 0;
    let sortedEnd = -1;
    for (const pw of panes) {
      for (let k = 0; k < pw.means.length; k++, o++) {
        mergeMeans[o] = pw.means[k]!;
        mergeWeights[o] = pw.weights[k]!;
      }
      if (sortedEnd < 0 && o > 0) sortedEnd = o;
    }
    const n = compress(mergeMeans, mergeWeights, 0, sortedEnd, total);
    for (let k = 0; k < n; k++) {
      w.means.push(mergeMeans[k]!);
      w.weights.push(mergeWeights[k]!);
    }
    return w;
  }

  /** bytes held now (typed arrays, bitmaps, digests, the view's centroids roughly) */
  countBytes(): number {
    let n = 8 * (9 * this.panes + this.hist.length + 4 * this.cCount.length) + 8 * this.panes + this.sliceBits.length;
    for (let p = 0; p < this.panes; p++) n += this.paneBits[p]!.length + 16 * this.dMeans[p]!.length + 48 * this.dLen[p]!;
    return n + 256 * this.panes;
  }
}

// ---- scratch (module level: one worker thread, nothing here awaits) -------------------------

const rowSeries = new Uint32Array(BATCH_ROWS);
const rowOffsets = new Uint32Array(BATCH_ROWS);
const rowValues = new Float64Array(BATCH_ROWS);
let chainSeries = new Uint32Array(256);
let chainOffsets = new Uint32Array(256);
let chainValues = new Float64Array(256);
/** per pane, the values added since the last fold (panes <= 32: BLOCK_PANES_MAX) */
const pending: Float64Array[] = [];
const pendingN = new Int32Array(32);
/** the weights of the folded values */
const foldWeights = new Float64Array(FOLD_VALUES);
let mergeMeans = new Float64Array(1024);
let mergeWeights = new Float64Array(1024);

function ensureMerge(n: number): void {
  if (mergeMeans.length >= n) return;
  let size = mergeMeans.length;
  while (size < n) size *= 2;
  mergeMeans = new Float64Array(size);
  mergeWeights = new Float64Array(size);
}

function ensureChain(n: number): void {
  if (chainValues.length >= n) return;
  let size = chainValues.length;
  while (size < n) size *= 2;
  chainSeries = new Uint32Array(size);
  chainOffsets = new Uint32Array(size);
  chainValues = new Float64Array(size);
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** a bitmap that holds byte `byte` (grown by half at least: bitmaps grow with the device ids) */
function grownBits(bits: Uint8Array, byte: number): Uint8Array {
  const out = new Uint8Array(Math.max(byte + 1, bits.length + (bits.length >>> 1), 64));
  out.set(bits);
  return out;
}

// ---- the cache ------------------------------------------------------------------------------

export class HeadSummaries {
  readonly counters: HeadSummaryCounters = { rowsRead: 0, readingsAdded: 0, chainBuilds: 0, dropped: 0, evicted: 0 };
  readonly bytesMax: number;
  /** slice number -> its epoch and entries by metric */
  private readonly slices = new Map<number, { epoch: number; byMetric: Map<number, HeadSummary> }>();
  private marks: Map<number, SliceMark> = new Map();
  private heldBytes = 0;
  private tick = 0;
  /** metric -> until when (Date.now() ms) warm() keeps its entries current */
  private readonly warmUntil = new Map<number, number>();
  private readonly warmAllMetricsMax: number;
  /** the table's metrics when warm() last listed them */
  private allMetrics: number[] = [];
  private readonly sliceMs: number;
  private readonly paneMs: number;
  private readonly divisions: number;
  private readonly hMin: number;
  private readonly hMax: number;

  constructor(private readonly head: HeadSlices, private readonly table: SeriesTable, opts: HeadSummariesOptions) {
    this.sliceMs = opts.sliceMs;
    this.paneMs = opts.paneMs;
    this.divisions = opts.histogram.divisions;
    this.hMin = opts.histogram.min;
    this.hMax = opts.histogram.max;
    this.bytesMax = opts.bytesMax ?? HEAD_SUMMARY_BYTES_MAX_DEFAULT;
    this.warmAllMetricsMax = opts.warmAllMetricsMax ?? WARM_ALL_METRICS_MAX;
    if (!(this.sliceMs % this.paneMs === 0 && this.sliceMs / this.paneMs <= pendingN.length)) {
      throw new RangeError(`HeadSummaries: slices of ${this.sliceMs} ms are not at most ${pendingN.length} panes of ${this.paneMs} ms`);
    }
    while (pending.length < this.sliceMs / this.paneMs) pending.push(new Float64Array(FOLD_VALUES));
  }

  /** bytes held by the entries */
  get bytes(): number {
    return this.heldBytes;
  }

  get entries(): number {
    let n = 0;
    for (const s of this.slices.values()) n += s.byMetric.size;
    return n;
  }

  /**
   * Takes the head's marks (each slice's epoch: ~1 us for a few open slices) and drops the
   * entries of slices sealed or reopened since. get() calls it first, so an entry is never
   * extended with the rows of another epoch.
   */
  sync(): void {
    this.marks = this.head.marks();
    for (const [no, s] of this.slices) {
      if (this.marks.get(no)?.epoch !== s.epoch) this.dropSlice(no);
    }
  }

  /** drops every entry (tests: a forced way of reading the head starts from nothing) */
  clear(): void {
    for (const no of [...this.slices.keys()]) this.dropSlice(no);
  }

  /**
   * The metric's summary of the open slice sliceNo over all its rows now, or null when the slice
   * is not open or holds no reading of the metric. `columns` forces the way the head is read
   * (tests): true extends by rows always, false rebuilds from the chains whenever the slice grew.
   */
  get(sliceNo: number, metric: number, columns?: boolean): HeadSummary | null {
    this.sync();
    this.warmUntil.set(metric, Date.now() + WARM_MS);
    return this.extend(sliceNo, metric, columns);
  }

  /**
   * Brings the entries of every metric a query asked for within WARM_MS closer to the open
   * slices' rows now (creating the entries of slices opened since), by at most budgetRows rows.
   * The shard worker calls it after each ring slice, so that a query finds its entries nearly
   * current; then, while the shard holds at most warmAllMetricsMax metrics, the others by at most
   * unaskedBudgetRows of what is left (the worker passes twice the rows its slice applied: they
   * keep up with ingest, and a restored head is caught up without taking the core from the
   * recovery). Returns the rows added (0 at once when nothing is warm).
   */
  warm(now: number, budgetRows: number, unaskedBudgetRows = budgetRows): number {
    let left = budgetRows;
    const synced = this.warmUntil.size > 0;
    if (synced) {
      this.sync();
      for (const [metric, until] of this.warmUntil) {
        if (until < now) {
          this.warmUntil.delete(metric);
          continue;
        }
        left = this.stepMetric(metric, left);
        if (left < 0) return budgetRows;
      }
    }
    const metrics = this.table.metricCount;
    if (metrics === 0 || metrics > this.warmAllMetricsMax) return budgetRows - left;
    if (this.allMetrics.length !== metrics) this.allMetrics = this.table.metricIdList();
    let unasked = Math.min(left, unaskedBudgetRows);
    if (unasked <= 0) return budgetRows - left;
    if (!synced) this.sync();
    const start = unasked;
    for (const m of this.allMetrics) {
      if (this.warmUntil.has(m)) continue;
      unasked = this.stepMetric(m, unasked);
      if (unasked < 0) return budgetRows - left + start;
    }
    return budgetRows - left + start - unasked;
  }

  /**
   * A query's first part, before it pauses the ring: marks the metric warm and brings its entries
   * at most budgetRows rows closer to the open slices' rows now. True when they are current. The
   * caller yields between steps (the ring is applied meanwhile), so a cold entry (the first fleet
   * query: ~1M rows at 100k devices, ~50 ms and more) is built in steps, not in one block.
   */
  warmStep(metric: number, budgetRows: number): boolean {
    this.sync();
    this.warmUntil.set(metric, Date.now() + WARM_MS);
    return this.stepMetric(metric, budgetRows) >= 0;
  }

  /** the metric's entries grown by at most `left` rows: the budget left, or -1 when it ran out first */
  private stepMetric(metric: number, left: number): number {
    for (const sliceNo of this.marks.keys()) {
      const e = this.entryOf(sliceNo, metric);
      if (e === null) continue;
      const n = this.head.readingCount(sliceNo);
      if (n <= e.rows) continue;
      if (left <= 0) return -1;
      left -= this.grow(e, n, undefined, left);
      if (e.rows < n) return -1;
    }
    return Math.max(0, left);
  }

  /** get() without marking the metric warm, after sync() */
  private extend(sliceNo: number, metric: number, columns: boolean | undefined): HeadSummary | null {
    const e = this.entryOf(sliceNo, metric);
    if (e === null) return null;
    this.grow(e, this.head.readingCount(sliceNo), columns, Infinity);
    return e.readings === 0 ? null : e;
  }

  /** the entry of (open slice, metric), made when absent; null when the slice is not open or the metric has no series */
  private entryOf(sliceNo: number, metric: number): HeadSummary | null {
    const mark = this.marks.get(sliceNo);
    if (mark === undefined) return null;
    let slice = this.slices.get(sliceNo);
    let e = slice?.byMetric.get(metric);
    if (e === undefined) {
      if (this.table.seriesOfMetric(metric).length === 0) return null;
      if (slice === undefined) this.slices.set(sliceNo, slice = { epoch: mark.epoch, byMetric: new Map() });
      e = new HeadSummary(sliceNo, mark.epoch, metric, this.sliceMs, this.paneMs, this.divisions);
      slice.byMetric.set(metric, e);
    }
    e.lastUse = ++this.tick;
    return e;
  }

  /** brings e towards the slice's n rows, by at most limitRows when read by rows; returns the rows added */
  private grow(e: HeadSummary, n: number, columns: boolean | undefined, limitRows: number): number {
    if (n < e.rows) throw new Error(`HeadSummaries: BUG: open slice ${e.sliceNo} (epoch ${e.epoch}) holds ${n} rows, ${e.rows} were summarised`);
    if (n === e.rows) return 0;
    const before = e.rows;
    this.refresh(e, n, columns, limitRows);
    this.heldBytes -= e.bytes;
    e.bytes = e.countBytes();
    this.heldBytes += e.bytes;
    if (this.heldBytes > this.bytesMax) this.evict(e);
    return e.rows - before;
  }

  /**
   * brings e to rows [0, n): by rows from e.rows (at most limitRows of them), or rebuilt from the
   * chains (see get; always to n: the chains hold every row)
   */
  private refresh(e: HeadSummary, n: number, columns: boolean | undefined, limitRows: number): void {
    const list = this.table.seriesOfMetric(e.metric);
    pendingN.fill(0); // a fault mid-way left nothing behind (the buffers are shared by every entry)
    let byRows: boolean;
    if (columns !== undefined) byRows = columns;
    else {
      const byShare = list.length >= SCAN_COLUMNS_FRACTION * this.head.seriesCount(e.sliceNo);
      const byCost = e.readings * CHAIN_REBUILD_RATIO + list.length >= n - e.rows;
      // a new entry goes by the metric's share of the slice's series; a bounded step on one built
      // part of the way too (too few readings yet to say what a rebuild costs: by rows, it stays
      // within its budget), unless extending it is the cheaper way anyway. (By the share alone, a
      // metric that is one of several, 3 at 10k devices, was rebuilt from its chains at every ring
      // slice, the whole slice read again each time: 56 % of the worker in the line-protocol bench,
      // 454k points/s instead of 71k with this.)
      if (e.rows === 0) byRows = byShare;
      else if (limitRows !== Infinity) byRows = byShare || byCost;
      else byRows = byCost;
    }
    if (byRows) n = Math.min(n, e.rows + limitRows);
    if (byRows) this.extendByRows(e, n);
    else this.buildByChains(e, n, list);
    this.flush(e);
    e.rows = n;
  }

  private extendByRows(e: HeadSummary, n: number): void {
    for (let at = e.rows; at < n;) {
      // rows past n (a step's bound) are read and left for the next step
      const k = Math.min(n - at, this.head.readRows(e.sliceNo, at, rowSeries, rowOffsets, rowValues));
      if (k === 0) throw new Error(`HeadSummaries: BUG: slice ${e.sliceNo} ends at row ${at}, it counts ${n}`);
      this.absorb(e, k, rowSeries, rowOffsets, rowValues, e.metric);
      at += k;
      this.counters.rowsRead += k;
    }
  }

  private buildByChains(e: HeadSummary, n: number, list: readonly number[]): void {
    if (e.rows > 0) e.reset();
    const head = this.head;
    const no = e.sliceNo;
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      const c = head.countOf(no, s);
      if (c === 0) continue;
      ensureChain(c);
      head.seriesReadings(no, s, chainOffsets, chainValues);
      chainSeries.fill(s, 0, c);
      this.absorb(e, c, chainSeries, chainOffsets, chainValues, -1);
    }
    this.counters.chainBuilds++;
    if (e.readings > n) {
      throw new Error(`HeadSummaries: BUG: slice ${no}'s chains hold ${e.readings} readings of metric ${e.metric}, the slice ${n} rows`);
    }
  }

  /**
   * Adds readings (of `metric` only when metric >= 0) to the entry. The hot loop: typed arrays
   * only; values go to the pane's pending buffer (folded into its digest by flush / when full).
   */
  private absorb(e: HeadSummary, n: number, series: Uint32Array, offsets: Uint32Array, values: Float64Array, metric: number): void {
    const table = this.table;
    const { paneMs, divisions, hMin, hMax } = this;
    const { start, cellMs, count, sum, min, max, last, lastTs, under, over, hist, paneDevices, paneBits, cCount, cSum, cMin, cMax } = e;
    let added = 0;
    for (let i = 0; i < n; i++) {
      const s = series[i]!;
      if (metric >= 0 && table.seriesMetric(s) !== metric) continue;
      const o = offsets[i]!;
      const v = values[i]!;
      const p = Math.floor(o / paneMs);
      const ts = start + o;
      if (count[p] === 0) {
        min[p] = v;
        max[p] = v;
        last[p] = v;
        lastTs[p] = ts;
      } else {
        if (v < min[p]!) min[p] = v;
        if (v > max[p]!) max[p] = v;
        if (ts > lastTs[p]! || (ts === lastTs[p] && v > last[p]!)) {
          last[p] = v;
          lastTs[p] = ts;
        }
      }
      count[p]!++;
      sum[p]! += v;
      const b = bucketOf(v, hMin, hMax, divisions);
      if (b < divisions) hist[p * divisions + b]!++;
      else if (b === divisions) under[p]!++;
      else over[p]!++;
      const c = Math.floor(o / cellMs);
      if (cCount[c] === 0) {
        cMin[c] = v;
        cMax[c] = v;
      } else {
        if (v < cMin[c]!) cMin[c] = v;
        if (v > cMax[c]!) cMax[c] = v;
      }
      cCount[c]!++;
      cSum[c]! += v;
      // devices: a bit per device, set once (exact distinct counts)
      const d = table.seriesDevice(s);
      const byte = d >>> 3;
      const bit = 1 << (d & 7);
      let pb = paneBits[p]!;
      if (byte >= pb.length) pb = paneBits[p] = grownBits(pb, byte);
      if ((pb[byte]! & bit) === 0) {
        pb[byte] = pb[byte]! | bit;
        paneDevices[p]!++;
        let sb = e.sliceBits;
        if (byte >= sb.length) sb = e.sliceBits = grownBits(sb, byte);
        if ((sb[byte]! & bit) === 0) {
          sb[byte] = sb[byte]! | bit;
          e.sliceDevices++;
        }
      }
      let k = pendingN[p]!;
      if (k === FOLD_VALUES) {
        this.fold(e, p);
        k = 0;
      }
      pending[p]![k] = v;
      pendingN[p] = k + 1;
      added++;
    }
    e.readings += added;
    this.counters.readingsAdded += added;
  }

  /** folds every pane's pending values into its digest (the pending buffers are shared: before the next entry) */
  private flush(e: HeadSummary): void {
    for (let p = 0; p < e.panes; p++) if (pendingN[p]! > 0) this.fold(e, p);
  }

  /** pane p's pending values sorted, compressed as one run, then merged with its digest */
  private fold(e: HeadSummary, p: number): void {
    const raw = pending[p]!;
    const m = pendingN[p]!;
    pendingN[p] = 0;
    e.dirty[p] = 1;
    sortValuesRadix(raw, 0, m);
    // runs of one value as one centroid (repeated readings: one-decimal values repeat ~100 times
    // in a pane of 100k; the merging pass then walks ~1000 entries, not 100k)
    let r = 0;
    for (let i = 0; i < m;) {
      const v = raw[i]!;
      let j = i + 1;
      while (j < m && raw[j] === v) j++;
      raw[r] = v;
      foldWeights[r++] = j - i;
      i = j;
    }
    const k = compress(raw, foldWeights, 0, r, r); // sorted already: one merging pass
    const c = e.dLen[p]!;
    ensureMerge(c + k);
    mergeMeans.set(e.dMeans[p]!.subarray(0, c));
    mergeWeights.set(e.dWeights[p]!.subarray(0, c));
    mergeMeans.set(raw.subarray(0, k), c);
    mergeWeights.set(foldWeights.subarray(0, k), c);
    const len = c === 0 ? k : compress(mergeMeans, mergeWeights, 0, c, c + k);
    if (e.dMeans[p]!.length < len) {
      e.dMeans[p] = new Float64Array(Math.max(len, 64));
      e.dWeights[p] = new Float64Array(Math.max(len, 64));
    }
    e.dMeans[p]!.set(mergeMeans.subarray(0, len));
    e.dWeights[p]!.set(mergeWeights.subarray(0, len));
    e.dLen[p] = len;
  }

  private dropSlice(no: number): void {
    const s = this.slices.get(no);
    if (s === undefined) return;
    for (const e of s.byMetric.values()) this.heldBytes -= e.bytes;
    this.counters.dropped += s.byMetric.size;
    this.slices.delete(no);
  }

  /** drops the least recently used entries but `keep` until the cache holds at most bytesMax */
  private evict(keep: HeadSummary): void {
    const all: HeadSummary[] = [];
    for (const s of this.slices.values()) for (const e of s.byMetric.values()) if (e !== keep) all.push(e);
    all.sort((a, b) => a.lastUse - b.lastUse);
    for (const e of all) {
      if (this.heldBytes <= this.bytesMax) break;
      const s = this.slices.get(e.sliceNo)!;
      s.byMetric.delete(e.metric);
      if (s.byMetric.size === 0) this.slices.delete(e.sliceNo);
      this.heldBytes -= e.bytes;
      this.counters.evicted++;
    }
  }
}
