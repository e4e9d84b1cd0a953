/**
 * Sluice's line protocol ingest against a real InfluxDB: one generated line protocol file (50
 * devices x 10 minutes, a point per 10 s with jitter, float and integer fields) is imported with
 * the real `influx` CLI (`influx -import`) into Sluice and into a real `influxd` started here on a
 * temp dir; then for every device, field and 10 s window, count, sum, min and max from InfluxQL
 * (GROUP BY time(10s), host) must equal Sluice's windows. influxd is killed by its PID at the end.
 * Skipped (with a message) only where the Debian packages are not installed.
 */

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { startEngine, tempDir, getJson, freePort } from '../helpers/engine';
import { rng } from '../helpers/rng';

const INFLUXD = '/usr/bin/influxd';
const INFLUX = '/usr/bin/influx';
const DEVICES = 50;
const STEPS = 60;
const FIELDS = ['usage_user', 'usage_system', 'procs'];
const SEED = 20261202;


function influxdConfig(dir: string, httpPort: number, rpcPort: number): string {
  return `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
  logging-enabled = false
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
  pprof-enabled = false
[continuous_queries]
  enabled = false
[ifql]
  enabled = false
`;
}

async function waitForPing(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(`${url}/ping`);
      if (r.status === 204) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url}/ping did not answer 204 in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function runImport(file: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(INFLUX, ['-import', '-path', file, '-host', '127.0.0.1', '-port', String(port), '-precision', 'ms'],
      { timeout: 60_000 }, (err, stdout, stderr) => {
        // the CLI echoes the whole failed batch: the first lines say why
        if (err) reject(new Error(`influx -import to port ${port}: ${err.message.slice(0, 600)}\n${stdout.slice(0, 600)}\n${stderr.slice(0, 600)}`));
        else resolve(stdout + stderr);
      });
  });
}

/** The generated file: 10 minutes ending ~5 minutes ago, a point per device per 10 s, jittered. */
function generate(file: string, startMs: number): number {
  const rand = rng(SEED);
  const lines = ['# DML', '# CONTEXT-DATABASE: lp', '# CONTEXT-RETENTION-POLICY: autogen'];
  for (let s = 0; s < STEPS; s++) {
    for (let d = 0; d < DEVICES; d++) {
      // up to 4 s either way: some points cross into the next or previous window
      const ts = startMs + s * 10_000 + Math.round((rand() - 0.5) * 8000);
      const user = Math.round(rand() * 10_000) / 100;
      const system = Math.round(rand() * 2_000) / 100;
      const procs = Math.floor(rand() * 500);
      lines.push(`cpu,host=dev-${String(d).padStart(3, '0')},cpu=cpu-total usage_user=${user},usage_system=${system},procs=${procs}i ${ts}`);
    }
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return DEVICES * STEPS;
}

type Windows = Map<string, [number, number, number, number]>;

async function influxWindows(url: string, field: string, from: number, to: number): Promise<Windows> {
  const q = `SELECT count(${field}),sum(${field}),min(${field}),max(${field}) FROM cpu WHERE time >= ${from}ms AND time < ${to}ms GROUP BY time(10s), host fill(none)`;
  const r = await fetch(`${url}/query?db=lp&epoch=ms&q=${encodeURIComponent(q)}`);
  const body = await r.json() as { results: { series?: { tags: { host: string }; values: number[][] }[]; error?: string }[] };
  if (body.results[0].error) throw new Error(body.results[0].error);
  const out: Windows = new Map();
  for (const s of body.results[0].series ?? []) {
    for (const [time, count, sum, min, max] of s.values) out.set(`${s.tags.host}@${time}`, [count, sum, min, max]);
  }
  return out;
}

async function sluiceWindows(url: string, field: string, from: number, to: number): Promise<Windows> {
  const out: Windows = new Map();
  for (let d = 0; d < DEVICES; d++) {
    const host = `dev-${String(d).padStart(3, '0')}`;
    const r = await getJson(`${url}/v1/devices/${host}/metrics/cpu.${field}?from=${from}&to=${to}&resolution=10s`);
    if (r.status !== 200) throw new Error(`${host} cpu.${field}: ${r.status} ${JSON.stringify(r.body)}`);
    for (const w of r.body.windows as { start: number; count: number; sum: number; min: number; max: number }[]) {
      if (w.start >= from && w.start < to) out.set(`${host}@${w.start}`, [w.count, w.sum, w.min, w.max]);
    }
  }
  return out;
}

const missing = [INFLUXD, INFLUX].filter((f) => !fs.existsSync(f));

t.test('influx -import into Sluice and into influxd: the same windows', { skip: missing.length > 0 ? `not installed: ${missing.join(', ')} (apt-get install influxdb influxdb-client)` : false, timeout: 180_000 }, async (t) => {
  const dir = tempDir('sluice-influxd-');
  const httpPort = await freePort();
  const rpcPort = await freePort();
  const conf = path.join(dir, 'influxd.conf');
  fs.writeFileSync(conf, influxdConfig(dir, httpPort, rpcPort));
  const influxd: ChildProcess = spawn(INFLUXD, ['-config', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const influxdLog: string[] = [];
  influxd.stderr?.on('data', (c: Buffer) => { if (influxdLog.length < 200) influxdLog.push(c.toString()); });
  t.teardown(() => {
    // by PID; SIGKILL if it has not gone in 5 s
    if (influxd.pid !== undefined && influxd.exitCode === null) {
      process.kill(influxd.pid, 'SIGTERM');
      const timer = setTimeout(() => { if (influxd.exitCode === null && influxd.pid !== undefined) process.kill(influxd.pid, 'SIGKILL'); }, 5000);
      influxd.once('exit', () => clearTimeout(timer));
    }
  });
  const influxUrl = `http://127.0.0.1:${httpPort}`;
  const e = await startEngine();
  t.teardown(() => e.stop());
  try {
    await waitForPing(influxUrl, 30_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${influxdLog.join('')}`);
  }
  const created = await fetch(`${influxUrl}/query?q=${encodeURIComponent('CREATE DATABASE lp')}`, { method: 'POST' });
  t.equal(created.status, 200);

  const start = Math.floor((Date.now() - 16 * 60_000) / 10_000) * 10_000;
  const file = path.join(dir, 'points.lp');
  const points = generate(file, start);
  const toSluice = await runImport(file, e.port);
  const toInflux = await runImport(file, httpPort);
  t.match(toSluice, new RegExp(`Processed ${points} inserts[\\s\\S]*Failed 0 inserts`), 'the CLI reports every point written to Sluice');
  t.match(toInflux, new RegExp(`Processed ${points} inserts[\\s\\S]*Failed 0 inserts`));

  const from = start - 10_000;
  const to = start + STEPS * 10_000 + 10_000;
  let compared = 0;
  for (const field of FIELDS) {
    const want = await influxWindows(influxUrl, field, from, to);
    const got = await sluiceWindows(e.url, field, from, to);
    t.equal(got.size, want.size, `${field}: as many (device, window) pairs`);
    let countSum = 0;
    for (const [key, [count, sum, min, max]] of want) {
      const g = got.get(key);
      if (g === undefined) {
        t.fail(`${field} ${key}: missing in Sluice`);
        continue;
      }
      countSum += count;
      // sums may add in another order: equal to the last few bits
      if (g[0] !== count || g[2] !== min || g[3] !== max || Math.abs(g[1] - sum) > 1e-9 * Math.max(1, Math.abs(sum))) {
        t.fail(`${field} ${key}: Sluice ${JSON.stringify(g)} vs InfluxDB ${JSON.stringify([count, sum, min, max])}`);
      }
      compared++;
    }
    t.equal(countSum, points, `${field}: every point counted once`);
  }
  // jitter leaves some windows empty and doubles others: about three in four hold a point
  t.ok(compared >= FIELDS.length * DEVICES * STEPS * 0.6, `${compared} windows compared`);
});
