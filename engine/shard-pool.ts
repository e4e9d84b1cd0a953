/**
 * The shards as the front-end sees them: for each, a ring producer and a piscina pool of exactly
 * one worker thread that owns the shard's state (an actor: queries are tasks on that pool).
 *
 * Front-end thread only. A worker that dies loses its shard's state since the last checkpoint,
 * so a worker error is fatal: onFatal is called and the engine stops (a restart recovers from the
 * checkpoint and the WAL).
 */

import path from 'node:path';
import Piscina from 'piscina';
import {
  createRingBuffer, RingProducer, RING_STAT_EVENTS, RING_STAT_RECORDS, RING_STAT_SERIES, RING_STAT_PANES, RING_STAT_WATERMARK,
  RING_STAT_MAX_EVENT_TIME, RING_STAT_LATE, RING_STAT_HEARTBEAT, RING_STAT_CORRECTED, RING_STAT_SEAL_QUEUED, RING_STAT_SEALED, type ShardTask, type StoredCheckpoint,
} from '../protocol';
import type { SluiceConfig } from './config';

export interface ShardHandle {
  shard: number;
  ring: RingProducer;
  pool: Piscina;
}

export interface ShardRingState {
  shard: number;
  ringUsedBytes: number;
  ringCapacityBytes: number;
  eventsApplied: number;
  recordsApplied: number;
  /** as the worker last published them (see RING_STAT_HEARTBEAT) */
  series: number;
  panes: number;
  watermark: number | null;
  maxEventTime: number | null;
  lateEvents: number;
  correctedEvents: number;
  /** slices queued or being sealed, and sealed since the start */
  sealQueued: number;
  slicesSealed: number;
  /** how long ago the worker last went through its loop */
  heartbeatAgeMs: number;
}

const WORKER_YOUNG_GENERATION_MB = 16;
const WORKER_FILE = path.join(__dirname, '..', 'workers', 'shard-worker.js');

export class ShardPool {
  readonly shards: ShardHandle[] = [];
  /** the base window (--pane) the workers aggregate in */
  readonly paneMs: number;

  constructor(config: SluiceConfig, checkpoints: (StoredCheckpoint | null)[], onFatal: (shard: number, err: Error) => void) {
    this.paneMs = config.paneMs;
    for (let shard = 0; shard < config.shards; shard++) {
      const sab = createRingBuffer(config.ringBytes);
      const pool = new Piscina({
        filename: WORKER_FILE,
        minThreads: 1,
        maxThreads: 1,
        idleTimeout: Number.MAX_SAFE_INTEGER,
        // 'disabled': piscina must not block the worker in Atomics.wait between tasks, the
        // worker's event loop also drains the ring
        atomics: 'disabled',
        // tasks interleave at their awaits (a query waiting for its shard's writes, a drain
        // yielding between ring slices): /healthz's stats task is not queued behind them
        concurrentTasksPerWorker: 16,
        // a worker's state lives in typed arrays and its garbage is short-lived: a young generation
        // of 16 MB instead of V8's 48 MB; 6 MB saved ~10 MiB more at 100k but slowed the restore
        // at 1M (worker: series table + head 2.2 s -> 3.6 s, recovery 7.1 s -> 9.3 s)
        resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
        workerData: {
          shard,
          ring: sab,
          paneMs: config.paneMs,
          histogramDivisions: config.histogramDivisions,
          histogramMin: config.histogramMin,
          histogramMax: config.histogramMax,
          dataDir: config.dataDir,
          allowedLatenessMs: config.allowedLatenessMs,
          lateHorizonMs: config.lateHorizonMs,
          resolutionsMs: config.resolutionsMs,
          lateLogSize: config.lateLogSize,
          reportMetrics: config.reportMetrics,
          checkpoint: checkpoints[shard] ?? null,
        },
      });
      pool.on('error', (err: Error) => onFatal(shard, err));
      this.shards.push({ shard, ring: new RingProducer(sab, config.ringBacklogBytes), pool });
    }
  }

  get producers(): RingProducer[] {
    return this.shards.map((s) => s.ring);
  }

  run<R>(shard: number, task: ShardTask): Promise<R> {
    return this.shards[shard].pool.run(task) as Promise<R>;
  }

  runAll<R>(task: ShardTask): Promise<R[]> {
    return Promise.all(this.shards.map((s) => s.pool.run(task) as Promise<R>));
  }

  ringStates(): ShardRingState[] {
    return this.shards.map((s) => ({
      shard: s.shard,
      ringUsedBytes: s.ring.usedBytes(),
      ringCapacityBytes: s.ring.capacity,
      eventsApplied: s.ring.stat(RING_STAT_EVENTS),
      recordsApplied: s.ring.stat(RING_STAT_RECORDS),
      series: s.ring.stat(RING_STAT_SERIES),
      panes: s.ring.stat(RING_STAT_PANES),
      watermark: nullIfNaN(s.ring.stat(RING_STAT_WATERMARK)),
      maxEventTime: nullIfNaN(s.ring.stat(RING_STAT_MAX_EVENT_TIME)),
      lateEvents: s.ring.stat(RING_STAT_LATE),
      correctedEvents: s.ring.stat(RING_STAT_CORRECTED),
      sealQueued: s.ring.stat(RING_STAT_SEAL_QUEUED),
      slicesSealed: s.ring.stat(RING_STAT_SEALED),
      heartbeatAgeMs: Math.max(0, Date.now() - s.ring.stat(RING_STAT_HEARTBEAT)),
    }));
  }

  /** Waits until every worker has consumed its ring, up to timeoutMs; true when drained. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.shards.some((s) => s.ring.usedBytes() !== 0)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.pool.destroy()));
  }
}

function nullIfNaN(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}
