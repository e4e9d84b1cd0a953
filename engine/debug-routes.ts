/**
 * Fault-injection routes, registered only when SLUICE_DEBUG_ROUTES=1 (tests, chaos runs):
 *   POST /v1/debug/stall-shards?ms=N  blocks every shard worker thread for N ms (max 60 s), as a
 *   long GC pause or a slow disk would, so tests can fill the rings and see backpressure.
 *   POST /v1/debug/fail-wal?n=N  makes the next N WAL appends fail, as a full or broken disk would.
 *   POST /v1/debug/throw?in=handler|body  throws an unexpected error in the route handler or in its
 *   body callback; WS /v1/debug/throw-stream throws in its message callback: what a bug on the
 *   front-end thread does, so tests see the fault guard answer 500 / close 1011 and go on.
 */

import type { TemplatedApp } from 'uWebSockets.js';
import type { ShardPool } from './shard-pool';
import type { CommitPipeline } from './commit-pipeline';
import { bodyEncodingParam, readBody, sendError, sendJson } from './http-util';

export const DEBUG_ROUTES_ENV = 'SLUICE_DEBUG_ROUTES';

export function registerDebugRoutes(app: TemplatedApp, shards: ShardPool, pipeline: CommitPipeline): void {
  app.post('/v1/debug/fail-wal', (res, req) => {
    const a = { res, aborted: false };
    const n = Number(new URLSearchParams(req.getQuery() ?? '').get('n'));
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
      sendError(a, 400, 'SLUICE_E_BAD_PARAM', 'n: an integer number of WAL appends in 1..1000000');
      return;
    }
    pipeline.failNextAppends = n;
    sendJson(a, 200, JSON.stringify({ failNextAppends: n }));
  });
  app.post('/v1/debug/stall-shards', (res, req) => {
    const a = { res, aborted: false };
    const ms = Number(new URLSearchParams(req.getQuery() ?? '').get('ms'));
    if (!Number.isInteger(ms) || ms < 1 || ms > 60_000) {
      sendError(a, 400, 'SLUICE_E_BAD_PARAM', 'ms: an integer number of milliseconds in 1..60000');
      return;
    }
    for (const s of shards.shards) void s.pool.run({ kind: 'stall', ms });
    sendJson(a, 200, JSON.stringify({ stalled: shards.shards.length, ms }));
  });
  app.post('/v1/debug/throw', (res, req) => {
    const where = new URLSearchParams(req.getQuery() ?? '').get('in') ?? 'handler';
    if (where !== 'body') throw new Error('injected fault in a route handler (debug route)');
    const a = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    // through readBody as the ingest routes: a plain body is handled in a uWS callback, a gzip
    // one in a zlib callback
    const encoding = bodyEncodingParam(a, req.getHeader('content-encoding'));
    if (encoding === false) return;
    readBody(a, 0, 1024 * 1024, encoding, () => {
      throw new Error('injected fault in a body callback (debug route)');
    });
  });
  app.ws('/v1/debug/throw-stream', {
    message: () => {
      throw new Error('injected fault in a WebSocket message callback (debug route)');
    },
  });
}
