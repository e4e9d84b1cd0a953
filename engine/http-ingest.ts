/**
 * POST /v1/events: JSON, NDJSON or msgpack bodies.
 *
 * 204 all accepted; 200 {accepted, rejected} some rejected (the valid ones are kept); 400 none
 * valid or the body does not parse; 413 over --body-max; 415 another content type; 503 with
 * Retry-After when the rings stay full for --backpressure-wait (nothing of the batch was kept).
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import {
  contentKindOf, decodeJson, decodeMsgpack, decodeNdjson, isBodyError,
  type ContentKind, type DecodedBatch, type BodyError,
} from '../protocol';
import type { Ingest, IngestOutcome } from './ingest';
import type { DetachedBatch } from './batch-stager';
import { type Answerable, errorBody, readBody, sendEmpty, sendError, sendJson } from './http-util';

export interface HttpIngestOptions {
  bodyBytesMax: number;
  backpressureWaitMs: number;
  isAccepting: () => boolean;
}

const RETRY_INTERVAL_MS = 2;
const RETRY_AFTER = { 'Retry-After': '1' };

export function decodeBody(kind: ContentKind, body: Uint8Array): DecodedBatch | BodyError {
  switch (kind) {
    case 'msgpack': return decodeMsgpack(body);
    case 'json': return decodeJson(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    case 'ndjson': return decodeNdjson(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  }
}

export function rejectedJson(o: IngestOutcome, extra = ''): string {
  return `{"accepted":${o.accepted},"rejected":${JSON.stringify(o.rejections)}${extra}}`;
}

export function registerHttpIngest(app: TemplatedApp, ingest: Ingest, opts: HttpIngestOptions): void {
  app.post('/v1/events', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const contentType = req.getHeader('content-type');
    const contentLength = Number(req.getHeader('content-length') || '0');
    if (!opts.isAccepting()) {
      sendJson(a, 503, errorBody('SLUICE_E_SHUTTING_DOWN', 'the engine is shutting down'), RETRY_AFTER);
      return;
    }
    const kind = contentKindOf(contentType);
    if (kind === null) {
      sendError(a, 415, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE',
        `Content-Type: ${JSON.stringify(contentType)} is not one of application/json, application/x-ndjson, application/msgpack`);
      return;
    }
    if (contentLength > opts.bodyBytesMax) {
      sendError(a, 413, 'SLUICE_E_BODY_TOO_LARGE', `body: ${contentLength} bytes, more than ${opts.bodyBytesMax} (--body-max)`);
      return;
    }
    readBody(a, contentLength, opts.bodyBytesMax, (body) => {
      const batch = decodeBody(kind, body);
      if (isBodyError(batch)) {
        sendJson(a, 400, JSON.stringify({ accepted: 0, rejected: [], error: batch.reason, code: batch.code }));
        return;
      }
      answer(a, ingest.admit(batch, null, true), ingest, opts.backpressureWaitMs);
    });
  });
}

function answer(a: Answerable, o: IngestOutcome, ingest: Ingest, waitMs: number): void {
  switch (o.status) {
    case 'accepted': sendEmpty(a, 204); return;
    case 'partial': sendJson(a, 200, rejectedJson(o)); return;
    case 'none-valid': sendJson(a, 400, rejectedJson(o, `,"error":${JSON.stringify(o.reason)},"code":"${o.code}"`)); return;
    case 'refused': sendJson(a, 400, rejectedJson(o, `,"error":${JSON.stringify(o.reason)},"code":"${o.code}"`)); return;
    case 'backpressure': waitForRoom(a, o, o.detached as DetachedBatch, ingest, Date.now() + waitMs); return;
  }
}

/** Retries a refused batch until the rings take it or the bounded wait is over (then 503). */
function waitForRoom(a: Answerable, o: IngestOutcome, d: DetachedBatch, ingest: Ingest, deadline: number): void {
  if (a.aborted) return;
  if (ingest.retry(d)) {
    o.accepted = d.events;
    if (o.rejections.length === 0) sendEmpty(a, 204);
    else sendJson(a, 200, rejectedJson(o));
    return;
  }
  if (Date.now() >= deadline) {
    sendJson(a, 503, errorBody('SLUICE_E_BACKPRESSURE', o.reason), RETRY_AFTER);
    return;
  }
  setTimeout(waitForRoom, RETRY_INTERVAL_MS, a, o, d, ingest, deadline);
}
