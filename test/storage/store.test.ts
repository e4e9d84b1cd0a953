import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { NAME_CHUNK, Store } from '../../storage';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-store-'));
}

/** the dict database's keys of one kind, in order */
function keysOf(store: Store, kind: string): number[] {
  const out: number[] = [];
  for (const key of store.dict.getKeys({ start: [kind, 0], end: [kind, Number.MAX_SAFE_INTEGER] })) out.push(key[1]);
  return out;
}

t.test('device names: full chunks replace their single keys, and every name loads again under its id', async (t) => {
  const dir = tempDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const total = 2 * NAME_CHUNK + 37;
  const names: string[] = [];
  let store = Store.open(dir);
  for (let id = 0; id < total; id++) {
    names.push(`dev-${id}:${(id * 7919) % 1000}`);
    store.putNewDeviceName(id, names);
  }
  store.putMetricName(0, 'cpu');
  await store.dict.committed;
  t.same(keysOf(store, 'D'), [0, 1], 'two full chunks');
  t.same(keysOf(store, 'd'), Array.from({ length: 37 }, (_, i) => 2 * NAME_CHUNK + i), 'the rest as single keys only');
  await store.close();

  store = Store.open(dir);
  t.same(store.loadDeviceNames(), names, 'each name under its id');
  t.same(store.loadMetricNames(), [{ id: 0, name: 'cpu' }], 'metric names apart');
  await store.close();
});

t.test('device names: single keys left beside a chunk (a crash between the chunk and the removals) load once', async (t) => {
  const dir = tempDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = Store.open(dir);
  const names = Array.from({ length: NAME_CHUNK + 3 }, (_, id) => `d${id}`);
  // what an old data dir (single keys only) plus a chunk written later looks like
  for (let id = 0; id < names.length; id++) store.putDeviceName(id, names[id]!);
  await store.dict.committed;
  void store.dict.put(['D', 0], names.slice(0, NAME_CHUNK).join('\n'));
  await store.dict.committed;
  t.same(store.loadDeviceNames(), names, 'no name twice, each under its id');
  store.putAllDeviceNames(names);
  await store.dict.committed;
  t.same(keysOf(store, 'd'), [NAME_CHUNK, NAME_CHUNK + 1, NAME_CHUNK + 2], 'rewritten: the full chunk as a chunk, the rest as single keys');
  t.same(store.loadDeviceNames(), names);
  t.throws(() => store.putDeviceNameChunk(1, names.slice(0, 5)), RangeError, 'a chunk is full or not written');
  await store.close();
});
