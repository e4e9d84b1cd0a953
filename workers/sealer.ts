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
 * Consistency: the slice leaves the head at once and is in storage once `pending` resolves;
 * queries and checkpoints wait for it (the shard worker's consistent()), so a slice is read from
 * exactly one place and a checkpoint never drops a slice whose blocks are not committed.
 * Determinism: sealing is decided by the watermark in ring order, so a replay after a crash
 * seals the same readings into the same keys (BlockStore rewrites them in place).
 * Failure policy: a block that cannot be written fails the shard (onFatal): the head no longer
 * holds the slice, so carrying on would lose it; recovery rebuilds it from the last checkpoint and
 * the WAL, and seals it again.
 */

import type { HistogramSpec } from '../storage';
import {
  BlockEncoder, BlockReader, SliceSummaryBuilder, SUMMARY_CHUNK, encodeSliceSummary, type BlockColumns, type BlockShape,
  type BlockStore,
} from '../storage';
import { SealedSlice, type HeadSlices } from './head-slices';
import type { SeriesTable } from './series-table';

export interface SealerOptions {
  shard: number;
  sliceMs: number;
  paneMs: number;
  /** series ids per chunk: a device query reads one chunk of a slice */
  chunkSeries: number;
  histogram: HistogramSpec;
}

export class Sealer {
  /** the last seal's writes: queries and checkpoints wait for them */
  pending: Promise<unknown> = Promise.resolve();
  readonly counters = { slices: 0, chunks: 0, deltas: 0, readings: 0, bytes: 0, lastSealMs: 0 };
  private readonly out = new SealedSlice();
  private readonly encoder: BlockEncoder;
  private readonly shape: BlockShape;
  private readonly chunk: BlockColumns = { sliceStart: 0, n: 0, series: new Uint32Array(0), offset: new Uint32Array(0), value: new Float64Array(0) };

  constructor(private readonly opts: SealerOptions, private readonly head: HeadSlices, series: SeriesTable,
    private readonly blocks: BlockStore, private readonly onFatal: (err: Error) => void) {
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
    const done = this.blocks.putDelta(this.opts.shard, this.opts.sliceMs, start, seq, k, bytes).then(undefined, (err: Error) => {
      this.onFatal(new Error(`writing corrections of slice ${start} of shard ${this.opts.shard} failed: ${err.message}`));
    });
    this.pending = Promise.all([this.pending, done]);
  }

  /** Seals every open slice that ends at or before sealBeforeMs, oldest first. */
  sealThrough(sealBeforeMs: number): void {
    const sliceMs = this.opts.sliceMs;
    for (const sliceNo of this.head.openSlices()) {
      if ((sliceNo + 1) * sliceMs > sealBeforeMs) break;
      this.seal(sliceNo);
    }
  }

  /** Takes one slice out of the head and writes it (see the header). */
  seal(sliceNo: number): void {
    const t0 = performance.now();
    const out = this.out;
    if (!this.head.seal(sliceNo, out)) return;
    const { shard, sliceMs, paneMs } = this.opts;
    const start = out.sliceStart;
    const summary = new SliceSummaryBuilder(start, sliceMs, paneMs, this.opts.histogram.divisions);
    const writes: Promise<unknown>[] = [];
    const chunk = this.chunk;
    chunk.sliceStart = start;
    let i = 0;
    while (i < out.n) {
      const c = this.chunkOf(out.series[i]!);
      const end = (c + 1) * this.opts.chunkSeries;
      let j = i + 1;
      while (j < out.n && out.series[j]! < end) j++;
      chunk.n = j - i;
      chunk.series = out.series.subarray(i, j);
      chunk.offset = out.offset.subarray(i, j);
      chunk.value = out.value.subarray(i, j);
      // the encoder's scratch is valid until the next encode, and lmdb-js's async put reads the
      // value when its batch commits, not when put() is called: the block is copied out
      const bytes = this.encoder.encode(chunk, this.shape).slice();
      summary.add(new BlockReader(bytes));
      writes.push(this.blocks.appendBlock(shard, sliceMs, start, c, bytes));
      this.counters.chunks++;
      this.counters.bytes += bytes.byteLength;
      i = j;
    }
    const s = encodeSliceSummary(summary.build());
    writes.push(this.blocks.appendBlock(shard, sliceMs, start, SUMMARY_CHUNK, s));
    this.counters.bytes += s.byteLength;
    this.counters.slices++;
    this.counters.readings += out.n;
    this.counters.lastSealMs = performance.now() - t0;
    const done = Promise.all(writes).then(undefined, (err: Error) => {
      this.onFatal(new Error(`sealing slice ${start} of shard ${shard} failed: ${err.message}`));
    });
    this.pending = Promise.all([this.pending, done]);
  }
}
