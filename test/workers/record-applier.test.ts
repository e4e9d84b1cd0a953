import t from 'tap';
import { createRingBuffer, EventScratch, RingConsumer, RingProducer } from '../../protocol';
import { Dictionary } from '../../engine/dictionary';
import { BatchStager } from '../../engine/batch-stager';

import { reserveAndPublish } from '../helpers/rings';
import { RecordApplier } from '../../workers/record-applier';
import { ReportCounter } from '../../workers/report-counter';
import { ShardState } from '../../workers/shard-state';
import { BlockStore, RollupStore } from '../../storage';
import { validateColumnar, isColumnarFault } from '../../protocol';
import { tempDir } from '../helpers/engine';

const limits = { batchEventsMax: 100_000, metricsPerEventMax: 8, futureSkewMs: 60_000 };
const NOW = 1_700_000_000_000;
const f64 = (xs: number[]): Uint8Array => new Uint8Array(new Float64Array(xs).buffer);

t.test('events and columnar records reach the shard state exactly, across ring wrap-arounds', async (t) => {
  const sab = createRingBuffer(65536);
  const producer = new RingProducer(sab);
  const consumer = new RingConsumer(sab);
  const dict = new Dictionary(1, 1000);
  const stager = new BatchStager(dict, [producer], limits.metricsPerEventMax);
  const dir = tempDir();
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  t.teardown(() => blocks.close());
  const state = new ShardState({
    shard: 0, paneMs: 10_000, latenessMs: 300_000, lateHorizonMs: 300_000, resolutions: [10_000, 60_000], histogram: { divisions: 10, min: 0, max: 100 }, lateLogSize: 100,
  }, blocks, rollups, (err) => { throw err; });
  const report = new ReportCounter({ metrics: ['cpu'], divisions: 10, min: 0, max: 100 });
  const applier = new RecordApplier(consumer, state, report);
  const ev = new EventScratch(limits);
  const expected = new Map<string, { count: number; sum: number }>();
  const note = (key: string, v: number): void => {
    const e = expected.get(key) ?? { count: 0, sum: 0 };
    e.count++;
    e.sum += v;
    expected.set(key, e);
  };
  let events = 0;
  for (let batch = 0; batch < 200; batch++) {
    stager.begin();
    if (batch % 3 === 0) {
      const rows = 300;
      const ts = Array.from({ length: rows }, (_, i) => NOW + i * 10);
      const cpu = ts.map((_, i) => (i * batch) % 97);
      const c = validateColumnar({ deviceId: `gw-${batch % 5}`, timestamps: f64(ts), metrics: { cpu: f64(cpu), temp: f64(cpu.map((v) => v / 2)) } }, null, NOW, limits);
      if (isColumnarFault(c)) throw new Error(c.reason);
      t.ok(stager.stageColumnar(c));
      events += rows;
      cpu.forEach((v) => { note(`gw-${batch % 5}/cpu`, v); note(`gw-${batch % 5}/temp`, v / 2); });
    } else {
      for (let i = 0; i < 150; i++) {
        const d = `dev-${(i * 7 + batch) % 13}`;
        const v = (i + batch) % 101;
        if (!ev.validate({ deviceId: d, timestamp: NOW + i * 100, metrics: { cpu: v, mem: 1 } }, null, NOW)) throw new Error(ev.errorReason);
        stager.stageEvent(ev);
        events++;
        note(`${d}/cpu`, v);
        note(`${d}/mem`, 1);
      }
    }
    if (!reserveAndPublish(stager, [producer], batch + 1)) throw new Error(`batch ${batch} does not fit`);
    consumer.poll(applier, 1 << 30);
  }
  t.equal(state.head.openSlices().length >= 1, true, 'nothing sealed: every reading in the head');
  let wrong = 0;
  const offsets = new Float64Array(100_000);
  const values = new Float64Array(100_000);
  for (const [key, e] of expected) {
    const [d, m] = key.split('/');
    const series = state.series.findSeries(state.series.deviceIdOf(d), state.series.metricIdOf(m));
    let count = 0, sum = 0;
    for (const slice of state.head.openSlices()) {
      const n = state.head.seriesReadings(slice, series, offsets, values);
      count += n;
      for (let i = 0; i < n; i++) sum += values[i];
    }
    if (count !== e.count || sum !== e.sum) wrong++;
  }
  t.equal(wrong, 0, 'every series exact');
  t.equal(applier.events, events, 'events counted');
});
