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
import type { LateCount, LateEntry, RollupStore, RollupValue } from '../storage';
import type { PaneStore } from './pane-store';

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
}

interface PendingLate {
  entry: LateEntry;
  seq: number;
  k: number;
}

const NONE = -Infinity;

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

  private sweep(below: number): void {
    this.closedBelow = below;
    this.closedBeforeMs = below * this.opts.paneMs;
    const store = this.store;
    const res = this.opts.resolutions;
    const shard = this.opts.shard;
    const divisions = store.histogramDivisions;
    const deviceWrites: { series: number; paneNo: number; agg: WindowAggregateWire }[] = [];
    const fleet = new Map<string, { key: (string | number)[]; agg: WindowAggregateWire; devices: number }>();
    const slots: number[] = [];
    const n = store.seriesCount;
    for (let l = 0; l < res.length; l++) this.fleetMarks[l] = growMarks(this.fleetMarks[l], n);
    for (let s = 0; s < n; s++) {
      // the series' panes are newest first: skip the open ones, close the rest (oldest first)
      let p = store.newestPane(s);
      while (p >= 0 && store.paneNumber(p) >= below) p = store.olderPane(p);
      const closing: number[] = [];
      for (; p >= 0; p = store.olderPane(p)) if (!this.closing.has(p)) closing.push(p);
      const metric = store.seriesMetric(s);
      for (let i = closing.length - 1; i >= 0; i--) {
        const slot = closing[i];
        const paneNo = store.paneNumber(slot);
        const start = paneNo * this.opts.paneMs;
        const agg = emptyAggregate(start, start + this.opts.paneMs, divisions);
        store.mergePaneInto(slot, agg, true);
        deviceWrites.push({ series: s, paneNo, agg });
        for (let l = 0; l < res.length; l++) {
          const w = Math.floor(start / res[l]) * res[l];
          const id = `${l}:${metric}:${w}`;
          let f = fleet.get(id);
          if (f === undefined) {
            f = { key: ['f', res[l], metric, w, shard], agg: emptyAggregate(w, w + res[l], divisions), devices: 0 };
            fleet.set(id, f);
          }
          mergeAggregate(f.agg, agg);
          if (this.fleetMarks[l][s] !== w) {
            this.fleetMarks[l][s] = w;
            f.devices++;
          }
        }
        this.closing.add(slot);
        slots.push(slot);
      }
    }
    if (slots.length === 0) return;
    const write = this.rollups.transaction(() => {
      for (const d of deviceWrites) this.writeDevice(d.series, d.paneNo, d.agg);
      for (const f of fleet.values()) this.writeFleet(f.key, f.agg, f.devices, below);
    });
    this.track(write.then(() => {
      for (const slot of slots) {
        this.closing.delete(slot);
        store.freePane(slot);
      }
    }));
  }

  private writeDevice(series: number, paneNo: number, agg: WindowAggregateWire): void {
    const store = this.store;
    const device = store.seriesDevice(series);
    const metric = store.seriesMetric(series);
    const res = this.opts.resolutions;
    for (let l = 0; l < res.length; l++) {
      const w = Math.floor(agg.start / res[l]) * res[l];
      const key = ['d', res[l], device, metric, w];
      const old = this.rollups.get(key) as RollupValue | undefined;
      if (old !== undefined && old.lastPaneNo >= paneNo) continue; // merged before a crash
      const merged: RollupValue = old === undefined
        ? { ...copyAgg(agg), start: w, end: w + res[l], lastPaneNo: paneNo }
        : { ...mergeAggregate(old, agg), lastPaneNo: paneNo };
      if (merged.means.length > 256) compressAggregate(merged);
      this.rollups.put(key, merged);
      this.rollups.put(['w', res[l], metric, w, device], 1);
    }
  }

  private writeFleet(key: (string | number)[], agg: WindowAggregateWire, devices: number, below: number): void {
    const old = this.rollups.get(key) as RollupValue | undefined;
    if (old !== undefined && old.lastPaneNo >= below) return; // this sweep was written before a crash
    agg.devices = devices;
    const merged: RollupValue = old === undefined ? { ...agg, lastPaneNo: below } : { ...mergeAggregate(old, agg), lastPaneNo: below };
    if (merged.means.length > 256) compressAggregate(merged);
    this.rollups.put(key, merged);
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
    return { maxTs: this.maxTs, closedBelow: this.closedBelow, lateTotal: this.lateTotal, fleetMarks: this.fleetMarks.map((m) => m.slice()) };
  }

  restore(state: EventTimeState): void {
    this.maxTs = state.maxTs;
    this.closedBelow = state.closedBelow;
    this.closedBeforeMs = state.closedBelow === NONE ? NONE : state.closedBelow * this.opts.paneMs;
    this.lateTotal = state.lateTotal;
    if (state.fleetMarks.length === this.fleetMarks.length) this.fleetMarks = state.fleetMarks.map((m) => Float64Array.from(m));
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
