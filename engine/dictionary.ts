/**
 * The front-end's dictionary: deviceIds and metric names interned to small integers, each device's
 * shard (a stable hash of its id), and which names each shard has already been sent.
 *
 * Runs on the front-end thread only. Ids are dense from 0 in order of first sight. A name is sent
 * to a shard as a DEFINE record in the same ring as its first use, so the announce state has three
 * values: not sent, staged in the batch being built (undone if the batch is refused), sent.
 */

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

function grown(a: Uint8Array<ArrayBuffer>, need: number): Uint8Array<ArrayBuffer> {
  if (need <= a.length) return a;
  const b = new Uint8Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

export class Dictionary {
  private readonly deviceIds = new Map<string, number>();
  readonly deviceNames: string[] = [];
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
    return this.deviceNames.length;
  }

  /** The device's id, interning it on first sight; -1 when devicesMax is reached. */
  device(name: string): number {
    const id = this.deviceIds.get(name);
    if (id !== undefined) return id;
    const n = this.deviceNames.length;
    if (n >= this.devicesMax) return -1;
    this.deviceIds.set(name, n);
    this.deviceNames.push(name);
    if (n >= this.deviceShard.length) {
      const next = new Int32Array(this.deviceShard.length * 2);
      next.set(this.deviceShard);
      this.deviceShard = next;
    }
    this.deviceShard[n] = shardOfDevice(name, this.shards);
    this.deviceState = grown(this.deviceState, n + 1);
    if (this.onNewDevice !== null) this.onNewDevice(n, name);
    return n;
  }

  /** Called with each name interned for the first time (the server persists them). */
  onNewDevice: ((id: number, name: string) => void) | null = null;
  onNewMetric: ((id: number, name: string) => void) | null = null;

  /**
   * Loads the names a previous run persisted, under the same ids. Returns the ids that had no
   * stored name (a name write lost in a storage fault): they get a placeholder the caller logs.
   */
  restore(devices: readonly (string | undefined)[], metrics: { id: number; name: string }[]): number[] {
    const missing: number[] = [];
    // sized once: 1M devices grew these ~20 times each
    if (devices.length > this.deviceShard.length) {
      const shard = new Int32Array(devices.length);
      shard.set(this.deviceShard);
      this.deviceShard = shard;
    }
    this.deviceState = grown(this.deviceState, devices.length);
    for (let id = 0; id < devices.length; id++) {
      const name = devices[id];
      if (name === undefined) missing.push(id);
      this.device(name ?? `unknown-device-${id}`);
    }
    metrics.sort((a, b) => a.id - b.id);
    for (const m of metrics) {
      while (this.metricNames.length < m.id) this.metric(`unknown.metric.${this.metricNames.length}`);
      this.metric(m.name);
    }
    return missing;
  }

  lookupDevice(name: string): number {
    return this.deviceIds.get(name) ?? -1;
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
