/**
 * Single-producer single-consumer ring of variable-length records in a SharedArrayBuffer.
 *
 * Contract:
 * - Exactly one thread owns the RingProducer (the engine's front-end thread) and exactly one owns
 *   the RingConsumer (the shard worker). Neither is safe to share.
 * - A record is `[u32 totalBytes][u32 type][payload]`, totalBytes a multiple of 8 and at most
 *   `recordBytesMax` (a quarter of the capacity, so a record always fits once the ring drains).
 *   A record is always contiguous: when it does not fit before the end of the data region the
 *   producer writes a PAD record over the rest and starts again at offset 0.
 * - Cursors are byte counts modulo 2^32 held in Int32 slots on separate cache lines; the producer
 *   publishes with one Atomics.store per batch, the consumer frees with one store per poll.
 * - Wake-ups: the consumer raises SLEEPING before it waits on HEAD with Atomics.waitAsync; the
 *   producer notifies only when it sees SLEEPING, so a busy ring costs no notify at all.
 *   Both sides use sequentially consistent Atomics, so either the producer sees SLEEPING or the
 *   consumer's re-check sees the new HEAD: no lost wake-up.
 */

export const RING_HEAD = 0; // Int32 index, producer cursor
export const RING_TAIL = 16; // Int32 index (byte 64): consumer cursor, own cache line
export const RING_SLEEPING = 32; // Int32 index (byte 128): consumer waits when 1
const STATS_BYTE_OFFSET = 192; // RING_STAT_SLOTS Float64 slots written only by the consumer
export const RING_STAT_EVENTS = 0;
export const RING_STAT_RECORDS = 1;
// the shard's state as its worker last published it: /healthz reads these without a task, so a
// shard busy closing windows is seen as busy (with the age of its heartbeat), not as missing
export const RING_STAT_SERIES = 2;
export const RING_STAT_PANES = 3;
export const RING_STAT_WATERMARK = 4;
export const RING_STAT_MAX_EVENT_TIME = 5;
export const RING_STAT_LATE = 6;
/** wall-clock ms of the worker's last pass through its loop */
export const RING_STAT_HEARTBEAT = 7;
/** readings kept as corrections of final windows (GET /metrics reads these without a task too) */
export const RING_STAT_CORRECTED = 8;
/** slices queued or being sealed: the sealing backlog */
export const RING_STAT_SEAL_QUEUED = 9;
/** slices sealed since the start */
export const RING_STAT_SEALED = 10;
const RING_STAT_SLOTS = 16;
export const RING_HEADER_BYTES = STATS_BYTE_OFFSET + RING_STAT_SLOTS * 8;
export const RECORD_HEADER_BYTES = 8;
export const RECORD_PAD = 0;

export const RING_BYTES_MIN = 64 * 1024;
export const RING_BYTES_MAX = 1024 * 1024 * 1024;

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function createRingBuffer(capacityBytes: number): SharedArrayBuffer {
  if (!isPowerOfTwo(capacityBytes) || capacityBytes < RING_BYTES_MIN || capacityBytes > RING_BYTES_MAX) {
    throw new RangeError(`ring capacity ${capacityBytes} must be a power of two between ${RING_BYTES_MIN} and ${RING_BYTES_MAX} bytes`);
  }
  return new SharedArrayBuffer(RING_HEADER_BYTES + capacityBytes);
}

abstract class RingSide {
  readonly capacity: number;
  readonly mask: number;
  readonly recordBytesMax: number;
  /** the data region, offsets returned by the ring index into these */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly f64: Float64Array;
  protected readonly ctl: Int32Array;
  protected readonly stats: Float64Array;

  constructor(readonly sab: SharedArrayBuffer) {
    const capacity = sab.byteLength - RING_HEADER_BYTES;
    if (!isPowerOfTwo(capacity)) throw new RangeError(`ring data region ${capacity} is not a power of two`);
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.recordBytesMax = capacity >>> 2;
    this.bytes = new Uint8Array(sab, RING_HEADER_BYTES, capacity);
    this.view = new DataView(sab, RING_HEADER_BYTES, capacity);
    this.f64 = new Float64Array(sab, RING_HEADER_BYTES, capacity >>> 3);
    this.ctl = new Int32Array(sab, 0, STATS_BYTE_OFFSET >>> 2);
    this.stats = new Float64Array(sab, STATS_BYTE_OFFSET, RING_STAT_SLOTS);
  }

  /** bytes published and not yet consumed */
  usedBytes(): number {
    return (Atomics.load(this.ctl, RING_HEAD) - Atomics.load(this.ctl, RING_TAIL)) >>> 0;
  }

  stat(slot: number): number {
    return this.stats[slot];
  }
}

export class RingProducer extends RingSide {
  private head: number; // local, includes reserved but unpublished records
  private published: number;
  private cachedTail: number;
  /**
   * Bytes reserved and not yet consumed past which a new batch waits (hasBacklogRoom): how long
   * a query waits for the ring to be applied is this backlog's work, while one batch of any size
   * up to the capacity still fits an emptier ring. The capacity by default.
   */
  backlogMax: number;

  constructor(sab: SharedArrayBuffer, backlogMax?: number) {
    super(sab);
    this.backlogMax = backlogMax ?? this.capacity;
    this.head = Atomics.load(this.ctl, RING_HEAD) >>> 0;
    this.published = this.head;
    this.cachedTail = Atomics.load(this.ctl, RING_TAIL) >>> 0;
  }

  /**
   * Reserves a contiguous record of totalBytes (a multiple of 8, header included) and writes its
   * header. Returns the data offset of the record, or -1 when the ring is too full (expected: the
   * caller applies backpressure). Nothing is visible to the consumer before publish().
   */
  tryReserve(totalBytes: number, type: number): number {
    if ((totalBytes & 7) !== 0 || totalBytes < RECORD_HEADER_BYTES || totalBytes > this.recordBytesMax) {
      throw new RangeError(`ring record of ${totalBytes} bytes: must be a multiple of 8 between 8 and ${this.recordBytesMax}`);
    }
    let pos = this.head & this.mask;
    const contiguous = this.capacity - pos;
    const need = totalBytes <= contiguous ? totalBytes : contiguous + totalBytes;
    if (need > this.capacity - ((this.head - this.cachedTail) >>> 0)) {
      this.cachedTail = Atomics.load(this.ctl, RING_TAIL) >>> 0;
      if (need > this.capacity - ((this.head - this.cachedTail) >>> 0)) return -1;
    }
    if (totalBytes > contiguous) {
      this.view.setUint32(pos, contiguous, true);
      this.view.setUint32(pos + 4, RECORD_PAD, true);
      this.head = (this.head + contiguous) >>> 0;
      pos = 0;
    }
    this.view.setUint32(pos, totalBytes, true);
    this.view.setUint32(pos + 4, type, true);
    this.head = (this.head + totalBytes) >>> 0;
    return pos;
  }

  /**
   * Copies a complete staged record (header included) into the ring. Returns false when it does
   * not fit (expected: the caller abandons the batch and applies backpressure).
   */
  tryWriteRecord(src: Uint8Array, start: number, totalBytes: number): boolean {
    const off = this.tryReserve(totalBytes, src[start + 4] | (src[start + 5] << 8) | (src[start + 6] << 16) | (src[start + 7] << 24));
    if (off < 0) return false;
    this.bytes.set(src.subarray(start + RECORD_HEADER_BYTES, start + totalBytes), off + RECORD_HEADER_BYTES);
    return true;
  }

  /** Whether a new batch may start reserving: the backlog (reserved, not consumed) is under backlogMax. */
  hasBacklogRoom(): boolean {
    if (((this.head - this.cachedTail) >>> 0) < this.backlogMax) return true;
    this.cachedTail = Atomics.load(this.ctl, RING_TAIL) >>> 0;
    return ((this.head - this.cachedTail) >>> 0) < this.backlogMax;
  }

  /** The producer's cursor after every reservation so far (published or not). */
  get reservedCursor(): number {
    return this.head;
  }

  /** Forgets every reservation since the last publish (all-or-nothing batches across rings). */
  abandon(): void {
    this.head = this.published;
  }

  /** Forgets the reservations made after `cursor` (which must not be published yet). */
  rewind(cursor: number): void {
    if (((this.head - cursor) >>> 0) > ((this.head - this.published) >>> 0)) {
      throw new Error(`ring rewind to ${cursor}: before the published cursor ${this.published}`);
    }
    this.head = cursor >>> 0;
  }

  /**
   * Turns the reserved records in [from, to) whose type is in `types` into padding the consumer
   * skips: a batch whose WAL write failed leaves the ring without being applied, while batches
   * reserved after it go on (its DEFINE records stay: later batches may rely on them).
   */
  tombstone(from: number, to: number, types: readonly number[]): void {
    let c = from >>> 0;
    while (c !== (to >>> 0)) {
      const pos = c & this.mask;
      const total = this.view.getUint32(pos, true);
      if (total < RECORD_HEADER_BYTES || (total & 7) !== 0) throw new Error(`ring tombstone: no record at cursor ${c}`);
      if (types.includes(this.view.getUint32(pos + 4, true))) this.view.setUint32(pos + 4, RECORD_PAD, true);
      c = (c + total) >>> 0;
    }
  }

  /** Makes every record reserved before `cursor` visible, and wakes the consumer if it sleeps. */
  publishTo(cursor: number): void {
    const c = cursor >>> 0;
    if (c === this.published) return;
    if (((c - this.published) >>> 0) > ((this.head - this.published) >>> 0)) {
      throw new Error(`ring publishTo ${c}: beyond the reserved cursor ${this.head}`);
    }
    this.published = c;
    Atomics.store(this.ctl, RING_HEAD, c | 0);
    if (Atomics.load(this.ctl, RING_SLEEPING) !== 0) Atomics.notify(this.ctl, RING_HEAD);
  }

  /** Makes every reserved record visible and wakes the consumer if it sleeps. */
  publish(): void {
    this.publishTo(this.head);
  }

}

/** Called for each record: offset of the record header in the data region, its size and type. */
export interface RecordHandler {
  onRecord(offset: number, totalBytes: number, type: number): void;
}

export class RingConsumer extends RingSide {
  private tail: number;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.tail = Atomics.load(this.ctl, RING_TAIL) >>> 0;
  }

  /**
   * Hands every published record to the handler, up to about budgetBytes, then frees them with one
   * store. Returns the bytes consumed (0 when the ring was empty).
   */
  poll(handler: RecordHandler, budgetBytes: number): number {
    const head = Atomics.load(this.ctl, RING_HEAD) >>> 0;
    let tail = this.tail;
    let consumed = 0;
    while (tail !== head && consumed < budgetBytes) {
      const pos = tail & this.mask;
      const total = this.view.getUint32(pos, true);
      const type = this.view.getUint32(pos + 4, true);
      if (total < RECORD_HEADER_BYTES || (total & 7) !== 0 || total > this.capacity - pos) {
        throw new Error(`ring corrupt at cursor ${tail}: record of ${total} bytes, type ${type}`);
      }
      if (type !== RECORD_PAD) handler.onRecord(pos, total, type);
      tail = (tail + total) >>> 0;
      consumed += total;
    }
    if (consumed !== 0) {
      this.tail = tail;
      Atomics.store(this.ctl, RING_TAIL, tail | 0);
    }
    return consumed;
  }

  /**
   * Resolves when the ring may hold data. Returns null when it already does (poll again).
   * Keeps the worker's event loop free, unlike Atomics.wait.
   */
  waitForData(): Promise<unknown> | null {
    Atomics.store(this.ctl, RING_SLEEPING, 1);
    const head = Atomics.load(this.ctl, RING_HEAD);
    if ((head >>> 0) !== this.tail) {
      Atomics.store(this.ctl, RING_SLEEPING, 0);
      return null;
    }
    const w = Atomics.waitAsync(this.ctl, RING_HEAD, head);
    if (!w.async) {
      Atomics.store(this.ctl, RING_SLEEPING, 0);
      return null;
    }
    return w.value;
  }

  /** Call after waking, before polling. */
  awake(): void {
    Atomics.store(this.ctl, RING_SLEEPING, 0);
  }

  /** Counters for the front-end (/healthz, bench): plain stores, read without a task. */
  addStat(slot: number, n: number): void {
    this.stats[slot] += n;
  }

  setStat(slot: number, value: number): void {
    this.stats[slot] = value;
  }
}
