import t from 'tap';
import fc from 'fast-check';
import { compressSync } from 'snappy';
import { PromNameMapper, WriteRequestDecoder, isWireFault, snappyDecodedLength, seriesText, shorten, type WriteRequestView } from '../../protocol';
import { STALE, WriteRequest, encodeRequest, type TestSeries } from '../helpers/prompb';
import { assertProperty } from '../helpers/property';

// protocol/remote-write.ts (the wire decoder) and remote-write-events.ts (series onto events),
// against protobufjs as the reference encoder and decoder

function decode(bytes: Uint8Array): WriteRequestView {
  const r = new WriteRequestDecoder().decode(bytes);
  if (isWireFault(r)) throw new Error(`unexpected fault: ${r.fault}`);
  return r;
}

/** The decoded request as plain data: labels as a record, samples with their stale flag. */
function plain(v: WriteRequestView) {
  return v.series.map((s) => {
    const labels: Record<string, string> = {};
    for (let i = 0; i < s.labels.length; i += 2) labels[s.labels[i]] = s.labels[i + 1];
    const samples = [];
    for (let i = s.sampleStart; i < s.sampleStart + s.sampleCount; i++) {
      samples.push({ value: v.isStale[i] === 1 ? 'stale' : v.values[i], timestamp: v.timestamps[i] });
    }
    return { labels, samples };
  });
}

const NOW = 1_764_590_000_000;

t.test('round trip: what protobufjs encodes reads back label for label, sample for sample', async (t) => {
  const series: TestSeries[] = [
    { labels: { __name__: 'up', instance: '127.0.0.1:9090', job: 'prometheus' }, samples: [{ value: 1, timestamp: NOW }] },
    {
      labels: { __name__: 'prometheus_http_requests_total', code: '200', handler: '/metrics', instance: 'localhost:9090', job: 'p' },
      samples: [{ value: 42, timestamp: NOW }, { value: 43.5, timestamp: NOW + 1000 }, { value: STALE, timestamp: NOW + 2000 }],
      exemplars: 2, histograms: 1,
    },
    { labels: { __name__: 'ünïcødé', 'instance': 'h', 'long': 'x'.repeat(300) }, samples: [{ value: -0.5, timestamp: 0 }, { value: -1e300, timestamp: -1 }] },
    { labels: {}, samples: [] },
  ];
  const v = decode(encodeRequest(series, 3));
  t.same(plain(v), [
    { labels: series[0].labels, samples: [{ value: 1, timestamp: NOW }] },
    { labels: series[1].labels, samples: [{ value: 42, timestamp: NOW }, { value: 43.5, timestamp: NOW + 1000 }, { value: 'stale', timestamp: NOW + 2000 }] },
    { labels: series[2].labels, samples: [{ value: -0.5, timestamp: 0 }, { value: -1e300, timestamp: -1 }] },
    { labels: {}, samples: [] },
  ]);
  t.equal(v.samples, 6);
  t.equal(v.exemplars, 2);
  t.equal(v.histograms, 1);
  t.equal(v.metadata, 3);
});

t.test('int64 timestamps: every magnitude within ±2^53 reads exactly, negatives too', async (t) => {
  const cases = [0, 1, 127, 128, 2 ** 28 - 1, 2 ** 28, 2 ** 31, 2 ** 32, 2 ** 32 + 1, NOW, 2 ** 53 - 1, -1, -128, -(2 ** 31), -(2 ** 32) - 5, -(2 ** 53) + 1];
  const v = decode(encodeRequest([{ labels: { __name__: 'a' }, samples: cases.map((timestamp) => ({ value: 1, timestamp })) }]));
  t.same(Array.from(v.timestamps.subarray(0, cases.length)), cases);
});

t.test('staleness marker: recognised from its bits; other NaNs and infinities are values', async (t) => {
  const bytes = encodeRequest([{ labels: { __name__: 'a' }, samples: [{ value: STALE, timestamp: 1 }, { value: NaN, timestamp: 2 }, { value: Infinity, timestamp: 3 }, { value: -Infinity, timestamp: 4 }] }]);
  const v = decode(bytes);
  t.same(Array.from(v.isStale.subarray(0, 4)), [1, 0, 0, 0]);
  t.ok(Number.isNaN(v.values[0]) && Number.isNaN(v.values[1]));
  t.equal(v.values[2], Infinity);
  t.equal(v.values[3], -Infinity);
});

const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,20}$/);
const seriesArb: fc.Arbitrary<TestSeries> = fc.record({
  labels: fc.dictionary(labelName, fc.string({ maxLength: 40, unit: 'grapheme' }), { maxKeys: 6 }),
  samples: fc.array(fc.record({
    value: fc.oneof(fc.double(), fc.constant(STALE)),
    timestamp: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  }), { maxLength: 5 }),
  exemplars: fc.nat(2),
  histograms: fc.nat(2),
});

t.test('property: the decoder reads what protobufjs encodes, as protobufjs reads it', async (t) => {
  const decoder = new WriteRequestDecoder();
  assertProperty(fc.property(fc.array(seriesArb, { maxLength: 6 }), fc.nat(3), (series, metadata) => {
    const bytes = encodeRequest(series, metadata);
    const v = decoder.decode(bytes);
    if (isWireFault(v)) throw new Error(v.fault);
    const ref = WriteRequest.toObject(WriteRequest.decode(bytes), { longs: Number, defaults: true, arrays: true }) as {
      timeseries: { labels: { name: string; value: string }[]; samples: { value: number; timestamp: number }[] }[];
    };
    const expected = ref.timeseries.map((s, i) => ({
      labels: Object.fromEntries(s.labels.map((l) => [l.name, l.value])),
      samples: s.samples.map((x, j) => ({
        // the reference reads the stale marker as some NaN: which one is what the input says
        value: series[i].samples[j].value === STALE ? 'stale' : x.value,
        timestamp: x.timestamp,
      })),
    }));
    const got = plain(v);
    if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`decoded ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
    // JSON.stringify writes NaN and -0 as null and 0: compare those by Object.is
    got.forEach((s, i) => s.samples.forEach((x, j) => {
      if (!Object.is(x.value, expected[i].samples[j].value)) throw new Error(`sample ${i}/${j}: ${x.value} vs ${expected[i].samples[j].value}`);
    }));
    const h = series.reduce((n, s) => n + (s.histograms ?? 0), 0);
    const e = series.reduce((n, s) => n + (s.exemplars ?? 0), 0);
    if (v.histograms !== h || v.exemplars !== e || v.metadata !== metadata) throw new Error('counts differ');
  }), 2000);
  t.pass('2000 random requests');
});

t.test('bad bytes: every truncation and random garbage gives a fault or a request, never a throw', async (t) => {
  const decoder = new WriteRequestDecoder();
  const bytes = encodeRequest([
    { labels: { __name__: 'cpu', instance: 'a:1' }, samples: [{ value: 1.5, timestamp: NOW }, { value: 2, timestamp: NOW + 1 }] },
    { labels: { __name__: 'mem', instance: 'a:1' }, samples: [{ value: 3, timestamp: NOW }] },
  ]);
  let faults = 0;
  for (let n = 0; n < bytes.length; n++) {
    const r = decoder.decode(bytes.subarray(0, n));
    if (isWireFault(r)) faults++;
    else t.ok(r.series.length < 2, `prefix ${n} decodes only at a series boundary`);
  }
  // every cut inside a series is a fault; the cuts that decode are 0 (empty) and after series 1
  t.equal(faults, bytes.length - 2, 'all but the two series-boundary prefixes are faults');
  t.match(decoder.decode(bytes.subarray(0, 10)), { fault: /runs past the end|truncated/ });
  t.match(decoder.decode(Buffer.from('{"deviceId":"x","cpu":1}')), { fault: /WriteRequest/ });
  assertProperty(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
    const r = decoder.decode(b);
    if (!isWireFault(r) && !Array.isArray(r.series)) throw new Error('neither');
  }), 5000);
});

t.test('snappyDecodedLength: the block preamble, or -1', async (t) => {
  const body = Buffer.alloc(300_000, 7);
  t.equal(snappyDecodedLength(compressSync(body)), 300_000);
  t.equal(snappyDecodedLength(compressSync(Buffer.alloc(0))), 0);
  t.equal(snappyDecodedLength(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), -1, 'no end in 5 bytes');
  t.equal(snappyDecodedLength(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f])), -1, 'over 32 bits');
  t.equal(snappyDecodedLength(Buffer.alloc(0)), -1);
});

t.test('mapping: deviceId from the device label, metric from __name__, tags, skips', async (t) => {
  const m = new PromNameMapper('instance');
  const v = decode(encodeRequest([
    { labels: { __name__: 'job:http_requests:rate5m', instance: '127.0.0.1:9090', job: 'api' }, samples: [{ value: 2.5, timestamp: NOW }] },
    { labels: { __name__: 'up', instance: '[::1]:9090', [`l${'o'.repeat(70)}ng`]: 'x', big: 'v'.repeat(257), ok: 'v'.repeat(256) }, samples: [{ value: 1, timestamp: NOW }, { value: STALE, timestamp: NOW + 1 }] },
    { labels: { __name__: 'summary', instance: 'h:1', quantile: '0.5' }, samples: [{ value: NaN, timestamp: NOW }, { value: Infinity, timestamp: NOW + 1 }, { value: 7, timestamp: NOW + 2 }] },
    { labels: { __name__: 'orphan', job: 'x' }, samples: [{ value: 1, timestamp: NOW }, { value: 2, timestamp: NOW + 1 }] },
    { labels: { instance: 'h:1' }, samples: [{ value: 1, timestamp: NOW }] },
    { labels: { __name__: 'n'.repeat(65), instance: 'h:1' }, samples: [{ value: 1, timestamp: NOW }] },
    { labels: { __name__: 'gone', instance: 'h:1' }, samples: [{ value: STALE, timestamp: NOW }] },
    { labels: { __name__: 'x', instance: 'i'.repeat(129) }, samples: [{ value: 1, timestamp: NOW }] },
  ]));
  const out = m.map(v);
  t.same(out.events, [
    { deviceId: '127.0.0.1:9090', timestamp: NOW, metrics: { job_http_requests_rate5m: 2.5 }, tags: { job: 'api' } },
    { deviceId: '_::1_:9090', timestamp: NOW, metrics: { up: 1 }, tags: { ok: 'v'.repeat(256) } },
    { deviceId: 'h:1', timestamp: NOW + 2, metrics: { summary: 7 }, tags: { quantile: '0.5' } },
    { deviceId: 'h:1', timestamp: NOW, metrics: { [shorten('n'.repeat(65), 64)]: 1 }, tags: {} },
    { deviceId: shorten('i'.repeat(129), 128), timestamp: NOW, metrics: { x: 1 }, tags: {} },
  ]);
  t.same(out.eventSeries, [0, 1, 2, 5, 7]);
  t.equal(out.stale, 2, 'the marker of up and the one of gone');
  t.equal(out.nonFinite, 2);
  t.equal(out.labelsDropped, 2, 'a label name over 64 characters and a value over 256');
  t.equal(out.refusals.total, 3, 'orphan (2 readings), no name (1)');
  t.same(Object.fromEntries(out.refusals.byCode), { SLUICE_E_BAD_DEVICE_ID: 2, SLUICE_E_BAD_METRIC_NAME: 1 });
  t.same(out.refusals.first.map((f) => f.reason), [
    'series orphan{job="x"}: label instance (--prom-device-label, the deviceId) missing',
    'series {instance="h:1"}: label __name__ missing',
  ], 'reasons name the series and the label');
});

t.test('shorten: names past the limit keep their start and a hash of the whole, exactly at the limit', async (t) => {
  const long = 'prometheus_remote_storage_string_interner_zero_reference_releases_total';
  t.equal(long.length, 71);
  const s = shorten(long, 64);
  t.equal(s.length, 64);
  t.match(s, /^prometheus_remote_storage_string_interner_zero_referenc_[0-9a-f]{8}$/);
  t.equal(shorten(long, 64), s, 'the same name, the same metric');
  t.not(shorten(long.replace(/total$/, 'count'), 64), s, 'names that share their start stay apart');
  t.equal(shorten('short', 64), 'short');
  t.equal(shorten('x'.repeat(64), 64), 'x'.repeat(64));
});

t.test('mapping: another device label, and label order does not matter', async (t) => {
  const m = new PromNameMapper('host');
  const v = decode(encodeRequest([{ labels: { host: 'dev-7', __name__: 'temp', instance: 'x:1' }, samples: [{ value: 21, timestamp: NOW }] }]));
  t.same(m.map(v).events, [{ deviceId: 'dev-7', timestamp: NOW, metrics: { temp: 21 }, tags: { instance: 'x:1' } }]);
});

t.test('seriesText names a series the way PromQL writes it, cut at 160 characters', async (t) => {
  t.equal(seriesText(['__name__', 'up', 'job', 'a"b']), 'up{job="a\\"b"}');
  t.equal(seriesText(['__name__', 'x', 'v', 'y'.repeat(300)]).length, 161);
});

t.test('decode speed (reported): hand-written decoder against protobufjs, ns per sample', async (t) => {
  const series: TestSeries[] = [];
  for (let i = 0; i < 500; i++) {
    series.push({
      labels: { __name__: `prometheus_metric_${i % 50}_total`, code: '200', handler: `/api/v1/h${i}`, instance: '127.0.0.1:9090', job: 'prometheus' },
      samples: [{ value: i * 1.5, timestamp: NOW + i }],
    });
  }
  const bytes = encodeRequest(series);
  const decoder = new WriteRequestDecoder();
  const mapper = new PromNameMapper('instance');
  // best of 8 alternated rounds: the machine is shared, the minimum is the least disturbed figure
  const runs: Record<string, () => unknown> = {
    hand: () => decoder.decode(bytes),
    handMapped: () => mapper.map(decoder.decode(bytes) as WriteRequestView),
    pbjs: () => WriteRequest.toObject(WriteRequest.decode(bytes), { longs: Number }),
  };
  const best: Record<string, number> = {};
  for (let k = 0; k < 8; k++) {
    for (const [name, f] of Object.entries(runs)) {
      const rounds = 300;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < rounds; i++) f();
      best[name] = Math.min(best[name] ?? Infinity, Number(process.hrtime.bigint() - t0) / rounds / series.length);
    }
  }
  const time = (name: string): number => best[name];
  const hand = time('hand');
  const handMapped = time('handMapped');
  const pbjs = time('pbjs');
  t.comment(`decode ns/sample: hand-written ${hand.toFixed(0)}, + mapping to events ${handMapped.toFixed(0)}, protobufjs decode+toObject(longs: Number) ${pbjs.toFixed(0)} (500 series x 1 sample, 5 labels each)`);
  t.ok(hand > 0 && pbjs > 0);
});
