/**
 * Queries over one shard's PaneStore, answering the tasks of protocol/messages.ts.
 *
 * Runs in the shard worker that owns the store, between ring drains (never concurrently with
 * add()). Results are plain data (structured-clone-able) in the wire form the engine merges.
 *
 * Semantics:
 * - Windows are `resolutionMs` long (a positive multiple of paneMs), aligned to the epoch:
 *   start = floor(paneStart / resolutionMs) * resolutionMs. A window is included when it overlaps
 *   [from, to): start < to && start + resolutionMs > from; all of its panes are merged in, also
 *   those outside [from, to) (windows are the unit). Only windows with data, sorted by start.
 * - fleetSeries: each window's `devices` is the exact count of distinct devices with data in it
 *   (a series is one (device, metric), so distinct series of the metric = distinct devices); the
 *   result's `devices` is the distinct count over all returned windows.
 * - topDevices: per device, the panes overlapping [from, to) (pane granularity, no resolution)
 *   are merged; rows are ordered by value descending, ties by deviceId ascending, at most n.
 * - Cost: a device query walks only that series' panes from the newest back to `from`; fleet and
 *   top walk the metric's series (index kept by the store), never the whole store.
 */

import {
  emptyAggregate,
  mergeAggregate,
  quantileOf,
  type DeviceEntry,
  type DevicesResult,
  type DevicesTask,
  type DistinctDevicesResult,
  type DistinctDevicesTask,
  type DeviceSeriesResult,
  type DeviceSeriesTask,
  type FleetSeriesResult,
  type FleetSeriesTask,
  type MetricLatestResult,
  type MetricLatestTask,
  type SensorRangeResult,
  type SensorRangeTask,
  type ShardStats,
  type TopBy,
  type TopResult,
  type TopRow,
  type TopTask,
  type WindowAggregateWire,
} from '../protocol';
import type { RollupStore, RollupValue, SecondAggregate } from '../storage';
import { mergeSecond } from './sensor-seconds';
import { countBits, hasBit, orInto } from './device-bits';
import { PaneStore } from './pane-store';
import type { EventTime } from './event-time';

/**
 * What a query reads: the open panes in memory and, once panes close, the rollups in LMDB. A
 * window is merged from both: a pane is taken from memory only if the stored window has not
 * merged it (its lastPaneNo is below the pane), so nothing is missed or counted twice.
 */
export interface ShardView {
  store: PaneStore;
  rollups: RollupStore | null;
  time: EventTime | null;
  /** configured rollup resolutions (the pane first) */
  resolutions: number[];
  shard: number;
}

function viewOf(x: ShardView | PaneStore): ShardView {
  return x instanceof PaneStore ? { store: x, rollups: null, time: null, resolutions: [x.paneMs], shard: 0 } : x;
}

interface Win {
  agg: WindowAggregateWire;
  /** the stored window's lastPaneNo: panes up to it (device) / below it (fleet) are in agg already */
  stored: number;
  lastSeries: number;
}

function storedWindow(v: RollupValue, res: number, divisions: number): Win {
  const agg = emptyAggregate(v.start, v.start + res, divisions);
  mergeAggregate(agg, v);
  agg.start = v.start;
  agg.end = v.start + res;
  agg.devices = v.devices;
  return { agg, stored: v.lastPaneNo, lastSeries: -1 };
}

/**
 * A device's stored windows at resolution `level` overlapping [from, to). Device windows of the
 * levels above the first coarse one (1 h, 1 d) are written once complete (EventTime.writeCoarse):
 * the ones not written yet are composed here from the level below, so a window is whole from the
 * moment its first pane closed. `stored` is the last pane merged in (memory panes after it count).
 */
function storedDeviceWindows(view: ShardView, level: number, device: number, metric: number, from: number, to: number): Map<number, Win> {
  const res = view.resolutions[level]!;
  const divisions = view.store.histogramDivisions;
  const out = new Map<number, Win>();
  const below = level >= 2 && view.time !== null ? view.time.coarseStoredBelow(level) : Infinity;
  const storedTo = Math.min(to, below);
  if (storedTo > from) {
    for (const { value: v } of view.rollups!.deviceWindows(res, device, metric, Math.floor(from / res) * res, storedTo)) {
      if (v.start + res > from && v.start < storedTo) out.set(v.start, storedWindow(v, res, divisions));
    }
  }
  if (to > below) {
    // whole windows: every finer window of a coarse window that overlaps the range
    const fine = storedDeviceWindows(view, level - 1, device, metric, Math.floor(Math.max(from, below) / res) * res, Math.ceil(to / res) * res);
    for (const f of fine.values()) {
      const w = Math.floor(f.agg.start / res) * res;
      let c = out.get(w);
      if (c === undefined) {
        c = { agg: emptyAggregate(w, w + res, divisions), stored: -Infinity, lastSeries: -1 };
        out.set(w, c);
      }
      mergeAggregate(c.agg, f.agg);
      c.agg.start = w;
      c.agg.end = w + res;
      if (f.stored > c.stored) c.stored = f.stored;
    }
  }
  return out;
}

export function deviceSeries(x: ShardView | PaneStore, task: DeviceSeriesTask): DeviceSeriesResult {
  const view = viewOf(x);
  const store = view.store;
  checkSeriesTask(store, task.from, task.to, task.resolutionMs);
  const device = store.deviceIdOf(task.deviceId);
  if (device < 0) return { found: false, windows: [] };
  const metric = store.metricIdOf(task.metric);
  if (metric < 0) return { found: true, windows: [] };
  const { from, to, resolutionMs: res } = task;
  const level = view.rollups !== null ? view.resolutions.indexOf(res) : -1;
  const byStart = level >= 0 ? storedDeviceWindows(view, level, device, metric, from, to) : new Map<number, Win>();
  const series = store.findSeries(device, metric);
  if (series >= 0) {
    for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
      const start = Math.floor(store.paneStartMs(p) / res) * res;
      if (start + res <= from) break;
      if (start >= to) continue;
      let w = byStart.get(start);
      if (w !== undefined && store.paneNumber(p) <= w.stored) continue;
      if (w === undefined) {
        w = { agg: emptyAggregate(start, start + res, store.histogramDivisions), stored: -Infinity, lastSeries: -1 };
        byStart.set(start, w);
      }
      store.mergePaneInto(p, w.agg);
    }
  }
  const windows = [...byStart.values()].map((w) => w.agg).filter((a) => a.count > 0).sort((a, b) => a.start - b.start);
  return { found: true, windows };
}

export function fleetSeries(x: ShardView | PaneStore, task: FleetSeriesTask): FleetSeriesResult {
  const view = viewOf(x);
  const store = view.store;
  checkSeriesTask(store, task.from, task.to, task.resolutionMs);
  const metric = store.metricIdOf(task.metric);
  if (metric < 0) return { windows: [], devices: 0 };
  const { from, to, resolutionMs: res } = task;
  const level = view.resolutions.indexOf(res);
  const byStart = new Map<number, Win>();
  const rangeDevices = new Set<number>();
  let rangeBits: Uint8Array = new Uint8Array(0);
  if (view.rollups !== null && level >= 0) {
    const fromW = Math.floor(from / res) * res;
    for (const { key, value } of view.rollups.fleetWindows(res, metric, fromW, to)) {
      if (key[4] !== view.shard) continue; // other shards answer for their own devices
      const v = value as RollupValue;
      if (v.start + res > from && v.start < to) byStart.set(v.start, storedWindow(v, res, store.histogramDivisions));
    }
    // distinct devices over the whole range: the stored windows' device bitmaps
    for (const w of byStart.keys()) rangeBits = storedWindowDevices(view, level, metric, w, rangeBits);
  }
  for (const series of store.seriesOfMetric(metric)) {
    for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
      const start = Math.floor(store.paneStartMs(p) / res) * res;
      if (start + res <= from) break;
      if (start >= to) continue;
      let w = byStart.get(start);
      if (w !== undefined && store.paneNumber(p) < w.stored) continue;
      if (w === undefined) {
        const agg = emptyAggregate(start, start + res, store.histogramDivisions);
        agg.devices = 0;
        w = { agg, stored: -Infinity, lastSeries: -1 };
        byStart.set(start, w);
      }
      // a series is one device: count it once per window, and not again if a closed pane of it
      // already counted it in the stored window
      if (w.lastSeries !== series) {
        w.lastSeries = series;
        const counted = view.time !== null && level >= 0 && w.stored !== -Infinity && view.time.fleetMark(level, series) === start;
        if (!counted) w.agg.devices = (w.agg.devices ?? 0) + 1;
      }
      store.mergePaneInto(p, w.agg);
      rangeDevices.add(store.seriesDevice(series));
    }
  }
  const windows = [...byStart.values()].map((w) => w.agg).filter((a) => a.count > 0).sort((a, b) => a.start - b.start);
  let devices = countBits(rangeBits);
  for (const d of rangeDevices) if (!hasBit(rangeBits, d)) devices++;
  return { windows, devices };
}

/**
 * ORs the shard's devices of one stored fleet window (start) at `level` into bits. The bitmap is
 * written in the same transaction as its window (EventTime.writeFleet): one missing is a bug.
 */
function storedWindowDevices(view: ShardView, level: number, metric: number, start: number, bits: Uint8Array): Uint8Array {
  const res = view.resolutions[level]!;
  const stored = view.rollups!.fleetDeviceBits(res, metric, start, view.shard);
  if (stored === undefined) throw new Error(`fleet window ${res} ms / metric ${metric} / ${start} of shard ${view.shard} has no device bitmap`);
  return orInto(bits, stored);
}

/**
 * Distinct devices with data in any of task.metrics, in the windows of resolutionMs overlapping
 * [from, to): the stored windows' device index ('w' keys; a key names no shard, so only this
 * shard's devices are taken) united with the devices of the open panes. Exact: a pane is either
 * still in memory or merged into the stored windows (queries run after the pending rollup
 * writes), and a device counts once however many metrics or windows it has data in.
 */
export function distinctDevices(x: ShardView | PaneStore, task: DistinctDevicesTask): DistinctDevicesResult {
  const view = viewOf(x);
  const store = view.store;
  checkSeriesTask(store, task.from, task.to, task.resolutionMs);
  const { from, to, resolutionMs: res } = task;
  // stored: the fleet windows' device bitmaps; open: devices of panes in memory not in them
  const seen = new Set<number>();
  let bits: Uint8Array = new Uint8Array(0);
  const level = view.resolutions.indexOf(res);
  for (const name of task.metrics) {
    const metric = store.metricIdOf(name);
    if (metric < 0) continue;
    if (view.rollups !== null && level >= 0) {
      for (const start of view.rollups.fleetWindowStarts(res, metric, Math.floor(from / res) * res, to, view.shard)) {
        bits = storedWindowDevices(view, level, metric, start, bits);
      }
    }
  }
  for (const name of task.metrics) {
    const metric = store.metricIdOf(name);
    if (metric < 0) continue;
    for (const series of store.seriesOfMetric(metric)) {
      const device = store.seriesDevice(series);
      if (seen.has(device) || hasBit(bits, device)) continue;
      for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
        const start = Math.floor(store.paneStartMs(p) / res) * res;
        if (start + res <= from) break;
        if (start >= to) continue;
        seen.add(device);
        break;
      }
    }
  }
  return { devices: countBits(bits) + seen.size };
}

/**
 * Where the metric's data ends on this shard (of one device when task.deviceId is set): the start
 * of the newest pane in memory, else of the newest stored window. Memory first is right: panes
 * leave memory a whole closed minute at a time, shard-wide, so a pane still in memory is newer
 * than any that left. Cost: one look per series of the metric, or one LMDB key per resolution.
 */
export function metricLatest(x: ShardView | PaneStore, task: MetricLatestTask): MetricLatestResult {
  const view = viewOf(x);
  const store = view.store;
  const metric = store.metricIdOf(task.metric);
  if (metric < 0) return { start: null };
  const device = task.deviceId === undefined ? -1 : store.deviceIdOf(task.deviceId);
  if (task.deviceId !== undefined && device < 0) return { start: null };
  let newest = -Infinity;
  const one = device >= 0 ? store.findSeries(device, metric) : -1;
  const series: readonly number[] = device >= 0 ? (one >= 0 ? [one] : []) : store.seriesOfMetric(metric);
  for (const s of series) {
    const p = store.newestPane(s);
    if (p >= 0 && store.paneStartMs(p) > newest) newest = store.paneStartMs(p);
  }
  if (newest === -Infinity && view.rollups !== null) {
    for (const res of view.resolutions) {
      const start = device >= 0 ? view.rollups.newestDeviceWindow(res, device, metric) : view.rollups.newestFleetWindow(res, metric);
      if (start !== null && start > newest) newest = start;
    }
  }
  return { start: newest === -Infinity ? null : newest };
}

/** The metric over the shard's devices in whole seconds [from, to): stored seconds and open ones. */
export function sensorRange(x: ShardView | PaneStore, task: SensorRangeTask): SensorRangeResult {
  const view = viewOf(x);
  checkRange(task.from, task.to);
  const metric = view.store.metricIdOf(task.metric);
  const out: SecondAggregate = [0, 0, 0, 0];
  if (metric < 0) return { count: 0, sum: 0, min: 0, max: 0 };
  const fromSec = Math.ceil(task.from / 1000);
  const toSec = Math.ceil(task.to / 1000);
  if (view.rollups !== null) for (const agg of view.rollups.seconds(metric, fromSec, toSec, view.shard)) mergeSecond(out, agg);
  if (view.time !== null) view.time.seconds.mergeOpen(metric, fromSec, toSec, out);
  return { count: out[0], sum: out[1], min: out[2], max: out[3] };
}

const QUANTILE_OF_BY: Partial<Record<TopBy, number>> = { p50: 0.5, p90: 0.9, p99: 0.99 };

export function topDevices(x: ShardView | PaneStore, task: TopTask): TopResult {
  const view = viewOf(x);
  const store = view.store;
  checkRange(task.from, task.to);
  const metric = store.metricIdOf(task.metric);
  if (metric < 0 || task.n < 1) return { rows: [] };
  const q = QUANTILE_OF_BY[task.by];
  const withDigest = q !== undefined;
  const { from, to } = task;
  const res = task.resolutionMs ?? store.paneMs;
  const useRollups = view.rollups !== null && view.resolutions.includes(res);
  const rows: TopRow[] = [];
  for (const series of store.seriesOfMetric(metric)) {
    const device = store.seriesDevice(series);
    const agg = emptyAggregate(from, to, store.histogramDivisions);
    const stored = new Map<number, number>();
    if (useRollups) {
      for (const [start, w] of storedDeviceWindows(view, view.resolutions.indexOf(res), device, metric, from, to)) {
        mergeAggregate(agg, withDigest ? w.agg : { ...w.agg, means: [], weights: [] });
        stored.set(start, w.stored);
      }
    }
    for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
      const start = Math.floor(store.paneStartMs(p) / res) * res;
      if (start + res <= from) break;
      if (start >= to) continue;
      const s = stored.get(start);
      if (s !== undefined && store.paneNumber(p) <= s) continue;
      store.mergePaneInto(p, agg, withDigest);
    }
    if (agg.count === 0) continue;
    const mean = agg.sum / agg.count;
    rows.push({
      deviceId: store.deviceName(device)!,
      value: q !== undefined ? quantileOf(agg, q)! : exactValue(task.by, agg, mean),
      count: agg.count,
      sum: agg.sum,
      min: agg.min,
      max: agg.max,
      mean,
    });
  }
  rows.sort(compareTopRows);
  if (rows.length > task.n) rows.length = task.n;
  return { rows };
}

function exactValue(by: TopBy, agg: WindowAggregateWire, mean: number): number {
  switch (by) {
    case 'mean': return mean;
    case 'max': return agg.max;
    case 'min': return agg.min;
    case 'count': return agg.count;
    case 'sum': return agg.sum;
    default: throw new RangeError(`top: unknown by ${String(by)}`);
  }
}

function compareTopRows(a: TopRow, b: TopRow): number {
  if (a.value !== b.value) return b.value - a.value;
  return a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0;
}

export function listDevices(x: ShardView | PaneStore, task: DevicesTask): DevicesResult {
  const store = viewOf(x).store;
  const names = store.sortedDeviceNames();
  const prefix = task.prefix;
  const devices: DeviceEntry[] = [];
  // binary search for the first name >= prefix; names with the prefix follow contiguously
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid]! < prefix) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < names.length && devices.length < task.limit; i++) {
    const name = names[i]!;
    if (!name.startsWith(prefix)) break;
    const id = store.deviceIdOf(name);
    const metrics = store.seriesOfDevice(id).map((s) => store.metricName(store.seriesMetric(s))!);
    metrics.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    devices.push({ deviceId: name, metrics });
  }
  return { devices };
}

export function shardStats(x: ShardView | PaneStore, recordsApplied = 0, lateEvents = 0): ShardStats {
  const view = viewOf(x);
  const store = view.store;
  const time = view.time;
  return {
    shard: view.shard,
    devices: store.deviceCount,
    series: store.seriesCount,
    panes: store.paneCount,
    eventsApplied: store.eventsApplied,
    recordsApplied,
    watermark: time === null || time.maxTs === -Infinity ? null : time.watermark,
    maxEventTime: time === null || time.maxTs === -Infinity ? null : time.maxTs,
    lateEvents,
    rollupWriteErrors: time?.writeErrors ?? 0,
    paneStoreBytes: store.typedArrayBytes(),
    heapUsedBytes: process.memoryUsage().heapUsed,
  };
}

function checkRange(from: number, to: number): void {
  if (!(Number.isFinite(from) && Number.isFinite(to))) throw new RangeError(`query range must be finite: [${from}, ${to})`);
}

function checkSeriesTask(store: PaneStore, from: number, to: number, resolutionMs: number): void {
  checkRange(from, to);
  if (!(Number.isInteger(resolutionMs) && resolutionMs >= store.paneMs && resolutionMs % store.paneMs === 0)) {
    throw new RangeError(`resolutionMs ${resolutionMs} must be a positive multiple of paneMs ${store.paneMs}`);
  }
}
