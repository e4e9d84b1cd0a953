import t from 'tap';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { startEngine, getJson, post } from '../helpers/engine';

const PROMTOOL = '/usr/bin/promtool';
const DEVICES = 4;
const MINUTES = 30;

/** promtool's text output of a one-series answer: value by Unix second */
function promtoolSeries(out: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const line of out.split('\n')) {
    const hit = /^(\S+) @\[(\d+(?:\.\d+)?)\]$/.exec(line.trim());
    if (hit) m.set(Number(hit[2]), Number(hit[1]));
  }
  return m;
}

t.test('Prometheus query API over a known stream', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  // a past half hour (older than the allowed lateness: every window is final), 10 s apart
  const base = Math.floor(Date.now() / 600_000) * 600_000 - 50 * 60_000;
  const events: object[] = [];
  for (let i = 0; i < MINUTES * 6; i++) {
    for (let d = 0; d < DEVICES; d++) {
      events.push({ deviceId: `p-${d}`, timestamp: base + i * 10_000, metrics: { cpu: ((i * 7 + d * 3) % 50) + d, 'mem.used': 100 + d } });
    }
  }
  for (let i = 0; i < events.length; i += 2000) {
    t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(events.slice(i, i + 2000)))).status, 204);
  }
  const from = base;
  const to = base + MINUTES * 60_000;
  const start = from / 1000;
  const end = to / 1000 - 60;
  const v1Device = async (device: string, q = '0.5,0.9,0.99') =>
    (await getJson(`${engine.url}/v1/devices/${device}/metrics/cpu?from=${from}&to=${to}&resolution=1m&q=${q}`)).body.windows as {
      start: number; count: number; sum: number; min: number; max: number; mean: number; last: number; quantiles: Record<string, number>;
    }[];
  const v1Fleet = (await getJson(`${engine.url}/v1/metrics/cpu?from=${from}&to=${to}&resolution=1m`)).body.windows as { start: number; count: number; sum: number; min: number; max: number; devices: number }[];
  t.equal(v1Fleet.length, MINUTES, 'the /v1 fleet route has every minute');

  const range = async (query: string, step = '60'): Promise<{ status: number; body: any }> =>
    getJson(`${engine.url}/api/v1/query_range?query=${encodeURIComponent(query)}&start=${start}&end=${end}&step=${step}`);
  const onlySeries = (body: any): Map<number, number> => {
    t.equal(body.status, 'success');
    t.equal(body.data.resultType, 'matrix');
    t.equal(body.data.result.length, 1, 'one series');
    return new Map((body.data.result[0]?.values ?? []).map(([ts, v]: [number, string]) => [ts, Number(v)]));
  };

  t.test('promtool query range equals the /v1 routes, window by window', { skip: fs.existsSync(PROMTOOL) ? false : `${PROMTOOL} missing` }, async (t) => {
    const windows = await v1Device('p-1');
    t.equal(windows.length, MINUTES);
    const cases: [string, (w: (typeof windows)[number]) => number][] = [
      ['sluice_cpu_max{device="p-1"}', (w) => w.max],
      ['sluice_cpu_min{device="p-1"}', (w) => w.min],
      ['sluice_cpu_count{device="p-1"}', (w) => w.count],
      ['sluice_cpu_sum{device="p-1"}', (w) => w.sum],
      ['sluice_cpu_mean{device="p-1"}', (w) => w.mean],
      ['sluice_cpu_last{device="p-1"}', (w) => w.last],
      ['sluice_cpu_p99{device="p-1"}', (w) => w.quantiles['0.99']],
      ['sluice_cpu_p50{device="p-1"}', (w) => w.quantiles['0.5']],
    ];
    for (const [query, pick] of cases) {
      const r = spawnSync(PROMTOOL, ['query', 'range', `--start=${start}`, `--end=${end}`, '--step=60s', engine.url, query], { encoding: 'utf8', timeout: 20_000 });
      t.equal(r.status, 0, `promtool ${query}: ${r.stderr}`);
      const got = promtoolSeries(r.stdout);
      t.equal(got.size, MINUTES, `${query}: a value per minute`);
      const diffs = windows.filter((w) => got.get(w.start / 1000) !== pick(w)).map((w) => `${w.start}: ${got.get(w.start / 1000)} != ${pick(w)}`);
      t.same(diffs, [], `${query} equals /v1`);
    }
    const fleet = spawnSync(PROMTOOL, ['query', 'range', `--start=${start}`, `--end=${end}`, '--step=60s', engine.url, 'sum(sluice_cpu_count)'], { encoding: 'utf8', timeout: 20_000 });
    const counts = promtoolSeries(fleet.stdout);
    t.same(v1Fleet.filter((w) => counts.get(w.start / 1000) !== w.count).map((w) => w.start), [], 'sum(sluice_cpu_count) equals the fleet window counts');
  });

  t.test('any quantile through the quantile label', async (t) => {
    const windows = await v1Device('p-2', '0.95');
    const got = onlySeries((await range('sluice_cpu_quantile{device="p-2", quantile="0.95"}')).body);
    t.same(windows.filter((w) => got.get(w.start / 1000) !== w.quantiles['0.95']).map((w) => w.start), []);
  });

  t.test('fleet reads and per-device reads agree', async (t) => {
    // by (metric) takes the per-device path; without a grouping the fleet's windows answer
    const perDevice = onlySeries((await range('max by (metric) (sluice_cpu_max)')).body);
    const fleet = onlySeries((await range('max(sluice_cpu_max)')).body);
    t.same([...fleet], [...perDevice], 'max');
    t.same(v1Fleet.filter((w) => fleet.get(w.start / 1000) !== w.max).map((w) => w.start), [], 'max equals /v1 fleet max');
    const sumPer = onlySeries((await range('sum by (metric) (sluice_cpu_sum)')).body);
    t.same(v1Fleet.filter((w) => Math.abs((sumPer.get(w.start / 1000) ?? NaN) - w.sum) > 1e-9).map((w) => w.start), [], 'sum by (metric) equals the fleet sums');
    const devices = onlySeries((await range('count(sluice_cpu_min)')).body);
    t.same(v1Fleet.filter((w) => devices.get(w.start / 1000) !== w.devices).map((w) => w.start), [], 'count equals the distinct devices');
    t.ok([...devices.values()].every((v) => v === DEVICES));
  });

  t.test('grouping, topk, arithmetic', async (t) => {
    const by = (await range('sum by (device) (sluice_cpu_count)')).body;
    t.equal(by.data.result.length, DEVICES, 'one series per device');
    t.same(Object.keys(by.data.result[0].metric), ['device'], 'by keeps only the by labels');
    t.ok(by.data.result.every((s: any) => s.values.every(([, v]: [number, string]) => v === '6')), 'six readings a minute per device');
    const without = (await range('sum without (device) (sluice_mem_used_max)')).body;
    t.same(without.data.result.map((s: any) => s.metric), [{ metric: 'mem.used' }], 'without drops device and the name');
    t.equal(without.data.result[0].values[0][1], String(100 + 101 + 102 + 103));
    const top = (await range('topk(1, sluice_mem_used_max)')).body;
    t.same(top.data.result.map((s: any) => s.metric.device), [`p-${DEVICES - 1}`], 'topk keeps the largest with its labels');
    const bottom = (await range('bottomk(2, sluice_mem_used_max)')).body;
    t.same(bottom.data.result.map((s: any) => s.metric.device).sort(), ['p-0', 'p-1']);
    const scaled = (await range('sluice_mem_used_max{device="p-3"} * 2 + 1')).body;
    t.same(scaled.data.result[0].metric, { device: 'p-3', metric: 'mem.used' }, 'arithmetic drops the name');
    t.equal(scaled.data.result[0].values[0][1], String(103 * 2 + 1));
    const neg = (await range('-sluice_mem_used_max{device="p-0"}')).body;
    t.equal(neg.data.result[0].values[0][1], '-100');
    const scalar = await getJson(`${engine.url}/api/v1/query?query=${encodeURIComponent('(1 + 2) ^ 2')}&time=${start}`);
    t.same(scalar.body.data, { resultType: 'scalar', result: [start, '9'] });
    const regex = (await range('sluice_cpu_count{device=~"p-[12]"}')).body;
    t.same(regex.data.result.map((s: any) => s.metric.device).sort(), ['p-1', 'p-2']);
    const neq = (await range('sluice_cpu_count{device!="p-0", device!~"p-3"}')).body;
    t.same(neq.data.result.map((s: any) => s.metric.device).sort(), ['p-1', 'p-2']);
    const absentLabel = (await range('sluice_cpu_count{job="x"}')).body;
    t.same(absentLabel.data.result, [], 'a label Sluice series do not have matches only the empty string');
  });

  t.test('instant queries read the finest windows; POST takes a form', async (t) => {
    const at = start + 60;
    const r = await getJson(`${engine.url}/api/v1/query?query=${encodeURIComponent('sum(sluice_cpu_count)')}&time=${at}`);
    t.same(r.body.data, { resultType: 'vector', result: [{ metric: {}, value: [at, String(DEVICES)] }] }, 'one 10 s window: one reading per device');
    const form = await post(`${engine.url}/api/v1/query`, 'application/x-www-form-urlencoded', `query=${encodeURIComponent('sum(sluice_cpu_count)')}&time=${at}`);
    t.equal(form.status, 200);
    t.same(form.body.data, r.body.data);
    const rfc = await getJson(`${engine.url}/api/v1/query?query=${encodeURIComponent('sum(sluice_cpu_count)')}&time=${new Date(at * 1000).toISOString()}`);
    t.same(rfc.body.data, r.body.data, 'RFC 3339 time');
  });

  t.test('series, labels, label values, buildinfo', async (t) => {
    const s = await getJson(`${engine.url}/api/v1/series?match[]=${encodeURIComponent('sluice_cpu_p99{device=~"p-[01]"}')}`);
    t.same(s.body, { status: 'success', data: [0, 1].map((d) => ({ __name__: 'sluice_cpu_p99', device: `p-${d}`, metric: 'cpu' })) });
    t.same((await getJson(`${engine.url}/api/v1/labels`)).body.data, ['__name__', 'device', 'metric', 'quantile']);
    const names = (await getJson(`${engine.url}/api/v1/label/__name__/values`)).body.data as string[];
    t.ok(names.includes('sluice_cpu_p99') && names.includes('sluice_mem_used_quantile'), 'names of every metric and aggregate');
    t.same((await getJson(`${engine.url}/api/v1/label/device/values`)).body.data, ['p-0', 'p-1', 'p-2', 'p-3']);
    t.same((await getJson(`${engine.url}/api/v1/label/metric/values`)).body.data, ['cpu', 'mem.used']);
    const b = await getJson(`${engine.url}/api/v1/status/buildinfo`);
    t.equal(b.body.status, 'success');
    t.match(b.body.data.revision, /^sluice-/);
  });

  t.test('errors in Prometheus\'s shape, naming the unsupported part', async (t) => {
    const unsupported = await getJson(`${engine.url}/api/v1/query?query=${encodeURIComponent('rate(sluice_cpu_count[5m])')}`);
    t.equal(unsupported.status, 400);
    t.equal(unsupported.body.status, 'error');
    t.equal(unsupported.body.errorType, 'bad_data');
    t.match(unsupported.body.error, /unsupported in Sluice's PromQL subset: function calls/);
    const twoVectors = await range('sluice_cpu_count + sluice_cpu_sum');
    t.equal(twoVectors.status, 400);
    t.match(twoVectors.body.error, /two vectors/);
    t.match((await getJson(`${engine.url}/api/v1/query_range?query=x&start=${start}&end=${end}`)).body, { status: 'error', errorType: 'bad_data', error: /missing parameter "step"/ });
    t.match((await getJson(`${engine.url}/api/v1/query?query=x&time=yesterday`)).body, { errorType: 'bad_data', error: /cannot parse "yesterday"/ });
    t.match((await getJson(`${engine.url}/api/v1/query_range?query=x&start=${start}&end=${end}&step=0.001`)).body, { errorType: 'bad_data', error: /maximum resolution/ });
    t.match((await getJson(`${engine.url}/api/v1/query`)).body, { errorType: 'bad_data', error: /missing parameter "query"/ });
    t.match((await getJson(`${engine.url}/api/v1/series`)).body, { errorType: 'bad_data', error: /no match\[\]/ });
    if (fs.existsSync(PROMTOOL)) {
      const r = spawnSync(PROMTOOL, ['query', 'instant', engine.url, 'rate(sluice_cpu_count[5m])'], { encoding: 'utf8', timeout: 20_000 });
      t.not(r.status, 0, 'promtool reports the error');
      t.match(r.stderr + r.stdout, /bad_data: unsupported in Sluice's PromQL subset: function calls/);
    }
    // the engine still answers
    t.equal((await getJson(`${engine.url}/healthz`)).status, 200);
  });
});
