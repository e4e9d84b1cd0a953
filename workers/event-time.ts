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
 * Closing (sweep, after a record that moved closedBelow): every pane below it becomes a rollup at
 * the pane resolution and is merged into the device's coarser windows and the shard's fleet
 * windows (with exact distinct-device counts) in one LMDB transaction; the pane leaves memory once
 * that transaction is committed (queries wait for it, so a window is never missing nor counted
 * twice: they merge a pane only if the stored window's lastPaneNo is below it).
 */

import {
  compressAggregate, emptyAggregate, mergeAggregate, type WindowAggregateWire,
} from '../protocol';
import type { LateCount, LateEntry, RollupStore, RollupValue, SecondAggregate } from '../storage';
import type { PaneStore } from './pane-store';
import { mergeSecond, SensorSeconds, type SensorSecondsState } from './sensor-seconds';

export interface EventTimeOptions {
  shard: number;
  paneMs: number;
  latenessMs: number;
  /** rollup resolutions, the pane first */
  resolutions: number[];
  lateLogSize: number;
}

export interface EventTimeState {
  maxTs: number;
  closedBelow: number;
  lateTotal: number;
  /** per resolution, per series: start of the last fleet window the series was counted in */
  fleetMarks: Float64Array[];
  /** open seconds of the per-second fleet aggregate; absent in checkpoints written before it existed */
  seconds?: SensorSecondsState;
}

interface PendingLate {
  entry: LateEntry;
  seq: number;
  k: number;
}

const NONE = -Infinity;
/** rollups written per LMDB transaction (bounds the transaction's dirty pages) */
const WRITES_PER_TXN = 2000;

export class EventTime {
  maxTs = NONE;
  closedBelow = NONE;
  /** closedBelow * paneMs: the hot path compares event times with it */
  closedBeforeMs = NONE;
  lateTotal = 0;
  private fleetMarks: Float64Array[];
  private late: PendingLate[] = [];
  private lateSeq = -1;
  private lateK = 0;
  private lateLogged: number;
  /** the last rollup/late transaction: queries and checkpoints wait for it */
  pending: Promise<unknown> = Promise.resolve();
  writeErrors = 0;
  lastWriteError: string | null = null;
  private readonly closing = new Set<number>();
  /** the shard's per-second fleet aggregate: closes with the panes, written as ['s', ...] */
  readonly seconds = new SensorSeconds();

  constructor(private readonly opts: EventTimeOptions, private store: PaneStore, private readonly rollups: RollupStore) {
    this.fleetMarks = opts.resolutions.map(() => new Float64Array(1024).fill(NONE));
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
    return ts < this.closedBeforeMs;
  }

  observe(ts: number): void {
    if (ts > this.maxTs) this.maxTs = ts;
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
    if (this.maxTs !== NONE) {
      const below = Math.floor((this.maxTs - this.opts.latenessMs) / this.opts.paneMs);
      if (below > this.closedBelow) this.sweep(below);
    }
    if (this.late.length > 0) this.writeLate();
  }

  get watermark(): number {
    return this.maxTs === NONE ? NONE : this.maxTs - this.opts.latenessMs;
  }

  /**
   * Closing happens in two steps, to keep the cost per closed pane low:
   * 1. every pane below the new closedBelow gets its pane-resolution rollup and joins the shard's
   *    pane-resolution fleet window (a put each, no read);
   * 2. once a whole window of the first coarse resolution (1 min) is closed, its panes are merged
   *    once into that window's rollup, which is merged (read-modify-write) into the coarser ones,
   *    and the panes leave memory. Until then they stay in memory, closed (too late for events).
   */
  private sweep(below: number): void {
    const prevBelow = this.closedBelow;
    this.closedBelow = below;
    this.closedBeforeMs = below * this.opts.paneMs;
    this.writeSeconds();
    const store = this.store;
    const res = this.opts.resolutions;
    const P = this.opts.paneMs;
    const R1 = res.length > 1 ? res[1] : P;
    const done = Math.floor((below * P) / R1) * R1;
    const shard = this.opts.shard;
    const divisions = store.histogramDivisions;
    const paneWrites: { series: number; paneNo: number; agg: WindowAggregateWire }[] = [];
    const windowWrites: { series: number; lastPaneNo: number; agg: WindowAggregateWire }[] = [];
    const fleet = new Map<string, { key: (string | number)[]; agg: WindowAggregateWire; devices: number; marker: number }>();
    const freed: number[] = [];
    const n = store.seriesCount;
    for (let l = 0; l < res.length; l++) this.fleetMarks[l] = growMarks(this.fleetMarks[l], n);
    const joinFleet = (l: number, s: number, metric: number, agg: WindowAggregateWire, marker: number): void => {
      const w = Math.floor(agg.start / res[l]) * res[l];
      const id = `${l}:${metric}:${w}`;
      let f = fleet.get(id);
      if (f === undefined) {
        f = { key: ['f', res[l], metric, w, shard], agg: emptyAggregate(w, w + res[l], divisions), devices: 0, marker };
        fleet.set(id, f);
      }
      mergeAggregate(f.agg, agg);
      if (this.fleetMarks[l][s] !== w) {
        this.fleetMarks[l][s] = w;
        f.devices++;
      }
    };
    const closing: number[] = [];
    for (let s = 0; s < n; s++) {
      // the series' panes are newest first: skip the open ones, take the closed ones oldest first
      let p = store.newestPane(s);
      while (p >= 0 && store.paneNumber(p) >= below) p = store.olderPane(p);
      closing.length = 0;
      for (; p >= 0; p = store.olderPane(p)) if (!this.closing.has(p)) closing.push(p);
      if (closing.length === 0) continue;
      const metric = store.seriesMetric(s);
      let window: WindowAggregateWire | null = null;
      let windowLast = -1;
      for (let i = closing.length - 1; i >= 0; i--) {
        const slot = closing[i];
        const paneNo = store.paneNumber(slot);
        const start = paneNo * P;
        let agg: WindowAggregateWire | null = null;
        if (paneNo >= prevBelow) {
          agg = emptyAggregate(start, start + P, divisions);
          store.mergePaneInto(slot, agg, true);
          paneWrites.push({ series: s, paneNo, agg });
          joinFleet(0, s, metric, agg, below);
        }
        if (res.length > 1 && start < done) {
          const w = Math.floor(start / R1) * R1;
          if (window !== null && window.start !== w) {
            windowWrites.push({ series: s, lastPaneNo: windowLast, agg: window });
            for (let l = 1; l < res.length; l++) joinFleet(l, s, metric, window, done / P);
            window = null;
          }
          if (window === null) window = emptyAggregate(w, w + R1, divisions);
          if (agg !== null) mergeAggregate(window, agg);
          else store.mergePaneInto(slot, window, true);
          windowLast = paneNo;
          this.closing.add(slot);
          freed.push(slot);
        } else if (res.length === 1) {
          this.closing.add(slot);
          freed.push(slot);
        }
      }
      if (window !== null) {
        windowWrites.push({ series: s, lastPaneNo: windowLast, agg: window });
        for (let l = 1; l < res.length; l++) joinFleet(l, s, metric, window, done / P);
      }
    }
    if (paneWrites.length === 0 && windowWrites.length === 0) return;
    // bounded transactions: an LMDB write transaction holds its dirty pages in memory until it
    // commits, so a big sweep is written in chunks; the fleet windows go last (their marker says
    // the whole sweep is in), so a crash between chunks replays them all
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < paneWrites.length; i += WRITES_PER_TXN) {
      const chunk = paneWrites.slice(i, i + WRITES_PER_TXN);
      writes.push(this.rollups.transaction(() => {
        for (const d of chunk) this.writePane(d.series, d.paneNo, d.agg);
      }));
    }
    for (let i = 0; i < windowWrites.length; i += WRITES_PER_TXN) {
      const chunk = windowWrites.slice(i, i + WRITES_PER_TXN);
      writes.push(this.rollups.transaction(() => {
        for (const d of chunk) this.writeWindow(d.series, d.lastPaneNo, d.agg);
      }));
    }
    writes.push(this.rollups.transaction(() => {
      for (const f of fleet.values()) this.writeFleet(f.key, f.agg, f.devices, f.marker);
    }));
    for (const w of writes) this.track(w);
    this.track(Promise.all(writes).then(() => {
      for (const slot of freed) {
        this.closing.delete(slot);
        store.freePane(slot);
      }
    }));
  }

  /** A closed pane's rollup at the pane resolution (a put: replaying it writes the same value). */
  private writePane(series: number, paneNo: number, agg: WindowAggregateWire): void {
    const store = this.store;
    const device = store.seriesDevice(series);
    const metric = store.seriesMetric(series);
    const r = this.opts.paneMs;
    this.rollups.putWindow(['d', r, device, metric, agg.start], { ...agg, lastPaneNo: paneNo });
    this.rollups.put(['w', r, metric, agg.start, device], 1);
  }

  /** A closed first-coarse window: its rollup, merged into the coarser ones (once: lastPaneNo). */
  private writeWindow(series: number, lastPaneNo: number, agg: WindowAggregateWire): void {
    const store = this.store;
    const device = store.seriesDevice(series);
    const metric = store.seriesMetric(series);
    const res = this.opts.resolutions;
    if (agg.means.length > 256) compressAggregate(agg);
    this.rollups.putWindow(['d', res[1], device, metric, agg.start], { ...agg, lastPaneNo });
    this.rollups.put(['w', res[1], metric, agg.start, device], 1);
    for (let l = 2; l < res.length; l++) {
      const w = Math.floor(agg.start / res[l]) * res[l];
      const key = ['d', res[l], device, metric, w];
      const old = this.rollups.getWindow(key);
      if (old !== undefined && old.lastPaneNo >= lastPaneNo) continue; // merged before a crash
      const merged: RollupValue = old === undefined
        ? { ...copyAgg(agg), start: w, end: w + res[l], lastPaneNo }
        : { ...mergeAggregate(old, agg), lastPaneNo };
      if (merged.means.length > 256) compressAggregate(merged);
      this.rollups.putWindow(key, merged);
      if (old === undefined) this.rollups.put(['w', res[l], metric, w, device], 1);
    }
  }

  /** marker: every pane below it is in the fleet window (pane resolution: closedBelow; coarser: the last complete window's end) */
  private writeFleet(key: (string | number)[], agg: WindowAggregateWire, devices: number, marker: number): void {
    const old = this.rollups.getWindow(key);
    if (old !== undefined && old.lastPaneNo >= marker) return; // this sweep was written before a crash
    agg.devices = devices;
    const merged: RollupValue = old === undefined ? { ...agg, lastPaneNo: marker } : { ...mergeAggregate(old, agg), lastPaneNo: marker };
    if (merged.means.length > 256) compressAggregate(merged);
    this.rollups.putWindow(key, merged);
  }

  /** the seconds the watermark closed, one put each (a second may come in two parts: merged) */
  private writeSeconds(): void {
    const closed = this.seconds.closeBefore(this.closedBeforeMs);
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
      maxTs: this.maxTs, closedBelow: this.closedBelow, lateTotal: this.lateTotal, fleetMarks: this.fleetMarks.map((m) => m.slice()),
      seconds: this.seconds.snapshot(),
    };
  }

  restore(state: EventTimeState): void {
    this.maxTs = state.maxTs;
    this.closedBelow = state.closedBelow;
    this.closedBeforeMs = state.closedBelow === NONE ? NONE : state.closedBelow * this.opts.paneMs;
    this.lateTotal = state.lateTotal;
    if (state.fleetMarks.length === this.fleetMarks.length) this.fleetMarks = state.fleetMarks.map((m) => Float64Array.from(m));
    if (state.seconds !== undefined) this.seconds.restore(state.seconds);
  }
}

function copyAgg(a: WindowAggregateWire): WindowAggregateWire {
  return { ...a, histogram: a.histogram.slice(), means: a.means.slice(), weights: a.weights.slice() };
}

function growMarks(m: Float64Array, n: number): Float64Array {
  if (n <= m.length) return m;
  let size = m.length;
  while (size < n) size *= 2;
  const out = new Float64Array(size).fill(NONE);
  out.set(m);
  return out;
}
