/**
 * NameLog: one kind of name (device names) of a shard's series table, as a definition log that
 * is also its own index, with no string or Map entry per name.
 *
 * The log holds, in definition order, each name's global id and its UTF-8 bytes end to end
 * (ends[i]: the byte after name i). A checkpoint stores a range of it as typed-array views
 * (rows(): no string per name). Lookups go through two typed arrays:
 * - by id: entryOfId[id] = log entry + 1 (0: unknown), indexed by the global id (a shard holds
 *   ~1/shards of the ids: 4 B an id);
 * - by name: an open-addressing table of (entry + 1, hash) pairs, keyed by an FNV-1a hash of the
 *   bytes, compared by hash then byte by byte (at most half full, doubled when it fills). The
 *   hash sits in the slot so that a probe touches one cache line, not the entry's.
 * A name is a string only while a caller holds it (nameAt decodes on demand: queries, not the
 * ingest path). At 1M devices this replaced ~1M strings, a 1M-entry Map and a 1M-slot array:
 * the worker's heap then holds almost no objects per device, so a full GC stays short, and a
 * restore appends byte ranges (restoreRows) instead of decoding and hashing strings one by one.
 *
 * One owner (the shard worker); append-only: an entry, once defined, keeps its id and bytes, so
 * views of a range stay valid.
 */

import { setBit } from '../storage/device-bits';

/** Names of one kind in a range of its log: ids, and their UTF-8 bytes end to end with byte lengths. */
export interface NameRows {
  ids: Int32Array;
  text: Uint8Array;
  lengths: Uint8Array | Uint16Array | Uint32Array;
}

/** The stored rows' shape checked (a malformed checkpoint group throws): lengths adding up to the text. */
export function checkedNameRows(rows: NameRows | undefined): NameRows {
  if (typeof rows !== 'object' || rows === null) throw new Error('checkpoint names are malformed');
  const { ids, text, lengths } = rows;
  if (!(ids instanceof Int32Array && text instanceof Uint8Array && ArrayBuffer.isView(lengths) && lengths.length === ids.length)) {
    throw new Error('checkpoint names are malformed');
  }
  let total = 0;
  for (let i = 0; i < lengths.length; i++) total += lengths[i]!;
  if (total !== text.byteLength) throw new Error(`checkpoint names hold ${text.byteLength} bytes, their lengths add up to ${total}`);
  return rows;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export class NameLog {
  /** entries defined */
  n = 0;
  private ids: Int32Array<ArrayBuffer> = new Int32Array(256);
  private ends: Uint32Array<ArrayBuffer> = new Uint32Array(256);
  private text: Buffer = Buffer.alloc(4096);
  private used = 0;
  /** per global id: its entry + 1, 0 when unknown */
  private entryOfId: Int32Array<ArrayBuffer> = new Int32Array(1024);
  /** open addressing, slot i at [2i, 2i + 1]: entry + 1 (0: empty) and the hash; a power of two slots, at most half full */
  private slots: Int32Array<ArrayBuffer> = new Int32Array(2 * 1024);
  /** the slot where the last probe() stopped: the entry's, or the empty one where it would go */
  private probedSlot = 0;
  /** a name being looked up, as UTF-8 */
  private probe: Buffer = Buffer.alloc(256);

  /** kind: 'device' or 'metric', for the errors */
  constructor(private readonly kind = 'device') {}

  /** the entry of id, -1 when unknown */
  entryOf(id: number): number {
    return id >= 0 && id < this.entryOfId.length ? this.entryOfId[id]! - 1 : -1;
  }

  /** the id bound to name, -1 when none */
  idOf(name: string): number {
    const len = this.encodeProbe(name);
    const e = this.probe_(this.probe, 0, len, hashOf(this.probe, 0, len));
    return e < 0 ? -1 : this.ids[e]!;
  }

  /** the name of entry e (a new string) */
  nameAt(e: number): string {
    const start = e === 0 ? 0 : this.ends[e - 1]!;
    return this.text.toString('utf8', start, this.ends[e]!);
  }

  /** the name of id, undefined when unknown */
  nameOf(id: number): string | undefined {
    const e = this.entryOf(id);
    return e < 0 ? undefined : this.nameAt(e);
  }

  idAt(e: number): number {
    return this.ids[e]!;
  }

  /**
   * Binds id to name. False when that binding is already there (idempotent); throws when id is
   * bound to another name or name to another id (a bug upstream: ids are global and stable).
   */
  define(id: number, name: string): boolean {
    const len = this.encodeProbe(name);
    return this.defineBytes(id, this.probe, 0, len);
  }

  /** define() from UTF-8 bytes src[start, start + len): one probe finds the name or its slot */
  defineBytes(id: number, src: Uint8Array, start: number, len: number): boolean {
    if (!(Number.isInteger(id) && id >= 0 && id < 2 ** 31)) throw new RangeError(`${this.kind} id must be an integer in [0, 2^31): ${id}`);
    this.reserve(this.n + 1, this.used + len);
    const known = this.entryOf(id);
    const h = hashOf(src, start, len);
    const other = this.probe_(src, start, len, h);
    if (known >= 0) {
      if (other === known) return false;
      throw new Error(`BUG: ${this.kind} id ${id} is bound to "${this.nameAt(known)}", not "${Buffer.from(src.buffer, src.byteOffset + start, len).toString('utf8')}"`);
    }
    if (other >= 0) throw new Error(`BUG: ${this.kind} "${this.nameAt(other)}" is bound to id ${this.ids[other]}, not ${id}`);
    this.append(id, src, start, len, h, this.probedSlot);
    return true;
  }

  /** the log's entries [from, to) as typed-array views (valid while the log only appends) */
  rows(from: number, to: number): NameRows {
    const start = from === 0 ? 0 : this.ends[from - 1]!;
    let longest = 0;
    for (let i = from, prev = start; i < to; i++) {
      const len = this.ends[i]! - prev;
      if (len > longest) longest = len;
      prev = this.ends[i]!;
    }
    // one byte per length for the names the protocol allows (at most 128 ASCII characters)
    const lengths = longest < 0x100 ? new Uint8Array(to - from) : longest < 0x10000 ? new Uint16Array(to - from) : new Uint32Array(to - from);
    for (let i = from, prev = start; i < to; i++) {
      lengths[i - from] = this.ends[i]! - prev;
      prev = this.ends[i]!;
    }
    const end = to === 0 ? 0 : this.ends[to - 1]!;
    return { ids: this.ids.subarray(from, to), text: this.text.subarray(start, end), lengths };
  }

  /** Defines every name of a stored range (checked as define() checks); throws on a malformed one. */
  restoreRows(rows: NameRows | undefined): void {
    const { ids, text, lengths } = checkedNameRows(rows);
    this.reserve(this.n + ids.length, this.used + text.byteLength);
    for (let i = 0, off = 0; i < ids.length; i++) {
      const len = lengths[i]!;
      this.defineBytes(ids[i]!, text, off, len);
      off += len;
    }
  }

  /** the defined ids as a bitmap (bit id set) */
  idBits(): Uint8Array {
    let bits: Uint8Array = new Uint8Array((this.entryOfId.length + 7) >>> 3);
    for (let e = 0; e < this.n; e++) bits = setBit(bits, this.ids[e]!);
    return bits;
  }

  /** bytes of the typed arrays and the text (capacities) */
  bytes(): number {
    return this.ids.byteLength + this.ends.byteLength + this.text.byteLength + this.entryOfId.byteLength + this.slots.byteLength;
  }

  // ---- internals ----------------------------------------------------------------------------

  private encodeProbe(name: string): number {
    if (3 * name.length > this.probe.length) this.probe = Buffer.alloc(3 * name.length);
    return this.probe.write(name, 0, 'utf8');
  }

  /**
   * The entry whose bytes equal src[start, start + len) (hash h), -1 when none; probedSlot is
   * then its slot, or the empty slot where it would go.
   */
  private probe_(src: Uint8Array, start: number, len: number, h: number): number {
    const slots = this.slots;
    const mask = (slots.length >>> 1) - 1;
    const text = this.text;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = slots[2 * i]!;
      if (v === 0) {
        this.probedSlot = i;
        return -1;
      }
      if (slots[2 * i + 1] !== h) continue;
      const e = v - 1;
      const from = e === 0 ? 0 : this.ends[e - 1]!;
      if (this.ends[e]! - from !== len) continue;
      let k = 0;
      while (k < len && text[from + k] === src[start + k]) k++;
      if (k === len) {
        this.probedSlot = i;
        return e;
      }
    }
  }

  /** appends the entry into the empty slot `slot` (from probe_, after reserve()) */
  private append(id: number, src: Uint8Array, start: number, len: number, h: number, slot: number): void {
    // a byte loop: names are short, and a subarray view per name cost more than the copy
    const text = this.text;
    const at = this.used;
    for (let k = 0; k < len; k++) text[at + k] = src[start + k]!;
    this.used += len;
    const e = this.n++;
    this.ids[e] = id;
    this.ends[e] = this.used;
    if (id >= this.entryOfId.length) this.entryOfId = grown(this.entryOfId, Math.max(id + 1, this.entryOfId.length * 2));
    this.entryOfId[id] = e + 1;
    this.slots[2 * slot] = e + 1;
    this.slots[2 * slot + 1] = h;
  }

  private rehash(size: number): void {
    const old = this.slots;
    const slots = this.slots = new Int32Array(2 * size);
    const mask = size - 1;
    for (let j = 0; j < old.length; j += 2) {
      if (old[j] === 0) continue;
      const h = old[j + 1]!;
      let i = h & mask;
      while (slots[2 * i] !== 0) i = (i + 1) & mask;
      slots[2 * i] = old[j]!;
      slots[2 * i + 1] = h;
    }
  }

  /** room for `entries` entries and `textBytes` bytes of text (a restore reserves once) */
  private reserve(entries: number, textBytes: number): void {
    if (entries > this.ids.length) {
      let size = this.ids.length;
      while (size < entries) size *= 2;
      this.ids = grown(this.ids, size);
      this.ends = grown(this.ends, size);
    }
    if (textBytes > this.text.length) {
      let size = this.text.length;
      while (size < textBytes) size *= 2;
      const text = Buffer.alloc(size);
      this.text.copy(text, 0, 0, this.used);
      this.text = text;
    }
    const slotCount = this.slots.length >>> 1;
    if (2 * entries > slotCount) {
      let size = slotCount;
      while (size < 2 * entries) size *= 2;
      this.rehash(size);
    }
  }
}

/** FNV-1a over bytes, then a final avalanche (names differ in their last digits); an int32 */
function hashOf(src: Uint8Array, start: number, len: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < start + len; i++) h = Math.imul(h ^ src[i]!, FNV_PRIME);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & 0x7fffffff;
}

function grown<T extends Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>>(a: T, size: number): T {
  const out = new (a.constructor as { new (n: number): T })(size);
  out.set(a);
  return out;
}
