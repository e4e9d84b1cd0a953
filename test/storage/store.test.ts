import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { NAME_CHUNK, Store, namesOf } from '../../storage';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-store-'));
}

/** the dict database's keys of one kind, in order */
function keysOf(store: Store, kind: string): number[] {
  const out: number[] = [];
  for (const key of store.dict.getKeys({ start: [kind, 0], end: [kind, Number.MAX_SAFE_INTEGER] })) out.push(key[1]);
  return out;
}

t.test('device names: a run per flush, split at chunk bounds; full chunks replace their runs; every name loads again', async (t) => {
  const dir = tempDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const names: string[] = [];
  let store = Store.open(dir);
  // flushes as the commit pipeline does them (one per WAL entry), of uneven sizes
  const flushAt = [1, 2, 3, 1000, NAME_CHUNK - 5, NAME_CHUNK + 10, 2 * NAME_CHUNK + 37];
  for (const end of flushAt) {
    while (names.length < end) {
      names.push(`dev-${names.length}:${(names.length * 7919) % 1000}`);
      store.noteNewDeviceName(names.length - 1, namesOf(names));
    }
    store.flushDeviceNames();
  }
  store.flushDeviceNames(); // nothing noted: nothing written
  store.putMetricName(0, 'cpu');
  await store.dict.committed;
  t.same(keysOf(store, 'D'), [0, 1], 'two full chunks');
  t.same(keysOf(store, 'd'), [2 * NAME_CHUNK], 'one run left: the ids past the last chunk');
  await store.close();

  store = Store.open(dir);
  t.same(store.loadDeviceNames(), names, 'each name under its id');
  t.same(store.loadMetricNames(), [{ id: 0, name: 'cpu' }], 'metric names apart');
  await store.close();
});

t.test('device names: one key per name (an earlier data dir) and runs left beside a chunk load once each', async (t) => {
  const dir = tempDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = Store.open(dir);
  const names = Array.from({ length: NAME_CHUNK + 3 }, (_, id) => `d${id}`);
  for (let id = 0; id < names.length; id++) void store.dict.put(['d', id], names[id]!);
  await store.dict.committed;
  t.same(store.loadDeviceNames(), names, 'a key per name');
  void store.dict.put(['D', 0], names.slice(0, NAME_CHUNK).join('\n'));
  await store.dict.committed;
  t.same(store.loadDeviceNames(), names, 'a chunk beside its old keys: no name twice, each under its id');
  store.putAllDeviceNames(namesOf(names));
  await store.dict.committed;
  t.same(keysOf(store, 'd').filter((id) => id >= NAME_CHUNK), [NAME_CHUNK, NAME_CHUNK + 1, NAME_CHUNK + 2],
    'rewritten: the rest as one run (the old keys of the same ids stay beside it)');
  t.same(store.loadDeviceNames(), names);
  t.throws(() => store.putDeviceNameChunk(1, namesOf(names.slice(0, 5))), RangeError, 'a chunk is full or not written');
  await store.close();
});
