import t from 'tap';
import {
  RecordBuilder, RecordReader, EVENT_METRIC_BYTES, REC_COLUMNAR, REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS, REC_MARK,
} from '../../protocol';
import { rng } from '../helpers/rng';

const f64 = (xs: number[]): Uint8Array => new Uint8Array(new Float64Array(xs).buffer);

t.test('what RecordBuilder writes, RecordReader reads back field by field', async (t) => {
  const b = new RecordBuilder(64 * 1024, 4);
  b.defineDevice(7, 'dev-7');
  b.defineMetric(3, 'cpu');
  const random = rng(17);
  const events: [number, number, [number, number][]][] = [];
  for (let i = 0; i < 50; i++) {
    const metrics: [number, number][] = [];
    for (let m = 0; m < 1 + (i % 4); m++) metrics.push([m, random() * 100]);
    const ev: [number, number, [number, number][]] = [i % 5, 1.7e12 + i * 10.5, metrics];
    events.push(ev);
    b.beginEvent(ev[0], ev[1]);
    for (const [id, v] of metrics) b.metric(id, v);
    b.endEvent();
  }
  b.columnar(9, 3, [3, 4], 2, f64([1e12, 1e12 + 1, 1e12 + 2]), [f64([1, 2, 3]), f64([4, 5, 6])]);
  b.mark(41);
  b.seal(40);

  const r = RecordReader.over(b.buf.subarray(0, b.length));
  const seen: number[] = [];
  for (let o = 0; o < b.length; o += r.recordBytes(o)) {
    const type = r.recordType(o);
    seen.push(type);
    switch (type) {
      case REC_DEFINE_DEVICE: t.same([r.defineId(o), r.defineName(o)], [7, 'dev-7']); break;
      case REC_DEFINE_METRIC: t.same([r.defineId(o), r.defineName(o)], [3, 'cpu']); break;
      case REC_EVENTS: {
        t.equal(r.eventsSeq(o), 40, 'sealed with the batch seq');
        const got: typeof events = [];
        let e = r.firstEvent(o);
        for (let i = 0; i < r.eventsCount(o); i++) {
          const metrics: [number, number][] = [];
          let m = r.firstMetric(e);
          for (let k = 0; k < r.eventMetricCount(e); k++, m += EVENT_METRIC_BYTES) metrics.push([r.metricId(m), r.metricValue(m)]);
          got.push([r.eventDevice(e), r.eventTs(e), metrics]);
          e = m;
        }
        t.same(got, events);
        break;
      }
      case REC_COLUMNAR: {
        t.same([r.columnarDevice(o), r.columnarRows(o), r.columnarMetrics(o), r.columnarSeq(o)], [9, 3, 2, 40]);
        t.same([r.columnarMetricId(o, 0), r.columnarMetricId(o, 1)], [3, 4]);
        const ts = r.columnarTsIndex(o);
        t.same([...r.f64.subarray(ts, ts + 3)], [1e12, 1e12 + 1, 1e12 + 2]);
        const v1 = r.columnarValueIndex(o, 1);
        t.same([...r.f64.subarray(v1, v1 + 3)], [4, 5, 6]);
        break;
      }
      case REC_MARK: t.equal(r.markSeq(o), 41); break;
      default: t.fail(`unexpected record type ${type}`);
    }
  }
  t.same(seen, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS, REC_COLUMNAR, REC_MARK]);
});

t.test('RecordReader.over refuses unaligned records', async (t) => {
  t.throws(() => RecordReader.over(new Uint8Array(64).subarray(4)), /8-byte aligned/);
});
