/**
 * What a scenario is and what it returns, and the two shapes most scenarios share: a WebSocket
 * load and an HTTP load, each measured against the engine, against its ceiling (bare uWS) and
 * against the naive server (node:http + ws + msgpackr + a Map: what a user would write instead)
 * in the same run, in alternating order (uWS's habit: the order a target runs in should not
 * favour it).
 */

import { startHttpGen, startWsGen, WRK_INSTALL_HINT, type HttpLoad } from './loadgen';
import { ceilingCounter, engineCounter, measurePhase, naiveCounter, type BenchOptions, type Counter, type Measure, type Target } from './measure';
import { PINNED, WRK, engineWarnings, startCeiling, startEngine, startNaive, type EngineOptions, type Server } from './proc';
import type { WsFrameKind } from './frames';

export type ScenarioStatus = 'ok' | 'not yet available' | 'failed';

export interface ScenarioResult {
  name: string;
  status: ScenarioStatus;
  description: string;
  /** why not available / why failed */
  reason?: string;
  engine: Measure | null;
  ceiling: Measure | null;
  /** engine events/s over ceiling events/s */
  ratio: number | null;
  /** the naive server's measure (ingest scenarios), and engine events/s over its events/s */
  naive?: Measure | null;
  naiveRatio?: number | null;
  generator: string;
  notes: string[];
  /** scenario-specific figures (query latencies, memory per series) */
  extra?: Record<string, unknown>;
  /** rows other than engine/ceiling (durable-vs-fast): the table prints these instead, label in the target column */
  rows?: LabelledRow[];
}

export interface LabelledRow { label: string; measure: Measure; ratio?: string }

export interface Scenario {
  name: string;
  description: string;
  run(opts: BenchOptions, index: number): Promise<ScenarioResult>;
}

export function notYetAvailable(name: string, description: string, reason: string): Scenario {
  return {
    name, description,
    async run() {
      return { name, status: 'not yet available', description, reason, engine: null, ceiling: null, ratio: null, generator: '', notes: [] };
    },
  };
}

/** Even scenarios measure the ceiling first, odd ones the engine first; the naive server runs in the middle. */
export function orderWithNaive(index: number, only?: Target[]): Target[] {
  const order: Target[] = index % 2 === 0 ? ['ceiling', 'naive', 'engine'] : ['engine', 'naive', 'ceiling'];
  return only === undefined ? order : order.filter((t) => only.includes(t));
}

function startTarget(target: Target, engine: EngineOptions): Promise<Server> {
  switch (target) {
    case 'engine': return startEngine(engine);
    case 'ceiling': return startCeiling();
    case 'naive': return startNaive();
  }
}

/** What counts a target's events: the engine's applied events, the ceiling's units x events, the naive server's counted events. */
function counterOf(target: Target, server: Server, unit: 'messages' | 'requests', eventsPerUnit: number): Counter {
  switch (target) {
    case 'engine': return engineCounter(server);
    case 'ceiling': return ceilingCounter(server, unit, eventsPerUnit);
    case 'naive': return naiveCounter(server);
  }
}

/**
 * Runs f against a fresh server; for the engine, its log lines at warn level and above (and a
 * non-zero exit after SIGTERM) are added to `warnings` with the label.
 */
export async function withServer<T>(target: Target, f: (s: Server) => Promise<T>, engine: EngineOptions = {},
  warnings: string[] = [], label: string = target): Promise<T> {
  const server = await startTarget(target, engine);
  let code: number | null = 0;
  try {
    return await f(server);
  } finally {
    code = await server.stop();
    if (target === 'engine') {
      for (const w of engineWarnings(server)) warnings.push(`${label}: engine log: ${w}`);
      if (code !== 0) warnings.push(`${label}: the engine exited with ${code} after SIGTERM`);
    }
  }
}

/** One line on what the engine's /healthz counted during a measured phase, when something is off. */
export function healthNotes(label: string, m: Measure): string[] {
  const h = m.engineHealth;
  if (!h) return [];
  const out: string[] = [];
  const i = h.ingest;
  const off = Object.entries({ backpressure: i.backpressure, batchesRefused: i.batchesRefused, unavailable: i.unavailable, eventsRejected: i.eventsRejected, gaps: i.gaps, duplicates: i.duplicates, walFailures: h.walFailures, 'healthz 503': h.healthz503 })
    .filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`);
  if (off.length) out.push(`${label}: engine /healthz over the measured phase: ${off.join(', ')}`);
  if (h.statusAtEnd !== 'ok') out.push(`${label}: engine /healthz status at the end: ${h.statusAtEnd}`);
  return out;
}

/** The WebSocket load of `kind` against a running server, warm-up + measured phase. */
export async function measureWs(server: Server, target: Target, kind: WsFrameKind, opts: BenchOptions, label: string): Promise<Measure> {
  const gen = await startWsGen({
    host: '127.0.0.1', port: server.port, path: '/v1/stream', kind, connections: opts.connections,
    window: opts.window, devices: opts.devices, eventsPerFrame: opts.eventsPerFrame, eventsPerSec: 0, load: true,
    authorization: server.authorization,
  });
  try {
    const counter = counterOf(target, server, 'messages', opts.eventsPerFrame);
    return (await measurePhase({ label, target, server, gen, counter, eventsPerUnit: opts.eventsPerFrame, opts })).measure;
  } finally {
    await gen.stop();
  }
}

/** An HTTP load (wrk, or the Node fallback) against a running server, warm-up + measured phase. */
export async function measureHttp(server: Server, target: Target, load: Omit<HttpLoad, 'port'>, eventsPerRequest: number,
  opts: BenchOptions, label: string): Promise<Measure> {
  const gen = await startHttpGen({ ...load, port: server.port, authorization: server.authorization });
  try {
    const counter = counterOf(target, server, 'requests', eventsPerRequest);
    return (await measurePhase({ label, target, server, gen, counter, eventsPerUnit: eventsPerRequest, opts })).measure;
  } finally {
    await gen.stop();
  }
}

export function ratioOf(engine: Measure, ceiling: Measure): number | null {
  return ceiling.eventsPerSec > 0 ? engine.eventsPerSec / ceiling.eventsPerSec : null;
}

function notesOf(r: Partial<Record<Target, Measure>>): string[] {
  const notes: string[] = [];
  if (!PINNED) notes.push('not pinned: taskset missing or fewer than 2 CPUs, server and generator share cores');
  for (const t of ['engine', 'ceiling', 'naive'] as Target[]) {
    if (r[t] === undefined) continue;
    const m = r[t];
    if (m.generatorSaturated) notes.push(`${t}: the generator saturated its core (${m.generatorCpuPercent.toFixed(0)} %): the rate is the generator's, read ns/event`);
    if (m.refused > 0) notes.push(`${t}: ${m.refused} frames/requests refused (backpressure or non-2xx) and resent/counted out`);
  }
  const th = r.engine?.threadNsPerEvent;
  if (th !== undefined) {
    notes.push(`engine CPU per event by thread: front-end ${Math.round(th.main)} ns, busiest other thread (the shard worker) ${Math.round(th.busiest)} ns, all others (LMDB writes on libuv's pool, GC helpers) ${Math.round(th.others)} ns`);
  }
  const h = r.engine?.engineHealth;
  if (h !== undefined && h.walAppends > 0 && h.walBatches > 0) {
    notes.push(`engine: ${h.walBatches.toLocaleString('en-US')} batches in ${h.walAppends.toLocaleString('en-US')} WAL commits (${(h.walBatches / h.walAppends).toFixed(1)} per commit)`);
  }
  if (r.engine !== undefined && r.naive !== undefined && r.naive.eventsPerSec > 0) {
    notes.push(`engine / naive: ${(r.engine.eventsPerSec / r.naive.eventsPerSec).toFixed(2)}x the events/s at ` +
      `${(r.engine.serverNsPerEvent / r.naive.serverNsPerEvent).toFixed(2)}x the CPU per event (engine ${Math.round(r.engine.serverNsPerEvent).toLocaleString('en-US')} ns, naive ${Math.round(r.naive.serverNsPerEvent).toLocaleString('en-US')} ns)`);
  }
  return notes;
}

/** The fields of a result measured against all three targets. */
function threeWay(measures: Partial<Record<Target, Measure>>): Pick<ScenarioResult, 'engine' | 'ceiling' | 'ratio' | 'naive' | 'naiveRatio'> {
  const { engine, ceiling, naive } = measures;
  return {
    engine: engine ?? null, ceiling: ceiling ?? null, ratio: engine && ceiling ? ratioOf(engine, ceiling) : null,
    naive: naive ?? null, naiveRatio: engine && naive ? ratioOf(engine, naive) : null,
  };
}

export function wsScenario(name: string, description: string, kind: WsFrameKind): Scenario {
  return {
    name, description,
    async run(opts, index) {
      const measures: Partial<Record<Target, Measure>> = {};
      const warnings: string[] = [];
      for (const target of orderWithNaive(index, opts.targets)) {
        measures[target] = await withServer(target, (server) => measureWs(server, target, kind, opts, `${name} ${target}`), {}, warnings);
      }
      return {
        name, status: 'ok', description, ...threeWay(measures),
        generator: `raw WebSocket generator, ${opts.connections} connections x ${opts.window} frames in flight`,
        notes: [...notesOf(measures), ...(measures.engine ? healthNotes('engine', measures.engine) : []), ...warnings],
      };
    },
  };
}

export function httpScenario(name: string, description: string, load: (port: number) => Omit<HttpLoad, 'port'>,
  eventsPerRequest: number): Scenario {
  return {
    name, description,
    async run(opts, index) {
      if (WRK === null) opts.progress(WRK_INSTALL_HINT);
      const measures: Partial<Record<Target, Measure>> = {};
      const warnings: string[] = [];
      let connections = 0;
      for (const target of orderWithNaive(index, opts.targets)) {
        measures[target] = await withServer(target, async (server) => {
          const l = load(server.port);
          connections = l.connections;
          return measureHttp(server, target, l, eventsPerRequest, opts, `${name} ${target}`);
        }, {}, warnings);
      }
      const notes = [...notesOf(measures), ...(measures.engine ? healthNotes('engine', measures.engine) : []), ...warnings];
      if (WRK === null) notes.unshift(WRK_INSTALL_HINT);
      return {
        name, status: 'ok', description, ...threeWay(measures),
        generator: WRK !== null ? `wrk, 1 thread, ${connections} keep-alive connections` : `Node HTTP generator (fallback), ${connections} keep-alive connections`,
        notes,
      };
    },
  };
}
