/**
 * The fixed header of a shard checkpoint, readable without decoding the body (the front-end needs
 * each shard's sequence to plan recovery; only the worker decodes the body).
 *
 *   [u32 magic "SLCK"][u32 format][u32 shard][u32 0][f64 lastSeq][body: msgpack]
 *
 * lastSeq: every batch with seq <= lastSeq that touched this shard is in the checkpoint.
 */

export const CHECKPOINT_MAGIC = 0x4b434c53;
export const CHECKPOINT_FORMAT = 1;
export const CHECKPOINT_HEADER_BYTES = 24;

export interface CheckpointHeader {
  shard: number;
  lastSeq: number;
}

export function writeCheckpointHeader(buf: Uint8Array, shard: number, lastSeq: number): void {
  const v = new DataView(buf.buffer, buf.byteOffset, CHECKPOINT_HEADER_BYTES);
  v.setUint32(0, CHECKPOINT_MAGIC, true);
  v.setUint32(4, CHECKPOINT_FORMAT, true);
  v.setUint32(8, shard, true);
  v.setUint32(12, 0, true);
  v.setFloat64(16, lastSeq, true);
}

/** Reads and checks a header; throws an Error that says what is wrong with the checkpoint. */
export function readCheckpointHeader(buf: Uint8Array): CheckpointHeader {
  if (buf.byteLength < CHECKPOINT_HEADER_BYTES) throw new Error(`checkpoint of ${buf.byteLength} bytes is shorter than its header`);
  const v = new DataView(buf.buffer, buf.byteOffset, CHECKPOINT_HEADER_BYTES);
  if (v.getUint32(0, true) !== CHECKPOINT_MAGIC) throw new Error('checkpoint does not start with SLCK: not a Sluice checkpoint');
  const format = v.getUint32(4, true);
  if (format !== CHECKPOINT_FORMAT) throw new Error(`checkpoint format ${format}; this Sluice reads format ${CHECKPOINT_FORMAT}`);
  const lastSeq = v.getFloat64(16, true);
  if (!Number.isSafeInteger(lastSeq) || lastSeq < 0) throw new Error(`checkpoint lastSeq ${lastSeq} is not a sequence`);
  return { shard: v.getUint32(8, true), lastSeq };
}
