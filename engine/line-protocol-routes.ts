/**
 * InfluxDB line protocol ingest: POST /write (1.x), POST /api/v2/write (2.x), GET /ping (and HEAD,
 * through head-routes.ts), so Telegraf's `outputs.influxdb` / `outputs.influxdb_v2`, the `influx`
 * CLI and InfluxDB client libraries write to Sluice unchanged. protocol/line-protocol.ts maps
 * points onto events; Ingest.submit admits them as any batch (one ingest path, one ack contract).
 *
 * Answers, in InfluxDB's shape (`{"error": "..."}`; plus Sluice's `code`):
 * - 204 every point accepted, after the WAL commit in durable mode (as POST /v1/events); also an
 *   empty body or one of blank lines and comments only, as InfluxDB 1.x answers it.
 * - 400 `partial write: line N: reason; ... dropped=K` some points refused: the valid ones are
 *   kept (InfluxDB does the same: clients must not resend the batch, Telegraf does not retry 400).
 * - 400 `unable to parse line N: reason; ... dropped=K` no point valid (nothing kept); `unable to
 *   parse: ...` a body refused whole (more points than --batch-events-max: SLUICE_E_BATCH_TOO_LARGE,
 *   nothing kept: split it); a bad `precision`.
 * - 413 over --body-max (as sent, and once decompressed); 415 a Content-Encoding Sluice does not
 *   read; 503 + Retry-After rings full for --backpressure-wait, storage full or faulty, stopping
 *   (nothing kept: Telegraf retries it).
 * The database / bucket parameters are accepted and not used: Sluice has one keyspace.
 * Front-end thread only.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { type LpPrecision, type Rejection, LP_PRECISIONS, isEmptyLineProtocol, lpTimePrecision, parseLpPrecision } from '../protocol';
import type { Ingest, IngestOutcome } from './ingest';
import { type Answerable, bodyEncodingParam, errorBody, readBody, refuseOversized, sendEmpty, sendJson } from './http-util';

export interface LineProtocolOptions {
  bodyBytesMax: number;
  backpressureWaitMs: number;
  /** --lp-device-tag */
  deviceTag: string;
}

const RETRY_AFTER = { 'Retry-After': '1' };
/** what the `influx` CLI and Telegraf read from /ping (they check the version header is there) */
const PING_HEADERS: Record<string, string> = { 'X-Influxdb-Version': '1.8.10', 'X-Influxdb-Build': 'OSS' };
/** reasons named in one answer; the count covers the rest */
const REASONS_MAX = 20;

type Api = 'v1' | 'v2';

export function registerLineProtocolRoutes(app: TemplatedApp, ingest: Ingest, opts: LineProtocolOptions): void {
  app.get('/ping', (res: HttpResponse) => {
    res.cork(() => {
      res.writeStatus('204 No Content');
      for (const k in PING_HEADERS) res.writeHeader(k, PING_HEADERS[k]);
      res.end();
    });
  });
  app.post('/write', (res, req) => write(res, req, 'v1', ingest, opts));
  app.post('/api/v2/write', (res, req) => write(res, req, 'v2', ingest, opts));
}

function write(res: HttpResponse, req: HttpRequest, api: Api, ingest: Ingest, opts: LineProtocolOptions): void {
  const a: Answerable = { res, aborted: false };
  res.onAborted(() => { a.aborted = true; });
  const contentLength = Number(req.getHeader('content-length') || '0');
  const encodingHeader = req.getHeader('content-encoding');
  const query = new URLSearchParams(req.getQuery() ?? '');
  // Credentials (1.x: ?u=&p= or `Authorization: Token|Basic ...`; 2.x: `Authorization: Token ...`)
  // are read here and NOT checked yet: the security issue adds the check at this place.
  readCredentials(req, query);
  const precisionText = query.get('precision');
  const precision = parseLpPrecision(precisionText, api);
  if (precision === undefined) {
    sendJson(a, 400, errorBody('SLUICE_E_BAD_PARAM', `precision: ${JSON.stringify(precisionText)} is not one of ${LP_PRECISIONS[api]}`));
    return;
  }
  const encoding = bodyEncodingParam(a, encodingHeader);
  if (encoding === false) return;
  if (refuseOversized(a, contentLength, opts.bodyBytesMax)) return;
  readBody(a, contentLength, opts.bodyBytesMax, encoding, (body) => {
    if (isEmptyLineProtocol(body)) {
      sendEmpty(a, 204);
      return;
    }
    ingest.submit({
      kind: 'lineprotocol', body, pinned: null, deviceSeq: null, waitMs: opts.backpressureWaitMs,
      precision: lpTimePrecision(precision), lineProtocol: { deviceTag: opts.deviceTag, precision: precision as LpPrecision },
    }, (o) => answer(a, o));
  });
}

/** The credentials a write carries; not checked yet (see the call). */
function readCredentials(req: HttpRequest, query: URLSearchParams): { user: string | null; password: string | null; authorization: string } {
  return { user: query.get('u'), password: query.get('p'), authorization: req.getHeader('authorization') };
}

/** `line N: reason; ...` of the first REASONS_MAX rejections (each reason already names its line). */
function reasons(rejections: Rejection[]): string {
  const n = Math.min(rejections.length, REASONS_MAX);
  let s = '';
  for (let i = 0; i < n; i++) s += (i === 0 ? '' : '; ') + rejections[i].reason;
  if (rejections.length > n) s += `; ... and ${rejections.length - n} more`;
  return s;
}

function answer(a: Answerable, o: IngestOutcome): void {
  switch (o.status) {
    case 'accepted':
    case 'duplicate':
      sendEmpty(a, 204);
      return;
    case 'partial':
      sendJson(a, 400, JSON.stringify({
        error: `partial write: ${reasons(o.rejections)} dropped=${o.rejections.length}`,
        code: o.rejections[0]?.code ?? 'SLUICE_E_BAD_EVENT', accepted: o.accepted,
      }));
      return;
    case 'none-valid':
      sendJson(a, 400, JSON.stringify({
        error: `unable to parse ${reasons(o.rejections)} dropped=${o.rejections.length}`,
        code: o.code ?? 'SLUICE_E_NO_VALID_EVENT', accepted: 0,
      }));
      return;
    case 'refused':
    case 'gap':
      sendJson(a, 400, errorBody(o.code ?? 'SLUICE_E_BAD_BODY', `unable to parse: ${o.reason}`));
      return;
    case 'backpressure':
    case 'unavailable':
      sendJson(a, 503, errorBody(o.code ?? 'SLUICE_E_INTERNAL', o.reason), RETRY_AFTER);
  }
}
