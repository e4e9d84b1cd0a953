/**
 * Shard checkpoints: the PaneStore snapshot behind the fixed header of protocol/checkpoint-header.
 * Runs in the shard worker. Checked on both sides of I/O: the body must decode and restore into a
 * store whose counts match the header's record of them, or the checkpoint is refused loudly.
 */

import { Packr, Unpackr } from 'msgpackr';
import {
  CHECKPOINT_HEADER_BYTES, readCheckpointHeader, writeCheckpointHeader,
} from '../protocol';
import { PaneStore, type PaneStoreOptions, type PaneStoreSnapshot } from './pane-store';
import type { EventTimeState } from './event-time';

const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: true });

interface CheckpointBody {
  series: number;
  panes: number;
  store: PaneStoreSnapshot;
  /** watermark state; null in checkpoints written before event time existed */
  time: EventTimeState | null;
}

export function encodeCheckpoint(shard: number, lastSeq: number, store: PaneStore, time: EventTimeState | null): Uint8Array {
  const body: CheckpointBody = { series: store.seriesCount, panes: store.paneCount, store: store.snapshot(), time };
  const packed = packr.pack(body);
  const out = new Uint8Array(CHECKPOINT_HEADER_BYTES + packed.byteLength);
  writeCheckpointHeader(out, shard, lastSeq);
  out.set(packed, CHECKPOINT_HEADER_BYTES);
  return out;
}

export interface RestoredShard {
  shard: number;
  lastSeq: number;
  store: PaneStore;
  time: EventTimeState | null;
}

export function decodeCheckpoint(bytes: Uint8Array, options: PaneStoreOptions): RestoredShard {
  const { shard, lastSeq } = readCheckpointHeader(bytes);
  const body = unpackr.unpack(bytes.subarray(CHECKPOINT_HEADER_BYTES)) as CheckpointBody;
  const store = PaneStore.restore(options, body.store);
  if (store.seriesCount !== body.series || store.paneCount !== body.panes) {
    throw new Error(`checkpoint of shard ${shard} restores ${store.seriesCount} series / ${store.paneCount} panes, it recorded ${body.series} / ${body.panes}`);
  }
  return { shard, lastSeq, store, time: body.time ?? null };
}
