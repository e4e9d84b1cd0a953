/**
 * Shard checkpoints in LMDB: the one owner of their keys. `checkpoints` (shard -> the checkpoint's
 * base: header and tables) and `ckgroups` ([shard, pane number] -> that pane number's part of the
 * checkpoint; see workers/checkpoint.ts).
 *
 * Who calls it: each shard worker writes its own shard's checkpoint from the buffers it encoded it
 * in (the bytes are not posted to the front-end: a structured clone of 10-30 MB a cycle left that
 * much garbage on the front-end's heap); the front-end reads every shard's at start-up and
 * deletes WAL entries only after every shard's write of a cycle has resolved.
 *
 * The databases are created by Store.open on the front-end before any worker starts: opening a
 * database that does not exist takes LMDB's write lock synchronously (see block-store.ts).
 */

import type { Database, RootDatabase } from 'lmdb';
import type { CheckpointGroup, StoredCheckpoint } from '../protocol';
import { openEnvironment } from './store';

export class CheckpointStore {
  private constructor(
    private readonly bases: Database<Buffer, number>,
    private readonly groups: Database<Buffer, [number, number]>,
  ) {}

  /** On an open environment (the front-end's Store). */
  static on(root: RootDatabase): CheckpointStore {
    return new CheckpointStore(
      root.openDB<Buffer, number>('checkpoints', { encoding: 'binary' }),
      root.openDB<Buffer, [number, number]>('ckgroups', { encoding: 'binary' }));
  }

  /** A worker's handle on the data dir's environment (lmdb-js shares it across threads). */
  static open(dataDir: string): CheckpointStore {
    return CheckpointStore.on(openEnvironment(dataDir));
  }

  /** A shard's stored checkpoint: its base and every stored pane group (copies). */
  read(shard: number): StoredCheckpoint | undefined {
    const base = this.bases.get(shard);
    if (base === undefined) return undefined;
    const groups: CheckpointGroup[] = [];
    for (const { key, value } of this.groups.getRange({ start: [shard], end: [shard + 1] })) {
      groups.push({ paneNo: key[1], bytes: Buffer.from(value) });
    }
    return { base: Buffer.from(base), groups };
  }

  /**
   * Stores a shard's checkpoint in one transaction: the base, the changed groups, and deletes the
   * stored groups of pane numbers no longer live (a crash keeps the previous checkpoint whole).
   * Resolves once durable. lmdb-js reads the bytes when the transaction commits: the caller keeps
   * them unchanged until the promise settles.
   */
  write(shard: number, base: Uint8Array, groups: readonly CheckpointGroup[], livePaneNos: readonly number[]): Promise<void> {
    const live = new Set(livePaneNos);
    return this.bases.transaction(() => {
      void this.bases.put(shard, base as Buffer);
      for (const g of groups) void this.groups.put([shard, g.paneNo], g.bytes as Buffer);
      for (const key of this.groups.getKeys({ start: [shard], end: [shard + 1] })) {
        if (!live.has(key[1])) void this.groups.remove(key);
      }
    });
  }

  /** the shards that have a stored checkpoint */
  shards(): number[] {
    return [...this.bases.getKeys({})];
  }
}
