/**
 * The ceiling: a bare uWebSockets.js server that does what the engine's wire does and nothing
 * else, run as its own process with the same pinning as the engine.
 *   WebSocket /*: counts each message and answers it with the fixed `{"ack":1}` (the client's flow
 *                 control then behaves as against the engine).
 *   POST /*:      reads the body, counts it, answers 204.
 *   GET /count:   {messages, requests, bytes} so far.
 *   GET /*:       a fixed small JSON body (the floor of a query's round trip).
 * Prints `{"msg":"ceiling listening","port":N}` on stdout; SIGTERM closes it and exits 0.
 * Loads the native binary by path, as the engine does, so it never runs on the ws fallback.
 */

import path from 'node:path';
import type * as UWS from 'uWebSockets.js';

const pkgDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
const uws = require(path.join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`)) as typeof UWS;

const FRAME_BYTES_MAX = 16 * 1024 * 1024;
const ACK = '{"ack":1}';
const QUERY_BODY = '{"deviceId":"dev-000000","metric":"cpu","windows":[]}';

let messages = 0;
let requests = 0;
let bytes = 0;

const app = uws.App();
app.ws('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: FRAME_BYTES_MAX,
  maxBackpressure: FRAME_BYTES_MAX,
  idleTimeout: 120,
  message: (ws, message) => {
    messages++;
    bytes += message.byteLength;
    ws.send(ACK, false);
  },
});
app.post('/*', (res) => {
  let aborted = false;
  res.onAborted(() => { aborted = true; });
  res.onData((chunk, isLast) => {
    bytes += chunk.byteLength;
    if (!isLast) return;
    requests++;
    if (!aborted) res.writeStatus('204 No Content').end();
  });
});
app.get('/count', (res) => {
  res.writeHeader('content-type', 'application/json').end(JSON.stringify({ messages, requests, bytes }));
});
app.get('/*', (res) => {
  res.writeHeader('content-type', 'application/json').end(QUERY_BODY);
});

let listenSocket: UWS.us_listen_socket | null = null;
app.listen('127.0.0.1', 0, (token) => {
  if (!token) {
    process.stderr.write('ceiling: could not listen\n');
    process.exit(1);
  }
  listenSocket = token;
  process.stdout.write(`${JSON.stringify({ msg: 'ceiling listening', port: uws.us_socket_local_port(token) })}\n`);
});

process.on('SIGTERM', () => {
  if (listenSocket) uws.us_listen_socket_close(listenSocket);
  process.exit(0);
});
