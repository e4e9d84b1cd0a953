/**
 * One measured run of one target (the engine or its ceiling) under one load generator:
 * warm-up, then a measured phase bounded by two readings of the server's counter (events the
 * engine's workers applied, from /healthz; messages or requests the ceiling counted), of the
 * server's and the generator's CPU time (/proc), and of the generator's own figures.
 */

import type { Percentiles } from './histogram';
import type { GenReport, LoadGen } from './loadgen';
import { ceilingCount, cpuNs, engineApplied, rssBytes, sleep, type Server } from './proc';

export interface BenchOptions {
  durationS: number;
  warmupS: number;
  quick: boolean;
  connections: number;
  window: number;
  devices: number;
  eventsPerFrame: number;
  progress: (line: string) => void;
}

export interface Measure {
  target: 'engine' | 'ceiling';
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
  generatorCpuPercent: number;
  generatorSaturated: boolean;
  /** frames resent after backpressure / non-2xx answers during the measured phase */
  refused: number;
}

export const SATURATED_PERCENT = 90;

export type Counter = () => Promise<number>;

/** Events applied by the engine's workers so far. */
export function engineCounter(server: Server): Counter {
  return async () => (await engineApplied(server.port)).applied;
}

/** Events the ceiling received so far: messages (or requests) x events per message. */
export function ceilingCounter(server: Server, kind: 'messages' | 'requests', eventsPerUnit: number): Counter {
  return async () => (await ceilingCount(server.port))[kind] * eventsPerUnit;
}

function pct(ns: number, seconds: number): number {
  return (ns / (seconds * 1e9)) * 100;
}

export interface PhaseOptions {
  label: string;
  target: 'engine' | 'ceiling';
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

interface Snapshot { t: number; count: number; serverCpu: number; genCpu: number }

/**
 * Time and CPU are read just before the counter request is sent: the engine reads its ring
 * counters when the request arrives, but /healthz may answer seconds later under load (it also
 * waits for each shard's stats task), so the response time is not the counter's time.
 */
async function snapshot(p: PhaseOptions): Promise<Snapshot> {
  const t = performance.now();
  const serverCpu = cpuNs(p.server.pid);
  const genCpu = p.gen.cpuNs();
  const count = await p.counter();
  return { t, count, serverCpu, genCpu };
}

/** Runs warm-up + measured phase and returns the figures; the caller stops the processes. */
export async function measurePhase(p: PhaseOptions): Promise<{ measure: Measure; gen: GenReport }> {
  const { opts } = p;
  if (!p.warm) {
    opts.progress(`${p.label}: warm-up ${opts.warmupS} s`);
    await p.gen.warmup(opts.warmupS);
  }
  await p.gen.mark();
  const s0 = await snapshot(p);
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
  opts.progress(`${p.label}: ${Math.round(eventsPerSec).toLocaleString('en-US')} events/s, generator CPU ${generatorCpuPercent.toFixed(0)} %`);
  return { measure, gen: report };
}
