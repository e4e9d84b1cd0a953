import t from 'tap';
import fc from 'fast-check';
import { compressSync } from 'snappy';
import { startEngine } from '../helpers/engine';
import {
  FUZZ_SEED, assertHealthy, assertReference, forChunks, judge, mutated, oddString, overConnections, referenceSnapshot, requestBytes,
  runsOf, seedReference, show, Tally,
} from '../helpers/fuzz';
import { anyNumber } from '../helpers/property';
import { encodeRequest, type TestSeries } from '../helpers/prompb';

// Issue #13 part 4: hostile InfluxDB line protocol (POST /write, /api/v2/write) and Prometheus
// remote-write bodies (POST /api/v1/write: valid requests mutated before and after snappy).

const CONNECTIONS = 8;

const lpName: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^fm[a-z0-9_.]{0,10}$/), oddString.map((s) => s.replace(/\n/g, '')), fc.constantFrom('', ' ', ',', '=', '\\', '\\ ', 'a\\,b', 'a\\=b', '"', '#'),
);
const lpValue: fc.Arbitrary<string> = fc.oneof(
  anyNumber.map(String), fc.bigInt().map((b) => `${b}i`), fc.bigInt({ min: 0n }).map((b) => `${b}u`),
  fc.constantFrom('t', 'T', 'true', 'False', 'FALSE', 'f', 'x', '1e', '1ii', '-', '+1', '.5', '1.', '"str"', '"unterminated', '"esc\\"aped"', '"\\\\"', '', '9'.repeat(400), 'NaN', 'Inf', '-Inf'),
  oddString.map((s) => `"${s.replace(/\n/g, '')}"`),
);
const lpTimestamp: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''), fc.constant(` ${Date.now() - 30_000}000000`), fc.bigInt().map((b) => ` ${b}`), anyNumber.map((n) => ` ${n}`),
  fc.constantFrom(' -1', ' 0', ' 1e9', ' abc', '  ', ' 99999999999999999999999'),
);

/** one line: `measurement,tags fields timestamp`, right or wrong in any part; device: fz* or none */
const lpLine: fc.Arbitrary<{ line: string; noDevice: boolean }> = fc.record({
  measurement: lpName,
  host: fc.option(fc.stringMatching(/^fz[a-z0-9-]{0,8}$/), { nil: undefined }),
  tags: fc.array(fc.tuple(lpName.filter((n) => !n.includes('host')), lpName), { maxLength: 3 }),
  fields: fc.array(fc.tuple(lpName, lpValue), { maxLength: 4 }),
  timestamp: lpTimestamp,
}).map((l) => {
  const tags = [...(l.host === undefined ? [] : [['host', l.host]]), ...l.tags].map(([k, v]) => `,${k}=${v}`).join('');
  const line = `${l.measurement}${tags} ${l.fields.map(([k, v]) => `${k}=${v}`).join(',')}${l.timestamp}`;
  // no `host` anywhere, and not a blank or comment line: no device, so never a valid point
  const noDevice = !line.includes('host') && line.trim() !== '' && !line.trimStart().startsWith('#');
  return { line, noDevice };
});

// more points than --batch-events-max: built once, it is 200 KB
const TOO_MANY = Buffer.from(Array.from({ length: 10_001 }, (_, i) => `fmb,host=fzb v=${i}`).join('\n'));

const lpBody: fc.Arbitrary<{ body: Buffer; mustRefuse: boolean }> = fc.oneof(
  { weight: 40, arbitrary: fc.tuple(fc.array(lpLine, { minLength: 1, maxLength: 10 }), fc.constantFrom('\n', '\r\n')).map(([lines, sep]) => ({
    body: Buffer.from(lines.map((l) => l.line).join(sep)),
    mustRefuse: lines.every((l) => l.noDevice),
  })) },
  { weight: 30, arbitrary: fc.array(lpLine, { minLength: 1, maxLength: 5 }).chain((lines) => mutated(Buffer.from(lines.map((l) => l.line).join('\n')))).map((body) => ({ body, mustRefuse: false })) },
  { weight: 20, arbitrary: fc.oneof(fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1'))).map((s) => ({ body: Buffer.from(s, 'latin1'), mustRefuse: false })) },
  { weight: 1, arbitrary: fc.constant({ body: TOO_MANY, mustRefuse: true }) },
);

const lpCase = fc.record({
  route: fc.constantFrom('/write', '/api/v2/write'),
  precision: fc.oneof(fc.constant(''), fc.constantFrom('n', 'ns', 'u', 'us', 'ms', 's', 'm', 'h', 'x', 'NS', '%zz', '')),
  body: lpBody,
}).map((c) => ({ ...c, target: c.precision === '' ? c.route : `${c.route}?db=x&precision=${c.precision}` }));

const label: fc.Arbitrary<string> = fc.oneof(fc.stringMatching(/^fm[a-z0-9_:]{0,10}$/), oddString);

const series: fc.Arbitrary<TestSeries> = fc.record({
  name: fc.option(label, { nil: undefined, freq: 6 }),
  instance: fc.option(fc.oneof(fc.stringMatching(/^fz[a-z0-9.:-]{0,10}$/), oddString.map((s) => `fz${s}`)), { nil: undefined, freq: 4 }),
  more: fc.dictionary(label, fc.string({ maxLength: 20 }), { maxKeys: 3 }),
  samples: fc.array(fc.record({ value: anyNumber, timestamp: fc.oneof(fc.integer({ min: -600_000, max: 120_000 }).map((d) => Date.now() + d), fc.integer(), fc.constant(0)) }), { maxLength: 4 }),
  exemplars: fc.nat(2), histograms: fc.nat(2),
}).map((s) => ({
  // instance and __name__ last: a dictionary key of the same name must not override them
  labels: { ...s.more, ...(s.name === undefined ? {} : { __name__: s.name }), ...(s.instance === undefined ? {} : { instance: s.instance }) },
  samples: s.samples, exemplars: s.exemplars, histograms: s.histograms,
}));

const rwBody: fc.Arbitrary<{ body: Buffer; mustRefuse: boolean; contentEncoding: string }> = fc.oneof(
  fc.array(series, { maxLength: 5 }).map((ss) => ({ body: compressSync(encodeRequest(ss)), mustRefuse: false, contentEncoding: 'snappy' })),
  // a series with a finite sample and no device label: refused (400)
  fc.tuple(fc.stringMatching(/^fm[a-z]{1,6}$/), fc.double({ noNaN: true, noDefaultInfinity: true })).map(([name, value]) => ({
    body: compressSync(encodeRequest([{ labels: { __name__: name }, samples: [{ value, timestamp: Date.now() - 30_000 }] }])), mustRefuse: true, contentEncoding: 'snappy',
  })),
  fc.array(series, { minLength: 1, maxLength: 3 }).chain((ss) => mutated(encodeRequest(ss))).map((pb) => ({ body: compressSync(pb), mustRefuse: false, contentEncoding: 'snappy' })),
  fc.array(series, { minLength: 1, maxLength: 3 }).chain((ss) => mutated(compressSync(encodeRequest(ss)))).map((body) => ({ body, mustRefuse: false, contentEncoding: 'snappy' })),
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ body: Buffer.from(b), mustRefuse: false, contentEncoding: '' })),
  // snappy's varint preamble announcing more than --body-max, and the framing format's magic
  fc.constantFrom(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]))
    .map((body) => ({ body, mustRefuse: true, contentEncoding: 'snappy' })),
);

t.test(`fuzz: line protocol and remote-write bodies (seed ${FUZZ_SEED}, SLUICE_FUZZ_RUNS)`, async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const t0 = await seedReference(engine);
  assertReference(t, await referenceSnapshot(engine, t0), 'before the fuzz');

  await t.test(`POST /write, /api/v2/write: ${runsOf('lineProtocol')} line protocol bodies`, async (t) => {
    const tally = new Tally();
    await forChunks(lpCase, runsOf('lineProtocol'), async (inputs, chunk) => {
      await overConnections(engine.port, CONNECTIONS, inputs, async (c, i, conn) => {
        const o = await conn.request(requestBytes({ method: 'POST', target: c.target, headers: [['Content-Type', 'text/plain']], body: c.body.body }));
        judge(tally, o, { mustRefuse: c.body.mustRefuse }, `seed ${FUZZ_SEED} chunk ${chunk} #${i} (${c.target})`, show(c.body.body));
      });
      await assertHealthy(t, engine, `line protocol chunk ${chunk}`);
    });
    t.same(tally.failures, [], `every body answered: ${tally.summary()}`);
    t.ok(tally.countOf('4') > tally.count / 2, 'mostly refused');
  });

  await t.test(`POST /api/v1/write: ${runsOf('remoteWrite')} remote-write bodies`, async (t) => {
    const tally = new Tally();
    await forChunks(rwBody, runsOf('remoteWrite'), async (inputs, chunk) => {
      await overConnections(engine.port, CONNECTIONS, inputs, async (c, i, conn) => {
        const headers: [string, string][] = [['Content-Type', 'application/x-protobuf'], ['X-Prometheus-Remote-Write-Version', '0.1.0']];
        if (c.contentEncoding !== '') headers.push(['Content-Encoding', c.contentEncoding]);
        const o = await conn.request(requestBytes({ method: 'POST', target: '/api/v1/write', headers, body: c.body }));
        judge(tally, o, c, `seed ${FUZZ_SEED} chunk ${chunk} #${i}`, show(c.body));
      });
      await assertHealthy(t, engine, `remote-write chunk ${chunk}`);
    });
    t.same(tally.failures, [], `every body answered: ${tally.summary()}`);
  });

  assertReference(t, await referenceSnapshot(engine, t0), 'after the fuzz');
});
