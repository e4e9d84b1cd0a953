/**
 * Runs the real engine (dist/engine/main.js) as a child process on 127.0.0.1 with a temp data dir,
 * and gives tests its URL. The child is stopped by PID at teardown (SIGTERM, then SIGKILL).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';

export const MAIN = path.join(__dirname, '..', '..', 'engine', 'main.js');

export interface EngineProcess {
  port: number;
  url: string;
  dataDir: string;
  proc: ChildProcess;
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(prefix = 'sluice-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Engines this test process started and that still run: killed when it ends, also when tap ends
 * it for its timeout (SIGTERM), so no engine outlives its test (one did for two hours once).
 */
const running = new Set<ChildProcess>();
let reaperInstalled = false;

function reapOnExit(proc: ChildProcess): void {
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  if (reaperInstalled) return;
  reaperInstalled = true;
  const killAll = (): void => {
    for (const p of running) p.kill('SIGKILL');
  };
  process.once('exit', killAll);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
}

export async function startEngine(args: string[] = [], dataDir = tempDir()): Promise<EngineProcess> {
  const proc = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  reapOnExit(proc);
  const logs: string[] = [];
  let buffered = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // never leave an engine behind that no test will stop
      reject(new Error(`engine did not start in 20 s (is --log-level above info? the helper waits for the listening line):\n${logs.join('\n')}`));
    }, 20_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        logs.push(line);
        if (line.includes('"Sluice listening')) {
          clearTimeout(timer);
          resolve(JSON.parse(line).port as number);
        }
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`engine exited with ${code} before listening:\n${logs.join('\n')}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    proc,
    logs,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A WebSocket client that collects the server's answers in order. */
export class StreamClient {
  readonly answers: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.answers.push(JSON.parse(data.toString('utf8')));
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  static async open(url: string): Promise<StreamClient> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    return new StreamClient(ws);
  }

  /** Resolves when at least n answers have arrived. */
  async waitFor(n: number, timeoutMs = 30_000): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.answers.length} of ${n} answers in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
    return this.answers;
  }

  close(): void {
    this.ws.close();
  }
}

/** a request the engine does not answer in this long fails the test with the URL, instead of hanging it */
const REQUEST_TIMEOUT_MS = 60_000;

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch((e: Error) => {
    throw new Error(`GET ${url}: ${e.message}`);
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

export async function post(url: string, contentType: string, body: string | Uint8Array,
  headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    .catch((e: Error) => {
      throw new Error(`POST ${url}: ${e.message}`);
    });
  const text = await r.text();
  let parsed: unknown = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** A TCP port free on 127.0.0.1 right now (for a real influxd, Prometheus or mosquitto the test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
