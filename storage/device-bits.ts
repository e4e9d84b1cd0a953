/**
 * Sets of device ids as bitmaps (device ids are the dictionary's dense integers): a fleet window's
 * devices are stored as one (['b', res, metric, start, shard]), so the exact distinct count of a
 * range is an OR per stored window, not a read per device per window. Pure: the block codec and
 * slice summaries (storage/) and the shard worker's queries share it.
 */

/** sets bit `id`; returns the bitmap (a grown copy when id is past its end) */
export function setBit(bits: Uint8Array, id: number): Uint8Array {
  const byte = id >>> 3;
  let out = bits;
  if (byte >= out.length) {
    out = new Uint8Array(Math.max(byte + 1, out.length * 2));
    out.set(bits);
  }
  out[byte] = out[byte]! | (1 << (id & 7));
  return out;
}

export function hasBit(bits: Uint8Array, id: number): boolean {
  const byte = id >>> 3;
  return byte < bits.length && (bits[byte]! & (1 << (id & 7))) !== 0;
}

/** into | from; returns the result (a grown copy when from is longer) */
export function orInto(into: Uint8Array, from: Uint8Array): Uint8Array {
  let out = into;
  if (from.length > out.length) {
    out = new Uint8Array(from.length);
    out.set(into);
  }
  for (let i = 0; i < from.length; i++) out[i] = out[i]! | from[i]!;
  return out;
}

export function countBits(bits: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bits.length; i++) {
    let b = bits[i]!;
    while (b !== 0) {
      b &= b - 1;
      n++;
    }
  }
  return n;
}
