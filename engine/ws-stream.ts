/**
 * WebSocket ingest at /v1/stream. Binary frames are msgpack, text frames JSON; a frame is one
 * event, an array, an envelope {seq, deviceId?, events} or (msgpack) a columnar batch.
 * `?deviceId=` pins the connection: its events may omit deviceId and may not name another.
 *
 * Every frame gets one answer, decided before it is sent (an ack is always true):
 *   {"ack":n}                                  all accepted
 *   {"ack":n,"accepted":k,"rejected":[...]}    the valid events kept, the others named
 *   {"error":"...","code":"...","seq":n,"rejected":[...]}   nothing kept (resend after fixing,
 *                                              or after SLUICE_E_BACKPRESSURE just resend: the
 *                                              rings stayed full for --backpressure-wait)
 * n is the envelope's seq when it has one, else the 1-based count of frames on the connection.
 */

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { isValidDeviceId, type ErrorCode, type TimePrecision } from '../protocol';
import type { Ingest, IngestOutcome } from './ingest';
import type { Uws } from './uws';
import { errorBody, precisionParam, sendJson } from './http-util';

export interface StreamUser {
  pinned: string | null;
  /** `?precision=` of the upgrade: the unit of numeric timestamps, null: unqualified ms */
  precision: TimePrecision | null;
  frames: number;
  closed: boolean;
  /** answers go out in frame order: the last frame answered, and answers decided early */
  answered: number;
  early: Map<number, string> | null;
}

export interface WsStreamOptions {
  bodyBytesMax: number;
  /**
   * How long a frame that finds the rings full waits for room before its SLUICE_E_BACKPRESSURE
   * answer (--backpressure-wait, as for HTTP): a refused frame is decoded again when resent, so
   * under a sustained load waiting costs less than refusing.
   */
  backpressureWaitMs: number;
  isAccepting: () => boolean;
}

/**
 * The one answer to a frame. In durable mode it is decided after the WAL commit, so a refusal of
 * a later frame can be decided first: answers wait for the earlier ones and go out in frame order.
 */
function answer(ws: WebSocket<StreamUser>, u: StreamUser, frame: number, o: IngestOutcome): void {
  if (u.closed) return;
  const text = answerText(frame, o);
  if (frame !== u.answered + 1) {
    if (u.early === null) u.early = new Map();
    u.early.set(frame, text);
    return;
  }
  ws.cork(() => {
    ws.send(text, false);
    u.answered = frame;
    const early = u.early;
    if (early === null) return;
    let next: string | undefined;
    while ((next = early.get(u.answered + 1)) !== undefined) {
      early.delete(u.answered + 1);
      ws.send(next, false);
      u.answered++;
    }
    if (early.size === 0) u.early = null;
  });
}

function answerText(frame: number, o: IngestOutcome): string {
  const n = o.label ?? frame;
  let text: string;
  switch (o.status) {
    case 'accepted': text = `{"ack":${n}}`; break;
    case 'partial': text = `{"ack":${n},"accepted":${o.accepted},"rejected":${JSON.stringify(o.rejections)}}`; break;
    case 'duplicate': text = `{"ack":${n},"duplicate":true}`; break;
    case 'gap': text = `{"error":${JSON.stringify(o.reason)},"code":"SLUICE_E_SEQUENCE_GAP","seq":${n},"expected":${o.expected},"rejected":[]}`; break;
    default: text = errorFrame(o.code ?? 'SLUICE_E_INTERNAL', o.reason, n, JSON.stringify(o.rejections));
  }
  return text;
}

// acks are tiny; a client that does not read them for this long is cut off rather than buffered
const WS_BACKPRESSURE_BYTES_MAX = 16 * 1024 * 1024;
const WS_IDLE_TIMEOUT_S = 120;

function errorFrame(code: ErrorCode, reason: string, seq: number, rejected: string): string {
  return `{"error":${JSON.stringify(reason)},"code":"${code}","seq":${seq},"rejected":${rejected}}`;
}

export function registerWsStream(app: TemplatedApp, uws: Uws, ingest: Ingest, opts: WsStreamOptions,
  sockets: Set<WebSocket<StreamUser>>): void {
  app.ws<StreamUser>('/v1/stream', {
    compression: uws.DISABLED,
    maxPayloadLength: opts.bodyBytesMax,
    maxBackpressure: WS_BACKPRESSURE_BYTES_MAX,
    idleTimeout: WS_IDLE_TIMEOUT_S,
    upgrade: (res, req, context) => {
      const query = req.getQuery();
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const a = { res, aborted: false };
      if (!opts.isAccepting()) {
        sendJson(a, 503, errorBody('SLUICE_E_SHUTTING_DOWN', 'the engine is shutting down'), { 'Retry-After': '1' });
        return;
      }
      let pinned: string | null = null;
      let precision: TimePrecision | null = null;
      if (query) {
        const params = new URLSearchParams(query);
        const p = precisionParam(a, params);
        if (p === false) return;
        precision = p;
        const dev = params.get('deviceId');
        if (dev !== null) {
          if (!isValidDeviceId(dev)) {
            sendJson(a, 400, errorBody('SLUICE_E_BAD_DEVICE_ID', `deviceId: must be 1-128 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(dev)}`));
            return;
          }
          pinned = dev;
        }
      }
      res.upgrade<StreamUser>({ pinned, precision, frames: 0, closed: false, answered: 0, early: null }, key, protocol, extensions, context);
    },
    open: (ws) => { sockets.add(ws); },
    close: (ws) => {
      ws.getUserData().closed = true;
      sockets.delete(ws);
    },
    message: (ws, message, isBinary) => {
      const u = ws.getUserData();
      const frame = ++u.frames;
      ingest.submit({ kind: isBinary ? 'msgpack' : 'json', body: new Uint8Array(message), pinned: u.pinned, deviceSeq: null, waitMs: opts.backpressureWaitMs, precision: u.precision },
        (o) => answer(ws, u, frame, o));
    },
  });
}
