/**
 * Generators of hostile event bodies for the fuzz suite: each input says whether it was built to
 * be invalid (mustRefuse: only a 4xx or an error frame will do) or may happen to be valid (a
 * mutation, an event with fields drawn from every kind of value). Generated deviceIds that can be
 * valid start with `fz` and never name the reference device (test/helpers/fuzz.ts).
 */

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { anyMetricName, anyMetricValue, anyNumber, anyTimestamp } from './property';
import { mutated, oddString } from './fuzz';

export interface BodyInput {
  body: Buffer;
  mustRefuse: boolean;
}

/** a deviceId that is never valid: empty, too long, a character outside [A-Za-z0-9_.:-], or no string */
export const badDeviceId: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', 'x'.repeat(129), 'd\u0000', 'd\n1', 'd 1', 'caf\u00e9', '\ud800', 'a/b', 'a%20b', '{}'),
  fc.tuple(fc.stringMatching(/^[A-Za-z0-9_.:-]{0,20}$/), fc.constantFrom(' ', '/', '#', '\u00e9', '\u0000', '"', '\\', '%', '?', '\u202e'), fc.string({ maxLength: 10 }))
    .map(([a, c, b]) => `fz${a}${c}${b}`),
  fc.string({ minLength: 129, maxLength: 600 }).map((s) => `fz${s}`),
  anyNumber, fc.constant(null), fc.boolean(), fc.array(fc.string(), { maxLength: 2 }), fc.object({ maxDepth: 1 }),
);

/** a deviceId that may be valid (always in the fuzz namespace) */
export const fuzzDeviceId: fc.Arbitrary<string> = fc.stringMatching(/^[A-Za-z0-9_.:-]{0,20}$/).map((s) => `fz${s}`);

/** timestamps near now (so that some events are accepted), and everything else */
export const someTimestamp: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: fc.integer({ min: -600_000, max: 120_000 }).map((d) => Date.now() + d) },
  { weight: 1, arbitrary: fc.integer({ min: -600_000, max: 120_000 }).map((d) => new Date(Date.now() + d).toISOString()) },
  { weight: 3, arbitrary: anyTimestamp },
);

const metrics: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(anyMetricName, anyMetricValue, { maxKeys: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.stringMatching(/^fm[a-z0-9_.]{0,8}$/), fc.double(), { minKeys: 60, maxKeys: 80 }) },
  { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.array(fc.double(), { maxLength: 3 }), fc.string(), anyNumber, fc.constant({})) },
);

const tags: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined), fc.dictionary(oddString, fc.oneof(oddString, anyNumber, fc.constant(null)), { maxKeys: 3 }),
  fc.constant('tags'), fc.constant([]),
);

/** an event object: built invalid (a bad deviceId) or with fields of every kind (may be valid) */
export const eventObject: fc.Arbitrary<{ value: Record<string, unknown>; mustRefuse: boolean }> = fc.oneof(
  fc.record({ deviceId: badDeviceId, timestamp: someTimestamp, metrics, tags }, { requiredKeys: ['timestamp', 'metrics'] })
    .map((value) => ({ value: value as Record<string, unknown>, mustRefuse: true })),
  fc.record({ deviceId: fuzzDeviceId, timestamp: someTimestamp, metrics, tags }, { requiredKeys: ['deviceId'] })
    .map((value) => ({ value: value as Record<string, unknown>, mustRefuse: false })),
  // the seeds' flat shape: every numeric field a metric, every string field a tag
  fc.tuple(fuzzDeviceId, someTimestamp, fc.dictionary(anyMetricName, fc.oneof(anyMetricValue, oddString), { maxKeys: 5 }))
    .map(([deviceId, timestamp, rest]) => ({ value: { ...rest, deviceId, timestamp }, mustRefuse: false })),
  fc.record({ timestamp: someTimestamp, metrics }).map((value) => ({ value: value as Record<string, unknown>, mustRefuse: true })),
);

/** a decoded body: one event, an array, an envelope, or any JSON value */
const bodyValue: fc.Arbitrary<{ value: unknown; mustRefuse: boolean }> = fc.oneof(
  eventObject,
  fc.array(eventObject, { minLength: 1, maxLength: 6 }).map((es) => ({ value: es.map((e) => e.value), mustRefuse: es.every((e) => e.mustRefuse) })),
  fc.record({
    seq: fc.oneof(fc.constant(undefined), anyNumber, fc.string(), fc.constant(null), fc.nat()),
    deviceId: fc.oneof(fc.constant(undefined), badDeviceId, fuzzDeviceId),
    events: fc.oneof(fc.array(eventObject.map((e) => e.value), { maxLength: 4 }), anyNumber, fc.string(), fc.constant(null)),
    extra: fc.oneof(fc.constant(undefined), oddString),
  }).map((env) => ({ value: env, mustRefuse: false })),
  // any JSON value: no object of it has a deviceId, so no event of it is valid
  fc.jsonValue({ maxDepth: 3 }).map((value) => ({ value, mustRefuse: true })),
  fc.constantFrom<unknown>([], {}, { events: [] }, [[]], [null], [{}], '', 0, null, true, 'events')
    .map((value) => ({ value, mustRefuse: true })),
);

/** JSON text that is not JSON (or nests deeper than any parser should recurse) */
const brokenJson: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.constantFrom('{', '[', '{"deviceId":', '{"deviceId":"fz1","timestamp":1,"metrics":{"cpu":1}', '[1,2,', '\ufeff{}', 'NaN', '{"a":1}}', '""',
    '{"deviceId":"fz1","timestamp":1e999,"metrics":{"cpu":1}}', '{"deviceId":"fz1","timestamp":' + '9'.repeat(400) + '}'),
  fc.integer({ min: 1, max: 200_000 }).map((n) => '['.repeat(n)),
  fc.integer({ min: 1, max: 50_000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  // a value nested deeper than JSON.stringify recurses, in each field a reason may quote
  // (it overflowed the stack formatting a bad seq: a 500)
  fc.tuple(fc.constantFrom('{"seq":D,"events":[]}', '{"deviceId":"fz1","timestamp":T,"cpu":D}', '{"deviceId":"fz1","timestamp":T,"metrics":{"cpu":D}}',
    '{"deviceId":"fz1","timestamp":T,"cpu":1,"tags":{"t":D}}', '{"deviceId":D,"timestamp":T,"cpu":1}', '{"deviceId":"fz1","timestamp":D,"cpu":1}',
    '[{"deviceId":"fz1","timestamp":T,"metrics":D}]', '{"seq":1,"deviceId":D,"events":[]}'), fc.integer({ min: 5_000, max: 100_000 }), fc.boolean())
    .map(([template, n, arrays]) => template.replace('T', String(Date.now() - 30_000))
      .replace('D', arrays ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '1' + '}'.repeat(n))),
);

/** JSON as a sender writes it; a bigint as its digits (a client's int64 beyond 2^53) */
function jsonText(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `__big${v}__` : v)) ?? 'undefined';
  return text.replace(/"__big(-?\d+)__"/g, '$1');
}

export const jsonBody: fc.Arbitrary<BodyInput> = fc.oneof(
  { weight: 5, arbitrary: bodyValue.map(({ value, mustRefuse }) => ({ body: Buffer.from(jsonText(value)), mustRefuse })) },
  { weight: 2, arbitrary: brokenJson.map((s) => ({ body: Buffer.from(s), mustRefuse: true })) },
  { weight: 3, arbitrary: bodyValue.chain(({ value }) => mutated(Buffer.from(jsonText(value)))).map((body) => ({ body, mustRefuse: false })) },
);

export const ndjsonBody: fc.Arbitrary<BodyInput> = fc.array(
  fc.oneof(
    eventObject.map((e) => ({ line: jsonText(e.value), mustRefuse: e.mustRefuse })),
    brokenJson.filter((s) => s.length < 1000).map((line) => ({ line, mustRefuse: true })),
    fc.constantFrom('', ' ', '\r', '\t').map((line) => ({ line, mustRefuse: true })),
  ),
  { minLength: 1, maxLength: 8 },
).chain((lines) => fc.constantFrom('\n', '\r\n', '\n\n').map((sep) => ({
  body: Buffer.from(lines.map((l) => l.line).join(sep)),
  mustRefuse: lines.every((l) => l.mustRefuse),
})));

/** msgpack values JSON cannot carry: bins, extensions, bigints, dates, maps with odd keys */
const msgpackOnly: fc.Arbitrary<unknown> = fc.oneof(
  fc.uint8Array({ maxLength: 40 }), fc.bigInt(), fc.date({ noInvalidDate: false }), fc.constant(new Map<unknown, unknown>([[1, 2], [{}, 'x']])),
  fc.constant(new Set([1, 2])), fc.float32Array({ maxLength: 4 }),
);

/** a columnar batch, right or wrong in one or more of its parts */
const columnarValue: fc.Arbitrary<{ value: unknown; mustRefuse: boolean }> = fc.record({
  rows: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom(10_001)),
  deviceId: fc.oneof({ weight: 3, arbitrary: fuzzDeviceId }, { weight: 1, arbitrary: badDeviceId }),
  seq: fc.oneof(fc.constant(undefined), fc.nat(), anyNumber, fc.string()),
  tsKind: fc.constantFrom('ok', 'ok', 'ok', 'short', 'odd', 'empty', 'array', 'string', 'nan', 'seconds'),
  names: fc.array(fc.oneof({ weight: 3, arbitrary: fc.stringMatching(/^fm[a-z0-9_.]{0,8}$/) }, { weight: 1, arbitrary: anyMetricName }), { maxLength: 3 }),
  colKind: fc.constantFrom('ok', 'ok', 'ok', 'short', 'long', 'array', 'null', 'inf'),
  extra: fc.oneof(fc.constant(undefined), oddString, msgpackOnly),
}).map((c) => {
  const now = Date.now();
  const f64 = (xs: number[]): Uint8Array => new Uint8Array(new Float64Array(xs).buffer);
  const ts = Array.from({ length: c.rows }, (_, i) => now - 60_000 + i);
  let timestamps: unknown;
  switch (c.tsKind) {
    case 'ok': timestamps = f64(ts); break;
    case 'short': timestamps = f64(ts).subarray(0, c.rows * 8 - 1); break;
    case 'odd': timestamps = new Uint8Array(c.rows * 8 + 3); break;
    case 'empty': timestamps = new Uint8Array(0); break;
    case 'array': timestamps = ts; break;
    case 'string': timestamps = 'ts'; break;
    case 'nan': timestamps = f64(ts.map(() => NaN)); break;
    case 'seconds': timestamps = f64(ts.map((x) => x / 1000)); break;
  }
  const col = (): unknown => {
    switch (c.colKind) {
      case 'ok': return f64(ts.map((_, i) => i));
      case 'short': return new Uint8Array(Math.max(0, c.rows * 8 - 8));
      case 'long': return new Uint8Array(c.rows * 8 + 8);
      case 'array': return ts.map(() => 1);
      case 'null': return null;
      default: return f64(ts.map(() => Infinity));
    }
  };
  // fromEntries: a name like __proto__ must become a key, not the object's prototype
  const metrics: Record<string, unknown> = Object.fromEntries(c.names.map((n) => [n, col()]));
  const value: Record<string, unknown> = { deviceId: c.deviceId, timestamps, metrics };
  if (c.seq !== undefined) value.seq = c.seq;
  if (c.extra !== undefined) value.extra = c.extra;
  // any fault refuses the batch whole or every one of its rows: only a batch right in every part can
  // be kept; epoch seconds too, under a ?precision= that reads them as a time before 1970 + 1 day
  // (then a late event beyond the horizon: acknowledged and kept in the late log)
  const seqOk = c.seq === undefined || (typeof c.seq === 'number' && Number.isSafeInteger(c.seq) && c.seq >= 0);
  const ok = /^[A-Za-z0-9_.:-]{1,128}$/.test(String(c.deviceId)) && typeof c.deviceId === 'string' && seqOk && c.rows <= 10_000 &&
    (c.tsKind === 'ok' || c.tsKind === 'seconds') && c.colKind === 'ok' && c.extra === undefined && Object.keys(metrics).length > 0 &&
    c.names.every((n) => /^[A-Za-z0-9_.]{1,64}$/.test(n));
  return { value, mustRefuse: !ok };
});

// bigints beyond int64 go out as msgpackr's bigint extension: the engine must refuse those too
const packr = new Packr({ useBigIntExtension: true });

function packed(value: unknown): Buffer {
  return Buffer.from(packr.pack(value));
}

export const msgpackBody: fc.Arbitrary<BodyInput> = fc.oneof(
  { weight: 3, arbitrary: bodyValue.map(({ value, mustRefuse }) => ({ body: packed(value), mustRefuse })) },
  { weight: 3, arbitrary: columnarValue.map(({ value, mustRefuse }) => ({ body: packed(value), mustRefuse })) },
  { weight: 1, arbitrary: fc.oneof(msgpackOnly, fc.array(msgpackOnly, { maxLength: 3 }), fc.dictionary(fc.string(), msgpackOnly, { maxKeys: 3 })).map((v) => ({ body: packed(v), mustRefuse: true })) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => ({ body: Buffer.from(b), mustRefuse: false })) },
  { weight: 3, arbitrary: fc.oneof(bodyValue, columnarValue).chain(({ value }) => mutated(packed(value))).map((body) => ({ body, mustRefuse: false })) },
);

export type BodyKind = 'json' | 'ndjson' | 'msgpack';

export const CONTENT_TYPES: Record<BodyKind, string[]> = {
  json: ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON'],
  ndjson: ['application/x-ndjson', 'application/ndjson', 'application/jsonl'],
  msgpack: ['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack'],
};

export interface EventsRequest extends BodyInput {
  kind: BodyKind;
  contentType: string;
  query: string;
}

/** ?precision= as clients send it and as they should not */
export const precisionQuery: fc.Arbitrary<{ query: string; bad: boolean }> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ query: '', bad: false }) },
  { weight: 2, arbitrary: fc.constantFrom('s', 'ms', 'us', 'ns').map((p) => ({ query: `?precision=${p}`, bad: false })) },
  { weight: 1, arbitrary: fc.constantFrom('S', 'sec', '', 'h', 'm', '%zz', '1', 'ms&precision=s', 'ms%00').map((p) => ({ query: `?precision=${p}`, bad: p !== 'ms&precision=s' && p !== '' })) },
);

export const eventsRequest: fc.Arbitrary<EventsRequest> = fc.oneof(
  ...(['json', 'ndjson', 'msgpack'] as const).map((kind) => fc.tuple(
    kind === 'json' ? jsonBody : kind === 'ndjson' ? ndjsonBody : msgpackBody,
    fc.constantFrom(...CONTENT_TYPES[kind]),
    precisionQuery,
  ).map(([b, contentType, p]) => ({ ...b, mustRefuse: b.mustRefuse || p.bad, kind, contentType, query: p.query }))),
);
