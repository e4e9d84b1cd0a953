/**
 * query-under-load: latency of GET /v1/devices/{id}/metrics/cpu and of the fleet query
 * GET /v1/metrics/cpu, each over the current hour (the default range: open panes in memory) and
 * over a past hour (from/to = an hour 3 hours ago, resolution=1m: closed rollups in LMDB), while
 * the ws-msgpack load runs at about half of its maximum rate. The maximum is calibrated on the
 * same engine first (a short unthrottled phase). The ceiling row is the bare server under the
 * same throttled load answering each GET with a fixed small body: the floor of a query's round
 * trip on this machine.
 *
 * The past hour is seeded before the load: the same devices, one cpu reading per device per
 * minute of that hour (msgpack frames of 1,000 events, in event-time order, so panes close as
 * the watermark moves), then one reading per device at the current time, which moves every
 * shard's watermark past the hour: its last panes close into LMDB. The seeding waits until the
 * panes left memory and checks the hour with a fleet query (60 windows of `devices` events).
 */

import { HttpConn } from '../http-conn';
import { LatencyHistogram } from '../histogram';
import { startWsGen } from '../loadgen';
import { ceilingCounter, engineCounter, measurePhase, type BenchOptions, type Counter, type Measure } from '../measure';
import { deviceId, rng } from '../frames';
import { PINNED, engineApplied, getJson, sleep, startCeiling, startEngine, type Server } from '../proc';
import type { Scenario, ScenarioResult } from '../scenario';

const QUERY_INTERVAL_MS = 10;
const NAME = 'query-under-load';
const HOUR_MS = 3600_000;
/** the seeded past hour starts this many hours before the current hour */
const PAST_HOURS_AGO = 3;
const SEED_STEP_MS = 60_000;
const SEED_EVENTS_PER_FRAME = 1000;
const SEED_LIMIT_MS = 600_000;

type Summary = ReturnType<LatencyHistogram['summaryMs']>;

interface QueryFigures {
  /** current hour (the default range) */
  device: Summary;
  fleet: Summary;
  /** the seeded past hour at resolution=1m */
  pastDevice: Summary;
  pastFleet: Summary;
  errors: number;
}

const KINDS = ['device', 'fleet', 'pastDevice', 'pastFleet'] as const;

function pastHourStart(now: number): number {
  return Math.floor(now / HOUR_MS) * HOUR_MS - PAST_HOURS_AGO * HOUR_MS;
}

/** The four queries in turn, one every QUERY_INTERVAL_MS; past: the seeded hour's start. */
async function queryLoop(port: number, devices: number, past: number, untilMs: number): Promise<QueryFigures> {
  const conn = await HttpConn.open('127.0.0.1', port);
  const hist = { device: new LatencyHistogram(), fleet: new LatencyHistogram(), pastDevice: new LatencyHistogram(), pastFleet: new LatencyHistogram() };
  const range = `from=${past}&to=${past + HOUR_MS}&resolution=1m`;
  const r = rng(42);
  let errors = 0;
  try {
    let next = performance.now();
    for (let i = 0; performance.now() < untilMs; i++) {
      const kind = KINDS[i % KINDS.length];
      const device = `/v1/devices/${deviceId(Math.floor(r() * devices))}/metrics/cpu`;
      const path = kind === 'device' ? device : kind === 'fleet' ? '/v1/metrics/cpu' : kind === 'pastDevice' ? `${device}?${range}` : `/v1/metrics/cpu?${range}`;
      const t = performance.now();
      const res = await conn.get(path);
      hist[kind].record((performance.now() - t) * 1000);
      if (res.status !== 200) errors++;
      next += QUERY_INTERVAL_MS;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
  } finally {
    conn.close();
  }
  return {
    device: hist.device.summaryMs(), fleet: hist.fleet.summaryMs(), pastDevice: hist.pastDevice.summaryMs(),
    pastFleet: hist.pastFleet.summaryMs(), errors,
  };
}

export interface PastHourSeed {
  hourStart: number;
  devices: number;
  events: number;
  /** sending the hour + the closing step, until the last ack */
  sendSeconds: number;
  /** from the last ack until the hour's panes left memory */
  closeSeconds: number;
  panesAfter: number | null;
  /** the fleet query over the hour after seeding: windows and their counts */
  check: { windows: number; counts: number[]; devices: number; ok: boolean };
}

/**
 * Seeds the past hour (one reading per device per minute, in event-time order), then one reading
 * per device now, so every shard's watermark passes the hour; waits until its panes left memory.
 */
async function seedPastHour(server: Server, opts: BenchOptions, now: number): Promise<PastHourSeed> {
  const devices = opts.devices;
  const hourStart = pastHourStart(now);
  const steps = HOUR_MS / SEED_STEP_MS;
  const gen = await startWsGen({
    host: '127.0.0.1', port: server.port, path: '/v1/stream', kind: 'msgpack', connections: 4,
    window: 8, devices: 0, eventsPerFrame: SEED_EVENTS_PER_FRAME, eventsPerSec: 0, load: false,
  });
  const t0 = performance.now();
  try {
    opts.progress(`${NAME} engine: seeding the past hour ${new Date(hourStart).toISOString()}: ${devices.toLocaleString('en-US')} devices x ${steps} readings`);
    let done = gen.waitFor('steps-done', SEED_LIMIT_MS);
    gen.send({ cmd: 'steps', steps: { devices, fromMs: hourStart, stepMs: SEED_STEP_MS, steps, spreadMs: SEED_STEP_MS, eventsPerFrame: SEED_EVENTS_PER_FRAME } });
    await done;
    // one reading per device, a little before now: every shard's watermark passes the past hour
    done = gen.waitFor('steps-done', SEED_LIMIT_MS);
    gen.send({ cmd: 'steps', steps: { devices, fromMs: Math.floor(Date.now() / 10_000) * 10_000 - 10_000, stepMs: 10_000, steps: 1, spreadMs: 10_000, eventsPerFrame: SEED_EVENTS_PER_FRAME } });
    await done;
  } finally {
    await gen.stop();
  }
  const sendSeconds = (performance.now() - t0) / 1000;
  const events = devices * (steps + 1);
  const t1 = performance.now();
  let panesAfter: number | null = null;
  for (;;) {
    const { applied, health } = await engineApplied(server.port);
    const panes = health.shards.reduce((a, s) => a + (s.panes ?? NaN), 0);
    // the current step is 1-2 panes per device; the past hour's 60 per device must be gone
    if (applied >= events && Number.isFinite(panes) && panes <= 2 * devices) { panesAfter = panes; break; }
    if (performance.now() - t1 > SEED_LIMIT_MS) throw new Error(`the seeded past hour did not close in ${SEED_LIMIT_MS / 1000} s (applied ${applied} of ${events}, panes ${panes})`);
    await sleep(500);
  }
  // a query waits for the shards' pending rollup writes: the hour is in LMDB when it answers
  const q = await getJson<{ devices: number; windows: { count: number }[] }>(`http://127.0.0.1:${server.port}/v1/metrics/cpu?from=${hourStart}&to=${hourStart + HOUR_MS}&resolution=1m`);
  const closeSeconds = (performance.now() - t1) / 1000;
  const counts = [...new Set(q.windows.map((w) => w.count))];
  const check = { windows: q.windows.length, counts, devices: q.devices, ok: q.windows.length === steps && counts.length === 1 && counts[0] === devices && q.devices === devices };
  opts.progress(`${NAME} engine: past hour seeded in ${sendSeconds.toFixed(1)} s, closed ${closeSeconds.toFixed(1)} s later (${panesAfter} panes left); ` +
    `fleet query: ${check.windows} windows of ${counts.join('/')} events, ${q.devices} devices${check.ok ? '' : ' (WRONG: expected 60 windows of one event per device)'}`);
  return { hourStart, devices, events, sendSeconds, closeSeconds, panesAfter, check };
}

async function run(target: 'engine' | 'ceiling', opts: BenchOptions, halfRate: number | null): Promise<{ measure: Measure; queries: QueryFigures; maxRate: number; seed: PastHourSeed | null }> {
  const server = target === 'engine' ? await startEngine() : await startCeiling();
  const now = Date.now();
  try {
    const seed = target === 'engine' ? await seedPastHour(server, opts, now) : null;
    const gen = await startWsGen({
      host: '127.0.0.1', port: server.port, path: '/v1/stream', kind: 'msgpack', connections: opts.connections,
      window: opts.window, devices: opts.devices, eventsPerFrame: opts.eventsPerFrame, eventsPerSec: 0, load: true,
    });
    try {
      const counter: Counter = target === 'engine' ? engineCounter(server) : ceilingCounter(server, 'messages', opts.eventsPerFrame);
      opts.progress(`${NAME} ${target}: warm-up ${opts.warmupS} s`);
      await gen.warmup(opts.warmupS);
      let maxRate = 0;
      if (halfRate === null) {
        const calibrateS = Math.min(3, opts.durationS);
        opts.progress(`${NAME} ${target}: calibrating the maximum rate, ${calibrateS} s`);
        const c0 = await counter();
        const t0 = performance.now();
        await sleep(calibrateS * 1000);
        maxRate = (await counter() - c0) / ((performance.now() - t0) / 1000);
      }
      const rate = halfRate ?? maxRate / 2;
      gen.send({ cmd: 'rate', eventsPerSec: rate });
      opts.progress(`${NAME} ${target}: load throttled to ${Math.round(rate).toLocaleString('en-US')} events/s, settling 1 s`);
      await sleep(1000);
      let queries: QueryFigures | null = null;
      const { measure } = await measurePhase({
        label: `${NAME} ${target}`, target, server, gen, counter, eventsPerUnit: opts.eventsPerFrame, opts, warm: true,
        during: async (until) => { queries = await queryLoop(server.port, opts.devices, seed?.hourStart ?? pastHourStart(now), until); },
      });
      await gen.stop();
      return { measure, queries: queries!, maxRate, seed };
    } finally {
      await gen.stop();
    }
  } finally {
    await server.stop();
  }
}

export const queryUnderLoad: Scenario = {
  name: NAME,
  description: 'GET /v1/devices/{id}/metrics/cpu and GET /v1/metrics/cpu over the current hour and over a seeded past hour (1m rollups), one every 10 ms in turn, while ws-msgpack runs at half its maximum rate',
  async run(opts): Promise<ScenarioResult> {
    const engine = await run('engine', opts, null);
    const half = engine.maxRate / 2;
    const ceiling = await run('ceiling', opts, half);
    const notes: string[] = [];
    if (!PINNED) notes.push('not pinned: taskset missing or fewer than 2 CPUs');
    const q = engine.queries;
    const pq = (s: Summary): string => `${s.p50.toFixed(2)}/${s.p99.toFixed(2)} ms`;
    notes.push(`engine p50/p99, current hour: device query ${pq(q.device)}, fleet ${pq(q.fleet)}; past hour (1m rollups): device ${pq(q.pastDevice)}, fleet ${pq(q.pastFleet)} (bare server floor p99 ${ceiling.queries.device.p99.toFixed(2)} ms)`);
    if (q.errors > 0) notes.push(`engine: ${q.errors} queries did not answer 200`);
    const seed = engine.seed!;
    notes.push(`past hour ${new Date(seed.hourStart).toISOString()}: ${seed.devices.toLocaleString('en-US')} devices x 1 reading per minute (+1 each now to close it), sent in ${seed.sendSeconds.toFixed(1)} s, panes out of memory ${seed.closeSeconds.toFixed(1)} s later; ` +
      `its fleet query: ${seed.check.windows} windows of ${seed.check.counts.join('/')} events, ${seed.check.devices} devices${seed.check.ok ? '' : ' (WRONG)'}`);
    return {
      name: NAME, status: 'ok', description: this.description, engine: engine.measure, ceiling: ceiling.measure,
      ratio: null,
      generator: `raw WebSocket generator throttled to half the calibrated maximum (${Math.round(engine.maxRate).toLocaleString('en-US')} events/s), queries from the bench process`,
      notes,
      extra: {
        calibratedMaxEventsPerSec: engine.maxRate,
        throttledEventsPerSec: half,
        queryIntervalMs: QUERY_INTERVAL_MS,
        engineQueriesMs: engine.queries,
        ceilingQueriesMs: ceiling.queries,
        pastHourSeed: engine.seed,
      },
    };
  },
};
