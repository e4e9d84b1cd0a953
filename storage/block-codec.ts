/**
 * The binary form of a SEALED BLOCK: the readings of one time slice (1 min by default) of one
 * shard, sorted by series, from which every window of the slice (its panes and the whole slice)
 * is derived exactly, plus a per-metric footer with the fleet aggregates and the device sets, so
 * a fleet window is one read (docs/state-and-storage.md, "Sealing").
 *
 * Layout, little-endian, sections back to back:
 *
 *   header (72 B)   u8 format = 1, u8 offsetBytes (2 when sliceMs <= 65536, else 4),
 *                   u16 histogram divisions, u32 sliceMs, f64 sliceStart, f64 histogram min,
 *                   f64 histogram max, u32 paneMs, u32 series, u32 readings, u32 sparseEvery (K),
 *                   u32 metrics, u32 directoryBytes, u32 dataBytes, u32 footerBytes, u32 totalBytes,
 *                   u32 crc32 of every byte of the block but these four
 *   sparse index    ceil(series / K) x (u32 series id, u32 directory offset, u32 data offset) of
 *                   series 0, K, 2K...: findSeries is a binary search here plus a scan of < K entries
 *   directory       per series, ascending ids: varint id delta (the first: the id itself),
 *                   varint (count * 16 + value mode), and for the decimal modes varint value bytes
 *   data            per series, in directory order: count x offset (u16 or u32, ms from the slice
 *                   start, arrival order kept), then its values by mode:
 *                   0 F64: count x f64;  1 CONST: one f64, every reading has it (bit for bit);
 *                   2 + d (d = 0..9) DECIMAL: every value is k / 10^d exactly for an integer
 *                   |k| < 2^30: zigzag varints of k minus the previous k (the first: k itself).
 *                   The encoder picks the smallest mode that round-trips every value bit for bit
 *                   (it checks k / 10^d === v and rejects -0), so every mode is lossless.
 *   footer          metrics x (u32 metric id, u32 record offset in the footer, u32 record bytes),
 *                   ids ascending; then per metric: u32 metric id, u32 windows W = 1 + panes,
 *                   W windows (the slice, then each pane): u32 count, u32 distinct devices,
 *                   u32 under, u32 over, u32 last offset, u32 centroids c, f64 sum, min, max, last,
 *                   divisions x u32 histogram, c x f64 means, c x u32 weights (the digest of the
 *                   window's values at DIGEST_COMPRESSION: panes compressed from the raw values,
 *                   the slice from the panes' digests); then W device sets: u8 kind, u32 count,
 *                   u32 payload bytes, payload. The slice's set holds global device ids, as
 *                   LIST (varint deltas, the first absolute) or BITMAP (u32 base, a multiple of 8,
 *                   then bit (id - base) LSB-first as storage/device-bits.ts); a pane's set holds
 *                   ranks in the slice's sorted set, as RANKS_PRESENT or RANKS_ABSENT (varint
 *                   deltas) or RANK_BITMAP (bit per rank): whichever is smallest (a pane every
 *                   device reported in costs 9 bytes).
 *
 * Measured (`npx tsc -p tsconfig.json && node dist/bench/block-codec-bench.js`, Node 20, a
 * shared 2-core dev container, medians; 1 metric, 6 readings per series, one per 10 s pane at a
 * random ms, values Math.round(Math.random() * 1000) / 10, one device per series with ids spread
 * over 8x their number):
 *   100k series: 27.6 B per series-minute, everything included (header + sparse index 0.19,
 *     directory 3.0, readings 23.3, footer 1.1 of which the device sets 1.0: the slice's 100k ids
 *     as a bitmap; the 6 pane sets, every device in every pane, 9 B each);
 *     encode 89-115 ns per reading (53-69 ms per block; the digests' sort is ~1/4 of it);
 *     findSeries + seriesWindow 0.47-0.65 us per lookup (minute or pane window; K = 16: -0.08 us
 *     for +0.56 B, K = 256: +0.35 us for -0.14 B); fleet() 8-11 us warm (65 us while the JIT
 *     warms up); readDevices 1.5-2 ms; open 3-8 us; verify() 23-30 ms; forEachSeries ~90 ns
 *     per series.
 *   arbitrary doubles (Math.random() * 100, the F64 mode): 63.3 B per series.
 *   a reading every 20 s (3 per series, panes partly empty): 16.7 B per series, pane device sets
 *     as rank bitmaps 0.75 B.
 *   1M series: 27.5 B per series, encode 99-102 ns per reading (0.6 s per block), lookup
 *     0.66-0.71 us, verify() 0.25 s.
 *
 * Contract:
 * - BlockEncoder.encode() takes readings sorted by series id (ascending; within a series any
 *   order), whole-ms offsets < sliceMs and finite values; a violation is a bug of the caller and
 *   throws. It returns a view of the encoder's scratch buffer, valid until the next encode
 *   (an lmdb-js async put outside a transaction reads its value when the batch commits: copy the
 *   view before the next encode). One encoder per thread; not reentrant (it
 *   shares protocol/digest.ts's module scratch).
 * - Windows are derived exactly: count, min, max, last, histogram, under, over equal those of the
 *   readings; sum is the sum in the block's order (rounding order aside); last is by event time,
 *   on equal offsets the greater value (as mergeAggregate), so the order of arrival does not
 *   matter. Digests: series windows carry their values as weight-1 centroids (compressed past
 *   CENTROIDS_MAX_DEFAULT as mergeAggregate does); the footer carries compressed digests.
 * - BlockReader checks the header, the section lengths and the footer's table when opened, and
 *   every length it follows while reading: a truncated or inconsistent block throws an Error
 *   naming what is wrong (a broken block is a bug or a broken disk: never answer from it).
 *   verify() also checks the crc and walks every section (a flipped bit inside a value is only
 *   seen by verify()): for the block store to call before writing a block, and after reading one
 *   where a read can afford ~0.3 us per series.
 * - Limits: sliceMs <= 2^32 - 1, at most BLOCK_PANES_MAX panes per slice (a pane mask per series
 *   is one u32), at most BLOCK_READINGS_MAX readings per block, series, device and metric ids u32.
 */

import { crc32 } from 'node:zlib';
import {
  CENTROIDS_MAX_DEFAULT, compressAggregate, compressRange, DIGEST_COMPRESSION, emptyAggregate, histogramBucket,
  mergeExactFields, sortValuesRadix, type WindowAggregateWire,
} from '../protocol';
import type { HistogramSpec } from './rollup-codec';

// Bound once: a call through the CommonJS re-export of '../protocol' runs its getter each time
// (2.4% of a device lookup in a profile).
const bucketOf = histogramBucket;
const mergeExact = mergeExactFields;
const centroidsMax = CENTROIDS_MAX_DEFAULT;
const compression = DIGEST_COMPRESSION;

export const BLOCK_FORMAT = 1;
export const BLOCK_HEADER_BYTES = 72;
/** a sparse index entry every K series (measured: K = 64 costs 0.19 B per series, see the bench) */
export const BLOCK_SPARSE_EVERY_DEFAULT = 64;
/** panes per slice: each series keeps the panes it has readings in as the bits of one u32 */
export const BLOCK_PANES_MAX = 32;
/** readings per block: count * 16 + mode of one series stays a u32 varint */
export const BLOCK_READINGS_MAX = 2 ** 28 - 1;
/** the window index of the whole slice, for fleetWindow / readDevices (panes are 0..panes-1) */
export const BLOCK_SLICE = -1;

const DECIMALS_MAX = 9;
const SCALED_MAX = 2 ** 30 - 1;
const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

const MODE_F64 = 0;
const MODE_CONST = 1;
const MODE_DECIMAL = 2;
const MODE_MAX = MODE_DECIMAL + DECIMALS_MAX;

const SET_LIST = 0;
const SET_BITMAP = 1;
const SET_RANKS_PRESENT = 2;
const SET_RANKS_ABSENT = 3;
const SET_RANK_BITMAP = 4;

const SPARSE_ENTRY_BYTES = 12;
const METRIC_ENTRY_BYTES = 12;
const METRIC_HEAD_BYTES = 8;
const WINDOW_FIXED_BYTES = 56;
const SET_HEAD_BYTES = 9;

// header fields
const H_FORMAT = 0;
const H_OFFSET_BYTES = 1;
const H_DIVISIONS = 2;
const H_SLICE_MS = 4;
const H_SLICE_START = 8;
const H_HIST_MIN = 16;
const H_HIST_MAX = 24;
const H_PANE_MS = 32;
const H_SERIES = 36;
const H_READINGS = 40;
const H_SPARSE_EVERY = 44;
const H_METRICS = 48;
const H_DIRECTORY_BYTES = 52;
const H_DATA_BYTES = 56;
const H_FOOTER_BYTES = 60;
const H_TOTAL_BYTES = 64;
const H_CRC = 68;

// window accumulator fields (encoder), then divisions + 2 bucket counts (under, over last)
const A_COUNT = 0;
const A_SUM = 1;
const A_MIN = 2;
const A_MAX = 3;
const A_LAST = 4;
const A_LAST_OFFSET = 5;
const A_BUCKETS = 6;

/**
 * The readings of one sealed slice of one shard, as the head hands them over
 * (workers/head-slices.ts's SealedSlice has this shape).
 */
export interface BlockColumns {
  /** epoch ms, a multiple of sliceMs */
  sliceStart: number;
  /** readings [0, n) of the columns below (the arrays may be longer) */
  n: number;
  /** shard-local series ids, ascending */
  series: Uint32Array;
  /** ms from sliceStart, < sliceMs */
  offset: Uint32Array;
  /** finite */
  value: Float64Array;
}

/** What a block needs besides the readings: the slice's shape and the series' device and metric. */
export interface BlockShape {
  sliceMs: number;
  /** divides sliceMs; sliceMs / paneMs <= BLOCK_PANES_MAX */
  paneMs: number;
  /** the global device id (u32) of a series present in the slice */
  seriesDevice(series: number): number;
  /** the metric id (u32) of a series present in the slice */
  seriesMetric(series: number): number;
}

/** The footer's figures of one metric: the fleet windows of the slice and of each pane. */
export interface FleetBlock {
  metricId: number;
  /** distinct devices with a reading of the metric in the slice */
  devices: number;
  slice: WindowAggregateWire;
  panes: WindowAggregateWire[];
}

function capacityFor(n: number): number {
  let size = 1024;
  while (size < n) size *= 2;
  return size;
}

function varintBytes(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** writes u32 v as a varint at b[at], returns the position after it */
function writeVarint(b: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    b[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[at++] = v;
  return at;
}

function zigzag(d: number): number {
  return ((d << 1) ^ (d >> 31)) >>> 0;
}

/** the scaled integer of v at 10^d when it gives v back bit for bit within range, else NaN */
function scaled(v: number, p: number): number {
  const k = Math.round(v * p);
  return k / p === v && k <= SCALED_MAX && k >= -SCALED_MAX && (v !== 0 || 1 / v > 0) ? k : NaN;
}

function isU32(x: number): boolean {
  return Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
}

// ---- encoding ------------------------------------------------------------------------------

export class BlockEncoder {
  private scratch = new ArrayBuffer(1 << 16);
  private u8 = new Uint8Array(this.scratch);
  private dv = new DataView(this.scratch);

  // per series present (capacity grows to the readings count)
  private sId = new Uint32Array(0);
  private sStart = new Uint32Array(0);
  private sCount = new Uint32Array(0);
  private sMode = new Uint8Array(0);
  private sValueBytes = new Uint32Array(0);
  private sMetric = new Uint32Array(0);
  private sDevice = new Uint32Array(0);
  private sMask = new Uint32Array(0);
  private modeValueBytes = 0;

  // per metric ordinal (in order of appearance)
  private readonly metricOrdinal = new Map<number, number>();
  private readonly metricIds: number[] = [];
  private acc = new Float64Array(0);
  private keyCount = new Uint32Array(0);
  private keyStart = new Uint32Array(0);
  private keyFill = new Uint32Array(0);
  private keyLen = new Uint32Array(0);
  private sliceAt = new Uint32Array(0);
  private sliceLen = new Uint32Array(0);
  private mSeriesStart = new Uint32Array(0);
  private mUnique = new Uint32Array(0);
  private setKind = new Uint8Array(0);
  private setCount = new Uint32Array(0);
  private setBytes = new Uint32Array(0);

  // digests: the values grouped by (metric, pane), compressed in place; slice digests
  private dMeans = new Float64Array(0);
  private dWeights = new Float64Array(0);
  private cMeans = new Float64Array(0);
  private cWeights = new Float64Array(0);

  // device sets: (device, pane mask) per series grouped by metric, sorted by device
  private devIds = new Uint32Array(0);
  private devMasks = new Uint32Array(0);
  private tmpIds = new Uint32Array(0);
  private tmpMasks = new Uint32Array(0);
  private readonly radixCounts = new Uint32Array(2049);

  /** bytes of the device sets in the last block (for measurements) */
  lastDeviceSetBytes = 0;

  constructor(
    private readonly spec: HistogramSpec,
    private readonly sparseEvery = BLOCK_SPARSE_EVERY_DEFAULT,
  ) {
    if (!(Number.isInteger(spec.divisions) && spec.divisions >= 1 && spec.divisions <= 0xffff)) {
      throw new RangeError(`block encoder: histogram divisions must be an integer in [1, 65535]: ${spec.divisions}`);
    }
    if (!(Number.isFinite(spec.min) && Number.isFinite(spec.max) && spec.min < spec.max)) {
      throw new RangeError(`block encoder: histogram range must be finite with min < max: [${spec.min}, ${spec.max}]`);
    }
    if (!(Number.isInteger(sparseEvery) && sparseEvery >= 1 && sparseEvery <= 65_536)) {
      throw new RangeError(`block encoder: sparseEvery must be an integer in [1, 65536]: ${sparseEvery}`);
    }
  }

  /** the block of a slice's readings: a view of the scratch buffer, valid until the next encode */
  encode(slice: BlockColumns, shape: BlockShape): Uint8Array {
    const { sliceStart, n } = slice;
    const { sliceMs, paneMs } = shape;
    checkSliceShape(sliceStart, sliceMs, paneMs);
    if (!(Number.isInteger(n) && n >= 0 && n <= BLOCK_READINGS_MAX)) throw new RangeError(`block encode: ${n} readings (at most ${BLOCK_READINGS_MAX})`);
    if (slice.series.length < n || slice.offset.length < n || slice.value.length < n) {
      throw new RangeError(`block encode: ${n} readings but columns of ${slice.series.length}, ${slice.offset.length}, ${slice.value.length}`);
    }
    const panes = sliceMs / paneMs;
    const offsetBytes = sliceMs <= 65_536 ? 2 : 4;
    this.ensureSeries(n);
    const { series: S, directoryBytes, dataBytes } = this.scanSeries(slice, shape, panes, offsetBytes);
    const M = this.metricIds.length;
    this.buildDigests(slice, S, panes, paneMs);
    const deviceSetBytes = this.buildDeviceSets(S, panes);
    this.lastDeviceSetBytes = deviceSetBytes;
    const W = panes + 1;
    let footerBytes = M * METRIC_ENTRY_BYTES + deviceSetBytes;
    for (let mo = 0; mo < M; mo++) footerBytes += this.metricWindowsBytes(mo, panes);
    const sparseCount = Math.ceil(S / this.sparseEvery);
    const total = BLOCK_HEADER_BYTES + sparseCount * SPARSE_ENTRY_BYTES + directoryBytes + dataBytes + footerBytes;
    if (total > 0xffffffff) throw new RangeError(`block encode: ${total} bytes, over the u32 lengths of the format`);
    this.room(total);
    const d = this.dv;
    d.setUint8(H_FORMAT, BLOCK_FORMAT);
    d.setUint8(H_OFFSET_BYTES, offsetBytes);
    d.setUint16(H_DIVISIONS, this.spec.divisions, true);
    d.setUint32(H_SLICE_MS, sliceMs, true);
    d.setFloat64(H_SLICE_START, sliceStart, true);
    d.setFloat64(H_HIST_MIN, this.spec.min, true);
    d.setFloat64(H_HIST_MAX, this.spec.max, true);
    d.setUint32(H_PANE_MS, paneMs, true);
    d.setUint32(H_SERIES, S, true);
    d.setUint32(H_READINGS, n, true);
    d.setUint32(H_SPARSE_EVERY, this.sparseEvery, true);
    d.setUint32(H_METRICS, M, true);
    d.setUint32(H_DIRECTORY_BYTES, directoryBytes, true);
    d.setUint32(H_DATA_BYTES, dataBytes, true);
    d.setUint32(H_FOOTER_BYTES, footerBytes, true);
    d.setUint32(H_TOTAL_BYTES, total, true);
    const dirAt = BLOCK_HEADER_BYTES + sparseCount * SPARSE_ENTRY_BYTES;
    const dataAt = dirAt + directoryBytes;
    const footerAt = dataAt + dataBytes;
    this.writeSeries(slice, S, offsetBytes, dirAt, dataAt);
    const end = this.writeFooter(footerAt, panes, W);
    if (end !== total) throw new Error(`BUG: block encode wrote ${end} bytes, planned ${total}`);
    const u8 = this.u8;
    d.setUint32(H_CRC, crc32(u8.subarray(H_CRC + 4, total), crc32(u8.subarray(0, H_CRC))), true);
    return new Uint8Array(this.scratch, 0, total);
  }

  // ---- pass 1: series runs, value modes, fleet exact fields ----

  private scanSeries(slice: BlockColumns, shape: BlockShape, panes: number, offsetBytes: number): { series: number; directoryBytes: number; dataBytes: number } {
    const { n, series, offset, value } = slice;
    const { sliceMs, paneMs } = shape;
    const { min: hMin, max: hMax, divisions } = this.spec;
    const stride = A_BUCKETS + divisions + 2;
    const W = panes + 1;
    this.metricOrdinal.clear();
    this.metricIds.length = 0;
    let S = 0;
    let directoryBytes = 0;
    let dataBytes = 0;
    let prevId = 0;
    let lastMetric = -1;
    let lastMo = 0;
    let i = 0;
    while (i < n) {
      const id = series[i]!;
      if (S > 0 && id <= prevId) throw new Error(`block encode: series ids must ascend: ${id} after ${prevId} at reading ${i}`);
      let j = i + 1;
      while (j < n && series[j] === id) j++;
      const metric = shape.seriesMetric(id);
      const device = shape.seriesDevice(id);
      if (!isU32(metric) || !isU32(device)) throw new RangeError(`block encode: series ${id} has metric ${metric}, device ${device}: not u32 ids`);
      let mo = metric === lastMetric ? lastMo : this.metricOrdinal.get(metric);
      if (mo === undefined) mo = this.addMetric(metric, panes, stride);
      lastMetric = metric;
      lastMo = mo;
      const acc = this.acc;
      const keyCount = this.keyCount;
      const sliceAcc = mo * W * stride;
      let mask = 0;
      for (let k = i; k < j; k++) {
        const off = offset[k]!;
        const v = value[k]!;
        if (off >= sliceMs) throw new RangeError(`block encode: reading ${k} of series ${id} at offset ${off}, not within the slice of ${sliceMs} ms`);
        if (!Number.isFinite(v)) throw new RangeError(`block encode: reading ${k} of series ${id} has a value that is not finite: ${v}`);
        const p = Math.floor(off / paneMs);
        mask |= 1 << p;
        const b = bucketOf(v, hMin, hMax, divisions);
        accAdd(acc, sliceAcc, off, v, b);
        accAdd(acc, sliceAcc + (1 + p) * stride, off, v, b);
        keyCount[mo * panes + p]++;
      }
      const count = j - i;
      const mode = this.chooseMode(value, i, j);
      const vb = this.modeValueBytes;
      this.sId[S] = id;
      this.sStart[S] = i;
      this.sCount[S] = count;
      this.sMode[S] = mode;
      this.sValueBytes[S] = vb;
      this.sMetric[S] = mo;
      this.sDevice[S] = device;
      this.sMask[S] = mask;
      directoryBytes += varintBytes(S === 0 ? id : id - prevId) + varintBytes(count * 16 + mode) + (mode >= MODE_DECIMAL ? varintBytes(vb) : 0);
      dataBytes += count * offsetBytes + vb;
      prevId = id;
      S++;
      i = j;
    }
    return { series: S, directoryBytes, dataBytes };
  }

  /** the smallest lossless value mode of [i, j); sets modeValueBytes */
  private chooseMode(value: Float64Array, i: number, j: number): number {
    const count = j - i;
    const first = value[i]!;
    let same = true;
    for (let k = i + 1; k < j && same; k++) {
      const v = value[k]!;
      same = v === first && (v !== 0 || 1 / v === 1 / first);
    }
    let mode = MODE_F64;
    let bytes = 8 * count;
    if (same && count > 1) {
      mode = MODE_CONST;
      bytes = 8;
    }
    // the fewest decimals that represent every value, with the size of their varints: one pass,
    // restarted when a value needs more decimals than those before it
    let d = 0;
    let vb = 0;
    for (let k = i, prev = 0; k < j; k++) {
      const s = scaled(value[k]!, POW10[d]!);
      if (Number.isNaN(s)) {
        const v = value[k]!;
        do d++;
        while (d <= DECIMALS_MAX && Number.isNaN(scaled(v, POW10[d]!)) && Math.abs(v * POW10[d]!) <= SCALED_MAX);
        if (d > DECIMALS_MAX || Number.isNaN(scaled(v, POW10[d]!))) {
          vb = Infinity;
          break;
        }
        k = i - 1;
        prev = 0;
        vb = 0;
        continue;
      }
      vb += varintBytes(zigzag(s - prev));
      prev = s;
    }
    if (vb < bytes) {
      mode = MODE_DECIMAL + d;
      bytes = vb;
    }
    this.modeValueBytes = bytes;
    return mode;
  }

  private addMetric(metric: number, panes: number, stride: number): number {
    const mo = this.metricIds.length;
    this.metricIds.push(metric);
    this.metricOrdinal.set(metric, mo);
    const W = panes + 1;
    const accNeed = (mo + 1) * W * stride;
    if (this.acc.length < accNeed) {
      const grown = new Float64Array(capacityFor(accNeed));
      grown.set(this.acc);
      this.acc = grown;
    }
    const at = mo * W * stride;
    this.acc.fill(0, at, at + W * stride);
    const keyNeed = (mo + 1) * panes;
    if (this.keyCount.length < keyNeed) {
      const grown = new Uint32Array(capacityFor(keyNeed));
      grown.set(this.keyCount);
      this.keyCount = grown;
    }
    this.keyCount.fill(0, mo * panes, keyNeed);
    return mo;
  }

  // ---- digests ----

  private buildDigests(slice: BlockColumns, S: number, panes: number, paneMs: number): void {
    const { n, offset, value } = slice;
    const M = this.metricIds.length;
    const keys = M * panes;
    if (this.keyStart.length < keys) {
      this.keyStart = new Uint32Array(capacityFor(keys));
      this.keyFill = new Uint32Array(capacityFor(keys));
      this.keyLen = new Uint32Array(capacityFor(keys));
    }
    if (this.sliceAt.length < M) {
      this.sliceAt = new Uint32Array(capacityFor(M));
      this.sliceLen = new Uint32Array(capacityFor(M));
    }
    if (this.dMeans.length < n) {
      this.dMeans = new Float64Array(capacityFor(n));
      this.dWeights = new Float64Array(capacityFor(n));
    }
    let total = 0;
    for (let key = 0; key < keys; key++) {
      this.keyStart[key] = total;
      this.keyFill[key] = total;
      total += this.keyCount[key]!;
    }
    const means = this.dMeans;
    const weights = this.dWeights;
    for (let s = 0; s < S; s++) {
      const base = this.sMetric[s]! * panes;
      const end = this.sStart[s]! + this.sCount[s]!;
      for (let k = this.sStart[s]!; k < end; k++) means[this.keyFill[base + Math.floor(offset[k]! / paneMs)]!++] = value[k]!;
    }
    weights.fill(1, 0, n);
    let sliceTotal = 0;
    for (let mo = 0; mo < M; mo++) {
      this.sliceAt[mo] = sliceTotal;
      for (let p = 0; p < panes; p++) {
        const key = mo * panes + p;
        const at = this.keyStart[key]!;
        const end = at + this.keyCount[key]!;
        this.sortValuesRadix(at, end);
        const len = compressRange(means, weights, at, end, end, true, compression);
        this.keyLen[key] = len;
        sliceTotal += len;
      }
    }
    if (this.cMeans.length < sliceTotal) {
      this.cMeans = new Float64Array(capacityFor(sliceTotal));
      this.cWeights = new Float64Array(capacityFor(sliceTotal));
    }
    for (let mo = 0; mo < M; mo++) {
      const at = this.sliceAt[mo]!;
      let o = at;
      let sortedEnd = at;
      for (let p = 0; p < panes; p++) {
        const key = mo * panes + p;
        const from = this.keyStart[key]!;
        const len = this.keyLen[key]!;
        this.cMeans.set(means.subarray(from, from + len), o);
        this.cWeights.set(weights.subarray(from, from + len), o);
        o += len;
        if (sortedEnd === at) sortedEnd = o;
      }
      this.sliceLen[mo] = compressRange(this.cMeans, this.cWeights, at, sortedEnd, o, false, compression);
    }
  }

  /**
   * Sorts dMeans[a, b) ascending. protocol/digest.ts's sortValues falls back to a comparison sort
   * when values repeat (its buckets crowd): with one-decimal readings (1001 distinct values in a
   * pane of 100k) that was 41% of encode (~60 ns per value). Here: an LSD radix sort (3 passes of
   * 11 bits, a pass skipped when one digit holds every value) on the order-preserving high 32 bits
   * of each f64, then each run of equal high words (values within ~1e-6 of each other, or equal)
   * sorted on its own. Measured at 100k values per pane: ~8 ns per value.
   */
  private sortValuesRadix(a: number, b: number): void {
    sortValuesRadix(this.dMeans, a, b);
  }

  // ---- device sets ----

  /** groups (device, pane mask) by metric, sorts and dedupes them, picks each set's encoding; returns their bytes */
  private buildDeviceSets(S: number, panes: number): number {
    const M = this.metricIds.length;
    const W = panes + 1;
    if (this.mSeriesStart.length < M + 1) {
      this.mSeriesStart = new Uint32Array(capacityFor(M + 1));
      this.mUnique = new Uint32Array(capacityFor(M + 1));
    }
    if (this.setKind.length < M * W) {
      this.setKind = new Uint8Array(capacityFor(M * W));
      this.setCount = new Uint32Array(capacityFor(M * W));
      this.setBytes = new Uint32Array(capacityFor(M * W));
    }
    if (this.devIds.length < S) {
      const cap = capacityFor(S);
      this.devIds = new Uint32Array(cap);
      this.devMasks = new Uint32Array(cap);
      this.tmpIds = new Uint32Array(cap);
      this.tmpMasks = new Uint32Array(cap);
    }
    const start = this.mSeriesStart;
    start.fill(0, 0, M + 1);
    for (let s = 0; s < S; s++) start[this.sMetric[s]! + 1]++;
    for (let mo = 0; mo < M; mo++) start[mo + 1] += start[mo]!;
    const fill = this.mUnique; // as fill cursors first
    fill.set(start.subarray(0, M));
    for (let s = 0; s < S; s++) {
      const at = fill[this.sMetric[s]!]++;
      this.devIds[at] = this.sDevice[s]!;
      this.devMasks[at] = this.sMask[s]!;
    }
    let bytes = 0;
    for (let mo = 0; mo < M; mo++) {
      const a = start[mo]!;
      const u = this.sortUnique(a, start[mo + 1]!);
      this.mUnique[mo] = u;
      bytes += this.chooseSliceSet(mo * W, a, u);
      for (let p = 0; p < panes; p++) bytes += this.choosePaneSet(mo * W + 1 + p, a, u, p);
    }
    return bytes;
  }

  /** sorts devIds[a, b) by id (masks along), merges equal ids (masks or-ed); returns the unique count */
  private sortUnique(a: number, b: number): number {
    const ids = this.devIds;
    const masks = this.devMasks;
    let sorted = true;
    for (let i = a + 1; i < b && sorted; i++) sorted = ids[i]! >= ids[i - 1]!;
    if (!sorted) this.radixSort(a, b);
    let u = a;
    for (let i = a; i < b; i++) {
      if (u > a && ids[u - 1] === ids[i]) masks[u - 1] |= masks[i]!;
      else {
        ids[u] = ids[i]!;
        masks[u++] = masks[i]!;
      }
    }
    return u - a;
  }

  /** LSD radix sort of devIds[a, b) (11 + 11 + 10 bits), masks moved along */
  private radixSort(a: number, b: number): void {
    const counts = this.radixCounts;
    let srcIds = this.devIds;
    let srcMasks = this.devMasks;
    let dstIds = this.tmpIds;
    let dstMasks = this.tmpMasks;
    for (let shift = 0; shift < 32; shift += 11) {
      counts.fill(0);
      for (let i = a; i < b; i++) counts[((srcIds[i]! >>> shift) & 2047) + 1]++;
      for (let k = 1; k <= 2048; k++) counts[k] += counts[k - 1]!;
      for (let i = a; i < b; i++) {
        const at = a + counts[(srcIds[i]! >>> shift) & 2047]!++;
        dstIds[at] = srcIds[i]!;
        dstMasks[at] = srcMasks[i]!;
      }
      [srcIds, dstIds] = [dstIds, srcIds];
      [srcMasks, dstMasks] = [dstMasks, srcMasks];
    }
    // three passes: the sorted run is in the scratch pair; copy it back
    this.devIds.set(srcIds.subarray(a, b), a);
    this.devMasks.set(srcMasks.subarray(a, b), a);
  }

  private chooseSliceSet(set: number, a: number, u: number): number {
    const ids = this.devIds;
    let listBytes = 0;
    for (let i = a; i < a + u; i++) listBytes += varintBytes(i === a ? ids[i]! : ids[i]! - ids[i - 1]!);
    const bitmapBytes = u === 0 ? Infinity : 4 + bitmapLength(ids[a]!, ids[a + u - 1]!);
    const bitmap = bitmapBytes < listBytes;
    this.setKind[set] = bitmap ? SET_BITMAP : SET_LIST;
    this.setCount[set] = u;
    this.setBytes[set] = bitmap ? bitmapBytes : listBytes;
    return SET_HEAD_BYTES + this.setBytes[set]!;
  }

  private choosePaneSet(set: number, a: number, u: number, p: number): number {
    const masks = this.devMasks;
    const bit = 1 << p;
    let present = 0;
    let presentBytes = 0;
    let absentBytes = 0;
    let lastPresent = -1;
    let lastAbsent = -1;
    for (let r = 0; r < u; r++) {
      if ((masks[a + r]! & bit) !== 0) {
        present++;
        presentBytes += varintBytes(lastPresent < 0 ? r : r - lastPresent);
        lastPresent = r;
      } else {
        absentBytes += varintBytes(lastAbsent < 0 ? r : r - lastAbsent);
        lastAbsent = r;
      }
    }
    const rankBitmapBytes = Math.ceil(u / 8);
    let kind = SET_RANKS_PRESENT;
    let bytes = presentBytes;
    if (absentBytes < bytes) {
      kind = SET_RANKS_ABSENT;
      bytes = absentBytes;
    }
    if (rankBitmapBytes < bytes) {
      kind = SET_RANK_BITMAP;
      bytes = rankBitmapBytes;
    }
    this.setKind[set] = kind;
    this.setCount[set] = present;
    this.setBytes[set] = bytes;
    return SET_HEAD_BYTES + bytes;
  }

  // ---- writing ----

  private writeSeries(slice: BlockColumns, S: number, offsetBytes: number, dirAt: number, dataAt: number): void {
    const { offset, value } = slice;
    const d = this.dv;
    const u8 = this.u8;
    const K = this.sparseEvery;
    let sp = BLOCK_HEADER_BYTES;
    let dp = dirAt;
    let vp = dataAt;
    let prevId = 0;
    for (let s = 0; s < S; s++) {
      const id = this.sId[s]!;
      const count = this.sCount[s]!;
      const mode = this.sMode[s]!;
      if (s % K === 0) {
        d.setUint32(sp, id, true);
        d.setUint32(sp + 4, dp - dirAt, true);
        d.setUint32(sp + 8, vp - dataAt, true);
        sp += SPARSE_ENTRY_BYTES;
      }
      dp = writeVarint(u8, dp, s === 0 ? id : id - prevId);
      dp = writeVarint(u8, dp, count * 16 + mode);
      if (mode >= MODE_DECIMAL) dp = writeVarint(u8, dp, this.sValueBytes[s]!);
      prevId = id;
      const i = this.sStart[s]!;
      const j = i + count;
      if (offsetBytes === 2) for (let k = i; k < j; k++, vp += 2) d.setUint16(vp, offset[k]!, true);
      else for (let k = i; k < j; k++, vp += 4) d.setUint32(vp, offset[k]!, true);
      if (mode === MODE_F64) for (let k = i; k < j; k++, vp += 8) d.setFloat64(vp, value[k]!, true);
      else if (mode === MODE_CONST) {
        d.setFloat64(vp, value[i]!, true);
        vp += 8;
      } else {
        const p = POW10[mode - MODE_DECIMAL]!;
        let prev = 0;
        for (let k = i; k < j; k++) {
          const sc = Math.round(value[k]! * p);
          vp = writeVarint(u8, vp, zigzag(sc - prev));
          prev = sc;
        }
      }
    }
  }

  private metricWindowsBytes(mo: number, panes: number): number {
    const windowFixed = WINDOW_FIXED_BYTES + 4 * this.spec.divisions;
    let bytes = METRIC_HEAD_BYTES + (panes + 1) * windowFixed + 12 * this.sliceLen[mo]!;
    for (let p = 0; p < panes; p++) bytes += 12 * this.keyLen[mo * panes + p]!;
    return bytes;
  }

  private writeFooter(footerAt: number, panes: number, W: number): number {
    const d = this.dv;
    const M = this.metricIds.length;
    const order = Array.from({ length: M }, (_, i) => i).sort((x, y) => this.metricIds[x]! - this.metricIds[y]!);
    const stride = A_BUCKETS + this.spec.divisions + 2;
    let at = footerAt + M * METRIC_ENTRY_BYTES;
    for (let r = 0; r < M; r++) {
      const mo = order[r]!;
      const recordAt = at;
      d.setUint32(at, this.metricIds[mo]!, true);
      d.setUint32(at + 4, W, true);
      at += METRIC_HEAD_BYTES;
      at = this.writeWindow(at, mo * W * stride, this.setCount[mo * W]!, this.cMeans, this.cWeights, this.sliceAt[mo]!, this.sliceLen[mo]!);
      for (let p = 0; p < panes; p++) {
        const key = mo * panes + p;
        at = this.writeWindow(at, (mo * W + 1 + p) * stride, this.setCount[mo * W + 1 + p]!, this.dMeans, this.dWeights, this.keyStart[key]!, this.keyLen[key]!);
      }
      const a = this.mSeriesStart[mo]!;
      const u = this.mUnique[mo]!;
      at = this.writeSliceSet(at, mo * W, a, u);
      for (let p = 0; p < panes; p++) at = this.writePaneSet(at, mo * W + 1 + p, a, u, p);
      const entry = footerAt + r * METRIC_ENTRY_BYTES;
      d.setUint32(entry, this.metricIds[mo]!, true);
      d.setUint32(entry + 4, recordAt - footerAt, true);
      d.setUint32(entry + 8, at - recordAt, true);
    }
    return at;
  }

  private writeWindow(at: number, a: number, devices: number, means: Float64Array, weights: Float64Array, from: number, c: number): number {
    const d = this.dv;
    const acc = this.acc;
    const div = this.spec.divisions;
    const count = acc[a + A_COUNT]!;
    const empty = count === 0;
    d.setUint32(at, count, true);
    d.setUint32(at + 4, devices, true);
    d.setUint32(at + 8, acc[a + A_BUCKETS + div]!, true);
    d.setUint32(at + 12, acc[a + A_BUCKETS + div + 1]!, true);
    d.setUint32(at + 16, empty ? 0 : acc[a + A_LAST_OFFSET]!, true);
    d.setUint32(at + 20, c, true);
    d.setFloat64(at + 24, acc[a + A_SUM]!, true);
    d.setFloat64(at + 32, empty ? 0 : acc[a + A_MIN]!, true);
    d.setFloat64(at + 40, empty ? 0 : acc[a + A_MAX]!, true);
    d.setFloat64(at + 48, empty ? 0 : acc[a + A_LAST]!, true);
    at += WINDOW_FIXED_BYTES;
    for (let k = 0; k < div; k++, at += 4) d.setUint32(at, acc[a + A_BUCKETS + k]!, true);
    let weight = 0;
    for (let k = 0; k < c; k++, at += 8) d.setFloat64(at, means[from + k]!, true);
    for (let k = 0; k < c; k++, at += 4) {
      const w = weights[from + k]!;
      if (!isU32(w)) throw new Error(`BUG: block encode: a digest weight ${w} is not a u32`);
      weight += w;
      d.setUint32(at, w, true);
    }
    if (weight !== count) throw new Error(`BUG: block encode: digest weight ${weight} for a window of ${count} readings`);
    return at;
  }

  private writeSetHead(at: number, set: number): number {
    this.dv.setUint8(at, this.setKind[set]!);
    this.dv.setUint32(at + 1, this.setCount[set]!, true);
    this.dv.setUint32(at + 5, this.setBytes[set]!, true);
    return at + SET_HEAD_BYTES;
  }

  private writeSliceSet(at: number, set: number, a: number, u: number): number {
    const ids = this.devIds;
    const u8 = this.u8;
    at = this.writeSetHead(at, set);
    const end = at + this.setBytes[set]!;
    if (this.setKind[set] === SET_LIST) {
      for (let i = a; i < a + u; i++) at = writeVarint(u8, at, i === a ? ids[i]! : ids[i]! - ids[i - 1]!);
    } else {
      const base = ids[a]! - (ids[a]! & 7);
      this.dv.setUint32(at, base, true);
      at += 4;
      u8.fill(0, at, end);
      for (let i = a; i < a + u; i++) {
        const bit = ids[i]! - base;
        u8[at + Math.floor(bit / 8)] |= 1 << (bit & 7);
      }
      at = end;
    }
    if (at !== end) throw new Error(`BUG: block encode: a device set ends at ${at}, planned ${end}`);
    return at;
  }

  private writePaneSet(at: number, set: number, a: number, u: number, p: number): number {
    const masks = this.devMasks;
    const u8 = this.u8;
    const bit = 1 << p;
    const kind = this.setKind[set]!;
    at = this.writeSetHead(at, set);
    const end = at + this.setBytes[set]!;
    if (kind === SET_RANK_BITMAP) {
      u8.fill(0, at, end);
      for (let r = 0; r < u; r++) if ((masks[a + r]! & bit) !== 0) u8[at + (r >>> 3)] |= 1 << (r & 7);
      at = end;
    } else {
      const want = kind === SET_RANKS_PRESENT;
      let last = -1;
      for (let r = 0; r < u; r++) {
        if (((masks[a + r]! & bit) !== 0) !== want) continue;
        at = writeVarint(u8, at, last < 0 ? r : r - last);
        last = r;
      }
    }
    if (at !== end) throw new Error(`BUG: block encode: pane device set ends at ${at}, planned ${end}`);
    return at;
  }

  // ---- scratch ----

  private ensureSeries(n: number): void {
    if (this.sId.length < n) {
      const cap = capacityFor(n);
      this.sId = new Uint32Array(cap);
      this.sStart = new Uint32Array(cap);
      this.sCount = new Uint32Array(cap);
      this.sMode = new Uint8Array(cap);
      this.sValueBytes = new Uint32Array(cap);
      this.sMetric = new Uint32Array(cap);
      this.sDevice = new Uint32Array(cap);
      this.sMask = new Uint32Array(cap);
    }
  }

  private room(bytes: number): void {
    if (bytes <= this.scratch.byteLength) return;
    let size = this.scratch.byteLength;
    while (size < bytes) size *= 2;
    this.scratch = new ArrayBuffer(size);
    this.u8 = new Uint8Array(this.scratch);
    this.dv = new DataView(this.scratch);
  }
}

function accAdd(acc: Float64Array, at: number, off: number, v: number, bucket: number): void {
  if (acc[at + A_COUNT] === 0) {
    acc[at + A_MIN] = v;
    acc[at + A_MAX] = v;
    acc[at + A_LAST] = v;
    acc[at + A_LAST_OFFSET] = off;
  } else {
    if (v < acc[at + A_MIN]!) acc[at + A_MIN] = v;
    if (v > acc[at + A_MAX]!) acc[at + A_MAX] = v;
    const lastOff = acc[at + A_LAST_OFFSET]!;
    if (off > lastOff || (off === lastOff && v > acc[at + A_LAST]!)) {
      acc[at + A_LAST] = v;
      acc[at + A_LAST_OFFSET] = off;
    }
  }
  acc[at + A_COUNT]++;
  acc[at + A_SUM] += v;
  acc[at + A_BUCKETS + bucket]++;
}

/** bytes of a bitmap from min's byte-aligned base to max */
function bitmapLength(min: number, max: number): number {
  return Math.floor((max - (min - (min & 7))) / 8) + 1;
}

function checkSliceShape(sliceStart: number, sliceMs: number, paneMs: number): void {
  if (!(Number.isInteger(sliceMs) && sliceMs >= 1 && sliceMs <= 0xffffffff)) throw new RangeError(`block: sliceMs must be an integer in [1, 2^32 - 1]: ${sliceMs}`);
  if (!(Number.isInteger(paneMs) && paneMs >= 1 && sliceMs % paneMs === 0)) throw new RangeError(`block: paneMs ${paneMs} must be a positive integer dividing sliceMs ${sliceMs}`);
  if (sliceMs / paneMs > BLOCK_PANES_MAX) throw new RangeError(`block: ${sliceMs / paneMs} panes per slice, at most ${BLOCK_PANES_MAX}`);
  if (!(Number.isSafeInteger(sliceStart) && sliceStart % sliceMs === 0)) throw new RangeError(`block: sliceStart ${sliceStart} must be a safe integer multiple of sliceMs ${sliceMs}`);
}

// ---- reading -------------------------------------------------------------------------------

export class BlockReader {
  readonly sliceStart: number;
  readonly sliceMs: number;
  readonly paneMs: number;
  readonly panes: number;
  readonly seriesCount: number;
  readonly readingCount: number;
  readonly metricCount: number;
  readonly histogram: HistogramSpec;
  readonly sparseBytes: number;
  readonly directoryBytes: number;
  readonly dataBytes: number;
  readonly footerBytes: number;

  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly offsetBytes: number;
  private readonly sparseEvery: number;
  private readonly sparseCount: number;
  private readonly dirAt: number;
  private readonly dirEnd: number;
  private readonly dataAt: number;
  private readonly dataEnd: number;
  private readonly footerAt: number;
  private readonly footerEnd: number;

  /** the directory cursor of varint reads */
  private pos = 0;
  // the series last found
  private curId = -1;
  private curOrdinal = -1;
  private curCount = 0;
  private curMode = 0;
  private curDataAt = 0;
  private curValueBytes = 0;
  /** where the values of the record readRecord() decoded last ended */
  private valuesEnd = 0;
  /** where the record forEachSeries() visits ends */
  private walkRecordEnd = 0;
  // scratch of forEachSeries and of seriesWindow (a visit may call seriesWindow)
  private walkOffsets = new Float64Array(64);
  private walkValues = new Float64Array(64);
  private winOffsets = new Float64Array(64);
  private winValues = new Float64Array(64);

  constructor(bytes: Uint8Array) {
    if (bytes.byteLength < BLOCK_HEADER_BYTES) throw new Error(`block of ${bytes.byteLength} bytes: shorter than its ${BLOCK_HEADER_BYTES}-byte header`);
    this.u8 = bytes;
    const d = (this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const format = d.getUint8(H_FORMAT);
    if (format !== BLOCK_FORMAT) throw new Error(`block format ${format}, this engine reads ${BLOCK_FORMAT}`);
    const total = d.getUint32(H_TOTAL_BYTES, true);
    if (total !== bytes.byteLength) throw new Error(`block truncated or padded: its header says ${total} bytes, ${bytes.byteLength} given`);
    this.offsetBytes = d.getUint8(H_OFFSET_BYTES);
    this.sliceMs = d.getUint32(H_SLICE_MS, true);
    this.sliceStart = d.getFloat64(H_SLICE_START, true);
    this.paneMs = d.getUint32(H_PANE_MS, true);
    try {
      checkSliceShape(this.sliceStart, this.sliceMs, this.paneMs);
    } catch (e) {
      throw new Error(`block header corrupt: ${(e as Error).message}`);
    }
    if (this.offsetBytes !== (this.sliceMs <= 65_536 ? 2 : 4)) throw new Error(`block header corrupt: ${this.offsetBytes}-byte offsets for a slice of ${this.sliceMs} ms`);
    this.panes = this.sliceMs / this.paneMs;
    this.histogram = { divisions: d.getUint16(H_DIVISIONS, true), min: d.getFloat64(H_HIST_MIN, true), max: d.getFloat64(H_HIST_MAX, true) };
    const h = this.histogram;
    if (!(h.divisions >= 1 && Number.isFinite(h.min) && Number.isFinite(h.max) && h.min < h.max)) {
      throw new Error(`block header corrupt: histogram of ${h.divisions} divisions over [${h.min}, ${h.max}]`);
    }
    this.seriesCount = d.getUint32(H_SERIES, true);
    this.readingCount = d.getUint32(H_READINGS, true);
    this.sparseEvery = d.getUint32(H_SPARSE_EVERY, true);
    this.metricCount = d.getUint32(H_METRICS, true);
    this.directoryBytes = d.getUint32(H_DIRECTORY_BYTES, true);
    this.dataBytes = d.getUint32(H_DATA_BYTES, true);
    this.footerBytes = d.getUint32(H_FOOTER_BYTES, true);
    if (this.sparseEvery < 1 || this.seriesCount > this.readingCount || this.readingCount > BLOCK_READINGS_MAX) {
      throw new Error(`block header corrupt: ${this.seriesCount} series, ${this.readingCount} readings, a sparse entry every ${this.sparseEvery}`);
    }
    this.sparseCount = Math.ceil(this.seriesCount / this.sparseEvery);
    this.sparseBytes = this.sparseCount * SPARSE_ENTRY_BYTES;
    this.dirAt = BLOCK_HEADER_BYTES + this.sparseBytes;
    this.dirEnd = this.dirAt + this.directoryBytes;
    this.dataAt = this.dirEnd;
    this.dataEnd = this.dataAt + this.dataBytes;
    this.footerAt = this.dataEnd;
    this.footerEnd = this.footerAt + this.footerBytes;
    if (this.footerEnd !== total) {
      throw new Error(`block corrupt: sections of ${this.sparseBytes} + ${this.directoryBytes} + ${this.dataBytes} + ${this.footerBytes} bytes after the header do not make its ${total} bytes`);
    }
    if (this.metricCount * METRIC_ENTRY_BYTES > this.footerBytes) throw new Error(`block corrupt: ${this.metricCount} metrics in a footer of ${this.footerBytes} bytes`);
    let prev = -1;
    for (let m = 0; m < this.metricCount; m++) {
      const e = this.footerAt + m * METRIC_ENTRY_BYTES;
      const id = d.getUint32(e, true);
      const at = d.getUint32(e + 4, true);
      const len = d.getUint32(e + 8, true);
      if (id <= prev || at < this.metricCount * METRIC_ENTRY_BYTES || at + len > this.footerBytes || len < METRIC_HEAD_BYTES) {
        throw new Error(`block corrupt: footer entry ${m} (metric ${id}, ${len} bytes at ${at}) out of order or outside the ${this.footerBytes}-byte footer`);
      }
      prev = id;
    }
  }

  // ---- series ----

  /** the series' ordinal in the block (0..seriesCount-1), or -1 when it has no reading here */
  findSeries(seriesId: number): number {
    if (seriesId === this.curId) return this.curOrdinal;
    if (this.sparseCount === 0 || !(seriesId >= this.sparseId(0))) return -1;
    let lo = 0;
    let hi = this.sparseCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.sparseId(mid) <= seriesId) lo = mid;
      else hi = mid - 1;
    }
    const e = BLOCK_HEADER_BYTES + lo * SPARSE_ENTRY_BYTES;
    let id = this.dv.getUint32(e, true);
    let p = this.dirAt + this.dv.getUint32(e + 4, true);
    let dataAt = this.dataAt + this.dv.getUint32(e + 8, true);
    const last = Math.min(this.seriesCount, (lo + 1) * this.sparseEvery) - 1;
    const b = this.u8;
    const dirEnd = this.dirEnd;
    const ob = this.offsetBytes;
    // varints are read inline when one byte (the common case), through varint() otherwise;
    // every read is bounded by the directory's end
    let x = p < dirEnd ? b[p]! : 0x80;
    if (x < 0x80) p++;
    else {
      this.varint(p, dirEnd); // the first entry's delta: its id is the sparse entry's
      p = this.next;
    }
    for (let o = lo * this.sparseEvery; ; o++) {
      x = p < dirEnd ? b[p]! : 0x80;
      let cm = x;
      if (x < 0x80) p++;
      else {
        cm = this.varint(p, dirEnd);
        p = this.next;
      }
      const count = cm >>> 4;
      const mode = cm & 15;
      let vb: number;
      if (mode >= MODE_DECIMAL) {
        x = p < dirEnd ? b[p]! : 0x80;
        vb = x;
        if (x < 0x80) p++;
        else {
          vb = this.varint(p, dirEnd);
          p = this.next;
        }
      } else vb = mode === MODE_CONST ? 8 : 8 * count;
      if (id === seriesId) {
        if (mode > MODE_MAX || count === 0) throw new Error(`block corrupt: series ${id} has ${count} readings in mode ${mode}`);
        const recordEnd = dataAt + count * ob + vb;
        if (recordEnd > this.dataEnd) throw new Error(`block corrupt: series ${id}'s readings end at ${recordEnd}, past the data section's ${this.dataEnd}`);
        this.curId = id;
        this.curOrdinal = o;
        this.curCount = count;
        this.curMode = mode;
        this.curDataAt = dataAt;
        this.curValueBytes = vb;
        return o;
      }
      if (id > seriesId || o >= last) return -1;
      dataAt += count * ob + vb;
      x = p < dirEnd ? b[p]! : 0x80;
      if (x < 0x80) {
        id += x;
        p++;
      } else {
        id += this.varint(p, dirEnd);
        p = this.next;
      }
    }
  }

  /** the number of readings of a series (0 when it has none here) */
  seriesReadings(seriesId: number): number {
    return this.findSeries(seriesId) < 0 ? 0 : this.curCount;
  }

  /**
   * Copies a series' readings (offsets in ms from the slice start, values; arrival order) into the
   * arrays and returns their number (0 when absent). Throws when the arrays are too short.
   */
  readSeries(seriesId: number, outOffsets: Float64Array | Uint32Array, outValues: Float64Array): number {
    if (this.findSeries(seriesId) < 0) return 0;
    const count = this.curCount;
    if (outOffsets.length < count || outValues.length < count) throw new RangeError(`readSeries: series ${seriesId} has ${count} readings, arrays of ${outOffsets.length} and ${outValues.length}`);
    this.readRecord(this.curDataAt, count, this.curMode, this.curValueBytes, outOffsets, outValues);
    return count;
  }

  /**
   * Merges the series' readings with offset in [from, to) (ms from the slice start) into `into`
   * (start and end are left to the caller); returns how many there were. Exact fields as
   * mergeExactFields, the histogram by histogramBucket, each value a weight-1 centroid.
   */
  seriesWindow(seriesId: number, from: number, to: number, into: WindowAggregateWire): number {
    if (this.findSeries(seriesId) < 0) return 0;
    const { divisions, min: hMin, max: hMax } = this.histogram;
    if (into.histogram.length !== divisions) throw new RangeError(`seriesWindow: an aggregate of ${into.histogram.length} divisions, the block has ${divisions}`);
    const count = this.curCount;
    if (this.winValues.length < count) {
      this.winOffsets = new Float64Array(capacityFor(count));
      this.winValues = new Float64Array(capacityFor(count));
    }
    const offsets = this.winOffsets;
    const values = this.winValues;
    this.readRecord(this.curDataAt, count, this.curMode, this.curValueBytes, offsets, values);
    const hist = into.histogram;
    let n = 0;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    let last = 0;
    let lastOff = -1;
    for (let k = 0; k < count; k++) {
      const off = offsets[k]!;
      if (off < from || off >= to) continue;
      const v = values[k]!;
      n++;
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
      if (off > lastOff || (off === lastOff && v > last)) {
        last = v;
        lastOff = off;
      }
      const b = bucketOf(v, hMin, hMax, divisions);
      if (b < divisions) hist[b]++;
      else if (b === divisions) into.under++;
      else into.over++;
      into.means.push(v);
      into.weights.push(1);
      if (into.means.length > centroidsMax) compressAggregate(into);
    }
    mergeExact(into, n, sum, min, max, last, this.sliceStart + lastOff);
    return n;
  }

  /**
   * Visits every series in id order with its readings (arrival order): the walk that builds
   * coarser levels. The arrays are the reader's scratch, valid during the call, holding `count`
   * readings. Checks the sparse index and every record's bounds on the way.
   */
  forEachSeries(visit: (seriesId: number, count: number, offsets: Float64Array, values: Float64Array) => void): void {
    this.pos = this.dirAt;
    let id = 0;
    let dataAt = this.dataAt;
    for (let s = 0; s < this.seriesCount; s++) {
      const entryAt = this.pos;
      id += this.dirVarint();
      if (s % this.sparseEvery === 0) this.checkSparse(s / this.sparseEvery, id, entryAt, dataAt);
      const cm = this.dirVarint();
      const count = cm >>> 4;
      const mode = cm & 15;
      const vb = mode >= MODE_DECIMAL ? this.dirVarint() : mode === MODE_CONST ? 8 : 8 * count;
      if (mode > MODE_MAX || count === 0 || dataAt + count * this.offsetBytes + vb > this.dataEnd) {
        throw new Error(`block corrupt: series ${id} (${count} readings, mode ${mode}) does not fit the data section`);
      }
      if (this.walkValues.length < count) {
        this.walkOffsets = new Float64Array(capacityFor(count));
        this.walkValues = new Float64Array(capacityFor(count));
      }
      const pos = this.pos;
      this.readRecord(dataAt, count, mode, vb, this.walkOffsets, this.walkValues);
      dataAt += count * this.offsetBytes + vb;
      this.walkRecordEnd = dataAt;
      visit(id, count, this.walkOffsets, this.walkValues);
      this.pos = pos;
    }
  }

  private checkSparse(g: number, id: number, dirAt: number, dataAt: number): void {
    const e = BLOCK_HEADER_BYTES + g * SPARSE_ENTRY_BYTES;
    const d = this.dv;
    if (d.getUint32(e, true) !== id || this.dirAt + d.getUint32(e + 4, true) !== dirAt || this.dataAt + d.getUint32(e + 8, true) !== dataAt) {
      throw new Error(`block corrupt: sparse entry ${g} (series ${d.getUint32(e, true)}) disagrees with the directory (series ${id} at ${dirAt}, data at ${dataAt})`);
    }
  }

  /** decodes one series' record (bounds checked by the caller); valuesEnd: where its values ended */
  private readRecord(at: number, count: number, mode: number, vb: number, outOffsets: Float64Array | Uint32Array, outValues: Float64Array): void {
    const d = this.dv;
    if (this.offsetBytes === 2) for (let k = 0; k < count; k++, at += 2) outOffsets[k] = d.getUint16(at, true);
    else for (let k = 0; k < count; k++, at += 4) outOffsets[k] = d.getUint32(at, true);
    if (mode === MODE_F64) {
      for (let k = 0; k < count; k++, at += 8) outValues[k] = d.getFloat64(at, true);
    } else if (mode === MODE_CONST) {
      outValues.fill(d.getFloat64(at, true), 0, count);
      at += 8;
    } else {
      const scale = POW10[mode - MODE_DECIMAL]!;
      const b = this.u8;
      const end = at + vb;
      let k = 0;
      for (let i = 0; i < count; i++) {
        let z = at < end ? b[at]! : 0x80;
        if (z < 0x80) at++;
        else {
          z = this.varint(at, end);
          at = this.next;
        }
        k += (z >>> 1) ^ -(z & 1);
        outValues[i] = k / scale;
      }
    }
    this.valuesEnd = at;
  }

  /** the next directory varint */
  private dirVarint(): number {
    const v = this.varint(this.pos, this.dirEnd);
    this.pos = this.next;
    return v;
  }

  /** the position after the last varint read */
  private next = 0;

  /** the u32 varint at `at` (next: the position after it); throws at `end` or past 5 bytes */
  private varint(at: number, end: number): number {
    const b = this.u8;
    if (at >= end) throw new Error(`block corrupt: a varint at ${at} runs past its section's end ${end}`);
    let p = at;
    let x = b[p++]!;
    if (x < 0x80) {
      this.next = p;
      return x;
    }
    let v = x & 0x7f;
    let mul = 128;
    for (let i = 1; ; i++) {
      if (p >= end || i >= 5) throw new Error(`block corrupt: a varint at ${at} runs past its section's end ${end} or 5 bytes`);
      x = b[p++]!;
      v += (x & 0x7f) * mul;
      if (x < 0x80) break;
      mul *= 128;
    }
    if (v > 0xffffffff) throw new Error(`block corrupt: a varint at ${at} is over 2^32`);
    this.next = p;
    return v;
  }

  private sparseId(i: number): number {
    return this.dv.getUint32(BLOCK_HEADER_BYTES + i * SPARSE_ENTRY_BYTES, true);
  }

  // ---- fleet (the footer) ----

  /** the metric ids with readings in the block, ascending */
  metrics(): number[] {
    const out: number[] = [];
    for (let m = 0; m < this.metricCount; m++) out.push(this.dv.getUint32(this.footerAt + m * METRIC_ENTRY_BYTES, true));
    return out;
  }

  /** the footer's fleet windows of a metric (start/end in epoch ms, devices set), null when absent */
  fleet(metricId: number): FleetBlock | null {
    const rec = this.metricRecord(metricId);
    if (rec < 0) return null;
    const slice = this.windowAggregate(rec, BLOCK_SLICE);
    const panes: WindowAggregateWire[] = [];
    for (let p = 0; p < this.panes; p++) panes.push(this.windowAggregate(rec, p));
    return { metricId, devices: slice.devices ?? 0, slice, panes };
  }

  /** merges one footer window (BLOCK_SLICE or a pane) into `into` as mergeAggregate; false when the metric is absent */
  fleetWindow(metricId: number, window: number, into: WindowAggregateWire): boolean {
    const rec = this.metricRecord(metricId);
    if (rec < 0) return false;
    const divisions = this.histogram.divisions;
    if (into.histogram.length !== divisions) throw new RangeError(`fleetWindow: an aggregate of ${into.histogram.length} divisions, the block has ${divisions}`);
    const at = this.windowAt(rec, this.recEnd, window);
    const d = this.dv;
    const count = d.getUint32(at, true);
    into.devices = (into.devices ?? 0) + d.getUint32(at + 4, true);
    if (count === 0) return true;
    mergeExact(into, count, d.getFloat64(at + 24, true), d.getFloat64(at + 32, true), d.getFloat64(at + 40, true),
      d.getFloat64(at + 48, true), this.sliceStart + d.getUint32(at + 16, true));
    into.under += d.getUint32(at + 8, true);
    into.over += d.getUint32(at + 12, true);
    let p = at + WINDOW_FIXED_BYTES;
    for (let k = 0; k < divisions; k++, p += 4) into.histogram[k] += d.getUint32(p, true);
    const c = d.getUint32(at + 20, true);
    for (let k = 0; k < c; k++) {
      into.means.push(d.getFloat64(p + 8 * k, true));
      into.weights.push(d.getUint32(p + 8 * c + 4 * k, true));
    }
    if (into.means.length > centroidsMax) compressAggregate(into);
    return true;
  }

  /** the distinct devices of a metric in a window (BLOCK_SLICE or a pane), sorted; empty when absent */
  readDevices(metricId: number, window: number): Uint32Array {
    const rec = this.metricRecord(metricId);
    if (rec < 0) return new Uint32Array(0);
    this.checkWindow(window);
    const end = this.recEnd;
    const ids = this.decodeSliceSet(this.setAt(rec, end, BLOCK_SLICE));
    if (window === BLOCK_SLICE) return ids;
    return this.filterPaneSet(this.setAt(rec, end, window), ids);
  }

  /** ors a window's devices into a bitmap of storage/device-bits.ts (bit id); returns it, grown when needed */
  orDevices(metricId: number, window: number, bits: Uint8Array): Uint8Array {
    const ids = this.readDevices(metricId, window);
    if (ids.length === 0) return bits;
    let out = bits;
    const bytes = Math.floor(ids[ids.length - 1]! / 8) + 1;
    if (bytes > out.length) {
      out = new Uint8Array(Math.max(bytes, out.length * 2));
      out.set(bits);
    }
    for (let i = 0; i < ids.length; i++) out[Math.floor(ids[i]! / 8)] |= 1 << (ids[i]! & 7);
    return out;
  }

  private checkWindow(window: number): void {
    if (!(window === BLOCK_SLICE || (Number.isInteger(window) && window >= 0 && window < this.panes))) {
      throw new RangeError(`block: window ${window} is neither BLOCK_SLICE nor a pane in [0, ${this.panes})`);
    }
  }

  /** the end of the record metricRecord() found last */
  private recEnd = 0;

  /** the absolute position of a metric's record (its end in recEnd), -1 when absent */
  private metricRecord(metricId: number): number {
    let lo = 0;
    let hi = this.metricCount - 1;
    const d = this.dv;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.footerAt + mid * METRIC_ENTRY_BYTES;
      const id = d.getUint32(e, true);
      if (id === metricId) {
        const at = this.footerAt + d.getUint32(e + 4, true);
        this.recEnd = at + d.getUint32(e + 8, true);
        const windows = d.getUint32(at + 4, true);
        if (d.getUint32(at, true) !== metricId || windows !== this.panes + 1) {
          throw new Error(`block corrupt: the footer record of metric ${metricId} names metric ${d.getUint32(at, true)} with ${windows} windows`);
        }
        return at;
      }
      if (id < metricId) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private windowBytesAt(at: number): number {
    return WINDOW_FIXED_BYTES + 4 * this.histogram.divisions + 12 * this.dv.getUint32(at + 20, true);
  }

  /** the position of a window record (BLOCK_SLICE: 0, pane p: 1 + p) within a metric record */
  private windowAt(rec: number, end: number, window: number): number {
    this.checkWindow(window);
    let at = rec + METRIC_HEAD_BYTES;
    for (let w = -1; ; w++) {
      if (at + WINDOW_FIXED_BYTES > end || at + this.windowBytesAt(at) > end) throw new Error(`block corrupt: window ${w} of the record at ${rec} runs past its end ${end}`);
      if (w === window) return at;
      at += this.windowBytesAt(at);
    }
  }

  private setAt(rec: number, end: number, window: number): number {
    const last = this.windowAt(rec, end, this.panes - 1);
    let at = last + this.windowBytesAt(last);
    for (let w = -1; ; w++) {
      if (at + SET_HEAD_BYTES > end || at + SET_HEAD_BYTES + this.dv.getUint32(at + 5, true) > end) {
        throw new Error(`block corrupt: device set ${w} of the record at ${rec} runs past its end ${end}`);
      }
      if (w === window) return at;
      at += SET_HEAD_BYTES + this.dv.getUint32(at + 5, true);
    }
  }

  private windowAggregate(rec: number, window: number): WindowAggregateWire {
    const start = window === BLOCK_SLICE ? this.sliceStart : this.sliceStart + window * this.paneMs;
    const end = window === BLOCK_SLICE ? this.sliceStart + this.sliceMs : start + this.paneMs;
    const agg = emptyAggregate(start, end, this.histogram.divisions);
    this.fleetWindow(this.dv.getUint32(rec, true), window, agg);
    return agg;
  }

  private decodeSliceSet(at: number): Uint32Array {
    const d = this.dv;
    const kind = d.getUint8(at);
    const count = d.getUint32(at + 1, true);
    const bytes = d.getUint32(at + 5, true);
    const p = at + SET_HEAD_BYTES;
    const end = p + bytes;
    if (count > this.seriesCount) throw new Error(`block corrupt: a device set of ${count} devices in a block of ${this.seriesCount} series`);
    const ids = new Uint32Array(count);
    let n = 0;
    if (kind === SET_LIST) {
      let q = p;
      let id = 0;
      for (; n < count; n++) {
        id += this.varint(q, end);
        q = this.next;
        if (id > 0xffffffff) throw new Error(`block corrupt: device id ${id} in a device list`);
        ids[n] = id;
      }
      if (q !== end) throw new Error(`block corrupt: a device list of ${count} ends at ${q}, its record at ${end}`);
    } else if (kind === SET_BITMAP) {
      const base = d.getUint32(p, true);
      for (let i = p + 4; i < end; i++) {
        const byte = this.u8[i]!;
        if (byte === 0) continue;
        for (let b = 0; b < 8; b++) {
          if ((byte & (1 << b)) === 0) continue;
          if (n >= count) throw new Error(`block corrupt: a device bitmap holds more than its ${count} devices`);
          ids[n++] = base + 8 * (i - p - 4) + b;
        }
      }
      if (n !== count) throw new Error(`block corrupt: a device bitmap holds ${n} devices, its head says ${count}`);
    } else {
      throw new Error(`block corrupt: device set kind ${kind} for a slice`);
    }
    return ids;
  }

  private filterPaneSet(at: number, sliceIds: Uint32Array): Uint32Array {
    const d = this.dv;
    const kind = d.getUint8(at);
    const count = d.getUint32(at + 1, true);
    const bytes = d.getUint32(at + 5, true);
    const p = at + SET_HEAD_BYTES;
    const end = p + bytes;
    const u = sliceIds.length;
    if (count > u) throw new Error(`block corrupt: a pane device set of ${count} devices, its slice has ${u}`);
    const out = new Uint32Array(count);
    let n = 0;
    if (kind === SET_RANK_BITMAP) {
      if (bytes !== Math.ceil(u / 8)) throw new Error(`block corrupt: a rank bitmap of ${bytes} bytes for ${u} devices`);
      for (let r = 0; r < u; r++) {
        if ((this.u8[p + (r >>> 3)]! & (1 << (r & 7))) === 0) continue;
        if (n >= count) throw new Error(`block corrupt: a pane rank bitmap holds more than its ${count} devices`);
        out[n++] = sliceIds[r]!;
      }
    } else if (kind === SET_RANKS_PRESENT || kind === SET_RANKS_ABSENT) {
      let q = p;
      let r = -1;
      let prevRank = 0;
      const listed = kind === SET_RANKS_PRESENT ? count : u - count;
      for (let i = 0; i < listed; i++) {
        const delta = this.varint(q, end);
        q = this.next;
        const rank = i === 0 ? delta : prevRank + delta;
        if (rank >= u || (i > 0 && rank <= prevRank)) throw new Error(`block corrupt: rank ${rank} in a pane device list of a slice of ${u}`);
        if (kind === SET_RANKS_PRESENT) out[n++] = sliceIds[rank]!;
        else for (r++; r < rank; r++) out[n++] = sliceIds[r]!;
        prevRank = rank;
        r = rank;
      }
      if (kind === SET_RANKS_ABSENT) for (r++; r < u; r++) out[n++] = sliceIds[r]!;
      if (q !== end) throw new Error(`block corrupt: a pane device list ends at ${q}, its record at ${end}`);
    } else {
      throw new Error(`block corrupt: device set kind ${kind} for a pane`);
    }
    if (n !== count) throw new Error(`block corrupt: a pane device set holds ${n} devices, its head says ${count}`);
    return out;
  }

  // ---- verification ----

  /**
   * Checks the crc, then walks every section: ids ascending and matching the sparse index, every
   * record within the data section and the sections exactly filled, offsets within the slice,
   * values finite, readings and footer counts consistent. Throws on the first fault.
   */
  verify(): void {
    const u8 = this.u8;
    const total = u8.byteLength;
    const crc = crc32(u8.subarray(H_CRC + 4, total), crc32(u8.subarray(0, H_CRC)));
    const stored = this.dv.getUint32(H_CRC, true);
    if (crc !== stored) throw new Error(`block corrupt: crc32 ${crc.toString(16)}, its header says ${stored.toString(16)}`);
    let readings = 0;
    let prevId = -1;
    let walkedData = this.dataAt;
    const sliceMs = this.sliceMs;
    this.forEachSeries((id, count, offsets, values) => {
      if (id <= prevId || id > 0xffffffff) throw new Error(`block corrupt: series ${id} after ${prevId}`);
      for (let k = 0; k < count; k++) {
        if (!(offsets[k]! < sliceMs) || !Number.isFinite(values[k]!)) throw new Error(`block corrupt: series ${id} reading ${k} at offset ${offsets[k]} value ${values[k]}`);
      }
      if (this.valuesEnd !== this.walkRecordEnd) throw new Error(`block corrupt: series ${id}'s values end at ${this.valuesEnd}, its record at ${this.walkRecordEnd}`);
      walkedData = this.walkRecordEnd;
      readings += count;
      prevId = id;
    });
    if (this.pos !== this.dirEnd) throw new Error(`block corrupt: the directory ends at ${this.pos}, its section at ${this.dirEnd}`);
    if (walkedData !== this.dataEnd) throw new Error(`block corrupt: the series' readings end at ${walkedData}, the data section at ${this.dataEnd}`);
    if (readings !== this.readingCount) throw new Error(`block corrupt: ${readings} readings in the series, ${this.readingCount} in the header`);
    let footerReadings = 0;
    let at = this.footerAt + this.metricCount * METRIC_ENTRY_BYTES;
    for (const metric of this.metrics()) {
      const rec = this.metricRecord(metric);
      const end = this.recEnd;
      if (rec !== at) throw new Error(`block corrupt: the record of metric ${metric} at ${rec}, expected at ${at}`);
      const f = this.fleet(metric)!;
      let paneCount = 0;
      for (let p = 0; p < this.panes; p++) {
        paneCount += f.panes[p]!.count;
        if (this.readDevices(metric, p).length !== f.panes[p]!.devices) throw new Error(`block corrupt: pane ${p} of metric ${metric} has a device set unlike its count`);
      }
      if (paneCount !== f.slice.count) throw new Error(`block corrupt: metric ${metric}'s panes hold ${paneCount} readings, its slice ${f.slice.count}`);
      if (this.readDevices(metric, BLOCK_SLICE).length !== f.devices) throw new Error(`block corrupt: metric ${metric}'s device set unlike its count`);
      footerReadings += f.slice.count;
      const lastSet = this.setAt(rec, end, this.panes - 1);
      if (lastSet + SET_HEAD_BYTES + this.dv.getUint32(lastSet + 5, true) !== end) throw new Error(`block corrupt: metric ${metric}'s record has bytes past its last device set`);
      at = end;
    }
    if (at !== this.footerEnd) throw new Error(`block corrupt: the footer's records end at ${at}, the block at ${this.footerEnd}`);
    if (footerReadings !== this.readingCount) throw new Error(`block corrupt: the footer counts ${footerReadings} readings, the header ${this.readingCount}`);
  }
}
