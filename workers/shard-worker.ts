/**
 * A shard worker: the one thread that owns a shard's state (an actor). Loaded by piscina (one pool
 * per shard, one thread) with workerData = ShardWorkerData.
 *
 * Two duties on one event loop: drain the shard's ring into its ShardState (in slices of
 * POLL_BUDGET_BYTES, yielding between slices so queries are not starved), and answer piscina
 * tasks. A task that reads state first applies every record published before it arrived (a query
 * sees every event acknowledged before it was sent), then pauses the ring while it waits for the
 * writes it depends on (corrections, the late log; a slice being sealed is still read from the
 * head), so it reads the head and LMDB at one consistent point: every slice is in exactly one of
 * them.
 *
 * Failure policy: a write the state cannot do without (a sealed slice's blocks) fails the shard:
 * the error is thrown on the event loop, the thread ends, the engine stops (ShardPool's onFatal),
 * and recovery rebuilds the shard from its checkpoint and the WAL.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { workerData } from 'node:worker_threads';
import {
  RingConsumer, RING_STAT_EVENTS, RING_STAT_RECORDS, RING_STAT_SERIES, RING_STAT_PANES, RING_STAT_WATERMARK,
  RING_STAT_MAX_EVENT_TIME, RING_STAT_LATE, RING_STAT_HEARTBEAT, RING_STAT_CORRECTED, RING_STAT_SEAL_QUEUED, RING_STAT_SEALED, type CheckpointResult, type ShardTask, type StoredCheckpoint,
} from '../protocol';
import { BlockStore, CheckpointStore, RollupStore } from '../storage';
import { ShardCheckpoints, decodeCheckpoint, type EncodedCheckpoint } from './checkpoint';
import { ShardState } from './shard-state';
import { RecordApplier } from './record-applier';
import { ReportCounter } from './report-counter';
import {
  deviceSeries, distinctDevices, sensorRange, fleetSeries, listDevices, metricLatest, shardStats, topDevices, warmHeadStep, warmHeadSummaries,
} from './block-queries';

export interface ShardWorkerData {
  shard: number;
  ring: SharedArrayBuffer;
  dataDir: string;
  paneMs: number;
  histogramDivisions: number;
  histogramMin: number;
  histogramMax: number;
  allowedLatenessMs: number;
  lateHorizonMs: number;
  resolutionsMs: number[];
  lateLogSize: number;
  reportMetrics: string[];
  /** the shard's last checkpoint (its base and stored groups), or null for a fresh shard */
  checkpoint: StoredCheckpoint | null;
}

// 256 KiB of records is ~8k events: ~2 ms at 100k series, ~20 ms at 1M (cache misses), so a
// stats task or a query never waits long behind the ring (1 MiB was up to ~75 ms at 1M)
const POLL_BUDGET_BYTES = 1 << 18;
// head-summary rows (~50 ns each) added after a ring slice or per step before a query: ~3 ms, and
// 8x a slice's events, so that warm summaries keep up with the ring and a cold one catches up
const WARM_ROWS = 1 << 16;

const data = workerData as ShardWorkerData;
const ring = new RingConsumer(data.ring);
const histogram = { divisions: data.histogramDivisions, min: data.histogramMin, max: data.histogramMax };
const rollups = RollupStore.open(data.dataDir);
const blocks = BlockStore.open(data.dataDir);
const checkpointStore = CheckpointStore.open(data.dataDir);
const failShard = (err: Error): void => {
  setImmediate(() => {
    throw err;
  });
};
const state = new ShardState({
  shard: data.shard, paneMs: data.paneMs, latenessMs: data.allowedLatenessMs, lateHorizonMs: data.lateHorizonMs, resolutions: data.resolutionsMs,
  histogram, lateLogSize: data.lateLogSize,
}, blocks, rollups, failShard);
const report = new ReportCounter({ metrics: data.reportMetrics, divisions: data.histogramDivisions, min: data.histogramMin, max: data.histogramMax });
const applier = new RecordApplier(ring, state, report);
const checkpoints = new ShardCheckpoints(data.shard);
/** how long the start from the checkpoint took (for /healthz): decoding, the series table, the head */
let restoreTimes: { decodeMs: number; seriesMs: number; headMs: number } | null = null;
if (data.checkpoint !== null) {
  // a checkpoint that does not restore must stop the engine: starting empty would be silently wrong
  const t0 = performance.now();
  const restored = decodeCheckpoint(data.checkpoint.base, data.checkpoint.groups);
  const decodeMs = performance.now() - t0;
  restoreTimes = { decodeMs, ...state.restore(restored) };
  checkpoints.resume(state, restored.ids);
  applier.lastSeq = restored.lastSeq;
  applier.skipUpTo = restored.lastSeq;
  // metric names come back with the checkpoint, not as DEFINE records: the counter needs them too
  for (const name of data.reportMetrics) {
    const id = state.series.metricIdOf(name);
    if (id >= 0) report.defineMetric(id, name);
  }
}

let paused = 0;

// how long the loop is blocked at a time (a seal step, a ring slice, a checkpoint, a GC): 10 ms resolution
const loopHistogram = monitorEventLoopDelay({ resolution: 10 });
loopHistogram.enable();
/** the longest ring slice (with the head summaries' warming after it) and the longest task body (a query, a checkpoint's take) since the last stats */
let pollMaxMs = 0;
let taskMaxMs = 0;
/** the kind of that longest task ('' when none ran; 'warm': a step of a query's head-summary warming) */
let taskMaxKind = '';
/** keeps the longest task body since the last stats, and its kind */
function noteTask(kind: string, ms: number): void {
  if (ms <= taskMaxMs) return;
  taskMaxMs = ms;
  taskMaxKind = kind;
}

function loopDelay(): { p99Ms: number; maxMs: number; pollMaxMs: number; taskMaxMs: number; taskMaxKind: string } {
  const r = { p99Ms: loopHistogram.percentile(99) / 1e6, maxMs: loopHistogram.max / 1e6, pollMaxMs, taskMaxMs, taskMaxKind };
  loopHistogram.reset();
  pollMaxMs = 0;
  taskMaxMs = 0;
  taskMaxKind = '';
  return r;
}

function pollOnce(): number {
  const events = applier.events;
  const records = applier.records;
  const t0 = performance.now();
  const consumed = ring.poll(applier, POLL_BUDGET_BYTES);
  // the fleet summaries follow the slice (counted in its time): those a query asked for recently
  // by up to WARM_ROWS, the others (few metrics) by twice the events just applied
  if (consumed !== 0) warmHeadSummaries(state, Date.now(), WARM_ROWS, 2 * (applier.events - events));
  const ms = performance.now() - t0;
  if (ms > pollMaxMs) pollMaxMs = ms;
  if (consumed !== 0) {
    ring.addStat(RING_STAT_EVENTS, applier.events - events);
    ring.addStat(RING_STAT_RECORDS, applier.records - records);
  }
  return consumed;
}

/** the shard's state for /healthz, in the ring's stat slots (NaN: no event yet) */
function publishStats(): void {
  const clock = state.clock;
  ring.setStat(RING_STAT_SERIES, state.series.seriesCount);
  ring.setStat(RING_STAT_PANES, state.head.readingsHeld);
  ring.setStat(RING_STAT_WATERMARK, clock.maxTs === -Infinity ? NaN : clock.watermark);
  ring.setStat(RING_STAT_MAX_EVENT_TIME, clock.maxTs === -Infinity ? NaN : clock.maxTs);
  ring.setStat(RING_STAT_LATE, applier.lateEvents);
  ring.setStat(RING_STAT_CORRECTED, applier.correctedEvents);
  ring.setStat(RING_STAT_SEAL_QUEUED, state.sealer.sealing);
  ring.setStat(RING_STAT_SEALED, state.sealer.counters.slices);
  ring.setStat(RING_STAT_HEARTBEAT, Date.now());
}
publishStats();
// an idle worker keeps its heartbeat fresh; a busy one publishes after each slice of the ring
setInterval(publishStats, 250).unref();

function pump(): void {
  publishStats();
  if (paused > 0) return; // resumed by the task that paused it
  if (pollOnce() !== 0) {
    setImmediate(pump);
    return;
  }
  const wake = ring.waitForData();
  if (wake === null) setImmediate(pump);
  else void wake.then(onWake);
}

function onWake(): void {
  ring.awake();
  pump();
}

pump();

/**
 * Applies the records published when the call starts (not the ones that keep arriving), a slice
 * of POLL_BUDGET_BYTES at a time, yielding between slices: a full ring (4 MiB by default, ~120k
 * events) is ~100 ms of work that must not hold back other tasks (stats, other queries).
 */
async function drain(): Promise<void> {
  let left = ring.usedBytes();
  while (left > 0) {
    const n = pollOnce();
    if (n === 0) break;
    left -= n;
    if (left > 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Runs fn on a consistent state: ring applied up to now, the writes a read depends on committed
 * (ShardState.queryPending: not seals in progress, whose slices are still read from the head),
 * ring paused. `everything` waits for every write, seals included.
 */
async function consistent<T>(kind: ShardTask['kind'], fn: () => T, everything = false): Promise<T> {
  paused++;
  try {
    await drain();
    // another task's drain may apply records (and issue writes) while this one waits: wait again
    // until a wait ends with nothing applied meanwhile, then fn() runs at once (no await between)
    let applied: number;
    do {
      applied = applier.records;
      await (everything ? state.pending : state.queryPending);
    } while (applier.records !== applied);
    const t0 = performance.now();
    const r = fn();
    noteTask(kind, performance.now() - t0);
    return r;
  } finally {
    if (--paused === 0) setImmediate(pump);
  }
}

/**
 * Brings the metric's head summaries current in steps, yielding between them (the ring goes on),
 * so that the query's body under the paused ring only adds the last rows.
 */
async function warmed(metrics: readonly string[]): Promise<void> {
  for (const metric of metrics) {
    for (;;) {
      const t0 = performance.now();
      const done = warmHeadStep(state, metric, WARM_ROWS);
      noteTask('warm', performance.now() - t0);
      if (done) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

export default function handle(task: ShardTask): unknown {
  switch (task.kind) {
    case 'stats': return { ...shardStats(state, applier.records, applier.lateEvents), correctedEvents: applier.correctedEvents, loopDelay: loopDelay(), restore: restoreTimes };
    case 'knownDevices': return state.series.knownDeviceBits();
    case 'stall': Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, task.ms); return null;
    case 'deviceSeries': return consistent('deviceSeries', () => deviceSeries(state, task));
    case 'fleetSeries': return warmed([task.metric]).then(() => consistent('fleetSeries', () => fleetSeries(state, task)));
    case 'top': return consistent('top', () => topDevices(state, task));
    case 'devices': return consistent('devices', () => listDevices(state, task));
    case 'distinctDevices': return warmed(task.metrics).then(() => consistent('distinctDevices', () => distinctDevices(state, task)));
    case 'sensorRange': return warmed([task.metric]).then(() => consistent('sensorRange', () => sensorRange(state, task)));
    case 'metricLatest': return consistent('metricLatest', () => metricLatest(state, task));
    case 'checkpoint': return checkpoint(task.full);
    case 'retention': return consistent('retention', () => state.retain(task.cutoffs));
    case 'sync': return consistent('sync', () => null, true);
    case 'report': return consistent('report', () => report.collect());
    default: throw new Error(`unknown shard task ${(task as { kind: string }).kind}`);
  }
}

/** stored bytes of each live group (for the storage budget) */
const groupBytes = new Map<number, number>();
for (const g of data.checkpoint?.groups ?? []) groupBytes.set(g.paneNo, g.bytes.byteLength);

/**
 * Cuts the checkpoint with the ring paused (what to copy: O(slices)), copies it a chunk at a time
 * with the ring going on between chunks, then writes it from the head's reused chunk buffers;
 * resolves once it is durable (the buffers are free again for the next cycle, which the
 * front-end starts only after this one resolved).
 */
async function checkpoint(full: boolean): Promise<CheckpointResult> {
  let pauseMs = 0;
  let lastSeq = 0;
  const pending = await consistent('checkpoint', () => {
    const t0 = performance.now();
    lastSeq = applier.lastSeq;
    const cut = checkpoints.cut(state, lastSeq, full);
    pauseMs = performance.now() - t0;
    return cut;
  });
  const steps = checkpoints.encode(state, pending, true);
  let c: EncodedCheckpoint;
  for (;;) {
    const t0 = performance.now();
    const r = steps.next();
    noteTask('checkpoint', performance.now() - t0);
    if (r.done === true) {
      c = r.value;
      break;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await checkpointStore.write(data.shard, c.base, c.groups, c.live);
  if (full) groupBytes.clear();
  let writtenBytes = c.base.byteLength;
  for (const g of c.groups) {
    groupBytes.set(g.paneNo, g.bytes.byteLength);
    writtenBytes += g.bytes.byteLength;
  }
  const live = new Set(c.live);
  let storedBytes = c.base.byteLength;
  for (const [id, bytes] of groupBytes) {
    if (live.has(id)) storedBytes += bytes;
    else groupBytes.delete(id);
  }
  return {
    shard: data.shard, lastSeq, writtenBytes, storedBytes,
    pauseMs, pauseParts: c.parts, series: state.series.seriesCount, panes: state.head.readingsHeld,
  };
}
