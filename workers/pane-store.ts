/**
 * PaneStore: one shard's open window panes, per (device, metric) series.
 *
 * Runs in exactly one shard worker thread, which owns it (actor rule: nothing else reads or
 * writes it). The ring consumer calls defineDevice/defineMetric before an id's first use, then
 * seriesOf() and add() per (event, metric); queries (shard-queries.ts) read it between batches.
 *
 * Layout: struct-of-arrays in typed arrays that grow by doubling, indexed by integer ids.
 * - series index s: device id, metric id, a cache of its latest pane (number + slot), and the head
 *   of a doubly linked list of its panes, newest first (paneOlder / paneNewer), so a query walks
 *   one series' panes from the newest back and stops at the range start without scanning the store.
 * - pane slot p: series, pane number, count, sum, min, max, last, lastTs, histogram (stride
 *   divisions + 2: the divisions, then under, then over), and its digest block.
 * - digest blocks: one slab of means + one of weights (Float64Array), a block per pane of 2..1024
 *   entries (powers of two; freed blocks are reused per size). A block holds the pane's
 *   compressed centroids (sorted, protocol/digest.ts) followed by raw values appended since; a
 *   raw value's weight slot already holds 1 (invariant for every entry past a block's length).
 *   A full block is compressed (sort the raw values, one merging pass) or doubled: the series'
 *   latest pane doubles up to 1024 and then folds ~900 values per pass; an older pane (late
 *   events) compresses first. When a series moves on to a newer pane the old one is compressed
 *   and its block shrunk to fit (settlePane); reads compress first (flushPane).
 * - (series, paneNo) -> slot in an IntPairMap; (device, metric) -> series in another.
 * - freed slots go on a free-slot stack and are reused first (freePane(): workers/event-time.ts
 *   frees the panes it closed into rollups).
 *
 * Hot path add(series, ts, value): pane = floor(ts / paneMs); an event in the series' latest pane
 * skips the hash lookup; otherwise the slot is looked up or created. No allocation per call: the
 * value is stored into the pane's block; allocation happens only when a slab or an array doubles.
 *
 * Measured on this machine (Node 20, 2 vCPU shared with other work, so +-30%; scratch scripts, not
 * committed; ns per add() end to end, every pane's digest flushed at the end and counted; fresh
 * store, so array and slab growth are included). digest off / `tdigest` (before) / this (after):
 * - 1 series, 1000 values per pane: 29-33 / 600-950 / 69-71
 * - 1000 series interleaved, 3 panes x ~670 values: 28-36 / 1530-2040 / 77-112
 * - 100k series x 10 values per pane, 3 panes each: 71-100 / 710-1100 / 172-213
 *   (steady state, panes older than 3 freed and their blocks reused: 64 / 1170 / 107)
 * - 1000 devices x 1 h of 10 s panes x 10 values (360k panes; shard-queries): fleetSeries at
 *   1 min 1120-1270 ms before, 326-386 ms after; topDevices by p99 1020-1170 ms / 314-330 ms.
 * The digest's share of an add is now ~40-55 ns (was 0.6-1.8 us). Where it goes: sorting the
 * raw values (a bucket sort, digest.ts sortValues: ~20 ns/value; TypedArray sort and quicksort
 * measured ~50), the merging pass, and block doubling. Old figures (`tdigest`, an RB-tree of
 * centroid objects per pane, a 32-value buffer per series): 1000 digests fed round-robin cost
 * 2700-6100 ns/value pushed one by one, 840-1450 buffered; add() 1930-2300 ns in the 1000-series
 * case; reading digests back (toArray) made a 1 h fleet query ~1.2-1.4 s.
 *
 * Sparse fleets (a reading per series per pane: every add() creates a pane): 100k series x 36
 * panes of one value (5 min of lateness at 10 s), scratch script: 404 B per pane and 1300-1545 ns
 * per add() with 8-entry minimum blocks and a map lookup per new pane; 292 B and 1030-1090 ns
 * with 2-entry blocks and no lookup for a pane newer than the series' newest. What is left:
 * inserting into the (series, pane) map (21%, cache misses in a table of millions), the series
 * map, array doubling.
 *
 * Snapshots (checkpoints): snapshot(full) / PaneStore.restore(), incremental by pane number; see
 * PaneStoreSnapshot.
 *
 * Limits: seriesMax and panesMax (constructor options) bound memory; exceeding them throws,
 * since silently dropping an event would break the "never silently dropped" rule upstream.
 */

import { IntPairMap } from './int-pair-map';
import {
  CENTROIDS_MAX_DEFAULT, compressAggregate, histogramBucket, compressRange, DIGEST_COMPRESSION, mergeExactFields, type WindowAggregateWire,
} from '../protocol';

export interface PaneStoreOptions {
  paneMs: number;
  histogramDivisions: number;
  histogramMin: number;
  histogramMax: number;
  /** upper bound on series held (default 4M) */
  seriesMax?: number;
  /** upper bound on open panes held (default 16M) */
  panesMax?: number;
  /** initial capacities (tests use small ones to exercise growth) */
  initialSeries?: number;
  initialPanes?: number;
  /** false disables the per-pane t-digest (benchmarks only: measures the digest's share) */
  digest?: boolean;
}

const SERIES_MAX_DEFAULT = 4 * 1024 * 1024;
const PANES_MAX_DEFAULT = 16 * 1024 * 1024;
const NO_PANE = -Infinity;
/** a pane's first digest block: entries (centroids + raw values); blocks double up to BLOCK_CAP_MAX */
const BLOCK_CAP_MIN = 2;
/**
 * Largest block. A compressed digest holds <= DIGEST_COMPRESSION + 2 entries (~100-150 in
 * practice), so a full block of 1024 folds ~900 raw values per compression: the merging pass
 * over the old centroids is paid once per ~900 values (see the header for the measurements).
 */
const BLOCK_CAP_MAX = 1024;
/** an older pane's full block is compressed first from this capacity on, and doubles only if that frees under a quarter */
const COMPRESS_MIN_CAP = 64;
const BLOCK_CLASSES = Math.log2(BLOCK_CAP_MAX / BLOCK_CAP_MIN) + 1;
/** slab entries (per array) at most: offsets are int32 */
const SLAB_ENTRIES_MAX = 2 ** 30;

export class PaneStore {
  readonly paneMs: number;
  readonly histogramDivisions: number;
  readonly histogramMin: number;
  readonly histogramMax: number;
  private readonly histStride: number;
  private readonly seriesMax: number;
  private readonly panesMax: number;
  private readonly digestEnabled: boolean;

  /** number of add() calls applied */
  eventsApplied = 0;

  // names (set-up path, not hot)
  private readonly deviceNames = new Map<number, string>();
  private readonly deviceIds = new Map<string, number>();
  private readonly metricNames = new Map<number, string>();
  private readonly metricIds = new Map<string, number>();
  private readonly seriesByMetric = new Map<number, number[]>();
  private readonly seriesByDevice = new Map<number, number[]>();
  private sortedNames: string[] | null = null;

  // series, struct of arrays
  private readonly seriesMap = new IntPairMap(1024);
  private nSeries = 0;
  private sDevice: Int32Array;
  private sMetric: Int32Array;
  private sCachePane: Float64Array;
  private sCacheSlot: Int32Array;
  private sNewest: Int32Array;
  /** the series' oldest pane: closing walks from it (the closed panes), not past the open ones */
  private sOldest: Int32Array;

  // panes, struct of arrays
  private readonly paneMap = new IntPairMap(1024);
  private nPanes = 0;
  private highWater = 0;
  private freeSlots: Int32Array;
  private nFree = 0;
  private pSeries: Int32Array;
  private pNo: Float64Array;
  private pCount: Float64Array;
  private pSum: Float64Array;
  private pMin: Float64Array;
  private pMax: Float64Array;
  private pLast: Float64Array;
  private pLastTs: Float64Array;
  private pHist: Float64Array;
  private pOlder: Int32Array;
  private pNewer: Int32Array;
  // the pane's digest block in the slab: offset, capacity, entries in use, compressed prefix
  private pBlockOff: Int32Array;
  private pBlockCap: Int32Array;
  private pBlockLen: Int32Array;
  private pBlockSorted: Int32Array;
  // incremental checkpoints: a pane changed since the last snapshot (1), live panes per pane
  // number, and the pane numbers that lost a pane (closed) since the last snapshot
  private pDirty: Uint8Array;
  private readonly livePerPaneNo = new Map<number, number>();
  private readonly droppedPaneNos = new Set<number>();

  // digest slab: blocks of means/weights, power-of-two capacities, free blocks reused per capacity
  private cMean: Float64Array;
  private cWeight: Float64Array;
  private cTop = 0;
  private readonly freeBlocks: number[][] = [];

  constructor(options: PaneStoreOptions) {
    const { paneMs, histogramDivisions, histogramMin, histogramMax } = options;
    if (!(Number.isInteger(paneMs) && paneMs >= 1)) throw new RangeError(`paneMs must be a positive integer: ${paneMs}`);
    if (!(Number.isInteger(histogramDivisions) && histogramDivisions >= 1 && histogramDivisions <= 10000)) {
      throw new RangeError(`histogramDivisions must be an integer in [1, 10000]: ${histogramDivisions}`);
    }
    if (!(Number.isFinite(histogramMin) && Number.isFinite(histogramMax) && histogramMin < histogramMax)) {
      throw new RangeError(`histogramMin must be below histogramMax, both finite: [${histogramMin}, ${histogramMax}]`);
    }
    this.paneMs = paneMs;
    this.histogramDivisions = histogramDivisions;
    this.histogramMin = histogramMin;
    this.histogramMax = histogramMax;
    this.histStride = histogramDivisions + 2;
    this.seriesMax = options.seriesMax ?? SERIES_MAX_DEFAULT;
    this.panesMax = options.panesMax ?? PANES_MAX_DEFAULT;
    this.digestEnabled = options.digest ?? true;

    const s = Math.max(1, options.initialSeries ?? 1024);
    this.sDevice = new Int32Array(s);
    this.sMetric = new Int32Array(s);
    // NO_PANE everywhere, also past nSeries: an unknown series index must miss the cache
    this.sCachePane = new Float64Array(s).fill(NO_PANE);
    this.sCacheSlot = new Int32Array(s);
    this.sNewest = new Int32Array(s);
    this.sOldest = new Int32Array(s);

    const p = Math.max(1, options.initialPanes ?? 4096);
    this.freeSlots = new Int32Array(p);
    this.pSeries = new Int32Array(p);
    this.pNo = new Float64Array(p);
    this.pCount = new Float64Array(p);
    this.pSum = new Float64Array(p);
    this.pMin = new Float64Array(p);
    this.pMax = new Float64Array(p);
    this.pLast = new Float64Array(p);
    this.pLastTs = new Float64Array(p);
    this.pHist = new Float64Array(p * this.histStride);
    this.pOlder = new Int32Array(p);
    this.pNewer = new Int32Array(p);
    this.pBlockOff = new Int32Array(p);
    this.pBlockCap = new Int32Array(p);
    this.pBlockLen = new Int32Array(p);
    this.pBlockSorted = new Int32Array(p);
    this.pDirty = new Uint8Array(p);
    const slab = this.digestEnabled ? p * BLOCK_CAP_MIN : 0;
    this.cMean = new Float64Array(slab);
    this.cWeight = new Float64Array(slab);
    for (let c = 0; c < BLOCK_CLASSES; c++) this.freeBlocks.push([]);
  }

  get seriesCount(): number {
    return this.nSeries;
  }

  /** bytes held by the typed arrays (capacities: arrays grow by doubling) */
  typedArrayBytes(): number {
    let n = this.seriesMap.bytes() + this.paneMap.bytes();
    for (const a of [this.sDevice, this.sMetric, this.sCachePane, this.sCacheSlot, this.sNewest, this.sOldest, this.freeSlots, this.pSeries, this.pNo,
      this.pCount, this.pSum, this.pMin, this.pMax, this.pLast, this.pLastTs, this.pHist, this.pOlder, this.pNewer, this.pBlockOff,
      this.pBlockCap, this.pBlockLen, this.pBlockSorted, this.pDirty, this.cMean, this.cWeight]) n += a.byteLength;
    return n;
  }

  get paneCount(): number {
    return this.nPanes;
  }

  get deviceCount(): number {
    return this.deviceNames.size;
  }

  // ---- names -------------------------------------------------------------------------------

  /** binds a global device id to its name; idempotent; a conflicting rebind throws */
  defineDevice(id: number, name: string): void {
    checkId('device', id);
    const known = this.deviceNames.get(id);
    if (known === name) return;
    if (known !== undefined) throw new Error(`device id ${id} is already bound to "${known}", not "${name}"`);
    const other = this.deviceIds.get(name);
    if (other !== undefined) throw new Error(`device "${name}" is already bound to id ${other}, not ${id}`);
    this.deviceNames.set(id, name);
    this.deviceIds.set(name, id);
    this.sortedNames = null;
  }

  /** binds a global metric id to its name; idempotent; a conflicting rebind throws */
  defineMetric(id: number, name: string): void {
    checkId('metric', id);
    const known = this.metricNames.get(id);
    if (known === name) return;
    if (known !== undefined) throw new Error(`metric id ${id} is already bound to "${known}", not "${name}"`);
    const other = this.metricIds.get(name);
    if (other !== undefined) throw new Error(`metric "${name}" is already bound to id ${other}, not ${id}`);
    this.metricNames.set(id, name);
    this.metricIds.set(name, id);
  }

  deviceIdOf(name: string): number {
    return this.deviceIds.get(name) ?? -1;
  }

  metricIdOf(name: string): number {
    return this.metricIds.get(name) ?? -1;
  }

  /** every defined metric id */
  metricIdList(): number[] {
    return [...this.metricNames.keys()];
  }

  deviceName(id: number): string | undefined {
    return this.deviceNames.get(id);
  }

  metricName(id: number): string | undefined {
    return this.metricNames.get(id);
  }

  /** all defined device names, sorted (cached until the next defineDevice) */
  sortedDeviceNames(): readonly string[] {
    if (this.sortedNames === null) {
      this.sortedNames = [...this.deviceIds.keys()].sort(compareStrings);
    }
    return this.sortedNames;
  }

  // ---- series ------------------------------------------------------------------------------

  /** get-or-create the series index of (device, metric); both ids must be defined first */
  seriesOf(deviceId: number, metricId: number): number {
    const s = this.seriesMap.get(deviceId, metricId);
    if (s >= 0) return s;
    return this.createSeries(deviceId, metricId);
  }

  /** series index of (device, metric), or -1 */
  findSeries(deviceId: number, metricId: number): number {
    if (deviceId < 0 || metricId < 0) return -1;
    return this.seriesMap.get(deviceId, metricId);
  }

  seriesOfMetric(metricId: number): readonly number[] {
    return this.seriesByMetric.get(metricId) ?? EMPTY_LIST;
  }

  seriesOfDevice(deviceId: number): readonly number[] {
    return this.seriesByDevice.get(deviceId) ?? EMPTY_LIST;
  }

  seriesDevice(series: number): number {
    return this.sDevice[series]!;
  }

  seriesMetric(series: number): number {
    return this.sMetric[series]!;
  }

  private createSeries(deviceId: number, metricId: number): number {
    if (!this.deviceNames.has(deviceId)) throw new Error(`device id ${deviceId} used before defineDevice`);
    if (!this.metricNames.has(metricId)) throw new Error(`metric id ${metricId} used before defineMetric`);
    if (this.nSeries >= this.seriesMax) throw new RangeError(`seriesMax (${this.seriesMax}) reached`);
    const s = this.nSeries;
    if (s === this.sDevice.length) this.growSeries();
    this.sDevice[s] = deviceId;
    this.sMetric[s] = metricId;
    this.sCachePane[s] = NO_PANE;
    this.sCacheSlot[s] = -1;
    this.sNewest[s] = -1;
    this.sOldest[s] = -1;
    this.nSeries = s + 1;
    this.seriesMap.set(deviceId, metricId, s);
    pushTo(this.seriesByMetric, metricId, s);
    pushTo(this.seriesByDevice, deviceId, s);
    return s;
  }

  private growSeries(): void {
    const n = this.sDevice.length * 2;
    this.sDevice = growInt32(this.sDevice, n);
    this.sMetric = growInt32(this.sMetric, n);
    this.sCachePane = growFloat64(this.sCachePane, n).fill(NO_PANE, this.sCachePane.length);
    this.sCacheSlot = growInt32(this.sCacheSlot, n);
    this.sNewest = growInt32(this.sNewest, n);
    this.sOldest = growInt32(this.sOldest, n);
  }

  // ---- hot path ----------------------------------------------------------------------------

  /** applies one value of one series at event time ts (epoch ms, >= 0) */
  add(series: number, ts: number, value: number): void {
    const paneNo = Math.floor(ts / this.paneMs);
    const slot = this.sCachePane[series] === paneNo ? this.sCacheSlot[series]! : this.slotFor(series, paneNo);
    this.eventsApplied++;
    const count = this.pCount[slot]!;
    if (count === 0) {
      this.pMin[slot] = value;
      this.pMax[slot] = value;
      this.pLast[slot] = value;
      this.pLastTs[slot] = ts;
    } else {
      if (value < this.pMin[slot]!) this.pMin[slot] = value;
      if (value > this.pMax[slot]!) this.pMax[slot] = value;
      if (ts >= this.pLastTs[slot]!) {
        this.pLast[slot] = value;
        this.pLastTs[slot] = ts;
      }
    }
    this.pCount[slot] = count + 1;
    this.pSum[slot] = this.pSum[slot]! + value;
    this.pDirty[slot] = 1;
    const h = slot * this.histStride + histogramBucket(value, this.histogramMin, this.histogramMax, this.histogramDivisions);
    this.pHist[h] = this.pHist[h]! + 1;
    if (!this.digestEnabled) return;
    // the raw value goes after the pane's entries (its weight slot already holds 1)
    let len = this.pBlockLen[slot]!;
    if (len === this.pBlockCap[slot]) len = this.makeRoom(slot);
    this.cMean[this.pBlockOff[slot]! + len] = value;
    this.pBlockLen[slot] = len + 1;
  }

  // ---- digest blocks -----------------------------------------------------------------------

  /**
   * A full block. The series' latest pane (in-order events) doubles its block up to BLOCK_CAP_MAX
   * and compresses only then; an older pane (late events) compresses first from COMPRESS_MIN_CAP
   * and doubles when that frees under a quarter, so late events do not grow old panes' memory.
   */
  private makeRoom(slot: number): number {
    const cap = this.pBlockCap[slot]!;
    const latest = this.sCacheSlot[this.pSeries[slot]!] === slot;
    if (cap === BLOCK_CAP_MAX || (!latest && cap >= COMPRESS_MIN_CAP)) {
      const len = this.compressPane(slot);
      if (cap - len >= cap >> 2 || cap === BLOCK_CAP_MAX) {
        if (len === cap) throw new Error(`pane digest block still full after compression (${len} entries): a bug`);
        return len;
      }
    }
    this.moveBlock(slot, cap * 2);
    return this.pBlockLen[slot]!;
  }

  /** folds the pane's raw values into its centroids; returns the entries left */
  private compressPane(slot: number): number {
    const len = this.pBlockLen[slot]!;
    const sorted = this.pBlockSorted[slot]!;
    if (sorted === len) return len;
    const off = this.pBlockOff[slot]!;
    const n = compressRange(this.cMean, this.cWeight, off, off + sorted, off + len, true);
    this.cWeight.fill(1, off + n, off + len);
    this.pBlockLen[slot] = n;
    this.pBlockSorted[slot] = n;
    return n;
  }

  /** a pane that stops being its series' latest: compressed, and its block shrunk to fit */
  private settlePane(slot: number): void {
    const len = this.compressPane(slot);
    const cap = fitCapacity(len);
    if (cap < this.pBlockCap[slot]!) this.moveBlock(slot, cap);
  }

  private moveBlock(slot: number, cap: number): void {
    const to = this.allocBlock(cap);
    const from = this.pBlockOff[slot]!;
    const len = this.pBlockLen[slot]!;
    this.cMean.copyWithin(to, from, from + len);
    this.cWeight.copyWithin(to, from, from + len);
    this.cWeight.fill(1, from, from + len);
    this.releaseBlock(from, this.pBlockCap[slot]!);
    this.pBlockOff[slot] = to;
    this.pBlockCap[slot] = cap;
  }

  /** a block of `cap` entries whose weight slots all hold 1 (the invariant past a block's length) */
  private allocBlock(cap: number): number {
    const free = this.freeBlocks[blockClass(cap)]!;
    if (free.length > 0) return free.pop()!;
    const off = this.cTop;
    if (off + cap > this.cMean.length) this.growSlab(off + cap);
    this.cTop = off + cap;
    this.cWeight.fill(1, off, off + cap);
    return off;
  }

  /** the caller leaves weight slots [0, cap) of the block at 1 (see allocBlock) */
  private releaseBlock(off: number, cap: number): void {
    this.freeBlocks[blockClass(cap)]!.push(off);
  }

  private growSlab(min: number): void {
    let n = Math.max(1024, this.cMean.length * 2);
    while (n < min) n *= 2;
    if (n > SLAB_ENTRIES_MAX) {
      if (min > SLAB_ENTRIES_MAX) throw new RangeError(`digest slab full (${SLAB_ENTRIES_MAX} entries)`);
      n = SLAB_ENTRIES_MAX;
    }
    this.cMean = growFloat64(this.cMean, n);
    this.cWeight = growFloat64(this.cWeight, n);
  }

  /** cache miss: look up or create the pane, and move the series' cache forward if it is newer */
  private slotFor(series: number, paneNo: number): number {
    if (!(series >= 0 && series < this.nSeries)) throw new RangeError(`unknown series ${series}`);
    // a pane newer than the series' newest cannot exist: in-order data skips the lookup (a miss in
    // a table of millions of panes is a cache miss: 24% of add() in a sparse-fleet profile)
    const newest = this.sNewest[series]!;
    let slot = newest < 0 || this.pNo[newest]! < paneNo ? -1 : this.pNo[newest] === paneNo ? newest : this.paneMap.get(series, paneNo);
    if (slot < 0) slot = this.createPane(series, paneNo);
    if (paneNo > this.sCachePane[series]!) {
      const previous = this.sCacheSlot[series]!;
      if (previous >= 0 && this.digestEnabled) this.settlePane(previous);
      this.sCachePane[series] = paneNo;
      this.sCacheSlot[series] = slot;
    }
    return slot;
  }

  private createPane(series: number, paneNo: number): number {
    if (!(Number.isSafeInteger(paneNo) && paneNo >= 0)) throw new RangeError(`event time out of range: pane ${paneNo} (paneMs ${this.paneMs})`);
    if (this.nPanes >= this.panesMax) throw new RangeError(`panesMax (${this.panesMax}) reached`);
    let slot: number;
    if (this.nFree > 0) slot = this.freeSlots[--this.nFree]!;
    else {
      slot = this.highWater++;
      if (slot === this.pSeries.length) this.growPanes();
    }
    this.nPanes++;
    this.pSeries[slot] = series;
    this.pNo[slot] = paneNo;
    this.pCount[slot] = 0;
    this.pSum[slot] = 0;
    this.pMin[slot] = 0;
    this.pMax[slot] = 0;
    this.pLast[slot] = 0;
    this.pLastTs[slot] = 0;
    this.pHist.fill(0, slot * this.histStride, (slot + 1) * this.histStride);
    if (this.digestEnabled) {
      // a new latest pane starts with room for as many values as the series' previous one had
      // (no chain of doublings for busy series); an older pane (late events) starts small
      const previous = this.sCacheSlot[series]!;
      const cap = previous >= 0 && paneNo > this.sCachePane[series]!
        ? fitCapacity(Math.min(this.pCount[previous]!, BLOCK_CAP_MAX))
        : BLOCK_CAP_MIN;
      this.pBlockOff[slot] = this.allocBlock(cap);
      this.pBlockCap[slot] = cap;
    }
    this.pBlockLen[slot] = 0;
    this.pBlockSorted[slot] = 0;
    this.pDirty[slot] = 1;
    this.livePerPaneNo.set(paneNo, (this.livePerPaneNo.get(paneNo) ?? 0) + 1);
    this.paneMap.set(series, paneNo, slot);
    this.linkPane(series, slot, paneNo);
    return slot;
  }

  /** inserts into the series' newest-first list; in-order panes go to the head in O(1) */
  private linkPane(series: number, slot: number, paneNo: number): void {
    let newer = -1;
    let older = this.sNewest[series]!;
    while (older >= 0 && this.pNo[older]! > paneNo) {
      newer = older;
      older = this.pOlder[older]!;
    }
    this.pNewer[slot] = newer;
    this.pOlder[slot] = older;
    if (newer >= 0) this.pOlder[newer] = slot;
    else this.sNewest[series] = slot;
    if (older >= 0) this.pNewer[older] = slot;
    else this.sOldest[series] = slot;
  }

  private growPanes(): void {
    const n = this.pSeries.length * 2;
    this.freeSlots = growInt32(this.freeSlots, n);
    this.pSeries = growInt32(this.pSeries, n);
    this.pNo = growFloat64(this.pNo, n);
    this.pCount = growFloat64(this.pCount, n);
    this.pSum = growFloat64(this.pSum, n);
    this.pMin = growFloat64(this.pMin, n);
    this.pMax = growFloat64(this.pMax, n);
    this.pLast = growFloat64(this.pLast, n);
    this.pLastTs = growFloat64(this.pLastTs, n);
    this.pHist = growFloat64(this.pHist, n * this.histStride);
    this.pOlder = growInt32(this.pOlder, n);
    this.pNewer = growInt32(this.pNewer, n);
    this.pBlockOff = growInt32(this.pBlockOff, n);
    this.pBlockCap = growInt32(this.pBlockCap, n);
    this.pBlockLen = growInt32(this.pBlockLen, n);
    this.pBlockSorted = growInt32(this.pBlockSorted, n);
    const dirty = new Uint8Array(n);
    dirty.set(this.pDirty);
    this.pDirty = dirty;
  }

  /**
   * Releases a pane slot (for the closing/rollup issue): unlinks it, forgets its map entry and
   * the series cache if it pointed there, and puts the slot on the free list for reuse.
   */
  freePane(slot: number): void {
    if (!(slot >= 0 && slot < this.highWater) || this.pSeries[slot] === -1) throw new RangeError(`freePane: slot ${slot} is not in use`);
    const series = this.pSeries[slot]!;
    const older = this.pOlder[slot]!;
    const newer = this.pNewer[slot]!;
    if (newer >= 0) this.pOlder[newer] = older;
    else this.sNewest[series] = older;
    if (older >= 0) this.pNewer[older] = newer;
    else this.sOldest[series] = newer;
    const paneNo = this.pNo[slot]!;
    this.paneMap.delete(series, paneNo);
    const live = this.livePerPaneNo.get(paneNo)! - 1;
    if (live === 0) this.livePerPaneNo.delete(paneNo);
    else this.livePerPaneNo.set(paneNo, live);
    this.droppedPaneNos.add(paneNo);
    this.pDirty[slot] = 0;
    if (this.sCacheSlot[series] === slot) {
      // the next event of this series goes through the map; a pane recreated later re-caches
      this.sCachePane[series] = NO_PANE;
      this.sCacheSlot[series] = -1;
    }
    this.pSeries[slot] = -1;
    if (this.digestEnabled) {
      const off = this.pBlockOff[slot]!;
      this.cWeight.fill(1, off, off + this.pBlockLen[slot]!);
      this.releaseBlock(off, this.pBlockCap[slot]!);
    }
    this.pBlockLen[slot] = 0;
    this.pBlockSorted[slot] = 0;
    this.freeSlots[this.nFree++] = slot;
    this.nPanes--;
  }

  // ---- read side (queries, checkpoints) ----------------------------------------------------

  /** pane slot of (series, paneNo), or -1 */
  findPane(series: number, paneNo: number): number {
    return this.paneMap.get(series, paneNo);
  }

  /** newest pane slot of a series, or -1 */
  newestPane(series: number): number {
    return this.sNewest[series]!;
  }

  /** oldest pane slot of a series, or -1 */
  oldestPane(series: number): number {
    return this.sOldest[series]!;
  }

  /** next newer pane slot of the same series, or -1 */
  newerPane(slot: number): number {
    return this.pNewer[slot]!;
  }

  /** next older pane slot of the same series, or -1 */
  olderPane(slot: number): number {
    return this.pOlder[slot]!;
  }

  paneNumber(slot: number): number {
    return this.pNo[slot]!;
  }

  paneStartMs(slot: number): number {
    return this.pNo[slot]! * this.paneMs;
  }

  paneSeries(slot: number): number {
    return this.pSeries[slot]!;
  }

  paneEventCount(slot: number): number {
    return this.pCount[slot]!;
  }

  /** a copy of the pane's compressed centroids, sorted by mean (null when digests are disabled) */
  paneDigest(slot: number): PaneDigest | null {
    if (!this.digestEnabled) return null;
    this.flushPane(slot);
    const off = this.pBlockOff[slot]!;
    const len = this.pBlockLen[slot]!;
    return { means: this.cMean.slice(off, off + len), weights: this.cWeight.slice(off, off + len) };
  }

  /** makes the pane's digest current: folds its raw values into its centroids */
  flushPane(slot: number): void {
    if (this.digestEnabled && this.pSeries[slot]! >= 0) this.compressPane(slot);
  }

  /**
   * Merges one pane into a wire aggregate (which must have histogramDivisions divisions): exact
   * fields always, centroids when withDigest. start/end of `into` are left to the caller.
   */
  mergePaneInto(slot: number, into: WindowAggregateWire, withDigest = true): void {
    const count = this.pCount[slot]!;
    if (count === 0) return;
    mergeExactFields(into, count, this.pSum[slot]!, this.pMin[slot]!, this.pMax[slot]!, this.pLast[slot]!, this.pLastTs[slot]!);
    const base = slot * this.histStride;
    const d = this.histogramDivisions;
    const hist = into.histogram;
    if (hist.length !== d) throw new RangeError(`mergePaneInto: aggregate has ${hist.length} divisions, store has ${d}`);
    for (let i = 0; i < d; i++) hist[i] = hist[i]! + this.pHist[base + i]!;
    into.under += this.pHist[base + d]!;
    into.over += this.pHist[base + d + 1]!;
    if (!withDigest || !this.digestEnabled) return;
    const len = this.compressPane(slot);
    const off = this.pBlockOff[slot]!;
    const means = into.means;
    const weights = into.weights;
    for (let i = off; i < off + len; i++) {
      means.push(this.cMean[i]!);
      weights.push(this.cWeight[i]!);
    }
    if (means.length > CENTROIDS_MAX_DEFAULT) compressAggregate(into);
  }

  // ---- checkpoints -------------------------------------------------------------------------

  /**
   * A plain-data copy of the store for a checkpoint, incremental by pane number: the series table
   * and names always, the list of live pane numbers with their pane counts, and a group (every
   * live pane of that number: exact fields, histogram, centroids) for each pane number that
   * changed since the previous snapshot (an event applied, a pane created or closed), or for all
   * of them when `full`. A checkpoint store keeps one group per pane number, so writing the
   * changed groups and deleting the ones no longer live reproduces a full snapshot; under
   * in-order load only the newest pane number or two change between checkpoints. Typed arrays,
   * number arrays and strings only: encode with msgpackr `moreTypes: true` (or structuredClone):
   * msgpackr's default pack() writes a non-Uint8 typed array as one byte per element (measured
   * with msgpackr 2.1.3: Float64Array [1.5, 2] came back as the bytes 01 02 and 14 bytes of junk).
   *
   * The caller must store the result (or take a full snapshot next time): the changed flags are
   * cleared here. Not read-only otherwise either: it folds every written pane's raw values into
   * its centroids, fits its block to them and points each series' cache at its newest pane,
   * exactly as restore() builds them, so this store and a restored one stay equal (identical
   * answers) under the same further events.
   */
  snapshot(full = true): PaneStoreSnapshot {
    const live = [...this.livePerPaneNo.keys()].sort((a, b) => a - b);
    let write: number[];
    if (full) write = live;
    else {
      const changed = new Set<number>();
      const dirty = this.pDirty;
      for (let slot = 0; slot < this.highWater; slot++) if (dirty[slot] === 1) changed.add(this.pNo[slot]!);
      for (const p of this.droppedPaneNos) if (this.livePerPaneNo.has(p)) changed.add(p);
      write = [...changed].sort((a, b) => a - b);
    }
    this.droppedPaneNos.clear();
    // group index by pane number: a dense table over the (small) range written
    const low = write.length > 0 ? write[0]! : 0;
    const span = write.length > 0 ? write[write.length - 1]! - low + 1 : 0;
    const groupOf = new Int32Array(span).fill(-1);
    write.forEach((p, g) => { groupOf[p - low] = g; });
    const slotsOf: number[][] = write.map(() => []);
    for (let s = 0; s < this.nSeries; s++) {
      const newest = this.sNewest[s]!;
      this.sCacheSlot[s] = newest;
      this.sCachePane[s] = newest >= 0 ? this.pNo[newest]! : NO_PANE;
      // newest first, so the walk stops at the oldest pane number written
      for (let p = newest; p >= 0 && this.pNo[p]! >= low; p = this.pOlder[p]!) {
        const g = this.pNo[p]! - low < span ? groupOf[this.pNo[p]! - low]! : -1;
        if (g >= 0) slotsOf[g]!.push(p);
      }
    }
    return {
      version: SNAPSHOT_VERSION,
      paneMs: this.paneMs,
      histogramDivisions: this.histogramDivisions,
      histogramMin: this.histogramMin,
      histogramMax: this.histogramMax,
      digest: this.digestEnabled,
      eventsApplied: this.eventsApplied,
      deviceIds: [...this.deviceNames.keys()],
      deviceNames: [...this.deviceNames.values()],
      metricIds: [...this.metricNames.keys()],
      metricNames: [...this.metricNames.values()],
      seriesDevice: this.sDevice.slice(0, this.nSeries),
      seriesMetric: this.sMetric.slice(0, this.nSeries),
      livePaneNos: Float64Array.from(live),
      livePanes: Int32Array.from(live, (p) => this.livePerPaneNo.get(p)!),
      groups: write.map((paneNo, g) => this.paneGroup(paneNo, slotsOf[g]!)),
    };
  }

  /** the group of one pane number: its panes (slots, in series order) compressed, fitted and copied */
  private paneGroup(paneNo: number, slots: number[]): PaneGroup {
    const n = slots.length;
    const stride = this.histStride;
    let centroids = 0;
    if (this.digestEnabled) {
      for (const slot of slots) {
        const len = this.compressPane(slot);
        const cap = fitCapacity(len);
        if (cap !== this.pBlockCap[slot]) this.moveBlock(slot, cap);
        centroids += len;
      }
    }
    const g: PaneGroup = {
      paneNo,
      paneSeries: new Int32Array(n),
      count: new Float64Array(n),
      sum: new Float64Array(n),
      min: new Float64Array(n),
      max: new Float64Array(n),
      last: new Float64Array(n),
      lastTs: new Float64Array(n),
      histogram: new Float64Array(n * stride),
      centroidStart: new Int32Array(n + 1),
      means: new Float64Array(centroids),
      weights: new Float64Array(centroids),
    };
    let c = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i]!;
      this.pDirty[slot] = 0;
      g.paneSeries[i] = this.pSeries[slot]!;
      g.count[i] = this.pCount[slot]!;
      g.sum[i] = this.pSum[slot]!;
      g.min[i] = this.pMin[slot]!;
      g.max[i] = this.pMax[slot]!;
      g.last[i] = this.pLast[slot]!;
      g.lastTs[i] = this.pLastTs[slot]!;
      g.histogram.set(this.pHist.subarray(slot * stride, (slot + 1) * stride), i * stride);
      g.centroidStart[i] = c;
      if (this.digestEnabled) {
        const off = this.pBlockOff[slot]!;
        const len = this.pBlockLen[slot]!;
        g.means.set(this.cMean.subarray(off, off + len), c);
        g.weights.set(this.cWeight.subarray(off, off + len), c);
        c += len;
      }
    }
    g.centroidStart[n] = c;
    return g;
  }

  /**
   * Rebuilds a store from a full snapshot: snapshot() output whose groups are every live pane
   * number's latest group (a full snapshot, or a checkpoint store's groups put together), after
   * any encode/decode that keeps typed arrays. The options must describe the same panes (paneMs,
   * histogram, digest) as the snapshot's store; limits and initial capacities may differ. Checks
   * the snapshot as it reads it and throws on anything inconsistent (a checkpoint that does not
   * restore must not be used). The restored store has nothing changed: its next incremental
   * snapshot writes only what changes after the restore.
   */
  static restore(options: PaneStoreOptions, snap: PaneStoreSnapshot): PaneStore {
    if (snap.version !== SNAPSHOT_VERSION) throw new Error(`PaneStore snapshot version ${String(snap.version)}, expected ${SNAPSHOT_VERSION}`);
    const digest = options.digest ?? true;
    for (const [name, mine, theirs] of [
      ['paneMs', options.paneMs, snap.paneMs], ['histogramDivisions', options.histogramDivisions, snap.histogramDivisions],
      ['histogramMin', options.histogramMin, snap.histogramMin], ['histogramMax', options.histogramMax, snap.histogramMax],
      ['digest', digest, snap.digest],
    ] as const) {
      if (mine !== theirs) throw new Error(`PaneStore snapshot has ${name} ${String(theirs)}, the options ${String(mine)}`);
    }
    const nSeries = snap.seriesDevice.length;
    if (snap.seriesMetric.length !== nSeries || snap.deviceIds.length !== snap.deviceNames.length || snap.metricIds.length !== snap.metricNames.length) {
      throw new Error('PaneStore snapshot: series or name lists differ in length');
    }
    const groups = [...snap.groups].sort((a, b) => a.paneNo - b.paneNo);
    if (groups.length !== snap.livePaneNos.length || snap.livePanes.length !== snap.livePaneNos.length) {
      throw new Error(`PaneStore snapshot: ${groups.length} pane groups for ${snap.livePaneNos.length} live pane numbers`);
    }
    let n = 0;
    for (let i = 0; i < groups.length; i++) {
      if (groups[i]!.paneNo !== snap.livePaneNos[i] || groups[i]!.paneSeries.length !== snap.livePanes[i]) {
        throw new Error(`PaneStore snapshot: pane group ${groups[i]!.paneNo} (${groups[i]!.paneSeries.length} panes) where pane number ${snap.livePaneNos[i]} with ${snap.livePanes[i]} panes was recorded`);
      }
      n += snap.livePanes[i]!;
    }
    const store = new PaneStore({
      ...options,
      initialSeries: Math.max(options.initialSeries ?? 1024, nSeries),
      initialPanes: Math.max(options.initialPanes ?? 4096, n),
    });
    for (let i = 0; i < snap.deviceIds.length; i++) store.defineDevice(snap.deviceIds[i]!, snap.deviceNames[i]!);
    for (let i = 0; i < snap.metricIds.length; i++) store.defineMetric(snap.metricIds[i]!, snap.metricNames[i]!);
    for (let s = 0; s < nSeries; s++) {
      if (store.seriesOf(snap.seriesDevice[s]!, snap.seriesMetric[s]!) !== s) throw new Error(`PaneStore snapshot: series ${s} is a duplicate`);
    }
    for (const g of groups) store.restoreGroup(g);
    for (let s = 0; s < nSeries; s++) {
      const newest = store.sNewest[s]!;
      store.sCacheSlot[s] = newest;
      store.sCachePane[s] = newest >= 0 ? store.pNo[newest]! : NO_PANE;
    }
    store.droppedPaneNos.clear();
    store.eventsApplied = snap.eventsApplied;
    return store;
  }

  private restoreGroup(g: PaneGroup): void {
    const n = g.paneSeries.length;
    const stride = this.histStride;
    for (const field of ['count', 'sum', 'min', 'max', 'last', 'lastTs'] as const) {
      if (g[field].length !== n) throw new Error(`PaneStore snapshot: pane group ${g.paneNo}: ${field} has ${g[field].length} entries for ${n} panes`);
    }
    if (g.histogram.length !== n * stride || g.centroidStart.length !== n + 1
      || g.centroidStart[n] !== g.means.length || g.weights.length !== g.means.length) {
      throw new Error(`PaneStore snapshot: pane group ${g.paneNo}: histogram or centroid arrays do not match its pane count`);
    }
    for (let i = 0; i < n; i++) {
      if (i > 0 && !(g.paneSeries[i]! > g.paneSeries[i - 1]!)) throw new Error(`PaneStore snapshot: pane group ${g.paneNo}: pane ${i} is out of series order`);
      this.restorePane(g, i);
    }
  }

  private restorePane(g: PaneGroup, i: number): void {
    const series = g.paneSeries[i]!;
    const paneNo = g.paneNo;
    const where = `PaneStore snapshot: pane group ${paneNo}, pane ${i}`;
    if (!(series >= 0 && series < this.nSeries)) throw new Error(`${where} names series ${series} of ${this.nSeries}`);
    const newest = this.sNewest[series]!;
    if (newest >= 0 && this.pNo[newest]! >= paneNo) throw new Error(`${where} is out of pane order`);
    const count = g.count[i]!;
    if (!(Number.isInteger(count) && count >= 1)) throw new Error(`${where} has count ${count}`);
    const slot = this.createPane(series, paneNo);
    this.pDirty[slot] = 0;
    this.pCount[slot] = count;
    this.pSum[slot] = g.sum[i]!;
    this.pMin[slot] = g.min[i]!;
    this.pMax[slot] = g.max[i]!;
    this.pLast[slot] = g.last[i]!;
    this.pLastTs[slot] = g.lastTs[i]!;
    const stride = this.histStride;
    let inHistogram = 0;
    for (let k = 0; k < stride; k++) {
      const h = g.histogram[i * stride + k]!;
      this.pHist[slot * stride + k] = h;
      inHistogram += h;
    }
    if (inHistogram !== count) throw new Error(`${where} histogram holds ${inHistogram} of ${count} values`);
    if (!this.digestEnabled) return;
    const from = g.centroidStart[i]!;
    const len = g.centroidStart[i + 1]! - from;
    if (!(len >= 1 && len <= DIGEST_COMPRESSION + 2)) throw new Error(`${where} has ${len} centroids`);
    const cap = fitCapacity(len);
    if (cap !== this.pBlockCap[slot]) this.moveBlock(slot, cap);
    const off = this.pBlockOff[slot]!;
    let weight = 0;
    for (let k = 0; k < len; k++) {
      const m = g.means[from + k]!;
      const w = g.weights[from + k]!;
      if (!(w > 0) || (k > 0 && !(m >= g.means[from + k - 1]!))) throw new Error(`${where}: centroids unsorted or weightless`);
      this.cMean[off + k] = m;
      this.cWeight[off + k] = w;
      weight += w;
    }
    if (weight !== count) throw new Error(`${where}: centroids weigh ${weight}, its count is ${count}`);
    this.pBlockLen[slot] = len;
    this.pBlockSorted[slot] = len;
  }
}

/** format version of PaneStoreSnapshot (2: incremental, panes grouped by pane number) */
export const SNAPSHOT_VERSION = 2;

/**
 * The live panes of one pane number, in series order: pane i's histogram is histogram[i *
 * (divisions + 2) ...] (divisions, under, over) and its centroids, sorted by mean, are
 * means/weights [centroidStart[i], centroidStart[i + 1]) (none when digest is false).
 */
export interface PaneGroup {
  paneNo: number;
  paneSeries: Int32Array;
  count: Float64Array;
  sum: Float64Array;
  min: Float64Array;
  max: Float64Array;
  last: Float64Array;
  lastTs: Float64Array;
  histogram: Float64Array;
  centroidStart: Int32Array;
  means: Float64Array;
  weights: Float64Array;
}

/** PaneStore.snapshot(): the store's tables, the live pane numbers, and the groups written (see snapshot()) */
export interface PaneStoreSnapshot {
  version: number;
  paneMs: number;
  histogramDivisions: number;
  histogramMin: number;
  histogramMax: number;
  digest: boolean;
  eventsApplied: number;
  deviceIds: number[];
  deviceNames: string[];
  metricIds: number[];
  metricNames: string[];
  /** series index -> device id, metric id */
  seriesDevice: Int32Array;
  seriesMetric: Int32Array;
  /** every pane number with live panes, ascending, and how many */
  livePaneNos: Float64Array;
  livePanes: Int32Array;
  groups: PaneGroup[];
}

/** a pane's centroids (PaneStore.paneDigest) */
export interface PaneDigest {
  means: Float64Array;
  weights: Float64Array;
}

/** the smallest block capacity holding len entries */
function fitCapacity(len: number): number {
  let cap = BLOCK_CAP_MIN;
  while (cap < len) cap *= 2;
  return cap;
}

function blockClass(cap: number): number {
  return 31 - Math.clz32(cap / BLOCK_CAP_MIN);
}

const EMPTY_LIST: readonly number[] = Object.freeze([]);

function checkId(kind: string, id: number): void {
  if (!(Number.isInteger(id) && id >= 0 && id <= 0x7fffffff)) throw new RangeError(`${kind} id must be an int32 >= 0: ${id}`);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function pushTo(map: Map<number, number[]>, key: number, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function growInt32(a: Int32Array, n: number): Int32Array {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}

function growFloat64(a: Float64Array, n: number): Float64Array {
  const b = new Float64Array(n);
  b.set(a);
  return b;
}
