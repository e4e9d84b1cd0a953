import t from 'tap';
import fc from 'fast-check';
import { startEngine, getJson, post } from '../helpers/engine';
import { PROPERTY_SEED, anyNumber, isoLike, isSluiceCode } from '../helpers/property';

// every GET route with parameters, with the path parameters as placeholders
const ROUTES = [
  '/v1/devices/{id}/metrics/{metric}', '/v1/metrics/{metric}', '/v1/metrics/{metric}/top', '/v1/devices',
  '/v1/late', '/v1/reports', '/metrics/top/{n}', '/metrics/devices/{id}', '/analytics',
];
const NAMES = ['from', 'to', 'resolution', 'q', 'limit', 'metric', 'metrics', 'n', 'by', 'prefix', 'deviceId', 'timestamp'];

const text: fc.Arbitrary<string> = fc.oneof(
  fc.string(), isoLike, fc.stringMatching(/^\d{1,25}$/), anyNumber.map(String),
  fc.constantFrom('10s', '1m', '5m', '1h', '1d', 'cpu', 'd-1', '0.5,0.99', '-1', '1e3', '%', '%E0%A4%A', 'mean'),
);

t.test(`every query parameter of every GET route, at random (seed ${PROPERTY_SEED}): 200, 400 or 404 with a code, never 500`, async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  const ts = Date.now() - 60_000;
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'd-1', timestamp: ts, metrics: { cpu: 1, cpuUsage: 2 } }))).status, 204);

  const request = fc.tuple(fc.constantFrom(...ROUTES), text, text, text, fc.dictionary(fc.constantFrom(...NAMES), text, { maxKeys: 5 }));
  const samples = fc.sample(request, { seed: PROPERTY_SEED, numRuns: 10_000 });
  let bad = 0;
  for (let i = 0; i < samples.length; i += 16) {
    await Promise.all(samples.slice(i, i + 16).map(async ([route, id, metric, n, query]) => {
      const path = route.replace('{id}', encodeURIComponent(id)).replace('{metric}', encodeURIComponent(metric)).replace('{n}', encodeURIComponent(n));
      const url = `${engine.url}${path}?${new URLSearchParams(query).toString()}`;
      const r = await getJson(url);
      const ok = r.status === 200 || ((r.status === 400 || r.status === 404) && isSluiceCode(r.body?.code));
      if (!ok) {
        bad++;
        t.fail(`${url}: ${r.status} ${JSON.stringify(r.body)}`);
      }
    }));
  }
  t.equal(bad, 0, `${samples.length} requests answered`);
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.status, 200);
  t.equal(h.body.faults.count, 0);
});
