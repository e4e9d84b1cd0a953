import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CheckpointStore, Store } from '../../storage';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ckstore-'));
}

const bytes = (...v: number[]): Uint8Array => Uint8Array.from(v);

t.test('a second handle (as a shard worker opens) writes; the front-end store reads it back after a reopen', async (t) => {
  const dir = tempDir();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let store = Store.open(dir);
  const worker = CheckpointStore.open(dir);
  t.same(store.checkpoints.shards(), [], 'nothing stored yet');
  t.equal(store.checkpoints.read(0), undefined);

  await worker.write(0, bytes(1, 2, 3), [{ paneNo: 10, bytes: bytes(10) }, { paneNo: 11, bytes: bytes(11, 11) }], [10, 11]);
  await worker.write(1, bytes(9), [{ paneNo: 10, bytes: bytes(7) }], [10]);
  // the next cycle: group 12 is new, 11 changed, 10 is no longer live
  const reused = bytes(12, 12, 12);
  await worker.write(0, bytes(4, 5), [{ paneNo: 11, bytes: bytes(21) }, { paneNo: 12, bytes: reused }], [11, 12]);
  // the caller may write its buffers again once the write resolved: the stored bytes stay
  reused.fill(0);
  await store.close();

  store = Store.open(dir);
  t.same(store.checkpoints.shards(), [0, 1]);
  const s0 = store.checkpoints.read(0)!;
  t.same([...s0.base], [4, 5], 'the newest base');
  t.same(s0.groups.map((g) => [g.paneNo, [...g.bytes]]), [[11, [21]], [12, [12, 12, 12]]], 'group 10 deleted, 11 replaced, 12 added');
  const s1 = store.checkpoints.read(1)!;
  t.same(s1.groups.map((g) => [g.paneNo, [...g.bytes]]), [[10, [7]]], "another shard's groups untouched");
  await store.close();
});
