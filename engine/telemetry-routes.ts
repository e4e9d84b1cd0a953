/**
 * POST /telemetry/cpu (seed: a CPU telemetry collector), for its clients unchanged.
 *
 * The body is one event of the seed's flat shape,
 * `{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","clientVersion":"v1.2.3","cpu":83.2}`:
 * metric `cpu`, tag `clientVersion` (protocol/event.ts maps the flat shape). It is read as JSON
 * whatever the Content-Type (the seed's clients are not required to send one), gzip or deflate
 * compressed when Content-Encoding says so, and goes through Ingest like POST /v1/events: the
 * same validation, WAL, durability and acknowledgement, and the periodic report counts it (metric
 * `cpu` is a report metric by default).
 *
 *   204  accepted (in durable mode: after the WAL commit that holds it)
 *   400  {error, code}: not one JSON object, no `cpu`, or an invalid field (the reason names it),
 *        or a compressed body that does not inflate
 *   413  over --body-max (as sent, and once decompressed)
 *   415  a Content-Encoding other than identity, gzip, x-gzip, deflate
 *   503  {error, code} + Retry-After: rings full, storage full or faulty, stopping: nothing kept
 *
 * Front-end thread only.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { type ErrorCode, describeValue } from '../protocol';
import type { Ingest } from './ingest';
import { type Answerable, type OneEventAnswer, answerOneEvent, bodyEncodingParam, precisionParam, refuseOversized, readBody, sendError } from './http-util';

export interface TelemetryRoutesOptions {
  bodyBytesMax: number;
  backpressureWaitMs: number;
}


/** Why the body is not one event that carries `cpu`, or null when it is (Ingest checks the rest). */
export function cpuEventProblem(text: string): { code: ErrorCode; reason: string } | null {
  let ev: unknown;
  try {
    ev = JSON.parse(text);
  } catch (e) {
    return { code: 'SLUICE_E_BAD_BODY', reason: `body: invalid JSON: ${(e as Error).message}` };
  }
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) {
    return { code: 'SLUICE_E_BAD_EVENT', reason: 'body: must be one JSON event object {"timestamp","deviceId","clientVersion","cpu"}' };
  }
  const e = ev as Record<string, unknown>;
  const nested = e.metrics;
  const inMetrics = typeof nested === 'object' && nested !== null && 'cpu' in nested;
  if (!('cpu' in e) && !inMetrics) {
    return { code: 'SLUICE_E_NO_METRICS', reason: 'cpu: missing (POST /telemetry/cpu carries a cpu reading)' };
  }
  const [field, cpu] = inMetrics ? ['metrics.cpu', (nested as Record<string, unknown>).cpu] : ['cpu', e.cpu];
  if (typeof cpu !== 'number' || !Number.isFinite(cpu)) {
    return { code: 'SLUICE_E_BAD_METRIC_VALUE', reason: `${field}: must be a finite number, got ${describeValue(cpu)}` };
  }
  return null;
}

export function registerTelemetryRoutes(app: TemplatedApp, ingest: Ingest, opts: TelemetryRoutesOptions): void {
  app.post('/telemetry/cpu', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const contentLength = Number(req.getHeader('content-length') || '0');
    const encoding = bodyEncodingParam(a, req.getHeader('content-encoding'));
    if (encoding === false) return;
    if (refuseOversized(a, contentLength, opts.bodyBytesMax)) return;
    const precision = precisionParam(a, new URLSearchParams(req.getQuery() ?? ''));
    if (precision === false) return;
    readBody(a, contentLength, opts.bodyBytesMax, encoding, (body) => {
      const problem = cpuEventProblem(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
      if (problem !== null) {
        sendError(a, 400, problem.code, problem.reason);
        return;
      }
      ingest.submit({ kind: 'json', body, pinned: null, deviceSeq: null, waitMs: opts.backpressureWaitMs, precision }, (o) => answerOneEvent(a, o, ONE_EVENT));
    });
  });
}

const ONE_EVENT: OneEventAnswer = { failStatus: 503, badCode: 'SLUICE_E_BAD_EVENT' };
