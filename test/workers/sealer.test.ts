/**
 * workers/sealer.ts: seals run in steps, queued in slice order; a slice stays readable in the
 * head until its blocks are committed; a correction written while seals are queued goes after
 * them, so every seal still appends its keys after the newest key (MDB_APPEND: a delta key of the
 * slice under way, written between two of its steps, made the next chunk's append fail in the
 * block-queries test of a full run). Real LMDB in a temp dir.
 */

import fs from 'node:fs';
import t from 'tap';
import { tempDir } from '../helpers/engine';
import { BlockStore, RollupStore } from '../../storage';
import { ROUTE_CORRECTION, ROUTE_HEAD, ShardState } from '../../workers/shard-state';
import { deviceSeries } from '../../workers/block-queries';

const MIN = 60_000;
const T0 = 1_700_000_400_000 - (1_700_000_400_000 % (60 * MIN));

/** enough series (one per chunk) that a seal runs several steps of STEP_MS */
const DEVICES = 3000;

function open(devices = 3): { state: ShardState; fatal: Error[]; close(): Promise<void> } {
  const dir = tempDir('sluice-sealer-');
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  const fatal: Error[] = [];
  const state = new ShardState({
    shard: 0, paneMs: 10_000, latenessMs: 5 * MIN, lateHorizonMs: 24 * 60 * MIN, resolutions: [10_000, MIN, 60 * MIN],
    histogram: { divisions: 10, min: 0, max: 100 }, lateLogSize: 100, chunkSeries: 1,
  }, blocks, rollups, (e) => fatal.push(e));
  for (let d = 0; d < devices; d++) state.series.defineDevice(d, `d${d}`);
  state.series.defineMetric(0, 'cpu');
  return {
    state, fatal,
    close: async () => {
      await blocks.close();
      await rollups.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

t.test('a correction for a slice being sealed is written after its seal (keys in append order)', async (t) => {
  const { state, fatal, close } = open(DEVICES);
  t.teardown(close);
  let readings = 0;
  // two slices of DEVICES devices (one chunk each: chunkSeries 1, so a seal takes several steps),
  // then a reading minutes on: both slices are due at once
  let notHead = 0;
  for (let slice = 0; slice < 2; slice++) {
    for (let d = 0; d < DEVICES; d++) {
      const ts = T0 + slice * MIN + (d % 50) * 1000;
      if (state.route(ts) !== ROUTE_HEAD) notHead++;
      state.apply(state.series.seriesOf(d, 0), ts, (slice * 10 + d) % 100);
      readings++;
    }
  }
  t.equal(notHead, 0, 'every reading of the two slices went to the head');
  state.apply(state.series.seriesOf(0, 0), T0 + 10 * MIN, 1);
  readings++;
  state.afterRecord(1);
  t.equal(state.sealer.sealing, 2, 'two slices queued for sealing');
  // let the first seal run a step or more, then correct a slice whose seal is under way
  for (let i = 0; i < 50 && state.sealer.counters.chunks === 0; i++) await new Promise((r) => setImmediate(r));
  const started = state.sealer.counters.chunks;
  t.ok(started > 0 && started < DEVICES && state.sealer.sealing === 2, `the first seal is under way (${started} chunks of ${DEVICES} encoded)`);
  for (const late of [T0 + 45_000, T0 + MIN + 30_000]) {
    t.equal(state.route(late), ROUTE_CORRECTION, 'sealed for routing while its seal runs');
    state.correct(state.series.seriesOf(7, 0), late, 99);
    readings++;
  }
  state.afterRecord(2);
  await state.pending;
  t.same(fatal.map((e) => e.message), [], 'no seal failed (its keys were appended in order)');
  t.equal(state.sealer.sealing, 0, 'every queued seal finished');
  t.equal(state.head.openSliceCount, 1, 'only the newest slice is left in the head');
  let counted = 0;
  for (let d = 0; d < DEVICES; d++) {
    const r = deviceSeries(state, { kind: 'deviceSeries', deviceId: `d${d}`, metric: 'cpu', from: T0, to: T0 + 11 * MIN, resolutionMs: MIN });
    counted += r.windows.reduce((n, w) => n + w.count, 0);
  }
  t.equal(counted, readings, 'every reading counted once: the sealed slices, the corrections and the head');
});

t.test('a slice being sealed is read from the head until its blocks are committed, then from its blocks', async (t) => {
  const { state, fatal, close } = open();
  t.teardown(close);
  for (let d = 0; d < 3; d++) state.apply(state.series.seriesOf(d, 0), T0 + 1000 * (d + 1), 50 + d);
  state.apply(state.series.seriesOf(0, 0), T0 + 3 * MIN, 1);
  state.afterRecord(1);
  t.ok(state.sealer.sealing > 0 && state.head.isOpen(T0 / MIN), 'queued and still open in the head');
  const query = (): number => deviceSeries(state, { kind: 'deviceSeries', deviceId: 'd1', metric: 'cpu', from: T0, to: T0 + MIN, resolutionMs: MIN })
    .windows.reduce((n, w) => n + w.count, 0);
  await state.queryPending;
  t.ok(state.sealer.sealing > 0 && state.sealer.counters.chunks > 0, 'the query runs while the seal is under way (blocks appended, not committed)');
  t.equal(query(), 1, 'while sealing: once, from the head');
  await state.pending;
  t.notOk(state.head.isOpen(T0 / MIN), 'dropped from the head once committed');
  t.equal(query(), 1, 'after: once, from its blocks');
  t.same(fatal, []);
});
