/**
 * Shared by the byte scanners' tests (test/protocol/json-events.test.ts, msgpack-events.test.ts):
 * scan() runs a reader over a whole frame and says what it read; the arbitraries generate events
 * of every shape, valid or not.
 */

import fc from 'fast-check';
import { assertProperty } from './property';
import { EventScratch, PackedEvent, SCAN_OK, SCAN_FRAME, SCAN_END, asciiString, isBodyError, type BodyError, type DecodedBatch } from '../../protocol';

/** what scan() needs of JsonEventReader and MsgpackEventReader */
export interface EventReader {
  frame(bytes: Uint8Array): unknown;
  next(ev: PackedEvent): number;
  slowEvent(): unknown;
  readonly atEnd: boolean;
}

export const limits = { batchEventsMax: 1000, metricsPerEventMax: 8, futureSkewMs: 60_000 };
export const NOW = 1_800_000_000_000;

/** Scans a whole frame; the verdicts, and for OK events what the scanner read. */
export function scan(r: EventReader, bytes: Uint8Array): { top: boolean; verdicts: number[]; read: unknown[]; atEnd: boolean } {
  const ev = new PackedEvent(limits.metricsPerEventMax);
  const top = r.frame(bytes);
  const verdicts: number[] = [];
  const read: unknown[] = [];
  if (top === null) return { top: false, verdicts, read, atEnd: false };
  for (let i = 0; i < 10_000; i++) {
    const v = r.next(ev);
    if (v === SCAN_END) break;
    verdicts.push(v);
    if (v === SCAN_FRAME) break;
    if (v === SCAN_OK) {
      const metrics: [string, number][] = [];
      for (let m = 0; m < ev.metricCount; m++) metrics.push([asciiString(bytes, ev.nameAt[m], ev.nameLen[m]), ev.values[m]]);
      read.push({ deviceId: ev.deviceAt < 0 ? undefined : asciiString(bytes, ev.deviceAt, ev.deviceLen), ts: ev.tsRaw, metrics });
    } else {
      try { r.slowEvent(); } catch { /* allowed: the caller falls back to the whole frame */ }
      read.push(null);
    }
  }
  return { top: true, verdicts, read, atEnd: r.atEnd };
}

export const name = fc.constantFrom('cpu', 'mem', 'a.b', 'x_1', '1a', '__proto__', 'bad name', 'é', 'deviceId', 'timestamp', 'metrics', 'tags', '');
export const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(2 ** 40 + 0.5, -(2 ** 33), 2 ** 64, -0, NaN, Infinity, NOW));
export const anyValue = fc.oneof({ weight: 4, arbitrary: num }, fc.string(), fc.constant(null), fc.boolean(), fc.constant(new Uint8Array([1, 2])), fc.array(num, { maxLength: 2 }));
export const event = fc.oneof(
  { weight: 3, arbitrary: fc.record({ deviceId: fc.constantFrom('dev-1', 'a.b:c'), timestamp: fc.oneof(fc.integer({ min: NOW - 1e9, max: NOW }), fc.double({ min: NOW - 1e9, max: NOW })), metrics: fc.dictionary(fc.constantFrom('cpu', 'mem', 'x.y'), num, { minKeys: 1, maxKeys: 3 }) }, { requiredKeys: ['timestamp', 'metrics'] }) },
  fc.record({ deviceId: fc.constantFrom('dev-1', 'd:2', '', 'bad id', 'x'.repeat(129)), timestamp: fc.oneof(num, fc.string()), metrics: fc.dictionary(name, anyValue, { maxKeys: 4 }) }, { requiredKeys: ['timestamp'] }),
  fc.dictionary(name, anyValue, { maxKeys: 5 }),
  anyValue,
);

/**
 * Compares the events a scanner read (scan().read) with what the generic decoder and
 * EventScratch.validate make of the same events; throws on the first difference. Answers how many
 * events the scanner read itself.
 */
export function checkAgainstGeneric(read: unknown[], events: unknown[]): number {
  const ev = new EventScratch(limits);
  let fast = 0;
  read.forEach((r, i) => {
    if (r === null) return;
    fast++;
    const got = r as { deviceId: string | undefined; ts: number; metrics: [string, number][] };
    if (!ev.validate(events[i], got.deviceId === undefined ? 'pinned-dev' : null, NOW * 10)) {
      // the scanner leaves the timestamp's range to the caller; anything else must validate
      if (!ev.errorCode.includes('TIMESTAMP')) throw new Error(`read fast, refused by validate: ${ev.errorReason}`);
      return;
    }
    const want = { deviceId: got.deviceId ?? 'pinned-dev', ts: ev.timestamp, metrics: ev.names.slice(0, ev.metricCount).map((n, m) => [n, ev.values[m]]) };
    const have = { deviceId: got.deviceId ?? 'pinned-dev', ts: got.ts, metrics: got.metrics };
    if (!Object.is(want.ts, have.ts) || JSON.stringify(want) !== JSON.stringify(have) || want.deviceId !== ev.deviceId) {
      throw new Error(`event ${i}: scanner ${JSON.stringify(have)} vs generic ${JSON.stringify(want)}`);
    }
    for (let m = 0; m < ev.metricCount; m++) if (!Object.is(ev.values[m], got.metrics[m][1])) throw new Error(`event ${i}: value ${m} differs`);
  });
  return fast;
}

/** A scan never throws: random bytes, and valid frames truncated anywhere or with a byte changed. */
export function assertScanNeverThrows(scanOne: (bytes: Uint8Array) => unknown, frame: fc.Arbitrary<Uint8Array>): void {
  assertProperty(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => { scanOne(b); return true; }), 20_000);
  assertProperty(fc.property(frame, fc.nat(), fc.nat(255), (f, at, byte) => {
    scanOne(f.subarray(0, at % (f.length + 1)));
    const flipped = new Uint8Array(f);
    if (flipped.length) flipped[at % flipped.length] = byte;
    scanOne(flipped);
    return true;
  }), 5000);
}

/**
 * Every event a scanner read fast is the event the generic decoder decodes (checkAgainstGeneric),
 * and a frame the scanner read to its end is one the decoder reads too. Returns the events compared.
 */
export function assertScanMatchesGeneric(scanOne: (bytes: Uint8Array) => ReturnType<typeof scan>, frame: fc.Arbitrary<Uint8Array>,
  decode: (bytes: Uint8Array) => DecodedBatch | BodyError, decoderName: string): number {
  let fastEvents = 0;
  assertProperty(fc.property(frame, (f) => {
    const s = scanOne(f);
    const generic = decode(f);
    if (!s.top) return true;
    if (s.atEnd && !s.verdicts.includes(SCAN_FRAME) && isBodyError(generic)) throw new Error(`scanned a frame ${decoderName} refuses: ${generic.reason}`);
    if (isBodyError(generic)) return true;
    fastEvents += checkAgainstGeneric(s.read, generic.events as unknown[]);
    return true;
  }), 5000);
  return fastEvents;
}
