import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { compressSync } from 'snappy';
import { startEngine, getJson, tempDir, freePort, type EngineProcess } from '../helpers/engine';
import { REMOTE_WRITE_HEADERS, STALE, encodeRequest, remoteWriteBody, type TestSeries } from '../helpers/prompb';

// POST /api/v1/write (engine/remote-write-routes.ts) on a real engine, then a real Prometheus
// remote-writing to it, compared window by window with Prometheus's own samples

interface Answer { status: number; body: any; headers: Headers }

async function write(url: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await fetch(`${url}/api/v1/write`, {
    method: 'POST', body, signal: AbortSignal.timeout(30_000),
    headers: { 'content-type': 'application/x-protobuf', ...REMOTE_WRITE_HEADERS, ...headers },
  });
  const text = await r.text();
  let parsed: unknown = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

interface SluiceWindow { start: number; end: number; count: number; sum: number; min: number; max: number }

async function windows(url: string, device: string, metric: string, from: number, to: number): Promise<SluiceWindow[]> {
  const r = await getJson(`${url}/v1/devices/${encodeURIComponent(device)}/metrics/${metric}?from=${from}&to=${to}&resolution=10s`);
  if (r.status === 404) return [];
  if (r.status !== 200) throw new Error(`query ${device}/${metric}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.windows as SluiceWindow[];
}

const W = 10_000;
const windowOf = (ts: number): number => Math.floor(ts / W) * W;

t.test('remote-write on a real engine', async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const url = engine.url;
  const now = windowOf(Date.now()) - 2 * W;

  t.test('a request of samples: 204, every reading kept and queryable', async (t) => {
    const series: TestSeries[] = [
      { labels: { __name__: 'node_temp', instance: 'host-a:9100', job: 'node', sensor: 'cpu' }, samples: [{ value: 40, timestamp: now + 1000 }, { value: 44, timestamp: now + 2000 }] },
      { labels: { __name__: 'node_temp', instance: 'host-a:9100', job: 'node', sensor: 'gpu' }, samples: [{ value: 60, timestamp: now + 1500 }] },
      { labels: { __name__: 'job:load:avg1m', instance: 'host-b:9100' }, samples: [{ value: 0.5, timestamp: now + 3000 }, { value: STALE, timestamp: now + 4000 }] },
      { labels: { __name__: 'go_gc_duration_seconds', instance: 'host-b:9100', quantile: '0.5' }, samples: [{ value: NaN, timestamp: now + 3000 }] },
    ];
    const r = await write(url, remoteWriteBody(series, 2));
    t.equal(r.status, 204, JSON.stringify(r.body));
    t.equal(r.headers.get('sluice-remote-write'),
      'written=4 refused=0 stale=1 nonFinite=1 histograms=0 exemplars=0 metadata=2 labelsDropped=0');
    // two series of one name on one device are one Sluice metric (tags are not aggregated yet)
    t.match(await windows(url, 'host-a:9100', 'node_temp', now, now + W), [{ start: now, count: 3, sum: 144, min: 40, max: 60 }]);
    t.match(await windows(url, 'host-b:9100', 'job_load_avg1m', now, now + W), [{ start: now, count: 1, sum: 0.5 }]);
    const dev = await getJson(`${url}/v1/devices?prefix=host-b`);
    t.same(dev.body.devices.map((d: { deviceId: string; metrics: string[] }) => [d.deviceId, d.metrics.sort()]), [['host-b:9100', ['job_load_avg1m']]],
      'the NaN quantile and the stale marker wrote nothing');
  });

  t.test('invalid samples: 400 naming them, the valid ones of the request kept', async (t) => {
    const series: TestSeries[] = [
      { labels: { __name__: 'kept_metric', instance: 'host-c:1' }, samples: [{ value: 7, timestamp: now + 100 }] },
      { labels: { __name__: 'no_device', job: 'x' }, samples: [{ value: 1, timestamp: now }, { value: 2, timestamp: now + 1 }] },
      { labels: { __name__: 'future', instance: 'host-c:1' }, samples: [{ value: 1, timestamp: Date.now() + 3_600_000 }] },
    ];
    const r = await write(url, remoteWriteBody(series));
    t.equal(r.status, 400);
    t.match(r.body, {
      code: 'SLUICE_E_BAD_DEVICE_ID', written: 1, refused: 3,
      refusedByCode: { SLUICE_E_BAD_DEVICE_ID: 2, SLUICE_E_FUTURE_TIMESTAMP: 1 },
    });
    t.match(r.body.error, /^3 samples refused, 1 written \(the valid ones are kept\): series no_device\{job="x"\}: label instance \(--prom-device-label, the deviceId\) missing; series future\{instance="host-c:1"\}: timestamp: /);
    t.match(await windows(url, 'host-c:1', 'kept_metric', now, now + W), [{ count: 1, sum: 7 }]);
    const none = await write(url, remoteWriteBody([series[1]]));
    t.equal(none.status, 400, 'every sample refused');
    t.match(none.body, { written: 0, refused: 2 });
  });

  t.test('bad bodies answer 400 and the engine goes on', async (t) => {
    const good = encodeRequest([{ labels: { __name__: 'm', instance: 'h:1' }, samples: [{ value: 1, timestamp: now }] }]);
    const cases: [string, Uint8Array, RegExp][] = [
      ['protobuf not snappy-compressed', good, /not snappy-compressed/],
      ['snappy of JSON', compressSync('{"deviceId":"d","cpu":1}'), /not a protobuf prometheus\.WriteRequest/],
      ['truncated snappy', compressSync(good).subarray(0, 12), /not snappy-compressed|announces/],
      ['truncated protobuf', compressSync(good.subarray(0, good.length - 3)), /not a protobuf prometheus\.WriteRequest: .*(runs past|truncated)/],
      ['random bytes', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff)), /body: /],
      ['empty', new Uint8Array(0), /empty/],
      ['snappy framing format', Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59, 1, 2, 3]), /framing format/],
    ];
    for (const [name, body, reason] of cases) {
      const r = await write(url, body);
      t.equal(r.status, 400, name);
      t.equal(r.body?.code, 'SLUICE_E_BAD_BODY', name);
      t.match(r.body?.error, reason, name);
    }
    t.equal((await getJson(`${url}/healthz`)).status, 200, 'still serving');
    t.equal((await write(url, compressSync(good))).status, 204, 'and still writing');
  });

  t.test('415: another Content-Type (remote-write 2.0) or Content-Encoding', async (t) => {
    const body = remoteWriteBody([]);
    const v2 = await write(url, body, { 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request' });
    t.equal(v2.status, 415);
    t.match(v2.body.error, /Content-Type/);
    t.equal((await write(url, body, { 'content-encoding': 'gzip' })).status, 415);
    t.equal((await write(url, body, { 'content-type': 'application/x-protobuf;proto=prometheus.WriteRequest' })).status, 204);
  });

  t.test(`more readings than --batch-events-max in one request: split, all written, one answer`, async (t) => {
    const series: TestSeries[] = [];
    for (let s = 0; s < 250; s++) {
      series.push({ labels: { __name__: 'bulk', instance: 'bulk-1', shard: String(s) }, samples: Array.from({ length: 100 }, (_, i) => ({ value: s, timestamp: now + i * 10 })) });
    }
    const r = await write(url, remoteWriteBody(series));
    t.equal(r.status, 204, JSON.stringify(r.body));
    t.match(r.headers.get('sluice-remote-write'), /^written=25000 refused=0 /);
    t.match(await windows(url, 'bulk-1', 'bulk', now, now + W), [{ count: 25_000, sum: 100 * (249 * 250) / 2, min: 0, max: 249 }]);
  });
});

t.test('413: over --body-max as sent, and once decompressed (checked before decompressing)', async (t) => {
  const engine = await startEngine(['--body-max', '64KiB']);
  t.teardown(() => engine.stop());
  const noise = Buffer.from(Array.from({ length: 100 * 1024 }, (_, i) => (i * 2654435761) >>> 24));
  const sent = await write(engine.url, compressSync(noise));
  t.equal(sent.status, 413);
  t.equal(sent.body.code, 'SLUICE_E_BODY_TOO_LARGE');
  const bomb = compressSync(Buffer.alloc(1024 * 1024));
  t.ok(bomb.length < 64 * 1024, `1 MiB of zeros is ${bomb.length} bytes compressed`);
  const inflated = await write(engine.url, bomb);
  t.equal(inflated.status, 413);
  t.match(inflated.body.error, /1048576 bytes once decompressed, more than 65536/);
  t.equal((await getJson(`${engine.url}/healthz`)).status, 200);
});

// --- a real Prometheus -------------------------------------------------------------------------

const PROMETHEUS = '/usr/bin/prometheus';


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Prometheus's raw samples of a selector in (time - rangeS, time], by series. */
async function promSamples(promUrl: string, selector: string, rangeS: number, timeMs: number): Promise<[number, number][][]> {
  const q = encodeURIComponent(`${selector}[${rangeS}s]`);
  const r = await getJson(`${promUrl}/api/v1/query?query=${q}&time=${timeMs / 1000}`);
  if (r.status !== 200 || r.body.status !== 'success') throw new Error(`Prometheus query ${selector}: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body.data.result as { values: [number, string][] }[]).map((s) => s.values.map(([ts, v]) => [Math.round(ts * 1000), Number(v)]));
}

/** count, sum, min, max of the samples by 10 s window (all series merged, as Sluice merges them). */
function byWindow(series: [number, number][][]): Map<number, { count: number; sum: number; min: number; max: number }> {
  const out = new Map<number, { count: number; sum: number; min: number; max: number }>();
  for (const samples of series) {
    for (const [ts, v] of samples) {
      const w = out.get(windowOf(ts)) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
      w.count++;
      w.sum += v;
      w.min = Math.min(w.min, v);
      w.max = Math.max(w.max, v);
      out.set(windowOf(ts), w);
    }
  }
  return out;
}

t.test('a real Prometheus remote-writes its own metrics: Sluice windows equal its samples', { skip: !fs.existsSync(PROMETHEUS) && 'no /usr/bin/prometheus' }, async (t) => {
  const started = Date.now();
  const engine: EngineProcess = await startEngine();
  t.teardown(() => engine.stop());
  const promPort = await freePort();
  const dir = tempDir('sluice-prom-');
  const instance = `127.0.0.1:${promPort}`;
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: prometheus',
    '    static_configs:',
    `      - targets: ['${instance}']`,
    'remote_write:',
    `  - url: http://127.0.0.1:${engine.port}/api/v1/write`,
    '    queue_config:',
    '      batch_send_deadline: 1s',
    '      min_backoff: 100ms',
    '      max_backoff: 1s',
    '',
  ].join('\n'));
  const prom = spawn(PROMETHEUS, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=${instance}`, '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const promLog: string[] = [];
  prom.stdout.on('data', (c: Buffer) => promLog.push(c.toString()));
  prom.stderr.on('data', (c: Buffer) => promLog.push(c.toString()));
  const promExited = new Promise<void>((resolve) => prom.once('exit', () => resolve()));
  t.teardown(async () => {
    if (prom.exitCode === null && prom.signalCode === null) {
      prom.kill('SIGKILL');
      await promExited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const promUrl = `http://${instance}`;

  // within 30 s Sluice has Prometheus's series; then one window after the first complete one
  let first = 0;
  while (first === 0) {
    if (Date.now() - started > 30_000) {
      t.fail(`no samples from Prometheus in 30 s; its log:\n${promLog.join('')}`);
      return;
    }
    await sleep(500);
    const up = await windows(engine.url, instance, 'up', started - W, Date.now() + W);
    if (up.length > 0) first = up[0].start;
  }
  t.pass(`Sluice has ${instance}'s up after ${Date.now() - started} ms`);
  // windows first (maybe partial: the remote-write queue starts with the first scrapes) and
  // first + W (complete) are compared once first + 2W has begun and the queue had time to send
  const queryAt = first + 2 * W + 1500;
  await sleep(Math.max(0, queryAt - Date.now()));
  const compareFrom = first + W;
  const compareTo = first + 2 * W;
  const chosen: [string, string][] = [
    ['up', `up{instance="${instance}"}`],
    ['process_resident_memory_bytes', `process_resident_memory_bytes{instance="${instance}"}`],
    ['prometheus_tsdb_head_series', `prometheus_tsdb_head_series{instance="${instance}"}`],
    // many series of one name (a handler label each): Sluice merges them into one metric
    ['prometheus_http_requests_total', `prometheus_http_requests_total{instance="${instance}"}`],
  ];
  const expected = new Map<string, ReturnType<typeof byWindow>>();
  for (const [metric, selector] of chosen) expected.set(metric, byWindow(await promSamples(promUrl, selector, 60, queryAt)));
  // SIGTERM: Prometheus flushes its remote-write queue before it exits
  prom.kill('SIGTERM');
  await Promise.race([promExited, sleep(15_000)]);
  t.ok(prom.exitCode !== null || prom.signalCode !== null, 'Prometheus stopped on SIGTERM');
  for (const [metric] of chosen) {
    const got = (await windows(engine.url, instance, metric, compareFrom, compareTo)).filter((w) => w.start >= compareFrom && w.end <= compareTo);
    const want = [...expected.get(metric)!].filter(([start]) => start >= compareFrom && start + W <= compareTo);
    t.ok(want.length === 1 && want[0][1].count >= 5, `${metric}: Prometheus has ${want[0]?.[1].count} samples in the compared window`);
    t.equal(got.length, want.length, `${metric}: one window`);
    for (const [start, w] of want) {
      const s = got.find((x) => x.start === start);
      t.ok(s, `${metric}: Sluice has window ${start}`);
      if (!s) continue;
      t.equal(s.count, w.count, `${metric} @${start}: count`);
      t.equal(s.min, w.min, `${metric} @${start}: min`);
      t.equal(s.max, w.max, `${metric} @${start}: max`);
      t.ok(Math.abs(s.sum - w.sum) <= 1e-9 * Math.max(1, Math.abs(w.sum)), `${metric} @${start}: sum ${s.sum} = ${w.sum}`);
    }
  }
  t.notMatch(promLog.join(''), /non-recoverable error/, 'Prometheus logged no refused request');
  t.ok(Date.now() - started < 60_000, `done in ${Date.now() - started} ms`);
});
