/**
 * Event time in a shard: the watermark, too-late events, and closing panes into rollups.
 *
 * Runs in the shard worker that owns the PaneStore. Watermark = max event time applied - allowed
 * lateness; pane p ([p*P, (p+1)*P)) is closed once the watermark reaches its end, i.e. p <
 * closedBelow = floor(watermark / P). An event for a closed pane is too late: not applied,
 * counted per device and metric, kept in the late log. Everything here is decided from the
 * records in ring order only, so replaying the same records after a checkpoint makes the same
 * decisions (deterministic; see RollupStore for why replayed writes merge nothing twice).
 *
 * Closing (sweep, after a record that moved closedBelow; details at sweep()): closed panes join
 * the shard's fleet windows (with exact distinct devices and their bitmaps); once a first-coarse
 * window (1 min) is complete, its panes are stored as one block of pane windows plus the window,
 * and leave memory once those writes are committed (queries wait for them, so a window is never
 * missing nor counted twice: they merge a pane only if the stored window's lastPaneNo is below
 * it). Hour and day device windows are written once complete (writeCoarse); until then queries
 * compose them from the level below. The closed seconds of the per-second aggregate go with them.
 */

import {
  compressAggregate, emptyAggregate, mergeAggregate, type WindowAggregateWire,
} from '../protocol';
import type { LateCount, LateEntry, RollupStore, RollupValue, SecondAggregate } from '../storage';
import type { PaneStore } from './pane-store';
import { mergeSecond, SensorSeconds, type SensorSecondsState } from './sensor-seconds';
import { setBit } from './device-bits';
import { Watermark, type WatermarkState } from './watermark';

export interface EventTimeOptions {
  shard: number;
  paneMs: number;
  latenessMs: number;
  /** rollup resolutions, the pane first */
  resolutions: number[];
  lateLogSize: number;
}

export interface EventTimeState extends WatermarkState {
  lateTotal: number;
  /** per resolution, per series: start of the last fleet window the series was counted in */
  fleetMarks: Float64Array[];
  /** open seconds of the per-second fleet aggregate; absent in checkpoints written before it existed */
  seconds?: SensorSecondsState;
  /** per resolution level: every complete device window below it is stored (levels >= 2) */
  storedBelow?: number[];
}

interface PendingLate {
  entry: LateEntry;
  seq: number;
  k: number;
}

const NONE = -Infinity;
/** series windows (a pane block, a window, its coarser merges) written per LMDB transaction (bounds its dirty pages) */
const BLOCKS_PER_TXN = 1000;

/** a sweep's part of one fleet window; marker: every pane below it is in the window (pane resolution: closedBelow; coarser: the last complete window's end) */
interface FleetPart {
  key: (string | number)[];
  agg: WindowAggregateWire;
  devices: number;
  /** the devices counted in `devices` */
  deviceIds: number[];
  marker: number;
}

export class EventTime {
  /** the watermark and the closed-pane bound (workers/watermark.ts) */
  readonly clock: Watermark;
  lateTotal = 0;
  private fleetMarks: Float64Array[];
  /** per resolution level (>= 2): every complete device window below it is stored */
  private storedBelow: number[];
  private late: PendingLate[] = [];
  private lateSeq = -1;
  private lateK = 0;
  private lateLogged: number;
  /** the last rollup/late transaction: queries and checkpoints wait for it */
  pending: Promise<unknown> = Promise.resolve();
  writeErrors = 0;
  lastWriteError: string | null = null;
  private readonly closing = new Set<number>();
  private readonly closingScratch: number[] = [];
  /** this sweep's first appearances of a series in a coarse window: level, series, window start */
  private coarseIndex: number[] = [];
  private readonly paneScratch: RollupValue;
  private readonly windowScratch: RollupValue;
  /** the shard's per-second fleet aggregate: closes with the panes, written as ['s', ...] */
  readonly seconds = new SensorSeconds();

  constructor(private readonly opts: EventTimeOptions, private store: PaneStore, private readonly rollups: RollupStore) {
    this.clock = new Watermark(opts.paneMs, opts.latenessMs);
    this.fleetMarks = opts.resolutions.map(() => new Float64Array(1024).fill(NONE));
    this.storedBelow = opts.resolutions.map(() => NONE);
    this.paneScratch = { ...emptyAggregate(0, 0, store.histogramDivisions), lastPaneNo: -1 };
    this.windowScratch = { ...emptyAggregate(0, 0, store.histogramDivisions), lastPaneNo: -1 };
    this.lateLogged = rollups.lateCount(opts.shard);
  }

  useStore(store: PaneStore): void {
    this.store = store;
  }

  /** Start of the last fleet window (at resolution index level) that counted the series. */
  fleetMark(level: number, series: number): number {
    const m = this.fleetMarks[level];
    return series < m.length ? m[series] : NONE;
  }

  /** Too late: the event's pane is already closed. */
  isLate(ts: number): boolean {
    return ts < this.clock.closedBeforeMs;
  }

  observe(ts: number): void {
    this.clock.observe(ts);
  }

  get maxTs(): number {
    return this.clock.maxTs;
  }

  recordLate(device: number, metric: number, ts: number, value: number, seq: number): void {
    if (seq !== this.lateSeq) {
      this.lateSeq = seq;
      this.lateK = 0;
    }
    this.lateTotal++;
    this.late.push({ entry: { device, metric, ts, value, at: Date.now() }, seq, k: this.lateK++ });
  }

  /** Called after each record: closes what the watermark passed, writes the late events. */
  afterRecord(): void {
    const below = this.clock.dueBelow();
    if (below > this.clock.closedBelow) this.sweep(below);
    if (this.late.length > 0) this.writeLate();
  }

  get watermark(): number {
    return this.clock.watermark;
  }

  /**
   * Closing, with no object per pane (closing is the cost of a sparse fleet: one pane per reading):
   * 1. every pane below the new closedBelow joins the shard's pane-resolution fleet window (merged
   *    in memory, written once per sweep);
   * 2. once a whole window of the first coarse resolution (1 min) is closed, its panes become one
   *    stored block of pane windows and the window's rollup, which is merged (read-modify-write)
   *    into the coarser ones and the fleet's; then the panes leave memory. Until then they stay in
   *    memory, closed (too late for events). The writes read the closed panes when their
   *    transaction runs: a closed pane no longer changes, and is freed only after its writes.
   */
  private sweep(below: number): void {
    const prevBelow = this.clock.closedBelow;
    this.clock.markClosed(below);
    this.writeSeconds();
    const store = this.store;
    const res = this.opts.resolutions;
    const P = this.opts.paneMs;
    const R1 = res.length > 1 ? res[1]! : P;
    const done = Math.floor((below * P) / R1) * R1;
    // the complete R1 windows: block b is series blockSeries[b], panes blockSlots[blockFirst[b]...]
    const blockSeries: number[] = [];
    const blockFirst: number[] = [];
    const blockSlots: number[] = [];
    const fleet = new Map<number, Map<number, FleetPart>>();
    const n = store.seriesCount;
    for (let l = 0; l < res.length; l++) this.fleetMarks[l] = growMarks(this.fleetMarks[l]!, n);
    const closing = this.closingScratch;
    for (let s = 0; s < n; s++) {
      // the closed panes, oldest first (from the series' oldest: the open ones are not walked)
      closing.length = 0;
      for (let p = store.oldestPane(s); p >= 0 && store.paneNumber(p) < below; p = store.newerPane(p)) if (!this.closing.has(p)) closing.push(p);
      if (closing.length === 0) continue;
      const metric = store.seriesMetric(s);
      let blockStart = NaN;
      for (let i = 0; i < closing.length; i++) {
        const slot = closing[i]!;
        const paneNo = store.paneNumber(slot);
        const start = paneNo * P;
        if (paneNo >= prevBelow) this.joinFleet(fleet, 0, s, metric, slot, start, below);
        if (start >= done) continue;
        const w = Math.floor(start / R1) * R1;
        if (w !== blockStart) {
          blockStart = w;
          blockSeries.push(s);
          blockFirst.push(blockSlots.length);
        }
        blockSlots.push(slot);
        this.closing.add(slot);
        for (let l = 1; l < res.length; l++) this.joinFleet(fleet, l, s, metric, slot, start, done / P);
      }
    }
    blockFirst.push(blockSlots.length);
    // bounded transactions: an LMDB write transaction holds its dirty pages in memory until it
    // commits, so a big sweep is written in chunks; the fleet windows go last (their marker says
    // the whole sweep is in), so a crash between chunks replays them all
    const writes: Promise<unknown>[] = [];
    for (let b0 = 0; b0 < blockSeries.length; b0 += BLOCKS_PER_TXN) {
      const b1 = Math.min(blockSeries.length, b0 + BLOCKS_PER_TXN);
      writes.push(this.rollups.transaction(() => {
        for (let b = b0; b < b1; b++) this.writeBlock(blockSeries[b]!, blockSlots, blockFirst[b]!, blockFirst[b + 1]!);
      }));
    }
    // coarse device windows that this sweep completed (their finer windows are queued before them)
    let complete = done;
    for (let l = 2; l < res.length; l++) {
      const r = res[l]!;
      const target = Math.floor(complete / r) * r;
      const from = this.storedBelow[l]!;
      if (target > from) {
        this.storedBelow[l] = target;
        writes.push(this.rollups.transaction(() => this.writeCoarse(l, from, target)));
      }
      complete = this.storedBelow[l]!;
    }
    const coarseIndex = this.coarseIndex;
    this.coarseIndex = [];
    if (fleet.size > 0 || coarseIndex.length > 0) {
      writes.push(this.rollups.transaction(() => {
        for (let i = 0; i < coarseIndex.length; i += 3) {
          const series = coarseIndex[i + 1]!;
          this.rollups.put(['w', res[coarseIndex[i]!]!, store.seriesMetric(series), coarseIndex[i + 2]!, store.seriesDevice(series)], 1);
        }
        for (const byStart of fleet.values()) for (const f of byStart.values()) this.writeFleet(f);
      }));
    }
    if (writes.length === 0) return;
    for (const w of writes) this.track(w);
    this.track(Promise.all(writes).then(() => {
      for (const slot of blockSlots) {
        this.closing.delete(slot);
        store.freePane(slot);
      }
    }));
  }

  /** merges a closing pane into the shard's fleet window at resolution level l (counting its device once per window) */
  private joinFleet(fleet: Map<number, Map<number, FleetPart>>, l: number, series: number, metric: number, slot: number,
    start: number, marker: number): void {
    const r = this.opts.resolutions[l]!;
    const w = Math.floor(start / r) * r;
    const id = metric * 8 + l;
    let byStart = fleet.get(id);
    if (byStart === undefined) fleet.set(id, byStart = new Map());
    let f = byStart.get(w);
    if (f === undefined) {
      f = { key: ['f', r, metric, w, this.opts.shard], agg: emptyAggregate(w, w + r, this.store.histogramDivisions), devices: 0, deviceIds: [], marker };
      byStart.set(w, f);
    }
    this.store.mergePaneInto(slot, f.agg, true);
    if (this.fleetMarks[l]![series] !== w) {
      this.fleetMarks[l]![series] = w;
      f.devices++;
      f.deviceIds.push(this.store.seriesDevice(series));
      // the device is in the coarse window from now on: its 'w' key now, though the device's
      // window itself is written when complete (an exact distinct count reads one key per device)
      if (l >= 2) this.coarseIndex.push(l, series, w);
    }
  }

  /**
   * One series' complete first-coarse window: the block of its pane windows (a put: replaying
   * writes the same), the window's rollup, merged into the coarser ones once (lastPaneNo).
   */
  private writeBlock(series: number, slots: readonly number[], from: number, to: number): void {
    const store = this.store;
    const device = store.seriesDevice(series);
    const metric = store.seriesMetric(series);
    const res = this.opts.resolutions;
    const P = this.opts.paneMs;
    const R1 = res.length > 1 ? res[1]! : P;
    const pane = this.paneScratch;
    const window = this.windowScratch;
    const w = Math.floor(store.paneStartMs(slots[from]!) / R1) * R1;
    resetScratch(window, w, w + R1);
    this.rollups.beginBlock();
    let lastPaneNo = -1;
    for (let i = from; i < to; i++) {
      const slot = slots[i]!;
      const start = store.paneStartMs(slot);
      lastPaneNo = store.paneNumber(slot);
      resetScratch(pane, start, start + P);
      store.mergePaneInto(slot, pane, true);
      pane.lastPaneNo = lastPaneNo;
      this.rollups.addToBlock(pane);
      if (res.length > 1) store.mergePaneInto(slot, window, true);
    }
    this.rollups.endBlock(device, metric, w);
    if (res.length === 1) return;
    if (window.means.length > 256) compressAggregate(window);
    window.lastPaneNo = lastPaneNo;
    this.rollups.putWindow(['d', R1, device, metric, w], window);
    this.rollups.put(['w', R1, metric, w, device], 1);
  }

  /**
   * The device windows of level l (1 h, 1 d) in [from, to), once complete: each the merge of the
   * stored windows of the level below (all written before: earlier in the same queue). Once per
   * window instead of a read-modify-write per closed minute: at 100k devices those rewrites of
   * ~2 KB values on random pages were most of what closing wrote. A put: replaying writes the same.
   */
  private writeCoarse(l: number, from: number, to: number): void {
    const store = this.store;
    const r = this.opts.resolutions[l]!;
    const fine = this.opts.resolutions[l - 1]!;
    const start = from === NONE ? 0 : from;
    for (const metric of store.metricIdList()) {
      const devices = new Set<number>();
      for (const d of this.rollups.windowDevicesIn(fine, metric, start, to)) if (store.deviceName(d) !== undefined) devices.add(d);
      for (const device of devices) {
        let cur: RollupValue | null = null;
        for (const { value } of this.rollups.deviceWindows(fine, device, metric, start, to)) {
          if (value.start < start || value.start >= to) continue;
          const w = Math.floor(value.start / r) * r;
          if (cur !== null && cur.start !== w) {
            this.putCoarse(r, device, metric, cur);
            cur = null;
          }
          if (cur === null) cur = { ...emptyAggregate(w, w + r, store.histogramDivisions), lastPaneNo: -1 };
          mergeAggregate(cur, value);
          if (value.lastPaneNo > cur.lastPaneNo) cur.lastPaneNo = value.lastPaneNo;
        }
        if (cur !== null) this.putCoarse(r, device, metric, cur);
      }
    }
  }

  private putCoarse(r: number, device: number, metric: number, v: RollupValue): void {
    if (v.means.length > 256) compressAggregate(v);
    this.rollups.putWindow(['d', r, device, metric, v.start], v); // its 'w' key went in with its first minute
  }

  /** Device windows of level l (>= 2) starting at or after this are not stored yet: queries compose them from the level below. */
  coarseStoredBelow(level: number): number {
    return this.storedBelow[level] ?? NONE;
  }

  /** the sweep's part of a fleet window, merged into the stored one once (marker) */
  private writeFleet(f: FleetPart): void {
    const { key, agg, devices, marker } = f;
    const old = this.rollups.getWindow(key);
    if (old !== undefined && old.lastPaneNo >= marker) return; // this sweep was written before a crash
    agg.devices = devices;
    const merged: RollupValue = old === undefined ? { ...agg, lastPaneNo: marker } : { ...mergeAggregate(old, agg), lastPaneNo: marker };
    if (merged.means.length > 256) compressAggregate(merged);
    this.rollups.putWindow(key, merged);
    const [, r, metric, start, shard] = key as [string, number, number, number, number];
    let bits = this.rollups.fleetDeviceBits(r, metric, start, shard) ?? new Uint8Array(0);
    for (const id of f.deviceIds) bits = setBit(bits, id);
    this.rollups.putFleetDeviceBits(r, metric, start, shard, bits);
  }

  /** the seconds the watermark closed, one put each (a second may come in two parts: merged) */
  private writeSeconds(): void {
    const closed = this.seconds.closeBefore(this.clock.closedBeforeMs);
    if (closed.length === 0) return;
    const byKey = new Map<string, { metric: number; second: number; agg: SecondAggregate }>();
    for (const c of closed) {
      const key = `${c.metric}:${c.second}`;
      const seen = byKey.get(key);
      if (seen === undefined) byKey.set(key, c);
      else mergeSecond(seen.agg, c.agg);
    }
    const shard = this.opts.shard;
    this.track(this.rollups.transaction(() => {
      for (const c of byKey.values()) this.rollups.putSecond(c.metric, c.second, shard, c.agg);
    }));
  }

  private writeLate(): void {
    const late = this.late;
    this.late = [];
    const shard = this.opts.shard;
    const max = this.opts.lateLogSize;
    const write = this.rollups.transaction(() => {
      for (const l of late) {
        const key = ['l', shard, l.seq, l.k];
        if (this.rollups.get(key) !== undefined) continue; // written before a crash
        if (max > 0) {
          this.rollups.put(key, l.entry);
          this.lateLogged++;
        }
        const ckey = ['c', l.entry.device, l.entry.metric];
        const c = this.rollups.get(ckey) as LateCount | undefined;
        this.rollups.put(ckey, { count: (c?.count ?? 0) + 1, seq: l.seq, k: l.k });
      }
      if (this.lateLogged > max) {
        let excess = this.lateLogged - max;
        for (const { key } of this.rollups.lateEntries(shard, excess, false)) {
          this.rollups.remove(key as (string | number)[]);
          excess--;
        }
        this.lateLogged = max + excess;
      }
    });
    this.track(write);
  }

  private track(p: Promise<unknown>): void {
    const next = p.then(undefined, (err: Error) => {
      this.writeErrors++;
      this.lastWriteError = err.message;
    });
    this.pending = this.pending.then(() => next);
  }

  snapshot(): EventTimeState {
    return {
      ...this.clock.snapshot(), lateTotal: this.lateTotal, fleetMarks: this.fleetMarks.map((m) => m.slice()),
      seconds: this.seconds.snapshot(),
      storedBelow: [...this.storedBelow],
    };
  }

  restore(state: EventTimeState): void {
    this.clock.restore(state);
    this.lateTotal = state.lateTotal;
    if (state.fleetMarks.length === this.fleetMarks.length) this.fleetMarks = state.fleetMarks.map((m) => Float64Array.from(m));
    if (state.seconds !== undefined) this.seconds.restore(state.seconds);
    if (state.storedBelow !== undefined && state.storedBelow.length === this.storedBelow.length) this.storedBelow = [...state.storedBelow];
  }
}

/** empties a reused aggregate (its arrays keep their capacity) */
function resetScratch(a: RollupValue, start: number, end: number): void {
  a.start = start;
  a.end = end;
  a.count = 0;
  a.sum = 0;
  a.min = 0;
  a.max = 0;
  a.last = 0;
  a.lastTs = 0;
  a.histogram.fill(0);
  a.under = 0;
  a.over = 0;
  a.means.length = 0;
  a.weights.length = 0;
  a.lastPaneNo = -1;
}


function growMarks(m: Float64Array, n: number): Float64Array {
  if (n <= m.length) return m;
  let size = m.length;
  while (size < n) size *= 2;
  const out = new Float64Array(size).fill(NONE);
  out.set(m);
  return out;
}
