/**
 * A WAL entry: one admitted batch, as the ring records it produced for each shard.
 *
 *   [u32 format = 1][u32 shards][shards x u32 byteLength][zero pad to 8][shard 0 records]...
 *
 * Replaying an entry is writing each shard's records into that shard's ring again. The records
 * carry the batch sequence, so a worker can tell replayed records it already applied.
 */

export const WAL_ENTRY_FORMAT = 1;

export interface RecordBytes {
  buf: Uint8Array;
  length: number;
}

function headerBytes(shards: number): number {
  return (8 + 4 * shards + 7) & ~7;
}

export function encodeWalEntry(parts: readonly RecordBytes[]): Buffer {
  const head = headerBytes(parts.length);
  let total = head;
  for (const p of parts) total += p.length;
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(WAL_ENTRY_FORMAT, 0);
  out.writeUInt32LE(parts.length, 4);
  out.fill(0, 8, head);
  let at = head;
  for (let s = 0; s < parts.length; s++) {
    out.writeUInt32LE(parts[s].length, 8 + 4 * s);
    out.set(parts[s].buf.subarray(0, parts[s].length), at);
    at += parts[s].length;
  }
  return out;
}

/** The shards' record bytes of an entry (views into it); throws on a malformed entry. */
export function decodeWalEntry(entry: Uint8Array): Uint8Array[] {
  const v = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
  if (entry.byteLength < 8 || v.getUint32(0, true) !== WAL_ENTRY_FORMAT) {
    throw new Error(`WAL entry of ${entry.byteLength} bytes has format ${entry.byteLength >= 4 ? v.getUint32(0, true) : '?'}, expected ${WAL_ENTRY_FORMAT}`);
  }
  const shards = v.getUint32(4, true);
  let at = headerBytes(shards);
  const parts: Uint8Array[] = [];
  for (let s = 0; s < shards; s++) {
    const len = v.getUint32(8 + 4 * s, true);
    if (at + len > entry.byteLength) throw new Error(`WAL entry truncated: shard ${s} needs ${len} bytes at ${at} of ${entry.byteLength}`);
    parts.push(entry.subarray(at, at + len));
    at += len;
  }
  return parts;
}
