/**
 * Retention, in event time: every few seconds the front-end computes, per resolution with a
 * finite --retention, the bound before which windows are expired (their whole span older than the
 * retention, measured from the newest event time any shard has applied) and hands the bounds to
 * every shard (a 'retention' task). Each shard stops answering expired windows and deletes the
 * sealed slices that no resolution needs any more, as a key range (BlockStore.dropBefore): whole
 * slices, never a window's pieces. Front-end thread; never touches a shard's open head.
 *
 * Since every resolution is composed from the sealed slices, a slice is deleted only once every
 * resolution let it go: with a resolution kept forever (1 d by default), none is.
 */

import { formatDuration, type RetentionCutoff, type RetentionResult, type ShardStats } from '../protocol';
import type { SluiceConfig } from './config';
import type { Logger } from './logger';
import type { ShardPool } from './shard-pool';

export interface RetentionSummary {
  cutoffs: Record<string, number>;
  deleted: number;
}

export class Retention {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  totalDeleted = 0;

  constructor(private readonly config: SluiceConfig, private readonly shards: ShardPool, private readonly log: Logger) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      void this.run().catch((err: Error) => this.log.error({ err }, 'retention pass failed'));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass: the bounds to every shard; returns what was deleted. */
  async run(): Promise<RetentionSummary> {
    this.running = true;
    try {
      const stats = await this.shards.runAll<ShardStats>({ kind: 'stats' });
      const newest = Math.max(...stats.map((s) => s.maxEventTime ?? -Infinity));
      const summary: RetentionSummary = { cutoffs: {}, deleted: 0 };
      if (!Number.isFinite(newest)) return summary;
      const cutoffs: RetentionCutoff[] = [];
      for (const res of this.config.resolutionsMs) {
        const keep = this.config.retentionMs[String(res)];
        if (keep === undefined || keep === Infinity) continue;
        // a window expires when all of it is older than the retention
        const before = newest - keep - res + 1;
        cutoffs.push({ resolutionMs: res, before });
        summary.cutoffs[formatDuration(res)] = before;
      }
      if (cutoffs.length === 0) return summary;
      const results = await this.shards.runAll<RetentionResult>({ kind: 'retention', cutoffs });
      summary.deleted = results.reduce((n, r) => n + r.droppedBlocks, 0);
      if (summary.deleted > 0) {
        this.totalDeleted += summary.deleted;
        this.log.info(summary, `retention: ${summary.deleted} expired blocks deleted`);
      }
      return summary;
    } finally {
      this.running = false;
    }
  }
}
