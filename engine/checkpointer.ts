/**
 * Checkpoint cycles: every --checkpoint-interval (and at shutdown) each shard snapshots what
 * changed since its previous checkpoint (workers/checkpoint.ts) and writes it in one LMDB
 * transaction itself (storage/checkpoint-store.ts: the bytes never cross to this thread), and once
 * every shard's write resolved, the WAL below the lowest checkpointed sequence is deleted in small
 * transactions. A failed write makes the next cycle ask every shard for a full checkpoint (the
 * workers count what they returned as stored).
 *
 * Volume: a shard's checkpoint holds the readings applied since its previous one, so under a
 * high rate (a backlog, a replay, a load test in simulated time) the interval alone would make
 * cycles of hundreds of MB. A cycle also starts as soon as a shard applied READINGS_PER_CYCLE
 * events since the last cycle began (~8 MB of head readings), or made SERIES_PER_CYCLE new
 * series (~23 B each in the series groups, names included: a fleet of 1M devices connecting
 * makes series faster than readings fill the head): cycles stay small and short.
 *
 * Front-end thread. A cycle first puts a MARK record (the last admitted seq) into every ring, in
 * order with the batches, so each shard's checkpoint covers exactly the batches up to a known seq
 * even if the shard saw none of them. Cycles never overlap.
 */

import type { CheckpointResult } from '../protocol';
import type { Store } from '../storage';
import type { BatchStager } from './batch-stager';
import type { CommitPipeline } from './commit-pipeline';
import type { Ingest } from './ingest';
import { LatencyHistogram } from './latency-histogram';
import type { Logger } from './logger';
import type { ShardPool } from './shard-pool';

const TRUNCATE_KEYS_PER_TXN = 5000;
/**
 * events a shard applies before a cycle starts whatever the interval: ~6 MB of head readings. A
 * cycle holds what arrived until its cut, and a cycle copies its chunks in steps between ring
 * slices (0.3-1.8 s at 1M series), so readings keep arriving past the trigger: at 400k a cycle
 * wrote up to 16 MiB at 1M series, over the 16 MB target
 */
export const READINGS_PER_CYCLE = 300_000;
/** new series a shard makes before a cycle starts whatever the interval: ~6 MB of series groups */
export const SERIES_PER_CYCLE = 250_000;
const VOLUME_CHECK_MS = 100;
const MARK_WAIT_MS = 5000;

/** a checkpoint takes tens of ms at 100k series, seconds at 1M on a loaded core */
const CHECKPOINT_BOUNDS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface CheckpointSummary {
  reason: string;
  /** every group was asked for (after a failed write); an incremental cycle of a fresh store writes every group too */
  full: boolean;
  seq: number;
  /** the checkpoints' stored size */
  bytes: number;
  /** bytes this cycle wrote (the changed groups and the bases) */
  written: number;
  pauseMsMax: number;
  /** the slowest shard's pause by part (ms): the head's new readings, the series groups, the base */
  pauseParts: { headMs: number; seriesMs: number; baseMs: number } | null;
  walDeleted: number;
  durationMs: number;
}

export class Checkpointer {
  private running: Promise<CheckpointSummary | null> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private volumeTimer: NodeJS.Timeout | null = null;
  /** per shard, its applied events when the last cycle began */
  private appliedAtCycle: number[] = [];
  /** per shard, its series when the last cycle began */
  private seriesAtCycle: number[] = [];
  last: CheckpointSummary | null = null;
  failures = 0;
  /** checkpoints written since the start, and how long each took (GET /metrics) */
  written = 0;
  readonly durationSeconds = new LatencyHistogram(CHECKPOINT_BOUNDS_SECONDS);
  private nextFull = false;

  constructor(private readonly shards: ShardPool, private readonly stager: BatchStager,
    private readonly pipeline: CommitPipeline, private readonly store: Store, private readonly ingest: Ingest,
    private readonly log: Logger) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => this.runInBackground('interval'), intervalMs);
    this.timer.unref();
    this.volumeTimer = setInterval(() => {
      if (this.running !== null) return;
      const states = this.shards.ringStates();
      if (states.some((r, i) => r.eventsApplied - (this.appliedAtCycle[i] ?? 0) >= READINGS_PER_CYCLE ||
        (Number.isFinite(r.series) ? r.series : 0) - (this.seriesAtCycle[i] ?? 0) >= SERIES_PER_CYCLE)) this.runInBackground('volume');
    }, VOLUME_CHECK_MS);
    this.volumeTimer.unref();
  }

  private runInBackground(reason: string): void {
    void this.run(reason).catch((err: Error) => {
      this.failures++;
      this.log.error({ err }, 'checkpoint failed: the WAL keeps growing until one succeeds');
    });
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.volumeTimer !== null) clearInterval(this.volumeTimer);
    this.timer = null;
    this.volumeTimer = null;
  }

  /** Runs one cycle (or waits for the running one and then runs another). */
  async run(reason: string): Promise<CheckpointSummary | null> {
    while (this.running !== null) await this.running;
    this.running = this.cycle(reason);
    try {
      return await this.running;
    } finally {
      this.running = null;
    }
  }

  private async cycle(reason: string): Promise<CheckpointSummary | null> {
    const t0 = Date.now();
    const seq = this.ingest.nextSeq - 1;
    // nothing admitted since the last checkpoint: the stored one is still exact
    if (reason === 'interval' && this.last !== null && this.last.seq >= seq) return null;
    if (!(await this.mark(seq))) {
      this.log.warn({ reason }, 'checkpoint skipped: the rings stayed full');
      return null;
    }
    const full = this.nextFull;
    this.nextFull = true; // until this cycle's writes are in
    const states = this.shards.ringStates();
    this.appliedAtCycle = states.map((r) => r.eventsApplied);
    this.seriesAtCycle = states.map((r) => (Number.isFinite(r.series) ? r.series : 0));
    const results = await this.shards.runAll<CheckpointResult>({ kind: 'checkpoint', full });
    for (const r of results) {
      if (r.lastSeq < seq) throw new Error(`shard ${r.shard} checkpointed seq ${r.lastSeq} after a mark at ${seq}`);
    }
    this.nextFull = false;
    let bytes = 0;
    let written = 0;
    for (const r of results) {
      this.pipeline.checkpointBytes[r.shard] = r.storedBytes;
      bytes += r.storedBytes;
      written += r.writtenBytes;
    }
    const upTo = Math.min(...results.map((r) => r.lastSeq));
    let walDeleted = 0;
    for (;;) {
      const n = await this.store.truncateWal(upTo, TRUNCATE_KEYS_PER_TXN);
      walDeleted += n;
      if (n < TRUNCATE_KEYS_PER_TXN) break;
    }
    this.pipeline.walTruncated(upTo);
    const slowest = results.reduce((a, b) => (b.pauseMs > a.pauseMs ? b : a));
    const summary: CheckpointSummary = {
      reason, full, seq: upTo, bytes, written, pauseMsMax: slowest.pauseMs, pauseParts: slowest.pauseParts ?? null, walDeleted, durationMs: Date.now() - t0,
    };
    this.last = summary;
    this.written++;
    this.durationSeconds.observe(summary.durationMs / 1000);
    this.log.debug(summary, 'checkpoint written');
    return summary;
  }

  /** Puts MARK(seq) into every ring behind the batches admitted so far; false if no room in time. */
  private async mark(seq: number): Promise<boolean> {
    const deadline = Date.now() + MARK_WAIT_MS;
    for (;;) {
      this.stager.begin();
      this.stager.stageMark(seq);
      if (this.stager.tryReserve(seq)) break;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise<void>((resolve) => this.pipeline.submitMark(this.stager.startCursors, this.stager.endCursors, () => resolve()));
    return true;
  }
}
