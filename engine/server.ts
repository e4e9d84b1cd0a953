/**
 * Assembles the engine: storage and recovery, shard rings and workers, admission and the commit
 * pipeline, checkpoints, the uWS app with its routes, and the listen socket. startEngine()
 * resolves once recovery is done and the port is bound; stop() is the graceful path.
 */

import path from 'node:path';
import os from 'node:os';
import type { us_listen_socket, WebSocket } from 'uWebSockets.js';
import { DataDirLock, RollupStore, Store } from '../storage';
import type { SluiceConfig } from './config';
import type { Logger } from './logger';
import { loadNativeUws } from './uws';
import { checkTlsFiles, sslAppOptions } from './tls';
import { ConnectionLimits } from './connection-limits';
import { Dictionary } from './dictionary';
import { BatchStager } from './batch-stager';
import { CommitPipeline } from './commit-pipeline';
import { Checkpointer } from './checkpointer';
import { Ingest } from './ingest';
import { planRecovery, readCheckpoints, replayWal } from './recovery';
import { ShardPool } from './shard-pool';
import { registerHttpIngest } from './http-ingest';
import { registerWsStream, type StreamUser } from './ws-stream';
import { registerQueryRoutes } from './query-routes';
import { DEBUG_ROUTES_ENV, registerDebugRoutes } from './debug-routes';
import { registerLateRoutes } from './late-routes';
import { Retention } from './retention';
import { Reporter } from './reporter';
import { registerReportRoutes } from './report-routes';
import { recordRoutes } from './route-recorder';
import { FaultGuard } from './fault-guard';
import { answerHead } from './head-routes';
import { registerTelemetryRoutes } from './telemetry-routes';
import { registerAnalyticsRoutes } from './analytics-routes';
import { registerMetricsRoutes } from './metrics-routes';
import { registerComputeRoutes } from './compute-routes';
import { assertDocumented, packageVersion, registerOpenApi } from './openapi';
import { createMetricsRegistry, registerPromMetricsRoute } from './prom-metrics';
import { registerPromApiRoutes } from './prom-api-routes';
import { registerDocsRoutes } from './docs-routes';
import { registerLineProtocolRoutes } from './line-protocol-routes';
import { registerRemoteWriteRoutes } from './remote-write-routes';
import { MqttIngest, registerMqttRoutes } from './mqtt-ingest';
import { registerUiRoutes } from './ui-routes';
import { Auth } from './auth';
import { ensureAdminToken, registerTokenRoutes } from './token-routes';
import type { ReportPart, StoredCheckpoint } from '../protocol';

const DRAIN_TIMEOUT_MS = 30_000;
const RETENTION_INTERVAL_MS = 5_000;

export interface RunningEngine {
  port: number;
  stop(reason: string): Promise<void>;
}

export async function startEngine(config: SluiceConfig, log: Logger,
  onFatal: (err: Error) => void): Promise<RunningEngine> {
  if (os.endianness() !== 'LE') throw new Error('Sluice needs a little-endian machine (ring records are read through typed arrays)');
  const uws = loadNativeUws();
  // before anything is opened, and before uWS, which would listen on files it cannot use
  const tls = config.tlsCert === '' ? null : checkTlsFiles(config.tlsCert, config.tlsKey);
  const t0 = Date.now();
  // before LMDB is opened: a second engine on this dir exits here, naming the holder
  const lock = await DataDirLock.acquire(config.dataDir);
  const store = Store.open(config.dataDir);
  const dict = new Dictionary(config.shards, config.devicesMax);
  const guard = new FaultGuard(log);

  // the workers start from their checkpoints: read them first, start the pools (each worker
  // restores its checkpoint on its thread), and load the names meanwhile
  const read = readCheckpoints(store, config);
  const shards = new ShardPool(config, read.checkpoints, (shard, err) => {
    log.fatal({ shard, err }, 'shard worker failed');
    onFatal(err);
  });
  const plan = planRecovery(store, config, dict, read);
  const stager = new BatchStager(dict, shards.producers, config.metricsPerEventMax);
  const pipeline = new CommitPipeline(store, shards.producers, config.ackMode, config.maxDbBytes, log, guard);
  const ingest = new Ingest(config, dict, stager, pipeline, guard);
  for (const { id, seq } of plan.deviceSeqs) ingest.restoreDeviceSeq(id, seq);
  if (plan.missingDeviceNames.length > 0) {
    log.warn({ ids: plan.missingDeviceNames.slice(0, 20), count: plan.missingDeviceNames.length },
      'device names lost in an earlier storage fault: those devices are listed under placeholder names');
  }

  const tPlanned = Date.now();
  // the workers answer once restored: their known names, so that only the others are sent again
  const known = await shards.runAll<Uint8Array>({ kind: 'knownDevices' });
  const tRestored = Date.now();
  const replay = await replayWal(store, plan, dict, stager, shards.producers, pipeline, ingest, known);
  const tReplayed = Date.now();
  await shards.drain(DRAIN_TIMEOUT_MS);
  const tDrained = Date.now();
  for (let s = 0; s < plan.checkpoints.length; s++) pipeline.checkpointBytes[s] = storedCheckpointBytes(plan.checkpoints[s] ?? null);
  // written with the next WAL entry (Store.flushDeviceNames, from the commit pipeline)
  dict.onNewDevice = (id) => store.noteNewDeviceName(id, dict.devices);
  dict.onNewMetric = (id, name) => store.putMetricName(id, name);
  // a name whose write was lost in a storage fault would be missing after a restart: write all again
  pipeline.onRecovered = () => {
    store.putAllDeviceNames(dict.devices);
    for (let id = 0; id < dict.metricNames.length; id++) store.putMetricName(id, dict.metricNames[id]);
  };
  log.info({
    ...replay, durationMs: Date.now() - t0, devices: plan.devices, metrics: plan.metrics,
    // planning (checkpoints read, names, device seqs), the wait for the workers' restore from
    // their checkpoints (begun before planning), the WAL read into the rings, the workers applying it
    timings: { ...plan.timings, planMs: tPlanned - t0, restoreWaitMs: tRestored - tPlanned, replayMs: tReplayed - tRestored, workersMs: tDrained - tReplayed },
  },
    `recovery: ${replay.checkpointsLoaded} checkpoint(s) loaded, ${replay.walEntriesReplayed} WAL entries replayed (${replay.eventsReplayed} events) in ${Date.now() - t0} ms`);

  // the late log ('l' and 'c' keys): read by GET /v1/late
  const rollups = RollupStore.open(config.dataDir);
  const retention = new Retention(config, shards, log);
  retention.start(RETENTION_INTERVAL_MS);
  const checkpointer = new Checkpointer(shards, stager, pipeline, store, ingest, log);
  // the replayed WAL is now in the workers: checkpoint it at once, so a crash soon after does not replay it again
  if (replay.walEntriesReplayed > 0) await checkpointer.run('recovery');
  checkpointer.start(config.checkpointIntervalMs);
  // the replayed WAL is not traffic of the first report period: start the counts from zero
  await shards.runAll({ kind: 'report' });
  const reporter = new Reporter({
    periodMs: config.reportPeriodMs, historyMax: config.reportHistory, divisions: config.histogramDivisions,
    min: config.histogramMin, max: config.histogramMax, metrics: config.reportMetrics,
  }, () => shards.runAll<ReportPart[]>({ kind: 'report' }), log);
  reporter.start();

  const isAccepting = (): boolean => ingest.accepting;
  const sockets = new Set<WebSocket<StreamUser>>();
  const startedAt = Date.now();
  // routes are recorded so that the OpenAPI document is checked against them (assertDocumented),
  // answer HEAD beside GET, and are guarded so that no exception in a handler ends the process
  // tokens and roles (engine/auth.ts): inside the fault guard, so a fault in a check is answered
  // like any other; with --auth off the app is not wrapped at all
  const auth = new Auth(config.auth, store.tokens);
  if (config.auth === 'on') {
    await ensureAdminToken(store.tokens, config.adminTokenFile || path.join(config.dataDir, 'admin.token'), log);
  } else if (!isLoopback(config.host)) {
    log.warn({ host: config.host }, `--auth off on ${config.host}: anyone who can reach this port can write and read everything (--auth on, or listen on 127.0.0.1)`);
  }
  // --connections-max: checked first (inside the fault guard), so a refused client costs no auth lookup
  const limits = new ConnectionLimits(config.connectionsMax);
  const app = recordRoutes(answerHead(auth.wrap(limits.wrap(guard.guardRoutes(tls === null ? uws.App() : uws.SSLApp(sslAppOptions(tls)))))));
  registerHttpIngest(app, ingest, { bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs });
  registerWsStream(app, uws, ingest, {
    bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs, isAccepting,
    backpressureBytesMax: config.wsBackpressureMax, inflightMax: config.wsInflightMax, counters: limits,
  }, sockets);
  if (process.env[DEBUG_ROUTES_ENV] === '1') {
    registerDebugRoutes(app, shards, pipeline);
    log.warn(`${DEBUG_ROUTES_ENV}=1: fault-injection routes are enabled (/v1/debug/*)`);
  }
  registerLateRoutes(app, rollups, dict, shards);
  const reportRoutes = registerReportRoutes(app, uws, reporter, { metrics: config.reportMetrics });
  registerTelemetryRoutes(app, ingest, { bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs });
  registerAnalyticsRoutes(app, ingest, shards, { backpressureWaitMs: config.backpressureWaitMs, resolutionsMs: config.resolutionsMs });
  registerMetricsRoutes(app, dict, shards, config.resolutionsMs);
  registerComputeRoutes(app, dict, shards, { bodyBytesMax: config.bodyBytesMax });
  registerOpenApi(app);
  registerDocsRoutes(app);
  registerLineProtocolRoutes(app, ingest, { bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs, deviceTag: config.lpDeviceTag });
  registerRemoteWriteRoutes(app, ingest, { bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs, deviceLabel: config.promDeviceLabel, batchEventsMax: config.batchEventsMax });
  const mqtt = config.mqttUrl === '' ? null : new MqttIngest({
    url: config.mqttUrl, topic: config.mqttTopic, clientId: config.mqttClientId,
    bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs,
  }, ingest, dict, log);
  registerMqttRoutes(app, mqtt);
  registerPromMetricsRoute(app, () => createMetricsRegistry({
    ingest, pipeline, checkpointer, shards, dict, dataDir: config.dataDir, version: packageVersion(),
    connections: () => ({ ws_stream: sockets.size, ws_reports: reportRoutes.sockets.size, mqtt: mqtt !== null && mqtt.status().state === 'connected' ? 1 : 0 }),
  }));
  registerPromApiRoutes(app, { config, dict, shards, version: packageVersion() });
  registerTokenRoutes(app, store.tokens, auth, log);
  const ui = registerUiRoutes(app, { config, ingest, pipeline, shards, dict });
  registerQueryRoutes(app, { config, dict, shards, ingest, pipeline, checkpointer, guard, startedAt, isAccepting, mqtt, limits });
  assertDocumented(app);

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (s) => {
      if (s === false) reject(new Error(`cannot listen on ${config.host}:${config.port} (port in use or address not available)`));
      else resolve(s);
    });
  });
  const port = uws.us_socket_local_port(listenSocket);
  limits.port = port;
  if (tls !== null) log.info({ cert: tls.cert, key: tls.key, subject: tls.subject, validTo: tls.validTo }, `TLS: HTTPS and WSS on port ${port} (${tls.subject}, valid to ${tls.validTo})`);
  // after recovery and the listen: messages the broker kept for this session are then admitted like any batch
  if (mqtt !== null) await mqtt.start();

  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    if (stopping !== null) return stopping;
    stopping = (async () => {
      const t1 = Date.now();
      // first: no new MQTT message is taken; those not yet acknowledged stay with the broker
      if (mqtt !== null) await mqtt.stop();
      ingest.accepting = false;
      uws.us_listen_socket_close(listenSocket);
      for (const ws of sockets) ws.end(1001, 'server shutting down');
      checkpointer.stop();
      retention.stop();
      await pipeline.idle();
      const drained = await shards.drain(DRAIN_TIMEOUT_MS);
      // seals in progress finish (their slices leave the head): a smaller final checkpoint, and the
      // blocks are on disk for whoever opens the data dir next
      await shards.runAll({ kind: 'sync' }).catch((err: Error) => log.warn({ err: err.message }, 'shutdown: shards did not settle their writes'));
      reporter.stop();
      await reporter.flush();
      reportRoutes.close();
      ui.close();
      const final = await checkpointer.run('shutdown');
      pipeline.stop();
      const rings = shards.ringStates();
      await shards.destroy();
      store.flushDeviceNames(); // names of refused batches only: nothing durable uses them, kept anyway
      await store.close();
      lock.release();
      log.info({
        reason, drained, durationMs: Date.now() - t1, checkpoint: final,
        eventsApplied: rings.reduce((n, r) => n + r.eventsApplied, 0), ingest: ingest.counters,
      }, drained ? `stopped in ${Date.now() - t1} ms: rings drained, final checkpoint written` : 'stopped: rings NOT drained before the timeout');
    })();
    return stopping;
  };
  return { port, stop };
}

function storedCheckpointBytes(c: StoredCheckpoint | null): number {
  return c === null ? 0 : c.groups.reduce((n, g) => n + g.bytes.byteLength, c.base.byteLength);
}

/** 127.0.0.0/8, ::1, localhost: no one else can reach the port */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
