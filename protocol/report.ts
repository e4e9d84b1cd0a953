/**
 * Periodic reports (seed 000): per report period and report metric, how many values of the
 * metric the engine received, their histogram over fixed divisions, and how many distinct devices
 * sent them. Pure: shared by the shard workers (which count ReportParts) and the front-end (which
 * merges them into Reports).
 *
 * Contract:
 * - Processing time, not event time: a part counts the values a shard received since its previous
 *   collection, late ones included (they were received even though they were not applied).
 * - Histogram: `divisions` equal divisions over [min, max]; the last one is closed, so a value equal
 *   to max is in it; values below min count in `under`, above max in `over`.
 * - A device lives on exactly one shard, so distinct devices add up exactly across shards.
 */

/** What one shard counted for one report metric since its previous collection. */
export interface ReportPart {
  metric: string;
  count: number;
  /** one count per division (the divisions' bounds are the configured min/max) */
  histogram: number[];
  under: number;
  over: number;
  /** distinct devices that sent the metric in the period (on this shard) */
  devices: number;
}

/** The fleet-wide report of one metric over one period [periodStart, periodEnd) (epoch ms). */
export interface Report {
  metric: string;
  periodStart: number;
  periodEnd: number;
  count: number;
  devices: number;
  histogram: { min: number; max: number; divisions: number[]; under: number; over: number };
  /** set when the period's collection failed: the figures are then zero, not measured */
  error?: string;
}


/**
 * Sums the shards' parts into one Report per metric (in the order metrics first appear). Throws a
 * RangeError when two parts of a metric disagree on the number of divisions (a configuration bug).
 */
export function mergeReportParts(parts: readonly (readonly ReportPart[])[], periodStart: number, periodEnd: number,
  min: number, max: number): Report[] {
  const byMetric = new Map<string, Report>();
  for (const shardParts of parts) {
    for (const p of shardParts) {
      const into = byMetric.get(p.metric);
      if (into === undefined) {
        byMetric.set(p.metric, {
          metric: p.metric, periodStart, periodEnd, count: p.count, devices: p.devices,
          histogram: { min, max, divisions: p.histogram.slice(), under: p.under, over: p.over },
        });
        continue;
      }
      const h = into.histogram;
      if (h.divisions.length !== p.histogram.length) {
        throw new RangeError(`mergeReportParts: ${p.metric}: histogram divisions differ (${h.divisions.length} vs ${p.histogram.length})`);
      }
      into.count += p.count;
      into.devices += p.devices;
      h.under += p.under;
      h.over += p.over;
      for (let i = 0; i < p.histogram.length; i++) h.divisions[i] += p.histogram[i];
    }
  }
  return [...byMetric.values()];
}

/** The report of a period whose collection failed: zero figures and the reason. */
export function failedReport(metric: string, periodStart: number, periodEnd: number, divisions: number,
  min: number, max: number, error: string): Report {
  return {
    metric, periodStart, periodEnd, count: 0, devices: 0,
    histogram: { min, max, divisions: new Array<number>(divisions).fill(0), under: 0, over: 0 },
    error,
  };
}
