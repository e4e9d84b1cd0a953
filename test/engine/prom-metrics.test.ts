import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startEngine, post, tempDir, freePort } from '../helpers/engine';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';

/** name{labels} -> value, from the text exposition (comments skipped) */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

async function scrape(url: string): Promise<{ status: number; type: string; text: string }> {
  const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() };
}


t.test('GET /metrics: the engine figures, read at scrape', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  const now = Date.now();
  // 3 batches: 100 good events; 10 good + 2 with a bad metric value; 1 event with a bad deviceId
  const good = Array.from({ length: 100 }, (_, i) => ({ deviceId: `pm-${i % 10}`, timestamp: now - 1000 + i, metrics: { cpu: i } }));
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(good))).status, 204);
  const mixed = [
    ...Array.from({ length: 10 }, (_, i) => ({ deviceId: `pm-${i}`, timestamp: now, metrics: { cpu: 1 } })),
    { deviceId: 'pm-1', timestamp: now, metrics: { cpu: 'high' } },
    { deviceId: 'pm-2', timestamp: now, metrics: { cpu: 'low' } },
  ];
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(mixed))).status, 200);
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'bad id!', timestamp: now, metrics: { cpu: 1 } }))).status, 400);

  const s = await scrape(engine.url);
  t.equal(s.status, 200);
  t.match(s.type, /^text\/plain; version=0\.0\.4/);
  const m = parseExposition(s.text);
  t.equal(m.get('sluice_events_accepted_total'), 110, 'accepted events');
  t.equal(m.get('sluice_batches_total'), 3, 'batches');
  const byCode = [...m].filter(([k]) => k.startsWith('sluice_events_rejected_total{'));
  t.equal(byCode.reduce((n, [, v]) => n + v, 0), 3, `3 rejected events by code: ${byCode.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  t.ok(byCode.every(([k]) => /code="SLUICE_E_[A-Z_]+"/.test(k)), 'each labelled with its error code');
  // durable acks: every batch with an accepted event was answered after its commit
  t.equal(m.get('sluice_ack_seconds_count'), 2, 'two batches acknowledged after a commit');
  t.equal(m.get('sluice_ack_seconds_bucket{le="+Inf"}'), 2);
  t.ok((m.get('sluice_wal_commit_seconds_count') ?? 0) >= 1, 'WAL commits timed');
  t.ok((m.get('sluice_wal_commit_seconds_sum') ?? -1) > 0, 'commit latency sums to > 0');
  t.ok((m.get('sluice_wal_appends_total') ?? 0) >= 1);
  // per shard figures from the rings' stat slots
  for (const shard of [0, 1]) {
    t.equal(m.get(`sluice_ring_capacity_bytes{shard="${shard}"}`), 4 * 1024 * 1024, `shard ${shard} ring capacity`);
    t.ok(m.has(`sluice_ring_used_bytes{shard="${shard}"}`));
    t.ok(m.has(`sluice_seal_backlog_slices{shard="${shard}"}`));
  }
  t.equal(m.get('sluice_devices'), 10, 'devices interned (the bad deviceId is not)');
  t.ok((m.get('sluice_lmdb_file_bytes') ?? 0) > 0, 'LMDB file size');
  t.equal(m.get('sluice_connections{kind="ws_stream"}'), 0);
  t.ok(m.has('sluice_process_cpu_user_seconds_total'), 'process metrics');
  t.ok([...m.keys()].some((k) => k.startsWith('sluice_nodejs_heap_size_used_bytes')), 'Node.js heap metrics');
  t.ok(s.text.includes('# TYPE sluice_nodejs_gc_duration_seconds histogram'), 'GC metrics');
  t.ok(m.has('sluice_build_info{version="0.1.0",node="' + process.version + '"}') || [...m.keys()].some((k) => k.startsWith('sluice_build_info{')), 'build info');

  // the workers publish every 250 ms at most: the applied events reach 110 across the shards
  let applied = 0;
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    const mm = parseExposition((await scrape(engine.url)).text);
    applied = (mm.get('sluice_events_applied_total{shard="0"}') ?? 0) + (mm.get('sluice_events_applied_total{shard="1"}') ?? 0);
    if (applied === 110) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(applied, 110, 'events applied, summed over the shards');

  t.test('promtool check metrics passes on the live exposition', { skip: fs.existsSync(PROMTOOL) ? false : `${PROMTOOL} missing (apt-get install prometheus)` }, async (t) => {
    const text = (await scrape(engine.url)).text;
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
    t.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no lint complaint');
  });
});

t.test('a real Prometheus scrapes Sluice: up{job="sluice"} is 1', { skip: fs.existsSync(PROMETHEUS) ? false : `${PROMETHEUS} missing (apt-get install prometheus)` }, async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const dir = tempDir('sluice-prom-');
  const promPort = await freePort();
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(config, [
    'global:',
    '  scrape_interval: 1s',
    'scrape_configs:',
    '  - job_name: sluice',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${engine.port}']`,
    '',
  ].join('\n'));
  const prom = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promLog = '';
  prom.stderr!.on('data', (c: Buffer) => { promLog = (promLog + c.toString()).slice(-4000); });
  t.teardown(() => {
    prom.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const query = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent('up{job="sluice"}')}`;
  let up: string | null = null;
  let accepted: string | null = null;
  await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'scraped', timestamp: Date.now(), metrics: { cpu: 7 } }));
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && (up !== '1' || accepted !== '1');) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      const r = await (await fetch(query, { signal: AbortSignal.timeout(2000) })).json() as { data: { result: { value: [number, string] }[] } };
      up = r.data.result[0]?.value[1] ?? null;
      const a = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=sluice_events_accepted_total`, { signal: AbortSignal.timeout(2000) })).json() as { data: { result: { value: [number, string] }[] } };
      accepted = a.data.result[0]?.value[1] ?? null;
    } catch {
      // Prometheus still starting
    }
  }
  t.equal(up, '1', `up{job="sluice"} (prometheus log tail: ${promLog.slice(-500)})`);
  t.equal(accepted, '1', 'Prometheus holds sluice_events_accepted_total as Sluice counted it');
});
