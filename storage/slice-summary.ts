/**
 * The summary of one sealed slice of one shard: per metric, the fleet windows of the slice and of
 * each pane (with their digests and distinct devices) and the device sets as bitmaps
 * (storage/device-bits.ts layout: bit id of byte id >> 3). A slice's readings are stored in chunks
 * of series (storage/block-codec.ts, one block per chunk, read whole by a device query); the
 * summary is what a fleet query reads instead: one small value per slice, not every chunk.
 *
 * Built by the sealer from the chunks' footers (SliceSummaryBuilder), and by queries from a
 * slice's summary and its delta blocks (corrections): windows merge, device sets are ORed, and the
 * distinct counts are taken from the merged sets (a correction's device may already be counted). Stored beside the chunks under chunk SUMMARY_CHUNK (the greatest, so it
 * is appended after them). msgpack: a few KB to tens of KB per slice, written once a minute.
 */

import { Packr, Unpackr } from 'msgpackr';
import { emptyAggregate, mergeAggregate, type WindowAggregateWire } from '../protocol';
import { BLOCK_SLICE, type BlockReader } from './block-codec';
import { countBits, orInto } from './device-bits';

/** the chunk number of a slice's summary: after every chunk of readings and every delta (DELTA_CHUNK) */
export const SUMMARY_CHUNK = 0xffffffff;

export interface MetricSummary {
  metric: number;
  /** distinct devices with a reading of the metric in the slice */
  devices: number;
  slice: WindowAggregateWire;
  panes: WindowAggregateWire[];
  /** the slice's devices, and each pane's */
  sliceBits: Uint8Array;
  paneBits: Uint8Array[];
}

export interface SliceSummary {
  sliceStart: number;
  sliceMs: number;
  paneMs: number;
  metrics: MetricSummary[];
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

export function encodeSliceSummary(s: SliceSummary): Uint8Array {
  return packr.pack(s);
}

export function decodeSliceSummary(bytes: Uint8Array): SliceSummary {
  const s = unpackr.unpack(bytes) as SliceSummary;
  if (typeof s !== 'object' || s === null || !Array.isArray(s.metrics) || !(s.sliceMs > 0)) {
    throw new Error('BUG: a slice summary that does not decode: the block store is damaged');
  }
  return s;
}

/** Merges the footers of a slice's chunks, in any order, into its summary. */
export class SliceSummaryBuilder {
  private readonly byMetric = new Map<number, MetricSummary>();

  constructor(private readonly sliceStart: number, private readonly sliceMs: number, private readonly paneMs: number,
    private readonly divisions: number) {}

  /** Merges a stored summary (the slice's, before its deltas). */
  addSummary(s: SliceSummary): void {
    for (const src of s.metrics) {
      const m = this.metricOf(src.metric);
      merge(m.slice, src.slice);
      for (let p = 0; p < m.panes.length; p++) merge(m.panes[p]!, src.panes[p]!);
      m.sliceBits = orInto(m.sliceBits, src.sliceBits);
      for (let p = 0; p < m.paneBits.length; p++) m.paneBits[p] = orInto(m.paneBits[p]!, src.paneBits[p]!);
    }
  }

  private metricOf(metric: number): MetricSummary {
    let m = this.byMetric.get(metric);
    if (m === undefined) {
      const panes = this.sliceMs / this.paneMs;
      m = {
        metric, devices: 0,
        slice: this.empty(this.sliceStart, this.sliceMs),
        panes: Array.from({ length: panes }, (_, p) => this.empty(this.sliceStart + p * this.paneMs, this.paneMs)),
        sliceBits: new Uint8Array(0),
        paneBits: Array.from({ length: panes }, () => new Uint8Array(0)),
      };
      this.byMetric.set(metric, m);
    }
    return m;
  }

  add(chunk: BlockReader): void {
    for (const metric of chunk.metrics()) {
      const m = this.metricOf(metric);
      const f = chunk.fleet(metric);
      if (f === null) continue;
      merge(m.slice, f.slice);
      for (let p = 0; p < m.panes.length; p++) merge(m.panes[p]!, f.panes[p]!);
      m.sliceBits = chunk.orDevices(metric, BLOCK_SLICE, m.sliceBits);
      for (let p = 0; p < m.paneBits.length; p++) m.paneBits[p] = chunk.orDevices(metric, p, m.paneBits[p]!);
    }
  }

  /** The summary; every distinct count from the merged device sets. */
  build(): SliceSummary {
    for (const m of this.byMetric.values()) {
      m.devices = countBits(m.sliceBits);
      m.slice.devices = m.devices;
      for (let p = 0; p < m.panes.length; p++) m.panes[p]!.devices = countBits(m.paneBits[p]!);
    }
    return { sliceStart: this.sliceStart, sliceMs: this.sliceMs, paneMs: this.paneMs, metrics: [...this.byMetric.values()] };
  }

  private empty(start: number, length: number): WindowAggregateWire {
    const a = emptyAggregate(start, start + length, this.divisions);
    a.devices = 0;
    return a;
  }
}

/** merges a part's window into the summary's, keeping the summary's bounds (devices: build()) */
function merge(into: WindowAggregateWire, part: WindowAggregateWire): void {
  const { start, end } = into;
  if (part.count > 0) mergeAggregate(into, part);
  into.start = start;
  into.end = end;
}

