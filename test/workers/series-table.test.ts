import t from 'tap';
import { SeriesTable } from '../../workers/series-table';
import { rng } from '../helpers/rng';

t.test('series by (device, metric): created once, stable indexes, listed by device and metric', async (t) => {
  const st = new SeriesTable();
  st.defineDevice(10, 'dev-10');
  st.defineDevice(3, 'dev-3');
  st.defineMetric(1, 'cpu');
  st.defineMetric(2, 'mem');
  t.equal(st.seriesOf(10, 1), 0);
  t.equal(st.seriesOf(3, 1), 1);
  t.equal(st.seriesOf(10, 2), 2);
  t.equal(st.seriesOf(10, 1), 0, 'the same pair, the same series');
  t.equal(st.findSeries(3, 2), -1);
  t.equal(st.findSeries(-1, 2), -1);
  t.same(st.seriesOfDevice(10), [0, 2], 'oldest first');
  t.same(st.seriesOfDevice(99), []);
  t.same(st.seriesOfMetric(1), [0, 1]);
  t.same([st.seriesDevice(2), st.seriesMetric(2)], [10, 2]);
  t.same(st.sortedDeviceNames(), ['dev-10', 'dev-3']);
  t.equal(st.deviceIdOf('dev-3'), 3);
  t.equal(st.metricIdOf('nope'), -1);
  t.throws(() => st.seriesOf(11, 1), /BUG: device id 11 used before its DEFINE/);
  t.throws(() => st.defineDevice(10, 'other'), /bound to "dev-10"/);
  st.defineDevice(10, 'dev-10');
  t.equal(st.deviceCount, 2, 'a repeated DEFINE is a no-op');
});

t.test('grows past its initial capacity; checkpoints in increments restore the same table', async (t) => {
  const st = new SeriesTable();
  const random = rng(5);
  const parts = [];
  let mark = 0;
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 1500; i++) {
      const d = Math.floor(random() * 3000);
      const m = Math.floor(random() * 3);
      st.defineDevice(d, `d${d}`);
      st.defineMetric(m, `m${m}`);
      st.seriesOf(d, m);
    }
    parts.push(st.rowsSince(mark));
    mark = st.seriesCount;
  }
  const back = new SeriesTable();
  for (const p of parts) back.restore(p);
  t.equal(back.seriesCount, st.seriesCount);
  for (let s = 0; s < st.seriesCount; s++) {
    if (back.seriesDevice(s) !== st.seriesDevice(s) || back.seriesMetric(s) !== st.seriesMetric(s)) {
      t.fail(`series ${s} differs`);
      break;
    }
  }
  for (const d of [0, 17, 2999]) t.same(back.seriesOfDevice(d), st.seriesOfDevice(d), `device ${d}`);
  t.same(back.sortedDeviceNames(), st.sortedDeviceNames());
  t.throws(() => back.restore({ from: back.seriesCount + 5, pairs: [0, 0], devices: [], metrics: [] }), /BUG/);
  t.ok(st.typedArrayBytes() > 0);
});
