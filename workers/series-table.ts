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
 * not an array object per device), and per metric a list entry; per device its entry in the
 * device NameLog (workers/name-log.ts: id, end offset and the id's entry, 4 B each, a hash slot,
 * 8-16 B, and the name's UTF-8 bytes): no string or Map entry per device. Grows by doubling.
 *
 * Snapshots are incremental: series and names are append-only, in three logs (the series, the
 * device names and the metric names, each in definition order), so any part of the table a
 * checkpoint stores is a range between two RowMarks, and rows(from, to) hands that range out as
 * typed-array views (no copy: packing it is a memcpy per column). restore() replays ranges in
 * order. Names are kept in a log of their UTF-8 bytes end to end so that a range of names is one
 * byte view, not a string per name (a join of 500k names took ~95 ms here, the view none), and
 * a restore appends bytes without making a string per name.
 * markAt() gives a mark every markEvery series, where a checkpoint may cut a long range into
 * groups: the names any series before the mark uses are before it too. restore() notes the mark
 * after each call (takeRestoredParts), so the checkpointer knows the ranges of what it stored.
 */

import { isAscii } from 'node:buffer';
import { IntPairMap } from './int-pair-map';
import { NameLog, checkedNameRows, type NameRows } from './name-log';

export type { NameRows } from './name-log';

const NONE = -1;

/** A position in the table's three logs: the series count and the names defined, per kind. */
export interface RowMark {
  readonly series: number;
  readonly devices: number;
  readonly metrics: number;
}

export const ROW_MARK_ZERO: RowMark = Object.freeze({ series: 0, devices: 0, metrics: 0 });

/**
 * What a checkpoint holds of the table (format 2): the rows between two marks, as typed arrays.
 * Restores onto a table that holds every row before `from` (and the names before the range).
 */
export interface SeriesRows {
  v: 2;
  /** the series count before these rows (they are series from, from + 1, ...) */
  from: number;
  /** per series its device id and its metric id */
  device: Int32Array;
  metric: Int32Array;
  /** the names defined in the range, in order */
  deviceNames: NameRows;
  metricNames: NameRows;
  /** the stored group these rows came from: set by decodeCheckpoint, never stored */
  group?: number;
}

/** The rows of a checkpoint written before format 2 (restore() still reads them). */
export interface LegacySeriesRows {
  v?: undefined;
  from: number;
  /** device id, metric id per series, interleaved */
  pairs: number[];
  /** names defined since the mark: [id, name] */
  devices: [number, string][];
  metrics: [number, string][];
  /** the stored group these rows came from: set by decodeCheckpoint, never stored */
  group?: number;
}

/** One restore() call: the stored group it came from (when named) and the table's mark after it. */
export interface RestoredPart {
  group: number | undefined;
  end: RowMark;
}

export class SeriesTable {
  private readonly map = new IntPairMap(1024);
  private n = 0;
  private sDevice: Int32Array<ArrayBuffer> = new Int32Array(1024);
  private sMetric: Int32Array<ArrayBuffer> = new Int32Array(1024);
  /** the next series of the same device, NONE at the end of its chain */
  private sNextOfDevice: Int32Array<ArrayBuffer> = new Int32Array(1024);
  /**
   * per device id: its newest series + 1 (0: none). Indexed by the global id (a shard holds about
   * 1/shards of the ids): 4 B an id, against a Map entry's ~20-40 B and its hashing, which made
   * most of a 1M-series restore.
   */
  private firstOfDevice: Int32Array<ArrayBuffer> = new Int32Array(1024);
  private readonly byMetric = new Map<number, number[]>();
  private readonly metricNames = new Map<number, string>();
  private readonly metricIds = new Map<string, number>();
  /** the device ids in name order (listDevices), until the next define */
  private sortedIds: Int32Array | null = null;
  // the definition logs (checkpoints store ranges of them); the devices' is also their index
  private readonly deviceLog = new NameLog();
  private readonly metricLog = new NameLog('metric');
  /** per markEvery series: the device and metric log lengths when that series was created */
  private cuts: Int32Array<ArrayBuffer> = new Int32Array(64);
  private restored: RestoredPart[] = [];

  /**
   * @param seriesMax the most series the shard holds
   * @param markEvery the series between two marks where a checkpoint may cut (markAt)
   */
  constructor(readonly seriesMax = 16 * 1024 * 1024, readonly markEvery = 4096) {
    if (!(Number.isInteger(markEvery) && markEvery >= 1)) throw new RangeError(`markEvery must be a positive integer: ${markEvery}`);
  }

  get seriesCount(): number {
    return this.n;
  }

  get deviceCount(): number {
    return this.deviceLog.n;
  }

  /** bytes of the typed arrays (capacities), for /healthz and the memory target */
  typedArrayBytes(): number {
    return this.map.bytes() + this.sDevice.byteLength + this.sMetric.byteLength + this.sNextOfDevice.byteLength + this.firstOfDevice.byteLength +
      this.deviceLog.bytes() + this.metricLog.bytes() + this.cuts.byteLength;
  }

  // ---- names ------------------------------------------------------------------------------

  /** Binds a global device id to its name; idempotent; a conflicting rebind throws (a bug upstream). */
  defineDevice(id: number, name: string): void {
    if (this.deviceLog.define(id, name)) this.sortedIds = null;
  }

  defineMetric(id: number, name: string): void {
    if (bind(this.metricNames, this.metricIds, 'metric', id, name)) this.metricLog.define(id, name);
  }

  deviceIdOf(name: string): number {
    return this.deviceLog.idOf(name);
  }

  metricIdOf(name: string): number {
    return this.metricIds.get(name) ?? NONE;
  }

  /** the device's name (a new string: a query-path call), undefined when unknown */
  deviceName(id: number): string | undefined {
    return this.deviceLog.nameOf(id);
  }

  metricName(id: number): string | undefined {
    return this.metricNames.get(id);
  }

  metricIdList(): number[] {
    return [...this.metricNames.keys()];
  }

  get metricCount(): number {
    return this.metricNames.size;
  }

  /** the defined device ids as a bitmap (bit id set: its name is known) */
  knownDeviceBits(): Uint8Array {
    return this.deviceLog.idBits();
  }

  /**
   * The defined device ids in name order (JavaScript string order), cached until the next
   * define. Sorting makes a string per name for its length; only the ids are kept.
   */
  sortedDeviceIds(): Int32Array {
    if (this.sortedIds !== null) return this.sortedIds;
    const log = this.deviceLog;
    const names: string[] = new Array<string>(log.n);
    const order: number[] = new Array<number>(log.n);
    for (let e = 0; e < log.n; e++) {
      names[e] = log.nameAt(e);
      order[e] = e;
    }
    order.sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
    const ids = new Int32Array(log.n);
    for (let i = 0; i < ids.length; i++) ids[i] = log.idAt(order[i]!);
    return this.sortedIds = ids;
  }

  /** every defined device name, sorted (new strings each call: tests and diagnostics) */
  sortedDeviceNames(): string[] {
    return Array.from(this.sortedDeviceIds(), (id) => this.deviceLog.nameOf(id)!);
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
    for (let s = this.firstSeriesOf(device); s !== NONE; s = this.sNextOfDevice[s]!) out.push(s);
    return out.reverse();
  }

  /** the device's newest series, NONE if it has none */
  private firstSeriesOf(device: number): number {
    return device < this.firstOfDevice.length ? this.firstOfDevice[device]! - 1 : NONE;
  }

  private create(device: number, metric: number): number {
    if (this.deviceLog.entryOf(device) < 0) throw new Error(`BUG: device id ${device} used before its DEFINE record`);
    if (!this.metricNames.has(metric)) throw new Error(`BUG: metric id ${metric} used before its DEFINE record`);
    if (this.n >= this.seriesMax) throw new RangeError(`the shard holds ${this.seriesMax} series, its limit`);
    const s = this.n++;
    if (s === this.sDevice.length) this.grow();
    if (s % this.markEvery === 0) this.cut(s / this.markEvery);
    this.sDevice[s] = device;
    this.sMetric[s] = metric;
    // newest first: the chain's head is the device's newest series
    this.sNextOfDevice[s] = this.firstSeriesOf(device);
    if (device >= this.firstOfDevice.length) this.firstOfDevice = grown(this.firstOfDevice, Math.max(device + 1, this.firstOfDevice.length * 2));
    this.firstOfDevice[device] = s + 1;
    this.map.set(device, metric, s);
    const list = this.byMetric.get(metric);
    if (list === undefined) this.byMetric.set(metric, [s]);
    else list.push(s);
    return s;
  }

  /** room for n series without growing (a restore sizes the arrays and the map once) */
  private reserveSeries(n: number): void {
    this.map.reserve(n);
    let size = this.sDevice.length;
    while (size < n) size *= 2;
    if (size === this.sDevice.length) return;
    this.sDevice = grown(this.sDevice, size);
    this.sMetric = grown(this.sMetric, size);
    this.sNextOfDevice = grown(this.sNextOfDevice, size);
  }

  private grow(): void {
    const size = this.sDevice.length * 2;
    this.sDevice = grown(this.sDevice, size);
    this.sMetric = grown(this.sMetric, size);
    this.sNextOfDevice = grown(this.sNextOfDevice, size);
  }

  private cut(k: number): void {
    if (2 * k + 2 > this.cuts.length) this.cuts = grown(this.cuts, this.cuts.length * 2);
    this.cuts[2 * k] = this.deviceLog.n;
    this.cuts[2 * k + 1] = this.metricLog.n;
  }

  // ---- checkpoints ------------------------------------------------------------------------

  /** The table's mark now: rows(mark, a later mark) is what was added in between. */
  rowMark(): RowMark {
    return { series: this.n, devices: this.deviceLog.n, metrics: this.metricLog.n };
  }

  /**
   * The mark at series `series` (a multiple of markEvery below seriesCount): the names defined
   * when that series was created. Every name a series before it uses is before the mark, and
   * for marks a <= b <= c taken by rowMark() with a.series <= series < c.series the mark lies
   * between a and c in all three logs: a range can be cut there into two ranges that restore.
   */
  markAt(series: number): RowMark {
    if (!(series % this.markEvery === 0 && series >= 0 && series < this.n)) {
      throw new RangeError(`markAt(${series}): marks are at multiples of ${this.markEvery} below ${this.n}`);
    }
    const k = series / this.markEvery;
    return { series, devices: this.cuts[2 * k]!, metrics: this.cuts[2 * k + 1]! };
  }

  /**
   * The rows between two marks (from <= to, both from rowMark() or markAt()). The typed arrays
   * are views of the table's own arrays: valid until the table changes them, so pack them
   * before the next define or series (rows only ever append, so in practice they stay valid).
   */
  rows(from: RowMark, to: RowMark): SeriesRows {
    if (!(from.series <= to.series && from.devices <= to.devices && from.metrics <= to.metrics &&
      to.series <= this.n && to.devices <= this.deviceLog.n && to.metrics <= this.metricLog.n)) {
      throw new RangeError(`rows(${markText(from)}, ${markText(to)}) on a table at ${markText(this.rowMark())}`);
    }
    return {
      v: 2, from: from.series,
      device: this.sDevice.subarray(from.series, to.series),
      metric: this.sMetric.subarray(from.series, to.series),
      deviceNames: this.deviceLog.rows(from.devices, to.devices),
      metricNames: this.metricLog.rows(from.metrics, to.metrics),
    };
  }

  /**
   * Replays rows in the order they were taken (either format); rows already held are checked,
   * not added twice. Throws on rows that do not fit (out of order, malformed).
   */
  restore(rows: SeriesRows | LegacySeriesRows): void {
    if (rows.v === 2) this.restoreRows(rows);
    else this.restoreLegacy(rows);
    this.restored.push({ group: rows.group, end: this.rowMark() });
  }

  /** The restore() calls since the last call, in order (ShardCheckpoints.resume maps its groups). */
  takeRestoredParts(): RestoredPart[] {
    const parts = this.restored;
    this.restored = [];
    return parts;
  }

  private restoreRows(rows: SeriesRows): void {
    const { from, device, metric } = rows;
    if (!(device instanceof Int32Array && metric instanceof Int32Array && device.length === metric.length && Number.isInteger(from) && from >= 0)) {
      throw new Error(`series rows from ${String(from)} are malformed`);
    }
    this.deviceLog.restoreRows(rows.deviceNames);
    this.sortedIds = null;
    forEachName(rows.metricNames, (id, name) => this.defineMetric(id, name));
    this.reserveSeries(from + device.length);
    this.restoreSeries(from, device.length, (i) => device[i]!, (i) => metric[i]!);
  }

  private restoreLegacy(rows: LegacySeriesRows): void {
    for (const [id, name] of rows.devices) this.defineDevice(id, name);
    for (const [id, name] of rows.metrics) this.defineMetric(id, name);
    const pairs = rows.pairs;
    this.restoreSeries(rows.from, pairs.length / 2, (i) => pairs[2 * i]!, (i) => pairs[2 * i + 1]!);
  }

  private restoreSeries(from: number, count: number, device: (i: number) => number, metric: (i: number) => number): void {
    if (from > this.n) throw new Error(`BUG: series rows from ${from} restored onto ${this.n} series`);
    for (let i = 0; i < count; i++) {
      const s = from + i;
      const got = this.seriesOf(device(i), metric(i));
      if (got !== s) throw new Error(`BUG: series ${s} restored as ${got}: checkpoint rows out of order`);
    }
  }
}

/** Calls f per name of a stored NameRows; checks its shape (a malformed group throws). */
function forEachName(rows: NameRows | undefined, f: (id: number, name: string) => void): void {
  const { ids, text, lengths } = checkedNameRows(rows);
  const buf = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  // ASCII (every name the protocol accepts): one decode, then a slice per name
  const ascii = isAscii(buf);
  const all = ascii ? buf.toString('latin1') : '';
  for (let i = 0, off = 0; i < ids.length; i++) {
    const len = lengths[i]!;
    f(ids[i]!, ascii ? all.slice(off, off + len) : buf.toString('utf8', off, off + len));
    off += len;
  }
}

function markText(m: RowMark): string {
  return `[${m.series} series, ${m.devices} devices, ${m.metrics} metrics]`;
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

function grown<T extends Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>>(a: T, size: number): T {
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}
