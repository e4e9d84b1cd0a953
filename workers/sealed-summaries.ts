/**
 * SealedSummaries: one shard's cache of its sealed slices' summaries (storage/slice-summary.ts),
 * decoded, by slice start, least recently used first out past a byte bound.
 *
 * Why: a fleet query reads one summary per slice in its range, and decoding them (msgpackr:
 * every centroid and histogram count a number, every bitmap a Buffer) was ~70 % of a stored
 * fleet query (the past hour at 1 m over 100k devices: ~9 ms, 60 summaries). The sealer puts
 * each summary it wrote (put(), once its blocks are committed), so queries over recent data
 * never decode; older slices are decoded once and kept while they fit.
 *
 * Contract:
 * - Holds a slice's base summary only (what the sealer wrote under SUMMARY_CHUNK); corrections
 *   (delta blocks) are merged on top by the reader, per query. A re-seal of the same slice (after
 *   a restore) puts the same summary again; retention drops what it deleted (dropBefore).
 * - The summaries handed out are shared: read-only for callers (block-queries merges them into
 *   its own windows and bitmaps, as it does the head's summaries).
 * - Runs in the shard worker that owns the state; no I/O.
 */

import type { SliceSummary } from '../storage';

/** by default: ~370 slices of 100k devices (6 h of 1-minute slices), ~36 of 1M */
export const SEALED_SUMMARY_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;

export interface SealedSummaryCounters {
  hits: number;
  misses: number;
  /** summaries put by the sealer */
  sealed: number;
  evicted: number;
}

export class SealedSummaries {
  readonly counters: SealedSummaryCounters = { hits: 0, misses: 0, sealed: 0, evicted: 0 };
  /** insertion order is use order: a hit moves its entry to the end */
  private readonly bySlice = new Map<number, { s: SliceSummary; bytes: number }>();
  private held = 0;

  constructor(readonly bytesMax = SEALED_SUMMARY_BYTES_MAX_DEFAULT) {}

  get bytes(): number {
    return this.held;
  }

  get entries(): number {
    return this.bySlice.size;
  }

  /** the summary of the slice at start, or undefined (then the caller decodes it and put()s it) */
  get(start: number): SliceSummary | undefined {
    const e = this.bySlice.get(start);
    if (e === undefined) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    this.bySlice.delete(start);
    this.bySlice.set(start, e);
    return e.s;
  }

  /** keeps s as the slice's summary (replacing any), then drops the least recently used past the bound */
  put(start: number, s: SliceSummary, sealed = false): void {
    this.remove(start);
    const bytes = summaryBytes(s);
    if (bytes > this.bytesMax) return;
    this.bySlice.set(start, { s, bytes });
    this.held += bytes;
    if (sealed) this.counters.sealed++;
    for (const [k, e] of this.bySlice) {
      if (this.held <= this.bytesMax) break;
      this.bySlice.delete(k);
      this.held -= e.bytes;
      this.counters.evicted++;
    }
  }

  /** forgets the slices that start before `start` (retention deleted their blocks) */
  dropBefore(start: number): void {
    for (const k of [...this.bySlice.keys()]) if (k < start) this.remove(k);
  }

  private remove(start: number): void {
    const e = this.bySlice.get(start);
    if (e === undefined) return;
    this.bySlice.delete(start);
    this.held -= e.bytes;
  }
}

/** what a decoded summary holds, roughly: its bitmaps, centroids (2 numbers each), histograms, objects */
export function summaryBytes(s: SliceSummary): number {
  let n = 64;
  for (const m of s.metrics) {
    n += 128 + m.sliceBits.byteLength;
    for (const b of m.paneBits) n += 64 + b.byteLength;
    for (const w of [m.slice, ...m.panes]) n += 160 + 16 * w.means.length + 8 * w.histogram.length;
  }
  return n;
}
