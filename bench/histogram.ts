/**
 * Latency histogram in microseconds: log-linear buckets (exact below 64 µs, then 32 buckets per
 * power of two, so a percentile is within ~3 % of the true value). Fixed size, no allocation per
 * sample; counts travel between processes as a plain array and merge by addition.
 */

const EXACT = 64;
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const POWERS = 32 - 6;
export const HISTOGRAM_BUCKETS = EXACT + POWERS * SUB;

function bucketOf(us: number): number {
  const v = us < 1 ? 0 : us > 0x7fffffff ? 0x7fffffff : Math.floor(us);
  if (v < EXACT) return v;
  const e = 31 - Math.clz32(v);
  const sub = (v >>> (e - SUB_BITS)) & (SUB - 1);
  return EXACT + (e - 6) * SUB + sub;
}

/** The middle of a bucket's range, in µs. */
function valueOf(bucket: number): number {
  if (bucket < EXACT) return bucket;
  const e = Math.floor((bucket - EXACT) / SUB) + 6;
  const sub = (bucket - EXACT) % SUB;
  const low = (SUB + sub) * 2 ** (e - SUB_BITS);
  return low + 2 ** (e - SUB_BITS) / 2;
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
}

export class LatencyHistogram {
  counts = new Float64Array(HISTOGRAM_BUCKETS);
  samples = 0;
  maxUs = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]++;
    this.samples++;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.samples = 0;
    this.maxUs = 0;
  }

  toJSON(): { counts: number[]; maxUs: number } {
    return { counts: Array.from(this.counts), maxUs: this.maxUs };
  }

  static from(o: { counts: number[]; maxUs: number }): LatencyHistogram {
    const h = new LatencyHistogram();
    for (let i = 0; i < o.counts.length; i++) { h.counts[i] = o.counts[i]; h.samples += o.counts[i]; }
    h.maxUs = o.maxUs;
    return h;
  }

  /** q in [0, 1]; µs. */
  percentile(q: number): number {
    if (this.samples === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.samples));
    let seen = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs);
    }
    return this.maxUs;
  }

  /** p50 / p99 / p99.9 / max in milliseconds. */
  summaryMs(): Percentiles {
    return {
      p50: this.percentile(0.5) / 1000,
      p99: this.percentile(0.99) / 1000,
      p999: this.percentile(0.999) / 1000,
      max: this.maxUs / 1000,
      samples: this.samples,
    };
  }
}
