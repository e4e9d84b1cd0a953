import t from 'tap';
import { rng } from '../helpers/rng';
import { ReportCounter } from '../../workers/report-counter';

/** mulberry32: small seeded PRNG so a failing run can be replayed with SLUICE_SEED */

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);

function defaults(metrics = ['cpu']): ReportCounter {
  return new ReportCounter({ metrics, divisions: 10, min: 0, max: 100 });
}

t.test('known stream: exact count, divisions, under, over, distinct devices', async (t) => {
  const c = defaults();
  c.defineMetric(0, 'cpu');
  c.defineMetric(1, 'mem');
  const values = [0, 5, 9.999, 10, 30, 55, 89.9, 90, 99.99, 100, -0.01, -50, 100.01, 1e9];
  // devices 7, 7, 8, 9, 7... : 3 distinct
  const devices = [7, 7, 8, 9, 7, 8, 9, 7, 8, 9, 7, 8, 9, 7];
  for (let i = 0; i < values.length; i++) c.count(0, devices[i], values[i]);
  for (let i = 0; i < 50; i++) c.count(1, 1000 + i, 50); // mem is not a report metric
  const parts = c.collect();
  t.same(parts, [{
    metric: 'cpu', count: 14,
    //          0  1  2  3  4  5  6  7  8  9
    histogram: [3, 1, 0, 1, 0, 1, 0, 0, 1, 3],
    under: 2, over: 2, devices: 3,
  }]);
});

t.test('value == max is in the last division; division edges are exact', async (t) => {
  const c = defaults();
  c.defineMetric(3, 'cpu');
  c.count(3, 1, 100);
  c.count(3, 1, 30); // 30 * 10 / 100 = 3 exactly (30 / 10 would be too; 0.3 * 10 rounding is the trap)
  c.count(3, 1, 70);
  const [p] = c.collect();
  t.same(p.histogram, [0, 0, 0, 1, 0, 0, 0, 1, 0, 1]);
  t.equal(p.under + p.over, 0);
  // another range and division count: [-1, 2] in 3 divisions
  const d = new ReportCounter({ metrics: ['x'], divisions: 3, min: -1, max: 2 });
  d.defineMetric(0, 'x');
  for (const v of [-1, -0.5, 0, 1, 2, 2.5, -1.5]) d.count(0, 0, v);
  t.same(d.collect(), [{ metric: 'x', count: 7, histogram: [2, 1, 2], under: 1, over: 1, devices: 1 }]);
});

t.test('each collect starts a new period (counts and distinct devices reset)', async (t) => {
  const c = defaults();
  c.defineMetric(0, 'cpu');
  c.count(0, 1, 10);
  c.count(0, 2, 20);
  t.match(c.collect(), [{ count: 2, devices: 2 }]);
  t.same(c.collect(), [{ metric: 'cpu', count: 0, histogram: new Array(10).fill(0), under: 0, over: 0, devices: 0 }], 'an empty period is all zeros');
  c.count(0, 1, 10);
  c.count(0, 1, 10);
  t.match(c.collect(), [{ count: 2, devices: 1 }], 'device 1 counts again in a later period, once');
});

t.test('unknown and not-reported metrics are ignored; zeros for a report metric never defined', async (t) => {
  const c = defaults(['cpu', 'temp']);
  c.defineMetric(5, 'mem');
  c.count(5, 1, 50);
  c.count(99, 1, 50); // never defined: a contract breach, still not counted
  c.defineMetric(200, 'cpu'); // grows the id table
  c.count(200, 4, 50);
  const parts = c.collect();
  t.same(parts.map((p) => [p.metric, p.count, p.devices]), [['cpu', 1, 1], ['temp', 0, 0]]);
  t.throws(() => c.defineMetric(200, 'temp'), /defined as temp after cpu/);
  t.doesNotThrow(() => c.defineMetric(200, 'cpu'), 'redefining an id with its name is idempotent (replays)');
});

t.test('two report metrics are counted apart', async (t) => {
  const c = defaults(['cpu', 'temp']);
  c.defineMetric(0, 'temp');
  c.defineMetric(1, 'cpu');
  c.count(0, 1, 20);
  c.count(1, 1, 95);
  c.count(1, 2, 95);
  t.same(c.collect().map((p) => [p.metric, p.count, p.devices, p.histogram[2], p.histogram[9]]),
    [['cpu', 2, 2, 0, 2], ['temp', 1, 1, 1, 0]]);
});

t.test('grows to many devices; distinct count matches a Set (seeded)', async (t) => {
  t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);
  const rand = rng(seed);
  const c = defaults();
  c.defineMetric(0, 'cpu');
  for (let period = 0; period < 3; period++) {
    const ids = new Set<number>();
    const hist = new Array<number>(10).fill(0);
    let under = 0;
    let over = 0;
    const n = 200_000;
    const spread = period === 2 ? 4_000_000 : 50_000;
    for (let i = 0; i < n; i++) {
      const dev = Math.floor(rand() * spread);
      const v = rand() * 120 - 10;
      ids.add(dev);
      // the reference division: [0, 100] in 10, closed at 100
      if (v < 0) under++;
      else if (v > 100) over++;
      else hist[Math.min(9, Math.floor((v * 10) / 100))]++;
      c.count(0, dev, v);
    }
    const [p] = c.collect();
    t.same(p, { metric: 'cpu', count: n, histogram: hist, under, over, devices: ids.size }, `period ${period}`);
  }
  t.ok(c.bitsetBytes <= 1024 * 1024, `4 M device ids in ${c.bitsetBytes} bytes`);
  c.count(0, 2 ** 31 - 1, 1);
  t.match(c.collect(), [{ count: 1, devices: 1 }], 'the largest int32 device id');
});

t.test('constructor checks its limits', async (t) => {
  t.throws(() => new ReportCounter({ metrics: ['cpu'], divisions: 0, min: 0, max: 100 }), /divisions/);
  t.throws(() => new ReportCounter({ metrics: ['cpu'], divisions: 10, min: 5, max: 5 }), /min must be below max/);
  t.throws(() => new ReportCounter({ metrics: ['cpu', 'cpu'], divisions: 10, min: 0, max: 100 }), /repeat/);
});
