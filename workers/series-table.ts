/**
 * The series table of one shard: device and metric names by their global ids, and the series
 * (one per device and metric) by a shard-local index that the head and the sealed blocks use.
 *
 * One owner (the shard worker). The ring consumer defines a name before its id's first use
 * (DEFINE records), then asks seriesOf(device, metric) per reading: a hash lookup in an
 * IntPairMap (no allocation but when a table doubles). Series are never removed, so indexes are
 * stable for the life of the data dir: blocks written months ago still name the same series.
 *
 * Memory, per series: the pair map (16 B a slot, at most half full), device and metric (4 B
 * each), the next series of the same device (4 B: a device's series are a chain in a typed array,
 * not an array object per device), and per metric a list entry; per device its name and two map
 * entries. Grows by doubling.
 *
 * Snapshots are incremental: series and names are append-only, so a checkpoint stores the rows
 * added since the previous one (rowsSince), and restore() replays the rows in order.
 */

import { IntPairMap } from './int-pair-map';

const NONE = -1;

/** What a checkpoint holds of the table: rows appended since a mark, in order. */
export interface SeriesRows {
  /** the series count before these rows (they are series from, from + 1, ...) */
  from: number;
  /** device id, metric id per series, interleaved */
  pairs: number[];
  /** names defined since the mark: [id, name] */
  devices: [number, string][];
  metrics: [number, string][];
}

export class SeriesTable {
  private readonly map = new IntPairMap(1024);
  private n = 0;
  private sDevice: Int32Array<ArrayBuffer> = new Int32Array(1024);
  private sMetric: Int32Array<ArrayBuffer> = new Int32Array(1024);
  /** the next series of the same device, NONE at the end of its chain */
  private sNextOfDevice: Int32Array<ArrayBuffer> = new Int32Array(1024);
  /** per device id: its first series (a sparse Map: device ids are global, a shard has some) */
  private readonly firstOfDevice = new Map<number, number>();
  private readonly byMetric = new Map<number, number[]>();
  private readonly deviceNames = new Map<number, string>();
  private readonly deviceIds = new Map<string, number>();
  private readonly metricNames = new Map<number, string>();
  private readonly metricIds = new Map<string, number>();
  private sortedNames: string[] | null = null;
  // what a snapshot has not stored yet
  private namesSince: { devices: [number, string][]; metrics: [number, string][] } = { devices: [], metrics: [] };

  constructor(readonly seriesMax = 16 * 1024 * 1024) {}

  get seriesCount(): number {
    return this.n;
  }

  get deviceCount(): number {
    return this.deviceNames.size;
  }

  /** bytes of the typed arrays (capacities), for /healthz and the memory target */
  typedArrayBytes(): number {
    return this.map.bytes() + this.sDevice.byteLength + this.sMetric.byteLength + this.sNextOfDevice.byteLength;
  }

  // ---- names ------------------------------------------------------------------------------

  /** Binds a global device id to its name; idempotent; a conflicting rebind throws (a bug upstream). */
  defineDevice(id: number, name: string): void {
    if (!bind(this.deviceNames, this.deviceIds, 'device', id, name)) return;
    this.sortedNames = null;
    this.namesSince.devices.push([id, name]);
  }

  defineMetric(id: number, name: string): void {
    if (bind(this.metricNames, this.metricIds, 'metric', id, name)) this.namesSince.metrics.push([id, name]);
  }

  deviceIdOf(name: string): number {
    return this.deviceIds.get(name) ?? NONE;
  }

  metricIdOf(name: string): number {
    return this.metricIds.get(name) ?? NONE;
  }

  deviceName(id: number): string | undefined {
    return this.deviceNames.get(id);
  }

  metricName(id: number): string | undefined {
    return this.metricNames.get(id);
  }

  metricIdList(): number[] {
    return [...this.metricNames.keys()];
  }

  /** every defined device name, sorted (cached until the next defineDevice) */
  sortedDeviceNames(): readonly string[] {
    if (this.sortedNames === null) this.sortedNames = [...this.deviceIds.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.sortedNames;
  }

  // ---- series -----------------------------------------------------------------------------

  /** The series of (device, metric), created on first use; both ids must be defined first. */
  seriesOf(device: number, metric: number): number {
    const s = this.map.get(device, metric);
    return s >= 0 ? s : this.create(device, metric);
  }

  /** The series of (device, metric), or -1. */
  findSeries(device: number, metric: number): number {
    if (device < 0 || metric < 0) return NONE;
    return this.map.get(device, metric);
  }

  seriesDevice(series: number): number {
    return this.sDevice[series]!;
  }

  seriesMetric(series: number): number {
    return this.sMetric[series]!;
  }

  seriesOfMetric(metric: number): readonly number[] {
    return this.byMetric.get(metric) ?? EMPTY;
  }

  /** The device's series, oldest first (a new array: a query-path call). */
  seriesOfDevice(device: number): number[] {
    const out: number[] = [];
    for (let s = this.firstOfDevice.get(device) ?? NONE; s !== NONE; s = this.sNextOfDevice[s]!) out.push(s);
    return out.reverse();
  }

  private create(device: number, metric: number): number {
    if (!this.deviceNames.has(device)) throw new Error(`BUG: device id ${device} used before its DEFINE record`);
    if (!this.metricNames.has(metric)) throw new Error(`BUG: metric id ${metric} used before its DEFINE record`);
    if (this.n >= this.seriesMax) throw new RangeError(`the shard holds ${this.seriesMax} series, its limit`);
    const s = this.n++;
    if (s === this.sDevice.length) this.grow();
    this.sDevice[s] = device;
    this.sMetric[s] = metric;
    // newest first: the chain's head is the device's newest series
    this.sNextOfDevice[s] = this.firstOfDevice.get(device) ?? NONE;
    this.firstOfDevice.set(device, s);
    this.map.set(device, metric, s);
    const list = this.byMetric.get(metric);
    if (list === undefined) this.byMetric.set(metric, [s]);
    else list.push(s);
    return s;
  }

  private grow(): void {
    const size = this.sDevice.length * 2;
    this.sDevice = grown(this.sDevice, size);
    this.sMetric = grown(this.sMetric, size);
    this.sNextOfDevice = grown(this.sNextOfDevice, size);
  }

  // ---- checkpoints ------------------------------------------------------------------------

  /** The rows added since the series count `from` (and the names defined since the last call). */
  rowsSince(from: number): SeriesRows {
    const pairs: number[] = [];
    for (let s = from; s < this.n; s++) pairs.push(this.sDevice[s]!, this.sMetric[s]!);
    const { devices, metrics } = this.namesSince;
    this.namesSince = { devices: [], metrics: [] };
    return { from, pairs, devices, metrics };
  }

  /** Every row and every name: a full checkpoint (restores into an empty table). */
  allRows(): SeriesRows {
    this.namesSince = { devices: [], metrics: [] };
    const pairs: number[] = [];
    for (let s = 0; s < this.n; s++) pairs.push(this.sDevice[s]!, this.sMetric[s]!);
    return { from: 0, pairs, devices: [...this.deviceNames], metrics: [...this.metricNames] };
  }

  /** Replays rows in the order they were taken; rows already held are checked, not added twice. */
  restore(rows: SeriesRows): void {
    for (const [id, name] of rows.devices) this.defineDevice(id, name);
    for (const [id, name] of rows.metrics) this.defineMetric(id, name);
    if (rows.from > this.n) throw new Error(`BUG: series rows from ${rows.from} restored onto ${this.n} series`);
    for (let i = 0; i < rows.pairs.length; i += 2) {
      const s = rows.from + i / 2;
      const got = this.seriesOf(rows.pairs[i]!, rows.pairs[i + 1]!);
      if (got !== s) throw new Error(`BUG: series ${s} restored as ${got}: checkpoint rows out of order`);
    }
    this.namesSince = { devices: [], metrics: [] };
  }
}

const EMPTY: readonly number[] = Object.freeze([]);

function bind(names: Map<number, string>, ids: Map<string, number>, kind: string, id: number, name: string): boolean {
  if (!(Number.isInteger(id) && id >= 0 && id < 2 ** 31)) throw new RangeError(`${kind} id must be an integer in [0, 2^31): ${id}`);
  const known = names.get(id);
  if (known === name) return false;
  if (known !== undefined) throw new Error(`BUG: ${kind} id ${id} is bound to "${known}", not "${name}"`);
  const other = ids.get(name);
  if (other !== undefined) throw new Error(`BUG: ${kind} "${name}" is bound to id ${other}, not ${id}`);
  names.set(id, name);
  ids.set(name, id);
  return true;
}

function grown(a: Int32Array, size: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(size);
  b.set(a);
  return b;
}
