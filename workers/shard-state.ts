/**
 * A shard's state, in one place: the series table, the head (the open slices' raw readings), the
 * watermark, the sealer that hands closed slices to the block store, and the late log. The shard
 * worker owns one; the record applier writes it, queries and checkpoints read it.
 *
 * A reading's path (route()): its slice is not sealed -> the head; sealed but the reading is within
 * the late horizon (--late-horizon behind the newest event time) -> a correction: kept, and
 * written after the record as a delta block of that slice; older -> too late: the late log only.
 * A reading for a window already final (behind the watermark) counts as a correction and is
 * listed in the late log as one, wherever it is kept. After each ring record (afterRecord): the
 * watermark may close panes; every slice that ended sealDelayMs or more before the newest event
 * time is sealed; the corrections and the late log are written.
 *
 * Sealing is not finality: a slice is sealed once it ended min(lateness, one slice) before the
 * newest event time, long before the watermark passes it (lateness, 5 min by default), so the head
 * holds ~2 slices of readings instead of lateness / slice + 2 (at 1 reading per 10 s: ~12 readings
 * a series instead of ~42, the difference between ~300 B and ~850 B of head per series). A reading
 * for a sealed slice that is not final yet is a correction written as a delta block: exact, and
 * rare for a stream in time order. sealedBefore only moves forward and is checkpointed, so a
 * replay (or a restart with other settings) never reopens a sealed slice in the head. `pending` is every write in flight: queries and checkpoints wait
 * for it, so they see each slice's readings in exactly one place (head, or blocks and deltas).
 *
 * Slices: a slice is one window of the first coarse resolution (1 min by default), or the largest
 * whole number of panes (at most BLOCK_PANES_MAX) that divides it (sliceMsFor).
 */

import type { RetentionCutoff, RetentionResult } from '../protocol';
import { BLOCK_PANES_MAX, type BlockStore, type HistogramSpec, type RollupStore } from '../storage';
import { HeadSlices } from './head-slices';
import { LateLog } from './late-log';
import { SealedSummaries } from './sealed-summaries';
import { Sealer } from './sealer';
import { SeriesTable } from './series-table';
import { Watermark, type WatermarkState } from './watermark';
import type { RestoredShard } from './checkpoint';

export const ROUTE_HEAD = 0;
export const ROUTE_CORRECTION = 1;
export const ROUTE_LATE = 2;

export interface ShardStateOptions {
  shard: number;
  paneMs: number;
  latenessMs: number;
  /** how far behind the newest event time a reading is still kept (as a correction) */
  lateHorizonMs: number;
  /** the rollup resolutions, the pane first */
  resolutions: number[];
  histogram: HistogramSpec;
  lateLogSize: number;
  /** series ids per sealed chunk (default CHUNK_SERIES_DEFAULT) */
  chunkSeries?: number;
  /** how long after its end (behind the newest event time) a slice is sealed; default min(lateness, slice) */
  sealDelayMs?: number;
}

/**
 * 4096 series per chunk: a device query copies one chunk per slice out of LMDB (~110 KB at one
 * reading per 10 s, ~15 us), a fleet query reads the slice's summary instead.
 */
export const CHUNK_SERIES_DEFAULT = 4096;

/** The slice length for a pane and the first coarse resolution (see the header). */
export function sliceMsFor(paneMs: number, resolutions: readonly number[]): number {
  const r1 = resolutions.length > 1 ? resolutions[1]! : paneMs;
  const panes = r1 / paneMs;
  for (let k = Math.min(panes, BLOCK_PANES_MAX); k >= 1; k--) if (panes % k === 0) return k * paneMs;
  return paneMs;
}

export interface ShardStateSnapshot extends WatermarkState {
  lateTotal: number;
  /** slices that end at or before this are sealed (absent in checkpoints before early sealing) */
  sealedBeforeMs?: number;
}

export class ShardState {
  readonly series = new SeriesTable();
  readonly head: HeadSlices;
  readonly clock: Watermark;
  readonly sealer: Sealer;
  /** the sealed slices' summaries, decoded (workers/sealed-summaries.ts) */
  readonly summaries = new SealedSummaries();
  readonly late: LateLog;
  readonly sliceMs: number;
  readonly paneMs: number;
  readonly sealDelayMs: number;
  readonly histogram: HistogramSpec;
  /** readings applied to the head */
  eventsApplied = 0;
  /** readings written as deltas of sealed slices since the start */
  deltaReadings = 0;
  /** this record's corrections, by slice number (rare: a JS structure is fine) */
  private readonly corrections = new Map<number, { series: number[]; offset: number[]; value: number[] }>();
  private correctionSeq = -1;
  private correctionK = 0;
  /** per resolution (ms), the retention's bound: windows starting before it are expired */
  private readonly expiredBefore = new Map<number, number>();
  /** slices that end at or before this are sealed: only moves forward (see the header) */
  private sealedBefore = -Infinity;

  constructor(readonly opts: ShardStateOptions, readonly blocks: BlockStore, rollups: RollupStore, onFatal: (err: Error) => void) {
    this.paneMs = opts.paneMs;
    this.sliceMs = sliceMsFor(opts.paneMs, opts.resolutions);
    this.sealDelayMs = opts.sealDelayMs ?? Math.min(opts.latenessMs, this.sliceMs);
    if (!(this.sealDelayMs >= 0 && this.sealDelayMs <= opts.latenessMs)) {
      throw new RangeError(`sealDelayMs ${this.sealDelayMs} must be in [0, lateness ${opts.latenessMs}]`);
    }
    this.histogram = opts.histogram;
    // before any async write of this thread: see BlockStore.prepare
    blocks.prepare(opts.shard, this.sliceMs);
    this.head = new HeadSlices({ sliceMs: this.sliceMs, paneMs: opts.paneMs });
    this.clock = new Watermark(opts.paneMs, opts.latenessMs);
    this.sealer = new Sealer({
      shard: opts.shard, sliceMs: this.sliceMs, paneMs: opts.paneMs, chunkSeries: opts.chunkSeries ?? CHUNK_SERIES_DEFAULT, histogram: opts.histogram,
    }, this.head, this.series, blocks, this.summaries, onFatal);
    this.late = new LateLog(opts.shard, opts.lateLogSize, rollups);
  }

  get shard(): number {
    return this.opts.shard;
  }

  /** every write in flight (seals, corrections, late readings) */
  get pending(): Promise<unknown> {
    return Promise.all([this.sealer.pending, this.late.pending]);
  }

  /**
   * What a query or a checkpoint waits for: corrections and the late log, not seals (a slice is
   * read from the head until its seal drops it, see sealer.ts). A correction written while seals
   * are queued is put after them (Sealer.writeDelta), so waiting for it waits for those seals too:
   * a head read never misses the delta block of a slice being sealed.
   */
  get queryPending(): Promise<unknown> {
    return Promise.all([this.sealer.deltasDone, this.late.pending]);
  }

  /** Slices that end at or before this are sealed (or were never opened): a reading for them is a correction. */
  get sealedBeforeMs(): number {
    return this.sealedBefore;
  }

  /** The seal bound the newest event time calls for (slice-aligned), never below the closed panes' slices. */
  private dueSealBefore(): number {
    const maxTs = this.clock.maxTs;
    if (maxTs === -Infinity) return this.sealedBefore;
    const due = Math.floor((maxTs - this.sealDelayMs) / this.sliceMs) * this.sliceMs;
    const closed = this.clock.closedBeforeMs;
    const closedDue = closed === -Infinity ? closed : Math.floor(closed / this.sliceMs) * this.sliceMs;
    return Math.max(due, closedDue, this.sealedBefore);
  }

  /**
   * Where a reading goes (see the header): ROUTE_HEAD, ROUTE_CORRECTION (a sealed slice's delta)
   * or ROUTE_LATE. Decided from the state before the reading only, so a replay decides the same.
   */
  route(ts: number): number {
    if (ts >= this.sealedBeforeMs) return ROUTE_HEAD;
    return ts >= this.clock.maxTs - this.opts.lateHorizonMs ? ROUTE_CORRECTION : ROUTE_LATE;
  }

  /** A window already final (its pane behind the watermark): the reading corrects it. */
  isFinal(ts: number): boolean {
    return ts < this.clock.closedBeforeMs;
  }

  /** A reading whose slice is not sealed: into the head (the watermark notes its time). */
  apply(series: number, ts: number, value: number): void {
    this.clock.observe(ts);
    this.head.append(series, ts, value);
    this.eventsApplied++;
  }

  /** A reading for a sealed slice, within the horizon: written after the record as a delta block. */
  correct(series: number, ts: number, value: number): void {
    const sliceNo = Math.floor(ts / this.sliceMs);
    let c = this.corrections.get(sliceNo);
    if (c === undefined) this.corrections.set(sliceNo, c = { series: [], offset: [], value: [] });
    c.series.push(series);
    c.offset.push(Math.floor(ts) - sliceNo * this.sliceMs);
    c.value.push(value);
    this.eventsApplied++;
    this.deltaReadings++;
  }

  /**
   * After each ring record of batch `seq`: close what the watermark passed, seal whole slices,
   * write the record's corrections (one delta block per slice, keyed by seq and the record's
   * place among the batch's records that held corrections) and the late log.
   */
  afterRecord(seq: number): void {
    if (this.corrections.size > 0) this.writeCorrections(seq);
    const below = this.clock.dueBelow();
    if (below > this.clock.closedBelow) this.clock.markClosed(below);
    const sealBefore = this.dueSealBefore();
    if (sealBefore > this.sealedBefore) {
      this.sealedBefore = sealBefore;
      this.sealer.sealThrough(sealBefore);
    }
    this.late.flush();
  }

  private writeCorrections(seq: number): void {
    if (seq !== this.correctionSeq) {
      this.correctionSeq = seq;
      this.correctionK = 0;
    }
    const k = this.correctionK++;
    for (const [sliceNo, c] of this.corrections) {
      // sorted by series, stable: the block codec's order
      const order = c.series.map((_, i) => i).sort((a, b) => c.series[a]! - c.series[b]! || a - b);
      this.sealer.writeDelta(sliceNo * this.sliceMs, seq, k, {
        sliceStart: sliceNo * this.sliceMs, n: order.length,
        series: Uint32Array.from(order, (i) => c.series[i]!),
        offset: Uint32Array.from(order, (i) => c.offset[i]!),
        value: Float64Array.from(order, (i) => c.value[i]!),
      });
    }
    this.corrections.clear();
  }

  /**
   * Is the window of `resolutionMs` that starts at `start` expired? Windows of a slice or finer
   * are kept or dropped with their slice (as stored): expired once the slice's last window is; a
   * coarser window once it starts before the bound.
   */
  isExpired(resolutionMs: number, start: number): boolean {
    const before = this.expiredBefore.get(resolutionMs);
    if (before === undefined) return false;
    if (resolutionMs > this.sliceMs) return start < before;
    const sliceEnd = (Math.floor(start / this.sliceMs) + 1) * this.sliceMs;
    return sliceEnd - resolutionMs < before;
  }

  /**
   * Applies the retention's cutoffs, and deletes the sealed slices that every resolution has let
   * go (windows of every resolution are composed from the slices): a whole key range.
   */
  async retain(cutoffs: readonly RetentionCutoff[]): Promise<RetentionResult> {
    for (const c of cutoffs) {
      const old = this.expiredBefore.get(c.resolutionMs) ?? -Infinity;
      if (c.before > old) this.expiredBefore.set(c.resolutionMs, c.before);
    }
    let dropBefore = Infinity;
    for (const res of this.opts.resolutions) {
      const before = this.expiredBefore.get(res);
      if (before === undefined) return { droppedBlocks: 0 };
      // conservative: the slices that end before the first unexpired window of res starts
      const bound = Math.floor(before / res) * res - this.sliceMs;
      if (bound < dropBefore) dropBefore = bound;
    }
    dropBefore = Math.floor(dropBefore / this.sliceMs) * this.sliceMs + this.sliceMs;
    if (!Number.isFinite(dropBefore)) return { droppedBlocks: 0 };
    // before and after: a query during the delete may have read a summary again
    this.summaries.dropBefore(dropBefore);
    const droppedBlocks = await this.blocks.dropBefore(this.opts.shard, this.sliceMs, dropBefore);
    this.summaries.dropBefore(dropBefore);
    return { droppedBlocks };
  }

  snapshot(): ShardStateSnapshot {
    return { ...this.clock.snapshot(), lateTotal: this.late.total, sealedBeforeMs: this.sealedBefore };
  }

  /** Loads a checkpoint into this fresh state (answers its time: the series table, the head); throws when it does not restore what it recorded. */
  restore(r: RestoredShard): { seriesMs: number; headMs: number } {
    if (r.shard !== this.opts.shard) throw new Error(`checkpoint of shard ${r.shard} handed to shard ${this.opts.shard}`);
    const t0 = performance.now();
    for (const rows of r.rows) this.series.restore(rows);
    const t1 = performance.now();
    this.head.load(r.headChunks);
    const t2 = performance.now();
    if (this.series.seriesCount !== r.seriesCount || this.head.readingsHeld !== r.headReadings) {
      throw new Error(`checkpoint of shard ${r.shard} restores ${this.series.seriesCount} series / ${this.head.readingsHeld} head readings, ` +
        `it recorded ${r.seriesCount} / ${r.headReadings}`);
    }
    this.clock.restore(r.state);
    this.late.total = r.state.lateTotal;
    const closed = this.clock.closedBeforeMs;
    // a checkpoint from before early sealing: slices were sealed up to the closed panes' slice
    this.sealedBefore = r.state.sealedBeforeMs ?? (closed === -Infinity ? closed : Math.floor(closed / this.sliceMs) * this.sliceMs);
    // slices the checkpoint caught while they were being sealed: sealed again (the same keys)
    this.sealer.sealThrough(this.sealedBefore);
    return { seriesMs: t1 - t0, headMs: t2 - t1 };
  }
}
