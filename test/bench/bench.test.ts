/**
 * The bench cannot rot: `node bench --quick --only ws-msgpack,http-single --json` runs once as a
 * child process, and its JSON must hold every field with plausible values for the engine, the uWS
 * ceiling and the naive node:http + ws server. No timing assertions: rates only have to be
 * positive, ratios to the ceiling between 0 and 2, ratios to the naive server between 0 and 20.
 */

import { execFile } from 'node:child_process';
import path from 'node:path';
import t from 'tap';

const ROOT = path.join(__dirname, '..', '..', '..');
const TIMEOUT_MS = 120_000;

function runBench(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bench', '--quick', '--only', 'ws-msgpack,http-single', '--json', '--no-save'],
      { cwd: ROOT, timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });
}

const MEASURE_FIELDS = ['seconds', 'events', 'eventsPerSec', 'mbPerSec', 'serverCpuPercent', 'serverNsPerEvent',
  'serverRssBytes', 'generatorCpuPercent'] as const;

t.test('bench --quick --only ws-msgpack,http-single --json', { timeout: TIMEOUT_MS + 10_000 }, async (t) => {
  const r = await runBench();
  t.equal(r.code, 0, `bench exits 0\n${r.stderr.slice(-3000)}`);
  const report = JSON.parse(r.stdout);
  t.equal(report.version, 1);
  t.ok(Date.parse(report.startedAt) <= Date.parse(report.finishedAt), 'startedAt <= finishedAt');
  t.type(report.machine.pinned, 'boolean');
  t.ok(report.machine.cpus >= 1);
  t.same(report.scenarios.map((s: { name: string }) => s.name), ['ws-msgpack', 'http-single']);
  for (const s of report.scenarios) {
    t.test(s.name, async (t) => {
      t.equal(s.status, 'ok', s.reason ?? '');
      t.type(s.description, 'string');
      t.type(s.generator, 'string');
      t.ok(Array.isArray(s.notes));
      t.ok(s.ratio > 0 && s.ratio < 2, `ratio ${s.ratio} in (0, 2)`);
      t.ok(s.naiveRatio > 0 && s.naiveRatio < 20, `naiveRatio ${s.naiveRatio} in (0, 20)`);
      for (const target of ['engine', 'ceiling', 'naive']) {
        const m = s[target];
        t.equal(m.target, target);
        for (const f of MEASURE_FIELDS) t.ok(Number.isFinite(m[f]) && m[f] > 0, `${target}.${f} = ${m[f]} is positive`);
        t.ok(m.serverCpuPercent < 100 * report.machine.cpus + 10, `${target} CPU % within the machine`);
        t.type(m.generatorSaturated, 'boolean');
        t.ok(m.refused >= 0);
        const l = m.latencyMs;
        t.ok(l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max * 1.05 + 0.001, `${target} latency ordered: ${JSON.stringify(l)}`);
        t.ok(l.samples > 0);
      }
    });
  }
});
