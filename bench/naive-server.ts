/**
 * The naive target: what a developer writes in an afternoon instead of Sluice, run as its own
 * process with the same pinning as the engine and the uWS ceiling. One thread, node:http + ws +
 * msgpackr, one in-memory Map; no WAL, no windows, no quantiles. It validates nothing more than
 * a string deviceId and a numeric timestamp per event, and counts events by deviceId.
 *   POST /*:      a JSON, NDJSON or msgpack body (by Content-Type): one event, an array of events
 *                 or an envelope {deviceId?, events}; 204 when every event passed, else 400
 *                 {"error", "rejected": n} (the valid ones are counted).
 *   WebSocket /*: a binary frame is msgpack (msgpackr `unpack`: plain maps and records alike), a
 *                 text frame JSON, of the same shapes, or a columnar batch {deviceId, timestamps:
 *                 f64 LE bytes, metrics}; answered `{"ack":n}` (n = the envelope's seq, else the
 *                 frame's number on the connection) or an error frame.
 *   GET /count:   {messages, requests, bytes, events, devices} so far.
 *   GET /*:       a fixed small JSON body.
 * Prints `{"msg":"naive listening","port":N}` on stdout; SIGTERM closes it and exits 0.
 *
 * `ws` is a dev dependency (the bench runs from a full install); it is loaded at run time with a
 * local declaration of the little used here, so that the production build compiles without it.
 */

import http from 'node:http';
import { unpack } from 'msgpackr';

/** The part of the `ws` package used here. */
interface WsSocket {
  on(event: 'message', cb: (data: Buffer, isBinary: boolean) => void): void;
  send(data: string): void;
}
interface WsServer {
  on(event: 'connection', cb: (ws: WsSocket) => void): void;
}
interface WsModule {
  WebSocketServer: new (opts: { server: http.Server; maxPayload: number; perMessageDeflate: boolean }) => WsServer;
}

function loadWs(): WsModule {
  try {
    return require('ws') as WsModule;
  } catch (e) {
    process.stderr.write(`naive: the ws package (a dev dependency) is missing: npm ci without --omit=dev (${(e as Error).message.split('\n')[0]})\n`);
    process.exit(1);
  }
}

const FRAME_BYTES_MAX = 16 * 1024 * 1024;
const QUERY_BODY = '{"deviceId":"dev-000000","metric":"cpu","windows":[]}';

const counts = new Map<string, number>();
let messages = 0;
let requests = 0;
let bytes = 0;
let events = 0;

function count(deviceId: string): void {
  counts.set(deviceId, (counts.get(deviceId) ?? 0) + 1);
  events++;
}

/** Counts the valid events of a decoded body; returns how many were rejected. */
function countBody(body: unknown): number {
  if (Array.isArray(body)) return countEvents(body, undefined);
  if (body === null || typeof body !== 'object') return 1;
  const o = body as { deviceId?: unknown; events?: unknown; timestamps?: unknown };
  if (Array.isArray(o.events)) return countEvents(o.events, o.deviceId);
  if (o.timestamps instanceof Uint8Array) return countColumnar(o.deviceId, o.timestamps);
  return countEvents([body], undefined);
}

function countEvents(list: unknown[], envelopeDevice: unknown): number {
  let rejected = 0;
  for (const e of list) {
    const ev = e as { deviceId?: unknown; timestamp?: unknown } | null;
    const deviceId = ev?.deviceId ?? envelopeDevice;
    if (typeof deviceId !== 'string' || typeof ev?.timestamp !== 'number') rejected++;
    else count(deviceId);
  }
  return rejected;
}

function countColumnar(deviceId: unknown, timestamps: Uint8Array): number {
  const rows = timestamps.byteLength >>> 3;
  if (typeof deviceId !== 'string') return rows;
  const ts = new Float64Array(timestamps.slice().buffer, 0, rows);
  let rejected = 0;
  for (let i = 0; i < rows; i++) {
    if (Number.isFinite(ts[i])) count(deviceId);
    else rejected++;
  }
  return rejected;
}

function decode(contentType: string, body: Buffer): unknown {
  if (contentType.startsWith('application/msgpack')) return unpack(body);
  if (contentType.startsWith('application/x-ndjson')) {
    return body.toString('utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown);
  }
  return JSON.parse(body.toString('utf8')) as unknown;
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/count' ? JSON.stringify({ messages, requests, bytes, events, devices: counts.size }) : QUERY_BODY);
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    bytes += body.byteLength;
    requests++;
    let rejected: number;
    try {
      rejected = countBody(decode(req.headers['content-type'] ?? '', body));
    } catch (e) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }));
      return;
    }
    if (rejected === 0) res.writeHead(204).end();
    else res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'deviceId or timestamp missing', rejected }));
  });
});
server.keepAliveTimeout = 120_000;

const { WebSocketServer } = loadWs();
const wss = new WebSocketServer({ server, maxPayload: FRAME_BYTES_MAX, perMessageDeflate: false });
wss.on('connection', (ws) => {
  let frames = 0;
  ws.on('message', (data, isBinary) => {
    messages++;
    frames++;
    bytes += data.byteLength;
    let body: unknown;
    try {
      body = isBinary ? unpack(data) : JSON.parse(data.toString('utf8'));
    } catch (e) {
      ws.send(JSON.stringify({ error: (e as Error).message, code: 'BAD_BODY', seq: frames }));
      return;
    }
    const seq = (body as { seq?: unknown } | null)?.seq;
    const n = typeof seq === 'number' ? seq : frames;
    const rejected = countBody(body);
    ws.send(rejected === 0 ? `{"ack":${n}}` : JSON.stringify({ error: 'deviceId or timestamp missing', code: 'BAD_EVENT', seq: n, rejected }));
  });
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  process.stdout.write(`${JSON.stringify({ msg: 'naive listening', port })}\n`);
});

process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
