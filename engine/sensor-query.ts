/**
 * A sensor's aggregate over a time range: one metric merged over every device.
 *
 * The one place POST /compute/metrics reads its figures, so the way they are fetched can change
 * without touching the route. Front-end thread only.
 *
 * NOTE, pane-aligned for now: this sums the fleetSeries windows at the pane resolution (--pane,
 * 10 s by default) that overlap [fromMs, toMsExclusive), so it counts every reading of the panes
 * at both ends, also those outside the range: exact only for a range whose ends fall on pane
 * boundaries. An exact per-second fleet aggregate (a shard task returning {count, sum, min, max}
 * over [fromMs, toMs) at 1 s precision) is to replace this body; the signature stays.
 */

import { SluiceError, type FleetSeriesResult } from '../protocol';
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
  const parts = await shards.runAll<FleetSeriesResult>({ kind: 'fleetSeries', metric, from: fromMs, to: toMsExclusive, resolutionMs: paneMs });
  for (const part of parts) {
    for (const w of part.windows) {
      if (w.count === 0) continue;
      if (out.count === 0 || w.min < out.min) out.min = w.min;
      if (out.count === 0 || w.max > out.max) out.max = w.max;
      out.count += w.count;
      out.sum += w.sum;
    }
  }
  return out;
}
