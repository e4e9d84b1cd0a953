import fs from 'node:fs';
import t from 'tap';
import { tempDir } from '../helpers/engine';
import { BlockStore, RollupStore, type SliceSummary } from '../../storage';
import { ROUTE_HEAD, ShardState } from '../../workers/shard-state';
import { fleetSeries, distinctDevices } from '../../workers/block-queries';
import { SealedSummaries, summaryBytes } from '../../workers/sealed-summaries';

const MIN = 60_000;
const T0 = 1_700_000_400_000 - (1_700_000_400_000 % (60 * MIN));

/** a summary of one metric over `devices` device bits */
function summaryOf(start: number, devices: number): SliceSummary {
  const w = { start, end: start + MIN, count: 1, sum: 1, min: 1, max: 1, last: 1, lastTs: start, histogram: [1], under: 0, over: 0, means: [1], weights: [1] };
  return {
    sliceStart: start, sliceMs: MIN, paneMs: MIN,
    metrics: [{ metric: 0, devices, slice: w, panes: [w], sliceBits: new Uint8Array(devices >>> 3), paneBits: [new Uint8Array(devices >>> 3)] }],
  } as unknown as SliceSummary;
}

t.test('least recently used out past the bound; dropBefore forgets older slices; a summary over the bound is not kept', async (t) => {
  const one = summaryBytes(summaryOf(0, 8000));
  const cache = new SealedSummaries(3 * one + 10);
  for (let k = 0; k < 3; k++) cache.put(k * MIN, summaryOf(k * MIN, 8000), true);
  t.equal(cache.entries, 3);
  t.ok(cache.get(0) !== undefined, 'slice 0 used: now the most recent');
  cache.put(3 * MIN, summaryOf(3 * MIN, 8000));
  t.equal(cache.entries, 3, 'one out');
  t.equal(cache.get(MIN), undefined, 'the least recently used (slice 1) went');
  t.ok(cache.get(0) !== undefined && cache.get(2 * MIN) !== undefined && cache.get(3 * MIN) !== undefined);
  t.equal(cache.bytes, 3 * one);
  cache.put(2 * MIN, summaryOf(2 * MIN, 8000));
  t.equal(cache.entries, 3, 'a slice put again replaces its entry');
  cache.dropBefore(3 * MIN);
  t.same([cache.get(0), cache.get(2 * MIN)], [undefined, undefined], 'older than the cutoff: gone');
  t.equal(cache.entries, 1);
  t.equal(cache.bytes, one);
  cache.put(9 * MIN, summaryOf(9 * MIN, 8 * 1000 * 1000));
  t.equal(cache.get(9 * MIN), undefined, 'larger than the whole bound: not kept');
  t.match(cache.counters, { sealed: 3, evicted: 1 });
});

t.test('queries answer the same from the summaries the sealer put and from the stored ones decoded', async (t) => {
  const dir = tempDir('sluice-summaries-');
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  const fatal: Error[] = [];
  t.teardown(async () => {
    await blocks.close();
    await rollups.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const state = new ShardState({
    shard: 0, paneMs: 10_000, latenessMs: 5 * MIN, lateHorizonMs: 24 * 60 * MIN, resolutions: [10_000, MIN, 60 * MIN],
    histogram: { divisions: 10, min: 0, max: 100 }, lateLogSize: 100,
  }, blocks, rollups, (e) => fatal.push(e));
  const DEVICES = 500;
  for (let d = 0; d < DEVICES; d++) state.series.defineDevice(d, `d${d}`);
  state.series.defineMetric(0, 'cpu');
  let routed = 0;
  for (let m = 0; m < 12; m++) {
    for (let d = 0; d < DEVICES; d++) {
      if (m % 3 === 1 && d % 2 === 0) continue; // some minutes without half the devices
      const ts = T0 + m * MIN + (d % 60) * 1000;
      if (state.route(ts) === ROUTE_HEAD) routed++;
      state.apply(state.series.seriesOf(d, 0), ts, (d * 7 + m) % 100);
    }
    state.afterRecord(m + 1);
  }
  await state.pending;
  t.ok(routed > 0 && fatal.length === 0);
  t.ok(state.summaries.counters.sealed >= 5, `the sealer put the summaries it wrote (${state.summaries.counters.sealed})`);
  const task = { kind: 'fleetSeries' as const, metric: 'cpu', from: T0, to: T0 + 6 * MIN, resolutionMs: MIN };
  const distinct = { kind: 'distinctDevices' as const, metrics: ['cpu'], from: T0 + MIN, to: T0 + 2 * MIN, resolutionMs: MIN };
  const missesBefore = state.summaries.counters.misses;
  const fromSealer = fleetSeries(state, task);
  const devicesFromSealer = distinctDevices(state, distinct);
  t.equal(state.summaries.counters.misses, missesBefore, 'no summary decoded: all from the sealer');
  t.equal(fromSealer.windows.length, 6);
  t.equal(fromSealer.windows.reduce((n, w) => n + w.count, 0), 4 * DEVICES + 2 * DEVICES / 2);
  t.equal(devicesFromSealer.devices, DEVICES / 2, 'minute 1: half the devices');
  state.summaries.dropBefore(Infinity);
  const decoded = fleetSeries(state, task);
  t.ok(state.summaries.counters.misses > missesBefore, 'decoded from storage this time');
  t.same(decoded, fromSealer, 'the same windows, devices and digests');
  t.same(distinctDevices(state, distinct), devicesFromSealer);
  const hits = state.summaries.counters.hits;
  t.same(fleetSeries(state, task), fromSealer, 'and again from the decoded ones, now kept');
  t.ok(state.summaries.counters.hits > hits);
});
