/**
 * Sealing: the head hands a slice to storage once it ended the seal delay before the newest event time (ShardState).
 *
 * Runs in the shard worker that owns the head. sealThrough(sealBeforeMs) takes every open slice
 * that ends at or before the bound out of the head (HeadSlices.seal: its readings
 * sorted by series), cuts it into chunks of chunkSeries consecutive series ids, encodes each as a
 * block (storage/block-codec.ts) and appends it, then the slice's summary (storage/slice-summary)
 * under SUMMARY_CHUNK: per (shard, slice) the keys go out in ascending order, so every put is an
 * LMDB append. A device query reads one chunk per slice (its series' chunk), a fleet query the
 * summary.
 *
 * In steps: a slice of 1M series holds 6M readings, ~0.6 s of encoding, so a seal is a job that
 * lists the slice's series (HeadSlices.presentSeries), then per chunk of chunkSeries ids gathers
 * their readings from the head's chains (HeadSlices.gather: sorted by series, no copy of the whole
 * slice), encodes and appends it, for at most STEP_MS before it yields the event loop (the worker goes on applying
 * the ring and answering queries between steps), and drops the slice from the head only once
 * every block of it is committed. Jobs run one at a time in slice order, so the keys of a
 * (shard, resolution) still go out in ascending order.
 *
 * Consistency: until the drop, queries read the slice from the head and ignore its blocks
 * (block-queries treats a slice open in the head as open), so a slice is read from exactly one
 * place without waiting for its seal; a checkpoint taken meanwhile still holds the slice (it is in
 * the head), so it never loses a slice whose blocks are not committed. A delta written while
 * seals are queued is put after them: keys stay in append order, and a query, which waits for
 * the deltas, then waits for those seals too (a head read would miss the delta block of a slice
 * being sealed). `pending` is every write in flight, seals included.
 * Determinism: sealing is decided by the watermark in ring order, so a replay after a crash
 * seals the same readings into the same keys (BlockStore rewrites them in place).
 * Failure policy: a block that cannot be written fails the shard (onFatal): the slice's blocks are
 * incomplete and it can never be dropped from the head, so carrying on would grow the head and
 * leave a half-written slice; recovery rebuilds it from the last checkpoint and the WAL, and seals
 * it again (the same keys, rewritten).
 */

import type { HistogramSpec } from '../storage';
import {
  BlockEncoder, BlockReader, SliceSummaryBuilder, SUMMARY_CHUNK, encodeSliceSummary, type BlockColumns, type BlockShape,
  type BlockStore,
} from '../storage';
import { SealedSlice, type HeadSlices } from './head-slices';
import type { SeriesTable } from './series-table';
import type { SealedSummaries } from './sealed-summaries';

export interface SealerOptions {
  shard: number;
  sliceMs: number;
  paneMs: number;
  /** series ids per chunk: a device query reads one chunk of a slice */
  chunkSeries: number;
  histogram: HistogramSpec;
}

/** encoding time a seal step may take before it yields the event loop */
export const STEP_MS = 8;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Sealer {
  /** resolves once every seal queued so far has committed its blocks and left the head */
  sealsDone: Promise<unknown> = Promise.resolve();
  /** delta blocks in flight */
  deltasDone: Promise<unknown> = Promise.resolve();
  readonly counters = {
    slices: 0, chunks: 0, deltas: 0, readings: 0, bytes: 0,
    /** the last seal: wall time from its start to the drop; its longest step */
    lastSealMs: 0, lastStepMaxMs: 0,
    /** the last seal's parts: the series ids, the longest chunk (gather + encode), the summary at the end */
    lastIdsMs: 0, lastChunkMaxMs: 0, lastSummaryMs: 0,
    /** the last seal's time on the thread (its steps added up) */
    lastBusyMs: 0,
    /** the longest step of any seal but the first (whose code runs before the JIT optimised it), and the first's */
    stepMaxMs: 0, firstStepMaxMs: 0,
  };
  /** the newest slice queued for sealing (slices stay open while they are sealed) */
  private lastQueued = -Infinity;
  private queued = 0;
  private readonly out = new SealedSlice();
  private readonly encoder: BlockEncoder;
  private readonly shape: BlockShape;
  private readonly chunk: BlockColumns = { sliceStart: 0, n: 0, series: new Uint32Array(0), offset: new Uint32Array(0), value: new Float64Array(0) };

  constructor(private readonly opts: SealerOptions, private readonly head: HeadSlices, series: SeriesTable,
    private readonly blocks: BlockStore, private readonly summaries: SealedSummaries, private readonly onFatal: (err: Error) => void) {
    if (!(Number.isInteger(opts.chunkSeries) && opts.chunkSeries >= 1)) throw new RangeError(`chunkSeries must be a positive integer: ${opts.chunkSeries}`);
    this.encoder = new BlockEncoder(opts.histogram);
    this.shape = {
      sliceMs: opts.sliceMs,
      paneMs: opts.paneMs,
      seriesDevice: (s) => series.seriesDevice(s),
      seriesMetric: (s) => series.seriesMetric(s),
    };
  }

  /** The chunk that holds a series' readings in every sealed slice. */
  chunkOf(series: number): number {
    return Math.floor(series / this.opts.chunkSeries);
  }

  /**
   * Writes corrections of a sealed slice (readings sorted by series) as one delta block under
   * (seq, k): the batch and the k-th record of it that held corrections, so a replay rewrites the
   * same key. Failure policy as for sealing.
   */
  writeDelta(start: number, seq: number, k: number, columns: BlockColumns): void {
    const bytes = this.encoder.encode(columns, this.shape).slice();
    this.counters.deltas++;
    this.counters.bytes += bytes.byteLength;
    const put = (): Promise<boolean> => this.blocks.putDelta(this.opts.shard, this.opts.sliceMs, start, seq, k, bytes);
    // with seals queued, after them: a delta may be for a slice newer than a queued one, and a
    // seal appends its keys after the newest key of the database (MDB_APPEND)
    const written = this.queued > 0 ? this.sealsDone.then(put) : put();
    const done = written.then(undefined, (err: Error) => {
      this.onFatal(new Error(`writing corrections of slice ${start} of shard ${this.opts.shard} failed: ${err.message}`));
    });
    this.deltasDone = Promise.all([this.deltasDone, done]);
  }

  /** every write in flight: queued seals and delta blocks */
  get pending(): Promise<unknown> {
    return Promise.all([this.sealsDone, this.deltasDone]);
  }

  /** Slices queued or being sealed (still open in the head). */
  get sealing(): number {
    return this.queued;
  }

  /** Queues every open slice that ends at or before sealBeforeMs for sealing, oldest first. */
  sealThrough(sealBeforeMs: number): void {
    const sliceMs = this.opts.sliceMs;
    for (const sliceNo of this.head.openSlices()) {
      if ((sliceNo + 1) * sliceMs > sealBeforeMs) break;
      if (sliceNo <= this.lastQueued) continue;
      this.lastQueued = sliceNo;
      this.queued++;
      this.sealsDone = this.sealsDone.then(() => this.seal(sliceNo));
    }
  }

  /** One seal job (see the header): gather, encode and append chunk by chunk in steps, drop once committed. */
  private async seal(sliceNo: number): Promise<void> {
    const t0 = performance.now();
    const out = this.out;
    const ids = this.head.presentSeries(sliceNo);
    if (ids === null) {
      this.queued--;
      return;
    }
    this.counters.lastIdsMs = performance.now() - t0;
    let readings = 0;
    let chunkMax = 0;
    const { shard, sliceMs, paneMs } = this.opts;
    const start = sliceNo * sliceMs;
    const summary = new SliceSummaryBuilder(start, sliceMs, paneMs, this.opts.histogram.divisions);
    const writes: Promise<unknown>[] = [];
    const chunk = this.chunk;
    chunk.sliceStart = start;
    let i = 0;
    let stepStart = t0;
    let stepMax = 0;
    let busy = 0;
    while (i < ids.length) {
      const c = this.chunkOf(ids[i]!);
      const end = (c + 1) * this.opts.chunkSeries;
      let j = i + 1;
      while (j < ids.length && ids[j]! < end) j++;
      const tChunk = performance.now();
      this.head.gather(sliceNo, ids, i, j, out);
      readings += out.n;
      chunk.n = out.n;
      chunk.series = out.series.subarray(0, out.n);
      chunk.offset = out.offset.subarray(0, out.n);
      chunk.value = out.value.subarray(0, out.n);
      // the encoder's scratch is valid until the next encode, and lmdb-js's async put reads the
      // value when its batch commits, not when put() is called: the block is copied out
      const bytes = this.encoder.encode(chunk, this.shape).slice();
      summary.add(new BlockReader(bytes));
      writes.push(this.blocks.appendBlock(shard, sliceMs, start, c, bytes));
      this.counters.chunks++;
      this.counters.bytes += bytes.byteLength;
      i = j;
      const now = performance.now();
      if (now - tChunk > chunkMax) chunkMax = now - tChunk;
      const step = now - stepStart;
      if (step >= STEP_MS && i < ids.length) {
        if (step > stepMax) stepMax = step;
        busy += step;
        await nextTurn();
        stepStart = performance.now();
      }
    }
    this.counters.lastChunkMaxMs = chunkMax;
    const tSummary = performance.now();
    const built = summary.build();
    const s = encodeSliceSummary(built);
    this.counters.lastSummaryMs = performance.now() - tSummary;
    writes.push(this.blocks.appendBlock(shard, sliceMs, start, SUMMARY_CHUNK, s));
    this.counters.bytes += s.byteLength;
    const step = performance.now() - stepStart;
    if (step > stepMax) stepMax = step;
    this.counters.lastBusyMs = busy + step;
    this.counters.slices++;
    this.counters.readings += readings;
    this.counters.lastStepMaxMs = stepMax;
    if (this.counters.slices === 1) this.counters.firstStepMaxMs = stepMax;
    else if (stepMax > this.counters.stepMaxMs) this.counters.stepMaxMs = stepMax;
    try {
      await Promise.all(writes);
    } catch (err) {
      // the slice stays in the head; the shard stops and recovery seals it again
      this.onFatal(new Error(`sealing slice ${start} of shard ${shard} failed: ${(err as Error).message}`));
      return;
    }
    // queries read the slice from storage from now on: its summary without a decode
    this.summaries.put(start, built, true);
    this.head.drop(sliceNo);
    this.queued--;
    this.counters.lastSealMs = performance.now() - t0;
  }
}
