/**
 * protocol/json-events.ts: the byte scanner never throws outside slowEvent() (whatever the
 * bytes: random, truncated, corrupted), and where it reads an event it reads what JSON.parse reads
 * (numbers to the last bit included):
 * the same deviceId, timestamp and metrics in the same order as EventScratch.validate takes them
 * from the generic decode. The engine-level equivalence (answers, ring contents) is in
 * test/engine/ingest.test.ts.
 */

import t from 'tap';
import fc from 'fast-check';
import {
  JsonEventReader, SCAN_OK, SCAN_SLOW, SCAN_FRAME,
  decodeJson,
} from '../../protocol';

import { scan as scanWith, assertScanNeverThrows, assertScanMatchesGeneric, NOW, num, event } from '../helpers/event-frames';

/** Scans a whole frame with a fresh reader (test/helpers/event-frames.ts). */
function scan(bytes: Uint8Array): ReturnType<typeof scanWith> {
  return scanWith(new JsonEventReader(), bytes);
}
/** numbers as senders write them: JSON.stringify's, and other spellings of the same grammar */
const numberText = fc.oneof(num.map((n) => JSON.stringify(n)), fc.constantFrom('1e3', '1E+3', '-0', '0.000123', '123456789012345678', '1.5e-7', '1e400', '-1e-400', '0.1e1', '12.50'));
function jsonOf(v: unknown, space: number): string {
  // numbers are re-spelled by a marker replacement below
  return JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? Array.from(x) : x), space);
}
const frame = fc.tuple(fc.array(event, { maxLength: 6 }), fc.constantFrom(0, 1), fc.constantFrom('array', 'envelope', 'seq', 'events-first', 'single'), fc.array(numberText, { maxLength: 3 }))
  .map(([evs, space, shape, texts]) => {
    const top = shape === 'array' ? evs : shape === 'envelope' ? { deviceId: 'dev-1', events: evs } : shape === 'seq' ? { seq: 3, deviceId: 'dev-1', events: evs } : shape === 'single' ? (evs[0] ?? {}) : { events: evs, deviceId: 'dev-1' };
    let text = jsonOf(top, space);
    // some numbers spelled another way (the scanner must read each as JSON.parse does)
    for (const n of texts) text = text.replace(/:\s?-?\d[\d.eE+-]*/, `:${n}`);
    return new Uint8Array(Buffer.from(text, 'utf8'));
  });

t.test('never throws: random bytes, truncated and corrupted frames', async (t) => {
  assertScanNeverThrows(scan, frame);
  t.pass('no throw');
});

t.test('an event read fast is the event JSON.parse decodes, as EventScratch validates it', async (t) => {
  const fastEvents = assertScanMatchesGeneric(scan, frame, (f) => decodeJson(Buffer.from(f).toString('utf8')), 'JSON.parse');
  t.ok(fastEvents > 500, `${fastEvents} events read fast and compared`);
});

t.test('the common bodies take the fast path', async (t) => {
  const one = scan(new Uint8Array(Buffer.from(JSON.stringify({ deviceId: 'dev-1', timestamp: NOW, metrics: { cpu: 1.5 } }))));
  t.ok(one.top && one.atEnd, 'a one-event body is read');
  t.same(one.verdicts, [SCAN_OK], 'fast');
  const seq = scan(new Uint8Array(Buffer.from(JSON.stringify({ deviceId: 'dev-1', timestamp: NOW, seq: 1, cpu: 1.5 }))));
  t.same(seq.verdicts, [SCAN_FRAME], 'a one-event body with a seq key: the generic decoder decides what it is');
  const events = Array.from({ length: 50 }, (_, i) => ({ deviceId: `dev-${i}`, timestamp: NOW + i, metrics: { cpu: i / 3, mem: i } }));
  for (const text of [JSON.stringify(events), JSON.stringify({ deviceId: 'dev-1', events }, null, 2)]) {
    const s = scan(new Uint8Array(Buffer.from(text)));
    t.ok(s.top && s.atEnd, 'read to its end');
    t.same(s.verdicts, events.map(() => SCAN_OK), 'every event fast');
  }
  const odd = scan(new Uint8Array(Buffer.from(JSON.stringify([{ deviceId: 'd\\u0031', timestamp: NOW, cpu: 1 }, { deviceId: 'd1', timestamp: NOW, cpu: 'x' }, { deviceId: 'd1', timestamp: NOW, cpu: 2 }]))));
  t.same(odd.verdicts, [SCAN_SLOW, SCAN_SLOW, SCAN_OK], 'an escape, a string field (a tag): generic; the rest fast');
});
