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
import { JsonEventReader, MsgpackEventReader, isValidDeviceId, type ErrorCode, type TimePrecision } from '../protocol';
import type { Ingest, IngestOutcome } from './ingest';
import type { Uws } from './uws';
import { errorBody, precisionParam, sendJson } from './http-util';
import { currentPrincipal } from './auth';
import type { WsLimitCounters } from './connection-limits';

export interface StreamUser {
  pinned: string | null;
  /** opened with a device token (issue #13): a frame naming another device is refused whole (SLUICE_E_FORBIDDEN) */
  deviceToken: boolean;
  /** `?precision=` of the upgrade: the unit of numeric timestamps, null: unqualified ms */
  precision: TimePrecision | null;
  frames: number;
  closed: boolean;
  /** answers go out in frame order: the last frame answered, and answers decided early */
  answered: number;
  early: Map<number, string> | null;
  /** frames submitted and not yet answered by admission (--ws-inflight-max); set in open */
  inflight?: number;
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
  /** --ws-max-backpressure: unsent answer bytes past which the socket is closed */
  backpressureBytesMax: number;
  /** --ws-inflight-max: frames in admission at once; a frame past it is refused SLUICE_E_BACKPRESSURE */
  inflightMax: number;
  counters: WsLimitCounters;
}

/**
 * The one answer to a frame. In durable mode it is decided after the WAL commit, so a refusal of
 * a later frame can be decided first: answers wait for the earlier ones and go out in frame order.
 */
function answer(ws: WebSocket<StreamUser>, u: StreamUser, frame: number, o: IngestOutcome, counters: WsLimitCounters): void {
  if (u.closed) return;
  const text = answerText(frame, o);
  if (frame !== u.answered + 1) {
    if (u.early === null) u.early = new Map();
    u.early.set(frame, text);
    return;
  }
  let dropped = false;
  ws.cork(() => {
    dropped = ws.send(text, false) === WS_SEND_DROPPED;
    u.answered = frame;
    const early = u.early;
    if (early === null || dropped) return;
    let next: string | undefined;
    while ((next = early.get(u.answered + 1)) !== undefined) {
      early.delete(u.answered + 1);
      u.answered++;
      if (ws.send(next, false) === WS_SEND_DROPPED) {
        dropped = true;
        return;
      }
    }
    if (early.size === 0) u.early = null;
  });
  if (dropped) closeForBackpressure(ws, u, counters);
}

/**
 * uWS dropped an answer: the client has not read --ws-max-backpressure bytes of them. An answer
 * the client never gets would leave a frame neither acked nor refused, so the socket is closed
 * now (close(), not end(): no close frame to queue behind the unread bytes, and uWS frees them at
 * once; closeOnBackpressureLimit alone only shuts the socket down and keeps them until it goes).
 */
function closeForBackpressure(ws: WebSocket<StreamUser>, u: StreamUser, counters: WsLimitCounters): void {
  if (u.closed) return;
  u.closed = true;
  u.early = null;
  counters.wsClosedBackpressure++;
  ws.close();
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

const WS_IDLE_TIMEOUT_S = 120;
/** WebSocket.send's result when uWS dropped the message: backpressure over maxBackpressure */
const WS_SEND_DROPPED = 2;
/**
 * Frames refused past --ws-inflight-max whose answers wait behind earlier ones (answers go out in
 * frame order) at most; a client past it sends without reading any answer and is closed (1008),
 * so that it cannot grow the held answers without bound while a WAL commit is slow.
 */
const WS_REFUSED_WAITING_MAX = 4096;

function errorFrame(code: ErrorCode, reason: string, seq: number, rejected: string): string {
  return `{"error":${JSON.stringify(reason)},"code":"${code}","seq":${seq},"rejected":${rejected}}`;
}

export function registerWsStream(app: TemplatedApp, uws: Uws, ingest: Ingest, opts: WsStreamOptions,
  sockets: Set<WebSocket<StreamUser>>): void {
  const counters = opts.counters;
  app.ws<StreamUser>('/v1/stream', {
    compression: uws.DISABLED,
    maxPayloadLength: opts.bodyBytesMax,
    maxBackpressure: opts.backpressureBytesMax,
    // uWS then shuts the socket at the limit even for a send we do not see (a ping, a close frame)
    closeOnBackpressureLimit: 1,
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
      // a device token pins the connection to its device (engine/auth.ts)
      const who = currentPrincipal();
      const deviceToken = who !== null && who.role === 'device';
      if (deviceToken) {
        if (pinned !== null && pinned !== who.deviceId) {
          sendJson(a, 403, errorBody('SLUICE_E_FORBIDDEN', `deviceId: ${JSON.stringify(pinned)} on the token of device ${JSON.stringify(who.deviceId)}`));
          return;
        }
        pinned = who.deviceId ?? null;
      }
      res.upgrade<StreamUser>({ pinned, deviceToken, precision, frames: 0, closed: false, answered: 0, early: null }, key, protocol, extensions, context);
    },
    open: (ws) => {
      ws.getUserData().inflight = 0;
      sockets.add(ws);
    },
    close: (ws) => {
      const u = ws.getUserData();
      u.closed = true;
      // answers held for order go with the socket; admitted frames still finish (they are acked or not in the WAL)
      u.early = null;
      sockets.delete(ws);
    },
    message: (ws, message, isBinary) => {
      const u = ws.getUserData();
      if (u.closed) return;
      const frame = ++u.frames;
      const inflight = u.inflight ?? 0;
      // uWS.js 20.30 cannot stop reading one WebSocket (no pause()), and holding the frame would
      // keep client bytes in our memory: a frame past the limit is refused with its seq, to resend
      if (inflight >= opts.inflightMax) {
        refuseInflight(ws, u, frame, message, isBinary, opts, counters);
        return;
      }
      u.inflight = inflight + 1;
      ingest.submit({ kind: isBinary ? 'msgpack' : 'json', body: new Uint8Array(message), pinned: u.pinned, deviceSeq: null, waitMs: opts.backpressureWaitMs, precision: u.precision, forbidOthers: u.deviceToken },
        (o) => {
          u.inflight = (u.inflight ?? 1) - 1;
          answer(ws, u, frame, o, counters);
        });
    },
  });
}

/**
 * A frame past --ws-inflight-max: answered SLUICE_E_BACKPRESSURE under its seq (envelope seq when
 * it has one, read cheaply: the frame is not decoded) and counted; nothing of it is kept.
 */
function refuseInflight(ws: WebSocket<StreamUser>, u: StreamUser, frame: number, message: ArrayBuffer,
  isBinary: boolean, opts: WsStreamOptions, counters: WsLimitCounters): void {
  counters.framesRefusedInflight++;
  if (u.frames - u.answered > opts.inflightMax + WS_REFUSED_WAITING_MAX) {
    u.closed = true;
    u.early = null;
    counters.wsClosedInflight++;
    ws.end(1008, 'frames sent far past --ws-inflight-max without reading the answers');
    return;
  }
  const seq = envelopeSeq(message, isBinary);
  answer(ws, u, frame, {
    status: 'backpressure', accepted: 0, rejections: [], code: 'SLUICE_E_BACKPRESSURE', label: seq, expected: null,
    reason: `${opts.inflightMax} frames of this connection are in flight (--ws-inflight-max): nothing of this frame was accepted, send it again after an answer`,
  }, counters);
}

/**
 * The seq a refused frame is answered under: the envelope's (read by the same top-level scanners
 * admission uses, so it is the seq an accepted frame would be acked with), else null (the frame
 * count names it). Columnar and unusual frames the scanners leave to the codecs get the count.
 */
const seqReaders = { json: new JsonEventReader(), msgpack: new MsgpackEventReader() };
function envelopeSeq(message: ArrayBuffer, isBinary: boolean): number | null {
  const top = (isBinary ? seqReaders.msgpack : seqReaders.json).frame(new Uint8Array(message));
  return top === null || top.seq === undefined ? null : top.seq;
}
