/**
 * The commit pipeline: reserved batches become visible to the workers in sequence order, only
 * once their WAL entry is on disk (durable mode), or at once (fast mode).
 *
 * Front-end thread only. Batches are reserved in the rings in seq order; each waits here in a
 * FIFO until its WAL append resolves. The FIFO is released from its head only, so a ring never
 * exposes a batch while an earlier one is still pending. A batch whose append failed has its
 * event records turned into padding (tombstone) and its sender is told it was not accepted; the
 * storage is then in fault until a probe write succeeds.
 *
 * Storage budget: the bytes of WAL entries plus the latest checkpoints are counted; a batch that
 * would take them over --max-db-size is refused before it is reserved (StorageFull).
 *
 * A sender's callback that throws is a front-end bug: it is reported to the fault guard and the
 * release goes on, so one broken answer never holds back the acks of the batches behind it.
 */

import { EVENT_RECORD_TYPES, type RingProducer } from '../protocol';
import type { Store } from '../storage';
import type { AckMode } from './config';
import type { Logger } from './logger';
import type { FaultGuard } from './fault-guard';

export type CommitCallback = (ok: boolean, reason: string) => void;

interface Pending {
  seq: number;
  start: Float64Array;
  end: Float64Array;
  /** 0 pending, 1 written, 2 failed */
  state: number;
  reason: string;
  done: CommitCallback | null;
}

const PROBE_INTERVAL_MS = 1000;

export class CommitPipeline {
  private readonly fifo: Pending[] = [];
  private fifoHead = 0;
  /** bytes of WAL entries not yet truncated */
  walBytes = 0;
  /** (seq, bytes) of the WAL entries not yet truncated, in seq order, for the budget */
  private readonly walSizes: number[] = [];
  private walSizesHead = 0;
  /** bytes of the latest checkpoint of each shard */
  readonly checkpointBytes: number[];
  faultReason: string | null = null;
  /** called once storage takes writes again after a fault (the server re-persists names) */
  onRecovered: (() => void) | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  readonly counters = { walAppends: 0, walFailures: 0, walBytesWritten: 0 };
  /** fault injection (debug route only): the next n WAL appends fail as a full disk would */
  failNextAppends = 0;

  constructor(private readonly store: Store, private readonly producers: RingProducer[],
    readonly mode: AckMode, private readonly maxDbBytes: number, private readonly log: Logger,
    private readonly guard: FaultGuard) {
    this.checkpointBytes = producers.map(() => 0);
  }

  /** Why a batch of entryBytes cannot be taken now, or null when it can. */
  refusal(entryBytes: number): string | null {
    if (this.faultReason !== null) return `storage fault: ${this.faultReason}`;
    const kept = this.walBytes + this.checkpointBytes.reduce((a, b) => a + b, 0);
    if (kept + entryBytes > this.maxDbBytes) {
      return `storage full: ${kept} bytes kept, --max-db-size is ${this.maxDbBytes}; space comes back as checkpoints let the WAL shrink`;
    }
    return null;
  }

  get pendingCount(): number {
    return this.fifo.length - this.fifoHead;
  }

  /**
   * Takes a batch reserved in the rings between start and end cursors. The WAL append is issued
   * now (with whatever else the caller puts in the same event-loop turn, e.g. the device's seq:
   * one transaction). done(true) once the batch is durable and published, done(false) if not.
   */
  submit(seq: number, entry: Buffer, start: Float64Array, end: Float64Array, done: CommitCallback): void {
    this.countWal(seq, entry.byteLength);
    this.counters.walAppends++;
    this.counters.walBytesWritten += entry.byteLength;
    let write: Promise<unknown>;
    if (this.failNextAppends > 0) {
      this.failNextAppends--;
      write = Promise.reject(new Error('injected WAL write failure (debug route)'));
    } else {
      write = this.store.appendWal(seq, entry);
    }
    if (this.mode === 'fast') {
      this.publish(end);
      done(true, '');
      write.then(undefined, (err: Error) => this.onWriteFailure(seq, entry.byteLength, err));
      return;
    }
    const p: Pending = { seq, start: start.slice(), end: end.slice(), state: 0, reason: '', done };
    this.fifo.push(p);
    write.then(() => {
      p.state = 1;
      this.release();
    }, (err: Error) => {
      p.state = 2;
      p.reason = this.onWriteFailure(seq, entry.byteLength, err);
      this.release();
    });
  }

  /** Counts a WAL entry in the storage budget (recovery counts the entries it found). */
  countWal(seq: number, bytes: number): void {
    this.walBytes += bytes;
    this.walSizes.push(seq, bytes);
  }

  /** The WAL up to seq was deleted: its bytes leave the budget. */
  walTruncated(upTo: number): void {
    const sizes = this.walSizes;
    let i = this.walSizesHead;
    while (i < sizes.length && sizes[i] <= upTo) {
      this.walBytes -= sizes[i + 1];
      i += 2;
    }
    if (i >= sizes.length) {
      sizes.length = 0;
      i = 0;
    } else if (i > 4096) {
      sizes.splice(0, i);
      i = 0;
    }
    this.walSizesHead = i;
  }

  /** A batch with nothing to write (a MARK): published in order with the others. */
  submitMark(start: Float64Array, end: Float64Array, done: CommitCallback): void {
    if (this.mode === 'fast' || this.pendingCount === 0) {
      this.publish(end);
      done(true, '');
      return;
    }
    this.fifo.push({ seq: -1, start: start.slice(), end: end.slice(), state: 1, reason: '', done });
  }

  /** Resolves when no batch waits for its WAL write. */
  idle(): Promise<void> {
    if (this.pendingCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private release(): void {
    while (this.fifoHead < this.fifo.length) {
      const p = this.fifo[this.fifoHead];
      if (p.state === 0) break;
      if (p.state === 2) {
        for (let s = 0; s < this.producers.length; s++) {
          if (p.start[s] !== p.end[s]) this.producers[s].tombstone(p.start[s], p.end[s], EVENT_RECORD_TYPES);
        }
      }
      this.publish(p.end);
      this.fifoHead++;
      const done = p.done;
      p.done = null;
      if (done === null) continue;
      try {
        done(p.state === 1, p.reason);
      } catch (err) {
        this.guard.report(err, 'the answer to a committed batch');
      }
    }
    if (this.fifoHead === this.fifo.length) {
      this.fifo.length = 0;
      this.fifoHead = 0;
      const w = this.idleWaiters.splice(0);
      for (const f of w) f();
    } else if (this.fifoHead > 1024) {
      this.fifo.splice(0, this.fifoHead);
      this.fifoHead = 0;
    }
  }

  private publish(end: Float64Array): void {
    for (let s = 0; s < this.producers.length; s++) this.producers[s].publishTo(end[s]);
  }

  private onWriteFailure(seq: number, bytes: number, err: Error): string {
    // the entry is not in the WAL: it leaves the budget (its walSizes pair is dropped at truncation)
    this.walBytes -= bytes;
    for (let i = this.walSizes.length - 2; i >= this.walSizesHead; i -= 2) {
      if (this.walSizes[i] === seq) {
        this.walSizes[i + 1] = 0;
        break;
      }
    }
    this.counters.walFailures++;
    const reason = `WAL write of batch ${seq} failed: ${err.message}`;
    if (this.faultReason === null) {
      this.faultReason = reason;
      this.log.error({ err, seq }, 'storage fault: ingest answers 503 until a probe write succeeds');
      this.scheduleProbe();
    }
    return reason;
  }

  private scheduleProbe(): void {
    if (this.probeTimer !== null) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      this.store.probe().then(() => {
        this.log.info({ after: this.faultReason }, 'storage recovered: ingest accepted again');
        if (this.onRecovered !== null) this.onRecovered();
        this.faultReason = null;
      }, () => this.scheduleProbe());
    }, PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  stop(): void {
    if (this.probeTimer !== null) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }
}
