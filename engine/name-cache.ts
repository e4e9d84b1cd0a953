/**
 * Byte-keyed lookup of the dictionary's ids: a name read from a frame (a byte range and its FNV-1a
 * hash, packed-event.ts) finds its device or metric id without building a string. The dictionary
 * stays the owner of ids; this is a cache in front of it that never goes stale (ids are never
 * reused).
 *
 * Front-end thread only. Open addressing over a power-of-two table of entry indexes; an entry's
 * name bytes are kept in one growing arena. Sized by what is inserted (one entry per distinct name
 * the fast path saw), so memory follows the dictionary's.
 */

export class NameCache {
  /** slot -> entry index + 1 (0: empty) */
  private slots = new Int32Array(1024);
  private mask = 1023;
  private hashes = new Float64Array(512);
  private starts = new Int32Array(512);
  private lengths = new Int32Array(512);
  private ids = new Int32Array(512);
  private entries = 0;
  private arena = new Uint8Array(16 * 1024);
  private arenaUsed = 0;

  get size(): number {
    return this.entries;
  }

  /** The id cached for bytes [at, at + len) of hash h, or -1. */
  lookup(b: Uint8Array, at: number, len: number, h: number): number {
    const slots = this.slots;
    let s = h & this.mask;
    for (;;) {
      const e = slots[s] - 1;
      if (e < 0) return -1;
      if (this.hashes[e] === h && this.lengths[e] === len && this.sameAs(e, b, at, len)) return this.ids[e];
      s = (s + 1) & this.mask;
    }
  }

  /** Caches id for bytes [at, at + len) of hash h (the caller looked it up first). */
  insert(b: Uint8Array, at: number, len: number, h: number, id: number): void {
    if ((this.entries + 1) * 2 > this.slots.length) this.growSlots();
    if (this.entries === this.ids.length) this.growEntries();
    if (this.arenaUsed + len > this.arena.length) {
      const next = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + len));
      next.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = next;
    }
    const e = this.entries++;
    this.arena.set(b.subarray(at, at + len), this.arenaUsed);
    this.starts[e] = this.arenaUsed;
    this.arenaUsed += len;
    this.lengths[e] = len;
    this.hashes[e] = h;
    this.ids[e] = id;
    this.place(e);
  }

  private sameAs(e: number, b: Uint8Array, at: number, len: number): boolean {
    const a = this.arena;
    const s = this.starts[e];
    for (let i = 0; i < len; i++) if (a[s + i] !== b[at + i]) return false;
    return true;
  }

  private place(e: number): void {
    let s = this.hashes[e] & this.mask;
    while (this.slots[s] !== 0) s = (s + 1) & this.mask;
    this.slots[s] = e + 1;
  }

  private growSlots(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    this.mask = this.slots.length - 1;
    for (let e = 0; e < this.entries; e++) this.place(e);
  }

  private growEntries(): void {
    const n = this.ids.length * 2;
    const h = new Float64Array(n); h.set(this.hashes); this.hashes = h;
    const st = new Int32Array(n); st.set(this.starts); this.starts = st;
    const l = new Int32Array(n); l.set(this.lengths); this.lengths = l;
    const id = new Int32Array(n); id.set(this.ids); this.ids = id;
  }
}
