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
 *   divisions + 2: the divisions, then under, then over), and a TDigest object (`tdigest`).
 * - (series, paneNo) -> slot in an IntPairMap; (device, metric) -> series in another.
 * - freed slots go on a free-slot stack and are reused first (freePane(); closing panes into
 *   rollups is a later issue, this is its primitive).
 *
 * Hot path add(series, ts, value): pane = floor(ts / paneMs); an event in the series' latest pane
 * skips the hash lookup; otherwise the slot is looked up or created. No allocation of ours per
 * call; the only allocation is inside TDigest.push (its RB-tree nodes and iterators).
 *
 * t-digest feeding, measured on this machine (Node 20, 2 vCPU shared with other work, so +-30%;
 * scratch scripts, not committed). In isolation (one digest fed 200k values) push per value costs
 * 230-410 ns/value and buffering gains nothing. But a shard feeds many digests interleaved, and
 * there the `tdigest` package (RB-tree of centroid objects) misses cache: 1000 digests fed
 * round-robin cost 2700-6100 ns/value pushed one by one, 840-1450 ns/value when each digest's
 * values are buffered in a Float64Array (64) and pushed as a batch value by value, and
 * 1500-5300 ns/value with push(Array.from(buffer)) + compress() (worse, as the map said).
 * Buffer size 8/16/32/64: 2450/1890/1570/1330 ns/value. Chosen: a 32-value buffer per series for
 * its latest pane (in-order events; out-of-order events push directly), flushed when full, when
 * the series moves to a newer pane, and before any read of the pane's digest (flushPane()).
 * add() end to end (1000 series, 3 panes each, ~670 values per pane, flush included):
 * 30-50 ns/add without the digest, 1930-2300 ns/add with it (was 4200-4570 pushing per value);
 * 100k series with 10 values per pane: 110-120 / 1100-1500 ns/add; 1 series: 30 / 265 ns/add.
 * The digest is the ingest ceiling per shard, and reading it back (toArray: an RB-tree walk
 * allocating an object per centroid) is the largest cost of fleet queries over raw panes (1000
 * devices x 360 panes x 10 values: fleet 1 h at 1 min ~1.2-1.4 s): replacing `tdigest` with a
 * typed-array merging digest is the obvious next step.
 *
 * Limits: seriesMax and panesMax (constructor options) bound memory; exceeding them throws,
 * since silently dropping an event would break the "never silently dropped" rule upstream.
 */

import { TDigest } from 'tdigest';
import { IntPairMap } from './int-pair-map';
import { CENTROIDS_MAX_DEFAULT, compressAggregate, mergeExactFields, type WindowAggregateWire } from '../protocol';

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
/**
 * Values buffered per series for its latest pane before they are pushed into that pane's digest.
 * 32 x 8 bytes per series; buffering per series rather than per pane keeps memory bounded by the
 * series count while the ~31 open panes per series (5 min lateness / 10 s) stay unbuffered.
 */
const DIGEST_BUFFER = 32;

export class PaneStore {
  readonly paneMs: number;
  readonly histogramDivisions: number;
  readonly histogramMin: number;
  readonly histogramMax: number;
  private readonly histStride: number;
  private readonly histRange: number;
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
  private sBuf: Float64Array;
  private sBufLen: Int32Array;

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
  private pDigest: (TDigest | null)[];

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
    this.histRange = histogramMax - histogramMin;
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
    this.sBuf = new Float64Array(s * DIGEST_BUFFER);
    this.sBufLen = new Int32Array(s);

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
    this.pDigest = new Array<TDigest | null>(p).fill(null);
  }

  get seriesCount(): number {
    return this.nSeries;
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
    this.sBufLen[s] = 0;
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
    this.sBuf = growFloat64(this.sBuf, n * DIGEST_BUFFER);
    this.sBufLen = growInt32(this.sBufLen, n);
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
    const divisions = this.histogramDivisions;
    let bucket: number;
    if (value < this.histogramMin) bucket = divisions;
    else if (value > this.histogramMax) bucket = divisions + 1;
    else {
      // (v - min) * divisions / range, not * precomputed (divisions / range): exact on integer
      // edges such as 30 * 10 / 100; the clamp puts v == max (and rounding up) in the last division.
      bucket = Math.floor(((value - this.histogramMin) * divisions) / this.histRange);
      if (bucket >= divisions) bucket = divisions - 1;
    }
    const h = slot * this.histStride + bucket;
    this.pHist[h] = this.pHist[h]! + 1;
    if (!this.digestEnabled) return;
    if (slot === this.sCacheSlot[series]) {
      // latest pane: buffer, push the batch when full (see the header for the measurement)
      const len = this.sBufLen[series]!;
      this.sBuf[series * DIGEST_BUFFER + len] = value;
      this.sBufLen[series] = len + 1;
      if (len + 1 === DIGEST_BUFFER) this.flushSeries(series);
    } else {
      this.pDigest[slot]!.push(value);
    }
  }

  /** pushes the series' buffered values into its latest pane's digest */
  private flushSeries(series: number): void {
    const len = this.sBufLen[series]!;
    if (len === 0) return;
    const digest = this.pDigest[this.sCacheSlot[series]!]!;
    const base = series * DIGEST_BUFFER;
    for (let i = 0; i < len; i++) digest.push(this.sBuf[base + i]!);
    this.sBufLen[series] = 0;
  }

  /** cache miss: look up or create the pane, and move the series' cache forward if it is newer */
  private slotFor(series: number, paneNo: number): number {
    if (!(series >= 0 && series < this.nSeries)) throw new RangeError(`unknown series ${series}`);
    let slot = this.paneMap.get(series, paneNo);
    if (slot < 0) slot = this.createPane(series, paneNo);
    if (paneNo > this.sCachePane[series]!) {
      if (this.sBufLen[series]! > 0) this.flushSeries(series);
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
    this.pDigest[slot] = this.digestEnabled ? new TDigest() : null;
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
    for (let i = this.pDigest.length; i < n; i++) this.pDigest.push(null);
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
    this.paneMap.delete(series, this.pNo[slot]!);
    if (this.sCacheSlot[series] === slot) {
      // The next event of this series goes through the map; a pane recreated later re-caches.
      // Buffered values belong to the freed pane: the caller has read (flushed) it or drops it.
      this.sBufLen[series] = 0;
      this.sCachePane[series] = NO_PANE;
      this.sCacheSlot[series] = -1;
    }
    this.pSeries[slot] = -1;
    this.pDigest[slot] = null;
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

  /** the pane's live digest (null when digests are disabled); callers must not mutate it */
  paneDigest(slot: number): TDigest | null {
    this.flushPane(slot);
    return this.pDigest[slot]!;
  }

  /** makes the pane's digest current: pushes buffered values if this is its series' latest pane */
  flushPane(slot: number): void {
    const series = this.pSeries[slot]!;
    if (series >= 0 && this.sCacheSlot[series] === slot) this.flushSeries(series);
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
    if (withDigest) this.flushPane(slot);
    const digest = this.pDigest[slot];
    if (withDigest && digest) {
      const centroids = digest.toArray();
      for (let i = 0; i < centroids.length; i++) {
        into.means.push(centroids[i]!.mean);
        into.weights.push(centroids[i]!.n);
      }
      if (into.means.length > CENTROIDS_MAX_DEFAULT) compressAggregate(into);
    }
  }
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
