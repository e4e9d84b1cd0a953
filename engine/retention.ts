/**
 * Rollup retention: windows older than their resolution's retention (in event time: the newest
 * event time any shard has applied) are deleted in the background, in small transactions, along
 * with their window-index and fleet entries. The per-second fleet aggregate (['s', ...] keys) is
 * kept as long as the finest resolution. Front-end thread; never touches open panes.
 */

import type { ShardStats } from '../protocol';
import { formatDuration } from '../protocol';
import type { RollupStore } from '../storage';
import type { SluiceConfig } from './config';
import type { Dictionary } from './dictionary';
import type { Logger } from './logger';
import type { ShardPool } from './shard-pool';

const KEYS_PER_TXN = 1000;

export interface RetentionSummary {
  cutoffs: Record<string, number>;
  deleted: number;
}

export class Retention {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  totalDeleted = 0;

  constructor(private readonly config: SluiceConfig, private readonly rollups: RollupStore, private readonly dict: Dictionary,
    private readonly shards: ShardPool, private readonly log: Logger) {}

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

  /** One pass: deletes every expired window; returns what it did. */
  async run(): Promise<RetentionSummary> {
    this.running = true;
    try {
      const stats = await this.shards.runAll<ShardStats>({ kind: 'stats' });
      const newest = Math.max(...stats.map((s) => s.maxEventTime ?? -Infinity));
      const summary: RetentionSummary = { cutoffs: {}, deleted: 0 };
      if (!Number.isFinite(newest)) return summary;
      for (const res of this.config.resolutionsMs) {
        const keep = this.config.retentionMs[String(res)];
        if (keep === undefined || keep === Infinity) continue;
        // a window expires when all of it is older than the retention
        const before = newest - keep - res + 1;
        summary.cutoffs[formatDuration(res)] = before;
        for (let metric = 0; metric < this.dict.metricNames.length; metric++) summary.deleted += await this.expire(res, metric, before);
      }
      const finest = this.config.retentionMs[String(this.config.resolutionsMs[0])];
      if (finest !== undefined && finest !== Infinity) {
        const beforeSec = Math.floor((newest - finest) / 1000);
        summary.cutoffs['1s'] = beforeSec * 1000;
        for (let metric = 0; metric < this.dict.metricNames.length; metric++) summary.deleted += await this.expireSeconds(metric, beforeSec);
      }
      if (summary.deleted > 0) {
        this.totalDeleted += summary.deleted;
        this.log.info(summary, `retention: ${summary.deleted} expired rollup windows deleted`);
      }
      return summary;
    } finally {
      this.running = false;
    }
  }

  private async expireSeconds(metric: number, beforeSec: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const keys = this.rollups.secondsBefore(metric, beforeSec, KEYS_PER_TXN);
      if (keys.length === 0) return deleted;
      await this.rollups.transaction(() => {
        for (const k of keys) this.rollups.remove(k);
      });
      deleted += keys.length;
    }
  }

  private async expire(res: number, metric: number, before: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const keys = this.rollups.windowsBefore(res, metric, before, KEYS_PER_TXN);
      const fleet = this.rollups.fleetKeysBefore(res, metric, before, KEYS_PER_TXN);
      if (keys.length === 0 && fleet.length === 0) return deleted;
      await this.rollups.transaction(() => {
        for (const k of keys) {
          this.rollups.remove(k);
          this.rollups.remove(['d', res, k[4] as number, metric, k[3] as number]);
        }
        for (const k of fleet) {
          this.rollups.remove(k);
          this.rollups.remove(['b', ...k.slice(1)]);
        }
      });
      deleted += keys.length;
    }
  }
}
