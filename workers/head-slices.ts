/**
 * HeadSlices: the compact head of one shard: the raw readings of the open (not yet sealed) time
 * slices, as appended typed-array columns, with no object per reading or per pane.
 *
 * Contract:
 * - Runs in exactly one shard worker thread, which owns it (actor rule). Pure: no I/O, no clock;
 *   time is the readings' own timestamps.
 * - append(series, ts, value): series is a shard-local id in [0, 2^31); ts epoch ms in
 *   [0, 8.64e15], fractional allowed (the whole-ms part is kept); value finite. Anything else throws
 *   (the front-end validated it: a bad value here is a bug). The reading goes to slice
 *   floor(ts / sliceMs), created on first use; readings of any open slice arrive in any order.
 * - Open slices sit in a ring indexed by sliceNo mod slicesMax; a slice whose ring slot is taken
 *   by another open slice goes to an overflow map (slower, rare: open slices far apart happen only
 *   before the watermark first moves, e.g. a first batch with a reading days old). readingsMax
 *   bounds the readings held (pages allocated) and throws when exceeded: nothing is silently
 *   dropped.
 * - presentSeries(sliceNo) lists a slice's series ids ascending; gather(sliceNo, ids, a, b, out)
 *   copies the readings of ids[a..b) sorted by series id, stable (arrival order kept within a
 *   series), into `out`, and leaves the slice open and readable; drop(sliceNo) then returns its
 *   storage to the pools (the sealer gathers a chunk at a time and drops a slice once its blocks
 *   are committed); seal() is all of it at once. A slice that is not open answers null / false.
 * - snapshotSince(marks) / HeadSlices.restore(): incremental checkpoints (see below).
 *
 * Layout:
 * - Readings live in pages of pageReadings (default 4096) readings, one ArrayBuffer per page
 *   holding four columns: value f64, series u32, offset u32 (ms from the slice start), prev i32
 *   (index in the slice of the same series' previous reading, -1 if none): 20 bytes a reading. A
 *   slice is a list of pages; reading i of a slice is page i >> pageShift, row i & pageMask. Pages
 *   come from one free pool shared by all slices, so a slice wastes at most one partial page and a
 *   sealed slice's pages are reused by any new slice (growing by doubling would waste up to half of
 *   each slice: 600k readings in a 1M-reading column is 8 MB idle per slice at 100k series).
 * - Per slice, a per-series index: the series' newest reading (head of its prev chain) and a
 *   reading count (u16, saturating at 65535; the exact count is then recovered by walking the
 *   chain). Two forms, the smaller one chosen per slice ('auto'):
 *   - dense: Int32Array heads + Uint16Array counts indexed by series id: 6 B per id up to the
 *     shard's highest id. The hot path: no hash, a few typed-array stores.
 *   - map: open addressing, linear probing, stride 3 in one Int32Array (series, head, count):
 *     12 B a slot at load <= 1/2, so 24-48 B per present series, for sparse slices (few series
 *     of many, or ids spread up to 2^31 - 1).
 *   A new slice starts as a 16-slot map; when the map must double and the dense form (sized to
 *   the shard's highest id + 1) would be no bigger, it converts to dense. A dense slice that meets
 *   an id beyond its arrays grows them (x1.125, rounded to 256 ids) unless that would cost more
 *   than twice the map form, in which case it converts back to a map. At 100k series with every
 *   series in every slice the dense form is 600 KB per slice against 3 MB for a map (262,144
 *   slots); with 1% of them present, 600 KB against 24 KB (measured: see the end of this comment).
 * - The per-series count is there for the dense-series stage: a series that passes D readings in a
 *   slice (say 32) can be folded into pane aggregates elsewhere; countOf() reads it in O(1).
 * - Slices sit in a ring of slicesMax (a power of two) indexed by sliceNo & (slicesMax - 1); a
 *   sealed slice object (with its index arrays, cleared) goes on a free list and is reused by the
 *   next new slice, so a steady state allocates nothing.
 *
 * Hot path append(): validate (3 compares), floor(ts / sliceMs), one ring load and compare, 3
 * column stores, then heads[series] load/store, counts[series] load/store, the prev store.
 * Allocation only when a page is taken from an empty pool or an index grows.
 *
 * Sorting by series: the present ids (a pass over the dense index up to the slice's highest id,
 * or the map's ids sorted, k log k), then each series' chain walked and written back to front:
 * O(readings + highest id) or O(readings + k log k), stable, the index untouched.
 *
 * Checkpoints: each slice is append-only, so the readings since the previous checkpoint are a
 * suffix of its columns. snapshotSince(marks) copies, per open slice, the rows from the mark to
 * the end into chunks of at most chunkReadingsMax rows, and answers the new marks and the slices
 * whose stored chunks must be deleted (sealed since, or sealed and opened again: a mark carries
 * the slice's epoch, a number given at open, so a reopened slice starts again from row 0).
 * restore() rebuilds the slices from the chunks (prev chains and indexes are recomputed, not
 * stored), checking every chunk and reading; it throws on anything inconsistent.
 *
 * Chunk layout (one byte string, platform-endian columns, little-endian on every supported host):
 *   0  u32 CHUNK_MAGIC ('SHC1', the format version)
 *   4  u32 n (rows)
 *   8  f64 sliceNo
 *   16 u32 from (row index of the first row in its slice)
 *   20 u32 sliceMs (a restore under another slice length is refused)
 *   24 f64 value x n, then u32 series x n, then u32 offset x n      (24 + 20 n bytes)
 *
 * Measured (Node 20, 2 vCPU shared with other work, so +-30% on times; the seal figures are of
 * the counting sort this module used before seals walked the chains; bench/seal-bench.ts has
 * those, encoding included; two runs of
 * `npx tsc -p tsconfig.json && node --expose-gc dist/bench/head-slices-bench.js`): N series x 1
 * reading per 10 s, 7 open slices of 1 min (42 readings per series), in-order stream.
 * - 100k series: bytes() 885 B/series (21.08 B a reading: 20 in the columns, ~1 in the dense
 *   indexes and the last page of each slice); heapUsed + arrayBuffers after gc 892 B/series.
 *   append: first fill 32-39 ns/reading (pages and indexes allocated), steady state (seal the
 *   oldest, append the next slice, pages and indexes reused) 15-16 ns. seal 3.1-3.5 ms per slice
 *   of 600k readings (10-12 ms the first time: the SealedSlice grows). Shuffled stream (random
 *   series, random slice of the 7) 38 ns/reading.
 * - 1M series: bytes() 883 B/series, heapUsed + arrayBuffers 888; append first fill 33-35 ns,
 *   steady 23-25 ns; seal 68-71 ms per slice of 6M readings (a shard with 1M series stalls that
 *   long once a minute); shuffled 100-111 ns (cache misses).
 * - Every slice forced to a map index: 1,063 B/series and 48-53 ns/reading steady, seal 18-19 ms:
 *   the dense form is both smaller and ~3x faster when every series is in every slice. One
 *   slice's index: 100k of 100k series present, dense 587 KiB (auto) against map 3,072 KiB; 1k of
 *   100k present, map 24 KiB against dense 605 KiB; at 1M, 5.9 MiB against 24 MiB, and 384 KiB
 *   against 6.3 MiB with 1% present. 'auto' picked the smaller form in all four.
 * - Checkpoint: 5 s of readings (half the series, one reading each) 1 MB in 0.2-0.7 ms at 100k;
 *   10 MB in 8 chunks in 3.9-22.7 ms at 1M (fresh ArrayBuffers: page faults and external-memory
 *   GC make it vary); a full snapshot 85 MB in 27-45 ms at 100k, 850 MB in 1.0-1.8 s at 1M.
 *   restore 24-29 ns/reading (100k: 103-122 ms), 62-74 ns/reading at 1M (2.7-3.2 s).
 */

const EMPTY = -1;
const TS_MAX = 8.64e15;
/**
 * reused checkpoint chunk buffers at most (snapshotSince with reuse): 32 x 1.3 MB at 65,536 rows
 * a chunk, made as the largest cycle needs them (a 1M-series cycle that ran late holds 1M+ rows)
 */
const CHUNK_POOL_MAX = 32;
const SERIES_MAX = 0x7fffffff;
const COUNT_SATURATED = 0xffff;
/** bytes of one reading in a page: value f64, series u32, offset u32, prev i32 */
export const READING_BYTES = 20;
/** dense index: Int32 head + Uint16 count per series id */
const DENSE_ENTRY_BYTES = 6;
/** map index slot: series, head, count (Int32 each) */
const MAP_STRIDE = 3;
const MAP_SLOT_BYTES = MAP_STRIDE * 4;
const MAP_SLOTS_MIN = 16;
/** dense arrays grow in steps of this many ids */
const DENSE_ROUND = 256;
/** rows in a slice are indexed by int32 */
const SLICE_READINGS_MAX = 2 ** 31 - 1;

export const CHUNK_MAGIC = 0x31434853; // 'SHC1' little-endian
export const CHUNK_HEADER_BYTES = 24;

export type HeadIndexMode = 'auto' | 'dense' | 'map';

export interface HeadSlicesOptions {
  /** slice length in ms (e.g. 60_000): a whole multiple of paneMs, at most 2^32 - 1 */
  sliceMs: number;
  /** pane length in ms (e.g. 10_000) */
  paneMs: number;
  /** ring size: open slices span at most this many consecutive slice numbers (power of two, default 64) */
  slicesMax?: number;
  /** readings per page (power of two in [16, 2^20], default 4096) */
  pageReadings?: number;
  /** readings held at most, all slices (pages allocated x pageReadings; default 2^28) */
  readingsMax?: number;
  /** rows per checkpoint chunk at most (default 65536: 1.3 MB) */
  chunkReadingsMax?: number;
  /** per-slice index form: 'auto' (default: the smaller one); 'dense' or 'map' for benchmarks and tests */
  index?: HeadIndexMode;
}

/** A slice's checkpoint position: rows written, and the epoch of the slice they belong to. */
export interface SliceMark {
  epoch: number;
  n: number;
}

export interface HeadChunk {
  sliceNo: number;
  /** first row of this chunk in its slice */
  from: number;
  n: number;
  /** the chunk, self-describing (layout in the header) */
  bytes: Uint8Array;
}

export interface HeadSnapshot {
  /**
   * slices whose stored chunks must be deleted before the chunks are written (same transaction):
   * sealed since the marks were taken, or sealed and opened again (their chunks start at row 0)
   */
  drop: number[];
  /** rows appended since the marks, per open slice, ascending by slice then row */
  chunks: HeadChunk[];
  /** the marks to pass next time, once these chunks are stored */
  marks: Map<number, SliceMark>;
}

/**
 * A snapshot taken in two steps (HeadSlices.cut, then encodeCut per part, then endCut): the cut
 * only notes which rows to copy and holds their pages, so the shard pauses its ring for
 * O(slices), and the copying runs afterwards in steps while readings go on being appended.
 * Rows below a slice's count never change (appends only), and the pages of a slice dropped
 * meanwhile are not reused until endCut.
 */
export interface HeadCut {
  /** as HeadSnapshot.drop */
  drop: number[];
  /** the chunks to encode, ascending by slice then row */
  parts: CutPart[];
  /** the marks to pass next time, once the chunks are stored */
  marks: Map<number, SliceMark>;
}

export interface CutPart {
  readonly sliceNo: number;
  readonly from: number;
  readonly n: number;
  /** the pages holding rows [from, from + n), the first holding row `from` */
  readonly pages: readonly Page[];
}

/** One page: four columns in one ArrayBuffer. */
export class Page {
  /** cuts that will still read this page (HeadSlices.cut): not reused until 0 */
  holds = 0;
  readonly value: Float64Array;
  readonly series: Uint32Array;
  readonly offset: Uint32Array;
  readonly prev: Int32Array;
  constructor(readings: number) {
    const buf = new ArrayBuffer(readings * READING_BYTES);
    this.value = new Float64Array(buf, 0, readings);
    this.series = new Uint32Array(buf, readings * 8, readings);
    this.offset = new Uint32Array(buf, readings * 12, readings);
    this.prev = new Int32Array(buf, readings * 16, readings);
  }
}

const NO_PAGE = new Page(0);
const NO_I32 = new Int32Array(0);
const NO_U16 = new Uint16Array(0);

class Slice {
  /** slice number, -1 when free */
  no = -1;
  start = 0;
  epoch = 0;
  n = 0;
  /** distinct series in the slice */
  distinct = 0;
  maxSeries = -1;
  readonly pages: Page[] = [];
  /** the page being filled */
  tail: Page = NO_PAGE;
  dense: boolean;
  /** dense index (empty when the slice is a map) */
  heads: Int32Array = NO_I32;
  counts: Uint16Array = NO_U16;
  /** map index (empty when dense) */
  map: Int32Array = NO_I32;
  mapMask = 0;

  constructor(dense: boolean) {
    this.dense = dense;
    if (!dense) this.setMap(MAP_SLOTS_MIN);
  }

  setMap(slots: number): void {
    this.map = new Int32Array(slots * MAP_STRIDE).fill(EMPTY);
    this.mapMask = slots - 1;
  }

  indexBytes(): number {
    return this.heads.byteLength + this.counts.byteLength + this.map.byteLength;
  }
}

/** the ring's empty slot */
const FREE = new Slice(true);

/**
 * seal() and gather() output: readings sorted by series (stable), in parallel columns. The caller
 * keeps one and passes it to every seal; its arrays grow when a slice is bigger than any before.
 */
export class SealedSlice {
  sliceNo = -1;
  sliceStart = 0;
  /** rows */
  n = 0;
  /** distinct series */
  seriesCount = 0;
  series = new Uint32Array(0);
  offset = new Uint32Array(0);
  value = new Float64Array(0);

  /** makes room for n rows (contents are not kept) */
  reserve(n: number): void {
    if (this.series.length >= n) return;
    const cap = Math.max(n, Math.ceil(this.series.length * 1.125));
    this.series = new Uint32Array(cap);
    this.offset = new Uint32Array(cap);
    this.value = new Float64Array(cap);
  }
}

export class HeadSlices {
  readonly sliceMs: number;
  readonly paneMs: number;
  readonly slicesMax: number;
  readonly pageReadings: number;
  readonly readingsMax: number;
  readonly chunkReadingsMax: number;
  /** snapshotSince(…, true)'s chunk buffers, reused from one snapshot to the next */
  private readonly chunkPool: ArrayBuffer[] = [];
  private readonly index: HeadIndexMode;
  private readonly pageShift: number;
  private readonly pageMask: number;
  private readonly ringMask: number;
  private readonly ring: Slice[];
  /** open slices whose ring slot was taken (see the header) */
  private readonly overflow = new Map<number, Slice>();
  private readonly freeSlices: Slice[] = [];
  private readonly freePages: Page[] = [];
  /** pages of slices dropped while a cut still had to read them: back to freePages at endCut */
  private heldPages: Page[] = [];
  private cutsHeld = 0;
  private pagesAllocated = 0;
  private pagesInUse = 0;
  private openCount = 0;
  private epochs = 0;
  /** highest series id seen + 1 (sizes dense indexes) */
  private seriesHigh = 0;

  constructor(options: HeadSlicesOptions) {
    const { sliceMs, paneMs } = options;
    if (!(Number.isInteger(paneMs) && paneMs > 0)) throw new RangeError(`HeadSlices: paneMs must be a positive integer, got ${String(paneMs)}`);
    if (!(Number.isInteger(sliceMs) && sliceMs > 0 && sliceMs <= 0xffffffff && sliceMs % paneMs === 0)) {
      throw new RangeError(`HeadSlices: sliceMs must be a whole multiple of paneMs (${paneMs}) in [1, 2^32), got ${String(sliceMs)}`);
    }
    const slicesMax = options.slicesMax ?? 64;
    if (!(isPowerOfTwo(slicesMax) && slicesMax >= 2 && slicesMax <= 4096)) throw new RangeError(`HeadSlices: slicesMax must be a power of two in [2, 4096], got ${String(slicesMax)}`);
    const pageReadings = options.pageReadings ?? 4096;
    if (!(isPowerOfTwo(pageReadings) && pageReadings >= 16 && pageReadings <= 1 << 20)) {
      throw new RangeError(`HeadSlices: pageReadings must be a power of two in [16, 2^20], got ${String(pageReadings)}`);
    }
    const readingsMax = options.readingsMax ?? 2 ** 28;
    if (!(Number.isInteger(readingsMax) && readingsMax > 0 && readingsMax <= 2 ** 40)) throw new RangeError(`HeadSlices: readingsMax must be an integer in [1, 2^40], got ${String(readingsMax)}`);
    const chunkReadingsMax = options.chunkReadingsMax ?? 65536;
    if (!(Number.isInteger(chunkReadingsMax) && chunkReadingsMax > 0 && chunkReadingsMax <= 2 ** 26)) {
      throw new RangeError(`HeadSlices: chunkReadingsMax must be an integer in [1, 2^26], got ${String(chunkReadingsMax)}`);
    }
    const index = options.index ?? 'auto';
    if (index !== 'auto' && index !== 'dense' && index !== 'map') throw new RangeError(`HeadSlices: index must be auto, dense or map, got ${String(index)}`);
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('HeadSlices: checkpoint chunks assume a little-endian host');
    this.sliceMs = sliceMs;
    this.paneMs = paneMs;
    this.slicesMax = slicesMax;
    this.pageReadings = pageReadings;
    this.readingsMax = readingsMax;
    this.chunkReadingsMax = chunkReadingsMax;
    this.index = index;
    this.pageShift = Math.log2(pageReadings);
    this.pageMask = pageReadings - 1;
    this.ringMask = slicesMax - 1;
    this.ring = new Array<Slice>(slicesMax).fill(FREE);
  }

  // ---------------------------------------------------------------- write path

  /** Appends one reading (contract in the header). */
  append(series: number, ts: number, value: number): void {
    if (!(ts >= 0 && ts <= TS_MAX)) throw new RangeError(`HeadSlices.append: timestamp out of range: ${String(ts)}`);
    if (!isSeriesId(series)) throw new RangeError(`HeadSlices.append: series id out of range: ${String(series)}`);
    if (value - value !== 0) throw new RangeError(`HeadSlices.append: value not finite: ${String(value)}`);
    // tsMs and sliceMs are integers below 2^53 with tsMs + sliceMs < 2^53, so the quotient is
    // never rounded up across an integer: floor() is the exact slice number.
    const tsMs = Math.floor(ts);
    const sliceNo = Math.floor(tsMs / this.sliceMs);
    let sl = this.ring[sliceNo & this.ringMask]!;
    if (sl.no !== sliceNo) sl = this.find(sliceNo) ?? this.open(sliceNo);
    this.push(sl, series, tsMs - sl.start, value);
  }

  private push(sl: Slice, series: number, offset: number, value: number): void {
    const i = sl.n;
    const row = i & this.pageMask;
    if (row === 0) this.addPage(sl);
    const page = sl.tail;
    page.value[row] = value;
    page.series[row] = series;
    page.offset[row] = offset;
    const heads = sl.heads;
    let prev: number;
    if (series < heads.length) {
      prev = heads[series]!;
      heads[series] = i;
      const counts = sl.counts;
      const c = counts[series]!;
      if (c !== COUNT_SATURATED) counts[series] = c + 1;
      if (prev === EMPTY) this.newSeries(sl, series);
    } else {
      prev = this.linkSlow(sl, series, i);
    }
    page.prev[row] = prev;
    sl.n = i + 1;
  }

  private newSeries(sl: Slice, series: number): void {
    sl.distinct++;
    if (series > sl.maxSeries) sl.maxSeries = series;
    if (series >= this.seriesHigh) this.seriesHigh = series + 1;
  }

  /** links reading i of series into an index that is a map, or dense but too short */
  private linkSlow(sl: Slice, series: number, i: number): number {
    if (sl.dense) {
      const len = denseLength(series + 1, sl.heads.length);
      if (this.index === 'auto' && len * DENSE_ENTRY_BYTES > 2 * mapSlotsFor(sl.distinct + 1) * MAP_SLOT_BYTES) {
        this.toMap(sl);
      } else {
        this.growDense(sl, len);
        return this.linkDense(sl, series, i);
      }
    }
    return this.linkMap(sl, series, i);
  }

  private linkDense(sl: Slice, series: number, i: number): number {
    const prev = sl.heads[series]!;
    sl.heads[series] = i;
    const c = sl.counts[series]!;
    if (c !== COUNT_SATURATED) sl.counts[series] = c + 1;
    if (prev === EMPTY) this.newSeries(sl, series);
    return prev;
  }

  private linkMap(sl: Slice, series: number, i: number): number {
    const m = sl.map;
    const mask = sl.mapMask;
    let j = hashSeries(series) & mask;
    for (;;) {
      const b = j * MAP_STRIDE;
      const k = m[b]!;
      if (k === series) {
        const prev = m[b + 1]!;
        m[b + 1] = i;
        m[b + 2]!++;
        return prev;
      }
      if (k === EMPTY) break;
      j = (j + 1) & mask;
    }
    if ((sl.distinct + 1) * 2 > mask + 1) {
      const slots = (mask + 1) * 2;
      if (this.index === 'auto') {
        const len = denseLength(Math.max(this.seriesHigh, series + 1), 0);
        if (len * DENSE_ENTRY_BYTES <= slots * MAP_SLOT_BYTES) {
          this.toDense(sl, len);
          return this.linkDense(sl, series, i);
        }
      }
      this.rehash(sl, slots);
      return this.linkMap(sl, series, i);
    }
    const b = j * MAP_STRIDE;
    m[b] = series;
    m[b + 1] = i;
    m[b + 2] = 1;
    this.newSeries(sl, series);
    return EMPTY;
  }

  private growDense(sl: Slice, len: number): void {
    const heads = new Int32Array(len).fill(EMPTY);
    heads.set(sl.heads);
    const counts = new Uint16Array(len);
    counts.set(sl.counts);
    sl.heads = heads;
    sl.counts = counts;
  }

  private toDense(sl: Slice, len: number): void {
    const heads = new Int32Array(len).fill(EMPTY);
    const counts = new Uint16Array(len);
    const m = sl.map;
    for (let b = 0; b < m.length; b += MAP_STRIDE) {
      const s = m[b]!;
      if (s === EMPTY) continue;
      heads[s] = m[b + 1]!;
      counts[s] = Math.min(m[b + 2]!, COUNT_SATURATED);
    }
    sl.heads = heads;
    sl.counts = counts;
    sl.map = NO_I32;
    sl.mapMask = 0;
    sl.dense = true;
  }

  private toMap(sl: Slice): void {
    const heads = sl.heads;
    const counts = sl.counts;
    sl.setMap(mapSlotsFor(sl.distinct + 1));
    for (let s = 0; s <= sl.maxSeries; s++) {
      const c = counts[s]!;
      if (c === 0) continue;
      this.mapInsert(sl, s, heads[s]!, c === COUNT_SATURATED ? this.chainLength(sl, heads[s]!) : c);
    }
    sl.heads = NO_I32;
    sl.counts = NO_U16;
    sl.dense = false;
  }

  private rehash(sl: Slice, slots: number): void {
    const old = sl.map;
    sl.setMap(slots);
    for (let b = 0; b < old.length; b += MAP_STRIDE) {
      if (old[b] !== EMPTY) this.mapInsert(sl, old[b]!, old[b + 1]!, old[b + 2]!);
    }
  }

  private mapInsert(sl: Slice, series: number, head: number, count: number): void {
    const m = sl.map;
    const mask = sl.mapMask;
    let j = hashSeries(series) & mask;
    while (m[j * MAP_STRIDE] !== EMPTY) j = (j + 1) & mask;
    const b = j * MAP_STRIDE;
    m[b] = series;
    m[b + 1] = head;
    m[b + 2] = count;
  }

  /** map slot base of series in a map slice, or -1 */
  private mapFind(sl: Slice, series: number): number {
    const m = sl.map;
    const mask = sl.mapMask;
    let j = hashSeries(series) & mask;
    for (;;) {
      const b = j * MAP_STRIDE;
      const k = m[b]!;
      if (k === series) return b;
      if (k === EMPTY) return -1;
      j = (j + 1) & mask;
    }
  }

  private addPage(sl: Slice): void {
    if ((sl.pages.length + 1) * this.pageReadings > SLICE_READINGS_MAX + 1) {
      throw new RangeError(`HeadSlices: slice ${sl.no} reached ${SLICE_READINGS_MAX} readings`);
    }
    if ((this.pagesInUse + 1) * this.pageReadings > this.readingsMax) {
      throw new RangeError(`HeadSlices: readingsMax (${this.readingsMax}) reached: seal slices or raise the limit`);
    }
    let page = this.freePages.pop();
    if (page === undefined) {
      page = new Page(this.pageReadings);
      this.pagesAllocated++;
    }
    this.pagesInUse++;
    sl.pages.push(page);
    sl.tail = page;
  }

  private open(sliceNo: number): Slice {
    const slot = sliceNo & this.ringMask;
    const sl = this.freeSlices.pop() ?? new Slice(this.index === 'dense');
    sl.no = sliceNo;
    sl.start = sliceNo * this.sliceMs;
    sl.epoch = ++this.epochs;
    if (this.ring[slot] === FREE) this.ring[slot] = sl;
    else this.overflow.set(sliceNo, sl);
    this.openCount++;
    return sl;
  }

  /** the open slice sliceNo, or null */
  private find(sliceNo: number): Slice | null {
    if (!(sliceNo >= 0)) return null;
    const sl = this.ring[sliceNo & this.ringMask]!;
    if (sl.no === sliceNo) return sl;
    return this.overflow.size === 0 ? null : this.overflow.get(sliceNo) ?? null;
  }

  // ---------------------------------------------------------------- read path

  /** open slice numbers, ascending */
  openSlices(): number[] {
    const out: number[] = [];
    for (const sl of this.ring) if (sl !== FREE) out.push(sl.no);
    for (const no of this.overflow.keys()) out.push(no);
    return out.sort((a, b) => a - b);
  }

  get openSliceCount(): number {
    return this.openCount;
  }

  /** readings held in all open slices */
  get readingsHeld(): number {
    let n = 0;
    for (const sl of this.ring) n += sl.n;
    for (const sl of this.overflow.values()) n += sl.n;
    return n;
  }

  isOpen(sliceNo: number): boolean {
    return this.find(sliceNo) !== null;
  }

  /** readings in the slice (0 when not open) */
  readingCount(sliceNo: number): number {
    return this.find(sliceNo)?.n ?? 0;
  }

  /** distinct series in the slice (0 when not open) */
  seriesCount(sliceNo: number): number {
    return this.find(sliceNo)?.distinct ?? 0;
  }

  /**
   * The series' reading count in the slice: O(1) (a dense load or a map probe) while under
   * 65535, a chain walk beyond. What the dense-series stage reads to decide to fold.
   */
  countOf(sliceNo: number, series: number): number {
    const sl = this.find(sliceNo);
    if (sl === null || !isSeriesId(series)) return 0;
    return this.countIn(sl, series);
  }

  /** the index form of an open slice ('dense' or 'map'), null when not open (measurements, tests) */
  indexForm(sliceNo: number): 'dense' | 'map' | null {
    const sl = this.find(sliceNo);
    return sl === null ? null : sl.dense ? 'dense' : 'map';
  }

  /** bytes of an open slice's per-series index (measurements, tests) */
  indexBytes(sliceNo: number): number {
    return this.find(sliceNo)?.indexBytes() ?? 0;
  }

  /**
   * Writes the series' readings in the slice, in arrival order, into outOffsets (ms from the
   * slice start) and outValues; answers how many. Walks the series' chain: O(its readings), no
   * allocation. The outputs must hold countOf(sliceNo, series) entries (throws otherwise).
   */
  seriesReadings(sliceNo: number, series: number, outOffsets: Float64Array | Uint32Array, outValues: Float64Array): number {
    const sl = this.find(sliceNo);
    if (sl === null || !isSeriesId(series)) return 0;
    let head: number;
    let count: number;
    if (sl.dense) {
      if (series >= sl.heads.length) return 0;
      head = sl.heads[series]!;
      count = sl.counts[series]!;
      if (count === COUNT_SATURATED) count = this.chainLength(sl, head);
    } else {
      const b = this.mapFind(sl, series);
      if (b < 0) return 0;
      head = sl.map[b + 1]!;
      count = sl.map[b + 2]!;
    }
    if (outOffsets.length < count || outValues.length < count) {
      throw new RangeError(`HeadSlices.seriesReadings: outputs hold ${Math.min(outOffsets.length, outValues.length)} entries, the series has ${count}`);
    }
    const pages = sl.pages;
    const shift = this.pageShift;
    const mask = this.pageMask;
    let w = count;
    for (let i = head; i !== EMPTY;) {
      const page = pages[i >>> shift]!;
      const row = i & mask;
      w--;
      outOffsets[w] = page.offset[row]!;
      outValues[w] = page.value[row]!;
      i = page.prev[row]!;
    }
    if (w !== 0) throw new Error(`HeadSlices: BUG: series ${series} in slice ${sliceNo}: chain holds ${count - w} readings, the index counts ${count}`);
    return count;
  }

  /**
   * The ids of the series present in an open slice, ascending (a new array: one per seal, not
   * per reading); null when the slice is not open.
   */
  presentSeries(sliceNo: number): Int32Array | null {
    const sl = this.find(sliceNo);
    if (sl === null) return null;
    const ids = new Int32Array(sl.distinct);
    let found = 0;
    if (sl.dense) {
      const counts = sl.counts;
      for (let s = 0; s <= sl.maxSeries; s++) if (counts[s] !== 0) ids[found++] = s;
    } else {
      const m = sl.map;
      for (let b = 0; b < m.length; b += MAP_STRIDE) if (m[b] !== EMPTY) ids[found++] = m[b]!;
      ids.sort();
    }
    if (found !== sl.distinct) throw new Error(`HeadSlices: BUG: slice ${sl.no}: index holds ${found} series, the slice counts ${sl.distinct}`);
    return ids;
  }

  /**
   * The readings of series ids[a..b) (ascending, present in the slice) into out, sorted by series
   * and in arrival order within one, walked from their chains one chunk at a time, so sealing
   * needs no copy of the whole slice. out.n = the rows.
   */
  gather(sliceNo: number, ids: Int32Array, a: number, b: number, out: SealedSlice): void {
    const sl = this.find(sliceNo);
    out.sliceNo = sliceNo;
    out.sliceStart = sliceNo * this.sliceMs;
    out.n = 0;
    out.seriesCount = 0;
    if (sl === null) throw new Error(`HeadSlices.gather: slice ${sliceNo} is not open`);
    let total = 0;
    for (let x = a; x < b; x++) total += this.countIn(sl, ids[x]!);
    out.reserve(total);
    const os = out.series;
    const oo = out.offset;
    const ov = out.value;
    const pages = sl.pages;
    const shift = this.pageShift;
    const mask = this.pageMask;
    let pos = 0;
    for (let x = a; x < b; x++) {
      const s = ids[x]!;
      const count = this.countIn(sl, s);
      let w = pos + count;
      for (let i = this.chainHead(sl, s); i !== EMPTY;) {
        const page = pages[i >>> shift]!;
        const row = i & mask;
        w--;
        os[w] = s;
        oo[w] = page.offset[row]!;
        ov[w] = page.value[row]!;
        i = page.prev[row]!;
      }
      if (w !== pos) throw new Error(`HeadSlices: BUG: series ${s} in slice ${sl.no}: chain and count disagree`);
      pos += count;
    }
    out.n = pos;
    out.seriesCount = b - a;
  }

  /** a series' readings in a slice (0 when absent) */
  private countIn(sl: Slice, series: number): number {
    if (sl.dense) {
      if (series >= sl.heads.length) return 0;
      const c = sl.counts[series]!;
      return c === COUNT_SATURATED ? this.chainLength(sl, sl.heads[series]!) : c;
    }
    const b = this.mapFind(sl, series);
    return b < 0 ? 0 : sl.map[b + 2]!;
  }

  /** the index of a series' newest reading in a slice, EMPTY when absent */
  private chainHead(sl: Slice, series: number): number {
    if (sl.dense) return series < sl.heads.length && sl.counts[series] !== 0 ? sl.heads[series]! : EMPTY;
    const b = this.mapFind(sl, series);
    return b < 0 ? EMPTY : sl.map[b + 1]!;
  }

  /**
   * Copies the slice's rows [from, from + k) in arrival order, k = what fits in the outputs and
   * the slice; answers k. An allocation-free scan of a slice's columns in batches (fleet queries).
   */
  readRows(sliceNo: number, from: number, outSeries: Uint32Array, outOffsets: Uint32Array, outValues: Float64Array): number {
    const sl = this.find(sliceNo);
    if (sl === null || !(Number.isInteger(from) && from >= 0)) return 0;
    const k = Math.max(0, Math.min(sl.n - from, outSeries.length, outOffsets.length, outValues.length));
    const mask = this.pageMask;
    let i = from;
    let w = 0;
    const end = from + k;
    while (i < end) {
      const page = sl.pages[i >>> this.pageShift]!;
      const row0 = i & mask;
      const rows = Math.min(end - i, this.pageReadings - row0);
      const ps = page.series;
      const po = page.offset;
      const pv = page.value;
      for (let r = row0; r < row0 + rows; r++) {
        outSeries[w] = ps[r]!;
        outOffsets[w] = po[r]!;
        outValues[w] = pv[r]!;
        w++;
      }
      i += rows;
    }
    return k;
  }

  /** readings in the chain that starts at row head */
  private chainLength(sl: Slice, head: number): number {
    let n = 0;
    for (let i = head; i !== EMPTY; n++) {
      const page = sl.pages[i >>> this.pageShift]!;
      i = page.prev[i & this.pageMask]!;
    }
    return n;
  }

  /**
   * Bytes held by all columns and indexes, capacity included: every page allocated (in use or
   * pooled), every slice's index (open or pooled). For /healthz and the memory
   * target.
   */
  bytes(): number {
    let b = this.pagesAllocated * this.pageReadings * READING_BYTES;
    for (const sl of this.ring) if (sl !== FREE) b += sl.indexBytes();
    for (const sl of this.overflow.values()) b += sl.indexBytes();
    for (const sl of this.freeSlices) b += sl.indexBytes();
    return b + this.chunkPoolBytes;
  }

  /** the checkpoint chunk buffers kept for the next snapshotSince(…, true) */
  get chunkPoolBytes(): number {
    let b = 0;
    for (const buf of this.chunkPool) b += buf.byteLength;
    return b;
  }

  /** gives the pooled pages and slices back to the allocator (e.g. after a burst) */
  releasePooled(): void {
    this.pagesAllocated -= this.freePages.length;
    this.freePages.length = 0;
    this.freeSlices.length = 0;
  }

  // ---------------------------------------------------------------- seal

  /**
   * Takes the slice out of the head: its readings sorted by series id ascending, stable within a
   * series (presentSeries + gather, as the sealer does chunk by chunk), into out, then drop().
   * Answers false (out.n = 0) when the slice is not open.
   */
  seal(sliceNo: number, out: SealedSlice): boolean {
    const ids = this.presentSeries(sliceNo);
    if (ids === null) {
      out.sliceNo = sliceNo;
      out.sliceStart = sliceNo * this.sliceMs;
      out.n = 0;
      out.seriesCount = 0;
      return false;
    }
    this.gather(sliceNo, ids, 0, ids.length, out);
    this.drop(sliceNo);
    return true;
  }

  /** Removes an open slice: its index is cleared and its pages go back to the pools. */
  drop(sliceNo: number): boolean {
    const sl = this.find(sliceNo);
    if (sl === null) return false;
    if (sl.dense) {
      sl.heads.fill(EMPTY, 0, sl.maxSeries + 1);
      sl.counts.fill(0, 0, sl.maxSeries + 1);
    } else {
      sl.map.fill(EMPTY);
    }
    this.release(sl);
    return true;
  }

  /** returns a dropped slice's pages and the slice (index cleared by drop) to the pools */
  private release(sl: Slice): void {
    for (const page of sl.pages) (page.holds > 0 ? this.heldPages : this.freePages).push(page);
    this.pagesInUse -= sl.pages.length;
    sl.pages.length = 0;
    sl.tail = NO_PAGE;
    if (this.overflow.get(sl.no) === sl) this.overflow.delete(sl.no);
    else this.ring[sl.no & this.ringMask] = FREE;
    this.openCount--;
    sl.no = -1;
    sl.n = 0;
    sl.distinct = 0;
    sl.maxSeries = -1;
    this.freeSlices.push(sl);
  }

  // ---------------------------------------------------------------- checkpoints

  /** the marks of everything held now (e.g. right after restore, whose chunks are all stored) */
  marks(): Map<number, SliceMark> {
    const out = new Map<number, SliceMark>();
    for (const no of this.openSlices()) {
      const sl = this.find(no)!;
      out.set(no, { epoch: sl.epoch, n: sl.n });
    }
    return out;
  }

  /**
   * The rows appended since `marks` (from a previous snapshotSince() or marks(); an empty map for
   * a first, full snapshot), as chunks, with the new marks and the slices to drop (see
   * HeadSnapshot). Copies only: the head is unchanged, so a failed write is retried by passing the
   * same marks again.
   *
   * reuse: the chunks' bytes are views of buffers this head keeps (up to CHUNK_POOL_MAX of them)
   * and writes again at the next snapshotSince(…, true): valid until then, so the caller writes
   * them (the shard worker, storage/checkpoint-store.ts) before it takes the next one. Fresh buffers
   * cost their first touch each time: on this VM ~6 ms per MB, most of a 1M-series checkpoint's
   * pause (10-17 MB a cycle).
   */
  snapshotSince(marks: ReadonlyMap<number, SliceMark>, reuse = false): HeadSnapshot {
    const cut = this.cut(marks);
    const chunks: HeadChunk[] = [];
    try {
      for (let k = 0; k < cut.parts.length; k++) chunks.push(this.encodeCut(cut.parts[k]!, k, reuse));
    } finally {
      this.endCut(cut, reuse ? cut.parts.length : -1);
    }
    return { drop: cut.drop, chunks, marks: cut.marks };
  }

  /**
   * What snapshotSince(marks) would copy, without copying (see HeadCut): O(open slices + pages
   * cut). Every cut must be ended with endCut(), after its parts are encoded or given up. Only
   * the pages it reads are held: a slice sealed meanwhile gives its other pages back at once.
   */
  cut(marks: ReadonlyMap<number, SliceMark>): HeadCut {
    const drop: number[] = [];
    const parts: CutPart[] = [];
    const next = new Map<number, SliceMark>();
    for (const no of marks.keys()) if (this.find(no) === null) drop.push(no);
    for (const no of this.openSlices()) {
      const sl = this.find(no)!;
      const mark = marks.get(no);
      let from = 0;
      if (mark !== undefined) {
        if (mark.epoch === sl.epoch) {
          if (!(Number.isInteger(mark.n) && mark.n >= 0 && mark.n <= sl.n)) throw new Error(`HeadSlices.cut: mark of slice ${no} at row ${String(mark.n)}, the slice holds ${sl.n}`);
          from = mark.n;
        } else {
          drop.push(no);
        }
      }
      for (let at = from; at < sl.n; at += this.chunkReadingsMax) {
        const n = Math.min(this.chunkReadingsMax, sl.n - at);
        const pages = sl.pages.slice(at >>> this.pageShift, ((at + n - 1) >>> this.pageShift) + 1);
        for (const page of pages) page.holds++;
        parts.push({ sliceNo: no, from: at, n, pages });
      }
      next.set(no, { epoch: sl.epoch, n: sl.n });
    }
    drop.sort((a, b) => a - b);
    this.cutsHeld++;
    return { drop, parts, marks: next };
  }

  /**
   * Encodes a part of a held cut into the k-th pooled buffer (reuse: valid until the next cut
   * encodes into it again) or a fresh one.
   */
  encodeCut(part: CutPart, k: number, reuse: boolean): HeadChunk {
    if (this.cutsHeld === 0) throw new Error('BUG: HeadSlices.encodeCut without a held cut');
    const buf = reuse && k < CHUNK_POOL_MAX ? this.pooledChunk(k) : null;
    return this.encodeChunk(part, buf);
  }

  /**
   * Ends a cut: pages of slices dropped meanwhile go back to the pool once no cut reads them.
   * pooledUsed: the chunk buffers the cut encoded into (-1: none); a first, full snapshot needs
   * several times what later ones do, so the pool keeps what this one used and half again, not
   * the peak (~25 MB of idle buffers at 100k series after the first).
   */
  endCut(cut: HeadCut, pooledUsed = -1): void {
    if (this.cutsHeld === 0) throw new Error('BUG: HeadSlices.endCut without a held cut');
    this.cutsHeld--;
    for (const part of cut.parts) for (const page of part.pages) page.holds--;
    if (this.heldPages.length > 0) {
      const still: Page[] = [];
      for (const page of this.heldPages) (page.holds > 0 ? still : this.freePages).push(page);
      this.heldPages = still;
    }
    if (pooledUsed >= 0) this.chunkPool.length = Math.min(this.chunkPool.length, Math.ceil(Math.min(pooledUsed, CHUNK_POOL_MAX) * 1.5));
  }

  /** the k-th buffer of the chunk pool (made on first use), room for chunkReadingsMax rows */
  private pooledChunk(k: number): ArrayBuffer {
    while (this.chunkPool.length <= k) this.chunkPool.push(new ArrayBuffer(CHUNK_HEADER_BYTES + this.chunkReadingsMax * READING_BYTES));
    return this.chunkPool[k]!;
  }

  private encodeChunk(part: CutPart, pooled: ArrayBuffer | null): HeadChunk {
    const { sliceNo, from, n, pages } = part;
    const size = CHUNK_HEADER_BYTES + n * READING_BYTES;
    const buf = pooled ?? new ArrayBuffer(size);
    const dv = new DataView(buf);
    dv.setUint32(0, CHUNK_MAGIC, true);
    dv.setUint32(4, n, true);
    dv.setFloat64(8, sliceNo, true);
    dv.setUint32(16, from, true);
    dv.setUint32(20, this.sliceMs, true);
    const values = new Float64Array(buf, CHUNK_HEADER_BYTES, n);
    const series = new Uint32Array(buf, CHUNK_HEADER_BYTES + n * 8, n);
    const offsets = new Uint32Array(buf, CHUNK_HEADER_BYTES + n * 12, n);
    // page by page with set() (memcpy): 10 MB in ~4 ms where a per-element loop took ~24 ms
    const firstPage = from >>> this.pageShift;
    let w = 0;
    for (let i = from; i < from + n;) {
      const page = pages[(i >>> this.pageShift) - firstPage]!;
      const row0 = i & this.pageMask;
      const rows = Math.min(from + n - i, this.pageReadings - row0);
      values.set(page.value.subarray(row0, row0 + rows), w);
      series.set(page.series.subarray(row0, row0 + rows), w);
      offsets.set(page.offset.subarray(row0, row0 + rows), w);
      w += rows;
      i += rows;
    }
    return { sliceNo, from, n, bytes: new Uint8Array(buf, 0, size) };
  }

  /**
   * Rebuilds a head from the stored chunks of every open slice (any order; each slice's chunks
   * must cover rows 0..n without gap or overlap). prev chains and indexes are recomputed. Checks
   * every chunk and reading and throws on anything inconsistent. Options may differ from the
   * writer's except sliceMs. Take marks() afterwards for the next snapshotSince().
   */
  static restore(options: HeadSlicesOptions, chunks: Iterable<Uint8Array>): HeadSlices {
    const head = new HeadSlices(options);
    head.load(chunks);
    return head;
  }

  /** Fills an empty head from checkpoint chunks (what restore() does, in place). */
  load(chunks: Iterable<Uint8Array>): void {
    if (this.openCount !== 0) throw new Error('BUG: HeadSlices.load into a head that holds slices');
    const head = this;
    const parsed: ParsedChunk[] = [];
    for (const bytes of chunks) parsed.push(parseChunk(bytes, head.sliceMs));
    parsed.sort((a, b) => a.sliceNo - b.sliceNo || a.from - b.from);
    for (const c of parsed) {
      let sl = head.find(c.sliceNo);
      if (sl === null) {
        if (c.from !== 0) throw new Error(`HeadSlices.restore: slice ${c.sliceNo} starts at row ${c.from}, not 0`);
        sl = head.open(c.sliceNo);
      } else if (c.from !== sl.n) {
        throw new Error(`HeadSlices.restore: slice ${c.sliceNo}: chunk at row ${c.from} where row ${sl.n} was expected (gap or overlap)`);
      }
      const { series, offsets, values } = c;
      for (let r = 0; r < c.n; r++) {
        const s = series[r]!;
        const o = offsets[r]!;
        const v = values[r]!;
        if (s > SERIES_MAX || o >= head.sliceMs || v - v !== 0) {
          throw new Error(`HeadSlices.restore: slice ${c.sliceNo} row ${c.from + r}: series ${s}, offset ${o}, value ${String(v)} out of range`);
        }
        head.push(sl, s, o, v);
      }
    }
  }
}

interface ParsedChunk {
  sliceNo: number;
  from: number;
  n: number;
  values: Float64Array;
  series: Uint32Array;
  offsets: Uint32Array;
}

function parseChunk(input: Uint8Array, sliceMs: number): ParsedChunk {
  if (input.byteLength < CHUNK_HEADER_BYTES) throw new Error(`HeadSlices.restore: chunk of ${input.byteLength} bytes, shorter than its header`);
  // typed-array views need aligned offsets: copy a chunk that sits unaligned in its buffer
  const bytes = input.byteOffset % 8 === 0 ? input : input.slice();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== CHUNK_MAGIC) throw new Error(`HeadSlices.restore: chunk magic 0x${magic.toString(16)}, expected 0x${CHUNK_MAGIC.toString(16)}`);
  const n = dv.getUint32(4, true);
  const sliceNo = dv.getFloat64(8, true);
  const from = dv.getUint32(16, true);
  const ms = dv.getUint32(20, true);
  if (ms !== sliceMs) throw new Error(`HeadSlices.restore: chunk written with sliceMs ${ms}, this head has ${sliceMs}`);
  if (!(Number.isSafeInteger(sliceNo) && sliceNo >= 0 && sliceNo * sliceMs <= TS_MAX)) throw new Error(`HeadSlices.restore: chunk slice number ${String(sliceNo)} out of range`);
  if (n === 0 || bytes.byteLength !== CHUNK_HEADER_BYTES + n * READING_BYTES) {
    throw new Error(`HeadSlices.restore: chunk of slice ${sliceNo} at row ${from}: ${bytes.byteLength} bytes for ${n} rows`);
  }
  if (from + n > SLICE_READINGS_MAX) throw new Error(`HeadSlices.restore: chunk of slice ${sliceNo} ends past row ${SLICE_READINGS_MAX}`);
  const base = bytes.byteOffset + CHUNK_HEADER_BYTES;
  return {
    sliceNo, from, n,
    values: new Float64Array(bytes.buffer, base, n),
    series: new Uint32Array(bytes.buffer, base + n * 8, n),
    offsets: new Uint32Array(bytes.buffer, base + n * 12, n),
  };
}

/** an integer in [0, 2^31) */
function isSeriesId(s: number): boolean {
  return (s | 0) === s && s >= 0;
}

function isPowerOfTwo(x: number): boolean {
  return Number.isInteger(x) && x > 0 && (x & (x - 1)) === 0;
}

/** dense index length for ids below need: at least need and cur x 1.125, in steps of DENSE_ROUND */
function denseLength(need: number, cur: number): number {
  const len = Math.max(need, cur + (cur >>> 3));
  return Math.min(Math.ceil(len / DENSE_ROUND) * DENSE_ROUND, SERIES_MAX + 1);
}

/** map slots for k present series at load <= 1/2 */
function mapSlotsFor(k: number): number {
  let slots = MAP_SLOTS_MIN;
  while (slots < 2 * k) slots *= 2;
  return slots;
}

/** murmur3 finaliser: sequential ids spread over the table (linear probing punishes clusters) */
function hashSeries(s: number): number {
  let h = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}
