import t from 'tap';
import { startEngine, getJson, post, StreamClient } from '../helpers/engine';

t.test('periodic reports over the real engine: exact counts, divisions and devices; pushed over WebSocket', async (t) => {
  const engine = await startEngine(['--shards', '2', '--report-period', '1s', '--report-metrics', 'cpu,temp', '--histogram-divisions', '5']);
  t.teardown(() => engine.stop());
  const sub = await StreamClient.open(`${engine.url.replace('http', 'ws')}/v1/reports/stream?metric=cpu`);
  const now = Date.now();
  const values = [0, 19.9, 20, 55, 99, 100, 101, -3, 40, 60];
  const events = values.map((v, i) => ({ deviceId: `rep-${i % 4}`, timestamp: now - 1000 + i, metrics: { cpu: v, temp: 21 } }));
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(events))).status, 204);
  // the stream may fall in one period or two: add reports up until all ten are counted
  let count = 0;
  const divisions = [0, 0, 0, 0, 0];
  let under = 0;
  let over = 0;
  let devices = 0;
  for (let seen = 0; count < values.length && seen < 20;) {
    const got = await sub.waitFor(seen + 1, 15_000);
    const r = got[seen++] as { metric: string; count: number; devices: number; histogram: { divisions: number[]; under: number; over: number; min: number; max: number } };
    t.equal(r.metric, 'cpu');
    t.same([r.histogram.min, r.histogram.max, r.histogram.divisions.length], [0, 100, 5]);
    count += r.count;
    r.histogram.divisions.forEach((n, i) => { divisions[i] += n; });
    under += r.histogram.under;
    over += r.histogram.over;
    devices = Math.max(devices, r.devices);
  }
  sub.close();
  t.equal(count, 10);
  // [0,20): 0, 19.9 | [20,40): 20 | [40,60): 55, 40 | [60,80): 60 | [80,100]: 99, 100 ; under -3 ; over 101
  t.same(divisions, [2, 1, 2, 1, 2]);
  t.equal(under, 1);
  t.equal(over, 1);
  t.ok(devices >= 1 && devices <= 4);
  const list = await getJson(`${engine.url}/v1/reports?metric=temp&limit=50`);
  t.equal(list.status, 200);
  t.equal(list.body.reports.reduce((n: number, r: { count: number }) => n + r.count, 0), 10, 'temp counted too');
  t.ok(list.body.reports.length >= 1);
  const bad = await getJson(`${engine.url}/v1/reports?metric=nope`);
  t.equal(bad.status, 400);
  t.equal(bad.body.code, 'SLUICE_E_BAD_PARAM');
  t.ok(engine.logs.some((l) => /"msg":"report cpu: /.test(l)), 'each report is one log line');
});
