/**
 * A sensor's aggregate over a time range: one metric merged over every device, exact to the
 * second. The one place POST /compute/metrics reads its figures. Front-end thread only.
 *
 * The range [fromMs, toMsExclusive) in whole seconds: its whole panes come from the fleet windows
 * at the pane resolution (fleetSeries: open panes and stored rollups), the partial panes at
 * either end from the shards' per-second fleet aggregate (sensorRange), so a range that does not
 * fall on pane boundaries is still exact, and a long one reads one window per pane, not per second.
 */

import { SluiceError, type FleetSeriesResult, type SensorRangeResult } from '../protocol';
import type { Dictionary } from './dictionary';
import type { ShardPool } from './shard-pool';

export interface SensorAggregate {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** pane windows one query may span: 100,000 x 10 s is about 11.5 days */
export const SENSOR_PANES_MAX = 100_000;

export async function querySensor(shards: ShardPool, dict: Dictionary, metric: string, fromMs: number,
  toMsExclusive: number): Promise<SensorAggregate> {
  const out: SensorAggregate = { count: 0, sum: 0, min: 0, max: 0 };
  if (dict.lookupMetric(metric) < 0 || toMsExclusive <= fromMs) return out;
  const paneMs = shards.paneMs;
  if ((toMsExclusive - fromMs) / paneMs > SENSOR_PANES_MAX) {
    throw new SluiceError('SLUICE_E_BAD_PARAM', `from/to: the range spans more than ${SENSOR_PANES_MAX} panes of ${paneMs} ms: ask for a shorter range`);
  }
  const a = Math.ceil(fromMs / paneMs) * paneMs;
  const b = Math.floor(toMsExclusive / paneMs) * paneMs;
  const edges: [number, number][] = a < b ? [[fromMs, a], [b, toMsExclusive]] : [[fromMs, toMsExclusive]];
  const parts: Promise<SensorRangeResult[]>[] = edges.filter(([f, t]) => t > f)
    .map(([from, to]) => shards.runAll<SensorRangeResult>({ kind: 'sensorRange', metric, from, to }));
  for (const part of await Promise.all(parts)) for (const r of part) add(out, r);
  if (a < b) {
    const panes = await shards.runAll<FleetSeriesResult>({ kind: 'fleetSeries', metric, from: a, to: b, resolutionMs: paneMs });
    for (const part of panes) for (const w of part.windows) add(out, w);
  }
  return out;
}

function add(out: SensorAggregate, part: SensorAggregate): void {
  if (part.count === 0) return;
  if (out.count === 0 || part.min < out.min) out.min = part.min;
  if (out.count === 0 || part.max > out.max) out.max = part.max;
  out.count += part.count;
  out.sum += part.sum;
}
