/**
 * Assembles the engine: shard rings and workers, the dictionary and admission, the uWS app with
 * its routes, and the listen socket. start() resolves once the port is bound; stop() is the
 * graceful path (stop accepting, drain the rings, stop the workers).
 */

import fs from 'node:fs';
import os from 'node:os';
import type { us_listen_socket, WebSocket } from 'uWebSockets.js';
import type { SluiceConfig } from './config';
import type { Logger } from './logger';
import { loadNativeUws } from './uws';
import { Dictionary } from './dictionary';
import { BatchStager } from './batch-stager';
import { Ingest } from './ingest';
import { ShardPool } from './shard-pool';
import { registerHttpIngest } from './http-ingest';
import { registerWsStream, type StreamUser } from './ws-stream';
import { registerQueryRoutes } from './query-routes';
import { DEBUG_ROUTES_ENV, registerDebugRoutes } from './debug-routes';

const DRAIN_TIMEOUT_MS = 30_000;

export interface RunningEngine {
  port: number;
  stop(reason: string): Promise<void>;
}

export async function startEngine(config: SluiceConfig, log: Logger,
  onFatal: (err: Error) => void): Promise<RunningEngine> {
  if (os.endianness() !== 'LE') throw new Error('Sluice needs a little-endian machine (ring records are read through typed arrays)');
  const uws = loadNativeUws();
  fs.mkdirSync(config.dataDir, { recursive: true });

  const shards = new ShardPool(config, (shard, err) => {
    log.fatal({ shard, err }, 'shard worker failed');
    onFatal(err);
  });
  const dict = new Dictionary(config.shards, config.devicesMax);
  const stager = new BatchStager(dict, shards.producers, config.metricsPerEventMax);
  const ingest = new Ingest(config, stager);
  let accepting = true;
  const isAccepting = (): boolean => accepting;
  const sockets = new Set<WebSocket<StreamUser>>();
  const startedAt = Date.now();

  const app = uws.App();
  registerHttpIngest(app, ingest, { bodyBytesMax: config.bodyBytesMax, backpressureWaitMs: config.backpressureWaitMs, isAccepting });
  registerWsStream(app, uws, ingest, { bodyBytesMax: config.bodyBytesMax, isAccepting }, sockets);
  if (process.env[DEBUG_ROUTES_ENV] === '1') {
    registerDebugRoutes(app, shards);
    log.warn(`${DEBUG_ROUTES_ENV}=1: fault-injection routes are enabled (/v1/debug/*)`);
  }
  registerQueryRoutes(app, { config, dict, shards, ingest, startedAt, isAccepting });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (s) => {
      if (s === false) reject(new Error(`cannot listen on ${config.host}:${config.port} (port in use or address not available)`));
      else resolve(s);
    });
  });
  const port = uws.us_socket_local_port(listenSocket);

  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    if (stopping !== null) return stopping;
    stopping = (async () => {
      const t0 = Date.now();
      accepting = false;
      uws.us_listen_socket_close(listenSocket);
      for (const ws of sockets) ws.end(1001, 'server shutting down');
      const drained = await shards.drain(DRAIN_TIMEOUT_MS);
      const rings = shards.ringStates();
      await shards.destroy();
      log.info({ reason, drained, durationMs: Date.now() - t0, eventsApplied: rings.reduce((n, r) => n + r.eventsApplied, 0), ingest: ingest.counters },
        drained ? 'stopped: rings drained, workers stopped' : 'stopped: rings NOT drained before the timeout');
    })();
    return stopping;
  };
  return { port, stop };
}
