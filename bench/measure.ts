/**
 * One measured run of one target (the engine or its ceiling) under one load generator:
 * warm-up, then a measured phase bounded by two readings of the server's counter (events the
 * engine's workers applied, from /healthz; messages or requests the ceiling counted), of the
 * server's and the generator's CPU time (/proc), and of the generator's own figures.
 */

import type { Percentiles } from './histogram';
import type { GenReport, LoadGen } from './loadgen';
import { ceilingCount, cpuNs, threadCpuNs, engineApplied, naiveCount, rssBytes, sleep, type EngineHealth, type IngestCounters, type Server } from './proc';

export interface BenchOptions {
  durationS: number;
  warmupS: number;
  quick: boolean;
  connections: number;
  window: number;
  devices: number;
  eventsPerFrame: number;
  progress: (line: string) => void;
  /** --targets: the ingest scenarios run only these (unset: engine, ceiling and naive) */
  targets?: Target[];
  /** the event-time scenario's --et-devices, --et-minutes, --et-limit (unset: its defaults) */
  eventTime?: { devices?: number; minutes?: number; limitS?: number };
}

/** what a measure is of: the engine, the bare uWS ceiling, or the naive node:http + ws server */
export type Target = 'engine' | 'ceiling' | 'naive';

export interface Measure {
  target: Target;
  seconds: number;
  events: number;
  eventsPerSec: number;
  /** payload bytes per second (frames or bodies, without WebSocket/HTTP headers) */
  mbPerSec: number;
  latencyMs: Percentiles;
  serverCpuPercent: number;
  /** server CPU time (all threads, from /proc) per event, ns */
  serverNsPerEvent: number;
  serverRssBytes: number;
  /**
   * the server's CPU per event by thread (ns): its main thread (the engine's front-end), the
   * busiest other thread (with one shard, the shard worker) and all the others (libuv's pool with
   * LMDB's writes, V8's GC helpers)
   */
  threadNsPerEvent?: { main: number; busiest: number; others: number };
  generatorCpuPercent: number;
  generatorSaturated: boolean;
  /** frames resent after backpressure / non-2xx answers during the measured phase */
  refused: number;
  /** engine only: what /healthz said over the measured phase (counter deltas) */
  engineHealth?: EngineHealthDelta;
}

export interface EngineHealthDelta {
  /** ingest counters' increase over the phase (backpressure, batchesRefused, unavailable...) */
  ingest: IngestCounters;
  /** WAL appends (commit groups) over the phase; 0 when the engine has no WAL */
  walAppends: number;
  /** admitted batches those appends held (requests or frames); 0 from an engine before group commit */
  walBatches: number;
  walFailures: number;
  /** commits still pending when the phase ended */
  pendingCommitsAtEnd: number;
  /** /healthz answers that were 503 (a shard missed its stats deadline) among the phase's readings */
  healthz503: number;
  /** status of the last /healthz */
  statusAtEnd: string;
}

export const SATURATED_PERCENT = 90;

export type Counter = () => Promise<number>;

export interface EngineCounter {
  (): Promise<number>;
  last: EngineHealth | null;
  healthz503: number;
}

/** Events applied by the engine's workers so far; keeps the last /healthz body and counts its 503s. */
export function engineCounter(server: Server): EngineCounter {
  const c = (async () => {
    const r = await engineApplied(server.port);
    c.last = r.health;
    if (r.status === 503) c.healthz503++;
    return r.applied;
  }) as EngineCounter;
  c.last = null;
  c.healthz503 = 0;
  return c;
}

function healthDelta(a: EngineHealth, b: EngineHealth, healthz503: number): EngineHealthDelta {
  const ingest = {} as IngestCounters;
  for (const k of Object.keys(b.ingest) as (keyof IngestCounters)[]) ingest[k] = b.ingest[k] - (a.ingest[k] ?? 0);
  return {
    ingest,
    walAppends: (b.storage?.wal.walAppends ?? 0) - (a.storage?.wal.walAppends ?? 0),
    walBatches: (b.storage?.wal.walBatches ?? 0) - (a.storage?.wal.walBatches ?? 0),
    walFailures: (b.storage?.wal.walFailures ?? 0) - (a.storage?.wal.walFailures ?? 0),
    pendingCommitsAtEnd: b.storage?.pendingCommits ?? 0,
    healthz503,
    statusAtEnd: b.status ?? 'unknown',
  };
}

/** Events the ceiling received so far: messages (or requests) x events per message. */
export function ceilingCounter(server: Server, kind: 'messages' | 'requests', eventsPerUnit: number): Counter {
  return async () => (await ceilingCount(server.port))[kind] * eventsPerUnit;
}

/** Events the naive server counted so far (it counts each valid event it decoded). */
export function naiveCounter(server: Server): Counter {
  return async () => (await naiveCount(server.port)).events;
}

function pct(ns: number, seconds: number): number {
  return (ns / (seconds * 1e9)) * 100;
}

export interface PhaseOptions {
  label: string;
  target: Target;
  server: Server;
  gen: LoadGen;
  counter: Counter;
  /** events in one frame or request */
  eventsPerUnit: number;
  opts: BenchOptions;
  /** skip the warm-up (the caller warmed up already) */
  warm?: boolean;
  /** work to do during the measured phase (query-under-load's queries) */
  during?: (untilMs: number) => Promise<void>;
}

interface Snapshot { t: number; count: number; serverCpu: number; genCpu: number; threads: Map<number, number> }

/**
 * Time and CPU are read just before the counter request is sent: the engine reads its ring
 * counters when the request arrives, but /healthz may answer seconds later under load (it also
 * waits for each shard's stats task), so the response time is not the counter's time.
 */
async function snapshot(p: PhaseOptions): Promise<Snapshot> {
  const t = performance.now();
  const serverCpu = cpuNs(p.server.pid);
  const threads = threadCpuNs(p.server.pid);
  const genCpu = p.gen.cpuNs();
  const count = await p.counter();
  return { t, count, serverCpu, genCpu, threads };
}

/** The CPU of the phase per event, split into the main thread, the busiest other one and the rest. */
function threadSplit(pid: number, t0: Map<number, number>, t1: Map<number, number>, events: number): { main: number; busiest: number; others: number } {
  let main = 0;
  let busiest = 0;
  let total = 0;
  for (const [tid, ns] of t1) {
    const d = ns - (t0.get(tid) ?? 0);
    total += d;
    if (tid === pid) main = d;
    else if (d > busiest) busiest = d;
  }
  return { main: main / events, busiest: busiest / events, others: (total - main - busiest) / events };
}

/** Runs warm-up + measured phase and returns the figures; the caller stops the processes. */
export async function measurePhase(p: PhaseOptions): Promise<{ measure: Measure; gen: GenReport }> {
  const { opts } = p;
  if (!p.warm) {
    opts.progress(`${p.label}: warm-up ${opts.warmupS} s`);
    await p.gen.warmup(opts.warmupS);
  }
  await p.gen.mark();
  const ec = 'healthz503' in p.counter ? p.counter as EngineCounter : null;
  const s0 = await snapshot(p);
  const h0 = ec?.last ?? null;
  const n503 = ec?.healthz503 ?? 0;
  const t0 = s0.t;
  opts.progress(`${p.label}: measuring ${opts.durationS} s`);
  const endAt = t0 + opts.durationS * 1000;
  const ticker = (async () => {
    for (let left = opts.durationS - 1; left > 0; left--) {
      const wait = endAt - left * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      if (left % 5 === 0 || left <= 3) opts.progress(`${p.label}: measuring, ${left} s left`);
    }
  })();
  if (p.during) await p.during(endAt);
  const rest = endAt - performance.now();
  if (rest > 0) await sleep(rest);
  await ticker;
  const s1 = await snapshot(p);
  const h1 = ec?.last ?? null;
  const rss = rssBytes(p.server.pid);
  const report = await p.gen.report();
  const seconds = (s1.t - s0.t) / 1000;
  const events = s1.count - s0.count;
  const eventsPerSec = events / seconds;
  const bytesPerEvent = report.units > 0 ? report.bytes / (report.units * p.eventsPerUnit) : 0;
  const generatorCpuPercent = pct(s1.genCpu - s0.genCpu, seconds);
  const measure: Measure = {
    target: p.target,
    seconds,
    events,
    eventsPerSec,
    mbPerSec: (eventsPerSec * bytesPerEvent) / 1e6,
    latencyMs: report.latencyMs,
    serverCpuPercent: pct(s1.serverCpu - s0.serverCpu, seconds),
    serverNsPerEvent: events > 0 ? (s1.serverCpu - s0.serverCpu) / events : 0,
    serverRssBytes: rss,
    generatorCpuPercent,
    generatorSaturated: generatorCpuPercent > SATURATED_PERCENT,
    refused: report.refused,
  };
  if (events > 0) measure.threadNsPerEvent = threadSplit(p.server.pid, s0.threads, s1.threads, events);
  if (ec && h0 && h1) measure.engineHealth = healthDelta(h0, h1, ec.healthz503 - n503);
  opts.progress(`${p.label}: ${Math.round(eventsPerSec).toLocaleString('en-US')} events/s, generator CPU ${generatorCpuPercent.toFixed(0)} %`);
  return { measure, gen: report };
}
