import t from 'tap';
import { startEngine, getJson, post } from '../helpers/engine';
import fc from 'fast-check';
import { cpuEventProblem } from '../../engine/telemetry-routes';
import { anyTimestamp, anyMetricValue, assertProperty, isSluiceCode } from '../helpers/property';

// the seed's own request, byte for byte
const SEED_BODY = '{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","clientVersion":"v1.2.3","cpu":83.2}';
const SEED_RANGE = 'from=2020-01-01T00:00:00Z&to=2020-01-01T00:01:00Z';

async function cpuCount(url: string, deviceId: string): Promise<{ count: number; sum: number }> {
  const r = await getJson(`${url}/v1/devices/${deviceId}/metrics/cpu?${SEED_RANGE}&resolution=1m`);
  const w = r.body.windows?.[0];
  return { count: w?.count ?? 0, sum: w?.sum ?? 0 };
}

t.test('POST /telemetry/cpu over the real server', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '2', '--report-period', '1s', '--body-max', '4KiB']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());

  t.test('the seed example: 204 with an empty body; metric cpu, durable and queryable', async (t) => {
    const r = await fetch(`${engine.url}/telemetry/cpu`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: SEED_BODY });
    t.equal(r.status, 204);
    t.equal(await r.text(), '');
    t.same(await cpuCount(engine.url, 'device-1234'), { count: 1, sum: 83.2 });
    const devices = await getJson(`${engine.url}/v1/devices?prefix=device-1234`);
    t.same(devices.body.devices, [{ deviceId: 'device-1234', metrics: ['cpu'] }], 'clientVersion is a tag, not a metric');
  });

  t.test('the periodic report counts it (count + divisions)', async (t) => {
    // a second device in the [40, 50) division, then wait for the report periods to cover both
    t.equal((await post(`${engine.url}/telemetry/cpu`, 'application/json', '{"timestamp":"2020-01-01T00:00:01Z","deviceId":"device-5678","clientVersion":"v1.2.4","cpu":42}')).status, 204);
    let total = 0;
    const divisions = new Array<number>(10).fill(0);
    for (let i = 0; i < 100 && total < 2; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const reports = (await getJson(`${engine.url}/v1/reports?metric=cpu&limit=1000`)).body.reports as { count: number; histogram: { divisions: number[] } }[];
      total = reports.reduce((n, rep) => n + rep.count, 0);
      divisions.fill(0);
      for (const rep of reports) rep.histogram.divisions.forEach((c, d) => { divisions[d] += c; });
    }
    t.equal(total, 2, 'both readings reported');
    t.same(divisions, [0, 0, 0, 0, 1, 0, 0, 0, 1, 0], '83.2 in [80, 90), 42 in [40, 50)');
  });

  t.test('the body is read as JSON whatever the Content-Type', async (t) => {
    const r = await fetch(`${engine.url}/telemetry/cpu`, { method: 'POST', body: '{"timestamp":"2020-01-01T00:00:02Z","deviceId":"device-1234","cpu":10}' });
    t.equal(r.status, 204);
    t.same(await cpuCount(engine.url, 'device-1234'), { count: 2, sum: 93.2 });
  });

  t.test('invalid input: 400 naming the field, and nothing accepted before is lost', async (t) => {
    const cases: [string, string, RegExp][] = [
      ['{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","cpu":', 'SLUICE_E_BAD_BODY', /^body: invalid JSON/],
      ['[' + SEED_BODY + ']', 'SLUICE_E_BAD_EVENT', /^body: must be one JSON event object/],
      ['{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","clientVersion":"v1.2.3"}', 'SLUICE_E_NO_METRICS', /^cpu: missing/],
      ['{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","cpu":"high"}', 'SLUICE_E_BAD_METRIC_VALUE', /^cpu: must be a finite number, got "high"/],
      ['{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device 1234","cpu":1}', 'SLUICE_E_BAD_DEVICE_ID', /^deviceId: /],
      ['{"timestamp":"yesterday","deviceId":"device-1234","cpu":1}', 'SLUICE_E_BAD_TIMESTAMP', /^timestamp: /],
      [`{"timestamp":${Date.now() + 3_600_000},"deviceId":"device-1234","cpu":1}`, 'SLUICE_E_FUTURE_TIMESTAMP', /^timestamp: .* in the future/],
      ['{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","clientVersion":5.5,"cpu":1,"bad name":2}', 'SLUICE_E_BAD_METRIC_NAME', /^bad name: /],
    ];
    for (const [body, code, re] of cases) {
      const r = await post(`${engine.url}/telemetry/cpu`, 'application/json', body);
      t.equal(r.status, 400, body);
      t.equal(r.body.code, code, body);
      t.match(r.body.error, re, body);
    }
    t.same(await cpuCount(engine.url, 'device-1234'), { count: 2, sum: 93.2 }, 'the accepted readings are still there, no rejected one was applied');
  });

  t.test('413 over --body-max', async (t) => {
    const big = `{"timestamp":"2020-01-01T00:00:00Z","deviceId":"device-1234","cpu":1,"clientVersion":"${'v'.repeat(200)}","pad":"${'x'.repeat(5000)}"}`;
    const r = await post(`${engine.url}/telemetry/cpu`, 'application/json', big);
    t.equal(r.status, 413);
    t.equal(r.body.code, 'SLUICE_E_BODY_TOO_LARGE');
  });

  t.test('503 with Retry-After when the WAL cannot be written: nothing kept', async (t) => {
    t.equal((await post(`${engine.url}/v1/debug/fail-wal?n=1`, 'application/json', '')).status, 200);
    const r = await post(`${engine.url}/telemetry/cpu`, 'application/json', SEED_BODY);
    t.equal(r.status, 503);
    t.equal(r.body.code, 'SLUICE_E_STORAGE_FAULT');
    t.equal(r.headers.get('retry-after'), '1');
    t.same(await cpuCount(engine.url, 'device-1234'), { count: 2, sum: 93.2 });
  });
});

t.test('a cpu nested deeper than JSON.stringify recurses is refused with its kind, not a stack overflow (found by fuzz-events)', async (t) => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  for (const [body, field] of [[`{"deviceId":"d","timestamp":1,"cpu":${deep}}`, 'cpu'], [`{"deviceId":"d","timestamp":1,"metrics":{"cpu":${deep}}}`, 'metrics.cpu']]) {
    t.same(cpuEventProblem(body), { code: 'SLUICE_E_BAD_METRIC_VALUE', reason: `${field}: must be a finite number, got an array` });
  }
});

t.test('property: cpuEventProblem is total over bodies', async () => {
  const body = fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.record({ deviceId: fc.string(), timestamp: anyTimestamp, cpu: anyMetricValue, clientVersion: fc.anything() }, { requiredKeys: [] })
      .map((b) => JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) ?? ''));
  assertProperty(fc.property(body, (text) => {
    const p = cpuEventProblem(text);
    return p === null || (isSluiceCode(p.code) && p.reason.length > 0);
  }));
});
