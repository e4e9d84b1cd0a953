/**
 * protocol/msgpack-events.ts: the byte scanner never throws outside slowEvent() (whatever the
 * bytes: random, truncated, corrupted), and where it reads an event it reads what msgpackr reads:
 * the same deviceId, timestamp and metrics in the same order as EventScratch.validate takes them
 * from the generic decode. The engine-level equivalence (answers, ring contents) is in
 * test/engine/ingest.test.ts.
 */

import t from 'tap';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import {
  MsgpackEventReader, SCAN_OK, SCAN_SLOW,
  decodeMsgpack,
} from '../../protocol';

import { scan as scanWith, assertScanNeverThrows, assertScanMatchesGeneric, NOW, event } from '../helpers/event-frames';

/** Scans a whole frame with a fresh reader (test/helpers/event-frames.ts). */
function scan(bytes: Uint8Array): ReturnType<typeof scanWith> {
  return scanWith(new MsgpackEventReader(), bytes);
}
const packers = [new Packr({ useRecords: false }), new Packr({ useRecords: true }), new Packr({ useRecords: false, useFloat32: 1 }), new Packr({ useRecords: false, int64AsType: 'number' } as object)];
const frame = fc.tuple(fc.array(event, { maxLength: 6 }), fc.nat(3), fc.constantFrom('array', 'envelope', 'seq')).map(([evs, p, shape]) =>
  packers[p].pack(shape === 'array' ? evs : shape === 'envelope' ? { deviceId: 'dev-1', events: evs } : { seq: 3, deviceId: 'dev-1', events: evs }) as Uint8Array);

t.test('never throws: random bytes, truncated and corrupted frames', async (t) => {
  assertScanNeverThrows(scan, frame);
  t.pass('no throw');
});

t.test('an event read fast is the event msgpackr decodes, as EventScratch validates it', async (t) => {
  const fastEvents = assertScanMatchesGeneric(scan, frame, decodeMsgpack, 'msgpackr');
  t.ok(fastEvents > 500, `${fastEvents} events read fast and compared`);
});

t.test('the common frames take the fast path', async (t) => {
  const events = Array.from({ length: 50 }, (_, i) => ({ timestamp: NOW + i, metrics: { cpu: i / 3, mem: i } }));
  for (const p of [packers[0], packers[1]]) {
    const s = scan(p.pack({ deviceId: 'dev-1', events }));
    t.ok(s.top && s.atEnd, 'envelope read to its end');
    t.same(s.verdicts, events.map(() => SCAN_OK), 'every event fast');
  }
  const flat = scan(packers[0].pack([{ deviceId: 'd1', timestamp: NOW, cpu: 1.5, clientVersion: 'v1' }, { deviceId: 'd1', timestamp: NOW, cpu: 2 }]));
  t.same(flat.verdicts, [SCAN_SLOW, SCAN_OK], 'a string field (a tag) goes to the generic path, the rest stays fast');
});
