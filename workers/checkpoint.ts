/**
 * Shard checkpoints, incremental: what the head and the series table hold that storage does not.
 *
 * - base: the fixed header (protocol/checkpoint-header: shard, lastSeq), then msgpack of the
 *   watermark and late count, and the counts the restore must find (series, head readings).
 * - groups (stored by the front-end under [shard, id], deleted when no longer live):
 *   - series groups, id < 0 (-1, -2, ...: a newer group has a larger |id| and covers later
 *     rows): ranges of the series table's logs (SeriesTable.rows: typed arrays, packed as
 *     msgpack typed-array extensions, a memcpy each), together covering the whole table, in
 *     order. Kept bounded by SeriesCheckpoints (below): no take() rewrites more than
 *     SERIES_GROUP_ROWS rows besides the new ones;
 *   - head chunks, id = sliceNo * 2^20 + k (k: the slice's k-th chunk): the readings appended to
 *     an open slice since the previous checkpoint (HeadSlices.snapshotSince). A sealed slice's
 *     chunks stop being live, so the front-end deletes them in the checkpoint's transaction;
 *     a slice leaves the head only once its blocks are committed (workers/sealer.ts), so a
 *     checkpoint never lets go of readings that are not in storage.
 * So a cycle writes what arrived in it, not the whole state: at 1M series x 1 reading per 10 s,
 * 5 s of readings is ~10 MB; a new series costs 8 B and a new name 5 B plus its bytes.
 *
 * Formats: the base body is format 4 (the same fields as 3; 4 says the series groups may be
 * SeriesRows format 2, which a Sluice that reads only 3 could not). Format 3 checkpoints, with
 * series groups of the legacy shape (number arrays, [id, name] pairs), still restore.
 *
 * Runs in the shard worker (one ShardCheckpoints per shard). Checked on both sides of I/O: a
 * restore must find the series and head readings the base recorded, or it throws (the engine
 * refuses to start: starting empty would be silently wrong). A checkpoint the front-end failed
 * to store is followed by a full one (the task says so): every group again, with new ids,
 * nothing assumed stored.
 */

import { Packr, Unpackr } from 'msgpackr';
import { CHECKPOINT_HEADER_BYTES, readCheckpointHeader, writeCheckpointHeader, type CheckpointGroup } from '../protocol';
import type { HeadCut, SliceMark } from './head-slices';
import { ROW_MARK_ZERO, type LegacySeriesRows, type RowMark, type SeriesRows, type SeriesTable } from './series-table';
import type { ShardState, ShardStateSnapshot } from './shard-state';

const packr = new Packr({ useRecords: false });
/** moreTypes: typed arrays as msgpackr's typed-array extension (restored as their own type), not bin */
const seriesPackr = new Packr({ useRecords: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false });

/** chunks per slice and checkpoint cycle stay far below this */
const CHUNK_IDS_PER_SLICE = 2 ** 20;
/**
 * Rows (series + names) from which a series group is final: written once, never rewritten.
 * 65,536 rows is ~1 MB of group at 1 metric per device (32k series and their device names), a
 * few ms to pack; it is also the most a take rewrites besides its new rows.
 */
export const SERIES_GROUP_ROWS = 65_536;
/** Formats of the base body this code reads; it writes the last one. */
const BODY_FORMATS = [3, 4] as const;
const BODY_FORMAT = 4;

interface CheckpointBody {
  format: 3 | 4;
  state: ShardStateSnapshot;
  series: number;
  headReadings: number;
}

export interface EncodedCheckpoint {
  /** where take() spent its time (ms): the head's new readings, the series groups, the base */
  parts: { headMs: number; seriesMs: number; baseMs: number };
  base: Uint8Array;
  /** the groups written this cycle */
  groups: CheckpointGroup[];
  /** every live group id: stored groups of any other id are deleted */
  live: number[];
}

/**
 * A checkpoint cut with the ring paused (ShardCheckpoints.cut: what to copy, the base, the ids)
 * and not yet encoded: ShardCheckpoints.encode copies it in steps afterwards. It holds the head's
 * cut: encode it to its end (or throw) before the next cut.
 */
export interface PendingCheckpoint {
  readonly base: Uint8Array;
  readonly head: HeadCut;
  /** the group id of each of head.parts */
  readonly headIds: readonly number[];
  /** the series groups: their ids and row ranges (the table's logs only append: packed later, the same rows) */
  readonly series: readonly PlannedGroup[];
  readonly live: number[];
  /** where cut() spent its time (ms): the head's marks, the series plan, the base */
  readonly parts: { headMs: number; seriesMs: number; baseMs: number };
}

/** a series group to write: the table's rows [start, end) under id */
export interface PlannedGroup { id: number; start: RowMark; end: RowMark }

export class ShardCheckpoints {
  private marks = new Map<number, SliceMark>();
  /** per open slice, its stored chunk ids */
  private readonly sliceGroups = new Map<number, number[]>();
  private readonly series: SeriesCheckpoints;

  constructor(private readonly shard: number, seriesGroupRows = SERIES_GROUP_ROWS) {
    this.series = new SeriesCheckpoints(seriesGroupRows);
  }

  /** After a restore: continue from what is stored (group ids as found). */
  resume(state: ShardState, storedIds: readonly number[]): void {
    this.marks = state.head.marks();
    this.series.resume(state.series, storedIds.filter((id) => id < 0));
    for (const id of [...storedIds].sort((a, b) => a - b)) {
      if (id < 0) continue;
      const sliceNo = Math.floor(id / CHUNK_IDS_PER_SLICE);
      const list = this.sliceGroups.get(sliceNo);
      if (list === undefined) this.sliceGroups.set(sliceNo, [id]);
      else list.push(id);
    }
  }

  /**
   * cut() and encode() in one go (tests, benches). reuse: the head chunks' bytes are the head's
   * reused buffers (HeadSlices.snapshotSince), valid until the next take; tests that keep the
   * groups of several takes leave it off.
   */
  take(state: ShardState, lastSeq: number, full: boolean, reuse = false): EncodedCheckpoint {
    const pending = this.cut(state, lastSeq, full);
    const steps = this.encode(state, pending, reuse);
    for (;;) {
      const r = steps.next();
      if (r.done === true) return r.value;
    }
  }

  /**
   * What this checkpoint holds, decided at this point of the shard's applied records: the head's
   * rows to copy (their pages held), the series rows to pack, the base, the live ids. O(open
   * slices + chunks + groups), plus the base and the new device names' lengths: this is what the
   * shard pauses its ring for. The ids and marks are this shard's from here on (a checkpoint that
   * fails to be stored is followed by a full one).
   */
  cut(state: ShardState, lastSeq: number, full: boolean): PendingCheckpoint {
    const t0 = performance.now();
    if (full) {
      this.marks = new Map();
      this.sliceGroups.clear();
    }
    const head = state.head.cut(this.marks);
    const headIds: number[] = [];
    try {
      for (const sliceNo of head.drop) this.sliceGroups.delete(sliceNo);
      for (const sliceNo of this.sliceGroups.keys()) if (!state.head.isOpen(sliceNo)) this.sliceGroups.delete(sliceNo);
      for (const c of head.parts) {
        let list = this.sliceGroups.get(c.sliceNo);
        if (list === undefined) this.sliceGroups.set(c.sliceNo, list = []);
        const k = list.length === 0 ? 0 : list[list.length - 1]! - c.sliceNo * CHUNK_IDS_PER_SLICE + 1;
        if (k >= CHUNK_IDS_PER_SLICE) throw new Error(`BUG: slice ${c.sliceNo} has ${k} checkpoint chunks`);
        const id = c.sliceNo * CHUNK_IDS_PER_SLICE + k;
        list.push(id);
        headIds.push(id);
      }
    } catch (e) {
      state.head.endCut(head);
      throw e;
    }
    this.marks = head.marks;
    const t1 = performance.now();

    const series = this.series.plan(state.series, full);
    const t2 = performance.now();

    const body: CheckpointBody = { format: BODY_FORMAT, state: state.snapshot(), series: state.series.seriesCount, headReadings: state.head.readingsHeld };
    const packed = packr.pack(body);
    const base = new Uint8Array(CHECKPOINT_HEADER_BYTES + packed.byteLength);
    writeCheckpointHeader(base, this.shard, lastSeq);
    base.set(packed, CHECKPOINT_HEADER_BYTES);
    const live = this.series.live();
    for (const list of this.sliceGroups.values()) live.push(...list);
    return { base, head, headIds, series, live, parts: { headMs: t1 - t0, seriesMs: t2 - t1, baseMs: performance.now() - t2 } };
  }

  /**
   * Copies a cut checkpoint into its groups, one head chunk or series group a step (~1 ms each:
   * the caller yields to its ring between steps); ends the head's cut when done or on a throw.
   */
  *encode(state: ShardState, pending: PendingCheckpoint, reuse: boolean): Generator<void, EncodedCheckpoint> {
    const head = state.head;
    const groups: CheckpointGroup[] = [];
    let ended = false;
    try {
      const parts = pending.head.parts;
      for (let k = 0; k < parts.length; k++) {
        groups.push({ paneNo: pending.headIds[k]!, bytes: head.encodeCut(parts[k]!, k, reuse).bytes });
        yield;
      }
      head.endCut(pending.head, reuse ? parts.length : -1);
      ended = true;
      for (const g of pending.series) {
        groups.push({ paneNo: g.id, bytes: packRows(state.series.rows(g.start, g.end)) });
        yield;
      }
    } finally {
      if (!ended) head.endCut(pending.head);
    }
    return { parts: pending.parts, base: pending.base, groups, live: pending.live };
  }
}

/** A stored series group: the range [start, end) of the table's logs, under id. */
interface SeriesGroup {
  id: number;
  start: RowMark;
  end: RowMark;
  /** at least groupRows rows (or of unknown range): never rewritten, but by a full checkpoint */
  final: boolean;
}

/**
 * The series table's part of the checkpoints: a tiered scheme (the logarithmic method of LSM
 * trees) whose every take is bounded.
 *
 * The stored groups cover the table's rows in order: final groups (at least groupRows rows each,
 * never rewritten), then a tail of smaller groups, each at least twice the size of the next one
 * (so at most log2(groupRows) + 1 of them). A take adds the rows since the previous take:
 * - when the tail and the new rows reach groupRows, it rewrites them as final groups of about
 *   groupRows rows (cut at SeriesTable.markAt marks) and a smaller remainder;
 * - else it writes the new rows as one group, merged with the last tail groups while such a
 *   group is less than twice the merge (a binary counter's carry).
 * A take thus writes its new rows and rewrites at most the tail (under groupRows rows); a row is
 * rewritten O(log groupRows) times at most; the live groups number about rows / groupRows +
 * log2(groupRows) (after a restore of format 3 groups, their small ones count until they merge).
 * A full take rewrites everything, split the same way.
 *
 * Group ids grow with the rows they cover (a rewrite replaces a suffix of the groups and takes
 * new ids), so the restore order is the id order, as with the groups of format 3.
 */
export class SeriesCheckpoints {
  /** the stored groups, in row order */
  private groups: SeriesGroup[] = [];
  private nextId = 1;

  constructor(readonly groupRows = SERIES_GROUP_ROWS) {
    if (!(Number.isInteger(groupRows) && groupRows >= 1)) throw new RangeError(`groupRows must be a positive integer: ${groupRows}`);
  }

  /**
   * After table.restore() of the stored groups (decodeCheckpoint's order): their ranges are the
   * marks the table noted after each restore. Groups it cannot map (restored otherwise) are kept
   * as final groups of unknown range until the next full take.
   */
  resume(table: SeriesTable, storedIds: readonly number[]): void {
    const ids = [...storedIds].sort((a, b) => b - a);
    const parts = table.takeRestoredParts();
    this.nextId = ids.length === 0 ? 1 : -ids[ids.length - 1]! + 1;
    const mapped = parts.length === ids.length && parts.every((p, i) => p.group === ids[i]);
    const now = table.rowMark();
    if (mapped && (parts.length === 0 ? sameMark(now, ROW_MARK_ZERO) : sameMark(parts[parts.length - 1]!.end, now))) {
      this.groups = parts.map((p, i) => {
        const start = i === 0 ? ROW_MARK_ZERO : parts[i - 1]!.end;
        return { id: p.group!, start, end: p.end, final: rowsBetween(start, p.end) >= this.groupRows };
      });
      // take() keeps the tail under groupRows rows; small groups of format 3 may add up to more:
      // those before the last groupRows rows are final (never rewritten)
      let tail = 0;
      for (let i = this.groups.length - 1; i >= 0 && !this.groups[i]!.final; i--) {
        tail += groupSize(this.groups[i]!);
        if (tail >= this.groupRows) for (let j = i; j >= 0; j--) this.groups[j]!.final = true;
      }
    } else {
      this.groups = ids.map((id) => ({ id, start: now, end: now, final: true }));
    }
  }

  /** The groups to write for the rows added since the previous take (every row when full). */
  take(table: SeriesTable, full: boolean): CheckpointGroup[] {
    return this.plan(table, full).map((g) => ({ paneNo: g.id, bytes: packRows(table.rows(g.start, g.end)) }));
  }

  /**
   * take()'s groups, not packed: O(groups), no row read (the names' lengths are computed when
   * packed). The ranges stay valid as the table grows: its logs only append.
   */
  plan(table: SeriesTable, full: boolean): PlannedGroup[] {
    if (full) this.groups = [];
    const end = table.rowMark();
    const last = this.groups.length === 0 ? ROW_MARK_ZERO : this.groups[this.groups.length - 1]!.end;
    if (sameMark(last, end)) return [];
    let tail = this.groups.length;
    while (tail > 0 && !this.groups[tail - 1]!.final) tail--;
    const tailStart = tail < this.groups.length ? this.groups[tail]!.start : last;
    let from: number;
    if (rowsBetween(tailStart, end) >= this.groupRows) {
      from = tail;
    } else {
      let merged = rowsBetween(last, end);
      from = this.groups.length;
      while (from > tail && groupSize(this.groups[from - 1]!) < 2 * merged) merged += groupSize(this.groups[--from]!);
    }
    const start = from < this.groups.length ? this.groups[from]!.start : last;
    this.groups.length = from;
    const out: PlannedGroup[] = [];
    for (const cut of this.cuts(table, start, end)) {
      const id = -(this.nextId++);
      this.groups.push({ id, start: cut.start, end: cut.end, final: rowsBetween(cut.start, cut.end) >= this.groupRows });
      out.push({ id, start: cut.start, end: cut.end });
    }
    return out;
  }

  /** every stored group id (a new array) */
  live(): number[] {
    return this.groups.map((g) => g.id);
  }

  /** [start, end) cut at the table's marks into ranges of about groupRows rows (the last may be less). */
  private cuts(table: SeriesTable, start: RowMark, end: RowMark): { start: RowMark; end: RowMark }[] {
    const out: { start: RowMark; end: RowMark }[] = [];
    let at = start;
    const every = table.markEvery;
    for (let s = (Math.floor(start.series / every) + 1) * every; s < end.series; s += every) {
      if (rowsBetween(at, end) < this.groupRows) break; // no cut can make a final group any more
      const mark = table.markAt(s);
      if (rowsBetween(at, mark) >= this.groupRows) {
        out.push({ start: at, end: mark });
        at = mark;
      }
    }
    out.push({ start: at, end });
    return out;
  }
}

/**
 * Packs a group into a buffer of its own, sized to fit (msgpack headers are < 256 B here): the
 * bytes are kept until their write commits, and a small group must not hold a packr's shared
 * multi-MB buffer alive (nor be overwritten by the next pack into it).
 */
function packRows(rows: SeriesRows): Uint8Array {
  const names = (n: SeriesRows['deviceNames']): number => 32 + n.ids.byteLength + n.text.byteLength + n.lengths.byteLength;
  // 2,058 B at least: msgpackr starts a new buffer when less than 2 KiB is left
  const bound = Math.max(2_304, 256 + rows.device.byteLength + rows.metric.byteLength + names(rows.deviceNames) + names(rows.metricNames));
  seriesPackr.useBuffer(Buffer.alloc(bound));
  return seriesPackr.pack(rows);
}

function rowsBetween(a: RowMark, b: RowMark): number {
  return b.series - a.series + b.devices - a.devices + b.metrics - a.metrics;
}

function groupSize(g: SeriesGroup): number {
  return rowsBetween(g.start, g.end);
}

function sameMark(a: RowMark, b: RowMark): boolean {
  return a.series === b.series && a.devices === b.devices && a.metrics === b.metrics;
}

export interface RestoredShard {
  shard: number;
  lastSeq: number;
  state: ShardStateSnapshot;
  /** series rows in order (each names its group) */
  rows: (SeriesRows | LegacySeriesRows)[];
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
  if (!(BODY_FORMATS as readonly number[]).includes(body.format)) {
    throw new Error(`checkpoint of shard ${shard} has body format ${String(body.format)}; this Sluice reads ${BODY_FORMATS.join(' and ')}`);
  }
  const sorted = [...groups].sort((a, b) => a.paneNo - b.paneNo);
  const rows = decodeSeriesGroups(sorted, shard);
  const headChunks = sorted.filter((g) => g.paneNo >= 0).map((g) => g.bytes);
  return {
    shard, lastSeq, state: body.state, rows, headChunks, seriesCount: body.series, headReadings: body.headReadings,
    ids: sorted.map((g) => g.paneNo),
  };
}

/** The series groups among a checkpoint's groups, decoded in restore order (-1, -2, ...), each naming its group. */
export function decodeSeriesGroups(groups: readonly CheckpointGroup[], shard: number): (SeriesRows | LegacySeriesRows)[] {
  return groups.filter((g) => g.paneNo < 0).sort((a, b) => b.paneNo - a.paneNo).map((g) => {
    const r = unpackr.unpack(g.bytes) as SeriesRows | LegacySeriesRows;
    if (typeof r !== 'object' || r === null || typeof r.from !== 'number') throw new Error(`checkpoint of shard ${shard}: series group ${g.paneNo} is malformed`);
    r.group = g.paneNo;
    return r;
  });
}
