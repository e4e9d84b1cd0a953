/**
 * A shard worker: the one thread that owns a shard's aggregate state (an actor). Loaded by piscina
 * (one pool per shard, one thread) with workerData = ShardWorkerData.
 *
 * Two duties on one event loop: drain the shard's ring into the PaneStore (in slices of
 * POLL_BUDGET_BYTES, yielding between slices so queries are not starved), and answer piscina
 * tasks (queries). Before answering a query the ring is drained, so a query sees every event
 * that was acknowledged before the query arrived.
 */

import { workerData } from 'node:worker_threads';
import { RingConsumer, RING_STAT_EVENTS, RING_STAT_RECORDS, type CheckpointResult, type ShardTask } from '../protocol';
import { PaneStore, type PaneStoreOptions } from './pane-store';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint';
import { RecordApplier } from './record-applier';
import { deviceSeries, fleetSeries, listDevices, shardStats, topDevices } from './shard-queries';

export interface ShardWorkerData {
  shard: number;
  ring: SharedArrayBuffer;
  paneMs: number;
  histogramDivisions: number;
  histogramMin: number;
  histogramMax: number;
  /** the shard's last checkpoint, or null for a fresh shard */
  checkpoint: Uint8Array | null;
}

// 1 MiB of records is ~30k events: a few ms of work, short enough to keep query latency low
const POLL_BUDGET_BYTES = 1 << 20;

const data = workerData as ShardWorkerData;
const ring = new RingConsumer(data.ring);
const storeOptions: PaneStoreOptions = {
  paneMs: data.paneMs,
  histogramDivisions: data.histogramDivisions,
  histogramMin: data.histogramMin,
  histogramMax: data.histogramMax,
};
let store = new PaneStore(storeOptions);
const applier = new RecordApplier(ring, store);
if (data.checkpoint !== null) {
  // a checkpoint that does not restore must stop the engine: starting empty would be silently wrong
  const restored = decodeCheckpoint(data.checkpoint, storeOptions);
  if (restored.shard !== data.shard) throw new Error(`checkpoint of shard ${restored.shard} handed to shard ${data.shard}`);
  store = restored.store;
  applier.useStore(store);
  applier.lastSeq = restored.lastSeq;
  applier.skipUpTo = restored.lastSeq;
}

function pollOnce(): number {
  const events = applier.events;
  const records = applier.records;
  const consumed = ring.poll(applier, POLL_BUDGET_BYTES);
  if (consumed !== 0) {
    ring.addStat(RING_STAT_EVENTS, applier.events - events);
    ring.addStat(RING_STAT_RECORDS, applier.records - records);
  }
  return consumed;
}

function pump(): void {
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

/** Applies the records published when the call starts (not the ones that keep arriving). */
function drain(): void {
  let left = ring.usedBytes();
  while (left > 0) {
    const n = pollOnce();
    if (n === 0) break;
    left -= n;
  }
}

export default function handle(task: ShardTask): unknown {
  // stats and stalls must answer at once (health checks, fault injection); everything else
  // reads the state, so it first applies every record published before the task arrived
  if (task.kind !== 'stats' && task.kind !== 'stall') drain();
  switch (task.kind) {
    case 'deviceSeries': return deviceSeries(store, task);
    case 'fleetSeries': return fleetSeries(store, task);
    case 'top': return topDevices(store, task);
    case 'devices': return listDevices(store, task);
    case 'stats': return shardStats(store, data.shard, applier.records);
    case 'stall': Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, task.ms); return null;
    case 'checkpoint': return checkpoint();
    default: throw new Error(`unknown shard task ${(task as { kind: string }).kind}`);
  }
}

function checkpoint(): CheckpointResult {
  const t0 = performance.now();
  const bytes = encodeCheckpoint(data.shard, applier.lastSeq, store);
  const result: CheckpointResult = {
    shard: data.shard, lastSeq: applier.lastSeq, bytes, pauseMs: performance.now() - t0,
    series: store.seriesCount, panes: store.paneCount,
  };
  // structured clone copies the bytes (~1 ms per 10 MB here); piscina only transfers a bare buffer
  return result;
}
