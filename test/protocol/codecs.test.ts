import t from 'tap';
import fc from 'fast-check';
import { pack, Packr } from 'msgpackr';
import { assertProperty, isSluiceCode } from '../helpers/property';
import {
  contentKindOf, decodeJson, decodeMsgpack, decodeNdjson, isBodyError, LineParseFailure,
  type DecodedBatch, type BodyError,
} from '../../protocol';

function ok(v: DecodedBatch | BodyError): DecodedBatch {
  if (isBodyError(v)) throw new Error(`unexpected body error: ${v.reason}`);
  return v;
}

const events = [
  { deviceId: 'a', timestamp: 1000, metrics: { cpu: 1.25 } },
  { deviceId: 'b', timestamp: '2020-01-01T00:00:00Z', cpu: 3, clientVersion: 'v1' },
];

t.test('content types', async (t) => {
  t.equal(contentKindOf('application/json; charset=utf-8'), 'json');
  t.equal(contentKindOf('Application/X-NDJSON'), 'ndjson');
  t.equal(contentKindOf('application/msgpack'), 'msgpack');
  t.equal(contentKindOf('text/plain'), null);
  t.equal(contentKindOf(''), null);
});

t.test('JSON: one event, an array, an envelope round-trip', async (t) => {
  t.same(ok(decodeJson(JSON.stringify(events[0]))).events, [events[0]]);
  t.same(ok(decodeJson(JSON.stringify(events))).events, events);
  const env = ok(decodeJson(JSON.stringify({ seq: 7, deviceId: 'a', events })));
  t.equal(env.seq, 7);
  t.equal(env.deviceId, 'a');
  t.same(env.events, events);
});

t.test('msgpack: maps, arrays, records and envelopes round-trip', async (t) => {
  t.same(ok(decodeMsgpack(pack(events))).events, events);
  t.same(ok(decodeMsgpack(pack(events[0]))).events, [events[0]]);
  const records = new Packr({ useRecords: true }).pack(events);
  t.same(ok(decodeMsgpack(records)).events, events, 'msgpackr records decode to the same events');
  const env = ok(decodeMsgpack(pack({ seq: 3, events })));
  t.equal(env.seq, 3);
});

t.test('msgpack: a columnar batch comes back as views of its bins', async (t) => {
  const ts = Buffer.from(new Float64Array([1, 2, 3]).buffer);
  const cpu = Buffer.from(new Float64Array([10, 20, 30]).buffer);
  const b = ok(decodeMsgpack(pack({ deviceId: 'gw-1', seq: 9, timestamps: ts, metrics: { cpu } })));
  t.equal(b.events, null);
  t.equal(b.seq, 9);
  t.ok(b.columnar);
  t.same(Array.from(new Float64Array(new Uint8Array(b.columnar!.timestamps).buffer)), [1, 2, 3]);
  const wrong = decodeMsgpack(pack({ deviceId: 'gw-1', timestamps: [1, 2], metrics: {} }));
  t.ok(isBodyError(wrong));
  t.match((wrong as BodyError).reason, /^timestamps: /);
});

t.test('NDJSON: one event per line, a bad line fails alone', async (t) => {
  const text = `${JSON.stringify(events[0])}\n\n{oops\n${JSON.stringify(events[1])}\n`;
  const b = ok(decodeNdjson(text));
  t.equal(b.events!.length, 3);
  t.same(b.events![0], events[0]);
  t.ok(b.events![1] instanceof LineParseFailure);
  t.match((b.events![1] as LineParseFailure).reason, /^line 3: invalid JSON/);
  t.same(b.events![2], events[1]);
  t.ok(isBodyError(decodeNdjson('\n\n')));
});

t.test('bodies that do not parse say why', async (t) => {
  const cases: [DecodedBatch | BodyError, RegExp][] = [
    [decodeJson('{"deviceId":'), /^body: invalid JSON/],
    [decodeJson('42'), /^body: must be an event object/],
    [decodeJson('{"seq":-1,"events":[]}'), /^seq: must be a non-negative integer/],
    [decodeJson('{"seq":1,"events":{}}'), /^events: an envelope carries its events as an array/],
    [decodeJson('{"seq":1,"events":[],"x":1}'), /^x: unexpected field in an envelope/],
    [decodeMsgpack(new Uint8Array([0x92, 0x01])), /^body: invalid msgpack/],
    [decodeMsgpack(new Uint8Array(0)), /^body: empty msgpack body/],
  ];
  for (const [r, re] of cases) {
    t.ok(isBodyError(r));
    t.match((r as BodyError).reason, re);
    t.equal((r as BodyError).code.startsWith('SLUICE_E_'), true);
  }
});

t.test('a seq nested deeper than JSON.stringify recurses is refused with its kind, not a stack overflow (found by fuzz-events)', async (t) => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const r = decodeJson(`{"seq":${deep},"events":[]}`);
  t.ok(isBodyError(r));
  t.same(r, { code: 'SLUICE_E_BAD_BODY', reason: 'seq: must be a non-negative integer, got an array' });
  // msgpack: msgpackr itself refuses such depth (its recursion fails first, and is caught)
  const packed = Buffer.concat([Buffer.from([0x82, 0xa3, ...Buffer.from('seq')]), Buffer.alloc(100_000, 0x91), Buffer.from([0x90, 0xa6, ...Buffer.from('events'), 0x90])]);
  t.match(decodeMsgpack(packed), { code: 'SLUICE_E_BAD_BODY', reason: /^body: invalid msgpack/ });
});

t.test('64-bit integers decode as numbers: a uint64 ms timestamp is a number, not a BigInt', async (t) => {
  // what Python's msgpack sends for {"timestamp": 1764590000000}: uint 64 (cf)
  const bytes = Buffer.from('81a974696d657374616d70cf0000019ad9d5a180', 'hex');
  const b = ok(decodeMsgpack(bytes));
  t.equal(typeof (b.events![0] as { timestamp: unknown }).timestamp, 'number');
});

function decodedOrCoded(v: DecodedBatch | BodyError): boolean {
  if (isBodyError(v)) return isSluiceCode(v.code) && v.reason.length > 0;
  return (v.events === null) !== (v.columnar === null);
}

t.test('property: decoders are total over bytes, text and any msgpack value', async () => {
  const packr = new Packr({ useRecords: false, largeBigIntToFloat: true });
  assertProperty(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => decodedOrCoded(decodeMsgpack(bytes))));
  assertProperty(fc.property(fc.anything({ withBigInt: true, withTypedArray: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true }),
    (v) => decodedOrCoded(decodeMsgpack(packr.pack(v)))));
  // truncated frames: a valid frame cut anywhere
  assertProperty(fc.property(fc.jsonValue(), fc.nat(), (v, cut) => {
    const bytes = packr.pack(v);
    return decodedOrCoded(decodeMsgpack(bytes.subarray(0, cut % (bytes.length + 1))));
  }));
  assertProperty(fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), (text) =>
    decodedOrCoded(decodeJson(text)) && decodedOrCoded(decodeNdjson(text))));
});
