/**
 * The bench's side of a load generator: a child process pinned to the load CPU, one interface for
 * the WebSocket generator, the Node HTTP generator (wrk's fallback) and wrk itself.
 *   warmup(s): load for s seconds that do not count
 *   mark():    start the measured phase (counters and latency reset)
 *   report():  the measured phase's figures
 *   cpuNs():   the generator process's CPU time so far
 */

import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { LatencyHistogram, type Percentiles } from './histogram';
import { LOAD_CPU, PINNED, TASKSET, WRK, cpuNs, sleep, spawnPinned, tempDir } from './proc';
import type { WsGenConfig, WsGenReport } from './ws-generator';
import type { HttpGenConfig } from './http-generator';

export interface GenReport {
  seconds: number;
  /** frames or requests answered as accepted */
  units: number;
  /** payload bytes of those */
  bytes: number;
  /** frames sent again after SLUICE_E_BACKPRESSURE, or HTTP answers that were not 2xx */
  refused: number;
  latencyMs: Percentiles;
}

export interface LoadGen {
  readonly label: string;
  readonly pid: number;
  warmup(seconds: number): Promise<void>;
  mark(): Promise<void>;
  report(): Promise<GenReport>;
  cpuNs(): number;
  send(msg: unknown): void;
  waitFor(type: string, timeoutMs: number): Promise<any>;
  /** every message of this type from now on (ws-generator's 'step' progress) */
  on(type: string, listener: (m: any) => void): void;
  stop(): Promise<void>;
}

/** A Node generator script driven over IPC (ws-generator.js, http-generator.js). */
class IpcGen implements LoadGen {
  private waiters = new Map<string, (m: any) => void>();
  private listeners = new Map<string, (m: any) => void>();
  private failure: Error | null = null;
  private exited: Promise<void>;

  constructor(readonly label: string, private readonly proc: ChildProcess) {
    proc.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'error') {
        this.failure = new Error(`${label}: ${m.message}`);
        for (const w of this.waiters.values()) w(m);
        this.waiters.clear();
        return;
      }
      this.listeners.get(m.type)?.(m);
      const w = this.waiters.get(m.type);
      if (w) { this.waiters.delete(m.type); w(m); }
    });
    proc.stderr?.on('data', (d: Buffer) => process.stderr.write(`[${label}] ${d}`));
    this.exited = new Promise((r) => proc.once('exit', () => r()));
  }

  get pid(): number { return this.proc.pid!; }

  send(msg: unknown): void {
    if (this.failure) throw this.failure;
    this.proc.send(msg as object);
  }

  waitFor(type: string, timeoutMs: number): Promise<any> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => { clearTimeout(timer); reject(this.failure ?? new Error(`${this.label} exited (${code}) while waiting for '${type}'`)); };
      const timer = setTimeout(() => { this.waiters.delete(type); this.proc.off('exit', onExit); reject(new Error(`${this.label}: no '${type}' in ${timeoutMs} ms`)); }, timeoutMs);
      this.waiters.set(type, (m) => {
        clearTimeout(timer);
        this.proc.off('exit', onExit);
        if (this.failure) reject(this.failure); else resolve(m);
      });
      this.proc.once('exit', onExit);
    });
  }

  on(type: string, listener: (m: any) => void): void {
    this.listeners.set(type, listener);
  }

  async warmup(seconds: number): Promise<void> {
    await sleep(seconds * 1000);
    if (this.failure) throw this.failure;
  }

  async mark(): Promise<void> {
    const p = this.waitFor('marked', 10_000);
    this.send({ cmd: 'mark' });
    await p;
  }

  async report(): Promise<GenReport> {
    const p = this.waitFor('report', 10_000);
    this.send({ cmd: 'report' });
    const m = await p;
    const r = m.report as WsGenReport & { requests?: number; non2xx?: number; bytes?: number };
    const latencyMs = LatencyHistogram.from(r.latency).summaryMs();
    if (r.requests !== undefined) {
      return { seconds: r.seconds, units: r.requests - (r.non2xx ?? 0), bytes: r.bytes ?? 0, refused: r.non2xx ?? 0, latencyMs };
    }
    return { seconds: r.seconds, units: r.framesAcked, bytes: r.bytesAcked, refused: r.resends, latencyMs };
  }

  cpuNs(): number { return cpuNs(this.pid); }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    try { this.proc.send({ cmd: 'stop' }); } catch { this.proc.kill('SIGTERM'); }
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

function forkPinned(script: string): ChildProcess {
  const file = path.join(__dirname, script);
  const opts = { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] as ('ignore' | 'pipe' | 'ipc')[] };
  if (PINNED) return fork(file, [], { ...opts, execPath: TASKSET!, execArgv: ['-c', String(LOAD_CPU), process.execPath] });
  return fork(file, [], opts);
}

export async function startWsGen(config: WsGenConfig): Promise<LoadGen> {
  const gen = new IpcGen('ws-generator', forkPinned('ws-generator.js'));
  const ready = gen.waitFor('ready', 60_000);
  gen.send({ cmd: 'start', config });
  await ready;
  return gen;
}

export interface HttpLoad {
  port: number;
  /** an Authorization header to send (an engine with --auth on) */
  authorization?: string;
  path: string;
  contentType: string;
  bodies: string[];
  connections: number;
}

function writeBodies(bodies: string[]): string {
  const dir = tempDir('sluice-bench-http-');
  const file = path.join(dir, 'bodies.txt');
  for (const b of bodies) if (b.includes('\n')) throw new Error('an HTTP bench body may not contain a newline');
  fs.writeFileSync(file, `${bodies.join('\n')}\n`);
  return file;
}

export async function startNodeHttpGen(load: HttpLoad): Promise<LoadGen> {
  const gen = new IpcGen('http-generator (Node fallback: wrk not installed)', forkPinned('http-generator.js'));
  const config: HttpGenConfig = {
    host: '127.0.0.1', port: load.port, path: load.path, contentType: load.contentType,
    bodiesFile: writeBodies(load.bodies), connections: load.connections, authorization: load.authorization,
  };
  const ready = gen.waitFor('ready', 60_000);
  gen.send({ cmd: 'start', config });
  await ready;
  return gen;
}

const WRK_LUA = `
local reqs = {}
local n = 0
local i = 0
init = function(args)
  for line in io.lines(args[3]) do
    n = n + 1
    local headers = { ["Content-Type"] = args[2] }
    if args[4] ~= nil and args[4] ~= "" then headers["Authorization"] = args[4] end
    reqs[n] = wrk.format("POST", args[1], headers, line)
  end
end
request = function()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"durationUs":%d,"bytes":%d,"socketErrors":%d,"non2xx":%d,"p50":%d,"p99":%d,"p999":%d,"max":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`;

export const WRK_INSTALL_HINT = 'wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu; brew install wrk on macOS) for http-single/http-batch; falling back to the Node HTTP generator';

/**
 * wrk with a Lua script that cycles through precomputed requests (one per body line). One thread
 * (one load core). The warm-up is its own wrk run; the measured run is stopped with SIGINT, on
 * which wrk prints its summary and runs done().
 */
class WrkGen implements LoadGen {
  readonly label = 'wrk';
  private proc: ChildProcess | null = null;
  private output = '';
  private markedAt = 0;
  private bytesPerRequest: number;

  constructor(private readonly load: HttpLoad, private readonly script: string, private readonly bodiesFile: string) {
    let total = 0;
    for (const b of load.bodies) total += Buffer.byteLength(b);
    this.bytesPerRequest = total / load.bodies.length;
  }

  get pid(): number { return this.proc?.pid ?? -1; }

  private spawnRun(seconds: number): ChildProcess {
    const args = ['-t1', `-c${this.load.connections}`, `-d${Math.ceil(seconds)}s`, '--timeout', '10s', '-s', this.script,
      `http://127.0.0.1:${this.load.port}`, '--', this.load.path, this.load.contentType, this.bodiesFile, this.load.authorization ?? ''];
    this.output = '';
    const p = spawnPinned(LOAD_CPU, WRK!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d: Buffer) => { this.output += d.toString('utf8'); });
    p.stderr!.on('data', (d: Buffer) => { this.output += d.toString('utf8'); });
    this.proc = p;
    return p;
  }

  private finished(p: ChildProcess): Promise<void> {
    return new Promise((r) => { if (p.exitCode !== null || p.signalCode !== null) r(); else p.once('exit', () => r()); });
  }

  async warmup(seconds: number): Promise<void> {
    const p = this.spawnRun(seconds);
    await this.finished(p);
    if (!this.output.includes('WRK_JSON')) throw new Error(`wrk warm-up failed:\n${this.output}`);
  }

  async mark(): Promise<void> {
    this.spawnRun(3600);
    this.markedAt = performance.now();
  }

  async report(): Promise<GenReport> {
    const p = this.proc!;
    const seconds = (performance.now() - this.markedAt) / 1000;
    p.kill('SIGINT');
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await this.finished(p);
    clearTimeout(timer);
    const line = this.output.split('\n').find((l) => l.startsWith('WRK_JSON '));
    if (!line) throw new Error(`wrk printed no summary:\n${this.output}`);
    const w = JSON.parse(line.slice('WRK_JSON '.length)) as { requests: number; non2xx: number; socketErrors: number; p50: number; p99: number; p999: number; max: number };
    const ok = w.requests - w.non2xx;
    return {
      seconds, units: ok, bytes: ok * this.bytesPerRequest, refused: w.non2xx + w.socketErrors,
      latencyMs: { p50: w.p50 / 1000, p99: w.p99 / 1000, p999: w.p999 / 1000, max: w.max / 1000, samples: w.requests },
    };
  }

  cpuNs(): number { return this.proc ? cpuNs(this.proc.pid!) : 0; }

  send(): void { throw new Error('wrk takes no messages'); }

  waitFor(): Promise<any> { return Promise.reject(new Error('wrk sends no messages')); }

  on(): void { throw new Error('wrk sends no messages'); }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGINT');
    await this.finished(p);
  }
}

export async function startHttpGen(load: HttpLoad): Promise<LoadGen> {
  if (WRK === null) return startNodeHttpGen(load);
  const dir = tempDir('sluice-bench-wrk-');
  const script = path.join(dir, 'post.lua');
  fs.writeFileSync(script, WRK_LUA);
  return new WrkGen(load, script, writeBodies(load.bodies));
}
