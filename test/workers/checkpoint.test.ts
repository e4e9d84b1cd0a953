import t, { type Test } from 'tap';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { CHECKPOINT_HEADER_BYTES, writeCheckpointHeader, type CheckpointGroup } from '../../protocol';
import { BlockStore, RollupStore } from '../../storage';
import { SeriesCheckpoints, ShardCheckpoints, decodeCheckpoint, decodeSeriesGroups } from '../../workers/checkpoint';
import { SeriesTable, type LegacySeriesRows, type SeriesRows } from '../../workers/series-table';
import { ShardState } from '../../workers/shard-state';
import { assertProperty } from '../helpers/property';
import { rng } from '../helpers/rng';
import { tempDir } from '../helpers/engine';

/** The stored checkpoint as storage/checkpoint-store.ts write keeps it: put the groups, delete the ids not live. */
class Stored {
  readonly groups = new Map<number, Uint8Array>();

  write(groups: readonly CheckpointGroup[], live: readonly number[]): void {
    for (const g of groups) this.groups.set(g.paneNo, g.bytes);
    const keep = new Set(live);
    for (const id of [...this.groups.keys()]) if (!keep.has(id)) this.groups.delete(id);
  }

  list(): CheckpointGroup[] {
    return [...this.groups].map(([paneNo, bytes]) => ({ paneNo, bytes }));
  }
}

/** Adds `n` series: new devices (and now and then a new metric or a device without a series). */
function grow(table: SeriesTable, n: number, random: () => number): void {
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.05) table.defineMetric(table.metricIdList().length, `m.${table.metricIdList().length}`);
    const metrics = table.metricIdList();
    if (metrics.length === 0) table.defineMetric(0, 'cpu');
    const metric = Math.floor(random() * table.metricIdList().length);
    // mostly a new device; sometimes an existing one (ids 1, 4, 7, ...) with another metric
    const existing = r >= 0.7 && table.deviceCount > 0;
    const device = existing ? 1 + 3 * Math.floor(random() * table.deviceCount) : table.deviceCount * 3 + 1;
    if (!existing) table.defineDevice(device, `dev-${device}`);
    if (r > 0.97) table.defineDevice(table.deviceCount * 3 + 1, `idle-${table.deviceCount}`); // a name, no series yet
    table.seriesOf(device, metric);
  }
}

function sameTable(t: Test, got: SeriesTable, want: SeriesTable, label: string): void {
  let diff = '';
  if (got.seriesCount !== want.seriesCount) diff = `series ${got.seriesCount} != ${want.seriesCount}`;
  else if (got.deviceCount !== want.deviceCount) diff = `devices ${got.deviceCount} != ${want.deviceCount}`;
  else if (got.metricIdList().length !== want.metricIdList().length) diff = 'metrics differ';
  for (let s = 0; diff === '' && s < want.seriesCount; s++) {
    if (got.seriesDevice(s) !== want.seriesDevice(s) || got.seriesMetric(s) !== want.seriesMetric(s)) diff = `series ${s} differs`;
  }
  for (const m of want.metricIdList()) if (diff === '' && got.metricName(m) !== want.metricName(m)) diff = `metric ${m} differs`;
  if (diff === '' && got.sortedDeviceNames().join() !== want.sortedDeviceNames().join()) diff = 'device names differ';
  for (const name of want.sortedDeviceNames()) if (diff === '' && got.deviceIdOf(name) !== want.deviceIdOf(name)) diff = `device ${name} differs`;
  if (diff !== '') t.fail(`${label}: ${diff}`);
  else t.pass(label);
}

/** Restores a stored copy into a fresh table (markEvery as the live one's) with its checkpointer resumed. */
function restoreSeries(stored: Stored, markEvery: number, groupRows: number): { table: SeriesTable; cp: SeriesCheckpoints } {
  const table = new SeriesTable(undefined, markEvery);
  for (const rows of decodeSeriesGroups(stored.list(), 0)) table.restore(rows);
  const cp = new SeriesCheckpoints(groupRows);
  cp.resume(table, stored.list().map((g) => g.paneNo));
  return { table, cp };
}

/** rows (series + names) in a packed group */
function groupRowsOf(g: CheckpointGroup): number {
  const r = decodeSeriesGroups([g], 0)[0] as SeriesRows;
  return r.device.length + r.deviceNames.ids.length + r.metricNames.ids.length;
}

t.test('many takes with merges restore the table; every take is bounded, the live groups too', async (t) => {
  const random = rng(11);
  const groupRows = 64;
  const table = new SeriesTable(undefined, 8);
  const cp = new SeriesCheckpoints(groupRows);
  const stored = new Stored();
  let before = table.rowMark();
  for (let take = 0; take < 400; take++) {
    // mostly a few new series, now and then a burst
    grow(table, take % 97 === 5 ? 700 : Math.floor(random() * 6), random);
    const now = table.rowMark();
    const added = now.series - before.series + now.devices - before.devices + now.metrics - before.metrics;
    before = now;
    const groups = cp.take(table, false);
    for (const g of groups) if (g.bytes.buffer.byteLength > g.bytes.byteLength + 2_304) t.fail(`group ${g.paneNo} is a view of a larger buffer`);
    const written = groups.reduce((n, g) => n + groupRowsOf(g), 0);
    if (written > added + groupRows) t.fail(`take ${take} rewrote ${written - added} rows, more than ${groupRows}`);
    stored.write(groups, cp.live());
    const rows = now.series + now.devices + now.metrics;
    if (cp.live().length > rows / groupRows + Math.log2(groupRows) + 2) t.fail(`take ${take}: ${cp.live().length} live groups for ${rows} rows`);
  }
  const small = [...stored.groups.keys()].filter((id) => groupRowsOf({ paneNo: id, bytes: stored.groups.get(id)! }) < groupRows);
  t.ok(small.length <= Math.log2(groupRows) + 1, `${small.length} groups under ${groupRows} rows (the tail), ${stored.groups.size} in all`);
  const back = restoreSeries(stored, 8, groupRows);
  sameTable(t, back.table, table, 'restored after 400 takes');
  // the restored table goes on: the resumed checkpointer merges the groups it found
  grow(back.table, 300, random);
  stored.write(back.cp.take(back.table, false), back.cp.live());
  for (let i = 0; i < 30; i++) {
    grow(back.table, 3, random);
    stored.write(back.cp.take(back.table, false), back.cp.live());
  }
  sameTable(t, restoreSeries(stored, 8, groupRows).table, back.table, 'restored again after takes that merged the resumed groups');
});

t.test('a take with nothing new writes nothing; a take with only names writes them', async (t) => {
  const table = new SeriesTable(undefined, 8);
  const cp = new SeriesCheckpoints(64);
  t.same(cp.take(table, false), [], 'empty table');
  t.same(cp.take(table, true), [], 'empty table, full');
  table.defineMetric(2, 'cpu');
  const g = cp.take(table, false);
  t.equal(g.length, 1);
  const rows = decodeSeriesGroups(g, 0)[0] as SeriesRows;
  t.equal(rows.v, 2);
  t.same([...rows.metricNames.ids], [2]);
  t.equal(rows.device.length, 0);
  t.same(cp.take(table, false), [], 'nothing since');
  t.same(cp.live(), [g[0]!.paneNo]);
});

t.test('a full take rewrites everything with new ids, in groups of about groupRows rows', async (t) => {
  const random = rng(12);
  const groupRows = 100;
  const table = new SeriesTable(undefined, 16);
  const cp = new SeriesCheckpoints(groupRows);
  const stored = new Stored();
  for (let take = 0; take < 50; take++) {
    grow(table, 40, random);
    stored.write(cp.take(table, false), cp.live());
  }
  const before = new Set(stored.groups.keys());
  grow(table, 10, random);
  cp.take(table, false); // a write that failed: not stored
  const full = cp.take(table, true);
  stored.write(full, cp.live());
  t.same(new Set(cp.live()), new Set(full.map((g) => g.paneNo)), 'only the full take\'s groups are live');
  t.ok(full.every((g) => !before.has(g.paneNo)), 'with new ids');
  // a group is cut at a mark once it has groupRows rows: at most a mark's worth of rows (16 series and their names) beyond
  for (const g of full) if (groupRowsOf(g) > groupRows + 16 * 3) t.fail(`group ${g.paneNo} holds ${groupRowsOf(g)} rows`);
  t.ok(full.length >= (table.seriesCount + table.deviceCount) / (groupRows + 48), `${full.length} groups`);
  sameTable(t, restoreSeries(stored, 16, groupRows).table, table, 'restored from the full take');
});

t.test('a take of many new rows cuts them at the table\'s marks; names always precede their series', async (t) => {
  const table = new SeriesTable(undefined, 4);
  const cp = new SeriesCheckpoints(10);
  const stored = new Stored();
  table.defineMetric(0, 'cpu');
  // devices defined well before their series: a cut must carry their names before the series
  for (let d = 0; d < 50; d++) table.defineDevice(d, `early-${d}`);
  for (let d = 0; d < 50; d++) table.seriesOf(49 - d, 0);
  for (let d = 50; d < 90; d++) {
    table.defineDevice(d, `late-${d}`);
    table.seriesOf(d, 0);
    table.seriesOf(d - 50, 0);
  }
  const groups = cp.take(table, false);
  t.ok(groups.length > 5, `${groups.length} groups`);
  stored.write(groups, cp.live());
  sameTable(t, restoreSeries(stored, 4, 10).table, table, 'restored');
});

t.test('restore reads the groups of format 3 (legacy rows) and goes on from them', async (t) => {
  // the previous code's groups: a compaction of everything, then two increments (number arrays, [id, name] pairs)
  const oldPackr = new Packr({ useRecords: false });
  const legacy: LegacySeriesRows[] = [
    { from: 0, pairs: [10, 1, 11, 1, 10, 2], devices: [[10, 'dev-10'], [11, 'dev-11']], metrics: [[1, 'cpu'], [2, 'mem']] },
    { from: 3, pairs: [12, 1], devices: [[12, 'dev-12'], [13, 'dev-13']], metrics: [] },
    { from: 4, pairs: [13, 2, 11, 2], devices: [], metrics: [[3, 'temp']] },
  ];
  const stored = new Stored();
  legacy.forEach((rows, i) => stored.groups.set(-(i + 5), oldPackr.pack(rows)));
  const want = new SeriesTable();
  for (const rows of legacy) {
    for (const [id, name] of rows.devices) want.defineDevice(id, name);
    for (const [id, name] of rows.metrics) want.defineMetric(id, name);
    for (let i = 0; i < rows.pairs.length; i += 2) want.seriesOf(rows.pairs[i]!, rows.pairs[i + 1]!);
  }

  // through the whole path: a format 3 base, ShardState.restore, ShardCheckpoints.resume
  const dir = tempDir();
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  t.teardown(() => blocks.close());
  const opts = {
    shard: 0, paneMs: 10_000, latenessMs: 300_000, lateHorizonMs: 300_000, resolutions: [10_000, 60_000], histogram: { divisions: 10, min: 0, max: 100 }, lateLogSize: 100,
  };
  const fresh = new ShardState(opts, blocks, rollups, (err) => { throw err; });
  const body = oldPackr.pack({ format: 3, state: fresh.snapshot(), series: 6, headReadings: 0 });
  const base = new Uint8Array(CHECKPOINT_HEADER_BYTES + body.byteLength);
  writeCheckpointHeader(base, 0, 77);
  base.set(body, CHECKPOINT_HEADER_BYTES);
  const restored = decodeCheckpoint(base, stored.list());
  t.equal(restored.lastSeq, 77);
  const state = new ShardState(opts, blocks, rollups, (err) => { throw err; });
  state.restore(restored);
  sameTable(t, state.series, want, 'legacy groups restore');
  const cps = new ShardCheckpoints(0, 4);
  cps.resume(state, restored.ids);
  // go on: new rows merge with the legacy groups (they are small), the result restores
  state.series.defineDevice(20, 'dev-20');
  state.series.seriesOf(20, 3);
  want.defineDevice(20, 'dev-20');
  want.seriesOf(20, 3);
  let c = cps.take(state, 78, false);
  stored.write(c.groups, c.live);
  // group -5 (7 rows) is final; of the tail -6, -7 (3 rows each), -6 is frozen (the tail stays
  // under 4 rows) and -7 is rewritten with the new rows
  t.ok(c.live.includes(-5) && c.live.includes(-6) && !c.live.includes(-7) && c.live.every((id) => id >= -6 || id < -7), `live ${c.live.join()}`);
  let again = decodeCheckpoint(c.base, stored.list());
  const state2 = new ShardState(opts, blocks, rollups, (err) => { throw err; });
  state2.restore(again);
  sameTable(t, state2.series, want, 'legacy groups merged with new rows restore');
  // a base that records more series than the groups hold is refused
  c = cps.take(state, 79, false);
  const bad = new ShardState(opts, blocks, rollups, (err) => { throw err; });
  again = decodeCheckpoint(c.base, stored.list().filter((g) => g.paneNo !== Math.min(...stored.groups.keys())));
  t.throws(() => bad.restore(again), /restores \d+ series/);
  const future = oldPackr.pack({ format: 99, state: fresh.snapshot(), series: 0, headReadings: 0 });
  const futureBase = new Uint8Array(CHECKPOINT_HEADER_BYTES + future.byteLength);
  writeCheckpointHeader(futureBase, 0, 1);
  futureBase.set(future, CHECKPOINT_HEADER_BYTES);
  t.throws(() => decodeCheckpoint(futureBase, []), /body format 99; this Sluice reads 3 and 4/);
});

t.test('after a restore of many small groups of format 3, a take still rewrites less than groupRows rows', async (t) => {
  const oldPackr = new Packr({ useRecords: false });
  const stored = new Stored();
  const want = new SeriesTable();
  want.defineMetric(0, 'cpu');
  // 20 increments of 3 series (7 rows each with their names; the first also names the metric)
  for (let g = 0; g < 20; g++) {
    const rows: LegacySeriesRows = { from: g * 3, pairs: [], devices: [], metrics: g === 0 ? [[0, 'cpu']] : [] };
    for (let d = g * 3; d < g * 3 + 3; d++) {
      rows.devices.push([d, `dev-${d}`]);
      rows.pairs.push(d, 0);
      want.defineDevice(d, `dev-${d}`);
      want.seriesOf(d, 0);
    }
    stored.groups.set(-(g + 1), oldPackr.pack(rows));
  }
  const groupRows = 16;
  const { table, cp } = restoreSeries(stored, 4096, groupRows);
  sameTable(t, table, want, 'restored');
  table.defineDevice(100, 'dev-100');
  table.seriesOf(100, 0);
  const groups = cp.take(table, false);
  const written = groups.reduce((n, g) => n + groupRowsOf(g), 0);
  t.ok(written - 2 < groupRows, `rewrote ${written - 2} rows`);
  stored.write(groups, cp.live());
  want.defineDevice(100, 'dev-100');
  want.seriesOf(100, 0);
  sameTable(t, restoreSeries(stored, 4096, groupRows).table, want, 'restored after the take');
});

/** a real store in a temp dir and a maker of empty ShardStates on it */
function shardStates(t: Test, shard: number): () => ShardState {
  const dir = tempDir();
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  t.teardown(() => blocks.close());
  const opts = {
    shard, paneMs: 10_000, latenessMs: 300_000, lateHorizonMs: 300_000, resolutions: [10_000, 60_000], histogram: { divisions: 10, min: 0, max: 100 }, lateLogSize: 100,
  };
  return () => new ShardState(opts, blocks, rollups, (err) => { throw err; });
}

t.test('ShardCheckpoints at scale: 20,000 series in two bursts, then small takes; restore after each', async (t) => {
  const newState = shardStates(t, 3);
  const state = newState();
  const cps = new ShardCheckpoints(3, 2_000);
  const stored = new Stored();
  let base: Uint8Array = new Uint8Array(0);
  state.series.defineMetric(0, 'cpu');
  let devices = 0;
  const add = (n: number): void => {
    for (let i = 0; i < n; i++, devices++) {
      state.series.defineDevice(devices, `dev-${String(devices).padStart(6, '0')}`);
      state.series.seriesOf(devices, 0);
    }
  };
  for (const n of [10_000, 10_000, 3, 0, 50, 1, 1, 1, 700, 2]) {
    add(n);
    const c = cps.take(state, devices, false);
    stored.write(c.groups, c.live);
    base = c.base;
    if (c.groups.some((g) => g.paneNo < 0 && groupRowsOf(g) > 2_000 + 4096 * 2)) t.fail('a group over its bound');
  }
  t.ok(stored.groups.size <= 20_800 * 2 / 2_000 + 12, `${stored.groups.size} live groups`);
  const restored = decodeCheckpoint(base, stored.list());
  const back = newState();
  back.restore(restored);
  sameTable(t, back.series, state.series, 'restored');
});

t.test('a cut encoded after the shard moved on (10,000 new series, more readings, a slice dropped) restores the state of the cut', async (t) => {
  const newState = shardStates(t, 1);
  const t0 = 1_700_000_040_000;
  const build = (): ShardState => {
    const st = newState();
    st.series.defineMetric(0, 'cpu');
    return st;
  };
  const add = (st: ShardState, from: number, to: number): void => {
    for (let d = from; d < to; d++) {
      st.series.defineDevice(d, `dev-${d}`);
      const s = st.series.seriesOf(d, 0);
      st.head.append(s, t0 + (d % 120) * 1000, d / 10);
    }
  };
  const live = build();
  const want = build();
  add(live, 0, 5_000);
  add(want, 0, 5_000);
  const cps = new ShardCheckpoints(1, 2_000);
  const pending = cps.cut(live, 42, true);
  // the shard goes on before the copy: its logs reallocate, a slice of the cut is dropped
  t.ok(live.head.drop(Math.floor(t0 / live.head.sliceMs)), 'a slice of the cut dropped (it opens again, new)');
  add(live, 5_000, 15_000);
  const steps = cps.encode(live, pending, true);
  let r = steps.next();
  let n = 0;
  for (; r.done !== true; r = steps.next()) n++;
  t.ok(n >= 3, `encoded in ${n} steps`);
  const restored = decodeCheckpoint(r.value.base, r.value.groups);
  t.equal(restored.lastSeq, 42);
  const back = build();
  back.restore(restored);
  sameTable(t, back.series, want.series, 'the series table of the cut');
  t.equal(back.head.readingsHeld, want.head.readingsHeld, 'the head readings of the cut');
  t.same(back.head.openSlices(), want.head.openSlices());
  const offs = [new Float64Array(16), new Float64Array(16)];
  const vals = [new Float64Array(16), new Float64Array(16)];
  let differ = 0;
  for (const no of want.head.openSlices()) {
    for (let s = 0; s < 5_000; s++) {
      const a = back.head.seriesReadings(no, s, offs[0]!, vals[0]!);
      const b = want.head.seriesReadings(no, s, offs[1]!, vals[1]!);
      if (a !== b || offs[0]!.subarray(0, a).join() !== offs[1]!.subarray(0, b).join() || vals[0]!.subarray(0, a).join() !== vals[1]!.subarray(0, b).join()) differ++;
    }
  }
  t.equal(differ, 0, "every series' readings in every slice as at the cut");
});

t.test('property: random defines, takes, failed writes and restores; a restore always equals the table', async () => {
  type Op = { kind: 'grow'; n: number } | { kind: 'take' } | { kind: 'fail' } | { kind: 'restore' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 40 }).map((n) => ({ kind: 'grow' as const, n })) },
    { weight: 4, arbitrary: fc.constant({ kind: 'take' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'fail' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'restore' as const }) },
  );
  assertProperty(fc.property(
    fc.array(op, { maxLength: 60 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 8 }), fc.integer(),
    (ops, groupRows, markEvery, seed) => {
      const random = rng(seed);
      let table = new SeriesTable(undefined, markEvery);
      let cp = new SeriesCheckpoints(groupRows);
      const stored = new Stored();
      let full = false;
      let lastStored = table.rowMark();
      const check = (label: string): void => {
        const back = restoreSeries(stored, markEvery, groupRows).table;
        if (back.seriesCount !== lastStored.series || back.rowMark().devices !== lastStored.devices || back.rowMark().metrics !== lastStored.metrics) {
          throw new Error(`${label}: restored ${JSON.stringify(back.rowMark())}, stored ${JSON.stringify(lastStored)}`);
        }
        for (let s = 0; s < back.seriesCount; s++) {
          if (back.seriesDevice(s) !== table.seriesDevice(s) || back.seriesMetric(s) !== table.seriesMetric(s)) throw new Error(`${label}: series ${s} differs`);
        }
        for (const name of back.sortedDeviceNames()) if (table.deviceIdOf(name) !== back.deviceIdOf(name)) throw new Error(`${label}: device ${name} differs`);
      };
      for (const o of ops) {
        if (o.kind === 'grow') grow(table, o.n, random);
        else if (o.kind === 'fail') {
          cp.take(table, full);
          full = true; // the engine asks for a full checkpoint after a failed write
        } else if (o.kind === 'take') {
          const now = table.rowMark();
          const groups = cp.take(table, full);
          const rewritten = groups.reduce((n, g) => n + groupRowsOf(g), 0) - (now.series + now.devices + now.metrics - lastStored.series - lastStored.devices - lastStored.metrics);
          if (!full && rewritten >= groupRows) throw new Error(`a take rewrote ${rewritten} rows`);
          stored.write(groups, cp.live());
          full = false;
          lastStored = table.rowMark();
          if (cp.live().length > (lastStored.series + lastStored.devices + lastStored.metrics) / groupRows + Math.log2(groupRows) + 2) {
            throw new Error(`${cp.live().length} live groups`);
          }
          check('after a take');
        } else {
          // kill -9: the stored checkpoint is what there is; rows not stored since are lost with the process
          const back = restoreSeries(stored, markEvery, groupRows);
          check('restore');
          table = back.table;
          cp = back.cp;
          full = false;
        }
      }
    },
  ), 400);
});
