/**
 * The live dashboard (issue #15):
 *
 *   GET /ui, /ui/, /ui/{file}, /ui/vendor/{file}   the page and its files (ui-static.ts)
 *   WS  /v1/ui/stream                              a LiveFrame (ui-feed.ts) as JSON once a second
 *
 * The feed: one timer samples the engine's counters and publishes one frame to the uWS topic
 * UI_TOPIC (uWS fans it out in C++); it runs only while a socket is open, so an engine nobody
 * watches pays nothing. A new socket first gets a `hello` frame (shard count, tick). What a client
 * sends is ignored; a frame over UI_WS_PAYLOAD_BYTES_MAX makes uWS close that socket, and a
 * client that stops reading is closed past UI_WS_BACKPRESSURE_BYTES_MAX. close() stops the timer
 * and ends every socket (server shutdown). Front-end thread only.
 */

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { Ingest } from './ingest';
import type { CommitPipeline } from './commit-pipeline';
import type { ShardPool } from './shard-pool';
import type { Dictionary } from './dictionary';
import type { SluiceConfig } from './config';
import { LiveSampler, AVG_INTERVALS, type FeedSnapshot } from './ui-feed';
import { loadUiAssets, registerUiStatic } from './ui-static';

export interface UiSources {
  config: SluiceConfig;
  ingest: Ingest;
  pipeline: CommitPipeline;
  shards: ShardPool;
  dict: Dictionary;
}

export const UI_TOPIC = 'ui/live';
export const UI_TICK_MS = 1000;
// a frame is ~100 bytes + ~110 per shard: 256 KiB is minutes of frames a client has not read
const UI_WS_BACKPRESSURE_BYTES_MAX = 256 * 1024;
const UI_WS_PAYLOAD_BYTES_MAX = 1024;
const UI_WS_IDLE_TIMEOUT_S = 120;

function snapshot(src: UiSources): FeedSnapshot {
  return {
    monoMs: performance.now(),
    wallMs: Date.now(),
    eventsAccepted: src.ingest.counters.eventsAccepted,
    ackCounts: Float64Array.from(src.pipeline.ackSeconds.counts),
    shards: src.shards.ringStates().map((r) => ({
      shard: r.shard, ringUsedBytes: r.ringUsedBytes, ringCapacityBytes: r.ringCapacityBytes,
      eventsApplied: r.eventsApplied, lateEvents: r.lateEvents, correctedEvents: r.correctedEvents,
    })),
  };
}

export interface UiRoutes {
  /** whether the feed's timer runs (it must not while nobody watches) */
  running(): boolean;
  /** stops the feed and ends every stream socket (1001 going away) */
  close(): void;
}

/** Registers the dashboard routes; returns what the server calls at shutdown. */
export function registerUiRoutes(app: TemplatedApp, src: UiSources): UiRoutes {
  registerUiStatic(app, loadUiAssets());
  const sampler = new LiveSampler(src.pipeline.ackSeconds.bounds);
  const sockets = new Set<WebSocket<unknown>>();
  let timer: NodeJS.Timeout | null = null;
  const hello = JSON.stringify({ type: 'hello', shards: src.config.shards, tickMs: UI_TICK_MS, avgIntervals: AVG_INTERVALS });

  // a timer callback runs outside uWS and its fault guard: an exception here would end the
  // process, so a failed sample is told to the watchers (the page shows it) and the next tick
  // tries again. (The routes get no logger or FaultGuard from server.ts to report it further.)
  const tick = (): void => {
    let text: string | null;
    try {
      const frame = sampler.sample(snapshot(src));
      text = frame === null ? null : JSON.stringify(frame);
    } catch (err) {
      text = JSON.stringify({ type: 'error', error: `live figures not sampled: ${String((err as Error)?.message ?? err)}` });
    }
    if (text !== null && app.numSubscribers(UI_TOPIC) > 0) app.publish(UI_TOPIC, text, false);
  };
  const start = (): void => {
    if (timer !== null) return;
    sampler.reset();
    timer = setInterval(tick, UI_TICK_MS);
    tick(); // the baseline: the first frame comes one tick later
  };
  const stop = (): void => {
    if (timer === null) return;
    clearInterval(timer);
    timer = null;
  };

  app.ws('/v1/ui/stream', {
    maxPayloadLength: UI_WS_PAYLOAD_BYTES_MAX,
    maxBackpressure: UI_WS_BACKPRESSURE_BYTES_MAX,
    closeOnBackpressureLimit: 1,
    idleTimeout: UI_WS_IDLE_TIMEOUT_S,
    sendPingsAutomatically: true,
    open: (ws) => {
      sockets.add(ws);
      ws.send(hello, false);
      ws.subscribe(UI_TOPIC);
      start();
    },
    message: () => { /* the feed takes no commands: anything sent is ignored */ },
    close: (ws) => {
      sockets.delete(ws);
      if (sockets.size === 0) stop();
    },
  });

  return {
    running: () => timer !== null,
    close(): void {
      stop();
      for (const ws of [...sockets]) ws.end(1001, 'server stopping');
      sockets.clear();
    },
  };
}
