/**
 * HTTP load generator in Node, the fallback when wrk is not installed (the bench says so in its
 * output and report). Its own process, pinned to the load CPU by the bench, driven over IPC like
 * ws-generator.ts. Raw keep-alive sockets, one request in flight per connection, requests
 * precomputed whole (headers + body); a response is read up to its Content-Length.
 *
 * IPC in:  {cmd:'start', config} | {cmd:'mark'} | {cmd:'report'} | {cmd:'stop'}
 * IPC out: {type:'ready'} | {type:'marked'} | {type:'report', report} | {type:'error', message}
 */

import fs from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram } from './histogram';

export interface HttpGenConfig {
  host: string;
  port: number;
  path: string;
  contentType: string;
  /** a file of bodies, one per line */
  bodiesFile: string;
  connections: number;
  /** an Authorization header to send (an engine with --auth on) */
  authorization?: string;
}

let requests: Buffer[] = [];
let nextRequest = 0;
const hist = new LatencyHistogram();
let markedAt = performance.now();
let done = 0;
let non2xx = 0;
let bytes = 0;
let running = false;
const sockets: net.Socket[] = [];

function fail(message: string): void {
  process.send!({ type: 'error', message });
  setTimeout(() => process.exit(1), 100);
}

function open(cfg: HttpGenConfig): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: cfg.host, port: cfg.port, noDelay: true });
    sockets.push(socket);
    let pending: Buffer | null = null;
    let sentAt = 0;
    let sentBytes = 0;
    const fire = (): void => {
      if (!running) return;
      const r = requests[nextRequest];
      nextRequest = (nextRequest + 1) % requests.length;
      sentAt = performance.now();
      sentBytes = r.length;
      socket.write(r);
    };
    socket.once('error', reject);
    socket.on('connect', () => { resolve(); fire(); });
    socket.on('data', (chunk: Buffer) => {
      const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) { pending = buf; return; }
      const head = buf.toString('latin1', 0, end);
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) { pending = buf; return; }
      if (buf.length > total) { fail('the server answered more than one response to one request'); return; }
      pending = null;
      const status = Number(head.slice(9, 12));
      hist.record((performance.now() - sentAt) * 1000);
      done++;
      bytes += sentBytes;
      if (status < 200 || status > 299) non2xx++;
      fire();
    });
  });
}

async function start(cfg: HttpGenConfig): Promise<void> {
  const lines = fs.readFileSync(cfg.bodiesFile, 'utf8').split('\n').filter((l) => l.length !== 0);
  requests = lines.map((body) => Buffer.from(
    `POST ${cfg.path} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nContent-Type: ${cfg.contentType}\r\n` +
    `${cfg.authorization ? `Authorization: ${cfg.authorization}\r\n` : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
  running = true;
  await Promise.all(Array.from({ length: cfg.connections }, () => open(cfg)));
  process.send!({ type: 'ready' });
}

process.on('message', (m: { cmd: string; config?: HttpGenConfig }) => {
  switch (m.cmd) {
    case 'start': start(m.config!).catch((e: Error) => fail(`start: ${e.message}`)); break;
    case 'mark':
      hist.reset(); done = 0; non2xx = 0; bytes = 0; markedAt = performance.now();
      process.send!({ type: 'marked' });
      break;
    case 'report':
      process.send!({ type: 'report', report: { seconds: (performance.now() - markedAt) / 1000, requests: done, non2xx, bytes, latency: hist.toJSON() } });
      break;
    case 'stop':
      running = false;
      for (const s of sockets) s.destroy();
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
