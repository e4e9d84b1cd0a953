import t from 'tap';
import { spawnSync } from 'node:child_process';
import { MAIN, startEngine, tempDir } from '../helpers/engine';

function run(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('--help prints every setting and exits 0', async (t) => {
  const r = run(['--help']);
  t.equal(r.status, 0);
  for (const flag of ['--port', '--data-dir', '--shards', '--ring-size', '--pane', '--body-max', '--log-level', '--config']) t.match(r.stdout, flag);
  t.match(r.stdout, 'SLUICE_PORT');
});

t.test('a bad setting exits 2 naming the setting', async (t) => {
  const r = run(['--port', '70000']);
  t.equal(r.status, 2);
  t.match(r.stderr, /--port: 70000/);
  const ring = run(['--ring-size', '1MiB', '--body-max', '1MiB']);
  t.equal(ring.status, 2);
  t.match(ring.stderr, /--ring-size: 1MiB is less than 4 x --body-max/);
});

t.test('refuses the slow ws fallback of uWebSockets.js', async (t) => {
  const r = run(['--port', '0', '--data-dir', tempDir()], { UWS_USE_FALLBACK: '1' });
  t.equal(r.status, 1);
  t.match(r.stderr, /native uWebSockets\.js|UWS_USE_FALLBACK/);
});

t.test('SIGTERM stops cleanly: drained, exit 0, one summary line', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  const code = await engine.stop('SIGTERM');
  t.equal(code, 0);
  const last = engine.logs.map((l) => { try { return JSON.parse(l); } catch { return {}; } }).find((l) => /^stopped/.test(l.msg ?? ''));
  t.ok(last, 'a stop summary was logged');
  t.equal(last.drained, true);
});
