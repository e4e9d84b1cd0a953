/**
 * The dashboard's live figures: LiveSampler turns snapshots of what the engine already keeps
 * (ingest counters, the ack-latency histogram's bucket counts, each shard ring's stat slots) into
 * one frame per tick, from deltas between snapshots. Nothing here runs per event: the caller
 * takes one snapshot a second, and only while someone watches (ui-routes.ts).
 *
 * Rates are per second of measured time between snapshots (a timer tick is never exactly 1 s):
 * `perSec` over the last interval, `perSecAvg` over up to AVG_INTERVALS of them, which is what a
 * person reads as "the rate" (a 1 s figure moves by a whole batch at low batch rates). Ack
 * quantiles come from the histogram's bucket deltas over the same span, interpolated inside the
 * bucket as Prometheus' histogram_quantile does; null when no batch was acknowledged in it.
 *
 * Pure: no clock, no I/O (the caller passes the times), so tests drive it directly.
 */

/** snapshots kept: the averages span up to this many intervals (5 s at one tick a second) */
export const AVG_INTERVALS = 5;

export interface ShardSnapshot {
  shard: number;
  ringUsedBytes: number;
  ringCapacityBytes: number;
  eventsApplied: number;
  lateEvents: number;
  correctedEvents: number;
}

export interface FeedSnapshot {
  /** monotonic milliseconds (performance.now()): the rates' denominator */
  monoMs: number;
  /** wall-clock epoch milliseconds: the frame's time axis */
  wallMs: number;
  eventsAccepted: number;
  /** the ack histogram's per-bucket counts, +Inf last (copied: the live array keeps changing) */
  ackCounts: Float64Array;
  shards: ShardSnapshot[];
}

export interface ShardFrame {
  shard: number;
  /** ring bytes waiting for the worker / ring capacity, 0..1 */
  fill: number;
  applied: number;
  appliedPerSec: number;
  late: number;
  corrected: number;
}

export interface LiveFrame {
  type: 'live';
  t: number;
  intervalMs: number;
  ingest: { accepted: number; perSec: number; perSecAvg: number; avgWindowMs: number };
  ack: { p50Ms: number | null; p99Ms: number | null; count: number; windowMs: number };
  late: { total: number; perSec: number };
  corrected: { total: number; perSec: number };
  shards: ShardFrame[];
}

function perSec(delta: number, ms: number): number {
  return ms > 0 ? Math.max(0, delta) * 1000 / ms : 0;
}

/**
 * The q-quantile of a bucketed histogram, linear inside its bucket (the first bucket starts at
 * 0; a rank in the +Inf bucket answers the highest finite bound, as nothing better is known).
 */
export function bucketQuantile(bounds: ArrayLike<number>, counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c > 0 && below + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - below) / c);
    }
    below += c;
  }
  return bounds[bounds.length - 1];
}

function sum(shards: ShardSnapshot[], pick: (s: ShardSnapshot) => number): number {
  let n = 0;
  for (const s of shards) n += pick(s);
  return n;
}

export class LiveSampler {
  private readonly history: FeedSnapshot[] = [];

  constructor(private readonly ackBoundsSeconds: ArrayLike<number>) {}

  /** Forgets the snapshots: the next frame waits for a fresh baseline (after the feed paused). */
  reset(): void {
    this.history.length = 0;
  }

  /** Adds a snapshot; the frame since the previous one, or null for the first (no delta yet). */
  sample(now: FeedSnapshot): LiveFrame | null {
    const h = this.history;
    h.push(now);
    if (h.length > AVG_INTERVALS + 1) h.shift();
    if (h.length < 2) return null;
    const prev = h[h.length - 2];
    const oldest = h[0];
    const ms = now.monoMs - prev.monoMs;
    const avgMs = now.monoMs - oldest.monoMs;
    const ackDelta = new Float64Array(now.ackCounts.length);
    let ackCount = 0;
    for (let i = 0; i < ackDelta.length; i++) {
      ackDelta[i] = Math.max(0, now.ackCounts[i] - (oldest.ackCounts[i] ?? 0));
      ackCount += ackDelta[i];
    }
    const p50 = bucketQuantile(this.ackBoundsSeconds, ackDelta, 0.5);
    const p99 = bucketQuantile(this.ackBoundsSeconds, ackDelta, 0.99);
    const late = sum(now.shards, (s) => s.lateEvents);
    const corrected = sum(now.shards, (s) => s.correctedEvents);
    return {
      type: 'live',
      t: now.wallMs,
      intervalMs: ms,
      ingest: {
        accepted: now.eventsAccepted,
        perSec: perSec(now.eventsAccepted - prev.eventsAccepted, ms),
        perSecAvg: perSec(now.eventsAccepted - oldest.eventsAccepted, avgMs),
        avgWindowMs: avgMs,
      },
      ack: { p50Ms: p50 === null ? null : p50 * 1000, p99Ms: p99 === null ? null : p99 * 1000, count: ackCount, windowMs: avgMs },
      late: { total: late, perSec: perSec(late - sum(prev.shards, (s) => s.lateEvents), ms) },
      corrected: { total: corrected, perSec: perSec(corrected - sum(prev.shards, (s) => s.correctedEvents), ms) },
      shards: now.shards.map((s) => {
        const before = prev.shards.find((p) => p.shard === s.shard);
        return {
          shard: s.shard,
          fill: s.ringCapacityBytes > 0 ? s.ringUsedBytes / s.ringCapacityBytes : 0,
          applied: s.eventsApplied,
          appliedPerSec: before === undefined ? 0 : perSec(s.eventsApplied - before.eventsApplied, ms),
          late: s.lateEvents,
          corrected: s.correctedEvents,
        };
      }),
    };
  }
}
