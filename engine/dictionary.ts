/**
 * The front-end's dictionary: deviceIds and metric names interned to small integers, each device's
 * shard (a stable hash of its id), and which names each shard has already been sent. Device names
 * live in DeviceNames (bytes, no string per device); metric names, a few dozen, in a Map.
 *
 * Runs on the front-end thread only. Ids are dense from 0 in order of first sight. A name is sent
 * to a shard as a DEFINE record in the same ring as its first use, so the announce state has three
 * values: not sent, staged in the batch being built (undone if the batch is refused), sent.
 */

import type { StoredNameRun } from '../storage';
import { DeviceNames } from './device-names';

export const NOT_SENT = 0;
export const STAGED = 2;
export const SENT = 1;

/** FNV-1a over UTF-16 code units: stable across runs and machines, so routing is too. */
export function deviceHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function shardOfDevice(deviceId: string, shards: number): number {
  return deviceHash(deviceId) % shards;
}

function countNames(text: string): number {
  if (text === '') return 0;
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function grown(a: Uint8Array<ArrayBuffer>, need: number): Uint8Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Uint8Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

export class Dictionary {
  /** device names by id (the store persists runs of them: JoinedNames) */
  readonly devices = new DeviceNames();
  private deviceShard = new Int32Array(1024);
  deviceState: Uint8Array<ArrayBuffer> = new Uint8Array(1024);
  private readonly metricIds = new Map<string, number>();
  readonly metricNames: string[] = [];
  /** per shard, by metric id */
  metricState: Uint8Array<ArrayBuffer>[];

  constructor(readonly shards: number, readonly devicesMax: number) {
    this.metricState = [];
    for (let s = 0; s < shards; s++) this.metricState.push(new Uint8Array(256));
  }

  get deviceCount(): number {
    return this.devices.count;
  }

  /** The name of a device id (a new string: for a new device's DEFINE, answers, logs). */
  deviceName(id: number): string {
    return this.devices.name(id);
  }

  /** The device's id, interning it on first sight; -1 when devicesMax is reached. */
  device(name: string): number {
    const id = this.devices.lookup(name);
    if (id >= 0) return id;
    const n = this.devices.count;
    if (n >= this.devicesMax) return -1;
    this.devices.add(name);
    this.placed(n, name);
    if (this.onNewDevice !== null) this.onNewDevice(n, name);
    return n;
  }

  /** A new id's shard and announce state. */
  private placed(n: number, name: string): void {
    if (n >= this.deviceShard.length) {
      const next = new Int32Array(this.deviceShard.length * 2);
      next.set(this.deviceShard);
      this.deviceShard = next;
    }
    this.deviceShard[n] = shardOfDevice(name, this.shards);
    this.deviceState = grown(this.deviceState, n + 1);
  }

  /** Called with each name interned for the first time (the server persists them). */
  onNewDevice: ((id: number, name: string) => void) | null = null;
  onNewMetric: ((id: number, name: string) => void) | null = null;

  /**
   * Loads the names a previous run persisted, under the same ids, from their stored runs (no
   * string per name: each run's bytes go into DeviceNames whole). Returns the ids that had no
   * stored name (a name write lost in a storage fault): they get a placeholder the caller logs.
   */
  restore(runs: readonly StoredNameRun[], metrics: { id: number; name: string }[]): number[] {
    const missing: number[] = [];
    let total = 0;
    for (const r of runs) total = Math.max(total, r.first + countNames(r.text));
    // sized once: 1M devices grew these ~20 times each
    if (total > this.deviceShard.length) {
      const shard = new Int32Array(total);
      shard.set(this.deviceShard);
      this.deviceShard = shard;
    }
    this.deviceState = grown(this.deviceState, total);
    // in id order; a full chunk before a run that starts at the same id (the chunk wins)
    const ordered = [...runs].sort((a, b) => a.first - b.first || Number(b.chunk) - Number(a.chunk));
    for (const r of ordered) {
      let next = this.devices.count;
      while (next < r.first) {
        missing.push(next);
        this.devices.add(`unknown-device-${next}`);
        next++;
      }
      // names before `next` are there already (a run beside its chunk): skip them
      let text = r.text;
      for (let skip = next - r.first; skip > 0 && text !== ''; skip--) {
        const nl = text.indexOf('\n');
        text = nl < 0 ? '' : text.slice(nl + 1);
      }
      this.devices.addJoined(text);
    }
    const shards = this.shards;
    const hashes = this.devices;
    for (let id = 0; id < hashes.count; id++) this.deviceShard[id] = hashes.hash(id) % shards;
    metrics.sort((a, b) => a.id - b.id);
    for (const m of metrics) {
      while (this.metricNames.length < m.id) this.metric(`unknown.metric.${this.metricNames.length}`);
      this.metric(m.name);
    }
    return missing;
  }

  lookupDevice(name: string): number {
    return this.devices.lookup(name);
  }

  shardOf(deviceId: number): number {
    return this.deviceShard[deviceId];
  }

  /** The metric's id, or -1 when no event has named it. */
  lookupMetric(name: string): number {
    return this.metricIds.get(name) ?? -1;
  }

  metric(name: string): number {
    const id = this.metricIds.get(name);
    if (id !== undefined) return id;
    const n = this.metricNames.length;
    this.metricIds.set(name, n);
    this.metricNames.push(name);
    for (let s = 0; s < this.shards; s++) this.metricState[s] = grown(this.metricState[s], n + 1);
    if (this.onNewMetric !== null) this.onNewMetric(n, name);
    return n;
  }
}
