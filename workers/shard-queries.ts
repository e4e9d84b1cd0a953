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
  quantileOf,
  type DeviceEntry,
  type DevicesResult,
  type DevicesTask,
  type DeviceSeriesResult,
  type DeviceSeriesTask,
  type FleetSeriesResult,
  type FleetSeriesTask,
  type ShardStats,
  type TopBy,
  type TopResult,
  type TopRow,
  type TopTask,
  type WindowAggregateWire,
} from '../protocol';
import type { PaneStore } from './pane-store';

export function deviceSeries(store: PaneStore, task: DeviceSeriesTask): DeviceSeriesResult {
  checkSeriesTask(store, task.from, task.to, task.resolutionMs);
  const device = store.deviceIdOf(task.deviceId);
  if (device < 0) return { found: false, windows: [] };
  const series = store.findSeries(device, store.metricIdOf(task.metric));
  if (series < 0) return { found: true, windows: [] };
  const windows: WindowAggregateWire[] = [];
  const { from, to, resolutionMs: res } = task;
  let current: WindowAggregateWire | null = null;
  // newest pane first: windows come out in descending start order, reversed at the end
  for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
    const start = Math.floor(store.paneStartMs(p) / res) * res;
    if (start + res <= from) break;
    if (start >= to) continue;
    if (current === null || current.start !== start) {
      current = emptyAggregate(start, start + res, store.histogramDivisions);
      windows.push(current);
    }
    store.mergePaneInto(p, current);
  }
  windows.reverse();
  return { found: true, windows };
}

export function fleetSeries(store: PaneStore, task: FleetSeriesTask): FleetSeriesResult {
  checkSeriesTask(store, task.from, task.to, task.resolutionMs);
  const metric = store.metricIdOf(task.metric);
  if (metric < 0) return { windows: [], devices: 0 };
  const { from, to, resolutionMs: res } = task;
  const byStart = new Map<number, FleetWindow>();
  let devices = 0;
  for (const series of store.seriesOfMetric(metric)) {
    let contributed = false;
    for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
      const start = Math.floor(store.paneStartMs(p) / res) * res;
      if (start + res <= from) break;
      if (start >= to) continue;
      let w = byStart.get(start);
      if (w === undefined) {
        const agg = emptyAggregate(start, start + res, store.histogramDivisions);
        agg.devices = 0;
        w = { agg, lastSeries: -1 };
        byStart.set(start, w);
      }
      if (w.lastSeries !== series) {
        w.lastSeries = series;
        w.agg.devices! += 1;
      }
      store.mergePaneInto(p, w.agg);
      contributed = true;
    }
    if (contributed) devices++;
  }
  const windows = [...byStart.values()].map((w) => w.agg).sort((a, b) => a.start - b.start);
  return { windows, devices };
}

interface FleetWindow {
  agg: WindowAggregateWire;
  /** the series that last added to this window: series are walked one at a time, so a change means a new device */
  lastSeries: number;
}

const QUANTILE_OF_BY: Partial<Record<TopBy, number>> = { p50: 0.5, p90: 0.9, p99: 0.99 };

export function topDevices(store: PaneStore, task: TopTask): TopResult {
  checkRange(task.from, task.to);
  const metric = store.metricIdOf(task.metric);
  if (metric < 0 || task.n < 1) return { rows: [] };
  const q = QUANTILE_OF_BY[task.by];
  const withDigest = q !== undefined;
  const { from, to } = task;
  const paneMs = store.paneMs;
  const rows: TopRow[] = [];
  for (const series of store.seriesOfMetric(metric)) {
    const agg = emptyAggregate(from, to, store.histogramDivisions);
    for (let p = store.newestPane(series); p >= 0; p = store.olderPane(p)) {
      const start = store.paneStartMs(p);
      if (start + paneMs <= from) break;
      if (start >= to) continue;
      store.mergePaneInto(p, agg, withDigest);
    }
    if (agg.count === 0) continue;
    const mean = agg.sum / agg.count;
    rows.push({
      deviceId: store.deviceName(store.seriesDevice(series))!,
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

export function listDevices(store: PaneStore, task: DevicesTask): DevicesResult {
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

export function shardStats(store: PaneStore, shard: number, recordsApplied = 0): ShardStats {
  return {
    shard,
    devices: store.deviceCount,
    series: store.seriesCount,
    panes: store.paneCount,
    eventsApplied: store.eventsApplied,
    recordsApplied,
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
