/**
 * Admission's fast path (protocol/msgpack-events.ts, json-events.ts scanned straight into the
 * stager) against the generic path (codecs.ts + EventScratch), side by side on the same bodies:
 * two Ingest instances with real rings, real dictionaries and real stores in temp dirs, one with
 * the scanners and one without. For every body (random events of every shape, plain msgpack
 * maps, msgpackr records, JSON, envelopes, pinned or not, truncated or corrupted) both must give
 * the same answer (status, counts, every rejection's index, code and wording) and put the same
 * events in the rings (the fast path may write them as COLUMNAR records: compared as readings).
 */

import t from 'tap';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  createRingBuffer, RingConsumer, RingProducer, RecordReader, REC_COLUMNAR, REC_DEFINE_DEVICE, REC_DEFINE_METRIC,
  REC_EVENTS, EVENT_METRIC_BYTES, type RecordHandler, type ContentKind, type TimePrecision,
} from '../../protocol';
import { Store } from '../../storage';
import { Dictionary } from '../../engine/dictionary';
import { BatchStager } from '../../engine/batch-stager';
import { CommitPipeline } from '../../engine/commit-pipeline';
import { FaultGuard } from '../../engine/fault-guard';
import { createLogger } from '../../engine/logger';
import { Ingest, type IngestOutcome } from '../../engine/ingest';
import { tempDir } from '../helpers/engine';
import { assertAsyncProperty } from '../helpers/property';

const limits = { batchEventsMax: 50, metricsPerEventMax: 4, futureSkewMs: 60_000 };
const NOW = Date.now();

/** Readings as the worker would see them: device and metric names, timestamp, value. */
class Readings implements RecordHandler {
  readonly out: string[] = [];
  private readonly devices = new Map<number, string>();
  private readonly metrics = new Map<number, string>();
  constructor(private readonly r: RecordReader) {}
  onRecord(o: number, _total: number, type: number): void {
    const r = this.r;
    if (type === REC_DEFINE_DEVICE) this.devices.set(r.defineId(o), r.defineName(o));
    else if (type === REC_DEFINE_METRIC) this.metrics.set(r.defineId(o), r.defineName(o));
    else if (type === REC_EVENTS) {
      let e = r.firstEvent(o);
      for (let i = 0; i < r.eventsCount(o); i++) {
        const n = r.eventMetricCount(e);
        const parts: string[] = [];
        let m = r.firstMetric(e);
        for (let k = 0; k < n; k++, m += EVENT_METRIC_BYTES) parts.push(`${this.metrics.get(r.metricId(m))}=${Object.is(r.metricValue(m), -0) ? '-0' : r.metricValue(m)}`);
        this.out.push(`${this.devices.get(r.eventDevice(e))}@${r.eventTs(e)} ${parts.join(',')}`);
        e = m;
      }
    } else if (type === REC_COLUMNAR) {
      const rows = r.columnarRows(o);
      const n = r.columnarMetrics(o);
      const ts = r.columnarTsIndex(o);
      for (let i = 0; i < rows; i++) {
        const parts: string[] = [];
        for (let k = 0; k < n; k++) {
          const v = r.f64[r.columnarValueIndex(o, k) + i];
          parts.push(`${this.metrics.get(r.columnarMetricId(o, k))}=${Object.is(v, -0) ? '-0' : v}`);
        }
        this.out.push(`${this.devices.get(r.columnarDevice(o))}@${r.f64[ts + i]} ${parts.join(',')}`);
      }
    }
  }
}

interface Side { ingest: Ingest; readings: Readings; consumer: RingConsumer; pipeline: CommitPipeline }

/**
 * A fresh admission (dictionary, ring, stager, pipeline in fast-ack mode) over a shared store:
 * each body starts from the same state on both sides, so a failure shrinks to the body alone.
 */
function side(store: Store, scanners: boolean): Side {
  const sab = createRingBuffer(1 << 20);
  const producers = [new RingProducer(sab)];
  const consumer = new RingConsumer(sab);
  const dict = new Dictionary(1, 40);
  const stager = new BatchStager(dict, producers, limits.metricsPerEventMax);
  const log = createLogger('silent');
  const guard = new FaultGuard(log);
  const pipeline = new CommitPipeline(store, producers, 'fast', 1 << 30, log, guard);
  const ingest = new Ingest(limits, dict, stager, pipeline, guard);
  ingest.scanners = scanners;
  // a device that sent seq 1 before: the bodies' device seqs meet a duplicate, the next one or a gap
  ingest.restoreDeviceSeq(dict.device('dev-1'), 1);
  return { ingest, readings: new Readings(RecordReader.over(new Uint8Array(consumer.bytes.buffer, consumer.bytes.byteOffset, consumer.bytes.byteLength))), consumer, pipeline };
}

function submit(s: Side, kind: ContentKind, body: Uint8Array, pinned: string | null, precision: TimePrecision | null, deviceSeq: number | null): IngestOutcome {
  let out: IngestOutcome | null = null;
  s.ingest.submit({ kind, body: new Uint8Array(body), pinned, deviceSeq, waitMs: 0, precision }, (o) => { out = o; });
  if (out === null) throw new Error('no synchronous answer in fast mode');
  return out;
}

const devices = fc.constantFrom('dev-1', 'dev-2', 'a.b:c-d_e', 'x'.repeat(128), 'x'.repeat(129), '', 'bad id', 'dév', '1');
const names = fc.constantFrom('cpu', 'mem', 'temp.c', 'x_1', '1a', '12', '__proto__', 'a b', 'é', '', 'm'.repeat(64), 'm'.repeat(65), 'tags', 'metrics', 'deviceId');
const numbers = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }), fc.double({ noNaN: false }), fc.constantFrom(-0, 0.1, 92, 21.3, 1e21, 2 ** 53, -(2 ** 31), 2 ** 32 + 1, Infinity, NaN),
);
const timestamps = fc.oneof(
  fc.integer({ min: NOW - 86_400_000, max: NOW + 10_000 }).map((x) => x + 0.25 * (x % 4)),
  fc.constantFrom(NOW - 1000, NOW + 120_000, 0, 1e10, NOW * 1000, -5, NaN, 2 ** 53 + 2, Math.floor(NOW / 1000)),
  fc.constant(new Date(NOW - 5000).toISOString()), fc.constant('not a time'), fc.constant(null), fc.constant(true),
);
const value = fc.oneof({ weight: 6, arbitrary: numbers }, fc.constantFrom('str', null, true), fc.constant([1]));
const metricsObj = fc.dictionary(names, value, { minKeys: 0, maxKeys: 5 });
/** events of the common shapes, mostly valid, and every way to get them wrong */
const event = fc.oneof(
  { weight: 5, arbitrary: fc.record({ deviceId: devices, timestamp: timestamps, metrics: metricsObj }, { requiredKeys: ['timestamp', 'metrics'] }) },
  { weight: 2, arbitrary: fc.tuple(fc.option(devices, { nil: undefined }), timestamps, fc.dictionary(names, value, { maxKeys: 4 }))
    .map(([d, ts, rest]) => ({ ...(d === undefined ? {} : { deviceId: d }), timestamp: ts, ...rest })) },
  { weight: 1, arbitrary: fc.record({ deviceId: devices, timestamp: timestamps, metrics: metricsObj, tags: fc.dictionary(names, fc.oneof(fc.string(), numbers), { maxKeys: 2 }) }) },
  { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.constant([]), fc.object({ maxDepth: 2 })) },
);
/** one pinned run of readings (what a device's connection sends) */
const run = fc.tuple(fc.integer({ min: 1, max: 12 }), fc.constantFrom('cpu', 'mem'), fc.boolean()).map(([n, name, withDevice]) =>
  Array.from({ length: n }, (_, i) => ({ ...(withDevice ? { deviceId: 'dev-1' } : {}), timestamp: NOW - 10_000 + i, metrics: { [name]: i + 0.5 } })));
const events = fc.oneof(fc.array(event, { minLength: 0, maxLength: 8 }), run, fc.tuple(run, fc.array(event, { maxLength: 3 }), run).map(([a, b, c]) => [...a, ...b, ...c]));

const packers = { maps: new Packr({ useRecords: false }), records: new Packr({ useRecords: true }), float32: new Packr({ useRecords: false, useFloat32: 1 }) };

const body = fc.record({
  events,
  shape: fc.constantFrom('array', 'envelope', 'envelope-seq', 'events-first', 'single'),
  envelopeDevice: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: fc.constantFrom('dev-1', 'dev-2') }, devices),
  encoding: fc.constantFrom('json', 'json-spaced', 'maps', 'records', 'float32'),
  pinned: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, fc.constantFrom('dev-1', 'dev-2')),
  precision: fc.constantFrom(null, null, null, 'ms', 's'),
  // a device sequence (HTTP header); the envelope's seq counts up (see encode)
  seq: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, fc.integer({ min: 0, max: 3 })),
  damage: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, fc.tuple(fc.constantFrom('cut', 'flip', 'append'), fc.nat(), fc.integer({ min: 0, max: 255 }))),
});

type Body = typeof body extends fc.Arbitrary<infer T> ? T : never;

function encode(b: Body): { kind: ContentKind; bytes: Uint8Array } {
  let value: unknown;
  const dev = b.envelopeDevice === undefined ? {} : { deviceId: b.envelopeDevice };
  switch (b.shape) {
    case 'array': value = b.events; break;
    case 'envelope': value = { ...dev, events: b.events }; break;
    case 'envelope-seq': value = { seq: b.seq ?? 2, ...dev, events: b.events }; break;
    case 'events-first': value = { events: b.events, ...dev }; break;
    default: value = b.events[0] ?? {};
  }
  let kind: ContentKind = 'msgpack';
  let bytes: Uint8Array;
  if (b.encoding === 'json' || b.encoding === 'json-spaced') {
    kind = 'json';
    bytes = Buffer.from(JSON.stringify(value, null, b.encoding === 'json' ? undefined : 1), 'utf8');
  } else bytes = (packers as Record<string, Packr>)[b.encoding].pack(value);
  if (b.damage !== null) {
    const [how, at, byte] = b.damage;
    const i = bytes.length === 0 ? 0 : at % bytes.length;
    if (how === 'cut') bytes = bytes.subarray(0, i);
    else if (how === 'flip') { bytes = new Uint8Array(bytes); if (bytes.length) bytes[i] = byte; }
    else bytes = Buffer.concat([bytes, Buffer.from([byte])]);
  }
  return { kind, bytes };
}

t.test('an envelope deviceId nested deeper than JSON.stringify recurses is refused with its kind, not a stack overflow (found by fuzz-events)', async (t) => {
  const store = Store.open(tempDir('sluice-ingest-test-'));
  t.teardown(() => store.close());
  const s = side(store, true);
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const o = submit(s, 'json', Buffer.from(`{"seq":1,"deviceId":${deep},"events":[]}`), null, null, null);
  s.pipeline.stop();
  t.match(o, { status: 'refused', code: 'SLUICE_E_BAD_DEVICE_ID', reason: 'deviceId: must be 1-128 characters of [A-Za-z0-9_.:-], got an array' });
});

t.test('the scanners and the generic codecs admit every body alike', async (t) => {
  const stores = [Store.open(tempDir('sluice-ingest-test-')), Store.open(tempDir('sluice-ingest-test-'))];
  t.teardown(async () => {
    for (const s of stores) await s.close();
  });
  let compared = 0;
  await assertAsyncProperty(fc.asyncProperty(body, async (b) => {
    const fast = side(stores[0], true);
    const slow = side(stores[1], false);
    const { kind, bytes } = encode(b);
    const of = submit(fast, kind, bytes, b.pinned, b.precision, b.seq);
    const os = submit(slow, kind, bytes, b.pinned, b.precision, b.seq);
    // the pipeline publishes at the end of the turn (fast acks)
    await new Promise((r) => setImmediate(r));
    fast.consumer.poll(fast.readings, 1 << 30);
    slow.consumer.poll(slow.readings, 1 << 30);
    // thrown (not t.same) so that fast-check shrinks a failure to its smallest body
    const a = JSON.stringify(of);
    const e = JSON.stringify(os);
    if (a !== e) throw new Error(`answers differ for ${JSON.stringify(b)}:\n fast ${a}\n slow ${e}`);
    const fr = JSON.stringify(fast.readings.out);
    const sr = JSON.stringify(slow.readings.out);
    fast.pipeline.stop();
    slow.pipeline.stop();
    if (fr !== sr) throw new Error(`ring readings differ for ${JSON.stringify(b)}:\n fast ${fr}\n slow ${sr}`);
    compared += fr.length > 2 ? 1 : 0;
    return true;
  }), 1000);
  t.ok(compared > 100, `${compared} bodies put readings in the rings`);
});
