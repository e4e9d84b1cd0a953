/**
 * event-time: steady load over simulated event time, to see whether memory stays bounded once
 * panes close into LMDB rollups. The engine runs on its defaults (pane 10 s, allowed lateness
 * 5 min, resolutions 10s,1m,1h,1d), only its log level is debug so every 'checkpoint written'
 * line (bytes, durationMs, pauseMsMax) is seen.
 *
 * N devices x 1 metric (cpu) x one reading per device per 10 s step of event time, over M
 * simulated minutes, sent as fast as acks allow: msgpack frames of 1,000 events
 * ({deviceId, timestamp, metrics:{cpu}}) over a few WebSocket connections with a window of
 * frames in flight (ws-generator's `steps` job; backpressure answers are resent). Event time
 * starts at (now - M - 6 min), aligned to the minute, so no timestamp is ever ahead of the
 * clock; a device's reading in step s is at start + s * 10 s + (device index mod 10,000) ms.
 *
 * Every simulated minute: wall time, events acked, the acked rate over the minute, engine CPU,
 * RSS (anonymous / file-backed) and /healthz (applied, series, panes, last checkpoint). At the
 * end: drain (every acked event applied), final and peak RSS, panes held, the rate of the first 6
 * simulated minutes (before panes are freed) against the rest, the checkpoints seen, the LMDB
 * file size, and sanity queries over closed minutes (fleet count = devices x 6 per 1 min window,
 * device count = 6, every event of the run in the 1 h windows). Bounded: after --et-limit seconds
 * of load it stops the sender and reports what it reached as a partial result.
 */

import fs from 'node:fs';
import path from 'node:path';
import { startWsGen, type GenReport } from '../loadgen';
import type { BenchOptions, Measure } from '../measure';
import { deviceId } from '../frames';
import { startProber, describeLatency, latencyOf, type LatencyFigures, type Responsiveness } from '../responsiveness';
import {
  PINNED, cpuNs, killHard, rssParts, sleep, startEngine, tempDir,
  type CheckpointSummary, type EngineHealth, type Server,
} from '../proc';
import type { LabelledRow, Scenario, ScenarioResult } from '../scenario';

const NAME = 'event-time';
const STEP_MS = 10_000;
const STEPS_PER_MINUTE = 60_000 / STEP_MS;
/** a device's offset inside its step: device index mod this (the step's readings stay in one 10 s pane) */
const SPREAD_MS = 10_000;
const EVENTS_PER_FRAME = 1000;
const CONNECTIONS = 4;
const WINDOW = 8;
/** event time starts this far before now, beyond the simulated minutes: lateness (5 min) + margin */
const HEAD_START_MIN = 6;
/** the first simulated minutes, before closed panes start leaving memory (lateness 5 min + the 1 min rollup) */
const PRE_CLOSE_MIN = 6;
const HEALTH_TIMEOUT_MS = 15_000;
const DRAIN_LIMIT_MS = 180_000;
const QUERY_TIMEOUT_MS = 60_000;
const STORED_QUERY_ROUNDS = 30;
const MiB = 2 ** 20;

interface StepMsg { stepsAcked: number; eventsAcked: number; resends: number; atMs: number }

interface HealthFigures {
  /** when the request was sent (the engine reads its ring counters on arrival), ms since the epoch */
  atMs: number;
  status: number;
  applied: number;
  series: number | null;
  panes: number | null;
  watermark: number | null;
  lateEvents: number;
  rollupWriteErrors: number;
  walBytes: number | null;
  lastCheckpoint: CheckpointSummary | null;
  ringUsedBytes: number;
  /** the shards' head and series table (typed arrays, capacity) and their V8 heaps */
  headBytes: number;
  workerHeapBytes: number;
  /** the last seal's parts, as text ('' from engines without them) */
  sealParts: string;
  /** V8 heap reserved by the workers, the ArrayBuffers their isolates hold, the sealed-summary caches */
  workerHeapTotalBytes: number;
  workerArrayBuffersBytes: number;
  summaryCacheBytes: number;
  /** the front-end thread: V8 heap reserved and in use, ArrayBuffers (the rings' SharedArrayBuffers included) */
  frontHeapTotalBytes: number;
  frontHeapUsedBytes: number;
  frontArrayBuffersBytes: number;
  /** sealing, over the shards: the longest step between yields, the longest last seal (wall) */
  sealStepMaxMs: number;
  sealFirstStepMaxMs: number;
  sealLastMs: number;
}

export interface EventTimeSample {
  /** simulated minutes fully acked */
  minute: number;
  /** seconds since the load started */
  wallS: number;
  eventsAcked: number;
  /** acked events/s since the previous sample */
  eventsPerSec: number;
  engineCpuPercent: number;
  anonMiB: number;
  fileMiB: number;
  health: HealthFigures | null;
}

interface CheckpointSeen extends CheckpointSummary { atS: number }

interface QueryCheck { name: string; path: string; ms: number; status: number; ok: boolean; detail: string }

async function health(port: number): Promise<HealthFigures | null> {
  const atMs = Date.now();
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    const h = JSON.parse(await r.text()) as EngineHealth;
    const ok = h.shards.every((s) => s.state === 'ok');
    let applied = 0;
    let series = 0;
    let panes = 0;
    let ring = 0;
    let late = 0;
    let errors = 0;
    let headBytes = 0;
    let workerHeapBytes = 0;
    let workerHeapTotalBytes = 0;
    let workerArrayBuffersBytes = 0;
    let summaryCacheBytes = 0;
    let sealStepMaxMs = 0;
    let sealParts = '';
    let sealLastMs = 0;
    let sealFirstStepMaxMs = 0;
    let watermark: number | null = null;
    for (const s of h.shards) {
      // sealing figures of a shard (ShardStats.seal), absent from engines before steps
      const seal = (s as { seal?: { stepMaxMs: number; firstStepMaxMs?: number; lastSealMs: number; lastIdsMs?: number; lastSummaryMs?: number; lastChunkMaxMs?: number } | null }).seal;
      sealParts = seal?.lastIdsMs === undefined ? sealParts : `the last seal's series ids ${seal.lastIdsMs.toFixed(1)} ms, longest chunk ${(seal.lastChunkMaxMs ?? 0).toFixed(1)} ms, summary ${(seal.lastSummaryMs ?? 0).toFixed(1)} ms`;
      sealFirstStepMaxMs = Math.max(sealFirstStepMaxMs, seal?.firstStepMaxMs ?? 0);
      sealStepMaxMs = Math.max(sealStepMaxMs, seal?.stepMaxMs ?? 0);
      sealLastMs = Math.max(sealLastMs, seal?.lastSealMs ?? 0);
      headBytes += s.paneStoreBytes ?? 0;
      workerHeapBytes += s.heapUsedBytes ?? 0;
      workerHeapTotalBytes += s.memory?.heapTotalBytes ?? 0;
      workerArrayBuffersBytes += s.memory?.arrayBuffersBytes ?? 0;
      summaryCacheBytes += s.summaryCache?.bytes ?? 0;
      applied += s.eventsApplied;
      ring += s.ringUsedBytes;
      series += s.series ?? 0;
      panes += s.panes ?? 0;
      late += s.lateEvents ?? 0;
      errors += s.rollupWriteErrors ?? 0;
      if (typeof s.watermark === 'number') watermark = watermark === null ? s.watermark : Math.min(watermark, s.watermark);
    }
    return {
      atMs, status: r.status, applied, series: ok ? series : null, panes: ok ? panes : null, watermark, lateEvents: late,
      rollupWriteErrors: errors, walBytes: h.storage?.walBytes ?? null, lastCheckpoint: h.storage?.lastCheckpoint ?? null, ringUsedBytes: ring,
      headBytes, workerHeapBytes, workerHeapTotalBytes, workerArrayBuffersBytes, summaryCacheBytes,
      frontHeapTotalBytes: h.memory?.heapTotalBytes ?? 0, frontHeapUsedBytes: h.memory?.heapUsedBytes ?? 0, frontArrayBuffersBytes: h.memory?.arrayBuffersBytes ?? 0,
      sealStepMaxMs, sealParts, sealFirstStepMaxMs, sealLastMs,
    };
  } catch {
    return null;
  }
}

async function timedGet(port: number, p: string): Promise<{ ms: number; status: number; body: any }> {
  const t = performance.now();
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(QUERY_TIMEOUT_MS) });
  const text = await r.text();
  const ms = performance.now() - t;
  let body: any = null;
  try { body = JSON.parse(text); } catch { body = text.slice(0, 200); }
  return { ms, status: r.status, body };
}

/** A sleep that can be cancelled, so a race against it leaves no timer behind (the bench would wait for it at exit). */
function timer(ms: number): { done: Promise<void>; cancel: () => void } {
  let t: NodeJS.Timeout | undefined;
  const done = new Promise<void>((r) => { t = setTimeout(r, ms); });
  return { done, cancel: () => clearTimeout(t) };
}

const n0 = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const mib = (b: number): string => n0(b / MiB);

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Follows the engine's stdout: 'checkpoint written' lines and lines at warn level or above. */
function watchLogs(engine: Server, t0: () => number, checkpoints: CheckpointSeen[], warnings: Map<string, number>): void {
  let buffered = '';
  engine.proc.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        const j = JSON.parse(line) as CheckpointSummary & { level?: number; msg?: string };
        if (j.msg === 'checkpoint written') {
          checkpoints.push({ atS: (Date.now() - t0()) / 1000, reason: j.reason, seq: j.seq, bytes: j.bytes, written: j.written, full: j.full, pauseMsMax: j.pauseMsMax, pauseParts: j.pauseParts, walDeleted: j.walDeleted, durationMs: j.durationMs });
        } else if ((j.level ?? 0) >= 40) {
          const key = `${String(j.msg ?? '').slice(0, 160)} (level ${j.level})`;
          warnings.set(key, (warnings.get(key) ?? 0) + 1);
        }
      } catch { /* not a JSON line */ }
    }
  });
  engine.proc.stderr!.on('data', (chunk: Buffer) => {
    const key = `stderr: ${chunk.toString('utf8').trim().slice(0, 160)}`;
    warnings.set(key, (warnings.get(key) ?? 0) + 1);
  });
}

interface PhaseMark { atMs: number; events: number; engineCpu: number; genCpu: number }

function phaseMeasure(a: PhaseMark, b: PhaseMark, gen: GenReport | null, rssBytes: number): Measure {
  const seconds = (b.atMs - a.atMs) / 1000;
  const events = b.events - a.events;
  const genCpuPercent = ((b.genCpu - a.genCpu) / (seconds * 1e9)) * 100;
  return {
    target: 'engine', seconds, events, eventsPerSec: events / seconds,
    mbPerSec: gen && gen.seconds > 0 ? gen.bytes / gen.seconds / 1e6 : 0,
    latencyMs: gen?.latencyMs ?? { p50: NaN, p99: NaN, p999: NaN, max: NaN, samples: 0 },
    serverCpuPercent: ((b.engineCpu - a.engineCpu) / (seconds * 1e9)) * 100,
    serverNsPerEvent: events > 0 ? (b.engineCpu - a.engineCpu) / events : 0,
    serverRssBytes: rssBytes, generatorCpuPercent: genCpuPercent, generatorSaturated: genCpuPercent > 90,
    refused: gen?.refused ?? 0,
  };
}

async function run(opts: BenchOptions): Promise<ScenarioResult> {
  const devices = opts.eventTime?.devices ?? (opts.quick ? 10_000 : 100_000);
  const minutes = opts.eventTime?.minutes ?? (opts.quick ? 10 : 30);
  const limitS = opts.eventTime?.limitS ?? (opts.quick ? 180 : 1200);
  const steps = minutes * STEPS_PER_MINUTE;
  const description = eventTime.description;
  const dataDir = tempDir('sluice-bench-et-');
  const checkpoints: CheckpointSeen[] = [];
  const warnings = new Map<string, number>();
  let loadStart = Date.now();
  const engine = await startEngine({ dataDir, extraArgs: ['--log-level', 'debug'] });
  let restarted: Server | null = null;
  watchLogs(engine, () => loadStart, checkpoints, warnings);
  let peakAnon = 0;
  let peakFile = 0;
  const rssTimer = setInterval(() => {
    const p = rssParts(engine.pid);
    if (p.anonBytes > peakAnon) peakAnon = p.anonBytes;
    if (p.fileBytes > peakFile) peakFile = p.fileBytes;
  }, 500);
  try {
    await sleep(1000);
    const baseline = rssParts(engine.pid);
    const gen = await startWsGen({
      host: '127.0.0.1', port: engine.port, path: '/v1/stream', kind: 'msgpack', connections: CONNECTIONS,
      window: WINDOW, devices: 0, eventsPerFrame: EVENTS_PER_FRAME, eventsPerSec: 0, load: false,
    });
    const samples: EventTimeSample[] = [];
    const marks: PhaseMark[] = [];
    const genPhases: (GenReport | null)[] = [];
    let last: StepMsg = { stepsAcked: 0, eventsAcked: 0, resends: 0, atMs: 0 };
    let healthChain: Promise<void> = Promise.resolve();
    let partial = false;
    let failure: string | null = null;
    let prober: ReturnType<typeof startProber> | null = null;
    let responsiveness: Responsiveness | null = null;
    const fromMs = Math.floor((Date.now() - (minutes + HEAD_START_MIN) * 60_000) / 60_000) * 60_000;
    try {
      const mark = (atMs: number, events: number): PhaseMark => ({ atMs, events, engineCpu: cpuNs(engine.pid), genCpu: gen.cpuNs() });
      let prev: { atMs: number; events: number; cpu: number } | null = null;
      const onStep = (m: StepMsg): void => {
        last = m;
        const end = m.stepsAcked === steps;
        if (m.stepsAcked % STEPS_PER_MINUTE !== 0 && !end) return;
        const parts = rssParts(engine.pid);
        const cpu = cpuNs(engine.pid);
        const p = prev!;
        const dt = (m.atMs - p.atMs) / 1000;
        const sample: EventTimeSample = {
          minute: m.stepsAcked / STEPS_PER_MINUTE, wallS: (m.atMs - loadStart) / 1000, eventsAcked: m.eventsAcked,
          eventsPerSec: dt > 0 ? (m.eventsAcked - p.events) / dt : 0,
          engineCpuPercent: dt > 0 ? ((cpu - p.cpu) / (dt * 1e9)) * 100 : 0,
          anonMiB: parts.anonBytes / MiB, fileMiB: parts.fileBytes / MiB, health: null,
        };
        prev = { atMs: m.atMs, events: m.eventsAcked, cpu };
        samples.push(sample);
        if (m.stepsAcked === PRE_CLOSE_MIN * STEPS_PER_MINUTE && steps > m.stepsAcked) {
          marks.push(mark(m.atMs, m.eventsAcked));
          // the ack latency of each phase: report the first, restart the histogram for the second
          const r = gen.report();
          void gen.mark().catch(() => undefined);
          genPhases.push(null);
          const i = genPhases.length - 1;
          void r.then((x) => { genPhases[i] = x; }, () => undefined);
        }
        healthChain = healthChain.then(async () => {
          sample.health = await health(engine.port);
          const h = sample.health;
          const ck = h?.lastCheckpoint;
          opts.progress(`${NAME}: minute ${sample.minute}/${minutes} at ${sample.wallS.toFixed(0)} s: ${n0(sample.eventsAcked)} acked, ${n0(sample.eventsPerSec)} events/s, ` +
            `engine CPU ${sample.engineCpuPercent.toFixed(0)} %, RSS anon ${n0(sample.anonMiB)} MiB file ${n0(sample.fileMiB)} MiB, ` +
            `panes ${h?.panes == null ? '?' : n0(h.panes)}, applied ${h ? n0(h.applied) : '?'}` +
            (ck ? `, last checkpoint ${mib(ck.bytes)} MiB in ${n0(ck.durationMs)} ms (pause ${n0(ck.pauseMsMax)} ms)` : ''));
        });
      };
      gen.on('step', onStep);
      gen.on('steps-done', onStep);
      await gen.mark();
      loadStart = Date.now();
      prev = { atMs: loadStart, events: 0, cpu: cpuNs(engine.pid) };
      marks.push(mark(loadStart, 0));
      // during the load: the past 10 simulated minutes of one device and of the fleet, at 1m
      prober = startProber(engine.port, () => {
        const now = fromMs + last.stepsAcked * STEP_MS;
        if (last.stepsAcked < STEPS_PER_MINUTE) return [];
        const from = Math.max(fromMs, now - 10 * 60_000);
        return [`/v1/devices/${deviceId(12_345 % devices)}/metrics/cpu?resolution=1m&from=${from}&to=${now}`, `/v1/metrics/cpu?resolution=1m&from=${from}&to=${now}`];
      });
      opts.progress(`${NAME}: ${n0(devices)} devices x ${minutes} simulated minutes (${n0(devices * steps)} events), event time from ${new Date(fromMs).toISOString()}, limit ${limitS} s`);
      const finished = gen.waitFor('steps-done', (limitS + 60) * 1000);
      gen.send({ cmd: 'steps', steps: { devices, fromMs, stepMs: STEP_MS, steps, spreadMs: SPREAD_MS, eventsPerFrame: EVENTS_PER_FRAME } });
      const limit = timer(limitS * 1000);
      const outcome = await Promise.race([finished.then(() => 'done' as const), limit.done.then(() => 'limit' as const)])
        .finally(() => limit.cancel());
      if (outcome === 'limit') {
        partial = true;
        finished.catch(() => undefined);
        opts.progress(`${NAME}: time limit of ${limitS} s reached at ${(last.stepsAcked / STEPS_PER_MINUTE).toFixed(1)} of ${minutes} simulated minutes: stopping the sender`);
      }
      const endMs = partial ? Date.now() : last.atMs;
      const endReport = await gen.report().catch(() => null);
      genPhases.push(endReport);
      marks.push(mark(endMs, last.eventsAcked));
    } catch (e) {
      failure = (e as Error).message;
      opts.progress(`${NAME}: the load stopped: ${failure}`);
    } finally {
      if (prober !== null) responsiveness = await prober.stop();
      await gen.stop();
    }
    const loadSeconds = (marks.length > 1 ? marks[marks.length - 1].atMs - marks[0].atMs : Date.now() - loadStart) / 1000;
    const healthWait = timer(HEALTH_TIMEOUT_MS * 2);
    await Promise.race([healthChain, healthWait.done]);
    healthWait.cancel();

    // drain: every acked event applied, the rings empty, and applied stable
    opts.progress(`${NAME}: waiting for the workers to apply every acked event (${n0(last.eventsAcked)} acked in whole steps)`);
    const drainStart = Date.now();
    let drained: HealthFigures | null = null;
    /** the first reading with every acked event applied */
    let caughtUp: HealthFigures | null = null;
    let prevApplied = -1;
    while (Date.now() - drainStart < DRAIN_LIMIT_MS) {
      const h = await health(engine.port);
      if (h && caughtUp === null && h.applied >= last.eventsAcked && h.ringUsedBytes === 0) caughtUp = h;
      if (h && h.applied >= last.eventsAcked && h.ringUsedBytes === 0 && h.applied === prevApplied) { drained = h; break; }
      if (h) prevApplied = h.applied;
      await sleep(1000);
    }
    const drainSeconds = (Date.now() - drainStart) / 1000;

    // sanity queries (they also wait for the shards' pending rollup writes)
    const checks: QueryCheck[] = [];
    const wholeMinutes = Math.floor(last.stepsAcked / STEPS_PER_MINUTE);
    const closedMinutes = Math.min(10, wholeMinutes - HEAD_START_MIN);
    if (closedMinutes > 0) {
      const from = fromMs;
      const to = fromMs + closedMinutes * 60_000;
      const fleetPath = `/v1/metrics/cpu?resolution=1m&from=${from}&to=${to}`;
      try {
        const q = await timedGet(engine.port, fleetPath);
        const ws = (q.body?.windows ?? []) as { count: number; devices?: number }[];
        const bad = ws.filter((w) => w.count !== devices * STEPS_PER_MINUTE || (w.devices !== undefined && w.devices !== devices));
        checks.push({ name: `fleet, ${closedMinutes} closed minutes at 1m`, path: fleetPath, ms: q.ms, status: q.status,
          ok: q.status === 200 && ws.length === closedMinutes && bad.length === 0,
          detail: `${ws.length} windows (expected ${closedMinutes}), counts ${[...new Set(ws.map((w) => w.count))].join('/')} (expected ${devices * STEPS_PER_MINUTE}), devices ${q.body?.devices} (expected ${devices})` });
      } catch (e) {
        checks.push({ name: 'fleet 1m', path: fleetPath, ms: NaN, status: 0, ok: false, detail: (e as Error).message });
      }
      const dev = deviceId(Math.min(devices - 1, 12_345));
      const devicePath = `/v1/devices/${dev}/metrics/cpu?resolution=1m&from=${from}&to=${to}`;
      try {
        const q = await timedGet(engine.port, devicePath);
        const ws = (q.body?.windows ?? []) as { count: number }[];
        checks.push({ name: `device ${dev}, ${closedMinutes} closed minutes at 1m`, path: devicePath, ms: q.ms, status: q.status,
          ok: q.status === 200 && ws.length === closedMinutes && ws.every((w) => w.count === STEPS_PER_MINUTE),
          detail: `${ws.length} windows (expected ${closedMinutes}), counts ${[...new Set(ws.map((w) => w.count))].join('/')} (expected ${STEPS_PER_MINUTE})` });
      } catch (e) {
        checks.push({ name: 'device 1m', path: devicePath, ms: NaN, status: 0, ok: false, detail: (e as Error).message });
      }
    }
    if (wholeMinutes > 0) {
      const allPath = `/v1/metrics/cpu?resolution=1h&from=${fromMs}&to=${fromMs + minutes * 60_000}`;
      try {
        const q = await timedGet(engine.port, allPath);
        const ws = (q.body?.windows ?? []) as { count: number }[];
        const total = ws.reduce((a, w) => a + w.count, 0);
        const expected = drained?.applied ?? last.eventsAcked;
        checks.push({ name: 'fleet, the whole run at 1h (closed rollups + open panes)', path: allPath, ms: q.ms, status: q.status,
          ok: q.status === 200 && total === expected,
          detail: `${ws.length} windows, ${n0(total)} events (expected ${n0(expected)}: every applied event)` });
      } catch (e) {
        checks.push({ name: 'fleet 1h', path: allPath, ms: NaN, status: 0, ok: false, detail: (e as Error).message });
      }
    }
    await sleep(1000);
    const final = rssParts(engine.pid);
    const finalHealth = await health(engine.port);
    let lmdbBytes = NaN;
    let lmdbDiskBytes = NaN;
    try {
      const st = fs.statSync(path.join(dataDir, 'lmdb', 'data.mdb'));
      lmdbBytes = st.size;
      lmdbDiskBytes = st.blocks * 512;
    } catch { /* no file */ }

    // queries on the stored data after the run, one at a time (issue #11 target 7)
    const stored: { name: string; f: LatencyFigures }[] = [];
    if (wholeMinutes > 0) {
      const end = fromMs + wholeMinutes * 60_000;
      const hourFrom = Math.max(fromMs, end - 60 * 60_000);
      const dev = deviceId(Math.min(devices - 1, 12_345));
      const kinds: [string, string][] = [
        [`one device, the past hour at 1m`, `/v1/devices/${dev}/metrics/cpu?resolution=1m&from=${hourFrom}&to=${end}`],
        [`the fleet, the past hour at 1m (exact distinct devices)`, `/v1/metrics/cpu?resolution=1m&from=${hourFrom}&to=${end}`],
        [`the fleet, the whole run at 1h`, `/v1/metrics/cpu?resolution=1h&from=${fromMs}&to=${fromMs + minutes * 60_000}`],
      ];
      for (const [name, p] of kinds) {
        const ms: number[] = [];
        let failed = 0;
        for (let i = 0; i < STORED_QUERY_ROUNDS; i++) {
          const q = await timedGet(engine.port, p).catch(() => null);
          if (q === null || q.status !== 200) failed++;
          else ms.push(q.ms);
        }
        stored.push({ name: `${name} (each round in order, ms: ${ms.map((x) => x.toFixed(1)).join(' ')})`, f: latencyOf(ms, failed) });
      }
    }

    // kill -9 and restart on the data dir: the time to answer again (checkpoint + WAL replay), and
    // the whole run's count after it (issue #11 target 4)
    let recovery: { seconds: number; total: number; expected: number; ok: boolean; detail: string } | null = null;
    // SLUICE_BENCH_ET_GRACEFUL=1: stop the engine with SIGTERM instead (its --cpu-prof profiles are written)
    if (process.env['SLUICE_BENCH_ET_GRACEFUL'] === '1') {
      // nothing: the engine is stopped below
    } else if (wholeMinutes > 0 && failure === null) {
      await killHard(engine);
      const t0 = Date.now();
      restarted = await startEngine({ dataDir, extraArgs: ['--log-level', 'info'] });
      const seconds = (Date.now() - t0) / 1000;
      const allPath = `/v1/metrics/cpu?resolution=1h&from=${fromMs}&to=${fromMs + minutes * 60_000}`;
      const q = await timedGet(restarted.port, allPath).catch(() => null);
      const total = ((q?.body?.windows ?? []) as { count: number }[]).reduce((a, w) => a + w.count, 0);
      const expected = drained?.applied ?? last.eventsAcked;
      // where the time went: the front-end's recovery line, the workers' restore figures
      let detail = '';
      for (const line of restarted.logs) {
        if (!line.includes('"recovery:')) continue;
        try {
          const j = JSON.parse(line) as { durationMs?: number; walEntriesReplayed?: number; timings?: Record<string, number> };
          detail += `front-end recovery ${n0(j.durationMs ?? NaN)} ms (${n0(j.walEntriesReplayed ?? NaN)} WAL entries; ` +
            `${Object.entries(j.timings ?? {}).map(([k, v]) => `${k} ${n0(v)}`).join(', ')})`;
        } catch { /* a partial line */ }
      }
      try {
        const h = ((await timedGet(restarted.port, '/healthz')).body ?? {}) as
          { shards?: { restore?: { decodeMs: number; seriesMs: number; headMs: number } | null }[] };
        for (const s of h.shards ?? []) {
          if (s.restore) detail += `; a shard: decode ${n0(s.restore.decodeMs)} ms, series table ${n0(s.restore.seriesMs)} ms, head ${n0(s.restore.headMs)} ms`;
        }
      } catch { /* no figures */ }
      recovery = { seconds, total, expected, ok: q?.status === 200 && total === expected, detail };
    }

    // figures
    const byMinute = (m: number): EventTimeSample | undefined => samples.find((s) => s.minute === m);
    const pre = byMinute(PRE_CLOSE_MIN);
    const preRate = pre ? pre.eventsAcked / pre.wallS : NaN;
    const lastSample = samples[samples.length - 1];
    const postRate = pre && lastSample && lastSample.minute > PRE_CLOSE_MIN
      ? (lastSample.eventsAcked - pre.eventsAcked) / (lastSample.wallS - pre.wallS) : NaN;
    // applied (by the shard workers) rather than acked (WAL committed): the rings hold a backlog
    // of acked events, which a short run's acked rate does not see
    const preApplied = pre?.health ?? null;
    const preAppliedRate = preApplied ? preApplied.applied / ((preApplied.atMs - loadStart) / 1000) : NaN;
    const postAppliedRate = preApplied && caughtUp && caughtUp.applied > preApplied.applied
      ? (caughtUp.applied - preApplied.applied) / ((caughtUp.atMs - preApplied.atMs) / 1000) : NaN;
    const ck = checkpoints.filter((c) => c.atS >= 0);
    const ckBytes = ck.map((c) => c.bytes);
    const ckMs = ck.map((c) => c.durationMs);
    const ckPause = ck.map((c) => c.pauseMsMax);
    const ckWritten = ck.filter((c) => c.written !== undefined).map((c) => c.written!);
    const ckMaxAt = ck.length ? ck.reduce((a, c) => (c.bytes > a.bytes ? c : a)) : null;
    const rows: LabelledRow[] = [];
    if (marks.length === 3) {
      rows.push({ label: `minutes 0-${PRE_CLOSE_MIN}`, measure: phaseMeasure(marks[0], marks[1], genPhases[0] ?? null, pre ? (pre.anonMiB + pre.fileMiB) * MiB : NaN) });
      rows.push({ label: `minutes ${PRE_CLOSE_MIN}-${partial ? (last.stepsAcked / STEPS_PER_MINUTE).toFixed(1) : minutes}`, measure: phaseMeasure(marks[1], marks[2], genPhases[1] ?? null, final.anonBytes + final.fileBytes) });
    } else if (marks.length === 2) {
      rows.push({ label: `minutes 0-${(last.stepsAcked / STEPS_PER_MINUTE).toFixed(1)}`, measure: phaseMeasure(marks[0], marks[1], genPhases[0] ?? null, final.anonBytes + final.fileBytes) });
    }

    const notes: string[] = [];
    if (!PINNED) notes.push('not pinned: taskset missing or fewer than 2 CPUs');
    notes.push(`${n0(devices)} devices x 1 metric x 1 reading per 10 s of event time, ${minutes} simulated minutes (${n0(devices * steps)} events) from ${new Date(fromMs).toISOString()}, ` +
      `${CONNECTIONS} connections x ${WINDOW} frames of ${EVENTS_PER_FRAME} in flight, engine defaults (pane 10 s, lateness 5 min, durable acks); rows: events/s = acked, RSS = anon + file at the phase's end`);
    if (partial) notes.push(`PARTIAL: stopped at the ${limitS} s limit after ${(last.stepsAcked / STEPS_PER_MINUTE).toFixed(1)} of ${minutes} simulated minutes (${n0(last.eventsAcked)} events acked in whole steps)`);
    if (failure) notes.push(`the load failed: ${failure}`);
    for (const s of stored) notes.push(`stored data after the run, ${STORED_QUERY_ROUNDS} rounds one at a time: ${describeLatency(s.name, s.f)}`);
    if (recovery !== null) {
      notes.push(`kill -9 after the run, restart on the data dir: answering again after ${recovery.seconds.toFixed(1)} s (checkpoint + WAL replay); ` +
        `the whole run then counts ${n0(recovery.total)} events (expected ${n0(recovery.expected)}): ${recovery.ok ? 'exact' : 'NOT EXACT'}; ${recovery.detail}`);
    }
    if (responsiveness !== null) {
      notes.push(`responsiveness during the load (one request at a time): ${describeLatency('/healthz every 250 ms', responsiveness.health)}; ` +
        `${describeLatency('queries every 1 s (a device and the fleet, past 10 simulated minutes at 1m)', responsiveness.queries)} ` +
        `(${responsiveness.queriesByPath.map((f, i) => describeLatency(['the device', 'the fleet'][i] ?? `path ${i}`, f)).join('; ')}); ` +
        `${describeLatency('the shard workers\' longest event-loop block between two /healthz', responsiveness.workerLoopMax)}; ` +
        `${describeLatency('their longest ring slice', responsiveness.workerPollMax)}; ${describeLatency('their longest task body', responsiveness.workerTaskMax)} ` +
        `(bodies over 100 ms by kind: ${Object.entries(responsiveness.slowTaskKinds).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}); ` +
        `${describeLatency('the front-end thread\'s longest event-loop block between two /healthz', responsiveness.frontLoopMax)}; ` +
        `${describeLatency('the /healthz wait for the shards\' stats', responsiveness.shardStatsWait)}; ` +
        `the slow /healthz: ${responsiveness.slowHealth.join('; ') || 'none'}; the slow queries (path 0 the device, 1 the fleet): ${responsiveness.slowQueries.join('; ') || 'none'}`);
    }
    notes.push(`load ${n0(loadSeconds)} s for ${(last.stepsAcked / STEPS_PER_MINUTE).toFixed(1)} simulated minutes (${(last.stepsAcked * STEP_MS / 1000 / Math.max(loadSeconds, 1e-9)).toFixed(1)}x real time); drain ${drainSeconds.toFixed(1)} s${drained ? '' : ' (NOT drained within the limit)'}`);
    notes.push(`acked rate, first ${PRE_CLOSE_MIN} simulated minutes: ${n0(preRate)} events/s; after: ${n0(postRate)} events/s` +
      (Number.isFinite(preRate) && Number.isFinite(postRate) && preRate > 0 ? ` (after/before ${(postRate / preRate).toFixed(2)})` : '') +
      `; ${n0(last.resends)} frames resent after backpressure`);
    notes.push(`applied rate (shard workers, /healthz), load start to the minute-${PRE_CLOSE_MIN} reading: ${n0(preAppliedRate)} events/s; from there until every acked event was applied: ${n0(postAppliedRate)} events/s` +
      (Number.isFinite(preAppliedRate) && Number.isFinite(postAppliedRate) && preAppliedRate > 0 ? ` (after/before ${(postAppliedRate / preAppliedRate).toFixed(2)})` : ''));
    const noStats = samples.filter((x) => x.health === null || x.health.panes === null).length;
    if (noStats > 0) notes.push(`${noStats} of ${samples.length} per-minute /healthz readings had no shard stats (a shard did not answer its stats task in 2 s: 503, shown as ?)`);
    notes.push(`per simulated minute (minute: acked events/s, engine CPU %, RSS anon/file MiB, panes): ${samples.map((s) =>
      `${s.minute}: ${n0(s.eventsPerSec / 1000)}k/s ${s.engineCpuPercent.toFixed(0)}% ${n0(s.anonMiB)}/${n0(s.fileMiB)} ${s.health?.panes == null ? '?' : n0(s.health.panes)}`).join('; ')}`);
    notes.push(`RSS: before the load ${mib(baseline.anonBytes)} MiB anon / ${mib(baseline.fileBytes)} MiB file; final (drained) ${mib(final.anonBytes)} MiB anon / ${mib(final.fileBytes)} MiB file; ` +
      `peak ${mib(peakAnon)} MiB anon / ${mib(peakFile)} MiB file; final anon per series ${n0((final.anonBytes - baseline.anonBytes) / devices)} B`);
    if (finalHealth) notes.push(`at the end: ${finalHealth.series == null ? '?' : n0(finalHealth.series)} series, ${finalHealth.panes == null ? '?' : n0(finalHealth.panes)} panes held (${finalHealth.panes == null ? '?' : (finalHealth.panes / devices).toFixed(1)} per series), ` +
      `${n0(finalHealth.applied)} events applied, ${n0(finalHealth.lateEvents)} late, ${finalHealth.rollupWriteErrors} rollup write errors, WAL ${finalHealth.walBytes == null ? '?' : mib(finalHealth.walBytes)} MiB, ` +
      `head + series tables ${mib(finalHealth.headBytes)} MiB (${n0(finalHealth.headBytes / devices)} B per series), worker heaps ${mib(finalHealth.workerHeapBytes)} MiB; sealing: the longest step between yields ${finalHealth.sealStepMaxMs.toFixed(1)} ms (the first seal's, before the JIT: ${finalHealth.sealFirstStepMaxMs.toFixed(1)} ms), the last seal ${n0(finalHealth.sealLastMs)} ms from start to drop${finalHealth.sealParts ? ` (${finalHealth.sealParts})` : ''}`);
    if (finalHealth) notes.push(`memory at the end, by holder (MiB): front-end V8 heap ${mib(finalHealth.frontHeapUsedBytes)} used of ${mib(finalHealth.frontHeapTotalBytes)} reserved, ` +
      `its ArrayBuffers ${mib(finalHealth.frontArrayBuffersBytes)} (rings included); workers' V8 heaps ${mib(finalHealth.workerHeapBytes)} used of ${mib(finalHealth.workerHeapTotalBytes)} reserved, ` +
      `their ArrayBuffers ${mib(finalHealth.workerArrayBuffersBytes)} (head + series tables ${mib(finalHealth.headBytes)}, sealed summaries ${mib(finalHealth.summaryCacheBytes)}); ` +
      `the rest of the anon RSS (malloc arenas, LMDB, native code) ${mib(Math.max(0, final.anonBytes - finalHealth.frontHeapTotalBytes - finalHealth.frontArrayBuffersBytes - finalHealth.workerHeapTotalBytes - finalHealth.workerArrayBuffersBytes))}`);
    notes.push(ck.length
      ? `checkpoints: ${ck.length} written, size median ${mib(median(ckBytes))} MiB max ${mib(Math.max(...ckBytes))} MiB (at ${ckMaxAt!.atS.toFixed(0)} s), ` +
        (ckWritten.length ? `written per cycle median ${mib(median(ckWritten))} MiB max ${(Math.max(...ckWritten) / 1e6).toFixed(1)} MB (${ck.filter((c) => c.full).length} full), ` : '') +
        `duration median ${n0(median(ckMs))} ms max ${n0(Math.max(...ckMs))} ms, shard pause median ${n0(median(ckPause))} ms max ${n0(Math.max(...ckPause))} ms` +
        `${pausePartsText(ck)}`
      : 'checkpoints: none seen');
    notes.push(`LMDB data.mdb: ${mib(lmdbBytes)} MiB (${mib(lmdbDiskBytes)} MiB on disk)`);
    for (const c of checks) notes.push(`query ${c.ok ? 'ok' : 'WRONG'}: ${c.name}: ${c.status} in ${c.ms.toFixed(1)} ms, ${c.detail}`);
    for (const [w, n] of [...warnings.entries()].sort((a, b) => b[1] - a[1])) notes.push(`engine log: ${n} x ${w}`);
    return {
      name: NAME, status: 'ok', description, engine: null, ceiling: null, ratio: null,
      generator: `ws-generator steps job, ${CONNECTIONS} connections x ${WINDOW} msgpack frames of ${EVENTS_PER_FRAME} events in flight`,
      notes, rows,
      extra: {
        devices, minutes, stepMs: STEP_MS, fromMs, limitS, partial, failure, minutesReached: last.stepsAcked / STEPS_PER_MINUTE,
        eventsAcked: last.eventsAcked, resends: last.resends, loadSeconds, drainSeconds, drained: drained !== null,
        preCloseEventsPerSec: preRate, postCloseEventsPerSec: postRate,
        preCloseAppliedPerSec: preAppliedRate, postCloseAppliedPerSec: postAppliedRate,
        baselineRss: baseline, finalRss: final, peakAnonBytes: peakAnon, peakFileBytes: peakFile,
        final: finalHealth, samples,
        checkpoints: ck.map((c) => ({ atS: Math.round(c.atS * 10) / 10, bytes: c.bytes, written: c.written, full: c.full, durationMs: c.durationMs, pauseMsMax: c.pauseMsMax, walDeleted: c.walDeleted })),
        lmdbBytes, lmdbDiskBytes, queries: checks, storedQueries: stored, recovery, responsiveness,
      },
    };
  } finally {
    clearInterval(rssTimer);
    // the first engine was killed when a restart was measured
    if (restarted !== null) await restarted.stop();
    else await engine.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export const eventTime: Scenario = {
  name: NAME,
  description: 'N devices (100,000; --quick 10,000; --et-devices) x 1 cpu reading per 10 s of simulated event time over M minutes (30; --quick 10; --et-minutes), as fast as acks allow: RSS and panes per minute, rate before/after panes close, checkpoints, LMDB size, sanity queries',
  run,
};

/** the longest checkpoint pauses with their parts: "(the longest: 134 ms = head 80 + series 3 + base 1 ms at 43 s, ...)" */
function pausePartsText(ck: { atS: number; pauseMsMax: number; pauseParts?: { headMs: number; seriesMs: number; baseMs: number } | null }[]): string {
  const top = ck.filter((c) => c.pauseParts).sort((a, b) => b.pauseMsMax - a.pauseMsMax).slice(0, 3);
  if (top.length === 0) return '';
  return ` (the longest: ${top.map((c) => `${n0(c.pauseMsMax)} ms = head ${n0(c.pauseParts!.headMs)} + series ${n0(c.pauseParts!.seriesMs)} + base ${n0(c.pauseParts!.baseMs)} ms, at ${c.atS.toFixed(0)} s`).join('; ')})`;
}
