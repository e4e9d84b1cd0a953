/**
 * Limits on hostile clients against the real engine: --connections-max, uWS's HTTP timeout (a
 * slowloris), --ws-max-backpressure (readers that never read), --ws-inflight-max, idle
 * connections and a flood of junk bodies, each with its /healthz `limits` counter and a
 * well-behaved client's latency measured alongside.
 *
 * npm test runs reduced loads; SLUICE_LIMITS_FULL=1 runs the full ones (5,000 idle connections,
 * 200 slow readers) and prints the figures (RSS before/after, the good client's p50/p99).
 */

import t from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { getJson, startEngine, StreamClient } from '../helpers/engine';

const FULL = process.env.SLUICE_LIMITS_FULL === '1';
const IDLE_CONNECTIONS = FULL ? 5000 : 400;
const SLOW_READERS = FULL ? 200 : 10;
const JUNK_SENDERS = FULL ? 32 : 6;
const JUNK_BODIES_EACH = FULL ? 20 : 4;

interface Latency { p50: number; p99: number; max: number; n: number }

function percentiles(ms: number[]): Latency {
  const s = ms.slice().sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN, n: s.length };
}

/**
 * A well-behaved client in its own process (so that the load this test generates does not delay
 * it): small POSTs one after another for durationMs; its latencies.
 */
const GOOD_CLIENT = `
const [url, durationMs] = process.argv.slice(1);
const ms = []; let i = 0; let bad = null;
(async () => {
  const end = Date.now() + Number(durationMs);
  while (Date.now() < end) {
    const t0 = performance.now();
    const r = await fetch(url + '/v1/events', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ deviceId: 'good', timestamp: Date.now() - 1000, metrics: { cpu: i++ % 100 } }]) });
    await r.arrayBuffer();
    if (r.status !== 204) bad = r.status;
    ms.push(performance.now() - t0);
  }
  process.stdout.write(JSON.stringify({ ms, bad }));
})();`;

function goodClient(url: string, durationMs: number): Promise<Latency> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', GOOD_CLIENT, url, String(durationMs)], { timeout: durationMs + 30_000 }, (err, stdout) => {
      if (err) return reject(err);
      const r = JSON.parse(stdout) as { ms: number[]; bad: number | null };
      if (r.bad !== null) reject(new Error(`the good client got ${r.bad}`));
      else resolve(percentiles(r.ms));
    });
  });
}

function baseline(url: string): Promise<Latency> {
  return goodClient(url, 1500);
}

async function health(url: string): Promise<any> {
  const h = await getJson(`${url}/healthz`);
  return h.body;
}

const rssMiB = (h: any): number => Math.round(h.memory.rssBytes / 1048576);

function openRaw(port: number, n: number): Promise<net.Socket[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  })));
}

async function waitUntil(what: string, cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

function report(t: { comment(...args: unknown[]): void }, what: string, figures: Record<string, unknown>): void {
  t.comment(`${what}: ${JSON.stringify(figures)}`);
}

t.test('--connections-max: HTTP and WebSocket upgrades past it are answered 503', async (t) => {
  const engine = await startEngine(['--shards', '1', '--connections-max', '8']);
  t.teardown(() => engine.stop());
  const ws = engine.url.replace('http', 'ws');
  const clients: StreamClient[] = [];
  for (let i = 0; i < 8; i++) clients.push(await StreamClient.open(`${ws}/v1/stream?deviceId=c${i}`));
  const refusedWs = await StreamClient.open(`${ws}/v1/ui/stream`).then(() => 'opened', (e: Error) => e.message);
  t.equal(refusedWs, 'upgrade refused: 503', 'the 9th connection: its upgrade is refused');
  const refused = await getJson(`${engine.url}/healthz`);
  t.equal(refused.status, 503);
  t.match(refused.body, { code: 'SLUICE_E_TOO_MANY_CONNECTIONS', error: /8 connections \(--connections-max\)/ });
  clients.pop()!.close();
  await waitUntil('a socket closed', async () => (await getJson(`${engine.url}/healthz`)).status === 200, 5000);
  const h = await health(engine.url);
  t.match(h.limits, {
    connectionsMax: 8,
    connections: { counted: 8, httpInFlight: 1, websocket: { '/v1/stream': 7, '/v1/ui/stream': 0, '/v1/reports/stream': 0 } },
    refused: { websocket: 1 },
  });
  t.ok(h.limits.refused.http >= 1, `refused http: ${h.limits.refused.http}`);
  t.ok(h.limits.connections.tcp >= 8, `the kernel's count: ${h.limits.connections.tcp}`);
  for (const c of clients) c.close();
});

t.test('idle connections and a slowloris are closed by uWS in bounded time; others unaffected', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const before = await health(engine.url);
  const base = await baseline(engine.url);
  const good = goodClient(engine.url, 8000);
  const t0 = Date.now();
  const idle = await openRaw(engine.port, IDLE_CONNECTIONS);
  const loris = await openRaw(engine.port, 20);
  const lorisClosed: number[] = [];
  const idleClosed: number[] = [];
  for (const s of idle) s.on('close', () => idleClosed.push(Date.now() - t0));
  const header = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(200);
  let k = 0;
  const drip = setInterval(() => {
    for (const s of loris) if (!s.destroyed) s.write(header[k % header.length]);
    k++;
  }, 1000);
  for (const s of loris) {
    s.on('close', () => lorisClosed.push(Date.now() - t0));
    s.on('data', () => lorisClosed.push(-1));
  }
  t.teardown(() => {
    clearInterval(drip);
    for (const s of [...idle, ...loris]) s.destroy();
  });
  const during = await health(engine.url);
  t.ok(during.limits.connections.tcp >= IDLE_CONNECTIONS + 20, `the kernel counts them: ${during.limits.connections.tcp}`);
  await waitUntil('every slowloris and idle connection closed', () => lorisClosed.length === 20 && idleClosed.length === IDLE_CONNECTIONS, 20_000);
  clearInterval(drip);
  const load = await good;
  const after = await health(engine.url);
  t.notOk(lorisClosed.includes(-1), 'no slowloris got an answer');
  t.ok(Math.max(...lorisClosed) <= 16_000, `slowloris closed by ${Math.max(...lorisClosed)} ms (uWS: 10 s, 4 s ticks)`);
  t.ok(after.limits.connections.tcp <= 2, `closed in the kernel too: ${after.limits.connections.tcp}`);
  t.ok(load.p99 < Math.max(50, base.p99 * 5), `the good client's p99 ${load.p99.toFixed(1)} ms (alone ${base.p99.toFixed(1)} ms)`);
  t.ok(rssMiB(during) - rssMiB(before) < 100, `RSS ${rssMiB(before)} -> ${rssMiB(during)} MiB`);
  report(t, `${IDLE_CONNECTIONS} idle + 20 slowloris`, { rssMiB: [rssMiB(before), rssMiB(during), rssMiB(after)], good: { alone: base, during: load }, lorisClosedMs: Math.max(...lorisClosed) });
});

/** A WebSocket that sends frames and never reads: its socket is paused, its answers pile up. */
async function slowReader(url: string, frame: string, frames: number): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  // a paused socket reads nothing, not even the engine's close: the engine's counters tell it
  (ws as unknown as { _socket: net.Socket })._socket.pause();
  ws.on('error', () => { /* the engine cut it off */ });
  for (let i = 0; i < frames; i++) ws.send(frame);
  return ws;
}

t.test('--ws-max-backpressure: readers that never read are closed and their answers freed', async (t) => {
  const engine = await startEngine(['--shards', '1', '--ws-max-backpressure', FULL ? '1MiB' : '64KiB']);
  t.teardown(() => engine.stop());
  const before = await health(engine.url);
  const base = await baseline(engine.url);
  // 1,000 empty events a frame (3 KB): each answer names 1,000 rejections (~80 KB), so unread answers grow fast
  const frame = `[${Array(1000).fill('{}').join(',')}]`;
  const good = goodClient(engine.url, FULL ? 6000 : 3000);
  await new Promise((r) => setTimeout(r, 300)); // the client process is up and sending
  const t0 = Date.now();
  const readers = await Promise.all(Array.from({ length: SLOW_READERS }, () => slowReader(`${engine.url.replace('http', 'ws')}/v1/stream`, frame, 150)));
  t.teardown(() => { for (const r of readers) r.terminate(); });
  let peakRss = 0;
  await waitUntil('every slow reader closed', async () => {
    const h = await health(engine.url);
    peakRss = Math.max(peakRss, rssMiB(h));
    return h.limits.closed.wsBackpressure >= SLOW_READERS;
  }, FULL ? 60_000 : 20_000);
  const closedMs = Date.now() - t0;
  const during = await health(engine.url);
  const load = await good;
  t.equal(during.limits.closed.wsBackpressure, SLOW_READERS, `every slow reader closed for backpressure (${closedMs} ms)`);
  t.equal(during.limits.connections.websocket['/v1/stream'], 0, 'none left open');
  t.ok(load.p99 < Math.max(100, base.p99 * 10), `the good client's p99 ${load.p99.toFixed(1)} ms (alone ${base.p99.toFixed(1)} ms)`);
  t.ok(rssMiB(during) - rssMiB(before) < 200, `RSS ${rssMiB(before)} -> ${rssMiB(during)} MiB`);
  report(t, `${SLOW_READERS} slow readers`, { rssMiB: [rssMiB(before), peakRss, rssMiB(during)], closedMs, good: { alone: base, during: load } });
});

t.test('--ws-inflight-max: frames past it are refused with their seq, nothing of them kept', async (t) => {
  const engine = await startEngine(['--shards', '1', '--ws-inflight-max', '2']);
  t.teardown(() => engine.stop());
  const c = await StreamClient.open(`${engine.url.replace('http', 'ws')}/v1/stream?deviceId=burst`);
  const now = Date.now();
  // one burst: uWS reads the frames in one go, before the first WAL commit acks anything
  for (let i = 1; i <= 40; i++) c.ws.send(JSON.stringify({ seq: 1000 + i, events: [{ timestamp: now - 5000 + i, metrics: { cpu: i } }] }));
  const answers = await c.waitFor(40);
  c.close();
  const acked = answers.filter((a) => a.ack !== undefined);
  const refused = answers.filter((a) => a.code === 'SLUICE_E_BACKPRESSURE');
  t.equal(acked.length + refused.length, 40, 'every frame answered: acked or refused');
  t.ok(refused.length > 0, `${refused.length} refused past 2 in flight`);
  t.same(answers.map((a) => a.ack ?? a.seq), Array.from({ length: 40 }, (_, i) => 1001 + i), 'in frame order, under their seqs');
  t.match(refused[0], { error: /2 frames of this connection are in flight \(--ws-inflight-max\)/, rejected: [] });
  const h = await health(engine.url);
  t.equal(h.limits.framesRefusedInflight, refused.length);
  const q = await getJson(`${engine.url}/v1/devices/burst/metrics/cpu?from=${now - 60_000}`);
  const count = q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0);
  t.equal(count, acked.length, 'exactly the acked frames were applied');
});

t.test('a flood of 1 MB junk bodies: refused, memory bounded, others unaffected', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const before = await health(engine.url);
  const base = await baseline(engine.url);
  // the senders are curl processes: the good client's latency is then the engine's, not this event loop's
  const junk = path.join(engine.dataDir, '..', `junk-${process.pid}.json`);
  fs.writeFileSync(junk, Buffer.alloc(1_000_000, 'x'));
  t.teardown(() => fs.rmSync(junk, { force: true }));
  const good = goodClient(engine.url, FULL ? 8000 : 3000);
  await new Promise((r) => setTimeout(r, 300));
  const statuses: number[] = [];
  let peakRss = 0;
  const sampler = setInterval(() => {
    void getJson(`${engine.url}/healthz`).then((h) => { peakRss = Math.max(peakRss, rssMiB(h.body)); }, () => { /* busy */ });
  }, 250);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: JUNK_SENDERS }, () => new Promise<void>((resolve, reject) => {
    const urls = Array.from({ length: JUNK_BODIES_EACH }, () => `${engine.url}/v1/events`);
    // -o is per URL: each answer's body to /dev/null, its status to stdout
    execFile('curl', ['-s', '-w', '%{http_code}\\n', '-H', 'content-type: application/json', '--data-binary', `@${junk}`, '--max-time', '30', ...urls.flatMap((u) => ['-o', '/dev/null', u])],
      (err, stdout) => {
        if (err) reject(err);
        else {
          for (const line of stdout.split('\n')) if (line !== '') statuses.push(Number(line));
          resolve();
        }
      });
  })));
  const floodMs = Date.now() - t0;
  clearInterval(sampler);
  const load = await good;
  const after = await health(engine.url);
  t.ok(statuses.every((s) => s === 400), `every junk body refused 400 (${statuses.length}: ${[...new Set(statuses)].join(', ')})`);
  t.equal(after.faults.count, 0);
  t.ok(load.p99 < Math.max(100, base.p99 * 10), `the good client's p99 ${load.p99.toFixed(1)} ms (alone ${base.p99.toFixed(1)} ms)`);
  t.ok(Math.max(peakRss, rssMiB(after)) - rssMiB(before) < 150 + JUNK_SENDERS * 3, `RSS ${rssMiB(before)} -> peak ${peakRss} -> ${rssMiB(after)} MiB`);
  report(t, `${JUNK_SENDERS} senders x ${JUNK_BODIES_EACH} junk bodies of 1 MB`, { floodMs, rssMiB: [rssMiB(before), peakRss, rssMiB(after)], good: { alone: base, during: load } });
});


