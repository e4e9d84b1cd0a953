/**
 * The summary of one sealed slice of one shard: per metric, the fleet windows of the slice and of
 * each pane (with their digests and distinct devices) and the device sets as bitmaps
 * (workers/device-bits.ts layout: bit id of byte id >> 3). A slice's readings are stored in chunks
 * of series (storage/block-codec.ts, one block per chunk, read whole by a device query); the
 * summary is what a fleet query reads instead: one small value per slice, not every chunk.
 *
 * Built by the sealer from the chunks' footers (SliceSummaryBuilder: chunks hold disjoint series,
 * and a device has one series per metric, so per metric the chunks' devices are disjoint and
 * their counts add up). Stored beside the chunks under chunk SUMMARY_CHUNK (the greatest, so it
 * is appended after them). msgpack: a few KB to tens of KB per slice, written once a minute.
 */

import { Packr, Unpackr } from 'msgpackr';
import { emptyAggregate, mergeAggregate, type WindowAggregateWire } from '../protocol';
import { BLOCK_SLICE, type BlockReader } from './block-codec';

/** the chunk number of a slice's summary: after every chunk of readings */
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

  add(chunk: BlockReader): void {
    for (const metric of chunk.metrics()) {
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
      const f = chunk.fleet(metric);
      if (f === null) continue;
      m.devices += f.devices;
      merge(m.slice, f.slice);
      for (let p = 0; p < m.panes.length; p++) merge(m.panes[p]!, f.panes[p]!);
      m.sliceBits = chunk.orDevices(metric, BLOCK_SLICE, m.sliceBits);
      for (let p = 0; p < m.paneBits.length; p++) m.paneBits[p] = chunk.orDevices(metric, p, m.paneBits[p]!);
    }
  }

  build(): SliceSummary {
    return { sliceStart: this.sliceStart, sliceMs: this.sliceMs, paneMs: this.paneMs, metrics: [...this.byMetric.values()] };
  }

  private empty(start: number, length: number): WindowAggregateWire {
    const a = emptyAggregate(start, start + length, this.divisions);
    a.devices = 0;
    return a;
  }
}

/** merges a chunk's window into the summary's, keeping the summary's bounds and adding devices */
function merge(into: WindowAggregateWire, part: WindowAggregateWire): void {
  const { start, end } = into;
  const devices = (into.devices ?? 0) + (part.devices ?? 0);
  if (part.count > 0) mergeAggregate(into, part);
  into.start = start;
  into.end = end;
  into.devices = devices;
}
