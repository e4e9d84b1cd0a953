/**
 * What the Prometheus-compatible query API reads: Sluice's windows as Prometheus series.
 *
 * Naming: metric `m` with aggregate `a` is the series `sluice_<m>_<a>{device="...", metric="m"}`,
 * `.` in m written `_` (Prometheus names cannot hold a dot; the `metric` label keeps the real
 * name, so two metrics that differ only by `.` / `_` stay two series). a is one of count, sum, min,
 * max, mean, last, p50, p90, p99, or `quantile` with a `quantile="0.95"` label (any quantile a
 * matcher names; the --quantiles ones when none is named).
 *
 * A selector that names devices by anything but `device="..."` lists the shards' devices first
 * (at most DEVICES_SCAN_MAX): a selector over more devices than that, or more than SERIES_MAX
 * (device, metric) pairs, is refused with a message that says how to narrow it. A whole-fleet
 * sum of counts or sums, min of mins, max of maxes or count of series is read from the fleet's
 * own windows instead, at any number of devices (fleet()).
 */

import { mergeAggregate, quantilesOf, type DeviceSeriesResult, type DevicesResult, type FleetSeriesResult, type WindowAggregateWire } from '../protocol';
import type { Dictionary } from './dictionary';
import type { ShardPool } from './shard-pool';
import { matches, PromqlError, type AggOp, type Matcher } from './promql';
import type { Labels, PromSource, SourceSeries } from './promql-eval';

export const AGGREGATES = ['count', 'sum', 'min', 'max', 'mean', 'last', 'p50', 'p90', 'p99', 'quantile'] as const;
export type Aggregate = typeof AGGREGATES[number];

/** devices a selector may list through the shards before it must be narrowed */
export const DEVICES_SCAN_MAX = 10_000;
/** (device, metric) pairs one selector may read */
export const SERIES_MAX = 2_000;

const FIXED_QUANTILES: Partial<Record<Aggregate, number>> = { p50: 0.5, p90: 0.9, p99: 0.99 };

export function promName(metric: string, agg: Aggregate): string {
  return `sluice_${metric.replace(/\./g, '_')}_${agg}`;
}

/** A limit a query hit: answered 422 (execution), not 400 (the query is valid). */
export class PromLimitError extends Error {}

function valueOf(w: WindowAggregateWire, agg: Aggregate, q: number): number | null {
  if (w.count === 0) return null;
  switch (agg) {
    case 'count': return w.count;
    case 'sum': return w.sum;
    case 'min': return w.min;
    case 'max': return w.max;
    case 'mean': return w.sum / w.count;
    case 'last': return w.last;
    default: return quantilesOf(w, [q])[String(q)];
  }
}

interface Candidate { metric: string; agg: Aggregate; name: string }

export class ShardPromSource implements PromSource {
  constructor(private readonly dict: Dictionary, private readonly shards: ShardPool, private readonly quantiles: readonly number[]) {}

  /** every (metric, aggregate) whose name and `metric` label the matchers allow */
  candidates(matchers: Matcher[]): Candidate[] {
    const out: Candidate[] = [];
    for (const metric of this.dict.metricNames) {
      if (!matchers.every((m) => m.name !== 'metric' || matches(m, metric))) continue;
      for (const agg of AGGREGATES) {
        const name = promName(metric, agg);
        if (matchers.every((m) => m.name !== '__name__' || matches(m, name))) out.push({ metric, agg, name });
      }
    }
    return out;
  }

  /** the quantiles a `quantile` series stands for under these matchers */
  private quantilesFor(matchers: Matcher[]): number[] {
    const qm = matchers.filter((m) => m.name === 'quantile');
    const named = qm.find((m) => m.op === '=');
    const qs = named !== undefined ? [Number(named.value)] : [...this.quantiles];
    if (named !== undefined && !(Number(named.value) >= 0 && Number(named.value) <= 1 && named.value.trim() !== '')) {
      throw new PromqlError(`quantile="${named.value}": a quantile is a number in [0, 1]`);
    }
    return qs.filter((q) => qm.every((m) => matches(m, String(q))));
  }

  /** Devices named by the matchers and holding one of the metrics, listed from the shards when not named exactly. */
  async devices(matchers: Matcher[], metrics: Set<string>): Promise<{ deviceId: string; metrics: string[] }[]> {
    const dm = matchers.filter((m) => m.name === 'device');
    const exact = dm.find((m) => m.op === '=');
    if (exact !== undefined) {
      const id = this.dict.lookupDevice(exact.value);
      if (id < 0 || !dm.every((m) => matches(m, exact.value))) return [];
      // the device's metrics are checked by its series read (found: false -> no series)
      return [{ deviceId: exact.value, metrics: [...metrics] }];
    }
    const parts = await this.shards.runAll<DevicesResult>({ kind: 'devices', prefix: '', limit: DEVICES_SCAN_MAX + 1 });
    const all = parts.flatMap((p) => p.devices);
    if (parts.some((p) => p.devices.length > DEVICES_SCAN_MAX)) {
      throw new PromLimitError(`the selector would list more than ${DEVICES_SCAN_MAX} devices per shard: name the device (device="...") ` +
        'or aggregate over the fleet (sum, min, max or count of a selector without device matchers reads the fleet\'s windows)');
    }
    return all
      .filter((d) => dm.every((m) => matches(m, d.deviceId)))
      .map((d) => ({ deviceId: d.deviceId, metrics: d.metrics.filter((m) => metrics.has(m)) }))
      .filter((d) => d.metrics.length > 0);
  }

  async select(matchers: Matcher[], from: number, to: number, resolutionMs: number): Promise<SourceSeries[]> {
    // a label Sluice's series do not have is the empty string to a matcher
    if (!matchers.every((m) => ['__name__', 'metric', 'device', 'quantile'].includes(m.name) || matches(m, ''))) return [];
    const cands = this.candidates(matchers).filter((c) => c.agg === 'quantile' || matchers.every((m) => m.name !== 'quantile' || matches(m, '')));
    if (cands.length === 0) return [];
    const qs = cands.some((c) => c.agg === 'quantile') ? this.quantilesFor(matchers) : [];
    const metrics = new Set(cands.map((c) => c.metric));
    const devices = await this.devices(matchers, metrics);
    const pairs = devices.flatMap((d) => d.metrics.map((metric) => ({ deviceId: d.deviceId, metric })));
    if (pairs.length > SERIES_MAX) {
      throw new PromLimitError(`the selector reads ${pairs.length} (device, metric) series, more than ${SERIES_MAX}: narrow it (device=~"...") ` +
        'or aggregate over the fleet (sum, min, max or count of a selector without device matchers)');
    }
    const reads = await Promise.all(pairs.map(async (p) => ({
      ...p,
      r: await this.shards.run<DeviceSeriesResult>(this.dict.shardOf(this.dict.lookupDevice(p.deviceId)), {
        kind: 'deviceSeries', deviceId: p.deviceId, metric: p.metric, from, to, resolutionMs,
      }),
    })));
    const out: SourceSeries[] = [];
    for (const { deviceId, metric, r } of reads) {
      if (!r.found || r.windows.length === 0) continue;
      for (const c of cands) {
        if (c.metric !== metric) continue;
        const each = c.agg === 'quantile' ? qs : [FIXED_QUANTILES[c.agg] ?? 0];
        for (const q of each) {
          const labels: Labels = { __name__: c.name, device: deviceId, metric };
          if (c.agg === 'quantile') labels.quantile = String(q);
          const points = new Map<number, number>();
          for (const w of r.windows) {
            const v = valueOf(w, c.agg, q);
            if (v !== null) points.set(w.start, v);
          }
          out.push({ labels, points });
        }
      }
    }
    return out;
  }

  async fleet(op: AggOp, matchers: Matcher[], from: number, to: number, resolutionMs: number): Promise<SourceSeries[] | null> {
    if (!matchers.every((m) => (m.name === '__name__' || m.name === 'metric') && m.op === '=')) return null;
    const cands = this.candidates(matchers);
    if (cands.length !== 1) return null;
    const { metric, agg } = cands[0];
    const pick = fleetPick(op, agg);
    if (pick === null) return null;
    const parts = await this.shards.runAll<FleetSeriesResult>({ kind: 'fleetSeries', metric, from, to, resolutionMs });
    const byStart = new Map<number, WindowAggregateWire>();
    for (const part of parts) {
      for (const w of part.windows) {
        const into = byStart.get(w.start);
        if (into === undefined) byStart.set(w.start, w);
        else mergeAggregate(into, w);
      }
    }
    const points = new Map<number, number>();
    for (const w of byStart.values()) if (w.count > 0) points.set(w.start, pick(w));
    return [{ labels: {}, points }];
  }
}

/** The fleet window figure equal to `op` over every device's `agg` series, or null when there is none. */
function fleetPick(op: AggOp, agg: Aggregate): ((w: WindowAggregateWire) => number) | null {
  if (op === 'sum' && agg === 'count') return (w) => w.count;
  if (op === 'sum' && agg === 'sum') return (w) => w.sum;
  if (op === 'max' && agg === 'max') return (w) => w.max;
  if (op === 'min' && agg === 'min') return (w) => w.min;
  // one series per device with data in the window: the fleet window's exact distinct devices
  if (op === 'count' && agg !== 'quantile') return (w) => w.devices ?? NaN;
  return null;
}
