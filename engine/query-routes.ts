/**
 * Query routes: fan out to the shards that hold the data, merge, answer JSON.
 *
 *   GET /v1/devices/{deviceId}/metrics/{metric}?from=&to=&q=&resolution=
 *   GET /v1/metrics/{metric}?from=&to=&q=&resolution=        fleet merge + distinct devices
 *   GET /v1/metrics/{metric}/top?n=&by=&from=&to=
 *   GET /v1/devices?prefix=&limit=
 *   GET /healthz
 *
 * A device lives on one shard, so a device query is one task and distinct-device counts add up
 * exactly across shards. Each worker drains its ring before answering: a query sees every event
 * acknowledged before it was sent.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import {
  SluiceError, isValidDeviceId, isValidMetricName, mergeAggregate, toWindowJson, formatDuration,
  type DeviceSeriesResult, type FleetSeriesResult, type TopResult, type DevicesResult, type ShardStats,
  type WindowAggregateWire, type TopRow, type DeviceEntry,
} from '../protocol';
import type { SluiceConfig } from './config';
import type { Dictionary } from './dictionary';
import type { ShardPool } from './shard-pool';
import type { Ingest } from './ingest';
import type { CommitPipeline } from './commit-pipeline';
import type { Checkpointer } from './checkpointer';
import type { FaultGuard } from './fault-guard';
import { type Answerable, sendError, sendJson } from './http-util';
import {
  DEVICES_LIMIT_MAX, TOP_N_MAX, decodePathParam, parseIntParam, parseQuantiles, parseRange,
  parseResolution, parseTopBy,
} from './query-params';

import type { MqttIngest } from './mqtt-ingest';
import type { ConnectionLimits } from './connection-limits';

export interface QueryContext {
  config: SluiceConfig;
  dict: Dictionary;
  shards: ShardPool;
  ingest: Ingest;
  pipeline: CommitPipeline;
  checkpointer: Checkpointer;
  guard: FaultGuard;
  startedAt: number;
  isAccepting: () => boolean;
  /** the MQTT subscriber, null when --mqtt-url is off */
  mqtt: MqttIngest | null;
  /** connection counts and the limits' counters (engine/connection-limits.ts) */
  limits: ConnectionLimits;
}

const HEALTH_TIMEOUT_MS = 2000;
/** a shard whose loop has not turned for this long is reported unresponsive (503) */
const UNRESPONSIVE_MS = 30_000;

type Handler = (params: string[], query: URLSearchParams, ctx: QueryContext) => Promise<[number, unknown]>;

function route(app: TemplatedApp, pattern: string, paramCount: number, ctx: QueryContext, handler: Handler): void {
  app.get(pattern, (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    // uWS request data is only valid during this call: copy it before the first await
    const params: string[] = [];
    for (let i = 0; i < paramCount; i++) params.push(req.getParameter(i) ?? '');
    const query = new URLSearchParams(req.getQuery() ?? '');
    handler(params, query, ctx).then(
      ([status, body]) => sendJson(a, status, JSON.stringify(body)),
      (err: unknown) => {
        if (err instanceof SluiceError) {
          sendError(a, err.code === 'SLUICE_E_NOT_FOUND' ? 404 : 400, err.code, err.message);
        } else {
          sendError(a, 500, 'SLUICE_E_INTERNAL', `query failed: ${(err as Error).message}`);
        }
      });
  });
}

function metricParam(raw: string): string {
  const metric = decodePathParam('metric', raw);
  if (!isValidMetricName(metric)) throw new SluiceError('SLUICE_E_BAD_PARAM', `metric: ${JSON.stringify(metric)} must be 1-64 characters of [A-Za-z0-9_.]`);
  return metric;
}

const deviceSeries: Handler = async (params, query, ctx) => {
  const deviceId = decodePathParam('deviceId', params[0]);
  if (!isValidDeviceId(deviceId)) throw new SluiceError('SLUICE_E_BAD_PARAM', `deviceId: ${JSON.stringify(deviceId)} must be 1-128 characters of [A-Za-z0-9_.:-]`);
  const metric = metricParam(params[1]);
  const range = parseRange(query, Date.now());
  const qs = parseQuantiles(query, ctx.config.quantiles);
  const resolutionMs = parseResolution(query, ctx.config.resolutionsMs, range);
  const id = ctx.dict.lookupDevice(deviceId);
  if (id < 0) throw new SluiceError('SLUICE_E_NOT_FOUND', `deviceId: no device ${JSON.stringify(deviceId)} has sent events`);
  const r = await ctx.shards.run<DeviceSeriesResult>(ctx.dict.shardOf(id), {
    kind: 'deviceSeries', deviceId, metric, from: range.from, to: range.to, resolutionMs,
  });
  const { histogramMin: hmin, histogramMax: hmax } = ctx.config;
  return [200, {
    deviceId, metric, resolution: formatDuration(resolutionMs), from: range.from, to: range.to,
    windows: r.windows.map((w) => toWindowJson(w, qs, hmin, hmax)),
  }];
};

const fleetSeries: Handler = async (params, query, ctx) => {
  const metric = metricParam(params[0]);
  const range = parseRange(query, Date.now());
  const qs = parseQuantiles(query, ctx.config.quantiles);
  const resolutionMs = parseResolution(query, ctx.config.resolutionsMs, range);
  const parts = await ctx.shards.runAll<FleetSeriesResult>({ kind: 'fleetSeries', metric, from: range.from, to: range.to, resolutionMs });
  const byStart = new Map<number, WindowAggregateWire>();
  let devices = 0;
  for (const part of parts) {
    devices += part.devices;
    for (const w of part.windows) {
      const into = byStart.get(w.start);
      if (into === undefined) byStart.set(w.start, w);
      else mergeAggregate(into, w);
    }
  }
  const windows = [...byStart.values()].sort((x, y) => x.start - y.start);
  const { histogramMin: hmin, histogramMax: hmax } = ctx.config;
  return [200, {
    metric, resolution: formatDuration(resolutionMs), from: range.from, to: range.to, devices,
    windows: windows.map((w) => toWindowJson(w, qs, hmin, hmax)),
  }];
};

const topDevices: Handler = async (params, query, ctx) => {
  const metric = metricParam(params[0]);
  const range = parseRange(query, Date.now());
  const n = parseIntParam(query, 'n', 10, 1, TOP_N_MAX);
  const by = parseTopBy(query);
  const resolutionMs = parseResolution(query, ctx.config.resolutionsMs, range);
  const parts = await ctx.shards.runAll<TopResult>({ kind: 'top', metric, from: range.from, to: range.to, by, n, resolutionMs });
  const rows: TopRow[] = parts.flatMap((p) => p.rows);
  rows.sort((x, y) => (y.value - x.value) || (x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : 0));
  return [200, { metric, by, from: range.from, to: range.to, devices: rows.slice(0, n) }];
};

const listDevices: Handler = async (_params, query, ctx) => {
  const prefix = query.get('prefix') ?? '';
  if (prefix.length > 128) throw new SluiceError('SLUICE_E_BAD_PARAM', 'prefix: at most 128 characters');
  const limit = parseIntParam(query, 'limit', 100, 1, DEVICES_LIMIT_MAX);
  const parts = await ctx.shards.runAll<DevicesResult>({ kind: 'devices', prefix, limit });
  const all: DeviceEntry[] = parts.flatMap((p) => p.devices);
  all.sort((x, y) => (x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : 0));
  return [200, { devices: all.slice(0, limit), truncated: all.length > limit }];
};

/**
 * The front-end thread's event-loop blocks since the previous /healthz (10 ms resolution): a slow
 * answer is either this thread (decoding, a GC, a group commit's callbacks) or a shard's.
 */
const frontLoop = monitorEventLoopDelay({ resolution: 10 });

const health: Handler = async (_params, _query, ctx) => {
  const t0 = performance.now();
  const stats = await Promise.all(ctx.shards.shards.map((s) => withTimeout(
    ctx.shards.run<ShardStats>(s.shard, { kind: 'stats' }), HEALTH_TIMEOUT_MS)));
  const rings = ctx.shards.ringStates();
  const shards = rings.map((r, i) => {
    const st = stats[i];
    // no answer in time: busy (closing windows, a checkpoint) while its loop still turns; the
    // figures are then the ones it last published
    if (st === null) return { ...r, state: r.heartbeatAgeMs < UNRESPONSIVE_MS ? 'busy' : 'unresponsive' };
    return {
      ...r, state: 'ok', devices: st.devices, series: st.series, panes: st.panes,
      watermark: st.watermark ?? null, maxEventTime: st.maxEventTime ?? null, lateEvents: st.lateEvents ?? 0, correctedEvents: st.correctedEvents ?? 0,
      rollupWriteErrors: st.rollupWriteErrors ?? 0, paneStoreBytes: st.paneStoreBytes, heapUsedBytes: st.heapUsedBytes, memory: st.memory ?? null, seal: st.seal ?? null, summaryCache: st.summaryCache ?? null,
      loopDelay: st.loopDelay ?? null, restore: st.restore ?? null,
    };
  });
  const ok = shards.every((s) => s.state !== 'unresponsive');
  const frontEnd = { loopP99Ms: frontLoop.percentile(99) / 1e6, loopMaxMs: frontLoop.max / 1e6, shardStatsMs: performance.now() - t0 };
  frontLoop.reset();
  return [ok ? 200 : 503, {
    status: ok ? (ctx.isAccepting() ? 'ok' : 'stopping') : 'degraded',
    uptimeMs: Date.now() - ctx.startedAt,
    devices: ctx.dict.deviceCount,
    metrics: ctx.dict.metricNames.length,
    ingest: ctx.ingest.counters,
    // unexpected exceptions on the front-end thread, each answered 500 with its request id
    faults: { count: ctx.guard.faults, lastRequestId: ctx.guard.lastFaultId },
    // the process (all threads): rss; the front-end thread's V8 heap and the buffers outside it
    memory: frontEndMemory(),
    frontEnd,
    storage: {
      ackMode: ctx.pipeline.mode,
      fault: ctx.pipeline.faultReason,
      walBytes: ctx.pipeline.walBytes,
      checkpointBytes: ctx.pipeline.checkpointBytes.reduce((a, b) => a + b, 0),
      pendingCommits: ctx.pipeline.pendingCount,
      wal: ctx.pipeline.counters,
      lastCheckpoint: ctx.checkpointer.last,
      checkpointFailures: ctx.checkpointer.failures,
    },
    // the MQTT subscriber's connection (null: --mqtt-url is off)
    mqtt: ctx.mqtt === null ? null : ctx.mqtt.status(),
    // --connections-max, --ws-max-backpressure, --ws-inflight-max: what is open and what was refused or closed
    limits: ctx.limits.snapshot(),
    shards,
  }];
};

function frontEndMemory(): { rssBytes: number; heapTotalBytes: number; heapUsedBytes: number; externalBytes: number; arrayBuffersBytes: number } {
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapTotalBytes: m.heapTotal, heapUsedBytes: m.heapUsed, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    p.then((v) => { clearTimeout(timer); resolve(v); }, () => { clearTimeout(timer); resolve(null); });
  });
}

export function registerQueryRoutes(app: TemplatedApp, ctx: QueryContext): void {
  frontLoop.enable();
  route(app, '/v1/devices/:deviceId/metrics/:metric', 2, ctx, deviceSeries);
  route(app, '/v1/metrics/:metric/top', 1, ctx, topDevices);
  route(app, '/v1/metrics/:metric', 1, ctx, fleetSeries);
  route(app, '/v1/devices', 0, ctx, listDevices);
  route(app, '/healthz', 0, ctx, health);
  // the root is for people: the API's page
  app.get('/', (res) => {
    res.cork(() => res.writeStatus('302 Found').writeHeader('Location', '/docs').end());
  });
  app.any('/*', (res) => {
    sendError({ res, aborted: false }, 404, 'SLUICE_E_NOT_FOUND', 'no such route: see the README for the routes Sluice answers');
  });
}
