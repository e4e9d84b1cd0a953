/**
 * Shard checkpoints, incremental: a base (the fixed header of protocol/checkpoint-header, then the
 * store's tables, the live pane numbers and the watermark state) plus one stored group per live
 * pane number (PaneStore.snapshot). A checkpoint writes the base, the groups that changed, and
 * deletes the stored groups no longer live, in one transaction (Store.writeCheckpoint).
 * Runs in the shard worker. Checked on both sides of I/O: the base and the groups must decode and
 * restore into a store whose counts match the base's record of them, or the checkpoint is
 * refused loudly.
 */

import { Packr, Unpackr } from 'msgpackr';
import {
  CHECKPOINT_HEADER_BYTES, readCheckpointHeader, writeCheckpointHeader, type CheckpointGroup,
} from '../protocol';
import { PaneStore, type PaneGroup, type PaneStoreOptions, type PaneStoreSnapshot } from './pane-store';
import type { EventTimeState } from './event-time';

const packr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: true });

interface CheckpointBase {
  series: number;
  panes: number;
  /** the snapshot without its groups */
  store: PaneStoreSnapshot;
  time: EventTimeState | null;
}

export interface EncodedCheckpoint {
  base: Uint8Array;
  /** the groups that changed since the previous checkpoint (all of them when full) */
  groups: CheckpointGroup[];
  /** every live pane number: stored groups of other pane numbers are deleted */
  livePaneNos: number[];
}

export function encodeCheckpoint(shard: number, lastSeq: number, store: PaneStore, time: EventTimeState | null, full: boolean): EncodedCheckpoint {
  const snap = store.snapshot(full);
  const groups = snap.groups.map((g) => ({ paneNo: g.paneNo, bytes: packr.pack(g) as Uint8Array }));
  const body: CheckpointBase = { series: store.seriesCount, panes: store.paneCount, store: { ...snap, groups: [] }, time };
  const packed = packr.pack(body);
  const base = new Uint8Array(CHECKPOINT_HEADER_BYTES + packed.byteLength);
  writeCheckpointHeader(base, shard, lastSeq);
  base.set(packed, CHECKPOINT_HEADER_BYTES);
  return { base, groups, livePaneNos: Array.from(snap.livePaneNos) };
}

export interface RestoredShard {
  shard: number;
  lastSeq: number;
  store: PaneStore;
  time: EventTimeState | null;
}

/** groups: the stored groups of the shard, any order */
export function decodeCheckpoint(base: Uint8Array, groups: Uint8Array[], options: PaneStoreOptions): RestoredShard {
  const { shard, lastSeq } = readCheckpointHeader(base);
  const body = unpackr.unpack(base.subarray(CHECKPOINT_HEADER_BYTES)) as CheckpointBase;
  const snap: PaneStoreSnapshot = { ...body.store, groups: groups.map((g) => unpackr.unpack(g) as PaneGroup) };
  const store = PaneStore.restore(options, snap);
  if (store.seriesCount !== body.series || store.paneCount !== body.panes) {
    throw new Error(`checkpoint of shard ${shard} restores ${store.seriesCount} series / ${store.paneCount} panes, it recorded ${body.series} / ${body.panes}`);
  }
  return { shard, lastSeq, store, time: body.time ?? null };
}
