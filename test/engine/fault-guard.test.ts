import t from 'tap';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { startEngine, getJson, post, StreamClient } from '../helpers/engine';

t.test('the fault guard: an exception in a handler answers 500 with a request id, the engine goes on', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '2']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());

  const ids: string[] = [];
  for (const [where, encoding] of [['handler', ''], ['body', ''], ['body', 'gzip']]) {
    const r = await post(`${engine.url}/v1/debug/throw?in=${where}`, 'application/json',
      encoding === '' ? '{"x":1}' : zlib.gzipSync('{"x":1}'), encoding === '' ? {} : { 'content-encoding': encoding });
    t.equal(r.status, 500, `throw in the ${where}: 500`);
    t.equal(r.body.code, 'SLUICE_E_INTERNAL');
    t.match(r.body.requestId, /^[0-9a-f]{6}-[0-9a-z]+$/);
    t.match(r.body.error, new RegExp(`request ${r.body.requestId}`));
    ids.push(r.body.requestId);
  }

  // a WebSocket message callback that throws: an error frame with the id, then close 1011
  const ws = new WebSocket(`ws://127.0.0.1:${engine.port}/v1/debug/throw-stream`);
  const frames: string[] = [];
  ws.on('message', (d: Buffer) => frames.push(d.toString('utf8')));
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  ws.send('{"any":"frame"}');
  const code = await new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c)));
  t.equal(code, 1011, 'closed with 1011');
  t.equal(frames.length, 1);
  const frame = JSON.parse(frames[0]) as { code: string; requestId: string };
  t.equal(frame.code, 'SLUICE_E_INTERNAL');
  ids.push(frame.requestId);
  t.equal(new Set(ids).size, 4, 'every fault has its own id');

  // the engine keeps serving: health, an event on HTTP and one on a WebSocket
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.status, 200);
  t.equal(h.body.faults.count, 4, '/healthz counts the faults');
  t.equal(h.body.faults.lastRequestId, ids[3]);
  const ts = Date.now() - 1000;
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'after-1', timestamp: ts, metrics: { cpu: 5 } }))).status, 204);
  const c = await StreamClient.open(`ws://127.0.0.1:${engine.port}/v1/stream`);
  c.ws.send(JSON.stringify({ deviceId: 'after-1', timestamp: ts, metrics: { cpu: 7 } }));
  t.same((await c.waitFor(1))[0], { ack: 1 });
  c.close();
  const q = await getJson(`${engine.url}/v1/devices/after-1/metrics/cpu?from=${ts - 60_000}&to=${ts + 60_000}`);
  t.equal(q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0), 2, 'both events counted');

  // each fault's stack is logged once, under its id
  for (const id of ids) {
    const lines = engine.logs.filter((l) => l.includes(`"requestId":"${id}"`));
    t.equal(lines.length, 1, `${id}: one log line`);
    t.match(lines[0], /"stack":"Error: injected fault/, `${id}: with the stack`);
  }
});
