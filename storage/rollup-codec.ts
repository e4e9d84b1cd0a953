/**
 * The binary form of a stored window (RollupValue), replacing msgpack objects: closing panes
 * writes one per closed pane and window, so its size and encoding cost are the closing cost.
 *
 * Two layouts, little-endian, after an 8-byte head [u8 layout][u8 0][u16 divisions][u32 n]:
 * - RAW (1): every centroid has weight 1 and there is one per event (a window of up to RAW_MAX
 *   events, the common case of sparse series): f64 start, end, sum, last, lastTs, lastPaneNo,
 *   devices (NaN: none), then the n values. count, min, max and the histogram are derived from
 *   the values on decode; encode checks they derive exactly (else FULL), so the round trip is
 *   lossless. A one-event pane: 72 bytes (its msgpack object was ~200).
 * - FULL (2): f64 start, end, count, sum, min, max, last, lastTs, under, over, lastPaneNo,
 *   devices, the histogram (divisions), means (n), weights (n).
 * Contract: encode() returns a view of the codec's scratch buffer, valid until the next encode
 * (inside an lmdb-js transaction() callback a put copies the value at once; an async put outside
 * one reads it when the batch commits). One codec per thread (not shared).
 */

import { histogramBucket, type WindowAggregateWire } from '../protocol';

/** a stored window: an aggregate and the last pane merged into it */
export interface RollupValue extends WindowAggregateWire {
  /** the last pane merged into this window (device windows) or every pane below it was (fleet: closedBelow) */
  lastPaneNo: number;
}


const HEAD_BYTES = 8;
const RAW = 1;
const FULL = 2;
const RAW_FIELDS = 7;
const FULL_FIELDS = 12;
/** windows of at most this many events may be stored RAW */
const RAW_MAX = 64;

export interface HistogramSpec {
  divisions: number;
  min: number;
  max: number;
}

export class RollupCodec {
  private scratch = new ArrayBuffer(4096);
  private view = new DataView(this.scratch);
  private readonly bucketScratch: number[];

  constructor(private readonly spec: HistogramSpec) {
    this.bucketScratch = new Array<number>(spec.divisions + 2).fill(0);
  }

  encode(v: RollupValue): Uint8Array {
    return this.isRaw(v) ? this.encodeRaw(v) : this.encodeFull(v);
  }

  /** RAW only if count, min, max and the histogram derive exactly from the values */
  private isRaw(v: RollupValue): boolean {
    const n = v.means.length;
    if (n === 0 || n !== v.count || n > RAW_MAX || v.histogram.length !== this.spec.divisions) return false;
    const b = this.bucketScratch;
    b.fill(0);
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      if (v.weights[i] !== 1) return false;
      const x = v.means[i]!;
      if (x < min) min = x;
      if (x > max) max = x;
      const k = histogramBucket(x, this.spec.min, this.spec.max, this.spec.divisions);
      b[k] = b[k]! + 1;
    }
    if (min !== v.min || max !== v.max) return false;
    const d = this.spec.divisions;
    for (let k = 0; k < d; k++) if (b[k] !== v.histogram[k]) return false;
    return b[d] === v.under && b[d + 1] === v.over;
  }

  private room(bytes: number): DataView {
    if (bytes > this.scratch.byteLength) {
      let size = this.scratch.byteLength;
      while (size < bytes) size *= 2;
      this.scratch = new ArrayBuffer(size);
      this.view = new DataView(this.scratch);
    }
    return this.view;
  }

  private encodeRaw(v: RollupValue): Uint8Array {
    const n = v.means.length;
    const bytes = HEAD_BYTES + 8 * (RAW_FIELDS + n);
    const d = this.room(bytes);
    d.setUint8(0, RAW);
    d.setUint8(1, 0);
    d.setUint16(2, this.spec.divisions, true);
    d.setUint32(4, n, true);
    let o = HEAD_BYTES;
    for (const x of [v.start, v.end, v.sum, v.last, v.lastTs, v.lastPaneNo, v.devices ?? NaN]) {
      d.setFloat64(o, x, true);
      o += 8;
    }
    for (let i = 0; i < n; i++, o += 8) d.setFloat64(o, v.means[i]!, true);
    return new Uint8Array(this.scratch, 0, bytes);
  }

  private encodeFull(v: RollupValue): Uint8Array {
    const n = v.means.length;
    const divisions = v.histogram.length;
    const bytes = HEAD_BYTES + 8 * (FULL_FIELDS + divisions + 2 * n);
    const d = this.room(bytes);
    d.setUint8(0, FULL);
    d.setUint8(1, 0);
    d.setUint16(2, divisions, true);
    d.setUint32(4, n, true);
    let o = HEAD_BYTES;
    for (const x of [v.start, v.end, v.count, v.sum, v.min, v.max, v.last, v.lastTs, v.under, v.over, v.lastPaneNo, v.devices ?? NaN]) {
      d.setFloat64(o, x, true);
      o += 8;
    }
    for (let i = 0; i < divisions; i++, o += 8) d.setFloat64(o, v.histogram[i]!, true);
    for (let i = 0; i < n; i++, o += 8) d.setFloat64(o, v.means[i]!, true);
    for (let i = 0; i < n; i++, o += 8) d.setFloat64(o, v.weights[i]!, true);
    return new Uint8Array(this.scratch, 0, bytes);
  }

  /** Decodes a stored window; throws on bytes that are not one (a corrupt store must not answer). */
  decode(bytes: Uint8Array): RollupValue {
    if (bytes.byteLength < HEAD_BYTES) throw new Error(`stored window of ${bytes.byteLength} bytes: shorter than its head`);
    const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const layout = d.getUint8(0);
    const divisions = d.getUint16(2, true);
    const n = d.getUint32(4, true);
    const expect = layout === RAW ? HEAD_BYTES + 8 * (RAW_FIELDS + n) : HEAD_BYTES + 8 * (FULL_FIELDS + divisions + 2 * n);
    if ((layout !== RAW && layout !== FULL) || bytes.byteLength !== expect || divisions !== this.spec.divisions) {
      throw new Error(`stored window: layout ${layout}, ${divisions} divisions (this engine: ${this.spec.divisions}), ${n} entries in ${bytes.byteLength} bytes: not a window this engine wrote`);
    }
    const f = (i: number): number => d.getFloat64(HEAD_BYTES + 8 * i, true);
    if (layout === RAW) return this.decodeRaw(f, n);
    const devices = f(11);
    const histogram = new Array<number>(divisions);
    for (let i = 0; i < divisions; i++) histogram[i] = f(FULL_FIELDS + i);
    const means = new Array<number>(n);
    const weights = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      means[i] = f(FULL_FIELDS + divisions + i);
      weights[i] = f(FULL_FIELDS + divisions + n + i);
    }
    const v: RollupValue = {
      start: f(0), end: f(1), count: f(2), sum: f(3), min: f(4), max: f(5), last: f(6), lastTs: f(7),
      histogram, under: f(8), over: f(9), means, weights, lastPaneNo: f(10),
    };
    if (!Number.isNaN(devices)) v.devices = devices;
    return v;
  }

  private decodeRaw(f: (i: number) => number, n: number): RollupValue {
    const { divisions, min: hMin, max: hMax } = this.spec;
    const buckets = new Array<number>(divisions + 2).fill(0);
    const means = new Array<number>(n);
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = f(RAW_FIELDS + i);
      means[i] = x;
      if (x < min) min = x;
      if (x > max) max = x;
      const k = histogramBucket(x, hMin, hMax, divisions);
      buckets[k] = buckets[k]! + 1;
    }
    const devices = f(6);
    const v: RollupValue = {
      start: f(0), end: f(1), count: n, sum: f(2), min, max, last: f(3), lastTs: f(4),
      histogram: buckets.slice(0, divisions), under: buckets[divisions]!, over: buckets[divisions + 1]!,
      means, weights: new Array<number>(n).fill(1), lastPaneNo: f(5),
    };
    if (!Number.isNaN(devices)) v.devices = devices;
    return v;
  }
}
