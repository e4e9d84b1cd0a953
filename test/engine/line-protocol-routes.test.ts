/**
 * engine/line-protocol-routes.ts against a real engine on 127.0.0.1: /ping (and HEAD), POST /write
 * and /api/v2/write answers (204, InfluxDB's partial-write 400 naming line numbers with the valid
 * points kept, unable-to-parse 400, 413, oversized batches), gzip bodies, precisions, receive time
 * for points without a timestamp; what was kept is read back through the /v1 query routes.
 */

import t from 'tap';
import zlib from 'node:zlib';
import { startEngine, getJson, type EngineProcess } from '../helpers/engine';

interface Answer { status: number; headers: Headers; body: any; text: string }

async function write(e: EngineProcess, path: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await fetch(`${e.url}${path}`, { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8', ...headers }, body });
  const text = await r.text();
  let parsed: unknown = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

/** The windows of one device's metric over [from, to) as [start, count, sum, min, max]. */
async function windows(e: EngineProcess, device: string, metric: string, from: number, to: number): Promise<number[][]> {
  const r = await getJson(`${e.url}/v1/devices/${device}/metrics/${metric}?from=${from}&to=${to}&resolution=10s`);
  if (r.status === 404) return [];
  if (r.status !== 200) throw new Error(`query ${device}/${metric}: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body.windows as { start: number; count: number; sum: number; min: number; max: number }[]).map((w) => [w.start, w.count, w.sum, w.min, w.max]);
}

// a 10 s window a minute ago: inside the allowed lateness, never in the future
const W = Math.floor((Date.now() - 60_000) / 10_000) * 10_000;
const NS = (ms: number): string => `${BigInt(ms) * 1_000_000n}`;

t.test('line protocol routes', async (t) => {
  const e = await startEngine(['--batch-events-max', '50', '--body-max', '64KiB']);
  t.teardown(() => e.stop());

  t.test('GET /ping: 204 with the InfluxDB headers; HEAD too', async (t) => {
    const r = await fetch(`${e.url}/ping`);
    t.equal(r.status, 204);
    t.equal(r.headers.get('x-influxdb-version'), '1.8.10');
    t.equal(r.headers.get('x-influxdb-build'), 'OSS');
    const h = await fetch(`${e.url}/ping`, { method: 'HEAD' });
    t.equal(h.status, 204);
    t.equal(h.headers.get('x-influxdb-version'), '1.8.10');
  });

  t.test('POST /write: every point valid is 204 and lands in its windows', async (t) => {
    const body = [
      `cpu,host=lp-a,cpu=cpu-total usage_user=12.5,usage_system=3.25,usage_idle=84.25 ${NS(W + 1000)}`,
      `cpu,host=lp-a,cpu=cpu-total usage_user=7.5,usage_system=1i,usage_idle=91.5 ${NS(W + 2000)}`,
      `temp,host=lp-a value=21.5,ok=true ${NS(W + 3000)}`,
    ].join('\n') + '\n';
    const r = await write(e, '/write?db=telegraf&u=user&p=secret', body, { authorization: 'Token abc' });
    t.equal(r.status, 204, r.text);
    t.same(await windows(e, 'lp-a', 'cpu.usage_user', W, W + 10_000), [[W, 2, 20, 7.5, 12.5]]);
    t.same(await windows(e, 'lp-a', 'cpu.usage_system', W, W + 10_000), [[W, 2, 4.25, 1, 3.25]]);
    t.same(await windows(e, 'lp-a', 'temp', W, W + 10_000), [[W, 1, 21.5, 21.5, 21.5]], 'field "value" is metric "temp"');
    t.same(await windows(e, 'lp-a', 'temp.ok', W, W + 10_000), [[W, 1, 1, 1, 1]], 'true counts 1');
  });

  t.test('some bad lines: 400 partial write naming line numbers; the valid lines are kept', async (t) => {
    const body = [
      '# written by a test',
      `cpu,host=lp-b usage=10 ${NS(W + 1000)}`,
      '',
      `cpu usage=99 ${NS(W + 1000)}`,
      `cpu,host=lp-b usage=abc ${NS(W + 1000)}`,
      `cpu,host=lp-b usage=30 ${NS(W + 2000)}`,
      `cpu,host=lp/b usage=1 ${NS(W + 1000)}`,
      `cpu,host=lp-b usage=5 ${NS(Date.now() + 3_600_000)}`,
    ].join('\n');
    const r = await write(e, '/write', body);
    t.equal(r.status, 400);
    t.match(r.body.error, /^partial write: line 4: missing the device tag "host" \(--lp-device-tag\); line 5: field "usage": invalid value "abc" .*; line 7: tag "host": must be 1-128 characters of \[A-Za-z0-9_.:-\], got "lp\/b"; line 8: timestamp: .* is more than 60000 ms in the future dropped=4$/);
    t.equal(r.body.accepted, 2);
    t.same(await windows(e, 'lp-b', 'cpu.usage', W, W + 10_000), [[W, 2, 40, 10, 30]]);
  });

  t.test('no valid line: 400 unable to parse, nothing kept', async (t) => {
    const r = await write(e, '/write', `cpu,host=lp-c\ncpu,host=lp-c usage="x" ${NS(W)}\n`);
    t.equal(r.status, 400);
    t.equal(r.body.error, 'unable to parse line 1: missing fields; line 2: metrics: the event carries no metric dropped=2');
    t.same(await windows(e, 'lp-c', 'cpu.usage', W, W + 10_000), []);
  });

  t.test('empty body and comments only: 204, as InfluxDB', async (t) => {
    t.equal((await write(e, '/write', '')).status, 204);
    t.equal((await write(e, '/api/v2/write?org=o&bucket=b', '# nothing\n\n')).status, 204);
  });

  t.test('gzip bodies', async (t) => {
    const body = `mem,host=lp-d used=100i ${NS(W + 100)}\nmem,host=lp-d used=300i ${NS(W + 200)}\n`;
    const r = await write(e, '/api/v2/write?org=o&bucket=b', zlib.gzipSync(body), { 'content-encoding': 'gzip' });
    t.equal(r.status, 204, r.text);
    t.same(await windows(e, 'lp-d', 'mem.used', W, W + 10_000), [[W, 2, 400, 100, 300]]);
    const bad = await write(e, '/write', Buffer.from('not gzip'), { 'content-encoding': 'gzip' });
    t.equal(bad.status, 400);
  });

  t.test('precision: 1.x n/u/ms/s/m/h, 2.x ns/us/ms/s; others 400', async (t) => {
    const cases: [string, string][] = [
      ['/write?precision=s', `${W / 1000 + 1}`],
      ['/write?precision=ms', `${W + 2000}`],
      ['/write?precision=u', `${(W + 3000) * 1000}`],
      ['/write?precision=n', NS(W + 4000)],
      ['/api/v2/write?precision=us', `${(W + 5000) * 1000}`],
      ['/api/v2/write?precision=s', `${W / 1000 + 6}`],
    ];
    for (const [path, ts] of cases) {
      const r = await write(e, path, `p,host=lp-e v=1 ${ts}\n`);
      t.equal(r.status, 204, `${path}: ${r.text}`);
    }
    t.same(await windows(e, 'lp-e', 'p.v', W, W + 10_000), [[W, 6, 6, 1, 1]]);
    // minutes and hours: a whole minute a few minutes back
    const minute = Math.floor((Date.now() - 120_000) / 60_000);
    t.equal((await write(e, '/write?precision=m', `p,host=lp-f v=2 ${minute}\n`)).status, 204);
    t.same(await windows(e, 'lp-f', 'p.v', minute * 60_000, minute * 60_000 + 10_000), [[minute * 60_000, 1, 2, 2, 2]]);
    // an hour back: behind the watermark, within the late horizon: a correction, kept
    const hour = Math.floor(Date.now() / 3_600_000) - 1;
    t.equal((await write(e, '/write?precision=h', `p,host=lp-g v=3 ${hour}\n`)).status, 204);
    t.same(await windows(e, 'lp-g', 'p.v', hour * 3_600_000, hour * 3_600_000 + 10_000), [[hour * 3_600_000, 1, 3, 3, 3]]);
    const bad = await write(e, '/api/v2/write?precision=h', 'p,host=lp-e v=1\n');
    t.equal(bad.status, 400);
    t.equal(bad.body.error, 'precision: "h" is not one of ns, us, ms, s');
  });

  t.test('a point without a timestamp takes the receive time', async (t) => {
    const before = Date.now();
    t.equal((await write(e, '/write', 'now,host=lp-h v=42\n')).status, 204);
    const after = Date.now();
    const w = await windows(e, 'lp-h', 'now.v', before - 10_000, after + 10_000);
    t.equal(w.length, 1);
    t.ok(w[0][0] <= after && w[0][0] + 10_000 > before, 'in the window of the request');
    t.same(w[0].slice(1), [1, 42, 42, 42]);
  });

  t.test('limits: more points than --batch-events-max, a body over --body-max', async (t) => {
    let many = '';
    for (let i = 0; i < 51; i++) many += `big,host=lp-i v=${i} ${NS(W + i)}\n`;
    const r = await write(e, '/write', many);
    t.equal(r.status, 400);
    t.equal(r.body.code, 'SLUICE_E_BATCH_TOO_LARGE');
    t.match(r.body.error, /^unable to parse: events: 51 events, more than the 50 a batch may hold/);
    t.same(await windows(e, 'lp-i', 'big.v', W, W + 10_000), []);
    const huge = await write(e, '/write', `x,host=lp-i v=1 ${'1'.repeat(70 * 1024)}\n`);
    t.equal(huge.status, 413);
    t.equal(huge.body.code, 'SLUICE_E_BODY_TOO_LARGE');
  });
});
