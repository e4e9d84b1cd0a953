/**
 * The LMDB environment under the data dir, and every database Sluice keeps in it.
 *
 * Contract: opened once, by the front-end thread (the shard workers open their own handles on the
 * same environment for their blocks and checkpoints: openEnvironment, block-store.ts and
 * checkpoint-store.ts). Writes are lmdb-js async puts: every put issued in one event-loop turn
 * commits in one transaction (group commit), and with overlappingSync off a put's promise resolves only once its
 * transaction is flushed to disk, so "resolved" means durable.
 *
 * Databases: meta (format version, shard count), wal (seq -> WAL entry bytes), dict (device and
 * metric names by id: ['m', id] -> name; ['d', a] -> the names of device ids a, a + 1, ... joined
 * by newlines (a run); ['D', k] -> device ids [k x NAME_CHUNK, (k + 1) x NAME_CHUNK), which
 * replaces its runs once full), devseq (device id -> last admitted device sequence), checkpoints and ckgroups
 * (storage/checkpoint-store.ts). lmdb-js grows its map on demand, so --max-db-size is enforced by a budget of
 * the bytes Sluice keeps (see StorageBudget), not by LMDB.
 */

import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CheckpointStore } from './checkpoint-store';
import { TokenStore } from './token-store';

/**
 * 2: checkpoints split into a base and pane-number groups; 3: sealed slices in blocks
 * (storage/block-store.ts), checkpoints of the head's readings (workers/checkpoint.ts)
 */
export const STORAGE_FORMAT = 3;

/**
 * Named databases the environment may hold. lmdb-js opens one environment per path and process
 * and the first open sets this, so every open of the data dir's environment passes the same
 * value: the front-end's databases, the rollups, and blocks of 64 shards x 8 resolutions.
 */
export const LMDB_DBS_MAX = 1024;

export class StorageError extends Error {}

/**
 * Another handle on the data dir's environment (lmdb-js shares one environment per path and
 * process across threads), with the options every open of it passes: the shard workers' and the
 * stores' other than Store's own.
 */
export function openEnvironment(dataDir: string): RootDatabase {
  return open({ path: path.join(dataDir, 'lmdb'), maxDbs: LMDB_DBS_MAX, overlappingSync: false });
}

/**
 * Device names per chunk key. Loading 1M names from single keys took ~4 s here (a key decode and
 * an object per name); from chunks it is one split per 4,096 names.
 */
export const NAME_CHUNK = 4096;

export interface StoredName {
  id: number;
  name: string;
}

/**
 * Device names by id as the store reads them to persist runs: how many there are and a run of
 * them '\n'-joined (engine/device-names.ts; namesOf() for a plain array).
 */
export interface JoinedNames {
  readonly count: number;
  joined(from: number, to: number): string;
}

/** A plain array of names as JoinedNames. */
export function namesOf(names: readonly string[]): JoinedNames {
  return {
    get count() {
      return names.length;
    },
    joined: (from, to) => names.slice(from, to).join('\n'),
  };
}

/** A stored run of device names: ids first, first + 1, ... '\n'-joined; chunk: a full chunk key. */
export interface StoredNameRun {
  first: number;
  text: string;
  chunk: boolean;
}

export class Store {
  /** the first device id noted and not yet written (-1: none), and the names by id it reads */
  private namesFrom = -1;
  private names: JoinedNames | null = null;
  /** the starts of the name runs this process wrote since their chunk filled (putDeviceNameChunk removes them) */
  private runStarts: number[] = [];

  private constructor(
    readonly dir: string,
    private readonly root: RootDatabase,
    readonly meta: Database<unknown, string>,
    readonly wal: Database<Buffer, number>,
    readonly dict: Database<string, [string, number]>,
    readonly devseq: Database<number, number>,
    /** read at start-up; each shard worker writes its own (CheckpointStore.open) */
    readonly checkpoints: CheckpointStore,
    /** API tokens (issue #13, storage/token-store.ts) */
    readonly tokens: TokenStore,
  ) {}

  /** Opens (or creates) the store; refuses a data dir written in another format. */
  static open(dataDir: string): Store {
    const dir = path.join(dataDir, 'lmdb');
    fs.mkdirSync(dir, { recursive: true });
    let root: RootDatabase;
    try {
      root = open({ path: dir, maxDbs: LMDB_DBS_MAX, overlappingSync: false, encoding: 'msgpack' });
    } catch (e) {
      throw new StorageError(`cannot open the LMDB environment in ${dir}: ${(e as Error).message}`);
    }
    const meta = root.openDB<unknown, string>('meta', {});
    const format = meta.get('format');
    if (format === undefined) {
      meta.putSync('format', STORAGE_FORMAT);
    } else if (format !== STORAGE_FORMAT) {
      void root.close();
      throw new StorageError(`the data dir ${dataDir} holds storage format ${JSON.stringify(format)}; this Sluice reads format ${STORAGE_FORMAT} only. ` +
        'Use a Sluice version that matches, or another --data-dir.');
    }
    return new Store(dir, root, meta,
      root.openDB<Buffer, number>('wal', { encoding: 'binary' }),
      root.openDB<string, [string, number]>('dict', { encoding: 'string' }),
      root.openDB<number, number>('devseq', { encoding: 'msgpack' }),
      // created here, before any worker opens them (see checkpoint-store.ts)
      CheckpointStore.on(root),
      TokenStore.on(root));
  }

  getMeta<T>(key: string): T | undefined {
    return this.meta.get(key) as T | undefined;
  }

  putMetaSync(key: string, value: unknown): void {
    this.meta.putSync(key, value);
  }

  /** Appends a WAL entry; resolves when durable. Same-turn puts share one transaction. */
  appendWal(seq: number, entry: Uint8Array): Promise<boolean> {
    return this.wal.put(seq, entry as Buffer);
  }

  walCount(): number {
    return this.wal.getCount();
  }

  /** WAL entries with seq > after, in order. Values are copies, safe to keep. */
  *walAfter(after: number): Generator<{ seq: number; entry: Buffer }> {
    for (const { key, value } of this.wal.getRange({ start: after + 1 })) yield { seq: key, entry: Buffer.from(value) };
  }

  /** Deletes WAL entries with seq <= upTo, at most `limit` of them; returns how many. */
  async truncateWal(upTo: number, limit: number): Promise<number> {
    const keys: number[] = [];
    for (const key of this.wal.getKeys({ end: upTo + 1, limit })) keys.push(key);
    if (keys.length === 0) return 0;
    await this.wal.batch(() => {
      for (const k of keys) void this.wal.remove(k);
    });
    return keys.length;
  }

  putMetricName(id: number, name: string): void {
    void this.dict.put(['m', id], name);
  }

  /**
   * A device named for the first time (names: every device name by id, this one among them).
   * Its name is written by the next flushDeviceNames(), which the commit pipeline calls just
   * before each WAL entry (the same transaction: a durable entry's names are durable): one key
   * per run of new ids, not one put per device (100k new devices in a second were ~100k puts
   * on the front-end thread).
   */
  noteNewDeviceName(id: number, names: JoinedNames): void {
    if (this.namesFrom < 0 || id < this.namesFrom) this.namesFrom = id;
    this.names = names;
  }

  /**
   * Writes the device names noted since the last flush: ['d', a] -> the names of ids a, a + 1, ...
   * joined by newlines (device names never hold one: [A-Za-z0-9_.:-]), split at chunk bounds;
   * a run that completes a chunk also writes the chunk (putDeviceNameChunk).
   */
  flushDeviceNames(): void {
    const names = this.names;
    if (this.namesFrom < 0 || names === null) return;
    for (let a = this.namesFrom; a < names.count;) {
      const chunkEnd = (Math.floor(a / NAME_CHUNK) + 1) * NAME_CHUNK;
      const b = Math.min(names.count, chunkEnd);
      void this.dict.put(['d', a], names.joined(a, b));
      this.runStarts.push(a);
      if (b === chunkEnd) this.putDeviceNameChunk(chunkEnd / NAME_CHUNK - 1, names);
      a = b;
    }
    this.namesFrom = -1;
  }

  /**
   * Stores the names of device ids [k x NAME_CHUNK, (k + 1) x NAME_CHUNK) as one key, then
   * removes the run keys this process wrote inside it (runs never cross a chunk bound). The
   * writes commit in the order issued, so a durable removal implies a durable chunk.
   */
  putDeviceNameChunk(k: number, names: JoinedNames): void {
    if (names.count < (k + 1) * NAME_CHUNK) throw new RangeError(`name chunk ${k} holds ids up to ${(k + 1) * NAME_CHUNK - 1}: only ${names.count} names are known`);
    void this.dict.put(['D', k], names.joined(k * NAME_CHUNK, (k + 1) * NAME_CHUNK));
    const from = k * NAME_CHUNK;
    const kept: number[] = [];
    for (const a of this.runStarts) {
      if (a >= from && a < from + NAME_CHUNK) void this.dict.remove(['d', a]);
      else kept.push(a);
    }
    this.runStarts = kept;
  }

  /** Every device name again, as flushDeviceNames writes new ones: full chunks, then a run (after a storage fault). */
  putAllDeviceNames(names: JoinedNames): void {
    this.namesFrom = 0;
    this.names = names;
    this.flushDeviceNames();
  }

  /** The stored metric names, in id order. */
  loadMetricNames(): StoredName[] {
    const out: StoredName[] = [];
    for (const { key, value } of this.dict.getRange({ start: ['m', 0], end: ['m', Number.MAX_SAFE_INTEGER] })) out.push({ id: key[1], name: value });
    return out;
  }

  /**
   * The stored runs of device names, chunks and runs as stored (one string per run, not per
   * name: recovery puts them into the dictionary's arena whole). A run a crash left beside its
   * chunk overlaps the chunk; a data dir of an earlier Sluice has one key per name (a run of one).
   */
  loadDeviceNameRuns(): StoredNameRun[] {
    const out: StoredNameRun[] = [];
    for (const { key, value } of this.dict.getRange({ start: ['D', 0], end: ['D', Number.MAX_SAFE_INTEGER] })) {
      out.push({ first: key[1] * NAME_CHUNK, text: value, chunk: true });
    }
    for (const { key, value } of this.dict.getRange({ start: ['d', 0], end: ['d', Number.MAX_SAFE_INTEGER] })) {
      out.push({ first: key[1], text: value, chunk: false });
    }
    return out;
  }

  /** The stored device names by id (a hole: no name stored), from their chunks and runs (tests, tools). */
  loadDeviceNames(): (string | undefined)[] {
    const byId: (string | undefined)[] = [];
    const runs = this.loadDeviceNameRuns();
    for (const chunkFirst of [true, false]) {
      for (const r of runs) {
        if (r.chunk !== chunkFirst) continue;
        const names = r.text.split('\n');
        for (let i = 0; i < names.length; i++) byId[r.first + i] ??= names[i];
      }
    }
    return byId;
  }

  putDeviceSeq(deviceId: number, seq: number): void {
    void this.devseq.put(deviceId, seq);
  }

  loadDeviceSeqs(): { id: number; seq: number }[] {
    const out: { id: number; seq: number }[] = [];
    for (const { key, value } of this.devseq.getRange({})) out.push({ id: key, seq: value });
    return out;
  }

  /** A tiny durable write, to learn whether storage takes writes again after a fault. */
  probe(): Promise<boolean> {
    return this.meta.put('probe', Date.now());
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
