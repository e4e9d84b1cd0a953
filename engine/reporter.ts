/**
 * Reporter: the periodic report (seed 000) on the front-end thread. Every periodMs it asks every
 * shard for its ReportParts (collectAll), merges them into one Report per report metric, logs one
 * pino line per report, keeps the last historyMax reports per metric and tells subscribers.
 *
 * Contract:
 * - Periods never overlap: a collection starts only after the previous one finished (flush()
 *   calls queue behind a running one), and the timer is re-armed after each collection, at the end
 *   of the period that just closed + periodMs. A period is [previous collection, this collection).
 * - A failed collection is not skipped: its period gets a Report per metric with `error` set and
 *   zero figures, logged at warn level and delivered like any other. (Shards that had not answered
 *   keep their counts, which then land in the next period.)
 * - The timer is unref'd: it never keeps the process alive. stop() disarms it; flush() still
 *   works after stop() (shutdown takes a last report with it).
 * - A subscriber that throws is logged and does not stop the others.
 * - Single-threaded (front-end event loop); the clock is injectable (opts.now) for tests.
 */

// protocol/index.ts does not export report.ts yet (it is being edited in parallel): import the file
import { failedReport, mergeReportParts, type Report, type ReportPart } from '../protocol';
import type { Logger } from './logger';

export interface ReporterOptions {
  periodMs: number;
  /** reports kept per metric */
  historyMax: number;
  divisions: number;
  min: number;
  max: number;
  /** the report metrics (--report-metrics): a failed collection reports each of them */
  metrics: string[];
  /** clock for the period bounds (epoch ms); default Date.now */
  now?: () => number;
}

export type ReportListener = (r: Report) => void;

export const REPORT_PERIOD_MS_MIN = 100;
export const REPORT_HISTORY_MAX = 100_000;

export class Reporter {
  /** per metric, oldest first; n numbers the collections (period ends can share a millisecond) */
  private readonly history = new Map<string, { n: number; report: Report }[]>();
  private collections = 0;
  private readonly listeners = new Set<ReportListener>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  private chain: Promise<void> = Promise.resolve();
  private periodStart: number;
  /** collections that failed since start */
  failures = 0;
  reports = 0;

  constructor(private readonly opts: ReporterOptions,
    private readonly collectAll: () => Promise<ReportPart[][]>,
    private readonly log: Logger) {
    if (!(Number.isFinite(opts.periodMs) && opts.periodMs >= REPORT_PERIOD_MS_MIN)) {
      throw new RangeError(`Reporter: periodMs must be at least ${REPORT_PERIOD_MS_MIN}: ${opts.periodMs}`);
    }
    if (!(Number.isInteger(opts.historyMax) && opts.historyMax >= 1 && opts.historyMax <= REPORT_HISTORY_MAX)) {
      throw new RangeError(`Reporter: historyMax must be an integer in [1, ${REPORT_HISTORY_MAX}]: ${opts.historyMax}`);
    }
    this.now = opts.now ?? Date.now;
    this.periodStart = this.now();
    for (const m of opts.metrics) this.history.set(m, []);
  }

  /** Arms the period timer; the first period starts now. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.periodStart = this.now();
    this.arm();
  }

  /** Disarms the timer (a collection under way still finishes and is delivered). */
  stop(): void {
    this.started = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Collects now (after any collection under way); resolves once its reports are delivered. */
  flush(): Promise<void> {
    const p = this.chain.then(() => this.collectOnce());
    this.chain = p;
    return p;
  }

  /** The newest reports first: of one metric, or of all (newest collection first, then metric order). */
  recent(metric: string | null, limit: number): Report[] {
    if (metric !== null) return (this.history.get(metric) ?? []).slice(-limit).reverse().map((e) => e.report);
    const all: { n: number; order: number; report: Report }[] = [];
    let order = 0;
    for (const list of this.history.values()) {
      for (let i = Math.max(0, list.length - limit); i < list.length; i++) all.push({ ...list[i], order });
      order++;
    }
    all.sort((a, b) => (b.n - a.n) || (a.order - b.order));
    return all.slice(0, limit).map((e) => e.report);
  }

  /** Calls fn with every new report; returns the unsubscribe function. */
  subscribe(fn: ReportListener): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  private arm(): void {
    if (!this.started) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const wait = Math.max(0, this.periodStart + this.opts.periodMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, wait);
    this.timer.unref();
  }

  /** Never rejects: a failure becomes the period's reports. */
  private async collectOnce(): Promise<void> {
    const start = this.periodStart;
    const end = this.now();
    this.periodStart = end;
    const { divisions, min, max } = this.opts;
    const n = ++this.collections;
    let reports: Report[];
    try {
      const parts = await this.collectAll();
      reports = mergeReportParts(parts, start, end, min, max);
    } catch (e) {
      this.failures++;
      const reason = `collection failed: ${(e as Error)?.message ?? String(e)}`;
      this.log.error({ err: e, periodStart: start, periodEnd: end }, `report: ${reason}`);
      reports = this.opts.metrics.map((m) => failedReport(m, start, end, divisions, min, max, reason));
    }
    for (const r of reports) this.deliver(n, r);
    this.arm();
  }

  private deliver(n: number, r: Report): void {
    this.reports++;
    let list = this.history.get(r.metric);
    if (list === undefined) this.history.set(r.metric, list = []);
    list.push({ n, report: r });
    if (list.length > this.opts.historyMax) list.splice(0, list.length - this.opts.historyMax);
    if (r.error === undefined) this.log.info(r, `report ${r.metric}: ${r.count} events, ${r.devices} devices`);
    else this.log.warn(r, `report ${r.metric}: ${r.error}`);
    for (const fn of this.listeners) {
      try {
        fn(r);
      } catch (e) {
        this.log.error({ err: e, metric: r.metric }, 'report subscriber failed');
      }
    }
  }
}
