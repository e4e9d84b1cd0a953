/**
 * Body and frame codecs: JSON (one event or an array), NDJSON (one event per line), msgpack (one
 * event, an array, msgpackr records, or the columnar batch), and the WebSocket envelope
 * `{seq, deviceId?, events}`. Pure: bytes in, decoded values out; validation is event.ts's job.
 *
 * Contract: decoders never throw on bad input; they return a BodyError whose reason says where
 * the body stopped parsing. msgpack bin values come back as views into the input: the caller must
 * finish with them before the input buffer is reused (uWS neuters it when the handler returns).
 */

import { Unpackr } from 'msgpackr';
import type { ErrorCode } from './errors';
import { describeValue } from './event';

/** lineprotocol: InfluxDB line protocol, read by its own routes (engine/line-protocol-routes.ts), never by Content-Type */
export type ContentKind = 'json' | 'ndjson' | 'msgpack' | 'lineprotocol';

/** Maps a Content-Type header to the codec, or null when Sluice does not read it. */
export function contentKindOf(contentType: string): ContentKind | null {
  const semi = contentType.indexOf(';');
  const mime = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  switch (mime) {
    case 'application/json': return 'json';
    case 'application/x-ndjson': case 'application/ndjson': case 'application/jsonl': return 'ndjson';
    case 'application/msgpack': case 'application/x-msgpack': case 'application/vnd.msgpack': return 'msgpack';
    default: return null;
  }
}

/** A line of an NDJSON body that does not parse: rejected on its own, the other lines go on. */
export class LineParseFailure {
  constructor(readonly reason: string) {}
}

export interface BodyError {
  code: ErrorCode;
  reason: string;
}

/** A columnar batch: one device's rows as little-endian f64 byte strings of equal length. */
export interface ColumnarBatch {
  deviceId: unknown;
  timestamps: Uint8Array;
  metrics: Record<string, unknown>;
}

export interface DecodedBatch {
  /** envelope or columnar `seq`, when the sender gave one */
  seq: number | undefined;
  /** envelope-level deviceId, when the sender gave one */
  deviceId: unknown;
  events: unknown[] | null;
  columnar: ColumnarBatch | null;
}

// 64-bit integers as numbers, not BigInt: a client's uint64 timestamp (Python and Go pack ms
// timestamps that way) is then a number to validate, and no BigInt reaches JSON.stringify
const unpackr = new Unpackr({ mapsAsObjects: true, int64AsType: 'number' });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Turns a decoded value into a batch: an array of events, an envelope {seq, deviceId?, events},
 * a columnar batch {deviceId, seq?, timestamps: bin, metrics: {name: bin}}, or one event.
 */
export function toBatch(value: unknown): DecodedBatch | BodyError {
  if (Array.isArray(value)) return { seq: undefined, deviceId: undefined, events: value, columnar: null };
  if (!isPlainObject(value)) {
    return { code: 'SLUICE_E_BAD_BODY', reason: 'body: must be an event object, an array of events, an envelope {seq, events} or a columnar batch' };
  }
  let seq: number | undefined;
  if (value.seq !== undefined) {
    const s = value.seq;
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
      return { code: 'SLUICE_E_BAD_BODY', reason: `seq: must be a non-negative integer, got ${describeValue(s)}` };
    }
    seq = s;
  }
  if (value.timestamps !== undefined) {
    if (!(value.timestamps instanceof Uint8Array)) {
      return { code: 'SLUICE_E_BAD_COLUMNAR', reason: 'timestamps: a columnar batch carries timestamps as a msgpack bin of float64 little-endian' };
    }
    if (!isPlainObject(value.metrics)) {
      return { code: 'SLUICE_E_BAD_COLUMNAR', reason: 'metrics: a columnar batch carries metrics as an object of name: bin' };
    }
    for (const key in value) {
      if (key !== 'deviceId' && key !== 'seq' && key !== 'timestamps' && key !== 'metrics') {
        return { code: 'SLUICE_E_BAD_COLUMNAR', reason: `${key}: unexpected field in a columnar batch (deviceId, seq, timestamps, metrics)` };
      }
    }
    return { seq, deviceId: value.deviceId, events: null, columnar: { deviceId: value.deviceId, timestamps: value.timestamps, metrics: value.metrics } };
  }
  if (value.events !== undefined) {
    if (!Array.isArray(value.events)) {
      return { code: 'SLUICE_E_BAD_BODY', reason: 'events: an envelope carries its events as an array' };
    }
    for (const key in value) {
      if (key !== 'seq' && key !== 'events' && key !== 'deviceId') {
        return { code: 'SLUICE_E_BAD_BODY', reason: `${key}: unexpected field in an envelope (seq, deviceId, events)` };
      }
    }
    return { seq, deviceId: value.deviceId, events: value.events, columnar: null };
  }
  return { seq: undefined, deviceId: undefined, events: [value], columnar: null };
}

export function decodeJson(text: string): DecodedBatch | BodyError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { code: 'SLUICE_E_BAD_BODY', reason: `body: invalid JSON: ${(e as Error).message}` };
  }
  return toBatch(value);
}

/** One event per line; blank lines are skipped; a bad line becomes a LineParseFailure in place. */
export function decodeNdjson(text: string): DecodedBatch | BodyError {
  const events: unknown[] = [];
  let start = 0;
  let line = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    const s = text.slice(start, end).trim();
    if (s.length !== 0) {
      try {
        events.push(JSON.parse(s));
      } catch (e) {
        events.push(new LineParseFailure(`line ${line}: invalid JSON: ${(e as Error).message}`));
      }
    }
    start = end + 1;
  }
  if (events.length === 0) return { code: 'SLUICE_E_BAD_BODY', reason: 'body: no event in the NDJSON body' };
  return { seq: undefined, deviceId: undefined, events, columnar: null };
}

export function decodeMsgpack(bytes: Uint8Array): DecodedBatch | BodyError {
  if (bytes.byteLength === 0) return { code: 'SLUICE_E_BAD_BODY', reason: 'body: empty msgpack body' };
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (e) {
    return { code: 'SLUICE_E_BAD_BODY', reason: `body: invalid msgpack: ${(e as Error).message}` };
  }
  return toBatch(value);
}

export function isBodyError(v: DecodedBatch | BodyError): v is BodyError {
  return (v as BodyError).code !== undefined;
}
