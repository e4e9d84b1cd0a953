/**
 * What a scenario is and what it returns, and the two shapes most scenarios share: a WebSocket
 * load and an HTTP load, each measured against the engine and against its ceiling in the same
 * run, in alternating order (uWS's habit: the order a target runs in should not favour it).
 */

import { startHttpGen, startWsGen, WRK_INSTALL_HINT, type HttpLoad } from './loadgen';
import { ceilingCounter, engineCounter, measurePhase, type BenchOptions, type Measure } from './measure';
import { PINNED, WRK, startCeiling, startEngine, type Server } from './proc';
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
  generator: string;
  notes: string[];
  /** scenario-specific figures (query latencies, memory per series) */
  extra?: Record<string, unknown>;
}

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

type Target = 'engine' | 'ceiling';

/** Even scenarios measure the ceiling first, odd ones the engine first. */
export function order(index: number): Target[] {
  return index % 2 === 0 ? ['ceiling', 'engine'] : ['engine', 'ceiling'];
}

async function withServer<T>(target: Target, f: (s: Server) => Promise<T>): Promise<T> {
  const server = target === 'engine' ? await startEngine() : await startCeiling();
  try {
    return await f(server);
  } finally {
    await server.stop();
  }
}

export function ratioOf(engine: Measure, ceiling: Measure): number | null {
  return ceiling.eventsPerSec > 0 ? engine.eventsPerSec / ceiling.eventsPerSec : null;
}

function notesOf(r: Record<Target, Measure>): string[] {
  const notes: string[] = [];
  if (!PINNED) notes.push('not pinned: taskset missing or fewer than 2 CPUs, server and generator share cores');
  for (const t of ['engine', 'ceiling'] as Target[]) {
    if (r[t].generatorSaturated) notes.push(`${t}: the generator saturated its core (${r[t].generatorCpuPercent.toFixed(0)} %): the rate is the generator's, read ns/event`);
    if (r[t].refused > 0) notes.push(`${t}: ${r[t].refused} frames/requests refused (backpressure or non-2xx) and resent/counted out`);
  }
  return notes;
}

export function wsScenario(name: string, description: string, kind: WsFrameKind): Scenario {
  return {
    name, description,
    async run(opts, index) {
      const measures = {} as Record<Target, Measure>;
      for (const target of order(index)) {
        measures[target] = await withServer(target, async (server) => {
          const gen = await startWsGen({
            host: '127.0.0.1', port: server.port, path: '/v1/stream', kind, connections: opts.connections,
            window: opts.window, devices: opts.devices, eventsPerFrame: opts.eventsPerFrame, eventsPerSec: 0, load: true,
          });
          try {
            const counter = target === 'engine' ? engineCounter(server) : ceilingCounter(server, 'messages', opts.eventsPerFrame);
            return (await measurePhase({ label: `${name} ${target}`, target, server, gen, counter, eventsPerUnit: opts.eventsPerFrame, opts })).measure;
          } finally {
            await gen.stop();
          }
        });
      }
      return {
        name, status: 'ok', description, engine: measures.engine, ceiling: measures.ceiling,
        ratio: ratioOf(measures.engine, measures.ceiling),
        generator: `raw WebSocket generator, ${opts.connections} connections x ${opts.window} frames in flight`,
        notes: notesOf(measures),
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
      const measures = {} as Record<Target, Measure>;
      let connections = 0;
      for (const target of order(index)) {
        measures[target] = await withServer(target, async (server) => {
          const l = { ...load(server.port), port: server.port };
          connections = l.connections;
          const gen = await startHttpGen(l);
          try {
            const counter = target === 'engine' ? engineCounter(server) : ceilingCounter(server, 'requests', eventsPerRequest);
            return (await measurePhase({ label: `${name} ${target}`, target, server, gen, counter, eventsPerUnit: eventsPerRequest, opts })).measure;
          } finally {
            await gen.stop();
          }
        });
      }
      const notes = notesOf(measures);
      if (WRK === null) notes.unshift(WRK_INSTALL_HINT);
      return {
        name, status: 'ok', description, engine: measures.engine, ceiling: measures.ceiling,
        ratio: ratioOf(measures.engine, measures.ceiling),
        generator: WRK !== null ? `wrk, 1 thread, ${connections} keep-alive connections` : `Node HTTP generator (fallback), ${connections} keep-alive connections`,
        notes,
      };
    },
  };
}
