import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import zlib from 'node:zlib';
import { pack } from 'msgpackr';
import type { HttpResponse } from 'uWebSockets.js';
import { startEngine, getJson } from '../helpers/engine';
import { bodyEncodingOf } from '../../engine/body-decoder';
import { readBody, type Answerable } from '../../engine/http-util';

// Content-Encoding: gzip / x-gzip / deflate on every route that reads a body (engine/body-decoder.ts)

interface Answer { status: number; body: any }

/** POST with a Content-Encoding (fetch sends the bytes as given: it never compresses a request). */
async function postEncoded(url: string, contentType: string, encoding: string, body: Uint8Array): Promise<Answer> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, 'content-encoding': encoding }, body });
  const text = await r.text();
  let parsed: unknown = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = text; }
  }
  return { status: r.status, body: parsed };
}

const COMPRESS: Record<string, (b: Buffer) => Buffer> = {
  gzip: (b) => zlib.gzipSync(b),
  'x-gzip': (b) => zlib.gzipSync(b),
  deflate: (b) => zlib.deflateSync(b),
};

/** VmRSS of a process in bytes, from /proc. */
function rssBytes(pid: number, field = 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

t.test('bodyEncodingOf: the Content-Encoding values read, case-insensitive; others null', async (t) => {
  t.equal(bodyEncodingOf(''), 'identity');
  t.equal(bodyEncodingOf('identity'), 'identity');
  t.equal(bodyEncodingOf('gzip'), 'gzip');
  t.equal(bodyEncodingOf(' X-GZIP '), 'gzip');
  t.equal(bodyEncodingOf('Deflate'), 'deflate');
  for (const other of ['br', 'zstd', 'compress', 'gzip, br', 'gzip;q=1', 'x-deflate']) t.equal(bodyEncodingOf(other), null, other);
});

/** a stand-in HttpResponse that records what is written and hands back its callbacks */
function fakeResponse() {
  const written: string[] = [];
  let onData: ((chunk: ArrayBuffer, isLast: boolean) => void) | null = null;
  let onAborted: (() => void) | null = null;
  const res = {
    onData(cb: (chunk: ArrayBuffer, isLast: boolean) => void) { onData = cb; return res; },
    onAborted(cb: () => void) { onAborted = cb; return res; },
    cork(fn: () => void) { fn(); return res; },
    writeStatus(s: string) { written.push(s); return res; },
    writeHeader() { return res; },
    end(body?: string) { written.push(body ?? ''); return res; },
  };
  const a: Answerable = { res: res as unknown as HttpResponse, aborted: false };
  return {
    a, written,
    send(bytes: Buffer, isLast: boolean) { onData!(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, isLast); },
    abort() { onAborted!(); },
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

/** Waits for zlib (it inflates on the thread pool): until done() holds, 5 s at most. A fixed 50 ms
 * was not always enough with three test files running on two cores. */
async function until(done: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 5000; !done() && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
}

t.test('readBody, compressed: nothing is written or handled after an abort', async (t) => {
  const f = fakeResponse();
  let handled = 0;
  readBody(f.a, 0, 1024, 'gzip', () => { handled++; });
  const gz = zlib.gzipSync('{"a":1}');
  f.send(gz.subarray(0, 5), false);
  f.abort();
  f.send(gz.subarray(5), true); // uWS would not call onData again; readBody ignores it anyway
  await settle();
  t.equal(handled, 0);
  t.same(f.written, []);
  t.equal(f.a.aborted, true);
});

t.test('readBody, compressed: chunk by chunk, and the limit is on the inflated size', async (t) => {
  const body = Buffer.from(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ i }))));
  const gz = zlib.gzipSync(body);
  const f = fakeResponse();
  let got: Buffer | null = null;
  readBody(f.a, 0, body.length, 'gzip', (b) => { got = Buffer.from(b); });
  for (let i = 0; i < gz.length; i += 7) f.send(gz.subarray(i, i + 7), i + 7 >= gz.length);
  await until(() => got !== null);
  t.same(got, body, 'exactly bytesMax inflated is accepted, chunks copied before they are neutered');
  const over = fakeResponse();
  readBody(over.a, 0, body.length - 1, 'gzip', () => t.fail('not over the limit'));
  over.send(gz, true);
  await until(() => over.written.length >= 2);
  t.equal(over.written[0], '413 Payload Too Large');
  t.match(over.written[1], /once decompressed/);
});

t.test('compressed bodies over the real server', async (t) => {
  const engine = await startEngine(['--shards', '2', '--body-max', '1MiB']);
  t.teardown(() => engine.stop());
  const ts = Date.now() - 5000;
  const range = `from=${ts - 60_000}&to=${ts + 60_000}`;

  /** the events of a device's metric in the windows around ts (0 for a device never seen: 404) */
  async function count(deviceId: string, metric: string): Promise<number> {
    const q = await getJson(`${engine.url}/v1/devices/${deviceId}/metrics/${metric}?${range}`);
    if (q.status === 404) return 0;
    if (q.status !== 200) throw new Error(`query ${deviceId}/${metric}: ${q.status} ${JSON.stringify(q.body)}`);
    return (q.body.windows as { count: number }[]).reduce((n, w) => n + w.count, 0);
  }

  t.test('POST /v1/events: JSON and msgpack, gzip, x-gzip and deflate, all counted', async (t) => {
    for (const encoding of Object.keys(COMPRESS)) {
      const device = `z-${encoding}`;
      const evs = [1, 2, 3].map((v, i) => ({ deviceId: device, timestamp: ts + i, metrics: { cpu: v } }));
      const json = await postEncoded(`${engine.url}/v1/events`, 'application/json', encoding, COMPRESS[encoding](Buffer.from(JSON.stringify(evs))));
      t.equal(json.status, 204, `${encoding} JSON`);
      const mp = await postEncoded(`${engine.url}/v1/events`, 'application/msgpack', encoding, COMPRESS[encoding](pack(evs)));
      t.equal(mp.status, 204, `${encoding} msgpack`);
      t.equal(await count(device, 'cpu'), 6, `${encoding}: 3 JSON + 3 msgpack events`);
    }
    const upper = await postEncoded(`${engine.url}/v1/events`, 'application/json', ' GZip ',
      zlib.gzipSync(JSON.stringify({ deviceId: 'z-case', timestamp: ts, metrics: { cpu: 1 } })));
    t.equal(upper.status, 204, 'the header is read case-insensitively');
    const identity = await postEncoded(`${engine.url}/v1/events`, 'application/json', 'identity',
      Buffer.from(JSON.stringify({ deviceId: 'z-case', timestamp: ts + 1, metrics: { cpu: 1 } })));
    t.equal(identity.status, 204, 'identity is the plain body');
    t.equal(await count('z-case', 'cpu'), 2);
  });

  t.test('a compressed body as large as --body-max once inflated is accepted', async (t) => {
    // 8,192 NDJSON lines of 128 bytes: 1 MiB less the last newline, a few KB on the wire
    const n = 8192;
    const body = Buffer.from(Array.from({ length: n }, (_, i) => JSON.stringify({ deviceId: 'z-big', timestamp: ts + (i % 1000), metrics: { cpu: 5 } }).padEnd(127, ' ')).join('\n'));
    t.equal(body.length, 1024 * 1024 - 1);
    const r = await postEncoded(`${engine.url}/v1/events`, 'application/x-ndjson', 'gzip', zlib.gzipSync(body));
    t.equal(r.status, 204, JSON.stringify(r.body));
    t.equal(await count('z-big', 'cpu'), n);
  });

  t.test('POST /telemetry/cpu: gzip and deflate', async (t) => {
    for (const encoding of ['gzip', 'deflate']) {
      const ev = { timestamp: new Date(ts).toISOString(), deviceId: `cpu-${encoding}`, clientVersion: 'v1.2.3', cpu: 83.2 };
      const r = await postEncoded(`${engine.url}/telemetry/cpu`, 'application/json', encoding, COMPRESS[encoding](Buffer.from(JSON.stringify(ev))));
      t.equal(r.status, 204, encoding);
      t.equal(await count(`cpu-${encoding}`, 'cpu'), 1);
    }
  });

  t.test('POST /compute/metrics: gzip and deflate', async (t) => {
    const evs = [10, 20, 30].map((v, i) => ({ deviceId: 'z-sensor', timestamp: ts + i, metrics: { zhumidity: v } }));
    t.equal((await postEncoded(`${engine.url}/v1/events`, 'application/json', 'gzip', zlib.gzipSync(JSON.stringify(evs)))).status, 204);
    const request = JSON.stringify({ zhumidity: ['count', 'max'], from: new Date(ts - 1000).toISOString(), to: new Date(ts + 1000).toISOString() });
    for (const encoding of ['gzip', 'deflate']) {
      const r = await postEncoded(`${engine.url}/compute/metrics`, 'application/json', encoding, COMPRESS[encoding](Buffer.from(request)));
      t.equal(r.status, 200, encoding);
      t.same(r.body, { result: { zhumidity: { count: 3, max: 30 } }, errors: [] }, encoding);
    }
  });

  t.test('a corrupt body answers 400 SLUICE_E_BAD_BODY; an unknown Content-Encoding 415', async (t) => {
    const good = zlib.gzipSync(JSON.stringify({ deviceId: 'z-bad', timestamp: ts, metrics: { cpu: 1 } }));
    const corrupt = Buffer.from(good);
    corrupt.fill(0x55, 10, 20); // inside the deflate stream
    const notGzip = Buffer.from('{"deviceId":"z-bad"}');
    const truncated = good.subarray(0, good.length - 6);
    for (const route of ['/v1/events', '/telemetry/cpu', '/compute/metrics']) {
      for (const [what, body] of [['corrupt', corrupt], ['not gzip', notGzip], ['truncated', truncated]] as const) {
        const r = await postEncoded(`${engine.url}${route}`, 'application/json', 'gzip', body);
        t.equal(r.status, 400, `${route} ${what}`);
        t.equal(r.body.code, 'SLUICE_E_BAD_BODY');
        t.match(r.body.error, /^body: invalid gzip: /);
      }
      const d = await postEncoded(`${engine.url}${route}`, 'application/json', 'deflate', notGzip);
      t.equal(d.status, 400, `${route} bad deflate`);
      t.match(d.body.error, /^body: invalid deflate: /);
      for (const encoding of ['br', 'zstd', 'compress', 'gzip, br']) {
        const r = await postEncoded(`${engine.url}${route}`, 'application/json', encoding, good);
        t.equal(r.status, 415, `${route} ${encoding}`);
        t.equal(r.body.code, 'SLUICE_E_UNSUPPORTED_MEDIA_TYPE');
        t.match(r.body.error, /^Content-Encoding: .* is not one of identity, gzip, x-gzip, deflate$/);
      }
    }
    t.equal(await count('z-bad', 'cpu'), 0, 'nothing of a refused body was kept');
  });

  t.test('a gzip bomb answers 413 while the engine grows by about --body-max at most', async (t) => {
    const bomb = zlib.gzipSync(Buffer.alloc(100 * 1024 * 1024), { level: 9 }); // 100 MB of zeros
    t.ok(bomb.length < 1024 * 1024, `the bomb is ${bomb.length} bytes on the wire, under --body-max`);
    const pid = engine.proc.pid!;
    const before = rssBytes(pid);
    const hwmBefore = rssBytes(pid, 'VmHWM');
    for (const route of ['/v1/events', '/telemetry/cpu', '/compute/metrics']) {
      const r = await postEncoded(`${engine.url}${route}`, 'application/json', 'gzip', bomb);
      t.equal(r.status, 413, route);
      t.equal(r.body.code, 'SLUICE_E_BODY_TOO_LARGE');
      t.match(r.body.error, /decompressed.*--body-max|--body-max.*decompressed/);
    }
    const after = rssBytes(pid);
    const hwmAfter = rssBytes(pid, 'VmHWM');
    t.comment(`engine RSS ${(before / 2 ** 20).toFixed(1)} MiB -> ${(after / 2 ** 20).toFixed(1)} MiB (+${((after - before) / 2 ** 20).toFixed(1)} MiB); peak ${(hwmBefore / 2 ** 20).toFixed(1)} -> ${(hwmAfter / 2 ** 20).toFixed(1)} MiB`);
    t.ok(after - before < 32 * 1024 * 1024, 'RSS grew by less than 32 MiB');
    // VmHWM only moves when a new peak is reached: if it moved, the new peak is the bomb's
    t.ok(hwmAfter === hwmBefore || hwmAfter - before < 32 * 1024 * 1024, 'the peak RSS stayed within 32 MiB of the RSS before');
    const h = await getJson(`${engine.url}/healthz`);
    t.equal(h.status, 200);
    const ok = await postEncoded(`${engine.url}/v1/events`, 'application/json', 'gzip',
      zlib.gzipSync(JSON.stringify({ deviceId: 'after-bomb', timestamp: ts, metrics: { cpu: 1 } })));
    t.equal(ok.status, 204, 'the engine takes events after refusing the bomb');
    t.equal(await count('after-bomb', 'cpu'), 1);
  });

  t.test('over --body-max as sent, compressed: 413 (with and without Content-Length)', async (t) => {
    const stored = zlib.gzipSync(crypto.randomBytes(2 * 1024 * 1024), { level: 0 }); // does not shrink
    const r = await postEncoded(`${engine.url}/v1/events`, 'application/json', 'gzip', stored);
    t.equal(r.status, 413);
    t.equal(r.body.code, 'SLUICE_E_BODY_TOO_LARGE');
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${engine.url}/v1/events`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'transfer-encoding': 'chunked' },
      }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < stored.length; i += 64 * 1024) req.write(stored.subarray(i, i + 64 * 1024));
      req.end();
    });
    t.equal(chunked.status, 413);
    t.match(chunked.body, /SLUICE_E_BODY_TOO_LARGE/);
    t.match(chunked.body, /as sent, compressed/);
  });
});
