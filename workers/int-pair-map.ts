/**
 * IntPairMap: open-addressing hash map from a pair of non-negative integers to an int32 value.
 *
 * Runs in a shard worker thread (used by the pane store on the ingest hot path).
 *
 * Contract:
 * - key `a` is an int32 in [0, 2^31); key `b` is an integer in [0, 2^53) (e.g. a pane number,
 *   which exceeds int32 when paneMs is small); values are int32 and must not be -1, since
 *   `get()` answers -1 for an absent key.
 * - `get()` and `set()` allocate nothing, except `set()` when the table grows: the capacity is a
 *   power of two and doubles when the load would exceed 1/2 (amortised O(1)).
 * - `delete()` uses backward-shift deletion (no tombstones), so a long-lived map with churn (panes
 *   opened and closed) never degrades.
 * - Not thread-safe; one owner.
 */

const EMPTY = -1;
/** 2^30 slots is far beyond any shard's working set; reaching it is a bug upstream. */
const CAPACITY_MAX = 1 << 30;
const TWO_POW_32 = 4294967296;

export class IntPairMap {
  private keysA: Int32Array;
  private keysB: Float64Array;
  private values: Int32Array;
  private mask: number;
  private count = 0;

  /** bytes of the table's typed arrays */
  bytes(): number {
    return this.keysA.byteLength + this.keysB.byteLength + this.values.byteLength;
  }

  constructor(initialCapacity = 16) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.keysA = new Int32Array(capacity).fill(EMPTY);
    this.keysB = new Float64Array(capacity);
    this.values = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  get capacity(): number {
    return this.mask + 1;
  }

  /** value stored for (a, b), or -1 when absent */
  get(a: number, b: number): number {
    const keysA = this.keysA;
    const keysB = this.keysB;
    const mask = this.mask;
    let i = hashPair(a, b) & mask;
    for (;;) {
      const ka = keysA[i]!;
      if (ka === EMPTY) return -1;
      if (ka === a && keysB[i] === b) return this.values[i]!;
      i = (i + 1) & mask;
    }
  }

  set(a: number, b: number, value: number): void {
    // Only the insert path checks keys: an out-of-range key would silently alias another.
    let i = this.find(a, b);
    if (i >= 0) {
      this.values[i] = value;
      return;
    }
    if (!(a >= 0 && a <= 0x7fffffff && (a | 0) === a)) throw new RangeError(`IntPairMap: key a out of range: ${a}`);
    if (!(b >= 0 && Number.isSafeInteger(b))) throw new RangeError(`IntPairMap: key b out of range: ${b}`);
    if (value === -1 || (value | 0) !== value) throw new RangeError(`IntPairMap: value must be an int32 other than -1: ${value}`);
    if ((this.count + 1) * 2 > this.mask + 1) {
      this.grow();
    }
    i = hashPair(a, b) & this.mask;
    while (this.keysA[i] !== EMPTY) i = (i + 1) & this.mask;
    this.keysA[i] = a;
    this.keysB[i] = b;
    this.values[i] = value;
    this.count++;
  }

  /** removes (a, b); returns whether it was present */
  delete(a: number, b: number): boolean {
    let i = this.find(a, b);
    if (i < 0) return false;
    const keysA = this.keysA;
    const keysB = this.keysB;
    const values = this.values;
    const mask = this.mask;
    // Backward-shift: move later members of the probe run into the hole when their home slot
    // does not lie (cyclically) strictly between the hole and their current position.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const ka = keysA[j]!;
      if (ka === EMPTY) break;
      const home = hashPair(ka, keysB[j]!) & mask;
      const between = i <= j ? i < home && home <= j : i < home || home <= j;
      if (between) continue;
      keysA[i] = ka;
      keysB[i] = keysB[j]!;
      values[i] = values[j]!;
      i = j;
    }
    keysA[i] = EMPTY;
    this.count--;
    return true;
  }

  clear(): void {
    this.keysA.fill(EMPTY);
    this.count = 0;
  }

  /** calls fn for every entry, in table order (not on any hot path) */
  forEach(fn: (a: number, b: number, value: number) => void): void {
    const keysA = this.keysA;
    for (let i = 0; i <= this.mask; i++) {
      const ka = keysA[i]!;
      if (ka !== EMPTY) fn(ka, this.keysB[i]!, this.values[i]!);
    }
  }

  private find(a: number, b: number): number {
    const keysA = this.keysA;
    const mask = this.mask;
    let i = hashPair(a, b) & mask;
    for (;;) {
      const ka = keysA[i]!;
      if (ka === EMPTY) return -1;
      if (ka === a && this.keysB[i] === b) return i;
      i = (i + 1) & mask;
    }
  }

  /** room for n entries without growing (a restore sizes the table once, not ~20 doublings) */
  reserve(n: number): void {
    let capacity = this.mask + 1;
    while (n * 2 > capacity) capacity *= 2;
    if (capacity > this.mask + 1) this.grow(capacity);
  }

  private grow(capacity = (this.mask + 1) * 2): void {
    if (capacity > CAPACITY_MAX) throw new RangeError(`IntPairMap: capacity limit ${CAPACITY_MAX} reached`);
    const oldA = this.keysA;
    const oldB = this.keysB;
    const oldV = this.values;
    this.keysA = new Int32Array(capacity).fill(EMPTY);
    this.keysB = new Float64Array(capacity);
    this.values = new Int32Array(capacity);
    this.mask = capacity - 1;
    const mask = this.mask;
    for (let k = 0; k < oldA.length; k++) {
      const a = oldA[k]!;
      if (a === EMPTY) continue;
      const b = oldB[k]!;
      let i = hashPair(a, b) & mask;
      while (this.keysA[i] !== EMPTY) i = (i + 1) & mask;
      this.keysA[i] = a;
      this.keysB[i] = b;
      this.values[i] = oldV[k]!;
    }
  }
}

/**
 * Mixes (a, low 32 bits of b, high bits of b) with multiply-xorshift steps (murmur3 finaliser
 * constants). Sequential pane numbers and sequential series ids must spread over the table, since
 * linear probing punishes clustered hashes.
 */
function hashPair(a: number, b: number): number {
  const lo = b >>> 0;
  const hi = (b / TWO_POW_32) | 0;
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h ^= Math.imul(lo, 0xcc9e2d51);
  h = Math.imul(h ^ (h >>> 15), 0x27d4eb2f);
  h ^= Math.imul(hi, 0x1b873593);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
