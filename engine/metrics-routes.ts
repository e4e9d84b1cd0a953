/**
 * /metrics (seed: a CPU-usage percentile service), for its clients unchanged. Devices send
 * `{"deviceId":"device-11","timestamp":12385439653,"cpuUsage":78.986}` (POST /v1/events or the
 * WebSocket); these routes read the metric `cpuUsage` in windows of seedWindowMs() (1 minute: the
 * finest of --resolutions that is at least a minute).
 *
 *   GET /metrics/top/{n}          the n devices (1-1000) with the highest p99 in the last window,
 *                                 highest first (ties: deviceId ascending)
 *   GET /metrics/devices/{id}     that device's windows of the last hour, newest first; 404 when
 *                                 no event ever named the device
 * Both answer a JSON array of {deviceId, windowStart, windowEnd, p50, p90, p99, count}; times
 * are epoch milliseconds (UTC), windowEnd exclusive; quantiles from the windows' t-digests.
 *
 * Time is event time, read from the data (so a replayed or simulated clock works as a live one):
 * the last window is the latest complete one before the window that holds the newest cpuUsage
 * reading of any device (that window is still filling); a device's "last hour" ends with the pane
 * (--pane, 10 s) of its own newest reading, so a device that went quiet still shows its last
 * hour of data. Front-end thread only; everything is read through the shard tasks metricLatest,
 * top and deviceSeries.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import {
  SluiceError, isValidDeviceId, quantileOf, DEVICE_ID_LENGTH_MAX,
  type DeviceSeriesResult, type MetricLatestResult, type MetricLatestTask, type TopResult, type TopRow, type WindowAggregateWire,
} from '../protocol';
import type { Dictionary } from './dictionary';
import type { ShardPool } from './shard-pool';
import { type Answerable, answerLater } from './http-util';
import { TOP_N_MAX, decodePathParam } from './query-params';

export const CPU_METRIC = 'cpuUsage';
const MINUTE_MS = 60_000;
const RECENT_MS = 3_600_000;

export interface CpuWindow {
  deviceId: string;
  windowStart: number;
  windowEnd: number;
  p50: number;
  p90: number;
  p99: number;
  count: number;
}

/** The seed window: 1 min when configured, else the finest resolution of at least 1 min, else the coarsest. */
export function seedWindowMs(resolutionsMs: readonly number[]): number {
  const atLeastMinute = resolutionsMs.filter((r) => r >= MINUTE_MS);
  return atLeastMinute.length > 0 ? Math.min(...atLeastMinute) : Math.max(...resolutionsMs);
}

function cpuWindow(deviceId: string, w: WindowAggregateWire): CpuWindow {
  return {
    deviceId, windowStart: w.start, windowEnd: w.end,
    p50: quantileOf(w, 0.5) ?? 0, p90: quantileOf(w, 0.9) ?? 0, p99: quantileOf(w, 0.99) ?? 0, count: w.count,
  };
}

/** Start of the newest pane holding cpuUsage (of any device, or of one device), or null. */
async function latestPane(dict: Dictionary, shards: ShardPool, deviceId?: string): Promise<number | null> {
  const task: MetricLatestTask = deviceId === undefined ? { kind: 'metricLatest', metric: CPU_METRIC } : { kind: 'metricLatest', metric: CPU_METRIC, deviceId };
  const parts = deviceId === undefined
    ? await shards.runAll<MetricLatestResult>(task)
    : [await shards.run<MetricLatestResult>(dict.shardOf(dict.lookupDevice(deviceId)), task)];
  let latest: number | null = null;
  for (const p of parts) if (p.start !== null && (latest === null || p.start > latest)) latest = p.start;
  return latest;
}

async function deviceWindows(dict: Dictionary, shards: ShardPool, deviceId: string, from: number, to: number, res: number): Promise<WindowAggregateWire[] | null> {
  const id = dict.lookupDevice(deviceId);
  if (id < 0) return null;
  const r = await shards.run<DeviceSeriesResult>(dict.shardOf(id), { kind: 'deviceSeries', deviceId, metric: CPU_METRIC, from, to, resolutionMs: res });
  return r.found ? r.windows : null;
}

function byP99(x: CpuWindow, y: CpuWindow): number {
  return (y.p99 - x.p99) || (x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : 0);
}

export async function topCpu(dict: Dictionary, shards: ShardPool, n: number, res: number): Promise<CpuWindow[]> {
  const latest = await latestPane(dict, shards);
  if (latest === null) return [];
  const to = Math.floor(latest / res) * res;
  const from = to - res;
  const parts = await shards.runAll<TopResult>({ kind: 'top', metric: CPU_METRIC, from, to, by: 'p99', n, resolutionMs: res });
  const rows: TopRow[] = parts.flatMap((p) => p.rows);
  rows.sort((x, y) => (y.value - x.value) || (x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : 0));
  rows.length = Math.min(rows.length, n);
  // p50 and p90 too: the window of each device (all three quantiles from one digest)
  const out: CpuWindow[] = [];
  await Promise.all(rows.map(async (row) => {
    const ws = await deviceWindows(dict, shards, row.deviceId, from, to, res);
    const w = ws?.find((x) => x.start === from);
    if (w !== undefined) out.push(cpuWindow(row.deviceId, w));
  }));
  return out.sort(byP99);
}

export async function recentCpu(dict: Dictionary, shards: ShardPool, deviceId: string, res: number): Promise<CpuWindow[]> {
  if (dict.lookupDevice(deviceId) < 0) throw new SluiceError('SLUICE_E_NOT_FOUND', `deviceId: no device ${JSON.stringify(deviceId)} has sent events`);
  const latest = await latestPane(dict, shards, deviceId);
  if (latest === null) return [];
  const until = latest + shards.paneMs;
  const windows = await deviceWindows(dict, shards, deviceId, until - RECENT_MS, until, res) ?? [];
  return windows.map((w) => cpuWindow(deviceId, w)).reverse();
}

function nParam(raw: string): number {
  if (!/^\d{1,7}$/.test(raw)) throw new SluiceError('SLUICE_E_BAD_PARAM', `n: ${JSON.stringify(raw)} is not an integer`);
  const n = Number(raw);
  if (n < 1 || n > TOP_N_MAX) throw new SluiceError('SLUICE_E_BAD_PARAM', `n: ${n} is out of range (allowed: 1..${TOP_N_MAX})`);
  return n;
}

export function registerMetricsRoutes(app: TemplatedApp, dict: Dictionary, shards: ShardPool, resolutionsMs: number[]): void {
  const res = seedWindowMs(resolutionsMs);
  app.get('/metrics/top/:n', (r: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res: r, aborted: false };
    r.onAborted(() => { a.aborted = true; });
    const raw = req.getParameter(0) ?? '';
    answerLater(a, (async (): Promise<[number, unknown]> => [200, await topCpu(dict, shards, nParam(decodePathParam('n', raw)), res)])(), 'top');
  });
  app.get('/metrics/devices/:deviceId', (r: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res: r, aborted: false };
    r.onAborted(() => { a.aborted = true; });
    const raw = req.getParameter(0) ?? '';
    answerLater(a, (async (): Promise<[number, unknown]> => {
      const deviceId = decodePathParam('deviceId', raw);
      if (!isValidDeviceId(deviceId)) {
        throw new SluiceError('SLUICE_E_BAD_PARAM', `deviceId: ${JSON.stringify(deviceId)} must be 1-${DEVICE_ID_LENGTH_MAX} characters of [A-Za-z0-9_.:-]`);
      }
      return [200, await recentCpu(dict, shards, deviceId, res)];
    })(), 'device windows');
  });
}
