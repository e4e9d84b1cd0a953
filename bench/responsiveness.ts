/**
 * Responsiveness under load: while a scenario's load runs, GET /healthz every HEALTH_EVERY_MS and
 * one query of a rotating list every QUERY_EVERY_MS, one request at a time, and keep every answer's
 * time. The figures are what a dashboard and a monitor would see during the run (issue #11 target
 * 5: p99 at most 100 ms). Requests go to 127.0.0.1 only and stop with stop().
 */

const HEALTH_EVERY_MS = 250;
const QUERY_EVERY_MS = 1000;
const TIMEOUT_MS = 30_000;
const SLOW_MS = 100;

export interface LatencyFigures {
  samples: number;
  p50: number;
  p99: number;
  max: number;
  /** answers over SLOW_MS */
  slow: number;
  /** no answer, or a status other than 200 */
  failed: number;
}

export interface Responsiveness {
  health: LatencyFigures;
  queries: LatencyFigures;
  /** per /healthz answer, the longest event-loop block of any shard worker since the previous one */
  workerLoopMax: LatencyFigures;
  /** the same for its longest ring slice and its longest task body (query, checkpoint take) */
  workerPollMax: LatencyFigures;
  workerTaskMax: LatencyFigures;
  /** per /healthz answer, the front-end thread's longest event-loop block since the previous one */
  frontLoopMax: LatencyFigures;
  /** per /healthz answer, how long the front-end waited for the shards' stats */
  shardStatsWait: LatencyFigures;
  /** the /healthz answers over SLOW_MS: when (s since the prober started) and what the body said */
  slowHealth: string[];
  /** the queries over SLOW_MS: when (s since the prober started), how long, which path (its index) */
  slowQueries: string[];
  /** queries by the index of their path in the list (e.g. [device, fleet]) */
  queriesByPath: LatencyFigures[];
  /** of the task bodies over SLOW_MS, how many of each kind ("fleetSeries": 3) */
  slowTaskKinds: Record<string, number>;
}

export function latencyOf(ms: number[], failed: number): LatencyFigures {
  return figures(ms, failed);
}

function figures(ms: number[], failed: number): LatencyFigures {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { samples: s.length, p50: at(0.5), p99: at(0.99), max: s.length === 0 ? NaN : s[s.length - 1]!, slow: s.filter((x) => x > SLOW_MS).length, failed };
}

async function timed(url: string, onBody?: (text: string) => void): Promise<number | null> {
  const t = performance.now();
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await r.text();
    const ms = performance.now() - t;
    if (onBody !== undefined) onBody(text);
    return r.status === 200 ? ms : null;
  } catch {
    return null;
  }
}

type LoopFigures = { maxMs: number; pollMaxMs: number; taskMaxMs: number; taskMaxKind: string; frontLoopMaxMs: number; shardStatsMs: number };

/** the longest loop block, ring slice and task body over the shards in a /healthz body, or null */
function workerLoopOf(text: string): LoopFigures | null {
  try {
    const h = JSON.parse(text) as { shards?: { loopDelay?: LoopFigures | null }[]; frontEnd?: { loopMaxMs: number; shardStatsMs: number } };
    let seen = false;
    const max: LoopFigures = { maxMs: 0, pollMaxMs: 0, taskMaxMs: 0, taskMaxKind: '', frontLoopMaxMs: h.frontEnd?.loopMaxMs ?? NaN, shardStatsMs: h.frontEnd?.shardStatsMs ?? NaN };
    for (const s of h.shards ?? []) {
      const l = s.loopDelay;
      if (!l) continue;
      seen = true;
      max.maxMs = Math.max(max.maxMs, l.maxMs);
      max.pollMaxMs = Math.max(max.pollMaxMs, l.pollMaxMs ?? 0);
      if ((l.taskMaxMs ?? 0) > max.taskMaxMs) {
        max.taskMaxMs = l.taskMaxMs;
        max.taskMaxKind = l.taskMaxKind ?? '?';
      }
    }
    return seen ? max : null;
  } catch {
    return null;
  }
}

/** paths(): the query paths to rotate through, asked anew each time (time ranges move with the load) */
export function startProber(port: number, paths: () => string[]): { stop(): Promise<Responsiveness> } {
  const health: number[] = [];
  const queries: number[] = [];
  const loopMax: number[] = [];
  const pollMax: number[] = [];
  const taskMax: number[] = [];
  const frontLoopMax: number[] = [];
  const statsWait: number[] = [];
  const byPath: number[][] = [];
  const failedByPath: number[] = [];
  const slowTaskKinds: Record<string, number> = {};
  const slowHealth: string[] = [];
  const slowQueries: string[] = [];
  const started = performance.now();
  let healthFailed = 0;
  let queriesFailed = 0;
  let running = true;
  let turn = 0;
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const healthLoop = (async () => {
    while (running) {
      let seen: LoopFigures | null = null;
      const ms = await timed(`http://127.0.0.1:${port}/healthz`, (text) => {
        const m = seen = workerLoopOf(text);
        if (m === null) return;
        loopMax.push(m.maxMs);
        pollMax.push(m.pollMaxMs);
        taskMax.push(m.taskMaxMs);
        if (Number.isFinite(m.frontLoopMaxMs)) frontLoopMax.push(m.frontLoopMaxMs);
        if (Number.isFinite(m.shardStatsMs)) statsWait.push(m.shardStatsMs);
        if (m.taskMaxMs > SLOW_MS) slowTaskKinds[m.taskMaxKind] = (slowTaskKinds[m.taskMaxKind] ?? 0) + 1;
      });
      if (ms === null) healthFailed++;
      else health.push(ms);
      if (ms !== null && ms > SLOW_MS) {
        const m = seen as LoopFigures | null;
        const f = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(0));
        slowHealth.push(`${((performance.now() - started) / 1000).toFixed(1)} s: ${f(ms)} ms (front-end loop max ${f(m?.frontLoopMaxMs)}, ` +
          `stats wait ${f(m?.shardStatsMs)}, worker loop max ${f(m?.maxMs)}, slice max ${f(m?.pollMaxMs)}, task max ${f(m?.taskMaxMs)} ${m?.taskMaxKind ?? ''})`);
      }
      await sleep(HEALTH_EVERY_MS);
    }
  })();
  const queryLoop = (async () => {
    while (running) {
      await sleep(QUERY_EVERY_MS);
      const list = paths();
      if (list.length === 0) continue;
      const at = turn++ % list.length;
      const ms = await timed(`http://127.0.0.1:${port}${list[at]}`);
      byPath[at] ??= [];
      failedByPath[at] ??= 0;
      if (ms === null) {
        queriesFailed++;
        failedByPath[at]++;
      } else {
        queries.push(ms);
        byPath[at].push(ms);
        if (ms > SLOW_MS) slowQueries.push(`${((performance.now() - started) / 1000).toFixed(1)} s: ${ms.toFixed(0)} ms (path ${at})`);
      }
    }
  })();
  return {
    async stop(): Promise<Responsiveness> {
      running = false;
      await Promise.all([healthLoop, queryLoop]);
      return { health: figures(health, healthFailed), queries: figures(queries, queriesFailed), workerLoopMax: figures(loopMax, 0),
        workerPollMax: figures(pollMax, 0), workerTaskMax: figures(taskMax, 0),
        frontLoopMax: figures(frontLoopMax, 0), shardStatsWait: figures(statsWait, 0), slowHealth, slowQueries,
        queriesByPath: Array.from(byPath, (ms, i) => figures(ms ?? [], failedByPath[i] ?? 0)), slowTaskKinds };
    },
  };
}

export function describeLatency(name: string, f: LatencyFigures): string {
  const n = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
  return `${name}: ${f.samples} answers, p50 ${n(f.p50)} ms, p99 ${n(f.p99)} ms, max ${n(f.max)} ms, ${f.slow} over ${SLOW_MS} ms, ${f.failed} failed`;
}
