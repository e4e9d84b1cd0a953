/**
 * WebSocket ingest at /v1/stream. Binary frames are msgpack, text frames JSON; a frame is one
 * event, an array, an envelope {seq, deviceId?, events} or (msgpack) a columnar batch.
 * `?deviceId=` pins the connection: its events may omit deviceId and may not name another.
 *
 * Every frame gets one answer, decided before it is sent (an ack is always true):
 *   {"ack":n}                                  all accepted
 *   {"ack":n,"accepted":k,"rejected":[...]}    the valid events kept, the others named
 *   {"error":"...","code":"...","seq":n,"rejected":[...]}   nothing kept (resend after fixing,
 *                                              or after SLUICE_E_BACKPRESSURE just resend)
 * n is the envelope's seq when it has one, else the 1-based count of frames on the connection.
 */

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { decodeJson, decodeMsgpack, isBodyError, isValidDeviceId, type ErrorCode } from '../protocol';
import type { Ingest } from './ingest';
import type { Uws } from './uws';
import { errorBody, sendJson } from './http-util';

export interface StreamUser {
  pinned: string | null;
  frames: number;
}

export interface WsStreamOptions {
  bodyBytesMax: number;
  isAccepting: () => boolean;
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
      if (query) {
        const dev = new URLSearchParams(query).get('deviceId');
        if (dev !== null) {
          if (!isValidDeviceId(dev)) {
            sendJson(a, 400, errorBody('SLUICE_E_BAD_DEVICE_ID', `deviceId: must be 1-128 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(dev)}`));
            return;
          }
          pinned = dev;
        }
      }
      res.upgrade<StreamUser>({ pinned, frames: 0 }, key, protocol, extensions, context);
    },
    open: (ws) => { sockets.add(ws); },
    close: (ws) => { sockets.delete(ws); },
    message: (ws, message, isBinary) => {
      const u = ws.getUserData();
      const frame = ++u.frames;
      if (!opts.isAccepting()) {
        ws.send(errorFrame('SLUICE_E_SHUTTING_DOWN', 'the engine is shutting down: resend after it restarts', frame, '[]'), false);
        return;
      }
      const batch = isBinary ? decodeMsgpack(new Uint8Array(message)) : decodeJson(Buffer.from(message).toString('utf8'));
      if (isBodyError(batch)) {
        ws.send(errorFrame(batch.code, batch.reason, frame, '[]'), false);
        return;
      }
      const seq = batch.seq ?? frame;
      const o = ingest.admit(batch, u.pinned, false);
      switch (o.status) {
        case 'accepted': ws.send(`{"ack":${seq}}`, false); return;
        case 'partial': ws.send(`{"ack":${seq},"accepted":${o.accepted},"rejected":${JSON.stringify(o.rejections)}}`, false); return;
        default: ws.send(errorFrame(o.code ?? 'SLUICE_E_INTERNAL', o.reason, seq, JSON.stringify(o.rejections)), false);
      }
    },
  });
}
