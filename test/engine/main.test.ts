import t from 'tap';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { MAIN, startEngine, tempDir, getJson, post } from '../helpers/engine';

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

t.test('two engines on one data dir: the second exits 1 naming the dir and the holder; nothing acknowledged is lost', async (t) => {
  const first = await startEngine(['--shards', '2']);
  t.teardown(() => first.stop('SIGKILL'));
  const ts = Date.now() - 2000;
  const send = async (url: string, value: number): Promise<number> => (await post(`${url}/v1/events`, 'application/json',
    JSON.stringify({ deviceId: 'lock-1', timestamp: ts, metrics: { v: value } }))).status;
  t.equal(await send(first.url, 1), 204);

  const second = run(['--port', '0', '--host', '127.0.0.1', '--data-dir', first.dataDir]);
  t.equal(second.status, 1, 'the second engine exits 1');
  t.match(second.stderr, new RegExp(`the data dir .*${first.dataDir.split('/').pop()} is in use by pid ${first.proc.pid}`));
  // through a symlink: the same dir, the same lock
  const link = `${tempDir()}/link`;
  fs.symlinkSync(first.dataDir, link);
  t.equal(run(['--port', '0', '--host', '127.0.0.1', '--data-dir', link]).status, 1, 'a symlink to the dir is the same dir');

  t.equal(await send(first.url, 2), 204, 'the first keeps serving');
  await first.stop('SIGKILL');
  // kill -9 leaves the lock file behind: it must not block the next start, which recovers exactly
  t.ok(fs.existsSync(`${first.dataDir}/sluice.lock`), 'the lock file outlived kill -9');
  const next = await startEngine(['--shards', '2'], first.dataDir);
  t.teardown(() => next.stop());
  const q = await getJson(`${next.url}/v1/devices/lock-1/metrics/v?from=${ts - 1}&to=${ts + 1}`);
  t.equal(q.status, 200);
  t.same(q.body.windows.map((w: { count: number; sum: number }) => [w.count, w.sum]), [[2, 3]], 'both acknowledged events, once each');
});
