/**
 * Shard checkpoints, incremental: what the head and the series table hold that storage does not.
 *
 * - base: the fixed header (protocol/checkpoint-header: shard, lastSeq), then msgpack of the
 *   watermark and late count, and the counts the restore must find (series, head readings).
 * - groups (stored by the front-end under [shard, id], deleted when no longer live):
 *   - series rows, id < 0 (-1, -2, ... in order): the series and names added since the previous
 *     checkpoint (SeriesTable.rowsSince); after SERIES_GROUPS_MAX of them one full group
 *     replaces them all;
 *   - head chunks, id = sliceNo * 2^20 + k (k: the slice's k-th chunk): the readings appended to
 *     an open slice since the previous checkpoint (HeadSlices.snapshotSince). A sealed slice's
 *     chunks stop being live, so the front-end deletes them in the checkpoint's transaction;
 *     the slice's blocks were committed before (checkpoints wait for the sealer).
 * So a cycle writes what arrived in it, not the whole state: at 1M series x 1 reading per 10 s,
 * 5 s of readings is ~10 MB.
 *
 * Runs in the shard worker (one Checkpointer per shard). Checked on both sides of I/O: a restore
 * must find the series and head readings the base recorded, or it throws (the engine refuses to
 * start: starting empty would be silently wrong). A checkpoint the front-end failed to store is
 * followed by a full one (the task says so): every group again, nothing assumed stored.
 */

import { Packr, Unpackr } from 'msgpackr';
import { CHECKPOINT_HEADER_BYTES, readCheckpointHeader, writeCheckpointHeader, type CheckpointGroup } from '../protocol';
import type { SliceMark } from './head-slices';
import type { SeriesRows } from './series-table';
import type { ShardState, ShardStateSnapshot } from './shard-state';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

/** chunks per slice and checkpoint cycle stay far below this */
const CHUNK_IDS_PER_SLICE = 2 ** 20;
/** series row groups kept before one full group replaces them */
const SERIES_GROUPS_MAX = 64;

interface CheckpointBody {
  format: 3;
  state: ShardStateSnapshot;
  series: number;
  headReadings: number;
}

export interface EncodedCheckpoint {
  base: Uint8Array;
  /** the groups written this cycle */
  groups: CheckpointGroup[];
  /** every live group id: stored groups of any other id are deleted */
  live: number[];
}

export class ShardCheckpoints {
  private marks = new Map<number, SliceMark>();
  /** per open slice, its stored chunk ids */
  private readonly sliceGroups = new Map<number, number[]>();
  private seriesGroups: number[] = [];
  private seriesMark = 0;
  private nextSeriesGroup = 1;

  constructor(private readonly shard: number) {}

  /** After a restore: continue from what is stored (group ids as found). */
  resume(state: ShardState, storedIds: readonly number[]): void {
    this.marks = state.head.marks();
    this.seriesMark = state.series.seriesCount;
    for (const id of [...storedIds].sort((a, b) => a - b)) {
      if (id < 0) {
        this.seriesGroups.push(id);
        this.nextSeriesGroup = Math.max(this.nextSeriesGroup, -id + 1);
      } else {
        const sliceNo = Math.floor(id / CHUNK_IDS_PER_SLICE);
        const list = this.sliceGroups.get(sliceNo);
        if (list === undefined) this.sliceGroups.set(sliceNo, [id]);
        else list.push(id);
      }
    }
  }

  take(state: ShardState, lastSeq: number, full: boolean): EncodedCheckpoint {
    const groups: CheckpointGroup[] = [];
    if (full) {
      this.marks = new Map();
      this.sliceGroups.clear();
    }
    const snap = state.head.snapshotSince(this.marks);
    for (const sliceNo of snap.drop) this.sliceGroups.delete(sliceNo);
    for (const sliceNo of this.sliceGroups.keys()) if (!state.head.isOpen(sliceNo)) this.sliceGroups.delete(sliceNo);
    for (const c of snap.chunks) {
      let list = this.sliceGroups.get(c.sliceNo);
      if (list === undefined) this.sliceGroups.set(c.sliceNo, list = []);
      const k = list.length === 0 ? 0 : list[list.length - 1]! - c.sliceNo * CHUNK_IDS_PER_SLICE + 1;
      if (k >= CHUNK_IDS_PER_SLICE) throw new Error(`BUG: slice ${c.sliceNo} has ${k} checkpoint chunks`);
      const id = c.sliceNo * CHUNK_IDS_PER_SLICE + k;
      list.push(id);
      groups.push({ paneNo: id, bytes: c.bytes });
    }
    this.marks = snap.marks;

    const compact = full || this.seriesGroups.length >= SERIES_GROUPS_MAX;
    const rows: SeriesRows = compact ? state.series.allRows() : state.series.rowsSince(this.seriesMark);
    if (compact) this.seriesGroups = [];
    if (compact || rows.pairs.length > 0 || rows.devices.length > 0 || rows.metrics.length > 0) {
      const id = -(this.nextSeriesGroup++);
      this.seriesGroups.push(id);
      groups.push({ paneNo: id, bytes: packr.pack(rows) });
    }
    this.seriesMark = state.series.seriesCount;

    const body: CheckpointBody = { format: 3, state: state.snapshot(), series: state.series.seriesCount, headReadings: state.head.readingsHeld };
    const packed = packr.pack(body);
    const base = new Uint8Array(CHECKPOINT_HEADER_BYTES + packed.byteLength);
    writeCheckpointHeader(base, this.shard, lastSeq);
    base.set(packed, CHECKPOINT_HEADER_BYTES);
    const live = [...this.seriesGroups];
    for (const list of this.sliceGroups.values()) live.push(...list);
    return { base, groups, live };
  }
}

export interface RestoredShard {
  shard: number;
  lastSeq: number;
  state: ShardStateSnapshot;
  /** series rows in order */
  rows: SeriesRows[];
  headChunks: Uint8Array[];
  seriesCount: number;
  headReadings: number;
  /** the stored group ids */
  ids: number[];
}

/** Decodes a stored checkpoint (groups in any order); ShardState.restore() applies it. */
export function decodeCheckpoint(base: Uint8Array, groups: readonly CheckpointGroup[]): RestoredShard {
  const { shard, lastSeq } = readCheckpointHeader(base);
  const body = unpackr.unpack(base.subarray(CHECKPOINT_HEADER_BYTES)) as CheckpointBody;
  if (body.format !== 3) throw new Error(`checkpoint of shard ${shard} has body format ${String(body.format)}; this Sluice reads 3`);
  const sorted = [...groups].sort((a, b) => a.paneNo - b.paneNo);
  // series groups: -1 first, then -2, ...: descending ids
  const rows = sorted.filter((g) => g.paneNo < 0).reverse().map((g) => unpackr.unpack(g.bytes) as SeriesRows);
  const headChunks = sorted.filter((g) => g.paneNo >= 0).map((g) => g.bytes);
  return {
    shard, lastSeq, state: body.state, rows, headChunks, seriesCount: body.series, headReadings: body.headReadings,
    ids: sorted.map((g) => g.paneNo),
  };
}
