/**
 * A latency histogram in typed arrays, for GET /metrics: observe() is a short scan of the bucket
 * bounds and three adds (no allocation, no label lookup), so the commit pipeline can observe
 * every commit and every answered batch; the scrape reads the counts (prom-metrics.ts).
 *
 * Front-end thread only. Bounds are upper bounds in seconds, ascending; a last bucket (+Inf)
 * takes the rest. Counts are per bucket; the exposition makes them cumulative.
 */

/** 0.25 ms to 10 s: a durable commit is ~0.5-1 ms here, a backlogged ack can take seconds */
export const LATENCY_BOUNDS_SECONDS: readonly number[] = [
  0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10,
];

export class LatencyHistogram {
  readonly bounds: Float64Array;
  /** per bucket, the last one +Inf */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(boundsSeconds: readonly number[] = LATENCY_BOUNDS_SECONDS) {
    for (let i = 1; i < boundsSeconds.length; i++) {
      if (!(boundsSeconds[i] > boundsSeconds[i - 1])) throw new RangeError('histogram bounds must be ascending');
    }
    this.bounds = Float64Array.from(boundsSeconds);
    this.counts = new Float64Array(boundsSeconds.length + 1);
  }

  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }

  /** Cumulative counts per bound, +Inf last: what the `le` buckets expose. */
  cumulative(): number[] {
    const out: number[] = [];
    let n = 0;
    for (let i = 0; i < this.counts.length; i++) out.push(n += this.counts[i]);
    return out;
  }
}
