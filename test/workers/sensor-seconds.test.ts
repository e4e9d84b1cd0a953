import t from 'tap';
import { rng } from '../helpers/rng';
import { mergeSecond, SensorSeconds } from '../../workers/sensor-seconds';
import type { SecondAggregate } from '../../storage';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const BASE = 1_700_000_000_000;

/** brute force: every value kept, per (metric, second) */
class Reference {
  readonly values = new Map<string, number[]>();
  add(metric: number, ts: number, value: number): void {
    const key = `${metric}:${Math.floor(ts / 1000)}`;
    const list = this.values.get(key);
    if (list === undefined) this.values.set(key, [value]);
    else list.push(value);
  }
  range(metric: number, fromSec: number, toSec: number): SecondAggregate {
    const out: SecondAggregate = [0, 0, 0, 0];
    for (const [key, list] of this.values) {
      const [m, s] = key.split(':').map(Number) as [number, number];
      if (m !== metric || s < fromSec || s >= toSec) continue;
      for (const v of list) mergeSecond(out, [1, v, v, v]);
    }
    return out;
  }
}

/** the open seconds as sorted 'metric:second:count:sum:min:max' strings (a second may be in two parts) */
function openSeconds(s: SensorSeconds): string[] {
  const o = s.snapshot().open;
  const merged = new Map<string, SecondAggregate>();
  for (let k = 0; k < o.length; k += 6) {
    const key = `${o[k]}:${o[k + 1]}`;
    const agg: SecondAggregate = [o[k + 2]!, o[k + 3]!, o[k + 4]!, o[k + 5]!];
    const seen = merged.get(key);
    if (seen === undefined) merged.set(key, agg);
    else mergeSecond(seen, agg);
  }
  return [...merged].map(([key, a]) => `${key}:${a.join(':')}`).sort();
}

t.test('open and closed seconds add up to the brute-force aggregate, also past the ring (overflow)', (t) => {
  const rand = rng(seed);
  const seconds = new SensorSeconds();
  const ref = new Reference();
  const closed = new Map<string, SecondAggregate>();
  const metrics = [3, 40, 7];
  let closedBefore = BASE;
  let early = 0;
  for (let round = 0; round < 40; round++) {
    for (let i = 0; i < 500; i++) {
      const metric = metrics[Math.floor(rand() * metrics.length)]!;
      // mostly within 5 min ahead of the closing point; 2% far ahead (another slot's second)
      const ahead = rand() < 0.98 ? rand() * 300_000 : 1_100_000 + rand() * 2_000_000;
      const ts = closedBefore + Math.floor(ahead);
      const value = Math.round(rand() * 400) / 4 - 20;
      seconds.add(metric, ts, value);
      ref.add(metric, ts, value);
    }
    closedBefore += 10_000;
    for (const c of seconds.closeBefore(closedBefore)) {
      if (c.second >= closedBefore / 1000) early++;
      const key = `${c.metric}:${c.second}`;
      const seen = closed.get(key);
      if (seen === undefined) closed.set(key, [...c.agg]);
      else mergeSecond(seen, c.agg);
    }
    if (round === 20) {
      // a checkpoint in the middle: the restored copy carries on
      const copy = new SensorSeconds();
      copy.restore(structuredClone(seconds.snapshot()));
      t.same(openSeconds(copy), openSeconds(seconds), 'restore(snapshot()) gives the same open seconds');
    }
  }
  t.equal(early, 0, 'only seconds before the closing point close');
  const fromSec = BASE / 1000;
  const toSec = fromSec + 4000;
  for (const metric of [...metrics, 99]) {
    const got: SecondAggregate = [0, 0, 0, 0];
    for (const [key, agg] of closed) if (Number(key.split(':')[0]) === metric) mergeSecond(got, agg);
    seconds.mergeOpen(metric, fromSec, toSec, got);
    t.same(got, ref.range(metric, fromSec, toSec), `metric ${metric}: closed + open = every value`);
  }
  // a sub-range: whole seconds [a, b)
  const a = fromSec + 123;
  const b = fromSec + 2345;
  const got: SecondAggregate = [0, 0, 0, 0];
  for (const [key, agg] of closed) {
    const [m, s] = key.split(':').map(Number) as [number, number];
    if (m === 40 && s >= a && s < b) mergeSecond(got, agg);
  }
  seconds.mergeOpen(40, a, b, got);
  t.same(got, ref.range(40, a, b), 'a sub-range of seconds');
  t.end();
});

t.test('restore refuses an inconsistent snapshot', (t) => {
  const s = new SensorSeconds();
  s.add(1, BASE, 5);
  const snap = s.snapshot();
  t.throws(() => new SensorSeconds().restore({ metrics: [], open: snap.open }), /inconsistent/);
  t.throws(() => new SensorSeconds().restore({ metrics: [1], open: snap.open.subarray(1) }), /multiple of 6/);
  t.throws(() => s.restore(snap), /not empty/);
  t.end();
});
