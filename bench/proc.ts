/**
 * Processes the bench runs and watches: the engine, the ceiling servers, the load generators.
 * Pins them with taskset when the machine has one and at least two CPUs (server on CPU 0, load on
 * CPU 1), reads their CPU time (utime + stime, all threads) and RSS from /proc, and stops them by
 * PID (SIGTERM, then SIGKILL after a grace period).
 */

import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DIST = path.join(__dirname, '..');
/** The engine's entry; SLUICE_BENCH_ENGINE points at another build (e.g. a base commit to compare). */
export const ENGINE_MAIN = process.env.SLUICE_BENCH_ENGINE ?? path.join(DIST, 'engine', 'main.js');

function commandPath(cmd: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export const CPU_COUNT = os.cpus().length;
export const TASKSET = commandPath('taskset');
export const WRK = commandPath('wrk');
/** true when the server and the load generator each get their own core */
export const PINNED = TASKSET !== null && CPU_COUNT >= 2;
export const SERVER_CPU = 0;
export const LOAD_CPU = 1;

/** Spawns a command, under `taskset -c cpu` when pinning is available (the PID is the command's: taskset execs). */
export function spawnPinned(cpu: number, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  if (PINNED) return spawn(TASKSET!, ['-c', String(cpu), cmd, ...args], opts);
  return spawn(cmd, args, opts);
}

/** Pins an existing process (the bench itself) to the load CPU; quiet when it cannot. */
export function pinSelf(cpu: number): void {
  if (!PINNED) return;
  try {
    execFileSync(TASKSET!, ['-pc', String(cpu), String(process.pid)], { stdio: 'ignore' });
  } catch { /* not fatal: the report says PINNED from the capability check */ }
}

/** utime + stime of every thread of pid, in ns; NaN when the process is gone. */
export function cpuNs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks * (1e9 / CLK_TCK);
  } catch {
    return NaN;
  }
}

/** CPU time (utime + stime) of each thread of pid, by thread id, in ns; empty when the process is gone. */
export function threadCpuNs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(Number(tid), (Number(fields[11]) + Number(fields[12])) * (1e9 / CLK_TCK));
      } catch {
        // the thread ended between the listing and the read
      }
    }
  } catch {
    // the process is gone
  }
  return out;
}

/** VmRSS of pid in bytes; NaN when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** VmRSS split as /proc reports it: anonymous (heaps, typed arrays) and file-backed (mapped files: LMDB's map, code). */
export function rssParts(pid: number): { anonBytes: number; fileBytes: number; shmemBytes: number } {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)\\s+kB`).exec(status)?.[1] ?? NaN) * 1024;
    return { anonBytes: kb('RssAnon'), fileBytes: kb('RssFile'), shmemBytes: kb('RssShmem') };
  } catch {
    return { anonBytes: NaN, fileBytes: NaN, shmemBytes: NaN };
  }
}

export interface Server {
  name: string;
  pid: number;
  port: number;
  proc: ChildProcess;
  logs: string[];
  stop(): Promise<number | null>;
  /** `Authorization` value the load generators send (an engine started with --auth on: its admin token) */
  authorization?: string;
}

/**
 * Spawns a server on the server CPU and waits for its first stdout line that matches
 * `isListening` (a JSON line with a port field).
 */
export async function startServer(name: string, args: string[], isListening: (line: string) => boolean,
  env: NodeJS.ProcessEnv = process.env, startMs = 30_000): Promise<Server> {
  const proc = spawnPinned(SERVER_CPU, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const logs: string[] = [];
  let buffered = '';
  const keep = (line: string): void => {
    logs.push(line);
    if (logs.length > 200) logs.splice(0, logs.length - 200);
  };
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in ${startMs} ms:\n${logs.join('\n')}`)), startMs);
    proc.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        keep(line);
        if (isListening(line)) {
          clearTimeout(timer);
          resolve(JSON.parse(line).port as number);
        }
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => keep(chunk.toString('utf8')));
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before listening:\n${logs.join('\n')}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    name, pid: proc.pid!, port, proc, logs,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface EngineOptions {
  shards?: number;
  extraArgs?: string[];
  /** run on this data dir and keep it at stop (the recovery scenario restarts on it); default: a fresh temp dir removed at stop */
  dataDir?: string;
}

/**
 * Node flags for the engine process only: the ones `npm start` passes (package.json), then
 * SLUICE_BENCH_ENGINE_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" (the profiles of the
 * front-end and of each shard worker thread are written at the engine's SIGTERM).
 */
export const ENGINE_NODE_ARGS = [...startNodeFlags(), ...(process.env.SLUICE_BENCH_ENGINE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)];

/** the node flags of package.json's start script (`node --flag ... dist/engine/main.js`): one place says them */
function startNodeFlags(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(DIST, '..', 'package.json'), 'utf8')) as { scripts?: { start?: string } };
  const words = (pkg.scripts?.start ?? '').split(/\s+/);
  if (words[0] !== 'node') throw new Error(`bench: package.json's start script does not start with node: ${JSON.stringify(pkg.scripts?.start)}`);
  const flags: string[] = [];
  for (const w of words.slice(1)) {
    if (!w.startsWith('--')) break;
    flags.push(w);
  }
  return flags;
}

/** bench --engine-arg: appended to every engine's arguments */
export const ENGINE_EXTRA_ARGS: string[] = [];

/** The engine on 127.0.0.1, any port, a fresh data dir (removed at stop) unless o.dataDir is given. */
export async function startEngine(o: EngineOptions = {}): Promise<Server> {
  if (!fs.existsSync(ENGINE_MAIN)) throw new Error(`${ENGINE_MAIN} is missing: build first (npx tsc -p tsconfig.json)`);
  const dataDir = o.dataDir ?? tempDir('sluice-bench-');
  const args = [...ENGINE_NODE_ARGS, ENGINE_MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--log-level', 'info'];
  if (o.shards !== undefined) args.push('--shards', String(o.shards));
  if (o.extraArgs) args.push(...o.extraArgs);
  args.push(...ENGINE_EXTRA_ARGS);
  const s = await startServer('engine', args, (l) => l.includes('"Sluice listening'));
  // bench --engine-arg --auth --engine-arg on: the generators send the admin token (the cost of the check is what is measured)
  const auth = args.indexOf('--auth');
  if (auth >= 0 && args[auth + 1] === 'on') s.authorization = `Bearer ${fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim()}`;
  const stop = s.stop;
  s.stop = async () => {
    const code = await stop();
    if (o.dataDir === undefined) fs.rmSync(dataDir, { recursive: true, force: true });
    if (code !== 0) process.stderr.write(`bench: the engine exited with ${code} after SIGTERM\n${s.logs.slice(-5).join('\n')}\n`);
    return code;
  };
  return s;
}

/** SIGKILL (kill -9) and wait for the exit. */
export async function killHard(s: Server): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.proc.once('exit', () => r()));
  s.proc.kill('SIGKILL');
  await exited;
}

/**
 * The engine's log lines at warn level or above (pino: level >= 40), grouped by message, most
 * frequent first: "3 x shard worker slow (level 40)". Only the last 200 lines are kept by startServer.
 */
export function engineWarnings(s: Server): string[] {
  const byMsg = new Map<string, number>();
  for (const line of s.logs) {
    if (!line.startsWith('{')) {
      if (line.trim()) byMsg.set(`stderr: ${line.trim().slice(0, 160)}`, (byMsg.get(`stderr: ${line.trim().slice(0, 160)}`) ?? 0) + 1);
      continue;
    }
    try {
      const j = JSON.parse(line) as { level?: number; msg?: string };
      if ((j.level ?? 0) < 40) continue;
      const key = `${String(j.msg ?? '').slice(0, 160)} (level ${j.level})`;
      byMsg.set(key, (byMsg.get(key) ?? 0) + 1);
    } catch { /* a partial line */ }
  }
  return [...byMsg.entries()].sort((a, b) => b[1] - a[1]).map(([m, n]) => `${n} x ${m}`);
}

export const CEILING_MAIN = path.join(__dirname, 'ceiling-server.js');

/** The bare uWebSockets.js server of bench/ceiling-server.ts. */
export function startCeiling(): Promise<Server> {
  return startServer('ceiling', [CEILING_MAIN], (l) => l.includes('"ceiling listening"'));
}

export const NAIVE_MAIN = path.join(__dirname, 'naive-server.js');

/** The naive node:http + ws + msgpackr server of bench/naive-server.ts (what a user would write instead). */
export function startNaive(): Promise<Server> {
  return startServer('naive', [NAIVE_MAIN], (l) => l.includes('"naive listening"'));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  const body = await r.text();
  // /healthz answers 503 when a busy shard misses its stats deadline; its ring counters are still in the body
  if (r.status !== 200 && !(r.status === 503 && url.endsWith('/healthz'))) throw new Error(`GET ${url}: ${r.status} ${body.slice(0, 200)}`);
  return JSON.parse(body) as T;
}

export interface IngestCounters {
  batches: number; eventsAccepted: number; eventsRejected: number; batchesRefused: number;
  backpressure: number; duplicates: number; gaps: number; unavailable: number;
}

/** storage.lastCheckpoint of /healthz (the engine's 'checkpoint written' debug log line has the same fields) */
export interface CheckpointSummary {
  reason: string; seq: number;
  /** the shards' checkpoints as stored */
  bytes: number;
  /** what this cycle wrote (incremental checkpoints: the changed pane groups and the bases); absent on older engines */
  written?: number;
  /** every group was written */
  full?: boolean;
  pauseMsMax: number; walDeleted: number; durationMs: number;
  /** the slowest shard's pause by part; absent on older engines */
  pauseParts?: { headMs: number; seriesMs: number; baseMs: number } | null;
}

export interface EngineHealth {
  status?: string;
  devices: number;
  ingest: IngestCounters;
  storage?: { ackMode: string; fault: unknown; walBytes: number; checkpointBytes: number; pendingCommits: number;
    wal: { walAppends: number; walBatches?: number; walFailures: number; walBytesWritten: number }; checkpointFailures: number;
    lastCheckpoint?: CheckpointSummary | null };
  /** the front-end thread's memory (process.memoryUsage; rssBytes is the process's) */
  memory?: { rssBytes: number; heapTotalBytes?: number; heapUsedBytes: number; externalBytes: number; arrayBuffersBytes: number };
  shards: { eventsApplied: number; ringUsedBytes: number; state?: string; series?: number; panes?: number; paneStoreBytes?: number; heapUsedBytes?: number;
    memory?: { heapTotalBytes: number; heapUsedBytes: number; arrayBuffersBytes: number } | null;
    summaryCache?: { bytes: number } | null; watermark?: number | null; lateEvents?: number; rollupWriteErrors?: number }[];
}

export async function engineApplied(port: number): Promise<{ applied: number; health: EngineHealth; status: number }> {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  const body = await r.text();
  // /healthz answers 503 when a shard does not answer its stats task; its ring counters are still in the body
  if (r.status !== 200 && r.status !== 503) throw new Error(`GET /healthz: ${r.status} ${body.slice(0, 200)}`);
  const health = JSON.parse(body) as EngineHealth;
  let applied = 0;
  for (const s of health.shards) applied += s.eventsApplied;
  return { applied, health, status: r.status };
}

export interface CeilingCount { messages: number; requests: number; bytes: number }

/** GET /count of the naive server: the events it counted (valid ones only). */
export interface NaiveCount extends CeilingCount { events: number; devices: number }

export function naiveCount(port: number): Promise<NaiveCount> {
  return getJson<NaiveCount>(`http://127.0.0.1:${port}/count`);
}

export function ceilingCount(port: number): Promise<CeilingCount> {
  return getJson<CeilingCount>(`http://127.0.0.1:${port}/count`);
}
