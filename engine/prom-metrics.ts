/**
 * GET /metrics: the engine's own figures in Prometheus's text exposition format (prom-client),
 * every name prefixed `sluice_`.
 *
 * Nothing here runs per event. Each metric is read at scrape time from what the threads already
 * keep: the ingest and WAL counters of the front-end, the latency histograms the commit pipeline
 * fills per commit and per answered batch (latency-histogram.ts), and the figures each shard
 * worker publishes in its ring's stat slots (no task is sent to a worker, so a scrape never waits
 * behind a busy shard and never resets what /healthz reports). Process and GC metrics come from
 * prom-client's default collectors.
 */

import fs from 'node:fs';
import path from 'node:path';
import type { Registry } from 'prom-client';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Ingest } from './ingest';
import type { CommitPipeline } from './commit-pipeline';
import type { Checkpointer } from './checkpointer';
import type { ShardPool } from './shard-pool';
import type { Dictionary } from './dictionary';
import type { LatencyHistogram } from './latency-histogram';
import { sendBody, sendError } from './http-util';
import { remoteWriteCounters } from './remote-write-routes';

export interface MetricsSources {
  ingest: Ingest;
  pipeline: CommitPipeline;
  checkpointer: Checkpointer;
  shards: ShardPool;
  dict: Dictionary;
  dataDir: string;
  version: string;
  /** open connections by kind (ws_stream, ws_reports, mqtt) */
  connections: () => Record<string, number>;
}

type Labels = Record<string, string | number>;
interface Sample { value: number; labels?: Labels; metricName?: string }
type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * A metric read at scrape time: prom-client calls get() and formats what it returns (the shape
 * of its own metrics' get()), so no value is copied into prom-client between scrapes.
 */
class ScrapedMetric {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: MetricType, private readonly read: () => Sample[]) {}

  get(): { name: string; help: string; type: MetricType; values: Sample[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator };
  }
}

function histogramSamples(name: string, h: LatencyHistogram): Sample[] {
  const out: Sample[] = [];
  const cum = h.cumulative();
  for (let i = 0; i < h.bounds.length; i++) out.push({ metricName: `${name}_bucket`, labels: { le: h.bounds[i] }, value: cum[i] });
  out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: cum[cum.length - 1] });
  out.push({ metricName: `${name}_sum`, value: h.sum });
  out.push({ metricName: `${name}_count`, value: h.count });
  return out;
}

function fileBytes(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The registry of every Sluice metric (one per engine: tests start several in one process). */
export function createMetricsRegistry(src: MetricsSources): Registry {
  // loaded here, not at start-up: an engine nobody scrapes does not hold prom-client (~5 MB of RSS)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Registry: PromRegistry, collectDefaultMetrics } = require('prom-client') as typeof import('prom-client');
  const registry = new PromRegistry();
  collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  // gauges named *_total: `promtool check metrics` refuses them (counters only end in _total)
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`sluice_${name}`);
  }
  const add = (name: string, help: string, type: MetricType, read: () => Sample[]): void => {
    registry.registerMetric(new ScrapedMetric(`sluice_${name}`, help, type, read) as never);
  };
  const one = (value: number): Sample[] => [{ value }];
  const perShard = (pick: (r: ReturnType<ShardPool['ringStates']>[number]) => number | null): Sample[] =>
    src.shards.ringStates().flatMap((r) => {
      const v = pick(r);
      return v === null || !Number.isFinite(v) ? [] : [{ value: v, labels: { shard: r.shard } }];
    });
  const c = src.ingest.counters;
  const w = src.pipeline.counters;

  add('build_info', 'Sluice version and Node.js version (value 1)', 'gauge', () => [{ value: 1, labels: { version: src.version, node: process.version } }]);
  // ingest
  add('batches_total', 'batches submitted (HTTP requests, WebSocket frames, MQTT messages)', 'counter', () => one(c.batches));
  add('events_accepted_total', 'events accepted', 'counter', () => one(c.eventsAccepted));
  add('events_rejected_total', 'events rejected, by error code (the rest of their batch is kept)', 'counter', () => {
    const by = src.ingest.rejectedByCode;
    const codes = Object.keys(by);
    return codes.length === 0 ? [{ value: 0, labels: { code: 'none' } }] : codes.map((code) => ({ value: by[code], labels: { code } }));
  });
  add('batches_refused_total', 'batches refused whole, by reason (backpressure: the rings stayed full; storage: WAL budget or fault; ...)', 'counter', () => [
    { value: c.backpressure, labels: { reason: 'backpressure' } },
    { value: c.duplicates, labels: { reason: 'duplicate' } },
    { value: c.gaps, labels: { reason: 'sequence_gap' } },
    { value: c.unavailable, labels: { reason: 'unavailable' } },
    { value: c.batchesRefused, labels: { reason: 'invalid' } },
  ]);
  add('devices', 'devices interned', 'gauge', () => one(src.dict.deviceCount));
  add('metric_names', 'metric names interned', 'gauge', () => one(src.dict.metricNames.length));
  // WAL and acks
  add('wal_commit_seconds', 'WAL write issued to durable (durable mode)', 'histogram', () => histogramSamples('sluice_wal_commit_seconds', src.pipeline.walCommitSeconds));
  add('ack_seconds', 'a batch admitted to its answer (durable: after its WAL commit)', 'histogram', () => histogramSamples('sluice_ack_seconds', src.pipeline.ackSeconds));
  add('wal_appends_total', 'WAL entries written (one per commit group)', 'counter', () => one(w.walAppends));
  add('wal_written_bytes_total', 'bytes of WAL entries written', 'counter', () => one(w.walBytesWritten));
  add('wal_failures_total', 'WAL writes that failed', 'counter', () => one(w.walFailures));
  add('wal_bytes', 'bytes of WAL entries held (not yet covered by a checkpoint)', 'gauge', () => one(src.pipeline.walBytes));
  add('pending_commits', 'commit groups waiting for their WAL write', 'gauge', () => one(src.pipeline.pendingCount));
  add('storage_fault', '1 while storage refuses writes (ingest answers 503)', 'gauge', () => one(src.pipeline.faultReason === null ? 0 : 1));
  // shards
  add('ring_used_bytes', 'bytes in the shard ring not yet applied by its worker', 'gauge', () => perShard((r) => r.ringUsedBytes));
  add('ring_capacity_bytes', 'shard ring capacity', 'gauge', () => perShard((r) => r.ringCapacityBytes));
  add('events_applied_total', 'events applied by the shard worker', 'counter', () => perShard((r) => r.eventsApplied));
  add('series', 'series (device x metric) held by the shard', 'gauge', () => perShard((r) => r.series));
  add('head_readings', 'readings held in the shard head (open time slices)', 'gauge', () => perShard((r) => r.panes));
  add('watermark_lag_seconds', 'wall clock minus the shard watermark (how far event time trails real time)', 'gauge',
    () => perShard((r) => (r.watermark === null ? null : (Date.now() - r.watermark) / 1000)));
  add('max_event_time_seconds', 'newest event time the shard applied (epoch seconds)', 'gauge', () => perShard((r) => (r.maxEventTime === null ? null : r.maxEventTime / 1000)));
  add('late_events_total', 'events beyond --late-horizon (kept in the late log, not aggregated)', 'counter', () => perShard((r) => r.lateEvents));
  add('corrected_events_total', 'events for final windows, kept as corrections', 'counter', () => perShard((r) => r.correctedEvents));
  add('seal_backlog_slices', 'time slices queued or being sealed into blocks', 'gauge', () => perShard((r) => r.sealQueued));
  add('sealed_slices_total', 'time slices sealed into blocks', 'counter', () => perShard((r) => r.slicesSealed));
  add('shard_heartbeat_age_seconds', 'time since the shard worker last went through its loop', 'gauge', () => perShard((r) => r.heartbeatAgeMs / 1000));
  // checkpoints and storage
  add('checkpoints_total', 'checkpoints written', 'counter', () => one(src.checkpointer.written));
  add('checkpoint_failures_total', 'checkpoint cycles that failed', 'counter', () => one(src.checkpointer.failures));
  add('checkpoint_seconds', 'checkpoint cycle duration', 'histogram', () => histogramSamples('sluice_checkpoint_seconds', src.checkpointer.durationSeconds));
  add('checkpoint_bytes', 'stored checkpoint size (all shards), as of the last cycle', 'gauge', () => one(src.checkpointer.last?.bytes ?? 0));
  add('checkpoint_written_bytes', 'bytes the last checkpoint cycle wrote', 'gauge', () => one(src.checkpointer.last?.written ?? 0));
  add('lmdb_file_bytes', 'size of the LMDB data file', 'gauge', () => one(fileBytes(path.join(src.dataDir, 'lmdb', 'data.mdb'))));
  // Prometheus remote-write (engine/remote-write-routes.ts)
  add('remote_write_requests_total', 'Prometheus remote-write requests', 'counter', () => one(remoteWriteCounters.requests));
  add('remote_write_samples_total', 'remote-write samples by outcome (stale markers and NaN/Inf are skipped, not readings)', 'counter', () => [
    { value: remoteWriteCounters.samplesWritten, labels: { outcome: 'written' } },
    { value: remoteWriteCounters.samplesRefused, labels: { outcome: 'refused' } },
    { value: remoteWriteCounters.staleMarkers, labels: { outcome: 'stale_marker' } },
    { value: remoteWriteCounters.nonFinite, labels: { outcome: 'non_finite' } },
  ]);
  // connections
  add('connections', 'open connections by kind', 'gauge', () => Object.entries(src.connections()).map(([kind, n]) => ({ value: n, labels: { kind } })));
  return registry;
}

/** GET /metrics; the registry is made at the first scrape (process and GC metrics count from then). */
export function registerPromMetricsRoute(app: TemplatedApp, makeRegistry: () => Registry): void {
  let registry: Registry | null = null;
  app.get('/metrics', (res: HttpResponse, _req: HttpRequest) => {
    const a = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    registry ??= makeRegistry();
    // sendBody / sendError cork and never write to an aborted request: nothing can escape the promise
    registry.metrics().then(
      (text) => sendBody(a, 200, (registry as Registry).contentType, text),
      (err: Error) => sendError(a, 500, 'SLUICE_E_INTERNAL', `metrics: ${err.message}`),
    );
  });
}

