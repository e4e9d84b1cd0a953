import t from 'tap';
import http from 'node:http';
import { pack } from 'msgpackr';
import { startEngine, getJson, post } from '../helpers/engine';
import fc from 'fast-check';
import { parseDeviceSeq } from '../../engine/http-ingest';
import { assertProperty } from '../helpers/property';

const f64 = (xs: number[]): Buffer => Buffer.from(new Float64Array(xs).buffer);

t.test('POST /v1/events over the real server', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  const url = `${engine.url}/v1/events`;
  const now = Date.now();
  const base = now - (now % 10_000) - 20_000; // inside one pane, in the past

  t.test('JSON array: 204, and the aggregates are exactly what was sent', async (t) => {
    const evs = [3, 9, 1, 7].map((v, i) => ({ deviceId: 'json-1', timestamp: base + i, metrics: { cpu: v } }));
    const r = await post(url, 'application/json', JSON.stringify(evs));
    t.equal(r.status, 204);
    const q = await getJson(`${engine.url}/v1/devices/json-1/metrics/cpu`);
    t.equal(q.status, 200);
    t.equal(q.body.windows.length, 1);
    const w = q.body.windows[0];
    t.match(w, { start: base, end: base + 10_000, count: 4, sum: 20, min: 1, max: 9, mean: 5, last: 7 });
    t.same(w.histogram.divisions, [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  t.test('seed shapes over JSON: one event objects', async (t) => {
    const r1 = await post(url, 'application/json', JSON.stringify({ timestamp: new Date(base).toISOString(), deviceId: 'device-1234', clientVersion: 'v1.2.3', cpu: 83.2 }));
    t.equal(r1.status, 204);
    const r2 = await post(url, 'application/json', JSON.stringify({ deviceId: 'device-11', timestamp: base, cpuUsage: 78.986 }));
    t.equal(r2.status, 204);
    const q = await getJson(`${engine.url}/v1/devices/device-11/metrics/cpuUsage`);
    t.equal(q.body.windows[0].sum, 78.986);
    const q2 = await getJson(`${engine.url}/v1/devices/device-1234/metrics/cpu`);
    t.equal(q2.body.windows[0].max, 83.2);
  });

  t.test('NDJSON with one bad line: 200, the others kept', async (t) => {
    const lines = [
      JSON.stringify({ deviceId: 'nd-1', timestamp: base, metrics: { cpu: 10 } }),
      '{not json',
      JSON.stringify({ deviceId: 'nd-1', timestamp: base + 1, metrics: { cpu: 'x' } }),
      JSON.stringify({ deviceId: 'nd-1', timestamp: base + 2, metrics: { cpu: 30 } }),
    ].join('\n');
    const r = await post(url, 'application/x-ndjson', lines);
    t.equal(r.status, 200);
    t.equal(r.body.accepted, 2);
    t.same(r.body.rejected.map((x: { index: number; code: string }) => [x.index, x.code]), [[1, 'SLUICE_E_BAD_BODY'], [2, 'SLUICE_E_BAD_METRIC_VALUE']]);
    t.match(r.body.rejected[1].reason, /^metrics\.cpu: must be a finite number/);
    const q = await getJson(`${engine.url}/v1/devices/nd-1/metrics/cpu`);
    t.match(q.body.windows[0], { count: 2, sum: 40 });
  });

  t.test('msgpack array and msgpack columnar: 204, exact', async (t) => {
    const r = await post(url, 'application/msgpack', pack([{ deviceId: 'mp-1', timestamp: base, metrics: { cpu: 1.5, mem: 2 } }, { deviceId: 'mp-1', timestamp: base + 1, metrics: { cpu: 2.5 } }]));
    t.equal(r.status, 204);
    const ts = [base, base + 1, base + 2, base + 3];
    const c = await post(url, 'application/msgpack', pack({ deviceId: 'col-1', seq: 1, timestamps: f64(ts), metrics: { cpu: f64([1, 2, 3, 4]), temp: f64([20, 21, 22, 23]) } }));
    t.equal(c.status, 204);
    const q = await getJson(`${engine.url}/v1/devices/mp-1/metrics/cpu`);
    t.match(q.body.windows[0], { count: 2, sum: 4, min: 1.5, max: 2.5 });
    const qc = await getJson(`${engine.url}/v1/devices/col-1/metrics/temp`);
    t.match(qc.body.windows[0], { count: 4, sum: 86, min: 20, max: 23, last: 23 });
    const bad = await post(url, 'application/msgpack', pack({ deviceId: 'col-1', timestamps: f64([base, NaN]), metrics: { cpu: f64([1, 2]) } }));
    t.equal(bad.status, 200, 'a columnar row with a bad timestamp is rejected alone');
    t.same([bad.body.accepted, bad.body.rejected[0].index], [1, 1]);
    const qc2 = await getJson(`${engine.url}/v1/devices/col-1/metrics/cpu`);
    t.match(qc2.body.windows[0], { count: 5, sum: 11 });
  });

  t.test('400: nothing valid, or the body does not parse', async (t) => {
    const none = await post(url, 'application/json', JSON.stringify([{ deviceId: 'a b', timestamp: base, cpu: 1 }]));
    t.equal(none.status, 400);
    t.equal(none.body.accepted, 0);
    t.equal(none.body.rejected[0].code, 'SLUICE_E_BAD_DEVICE_ID');
    const unparsable = await post(url, 'application/json', '{"deviceId":');
    t.equal(unparsable.status, 400);
    t.equal(unparsable.body.code, 'SLUICE_E_BAD_BODY');
    const tooMany = await post(url, 'application/json', JSON.stringify(new Array(10_001).fill({ deviceId: 'x', timestamp: base, cpu: 1 })));
    t.equal(tooMany.status, 400);
    t.equal(tooMany.body.code, 'SLUICE_E_BATCH_TOO_LARGE');
  });

  t.test('413 over --body-max (with and without Content-Length), 415 for another type', async (t) => {
    const big = 'x'.repeat(1024 * 1024 + 10);
    const r = await post(url, 'application/json', big);
    t.equal(r.status, 413);
    t.equal(r.body.code, 'SLUICE_E_BODY_TOO_LARGE');
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('y'.repeat(64 * 1024));
      req.end();
    });
    t.equal(chunked.status, 413);
    t.match(chunked.body, /SLUICE_E_BODY_TOO_LARGE/);
    const u = await post(url, 'text/plain', 'hello');
    t.equal(u.status, 415);
    t.equal(u.body.code, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE');
    const ok = await post(url, 'application/json', JSON.stringify({ deviceId: 'after-413', timestamp: base, cpu: 1 }));
    t.equal(ok.status, 204, 'the server still takes events after refusing bodies');
  });
});

t.test('503 with Retry-After when the rings stay full; nothing of a refused batch is applied', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '1', '--ring-size', '256KiB', '--body-max', '64KiB', '--backpressure-wait', '200ms']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());
  const url = `${engine.url}/v1/events`;
  const base = Date.now() - 30_000;
  const stall = await post(`${engine.url}/v1/debug/stall-shards?ms=3000`, 'application/json', '');
  t.equal(stall.status, 200);
  const batch = JSON.stringify(Array.from({ length: 1000 }, (_, i) => ({ deviceId: 'bp-1', timestamp: base + i, cpu: 1 })));
  let accepted = 0;
  let refused = 0;
  let retryAfter: string | null = null;
  for (let i = 0; i < 40 && refused === 0; i++) {
    const r = await post(url, 'application/json', batch);
    if (r.status === 204) accepted++;
    else {
      t.equal(r.status, 503);
      t.equal(r.body.code, 'SLUICE_E_BACKPRESSURE');
      retryAfter = r.headers.get('retry-after');
      refused++;
    }
  }
  t.equal(refused, 1, 'the ring filled while the worker was stalled');
  t.equal(retryAfter, '1');
  t.ok(accepted > 0);
  // once the stall ends, every accepted batch is applied and the refused one is not
  const deadline = Date.now() + 15_000;
  let count = -1;
  while (Date.now() < deadline) {
    const q = await getJson(`${engine.url}/v1/metrics/cpu?from=${base - 60_000}`);
    count = q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0);
    if (count === accepted * 1000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(count, accepted * 1000, 'exactly the accepted batches were applied');
});

t.test('property: Sluice-Device-Seq is null, a safe non-negative integer, or NaN (answered 400)', async () => {
  assertProperty(fc.property(fc.oneof(fc.string(), fc.stringMatching(/^\d{0,30}$/), fc.constantFrom('-1', '1.5', '1e3', ' 1', '0x10')), (h) => {
    const seq = parseDeviceSeq(h);
    if (h === '') return seq === null;
    return Number.isNaN(seq) || (Number.isSafeInteger(seq) && (seq as number) >= 0 && String(seq) === String(Number(h)));
  }));
});
