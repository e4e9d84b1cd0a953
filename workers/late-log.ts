/**
 * The shard's late readings: the ones beyond the late horizon (refused from the aggregates) and
 * the corrections (kept, for windows already final), counted per device and metric, and the last
 * --late-log-size of them kept in LMDB (RollupStore's 'l' and 'c' keys, read by GET /v1/late).
 *
 * Runs in the shard worker. record() is called by the applier for every reading whose pane is
 * closed; flush() after each ring record writes what came in one transaction. Idempotent on
 * replay: an entry is keyed by its batch seq and place (seq, k), and one already stored is not
 * counted again. Failure policy: a failed write rejects `pending`; the shard worker treats that as
 * fatal (the shard's counts would disagree with storage).
 */

import type { LateCount, LateEntry, RollupStore } from '../storage';

interface PendingLate {
  entry: LateEntry;
  seq: number;
  k: number;
}

export class LateLog {
  total = 0;
  private queued: PendingLate[] = [];
  private lastSeq = -1;
  private k = 0;
  private logged: number;
  /** the last write: queries and checkpoints wait for it */
  pending: Promise<unknown> = Promise.resolve();

  constructor(private readonly shard: number, private readonly sizeMax: number, private readonly rollups: RollupStore) {
    this.logged = rollups.lateCount(shard);
  }

  record(device: number, metric: number, ts: number, value: number, seq: number, correction: boolean): void {
    if (seq !== this.lastSeq) {
      this.lastSeq = seq;
      this.k = 0;
    }
    if (!correction) this.total++;
    const entry: LateEntry = { device, metric, ts, value, at: Date.now() };
    if (correction) entry.correction = true;
    this.queued.push({ entry, seq, k: this.k++ });
  }

  flush(): void {
    if (this.queued.length === 0) return;
    const late = this.queued;
    this.queued = [];
    const shard = this.shard;
    const max = this.sizeMax;
    const rollups = this.rollups;
    const write = rollups.transaction(() => {
      for (const l of late) {
        const key = ['l', shard, l.seq, l.k];
        if (rollups.get(key) !== undefined) continue; // written before a crash
        if (max > 0) {
          rollups.put(key, l.entry);
          this.logged++;
        }
        const ckey = ['c', l.entry.device, l.entry.metric];
        const c = rollups.get(ckey) as LateCount | undefined;
        const corrected = l.entry.correction === true;
        rollups.put(ckey, {
          count: (c?.count ?? 0) + (corrected ? 0 : 1), corrections: (c?.corrections ?? 0) + (corrected ? 1 : 0), seq: l.seq, k: l.k,
        });
      }
      if (this.logged > max) {
        let excess = this.logged - max;
        for (const { key } of rollups.lateEntries(shard, excess, false)) {
          rollups.remove(key as (string | number)[]);
          excess--;
        }
        this.logged = max + excess;
      }
    });
    this.pending = Promise.all([this.pending, write]);
  }
}
