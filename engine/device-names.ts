/**
 * The front-end's device names by id, without a string or a Map entry per device: the names'
 * bytes end to end in one arena (each followed by '\n', which no deviceId holds), an offset per id,
 * and an open-addressing index of FNV-1a hashes. At 1M devices a Map<string, number> with its
 * strings and an id -> name array held ~75 B a device on the V8 heap (~74 MiB); this holds ~27.
 *
 * Front-end thread only. Ids are dense from 0 in order of add(). Names are validated deviceIds
 * (ASCII: [A-Za-z0-9_.:-]), so a name's bytes are its UTF-16 code units and the hash of the bytes
 * equals the hash of the string (dictionary.ts deviceHash, the routing hash). The run of ids
 * [a, b) is one slice of the arena, '\n'-joined: how Store persists them (joined(), one string per
 * run of new devices) and how recovery reads them back (addJoined(), no string per name).
 */

import type { JoinedNames } from '../storage';

const EMPTY = 0;
const NL = 10;

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class DeviceNames implements JoinedNames {
  private arena = new Uint8Array(64 * 1024);
  private used = 0;
  /** per id, its name's offset in the arena (the name ends at the next id's start - 1) */
  private starts = new Int32Array(1024);
  /** per id, its name's hash */
  private hashes = new Int32Array(1024);
  /** slot -> id + 1 (0: empty) */
  private slots = new Int32Array(2048);
  private mask = 2047;
  private n = 0;

  get count(): number {
    return this.n;
  }

  /** Bytes held (arena, offsets, hashes, index): what the front-end keeps per device. */
  get bytes(): number {
    return this.arena.byteLength + this.starts.byteLength + this.hashes.byteLength + this.slots.byteLength;
  }

  /** The id of `name`, or -1. */
  lookup(name: string): number {
    const h = fnv(name) | 0;
    const slots = this.slots;
    for (let s = h & this.mask; ; s = (s + 1) & this.mask) {
      const e = slots[s];
      if (e === EMPTY) return -1;
      const id = e - 1;
      if (this.hashes[id] === h && this.equals(id, name)) return id;
    }
  }

  /** Adds a name not present (the caller looked it up first); returns its id. */
  add(name: string): number {
    const len = name.length;
    this.reserve(len + 1);
    const a = this.arena;
    let at = this.used;
    for (let i = 0; i < len; i++) a[at++] = name.charCodeAt(i);
    a[at++] = NL;
    return this.index(at, fnv(name) | 0);
  }

  /**
   * Adds the '\n'-separated names of text (as joined() writes them) in order, ids continuing from
   * count; `text` is latin1 (deviceIds are ASCII). A name already present is an error: a stored
   * run never repeats a name. Returns the number of names added.
   */
  addJoined(text: string): number {
    if (text === '') return 0;
    this.reserve(text.length + 1);
    const a = this.arena;
    const from = this.used;
    a.set(Buffer.from(text, 'latin1'), from);
    a[from + text.length] = NL;
    const end = from + text.length + 1;
    let added = 0;
    let s = from;
    let h = 0x811c9dc5;
    for (let i = from; i < end; i++) {
      const c = a[i];
      if (c !== NL) {
        h = Math.imul(h ^ c, 0x01000193);
        continue;
      }
      this.used = s; // index() reads the name's start from `used`
      this.index(i + 1, h | 0);
      added++;
      s = i + 1;
      h = 0x811c9dc5;
    }
    return added;
  }

  /** The FNV-1a hash of id's name, unsigned: the routing hash (dictionary.ts deviceHash). */
  hash(id: number): number {
    return this.hashes[id] >>> 0;
  }

  /** The name of id (a new string: for the rare paths, a new device's DEFINE or an answer). */
  name(id: number): string {
    if (!(id >= 0 && id < this.n)) throw new RangeError(`device id ${id} is not in [0, ${this.n})`);
    const from = this.starts[id];
    const to = id + 1 < this.n ? this.starts[id + 1] - 1 : this.used - 1;
    return Buffer.from(this.arena.buffer, this.arena.byteOffset + from, to - from).toString('latin1');
  }

  /** The names of ids [from, to), '\n'-joined: one slice of the arena. */
  joined(from: number, to: number): string {
    if (!(from >= 0 && from <= to && to <= this.n)) throw new RangeError(`device ids [${from}, ${to}) are not within [0, ${this.n})`);
    if (from === to) return '';
    const a = this.starts[from];
    const b = to < this.n ? this.starts[to] - 1 : this.used - 1;
    return Buffer.from(this.arena.buffer, this.arena.byteOffset + a, b - a).toString('latin1');
  }

  private equals(id: number, name: string): boolean {
    const from = this.starts[id];
    const len = (id + 1 < this.n ? this.starts[id + 1] : this.used) - 1 - from;
    if (len !== name.length) return false;
    const a = this.arena;
    for (let i = 0; i < len; i++) if (a[from + i] !== name.charCodeAt(i)) return false;
    return true;
  }

  /** Indexes the name that starts at `used` and ends (its '\n' included) before `end`. */
  private index(end: number, h: number): number {
    const id = this.n;
    if (id === this.starts.length) {
      const starts = new Int32Array(id * 2);
      starts.set(this.starts);
      this.starts = starts;
      const hashes = new Int32Array(id * 2);
      hashes.set(this.hashes);
      this.hashes = hashes;
    }
    this.starts[id] = this.used;
    this.hashes[id] = h;
    this.used = end;
    this.n = id + 1;
    if (this.n * 2 > this.slots.length) this.growSlots();
    else this.place(id);
    return id;
  }

  private place(id: number): void {
    let s = this.hashes[id] & this.mask;
    while (this.slots[s] !== EMPTY) s = (s + 1) & this.mask;
    this.slots[s] = id + 1;
  }

  private growSlots(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    this.mask = this.slots.length - 1;
    for (let id = 0; id < this.n; id++) this.place(id);
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.arena.length) return;
    const next = new Uint8Array(Math.max(this.arena.length * 2, this.used + bytes));
    next.set(this.arena.subarray(0, this.used));
    this.arena = next;
  }
}
