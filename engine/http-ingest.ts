/**
 * POST /v1/events: JSON, NDJSON or msgpack bodies; optional `Sluice-Device-Seq: n` header for
 * exactly-once delivery of a single-device batch.
 *
 * 204 all accepted; 200 {accepted, rejected} some rejected (the valid ones are kept) or
 * {duplicate: true} for a device seq already admitted; 400 none valid or the body does not parse
 * (or does not inflate); 409 a device seq that skips ahead ({expected}); 413 over --body-max (as
 * sent, and once decompressed); 415 another content type, or a Content-Encoding other than
 * identity, gzip, x-gzip, deflate;
 * 503 with Retry-After when the rings stay full for --backpressure-wait, storage is full or
 * faulty, or the engine is stopping (nothing of the batch was kept). In durable mode (default)
 * the answer is sent after the WAL commit that holds the batch: the requests of one commit group
 * (engine/commit-pipeline.ts) are answered one after the other when it resolves, each inside
 * uWS cork() (one write per response).
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { contentKindOf, type ContentKind } from '../protocol';
import type { Ingest, IngestOutcome } from './ingest';
import { currentPrincipal } from './auth';
import { type Answerable, bodyEncodingParam, refuseOversized, errorBody, precisionParam, readBody, sendEmpty, sendError, sendJson } from './http-util';

export interface HttpIngestOptions {
  bodyBytesMax: number;
  backpressureWaitMs: number;
}

const RETRY_AFTER = { 'Retry-After': '1' };

function rejectedJson(o: IngestOutcome, extra = ''): string {
  return `{"accepted":${o.accepted},"rejected":${JSON.stringify(o.rejections)}${extra}}`;
}

/** The Sluice-Device-Seq header: null when absent, NaN when not a non-negative integer (at most 15 digits). */
export function parseDeviceSeq(header: string): number | null {
  if (header === '') return null;
  return /^\d{1,15}$/.test(header) ? Number(header) : NaN;
}

/** contentKindOf of the last Content-Type seen: a sender repeats its own (no string work per request) */
let lastContentType = '';
let lastKind: ContentKind | null = null;

function kindOf(contentType: string): ContentKind | null {
  if (contentType !== lastContentType) {
    lastKind = contentKindOf(contentType);
    lastContentType = contentType;
  }
  return lastKind;
}

export function registerHttpIngest(app: TemplatedApp, ingest: Ingest, opts: HttpIngestOptions): void {
  app.post('/v1/events', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const contentType = req.getHeader('content-type');
    const contentLength = Number(req.getHeader('content-length') || '0');
    const seqHeader = req.getHeader('sluice-device-seq');
    const queryString = req.getQuery();
    const kind = kindOf(contentType);
    if (kind === null) {
      sendError(a, 415, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE',
        `Content-Type: ${JSON.stringify(contentType)} is not one of application/json, application/x-ndjson, application/msgpack`);
      return;
    }
    const encoding = bodyEncodingParam(a, req.getHeader('content-encoding'));
    if (encoding === false) return;
    if (refuseOversized(a, contentLength, opts.bodyBytesMax)) return;
    // most senders give no query string: no URLSearchParams then
    const precision = queryString ? precisionParam(a, new URLSearchParams(queryString)) : null;
    if (precision === false) return;
    const deviceSeq = parseDeviceSeq(seqHeader);
    if (Number.isNaN(deviceSeq)) {
      sendError(a, 400, 'SLUICE_E_BAD_SEQUENCE', `Sluice-Device-Seq: ${JSON.stringify(seqHeader)} is not a non-negative integer`);
      return;
    }
    // a device token's request is pinned to its device (engine/auth.ts): read now, in the handler
    const who = currentPrincipal();
    const pinned = who !== null && who.role === 'device' ? who.deviceId ?? null : null;
    readBody(a, contentLength, opts.bodyBytesMax, encoding, (body) => {
      ingest.submit({ kind, body, pinned, deviceSeq, waitMs: opts.backpressureWaitMs, precision, forbidOthers: pinned !== null }, (o) => answer(a, o));
    });
  });
}

function answer(a: Answerable, o: IngestOutcome): void {
  switch (o.status) {
    case 'accepted': sendEmpty(a, 204); return;
    case 'partial': sendJson(a, 200, rejectedJson(o)); return;
    case 'duplicate': sendJson(a, 200, `{"accepted":0,"rejected":[],"duplicate":true}`); return;
    case 'none-valid':
    case 'refused': sendJson(a, 400, rejectedJson(o, `,"error":${JSON.stringify(o.reason)},"code":"${o.code}"`)); return;
    case 'gap': sendJson(a, 409, errorBody('SLUICE_E_SEQUENCE_GAP', o.reason, { expected: o.expected })); return;
    case 'forbidden': sendJson(a, 403, errorBody('SLUICE_E_FORBIDDEN', o.reason)); return;
    case 'backpressure':
    case 'unavailable': sendJson(a, 503, errorBody(o.code ?? 'SLUICE_E_INTERNAL', o.reason), RETRY_AFTER); return;
  }
}
