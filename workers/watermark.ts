/**
 * The watermark of one shard, alone: arithmetic over the event times applied, no I/O, no clock.
 *
 * - maxTs: the newest event time applied (-Infinity before the first).
 * - watermark = maxTs - lateness: every window that ends at or before it is final.
 * - closedBelow: the pane number below which every pane is closed, i.e. floor(watermark / pane);
 *   an event whose pane is below it is too late for the open state. It moves only forward, and
 *   only when its owner says the panes below the new value were handed over (markClosed), so the
 *   decision "too late" and the closing stay in step even when closing is asynchronous.
 *
 * Determinism: everything is decided from the event times in ring order, so replaying the same
 * records after a checkpoint makes the same decisions (recovery relies on it).
 * One owner (the shard worker's event-time code); snapshot()/restore() for checkpoints.
 */

const NONE = -Infinity;

export interface WatermarkState {
  maxTs: number;
  closedBelow: number;
}

export class Watermark {
  maxTs = NONE;
  closedBelow = NONE;
  /** closedBelow * paneMs: the hot path compares event times with it */
  closedBeforeMs = NONE;

  constructor(readonly paneMs: number, readonly latenessMs: number) {
    if (!(paneMs > 0) || !(latenessMs >= 0)) throw new RangeError(`Watermark: paneMs ${paneMs} must be > 0 and latenessMs ${latenessMs} >= 0`);
  }

  /** Too late for the open state: the event's pane is closed. */
  isLate(ts: number): boolean {
    return ts < this.closedBeforeMs;
  }

  observe(ts: number): void {
    if (ts > this.maxTs) this.maxTs = ts;
  }

  /** maxTs - lateness, or -Infinity before the first event. */
  get watermark(): number {
    return this.maxTs === NONE ? NONE : this.maxTs - this.latenessMs;
  }

  /** The pane number everything below which should now be closed: > closedBelow when closing is due, else closedBelow. */
  dueBelow(): number {
    if (this.maxTs === NONE) return this.closedBelow;
    const below = Math.floor((this.maxTs - this.latenessMs) / this.paneMs);
    return below > this.closedBelow ? below : this.closedBelow;
  }

  /** The panes below `below` are closed: events for them are too late from now on. */
  markClosed(below: number): void {
    if (below < this.closedBelow) throw new RangeError(`Watermark: closedBelow may not move back (${this.closedBelow} -> ${below})`);
    this.closedBelow = below;
    this.closedBeforeMs = below * this.paneMs;
  }

  snapshot(): WatermarkState {
    return { maxTs: this.maxTs, closedBelow: this.closedBelow };
  }

  restore(state: WatermarkState): void {
    this.maxTs = state.maxTs;
    this.closedBelow = state.closedBelow;
    this.closedBeforeMs = state.closedBelow === NONE ? NONE : state.closedBelow * this.paneMs;
  }
}
