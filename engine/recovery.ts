/**
 * Start-up recovery: the state a restarted engine must reach is the one an uninterrupted run
 * would have over the acknowledged batches.
 *
 * 1. planRecovery (before the workers start): check the shard count against the data dir, read
 *    each shard's checkpoint header (its seq), restore the dictionary, read the device seqs.
 * 2. replayWal (after the workers started from their checkpoints): tell every shard the names it
 *    does not know from its checkpoint (a write lost after the name reached the dictionary, a
 *    device named after the checkpoint: the WAL may not repeat a name it already sent), then
 *    write each WAL entry after the lowest checkpoint into the rings of the shards
 *    whose checkpoint is older than the entry. Workers skip records at or below their checkpoint
 *    seq too, so a record is applied once whatever happens.
 */

import { readCheckpointHeader, type RingProducer, type StoredCheckpoint } from '../protocol';
import { decodeWalEntry, type Store } from '../storage';
import { hasBit } from '../storage/device-bits';
import type { BatchStager } from './batch-stager';
import type { CommitPipeline } from './commit-pipeline';
import type { SluiceConfig } from './config';
import { SENT, type Dictionary } from './dictionary';
import type { Ingest } from './ingest';

export class RecoveryError extends Error {}

export interface RecoveryPlan {
  checkpoints: (StoredCheckpoint | null)[];
  checkpointSeqs: number[];
  devices: number;
  metrics: number;
  /** device ids whose name write was lost in a storage fault (restored under a placeholder) */
  missingDeviceNames: number[];
  /** the last admitted sequence of each device that sent one */
  deviceSeqs: { id: number; seq: number }[];
  /** where planning spent its time (ms): reading the checkpoints, the names into the dictionary, the device seqs */
  timings: { checkpointsMs: number; namesMs: number; deviceSeqsMs: number };
}

export interface ReplaySummary {
  checkpointsLoaded: number;
  walEntriesReplayed: number;
  /** device names sent to shards that did not know them from their checkpoints */
  deviceNamesSent: number;
  recordsReplayed: number;
  eventsReplayed: number;
  nextSeq: number;
  durationMs: number;
}

const DEFINE_FLUSH_BYTES = 256 * 1024;

/** The shards' checkpoints, read first: the workers start restoring them while the names load. */
export interface CheckpointsRead {
  checkpoints: (StoredCheckpoint | null)[];
  checkpointSeqs: number[];
  checkpointsMs: number;
}

export function readCheckpoints(store: Store, config: SluiceConfig): CheckpointsRead {
  const stored = store.getMeta<number>('shards');
  const hasState = store.walCount() > 0 || store.checkpoints.shards().length > 0;
  if (stored !== undefined && stored !== config.shards && hasState) {
    throw new RecoveryError(`the data dir ${config.dataDir} was written with --shards ${stored}; start with --shards ${stored} ` +
      '(re-sharding a data dir is not supported: each device\'s state lives in its shard\'s checkpoint)');
  }
  store.putMetaSync('shards', config.shards);
  const t0 = performance.now();
  const checkpoints: (StoredCheckpoint | null)[] = [];
  const checkpointSeqs: number[] = [];
  for (let s = 0; s < config.shards; s++) {
    const stored = store.checkpoints.read(s) ?? null;
    let seq = 0;
    if (stored !== null) {
      try {
        const h = readCheckpointHeader(stored.base);
        if (h.shard !== s) throw new Error(`it belongs to shard ${h.shard}`);
        seq = h.lastSeq;
      } catch (e) {
        throw new RecoveryError(`the checkpoint of shard ${s} in ${config.dataDir} is unusable: ${(e as Error).message}`);
      }
    }
    checkpoints.push(stored);
    checkpointSeqs.push(seq);
  }
  return { checkpoints, checkpointSeqs, checkpointsMs: Math.round(performance.now() - t0) };
}

/** The recovery plan: the checkpoints (read before, see readCheckpoints), the names into the dictionary, the device seqs. */
export function planRecovery(store: Store, config: SluiceConfig, dict: Dictionary, read = readCheckpoints(store, config)): RecoveryPlan {
  const { checkpoints, checkpointSeqs } = read;
  const t1 = performance.now();
  const devices = store.loadDeviceNameRuns();
  const metrics = store.loadMetricNames();
  const missing = dict.restore(devices, metrics);
  const t2 = performance.now();
  const deviceSeqs = store.loadDeviceSeqs();
  const t3 = performance.now();
  return {
    checkpoints, checkpointSeqs, devices: dict.deviceCount, metrics: metrics.length, missingDeviceNames: missing, deviceSeqs,
    timings: { checkpointsMs: read.checkpointsMs, namesMs: Math.round(t2 - t1), deviceSeqsMs: Math.round(t3 - t2) },
  };
}

async function waitRoom(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1));
}

/** Reserves what the stager holds, waiting for the workers to make room; publishes it. */
async function flushStaged(stager: BatchStager, producers: RingProducer[]): Promise<void> {
  while (!stager.tryReserve(0)) await waitRoom();
  for (const p of producers) p.publish();
  stager.begin();
}

/**
 * known: per shard, the device ids its checkpoint restored (bit id set; SeriesTable.knownDeviceBits).
 * The names a shard lacks are sent before any replayed record can use them; the others are marked
 * sent (re-sending 1M names cost seconds of a 1M-device restart).
 */
export async function replayWal(store: Store, plan: RecoveryPlan, dict: Dictionary, stager: BatchStager,
  producers: RingProducer[], pipeline: CommitPipeline, ingest: Ingest, known: readonly Uint8Array[]): Promise<ReplaySummary> {
  const t0 = Date.now();
  stager.begin();
  let namesSent = 0;
  for (let id = 0; id < dict.deviceCount; id++) {
    const bits = known[dict.shardOf(id)];
    if (bits !== undefined && hasBit(bits, id)) {
      dict.deviceState[id] = SENT;
      continue;
    }
    namesSent++;
    stager.stageDeviceName(id);
    if (stager.stagedBytes > DEFINE_FLUSH_BYTES) await flushStaged(stager, producers);
  }
  for (let s = 0; s < producers.length; s++) {
    for (let m = 0; m < dict.metricNames.length; m++) stager.stageMetricName(s, m);
  }
  await flushStaged(stager, producers);

  const from = Math.min(...plan.checkpointSeqs);
  let entries = 0;
  let records = 0;
  let events = 0;
  let lastSeq = Math.max(0, ...plan.checkpointSeqs);
  for (const { seq, entry } of store.walAfter(from)) {
    const parts = decodeWalEntry(entry);
    if (parts.length !== producers.length) {
      throw new RecoveryError(`WAL entry ${seq} holds ${parts.length} shards, the engine runs ${producers.length}`);
    }
    pipeline.countWal(seq, entry.byteLength);
    for (let s = 0; s < parts.length; s++) {
      const part = parts[s];
      if (part.byteLength === 0 || seq <= plan.checkpointSeqs[s]) continue;
      let off = 0;
      const v = new DataView(part.buffer, part.byteOffset, part.byteLength);
      while (off < part.byteLength) {
        const total = v.getUint32(off, true);
        events += eventsIn(v, off);
        while (!producers[s].tryWriteRecord(part, off, total)) {
          producers[s].publish();
          await waitRoom();
        }
        off += total;
        records++;
      }
      producers[s].publish();
    }
    entries++;
    if (seq > lastSeq) lastSeq = seq;
  }
  ingest.nextSeq = lastSeq + 1;
  return {
    checkpointsLoaded: plan.checkpoints.filter((c) => c !== null).length,
    walEntriesReplayed: entries, deviceNamesSent: namesSent, recordsReplayed: records, eventsReplayed: events, nextSeq: ingest.nextSeq,
    durationMs: Date.now() - t0,
  };
}

/** Events in the ring record at off (EVENTS: count; COLUMNAR: rows; others: 0). */
function eventsIn(v: DataView, off: number): number {
  const type = v.getUint32(off + 4, true);
  if (type === 3) return v.getUint32(off + 8, true);
  if (type === 4) return v.getUint32(off + 12, true);
  return 0;
}
