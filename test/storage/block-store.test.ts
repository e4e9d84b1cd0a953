import t from 'tap';
import { BlockStore, SUMMARY_CHUNK } from '../../storage';
import { tempDir } from '../helpers/engine';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
const MIN = 60_000;

t.test('blocks are appended in time order per shard and resolution, read back by range', async (t) => {
  const dir = tempDir();
  const store = BlockStore.open(dir);
  t.teardown(() => store.close());
  const T = 1_700_000_040_000 - (1_700_000_040_000 % MIN);
  for (let m = 0; m < 5; m++) {
    for (let chunk = 0; chunk < 2; chunk++) t.ok(await store.appendBlock(0, 10_000, T + m * MIN, chunk, bytes(m, chunk)));
  }
  await store.appendBlock(1, 10_000, T, 0, bytes(99));
  await store.appendBlock(0, 3_600_000, T, 0, bytes(77));
  t.equal(store.counters.appended, 12, 'every key was the newest of its database: appended');
  t.equal(store.counters.rewritten, 0);
  const got = [...store.blocks(0, 10_000, T + MIN, T + 3 * MIN)].map((b) => [b.start - T, b.chunk, [...b.bytes]]);
  t.same(got, [[MIN, 0, [1, 0]], [MIN, 1, [1, 1]], [2 * MIN, 0, [2, 0]], [2 * MIN, 1, [2, 1]]], '[from, to), chunks of a window together');
  t.same([...store.blocks(1, 10_000, 0, Infinity)].map((b) => [...b.bytes]), [[99]], 'shards do not mix');
  t.same([...store.blocks(0, 3_600_000, 0, Infinity)].map((b) => [...b.bytes]), [[77]], 'resolutions do not mix');
  t.equal(store.newestStart(0, 10_000), T + 4 * MIN);
  t.equal(store.newestStart(2, 10_000), null, 'an empty database');
});

t.test('a window sealed again (a replay after a crash) is rewritten in place; the order holds', async (t) => {
  const dir = tempDir();
  const first = BlockStore.open(dir);
  for (let m = 0; m < 3; m++) await first.appendBlock(0, 10_000, m * MIN, 0, bytes(m));
  await first.close();
  // a new process: the newest key is found in the database, not remembered
  const store = BlockStore.open(dir);
  t.teardown(() => store.close());
  t.equal(store.newestStart(0, 10_000), 2 * MIN);
  await store.appendBlock(0, 10_000, MIN, 0, bytes(1));
  await store.appendBlock(0, 10_000, 2 * MIN, 0, bytes(2));
  t.equal(store.counters.rewritten, 2);
  await store.appendBlock(0, 10_000, 3 * MIN, 0, bytes(3));
  t.equal(store.counters.appended, 1);
  t.same([...store.blocks(0, 10_000, 0, Infinity)].map((b) => [b.start / MIN, [...b.bytes]]), [[0, [0]], [1, [1]], [2, [2]], [3, [3]]]);
});

t.test('retention drops whole windows before a time, in one transaction', async (t) => {
  const store = BlockStore.open(tempDir());
  t.teardown(() => store.close());
  for (let m = 0; m < 10; m++) for (let chunk = 0; chunk < 3; chunk++) await store.appendBlock(0, 10_000, m * MIN, chunk, bytes(m));
  t.equal(await store.dropBefore(0, 10_000, 4 * MIN + 1), 15, 'windows 0-4, all their chunks');
  t.same([...new Set([...store.blocks(0, 10_000, 0, Infinity)].map((b) => b.start / MIN))], [5, 6, 7, 8, 9]);
  t.equal(await store.dropBefore(0, 10_000, 0), 0);
  t.equal(store.block(0, 10_000, 5 * MIN, 2)?.[0], 5);
});

t.test('corrections are delta blocks of their slice: listed in order, not among the chunks, dropped with the slice', async (t) => {
  const store = BlockStore.open(tempDir());
  t.teardown(() => store.close());
  await store.appendBlock(0, 60_000, MIN, 0, bytes(1));
  await store.appendBlock(0, 60_000, MIN, SUMMARY_CHUNK, bytes(9));
  await store.putDelta(0, 60_000, MIN, 7, 0, bytes(70));
  await store.putDelta(0, 60_000, MIN, 5, 1, bytes(51));
  await store.putDelta(0, 60_000, MIN, 7, 0, bytes(71)); // a replay rewrites its key
  t.same(store.deltas(0, 60_000, MIN).map((b) => [...b]), [[51], [71]], 'by batch seq, then record');
  t.same([...store.blocks(0, 60_000, 0, Infinity)].map((b) => b.chunk), [0, SUMMARY_CHUNK], 'chunks and summary only');
  // a slice with corrections only, after the newest sealed one: queries must look as far as it
  await store.putDelta(0, 60_000, 3 * MIN, 8, 0, bytes(80));
  t.equal(store.newestStart(0, 60_000), 3 * MIN);
  t.equal(store.firstStart(0, 60_000, 2 * MIN, 10 * MIN), 3 * MIN);
  await store.appendBlock(0, 60_000, 4 * MIN, 0, bytes(4)); // appended after it
  t.equal(store.counters.appended, 3);
  t.equal(await store.dropBefore(0, 60_000, 3 * MIN + 1), 5, 'the slices before, their deltas included');
  t.same(store.deltas(0, 60_000, MIN), []);
});
