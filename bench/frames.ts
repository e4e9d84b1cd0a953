/**
 * Precomputed load. A WebSocket frame is split in two parts that are written back to back
 * (one writev): a small head per (device, variant) = the client frame header with a zero mask key
 * (valid per RFC 6455, XOR with 0 leaves the payload as is, so nothing is masked per send) + the
 * payload's device part, and a body per variant shared by every device. That covers 10k devices
 * with a few MB instead of one full frame per device.
 *
 * msgpack payloads are the envelope {deviceId, events:[{timestamp, metrics:{cpu}}]} whose events
 * are msgpackr records (`new Packr({useRecords:true})`): the server decodes records faster than
 * maps. 'msgpack-maps' payloads are the same envelope with every event a plain msgpack map (what
 * most clients send: msgpack libraries other than msgpackr have no records). JSON payloads are the
 * same envelope as text. Columnar payloads are the protocol's columnar
 * batch {deviceId, timestamps: bin f64 LE, metrics: {cpu: bin f64 LE}}.
 */

import { Packr } from 'msgpackr';

export type WsFrameKind = 'msgpack' | 'msgpack-maps' | 'json' | 'columnar';

export interface FrameSet {
  kind: WsFrameKind;
  devices: number;
  variants: number;
  eventsPerFrame: number;
  /** heads[device * variants + variant] */
  heads: Buffer[];
  bodies: Buffer[];
  /** payload bytes (without the WebSocket header) of heads[i] + its body */
  payloadBytes: Float64Array;
}

export const VARIANTS = 8;
/** readings of one frame are this far apart in event time (1,000 events span 10 s) */
export const EVENT_SPACING_MS = 10;

export function deviceId(i: number): string {
  return `dev-${String(i).padStart(6, '0')}`;
}

/** A client WebSocket frame header (FIN, opcode, masked, zero mask key) for a payload of len bytes. */
export function wsHeader(opcode: number, len: number): Buffer {
  if (len < 126) return Buffer.from([0x80 | opcode, 0x80 | len, 0, 0, 0, 0]);
  if (len < 65536) return Buffer.from([0x80 | opcode, 0x80 | 126, len >>> 8, len & 255, 0, 0, 0, 0]);
  const h = Buffer.alloc(14);
  h[0] = 0x80 | opcode;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(len), 2);
  return h;
}

/** msgpack fixstr (every key and deviceId here is under 32 bytes) */
function fixstr(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length > 31) throw new Error(`fixstr: ${s} is too long`);
  return Buffer.concat([Buffer.from([0xa0 | b.length]), b]);
}

/** Deterministic pseudo-random values, so two runs send the same bytes. */
export function rng(seed: number): () => number {
  let s = (Math.imul(seed, 0x9e3779b1) ^ 0x5bd1e995) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

export interface Reading { timestamp: number; cpu: number }

/** eventsPerFrame readings ending at baseMs, one cpu value (0-100, one decimal) each. */
export function readings(eventsPerFrame: number, baseMs: number, variant: number): Reading[] {
  const r = rng(variant + 1);
  const out: Reading[] = [];
  for (let i = 0; i < eventsPerFrame; i++) {
    out.push({ timestamp: baseMs - (eventsPerFrame - 1 - i) * EVENT_SPACING_MS - variant, cpu: Math.round(r() * 1000) / 10 });
  }
  return out;
}

function f64(values: number[]): Buffer {
  return Buffer.from(new Float64Array(values).buffer);
}

export function recordPackr(): Packr {
  return new Packr({ useRecords: true });
}

function bodyOf(kind: WsFrameKind, rows: Reading[]): Buffer {
  switch (kind) {
    case 'msgpack':
      return recordPackr().pack(rows.map((x) => ({ timestamp: x.timestamp, metrics: { cpu: x.cpu } })));
    case 'msgpack-maps':
      return new Packr({ useRecords: false }).pack(rows.map((x) => ({ timestamp: x.timestamp, metrics: { cpu: x.cpu } })));
    case 'json':
      return Buffer.from(`${JSON.stringify(rows.map((x) => ({ timestamp: x.timestamp, metrics: { cpu: x.cpu } })))}}`, 'utf8');
    case 'columnar': {
      const packed = new Packr({ useRecords: false }).pack({
        timestamps: f64(rows.map((x) => x.timestamp)),
        metrics: { cpu: f64(rows.map((x) => x.cpu)) },
      });
      // msgpackr writes objects as map16 (0xde 0x00 0x02): keep the key/value pairs only
      if (packed[0] !== 0xde || packed[1] !== 0 || packed[2] !== 2) throw new Error('columnar body: expected a map of 2');
      return Buffer.from(packed.subarray(3));
    }
  }
}

function devicePartOf(kind: WsFrameKind, id: string): Buffer {
  switch (kind) {
    case 'msgpack':
    case 'msgpack-maps': return Buffer.concat([Buffer.from([0x82]), fixstr('deviceId'), fixstr(id), fixstr('events')]);
    case 'json': return Buffer.from(`{"deviceId":"${id}","events":`, 'utf8');
    case 'columnar': return Buffer.concat([Buffer.from([0x83]), fixstr('deviceId'), fixstr(id)]);
  }
}

export function buildFrameSet(kind: WsFrameKind, devices: number, eventsPerFrame: number, baseMs: number): FrameSet {
  const opcode = kind === 'json' ? 1 : 2;
  const bodies: Buffer[] = [];
  for (let v = 0; v < VARIANTS; v++) bodies.push(bodyOf(kind, readings(eventsPerFrame, baseMs, v)));
  const heads: Buffer[] = new Array(devices * VARIANTS);
  const payloadBytes = new Float64Array(devices * VARIANTS);
  for (let d = 0; d < devices; d++) {
    const part = devicePartOf(kind, deviceId(d));
    for (let v = 0; v < VARIANTS; v++) {
      const len = part.length + bodies[v].length;
      heads[d * VARIANTS + v] = Buffer.concat([wsHeader(opcode, len), part]);
      payloadBytes[d * VARIANTS + v] = len;
    }
  }
  return { kind, devices, variants: VARIANTS, eventsPerFrame, heads, bodies, payloadBytes };
}

/** The whole payload of frame i (for checks and for HTTP bodies). */
export function payloadOf(fs: FrameSet, i: number): Buffer {
  const head = fs.heads[i];
  const hl = head.length - (fs.payloadBytes[i] - fs.bodies[i % fs.variants].length);
  return Buffer.concat([head.subarray(hl), fs.bodies[i % fs.variants]]);
}

/**
 * Unpinned msgpack frames for the memory scenario: eventsPerFrame events of distinct devices
 * [first, first + count), one reading each, msgpackr records.
 */
export function fillPayload(first: number, count: number, baseMs: number): Buffer {
  const events = [];
  const r = rng(first + 7);
  for (let i = 0; i < count; i++) {
    events.push({ deviceId: deviceId(first + i), timestamp: baseMs - (i % 1000), metrics: { cpu: Math.round(r() * 1000) / 10 } });
  }
  return recordPackr().pack(events);
}

/** An HTTP batch body: JSON array of n events over devices [first, first + n) mod devices. */
export function jsonBatchBody(first: number, n: number, devices: number, baseMs: number, variant: number): string {
  const rows = readings(n, baseMs, variant);
  return JSON.stringify(rows.map((x, i) => ({ deviceId: deviceId((first + i) % devices), timestamp: x.timestamp, metrics: { cpu: x.cpu } })));
}

/**
 * One simulated step of the event-time scenario: devices [first, first + count), one cpu reading
 * each at stepStartMs + (device index mod spreadMs), as an array of {deviceId, timestamp,
 * metrics:{cpu}} (msgpackr records). seed varies the values per step.
 */
export function stepPayload(first: number, count: number, stepStartMs: number, spreadMs: number, seed: number): Buffer {
  const events = [];
  const r = rng(seed * 1_000_003 + first + 11);
  for (let i = 0; i < count; i++) {
    const d = first + i;
    events.push({ deviceId: deviceId(d), timestamp: stepStartMs + (d % spreadMs), metrics: { cpu: Math.round(r() * 1000) / 10 } });
  }
  return recordPackr().pack(events);
}
