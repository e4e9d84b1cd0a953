/**
 * The commit pipeline: reserved batches become visible to the workers in sequence order, only
 * once their WAL entry is on disk (durable mode), or at once (fast mode).
 *
 * Front-end thread only. Group commit: the batches admitted while a group is open share one
 * batch sequence (the seq stamped into their ring records). join() adds a batch already reserved
 * in the rings under the group's seq; when the group closes it becomes one WAL entry, one LMDB
 * put (with the device seqs of its batches, in the same transaction) and one FIFO item, so one
 * commit and one worker wake per ring serve all of its requests. When a group closes
 * (closeIfDue): at the end of an event-loop turn (setImmediate, after uWS has handled every
 * readable socket) in fast mode; in durable mode not before the WAL write in flight has resolved
 * (one write at a time: a slow fsync makes bigger groups, not more commits), and then after the
 * senders the last commit answered came back or SIBLINGS_WAIT_MS passed. Whoever reserves in the
 * rings outside a group (a checkpoint's MARK) goes through submitMark(), which closes the open
 * group first, so the FIFO keeps the rings' order.
 *
 * Each group waits in a FIFO until its WAL append resolves. The FIFO is released from its head
 * only, so a ring never exposes a group while an earlier one is still pending; a released group's
 * batches are answered in the order they joined (an HTTP answer goes out inside uWS cork(), see
 * http-util.ts), then the group is published. A group whose append failed has its event records
 * turned into padding (tombstone) and each of its senders is told it was not accepted; the
 * storage is then in fault until a probe write succeeds. In fast mode a batch is answered when it
 * joins; its group is published and written at the end of the turn.
 *
 * Storage budget: the bytes of WAL entries (the open group's included) plus the latest
 * checkpoints are counted, and for each event of an entry the checkpoint has not covered yet the
 * bytes its reading will take in that checkpoint (READING_RESERVE_BYTES): an entry of COLUMNAR
 * records is half the size of the same events as rows, and without the reserve a run of them
 * could be admitted into a checkpoint larger than the budget (ingest would then stay refused);
 * a batch that would take them over --max-db-size is refused before it is reserved (StorageFull).
 *
 * A sender's callback that throws is a front-end bug: it is reported to the fault guard and the
 * release goes on, so one broken answer never holds back the acks of the batches behind it.
 */

import { EVENT_RECORD_TYPES, type RingProducer } from '../protocol';
import { encodeWalEntry, type RecordBytes, type Store } from '../storage';
import type { AckMode } from './config';
import type { Logger } from './logger';
import type { FaultGuard } from './fault-guard';
import { LatencyHistogram } from './latency-histogram';

export type CommitCallback = (ok: boolean, reason: string) => void;

interface Pending {
  seq: number;
  start: Float64Array;
  end: Float64Array;
  /** 0 pending, 1 written, 2 failed */
  state: number;
  reason: string;
  /** the answers of the group's batches, in the order they joined (emptied once called) */
  done: CommitCallback[];
  /** performance.now() at each batch's join, in the same order (ack latency) */
  joined: number[];
  /** performance.now() when the WAL write was issued (commit latency) */
  issuedAt: number;
}

/** The open group: batches admitted since the last group closed, under one seq, for one WAL entry and one publish. */
interface OpenGroup {
  seq: number;
  start: Float64Array;
  end: Float64Array;
  done: CommitCallback[];
  joined: number[];
  /** (device id, device seq) pairs to store with the entry */
  deviceSeqs: number[];
  batches: number;
}

/** A shard's records of the open group, appended batch by batch (reused from group to group). */
class PartBuffer implements RecordBytes {
  buf = new Uint8Array(64 * 1024);
  length = 0;

  append(src: RecordBytes): void {
    const need = this.length + src.length;
    if (need > this.buf.byteLength) {
      let n = this.buf.byteLength * 2;
      while (n < need) n *= 2;
      const next = new Uint8Array(n);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(src.buf.subarray(0, src.length), this.length);
    this.length = need;
  }
}

const NONE: CommitCallback[] = [];
/**
 * what an admitted reading will take in the shard's next checkpoint (the head keeps a reading in
 * ~20 bytes, bench/README.md): counted in the budget from admission until a checkpoint covers it
 */
const READING_RESERVE_BYTES = 20;
const PROBE_INTERVAL_MS = 1000;
/**
 * the open group is closed early once its records reach this many bytes (~128 WebSocket frames of
 * 1,000 events); ws-msgpack measured the same with 512 KiB (17 frames a commit) and 4 MiB (56)
 */
const GROUP_BYTES_MAX = 4 * 1024 * 1024;
/**
 * How long a group may wait for the senders the last commit answered (closeIfDue). Measured on
 * http-single (64 connections, durable): they come back within ~0.3 ms; 1 ms is also Node's
 * timer granularity, the fallback when they do not.
 */
const SIBLINGS_WAIT_MS = 1;
/**
 * a part buffer grown past this (by one very large batch) is dropped after use rather than kept;
 * up to a group's size it is kept, so WebSocket groups of ~2 MB do not regrow it every commit
 */
const PART_BYTES_KEPT_MAX = GROUP_BYTES_MAX;

export class CommitPipeline {
  private readonly fifo: Pending[] = [];
  private fifoHead = 0;
  /** bytes of WAL entries not yet truncated */
  walBytes = 0;
  /** the readings of those entries, as READING_RESERVE_BYTES each, until a checkpoint covers them */
  walReserve = 0;
  /** (seq, bytes, reserve) of the WAL entries not yet truncated, in seq order, for the budget */
  private readonly walSizes: number[] = [];
  private walSizesHead = 0;
  /** bytes of the latest checkpoint of each shard */
  readonly checkpointBytes: number[];
  faultReason: string | null = null;
  /** called once storage takes writes again after a fault (the server re-persists names) */
  onRecovered: (() => void) | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  /** walAppends: WAL entries (groups) written; walBatches: admitted batches they held */
  readonly counters = { walAppends: 0, walBatches: 0, walFailures: 0, walBytesWritten: 0 };
  /** WAL write issued -> durable (durable mode), and a batch's join -> its answer: read by GET /metrics */
  readonly walCommitSeconds = new LatencyHistogram();
  readonly ackSeconds = new LatencyHistogram();
  /** fault injection (debug route only): the next n WAL appends fail as a full disk would */
  failNextAppends = 0;
  private group: OpenGroup | null = null;
  private readonly parts: PartBuffer[];
  private groupBytes = 0;
  private groupReserve = 0;
  /** durable mode: WAL writes issued and not resolved yet (at most one, bar early closes) */
  private writing = 0;
  /** an endOfTurn immediate is queued */
  private turnQueued = false;
  /** batches the last release answered (their senders tend to send again at once) */
  private answeredLast = 0;
  /** batches joined since the last release */
  private joinedSinceRelease = 0;
  /** performance.now() until which the open group may wait for those senders */
  private siblingsUntil = 0;
  private siblingTimer: NodeJS.Timeout | null = null;
  /** how long a group may wait for the senders just answered (a setting only tests change) */
  siblingsWaitMs = SIBLINGS_WAIT_MS;
  private readonly endOfTurn = (): void => {
    this.turnQueued = false;
    this.closeGuarded();
  };
  private readonly siblingsWaited = (): void => {
    this.siblingTimer = null;
    this.closeGuarded();
  };

  constructor(private readonly store: Store, private readonly producers: RingProducer[],
    readonly mode: AckMode, private readonly maxDbBytes: number, private readonly log: Logger,
    private readonly guard: FaultGuard) {
    this.checkpointBytes = producers.map(() => 0);
    this.parts = producers.map(() => new PartBuffer());
  }

  /** Why a batch of entryBytes cannot be taken now, or null when it can. */
  refusal(entryBytes: number, events = 0): string | null {
    if (this.faultReason !== null) return `storage fault: ${this.faultReason}`;
    const kept = this.walBytes + this.walReserve + this.groupBytes + this.groupReserve + this.checkpointBytes.reduce((a, b) => a + b, 0);
    if (kept + entryBytes + events * READING_RESERVE_BYTES > this.maxDbBytes) {
      return `storage full: ${kept} bytes kept, --max-db-size is ${this.maxDbBytes}; space comes back as checkpoints let the WAL shrink`;
    }
    return null;
  }

  get pendingCount(): number {
    return this.fifo.length - this.fifoHead;
  }

  /** The batch sequence of the open group, or -1 when none is open. */
  get groupSeq(): number {
    return this.group === null ? -1 : this.group.seq;
  }

  /**
   * Adds a batch reserved in the rings between start and end cursors, its records stamped with
   * seq: groupSeq when a group is open, else a new seq, which opens a group. parts are the
   * batch's records per shard (copied now). A device seq (seqDevice >= 0) is stored with the
   * group's WAL entry, in its transaction. done(true) once the group is durable and published,
   * done(false) if not; in fast mode done(true) now.
   */
  join(seq: number, parts: readonly RecordBytes[], start: Float64Array, end: Float64Array,
    seqDevice: number, deviceSeq: number, done: CommitCallback, events = 0): void {
    let g = this.group;
    if (g === null) {
      g = { seq, start: start.slice(), end: end.slice(), done: [], joined: [], deviceSeqs: [], batches: 0 };
      this.group = g;
    } else {
      if (seq !== g.seq) throw new Error(`BUG: a batch of seq ${seq} joins the open group of seq ${g.seq}`);
      g.end.set(end);
    }
    if (!this.turnQueued) {
      this.turnQueued = true;
      setImmediate(this.endOfTurn);
    }
    this.joinedSinceRelease++;
    for (let s = 0; s < parts.length; s++) {
      const p = parts[s];
      if (p.length === 0) continue;
      this.parts[s].append(p);
      this.groupBytes += p.length;
    }
    this.groupReserve += events * READING_RESERVE_BYTES;
    if (seqDevice >= 0) g.deviceSeqs.push(seqDevice, deviceSeq);
    g.batches++;
    if (this.mode === 'fast') {
      if (this.groupBytes >= GROUP_BYTES_MAX) this.closeGroup();
      this.ackSeconds.observe(0);
      done(true, '');
      return;
    }
    g.done.push(done);
    g.joined.push(performance.now());
    if (this.groupBytes >= GROUP_BYTES_MAX) this.closeGroup();
  }

  /**
   * Closes the open group unless it should wait: fast mode closes it at the end of every turn.
   * Durable mode keeps one WAL write in flight: the batches of every turn that ends while it is on
   * its way join one group, so a slow fsync makes bigger groups, not more commits. Once the write
   * resolved and its batches were answered, the group also waits for the senders just answered
   * to send again (as many batches as were answered), for at most siblingsWaitMs: with many
   * clients that each wait for their ack (wrk, devices with one request in flight), the answered
   * half would otherwise always miss the commit that just started, and every commit would carry
   * half of them. A group of senders that do not come back costs them at most that wait.
   */
  /** closeIfDue() from a timer or an immediate: outside every uWS callback a throw would end the process */
  private closeGuarded(): void {
    try {
      this.closeIfDue();
    } catch (err) {
      this.guard.report(err, 'the group commit of a loop turn');
    }
  }

  private closeIfDue(): void {
    if (this.group === null) return;
    if (this.mode === 'fast') {
      this.closeGroup();
      return;
    }
    if (this.writing > 0) return;
    if (this.joinedSinceRelease < this.answeredLast && performance.now() < this.siblingsUntil) {
      if (this.siblingTimer === null) this.siblingTimer = setTimeout(this.siblingsWaited, this.siblingsWaitMs);
      return;
    }
    this.closeGroup();
  }

  /**
   * Ends the open group: one WAL entry (and the device seqs of its batches, same transaction),
   * queued behind the groups before it. Runs from closeIfDue, or at once when the group is large
   * or someone else needs the rings' order (submitMark, idle).
   */
  private closeGroup(): void {
    const g = this.group;
    if (g === null) return;
    this.group = null;
    if (this.siblingTimer !== null) {
      clearTimeout(this.siblingTimer);
      this.siblingTimer = null;
    }
    const entry = encodeWalEntry(this.parts);
    for (let s = 0; s < this.parts.length; s++) {
      const p = this.parts[s];
      p.length = 0;
      if (p.buf.byteLength > PART_BYTES_KEPT_MAX) p.buf = new Uint8Array(64 * 1024);
    }
    this.groupBytes = 0;
    const reserve = this.groupReserve;
    this.groupReserve = 0;
    // the new device names and the device seqs are put in the same synchronous block as the WAL
    // entry: one transaction (a durable entry's names and seqs are durable)
    this.store.flushDeviceNames();
    for (let i = 0; i < g.deviceSeqs.length; i += 2) this.store.putDeviceSeq(g.deviceSeqs[i], g.deviceSeqs[i + 1]);
    this.counters.walBatches += g.batches;
    this.submit(g.seq, entry, reserve, g.start, g.end, g.done, g.joined);
  }

  /** Writes one WAL entry; its group is published (and answered) once it is durable. */
  private submit(seq: number, entry: Buffer, reserve: number, start: Float64Array, end: Float64Array, done: CommitCallback[], joined: number[]): void {
    this.countWal(seq, entry.byteLength, reserve);
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
      write.then(undefined, (err: Error) => this.onWriteFailure(seq, entry.byteLength, err));
      return;
    }
    const p: Pending = { seq, start, end, state: 0, reason: '', done, joined, issuedAt: performance.now() };
    this.fifo.push(p);
    this.writing++;
    write.then(() => {
      this.walCommitSeconds.observe((performance.now() - p.issuedAt) / 1000);
      p.state = 1;
      this.written();
    }, (err: Error) => {
      p.state = 2;
      p.reason = this.onWriteFailure(seq, entry.byteLength, err);
      this.written();
    });
  }

  /** A WAL write resolved: release what it allows, then close the group that gathered meanwhile (closeIfDue). */
  private written(): void {
    this.writing--;
    this.release();
    this.closeIfDue();
  }

  /** Counts a WAL entry in the storage budget (recovery counts the entries it found). */
  countWal(seq: number, bytes: number, reserve = 0): void {
    this.walBytes += bytes;
    this.walReserve += reserve;
    this.walSizes.push(seq, bytes, reserve);
  }

  /** The WAL up to seq was deleted: its bytes leave the budget. */
  walTruncated(upTo: number): void {
    const sizes = this.walSizes;
    let i = this.walSizesHead;
    while (i < sizes.length && sizes[i] <= upTo) {
      this.walBytes -= sizes[i + 1];
      this.walReserve -= sizes[i + 2];
      i += 3;
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

  /**
   * A batch with nothing to write (a MARK), reserved in the rings after every batch admitted so
   * far: published in order with them. The open group (reserved before the mark) is closed first.
   */
  submitMark(start: Float64Array, end: Float64Array, done: CommitCallback): void {
    this.closeGroup();
    if (this.mode === 'fast' || this.pendingCount === 0) {
      this.publish(end);
      done(true, '');
      return;
    }
    // not a sender's batch: no ack latency
    this.fifo.push({ seq: -1, start: start.slice(), end: end.slice(), state: 1, reason: '', done: [done], joined: [], issuedAt: 0 });
  }

  /** Resolves when no batch waits for its WAL write (the open group is closed first). */
  idle(): Promise<void> {
    this.closeGroup();
    if (this.pendingCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private release(): void {
    let answered = 0;
    while (this.fifoHead < this.fifo.length) {
      const p = this.fifo[this.fifoHead];
      if (p.state === 0) break;
      answered += p.done.length;
      if (p.state === 2) {
        for (let s = 0; s < this.producers.length; s++) {
          if (p.start[s] !== p.end[s]) this.producers[s].tombstone(p.start[s], p.end[s], EVENT_RECORD_TYPES);
        }
      }
      this.fifoHead++;
      const done = p.done;
      p.done = NONE;
      const ok = p.state === 1;
      const now = performance.now();
      for (let i = 0; i < p.joined.length; i++) this.ackSeconds.observe((now - p.joined[i]) / 1000);
      // answers first, then the publish (the worker's wake): on one core the woken worker would
      // otherwise run before the answers go out. Both happen before any other request is read,
      // so a client that queries after its ack still finds its events in the worker's ring.
      for (let i = 0; i < done.length; i++) {
        try {
          done[i](ok, p.reason);
        } catch (err) {
          this.guard.report(err, 'the answer to a committed batch');
        }
      }
      this.publish(p.end);
    }
    if (answered > 0) {
      this.answeredLast = answered;
      this.joinedSinceRelease = 0;
      this.siblingsUntil = performance.now() + this.siblingsWaitMs;
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
    // the entry is not in the WAL: it leaves the budget (its walSizes triple is dropped at truncation)
    this.walBytes -= bytes;
    for (let i = this.walSizes.length - 3; i >= this.walSizesHead; i -= 3) {
      if (this.walSizes[i] === seq) {
        this.walReserve -= this.walSizes[i + 2];
        this.walSizes[i + 1] = 0;
        this.walSizes[i + 2] = 0;
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
