/**
 * Small helpers for answering over uWebSockets.js. uWS rules (its docs say MUST): an HttpResponse
 * answered later than its handler needs onAborted attached first, and writes outside a uWS
 * callback go inside res.cork(); request data must be copied before the handler returns.
 *
 * Request bodies: readBody reads a body up to --body-max. A compressed one (Content-Encoding gzip,
 * x-gzip or deflate, read once by the handler with bodyEncodingParam) is inflated as it arrives
 * by engine/body-decoder.ts, and --body-max then holds both the size as sent and the decompressed
 * size; a plain body takes the same path as ever (no zlib, no extra copy).
 */

import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, SluiceError, TIME_PRECISIONS, parsePrecision, type ErrorCode, type TimePrecision } from '../protocol';
import type { IngestOutcome } from './ingest';
import { BodyInflater, CONTENT_ENCODINGS, bodyEncodingOf, type BodyEncoding, type Inflated } from './body-decoder';
import { lateFailure } from './fault-guard';

export const STATUS: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 204: '204 No Content', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden',
  404: '404 Not Found', 409: '409 Conflict', 422: '422 Unprocessable Entity',
  405: '405 Method Not Allowed', 413: '413 Payload Too Large', 415: '415 Unsupported Media Type',
  500: '500 Internal Server Error', 503: '503 Service Unavailable',
};

/** Tracks whether a response may still be written (aborted clients must not be). */
export interface Answerable {
  res: HttpResponse;
  aborted: boolean;
}

export function sendJson(a: Answerable, status: number, body: string, extraHeaders?: Record<string, string>): void {
  sendBody(a, status, 'application/json', body, extraHeaders);
}

/** One answer with a body of any type, inside cork(); nothing once the client is gone. */
export function sendBody(a: Answerable, status: number, contentType: string, body: string, extraHeaders?: Record<string, string>): void {
  if (a.aborted) return;
  a.res.cork(() => {
    a.res.writeStatus(STATUS[status] ?? `${status}`);
    a.res.writeHeader('Content-Type', contentType);
    if (extraHeaders) for (const k in extraHeaders) a.res.writeHeader(k, extraHeaders[k]);
    a.res.end(body);
  });
  a.aborted = true;
}

export function sendEmpty(a: Answerable, status: number): void {
  if (a.aborted) return;
  a.res.cork(() => {
    a.res.writeStatus(STATUS[status] ?? `${status}`);
    a.res.end();
  });
  a.aborted = true;
}

export function errorBody(code: ErrorCode, message: string, extra?: Record<string, unknown>): string {
  return JSON.stringify({ error: message, code, ...extra });
}

export function sendError(a: Answerable, status: number, code: ErrorCode, message: string, extra?: Record<string, unknown>, headers?: Record<string, string>): void {
  sendJson(a, status, errorBody(code, message || ERRORS[code], extra), headers);
}

/** Answers 413 when the declared Content-Length is over bytesMax; true when it did (the caller stops). */
export function refuseOversized(a: Answerable, contentLength: number, bytesMax: number): boolean {
  if (contentLength <= bytesMax) return false;
  sendError(a, 413, 'SLUICE_E_BODY_TOO_LARGE', `body: ${contentLength} bytes, more than ${bytesMax} (--body-max)`);
  return true;
}

/**
 * `?precision=` of an ingest route's query string: the unit, null when absent, or false after
 * answering 400 for a value that is not one (the caller stops).
 */
export function precisionParam(a: Answerable, query: URLSearchParams): TimePrecision | null | false {
  const text = query.get('precision');
  const p = parsePrecision(text);
  if (p !== undefined) return p;
  sendError(a, 400, 'SLUICE_E_BAD_PARAM', `precision: ${JSON.stringify(text)} is not one of ${TIME_PRECISIONS.join(', ')}`);
  return false;
}

export interface OneEventAnswer {
  /** status when nothing could be kept (rings full, storage faulty, stopping), with Retry-After */
  failStatus: number;
  /** code of a 400 whose rejection carries none */
  badCode: ErrorCode;
  /** rewrites a rejection's reason (to name the parameter the client sent) */
  reason?: (reason: string) => string;
}

/**
 * The answer of a seed route that submits one event built from its request: 204 once kept (or a
 * duplicate), 400 naming the first rejection, else failStatus with Retry-After.
 */
export function answerOneEvent(a: Answerable, o: IngestOutcome, opts: OneEventAnswer): void {
  switch (o.status) {
    case 'accepted':
    case 'partial':
    case 'duplicate':
      sendEmpty(a, 204);
      return;
    case 'none-valid':
    case 'refused':
    case 'gap': {
      const first = o.rejections[0];
      const reason = first?.reason ?? o.reason;
      sendError(a, 400, first?.code ?? o.code ?? opts.badCode, opts.reason === undefined ? reason : opts.reason(reason));
      return;
    }
    case 'backpressure':
    case 'unavailable':
      sendJson(a, opts.failStatus, errorBody(o.code ?? 'SLUICE_E_INTERNAL', o.reason), { 'Retry-After': '1' });
  }
}

/**
 * The Content-Encoding of a request that carries a body: its encoding, or false after answering
 * 415 for one Sluice does not read (the caller stops). Read it in the handler, before readBody.
 */
export function bodyEncodingParam(a: Answerable, header: string): BodyEncoding | false {
  const encoding = bodyEncodingOf(header);
  if (encoding !== null) return encoding;
  sendError(a, 415, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE',
    `Content-Encoding: ${JSON.stringify(header)} is not one of ${CONTENT_ENCODINGS.join(', ')}`);
  return false;
}

/**
 * Reads a request body up to bytesMax. onBody runs once with the whole body (a view valid only
 * during the call when the body came in one chunk). Answers 413 itself when the body is too large.
 * A compressed body (encoding from bodyEncodingParam) is inflated first: bytesMax then also holds
 * the decompressed size (413), a body that does not inflate answers 400, and onBody runs later,
 * from a zlib callback, only if the response was not aborted meanwhile.
 */
export function readBody(a: Answerable, contentLength: number, bytesMax: number, encoding: BodyEncoding,
  onBody: (body: Uint8Array) => void): void {
  if (encoding !== 'identity') {
    readEncodedBody(a, bytesMax, encoding, onBody);
    return;
  }
  let buf: Buffer | null = null;
  let len = 0;
  let tooLarge = false;
  a.res.onData((chunk, isLast) => {
    if (tooLarge) return;
    if (len + chunk.byteLength > bytesMax) {
      tooLarge = true;
      sendError(a, 413, 'SLUICE_E_BODY_TOO_LARGE', `body: larger than ${bytesMax} bytes (--body-max)`);
      return;
    }
    if (isLast && buf === null) {
      onBody(new Uint8Array(chunk));
      return;
    }
    if (buf === null) buf = Buffer.allocUnsafe(contentLength > 0 && contentLength <= bytesMax ? contentLength : 64 * 1024);
    if (len + chunk.byteLength > buf.byteLength) {
      const next = Buffer.allocUnsafe(Math.min(bytesMax, Math.max(buf.byteLength * 2, len + chunk.byteLength)));
      buf.copy(next, 0, 0, len);
      buf = next;
    }
    buf.set(new Uint8Array(chunk), len);
    len += chunk.byteLength;
    if (isLast) onBody(buf.subarray(0, len));
  });
}

/**
 * A gzip or deflate body through a BodyInflater. The answer comes from a zlib callback, outside
 * uWS and outside the fault guard's try/catch: an exception there would end the process, so that
 * code catches everything and hands it to the route's guard (lateFailure). The abort
 * handler is replaced by one that also stops zlib.
 */
function readEncodedBody(a: Answerable, bytesMax: number, encoding: 'gzip' | 'deflate',
  onBody: (body: Uint8Array) => void): void {
  const fail = lateFailure(a.res);
  const inflater = new BodyInflater(encoding, bytesMax, (result) => answerInflated(a, result, onBody, fail));
  a.res.onAborted(() => {
    a.aborted = true;
    inflater.destroy();
  });
  let wireBytes = 0;
  a.res.onData((chunk, isLast) => {
    if (inflater.finished) return;
    wireBytes += chunk.byteLength;
    if (wireBytes > bytesMax) {
      inflater.destroy();
      sendError(a, 413, 'SLUICE_E_BODY_TOO_LARGE', `body: larger than ${bytesMax} bytes as sent, compressed (--body-max)`);
      return;
    }
    inflater.write(chunk, isLast);
  });
}

function answerInflated(a: Answerable, result: Inflated, onBody: (body: Uint8Array) => void,
  fail: ((err: unknown) => void) | null): void {
  try {
    if (a.aborted) return;
    if (result.ok) onBody(result.body);
    else sendError(a, result.status, result.code, result.reason);
  } catch (err) {
    // a bug in the route's body handling, in a zlib callback: outside uWS, so the route's fault
    // guard is asked by hand (every route is guarded in the engine; a bare response is not)
    if (fail !== null) {
      fail(err);
      return;
    }
    try {
      sendError(a, 500, 'SLUICE_E_INTERNAL', 'internal error handling the decompressed body');
    } catch {
      // the response is gone: nothing left to answer
    }
  }
}

/**
 * Answers a handler's result once it settles: [status, body] as JSON; a SluiceError as 400 with
 * its code (404 for SLUICE_E_NOT_FOUND); anything else as 500 SLUICE_E_INTERNAL naming `what`.
 */
export function answerLater(a: Answerable, result: Promise<[number, unknown]>, what: string): void {
  result.then(
    ([status, body]) => sendJson(a, status, JSON.stringify(body)),
    (err: unknown) => {
      if (err instanceof SluiceError) sendError(a, err.code === 'SLUICE_E_NOT_FOUND' ? 404 : 400, err.code, err.message);
      else sendError(a, 500, 'SLUICE_E_INTERNAL', `${what} failed: ${(err as Error).message}`);
    });
}
