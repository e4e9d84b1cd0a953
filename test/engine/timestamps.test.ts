import t from 'tap';
import { pack } from 'msgpackr';
import fc from 'fast-check';
import { startEngine, getJson, post, StreamClient } from '../helpers/engine';
import { PROPERTY_SEED, anyDeviceId, anyMetricValue, anyTimestamp } from '../helpers/property';

// what InfluxDB line-protocol tools send by default: nanoseconds
const NS = 1796174194000000000;
const NS_EVENT = { deviceId: 'd1', timestamp: NS, metrics: { cpu: 1 } };

t.test('timestamps of every magnitude on every ingest route: an answer, never a crash', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());

  t.test('a nanosecond timestamp: 400 SLUICE_E_BAD_TIMESTAMP saying it looks like nanoseconds', async (t) => {
    const routes: [string, string, string | Uint8Array][] = [
      ['/v1/events', 'application/json', JSON.stringify(NS_EVENT)],
      ['/v1/events', 'application/json', JSON.stringify([NS_EVENT])],
      ['/v1/events', 'application/x-ndjson', JSON.stringify(NS_EVENT) + '\n'],
      ['/v1/events', 'application/msgpack', pack(NS_EVENT)],
      ['/telemetry/cpu', 'application/json', JSON.stringify({ deviceId: 'd1', timestamp: NS, cpu: 1 })],
      [`/analytics?timestamp=${NS}&user=d1&event=click`, 'application/json', ''],
    ];
    for (const [route, type, body] of routes) {
      const r = await post(`${engine.url}${route}`, type, body);
      t.equal(r.status, 400, `${route} ${type}`);
      t.equal(r.body.code, 'SLUICE_E_BAD_TIMESTAMP', `${route} ${type}`);
      t.match(r.body.error, /looks like nanoseconds.*precision=ns/, `${route} ${type}`);
    }
    for (const raw of [1e300, -1e300, 8640000000000001, 1.7976931348623157e308]) {
      const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ ...NS_EVENT, timestamp: raw }));
      t.equal(r.status, 400, `${raw}`);
      t.equal(r.body.code, 'SLUICE_E_BAD_TIMESTAMP', `${raw}`);
    }
    const c = await StreamClient.open(`ws://127.0.0.1:${engine.port}/v1/stream`);
    c.ws.send(JSON.stringify(NS_EVENT));
    c.ws.send(pack(NS_EVENT));
    const answers = await c.waitFor(2);
    for (const a of answers) {
      t.equal(a.code, 'SLUICE_E_BAD_TIMESTAMP');
      t.match(a.error, /looks like nanoseconds/);
    }
    c.close();
    const h = await getJson(`${engine.url}/healthz`);
    t.equal(h.status, 200, 'the engine keeps serving');
    t.equal(h.body.faults.count, 0, 'refused as input, not caught as a fault');
  });

  t.test('precision: s, ms, us and ns of one instant land in the same window; seconds unqualified are refused', async (t) => {
    const ms = Math.floor(Date.now() / 1000) * 1000 - 5000;
    const sends: [string, number][] = [['s', ms / 1000], ['ms', ms], ['us', ms * 1e3], ['ns', ms * 1e6]];
    for (const [p, raw] of sends) {
      const r = await post(`${engine.url}/v1/events?precision=${p}`, 'application/json', JSON.stringify({ deviceId: 'prec-1', timestamp: raw, metrics: { v: 1 } }));
      t.equal(r.status, 204, `precision=${p}`);
    }
    const c = await StreamClient.open(`ws://127.0.0.1:${engine.port}/v1/stream?precision=ns&deviceId=prec-1`);
    c.ws.send(pack({ timestamp: ms * 1e6, metrics: { v: 1 } }));
    t.same((await c.waitFor(1))[0], { ack: 1 }, 'WebSocket ?precision=ns');
    c.close();
    const unq = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'prec-1', timestamp: ms / 1000, metrics: { v: 1 } }));
    t.equal(unq.status, 400);
    t.equal(unq.body.code, 'SLUICE_E_BAD_TIMESTAMP');
    t.match(unq.body.error, /looks like epoch seconds.*precision=s/);
    const bad = await post(`${engine.url}/v1/events?precision=minutes`, 'application/json', '{}');
    t.equal(bad.status, 400);
    t.match(bad.body.error, /^precision: "minutes" is not one of s, ms, us, ns/);
    const q = await getJson(`${engine.url}/v1/devices/prec-1/metrics/v?from=${ms}&to=${ms + 1}&resolution=10s`);
    t.equal(q.body.windows.length, 1, 'one window');
    t.equal(q.body.windows[0].count, 5, 'all five readings in it');
  });

  t.test(`random events on every ingest route (seed ${PROPERTY_SEED}): each answered 2xx or 4xx with a code`, async (t) => {
    const event = fc.record({ deviceId: anyDeviceId, timestamp: anyTimestamp, metrics: fc.dictionary(fc.string({ maxLength: 4 }), anyMetricValue, { maxKeys: 3 }) }, { requiredKeys: [] });
    const samples = fc.sample(fc.tuple(event, fc.constantFrom('json', 'msgpack', 'cpu', 'ndjson'), fc.constantFrom('', 's', 'ms', 'us', 'ns')), { seed: PROPERTY_SEED, numRuns: 10_000 });
    const bigintSafe = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);
    let bad = 0;
    for (let i = 0; i < samples.length; i += 16) {
      await Promise.all(samples.slice(i, i + 16).map(async ([ev, kind, precision]) => {
        const q = precision === '' ? '' : `?precision=${precision}`;
        const json = JSON.stringify(ev, bigintSafe) ?? '{}';
        const r = kind === 'msgpack' ? await post(`${engine.url}/v1/events${q}`, 'application/msgpack', pack(JSON.parse(json)))
          : kind === 'cpu' ? await post(`${engine.url}/telemetry/cpu${q}`, 'application/json', json)
            : kind === 'ndjson' ? await post(`${engine.url}/v1/events${q}`, 'application/x-ndjson', `${json}\n${json}`)
              : await post(`${engine.url}/v1/events${q}`, 'application/json', json);
        const ok = r.status === 204 || ((r.status === 200 || r.status === 400) && typeof r.body?.code === 'string' || r.body?.accepted !== undefined);
        if (!ok) {
          bad++;
          t.fail(`${kind}${q} ${json}: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }));
    }
    t.equal(bad, 0, `${samples.length} requests answered`);
    const h = await getJson(`${engine.url}/healthz`);
    t.equal(h.status, 200);
    t.equal(h.body.faults.count, 0);
  });
});
