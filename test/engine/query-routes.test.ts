import t from 'tap';
import { startEngine, getJson, post } from '../helpers/engine';

function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** rank of v in sorted, as a fraction */
function rankOf(sorted: number[], v: number): number {
  let lo = 0;
  while (lo < sorted.length && sorted[lo] < v) lo++;
  return lo / sorted.length;
}

t.test('query routes over the real server', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  const now = Date.now();
  const hour = now - (now % 3_600_000);
  const base = hour - 3_600_000; // the previous full hour
  // 20 devices x 2 metrics, 500 readings each over the hour, values known, sent in event-time
  // order: windows older than the allowed lateness close into rollups while the hour streams in
  const values = new Map<string, number[]>();
  const events: object[] = [];
  for (let d = 0; d < 20; d++) values.set(`q-${String(d).padStart(2, '0')}`, []);
  for (let i = 0; i < 500; i++) {
    for (let d = 0; d < 20; d++) {
      const id = `q-${String(d).padStart(2, '0')}`;
      const v = (d * 7 + i * 13) % 101 + d;
      values.get(id)!.push(v);
      events.push({ deviceId: id, timestamp: base + i * 7_000, metrics: { cpu: v, mem: d } });
    }
  }
  for (let i = 0; i < events.length; i += 5000) {
    const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(events.slice(i, i + 5000)));
    t.equal(r.status, 204);
  }
  const range = `from=${base}&to=${base + 3_600_000}`;

  t.test('device series: windows, resolution merges panes, quantiles within tolerance', async (t) => {
    const fine = await getJson(`${engine.url}/v1/devices/q-03/metrics/cpu?${range}`);
    t.equal(fine.status, 200);
    t.equal(fine.body.resolution, '10s');
    const vs = values.get('q-03')!;
    t.equal(fine.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0), 500);
    const coarse = await getJson(`${engine.url}/v1/devices/q-03/metrics/cpu?${range}&resolution=1h&q=0.1,0.5,0.9`);
    t.equal(coarse.body.resolution, '1h');
    t.equal(coarse.body.windows.length, 1);
    const w = coarse.body.windows[0];
    const sorted = [...vs].sort((a, b) => a - b);
    t.match(w, { start: base, end: base + 3_600_000, count: 500, sum: vs.reduce((a, b) => a + b, 0), min: sorted[0], max: sorted[499], last: vs[499] });
    for (const q of ['0.1', '0.5', '0.9']) {
      const est = w.quantiles[q] as number;
      t.ok(Math.abs(rankOf(sorted, est) - Number(q)) <= 0.02 || Math.abs(est - exactQuantile(sorted, Number(q))) <= 1, `q${q}: ${est} vs exact ${exactQuantile(sorted, Number(q))}`);
    }
  });

  t.test('fleet: merged over devices, distinct devices exact', async (t) => {
    const f = await getJson(`${engine.url}/v1/metrics/mem?${range}&resolution=1h`);
    t.equal(f.status, 200);
    t.equal(f.body.devices, 20);
    t.equal(f.body.windows.length, 1);
    t.match(f.body.windows[0], { count: 10_000, sum: 500 * (19 * 20) / 2, min: 0, max: 19, devices: 20 });
    const fine = await getJson(`${engine.url}/v1/metrics/mem?${range}`);
    t.equal(fine.body.windows[0].devices, 20, 'each 10 s window holds one reading of every device');
  });

  t.test('top n by several criteria', async (t) => {
    const byMax = await getJson(`${engine.url}/v1/metrics/cpu/top?n=3&by=max&${range}`);
    const maxes = [...values.entries()].map(([id, vs]) => ({ id, v: Math.max(...vs) })).sort((a, b) => b.v - a.v || (a.id < b.id ? -1 : 1));
    t.same(byMax.body.devices.map((r: { deviceId: string }) => r.deviceId), maxes.slice(0, 3).map((m) => m.id));
    const byMean = await getJson(`${engine.url}/v1/metrics/mem/top?n=2&by=mean&${range}`);
    t.same(byMean.body.devices.map((r: { deviceId: string; value: number }) => [r.deviceId, r.value]), [['q-19', 19], ['q-18', 18]]);
    const byCount = await getJson(`${engine.url}/v1/metrics/cpu/top?n=1&by=count&${range}`);
    t.equal(byCount.body.devices[0].value, 500);
    const byP99 = await getJson(`${engine.url}/v1/metrics/cpu/top?n=20&by=p99&${range}`);
    t.equal(byP99.body.devices.length, 20);
  });

  t.test('device list by prefix', async (t) => {
    const l = await getJson(`${engine.url}/v1/devices?prefix=q-1&limit=3`);
    t.same(l.body.devices, [
      { deviceId: 'q-10', metrics: ['cpu', 'mem'] },
      { deviceId: 'q-11', metrics: ['cpu', 'mem'] },
      { deviceId: 'q-12', metrics: ['cpu', 'mem'] },
    ]);
    t.equal(l.body.truncated, true);
  });

  t.test('default range is the last hour up to now, the open window included', async (t) => {
    const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'live-1', timestamp: Date.now(), cpu: 50 }));
    t.equal(r.status, 204);
    const q = await getJson(`${engine.url}/v1/devices/live-1/metrics/cpu`);
    t.equal(q.body.windows.length, 1);
    t.equal(q.body.windows[0].count, 1);
  });

  t.test('bad parameters are 400 naming the parameter; unknown device 404', async (t) => {
    const cases: [string, RegExp][] = [
      [`/v1/devices/q-01/metrics/cpu?from=yesterday`, /^from: /],
      [`/v1/devices/q-01/metrics/cpu?to=2020-13-01`, /^to: /],
      [`/v1/devices/q-01/metrics/cpu?from=${now}&to=${now - 1000}`, /^from: .* is after to/],
      [`/v1/devices/q-01/metrics/cpu?q=1.5`, /^q: "1.5" is not a number in \[0, 1\]/],
      [`/v1/devices/q-01/metrics/cpu?resolution=15s`, /^resolution: 15s is not one of 10s, 1m, 1h, 1d/],
      [`/v1/devices/q-01/metrics/cpu?resolution=fast`, /^resolution: "fast" is not a duration/],
      [`/v1/devices/q-01/metrics/cpu?from=0&resolution=10s`, /^resolution: .* more than 100000 windows/],
      [`/v1/devices/q%2001/metrics/cpu`, /^deviceId: "q 01"/],
      [`/v1/devices/q-01/metrics/c%20pu`, /^metric: "c pu"/],
      [`/v1/metrics/cpu/top?n=0`, /^n: 0 is out of range \(allowed: 1\.\.1000\)/],
      [`/v1/metrics/cpu/top?by=median`, /^by: "median" is not one of mean, max/],
      [`/v1/devices?limit=abc`, /^limit: "abc" is not an integer/],
    ];
    for (const [path, re] of cases) {
      const r = await getJson(engine.url + path);
      t.equal(r.status, 400, path);
      t.equal(r.body.code, 'SLUICE_E_BAD_PARAM', path);
      t.match(r.body.error, re, path);
    }
    const unknown = await getJson(`${engine.url}/v1/devices/nobody/metrics/cpu`);
    t.equal(unknown.status, 404);
    t.equal(unknown.body.code, 'SLUICE_E_NOT_FOUND');
    const noRoute = await getJson(`${engine.url}/v2/nothing`);
    t.equal(noRoute.status, 404);
  });

  t.test('healthz reports every shard', async (t) => {
    const h = await getJson(`${engine.url}/healthz`);
    t.equal(h.status, 200);
    t.equal(h.body.status, 'ok');
    t.equal(h.body.shards.length, 2);
    t.equal(h.body.shards.reduce((n: number, s: { eventsApplied: number }) => n + s.eventsApplied, 0), 10_001);
    t.equal(h.body.devices, 21);
    t.ok(h.body.shards.every((s: { state: string }) => s.state === 'ok'));
  });
});

t.test('healthz: a shard that does not answer in 2 s but still runs is busy (200), with the figures it last published', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '1']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());
  const now = Date.now();
  const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify([
    { deviceId: 'busy-1', timestamp: now - 1000, cpu: 1 }, { deviceId: 'busy-2', timestamp: now, cpu: 2 },
  ]));
  t.equal(r.status, 204);
  await getJson(`${engine.url}/v1/metrics/cpu`); // applied and published
  const stall = await post(`${engine.url}/v1/debug/stall-shards?ms=4000`, 'application/json', '');
  t.equal(stall.status, 200);
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.status, 200);
  t.equal(h.body.status, 'ok');
  const [s] = h.body.shards;
  t.equal(s.state, 'busy');
  t.ok(s.heartbeatAgeMs >= 1500 && s.heartbeatAgeMs < 30_000, `heartbeat age ${s.heartbeatAgeMs} ms`);
  t.same([s.series, s.panes, s.eventsApplied, s.maxEventTime, s.watermark], [2, 2, 2, now, now - 300_000], 'the last published figures');
  await new Promise((r) => setTimeout(r, 2500)); // past the 4 s stall
  const after = await getJson(`${engine.url}/healthz`);
  t.equal(after.body.shards[0].state, 'ok', 'answers again once the stall is over');
});
