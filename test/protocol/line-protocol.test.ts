/**
 * protocol/line-protocol.ts (the grammar, the generic decoder, line numbers) and
 * protocol/line-protocol-events.ts (the byte scanner): fixed cases pin the mapping and the
 * reasons; property tests check that the scanner never throws and that every point it reads
 * itself (SCAN_OK) is the event the generic decoder + EventScratch make of the same line (deviceId,
 * timestamp, metric names and values to the bit, in order), that a point it does not take
 * (SCAN_SLOW) decodes to the generic decoder's value, and that both see the same points.
 */

import t from 'tap';
import fc from 'fast-check';
import {
  EventScratch, LineParseFailure, LineProtocolReader, PackedEvent, SCAN_OK, SCAN_SLOW, SCAN_END, asciiString, isBodyError, toEpochMs,
  decodeLineProtocol, lineProtocolEventLines, lineProtocolReason, parseLpPrecision, lpTimePrecision, isEmptyLineProtocol,
  type LineProtocolOptions, type LpPrecision,
} from '../../protocol';
import { assertProperty } from '../helpers/property';

const NOW = 1_733_140_812_345;
const limits = { batchEventsMax: 10_000, metricsPerEventMax: 8, futureSkewMs: 60_000 };
const NS: LineProtocolOptions = { deviceTag: 'host', precision: 'ns' };
const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

function decode(text: string, opts = NS): unknown[] {
  const d = decodeLineProtocol(enc(text), opts, NOW);
  if (isBodyError(d)) throw new Error(d.reason);
  return d.events as unknown[];
}
/** plain objects, for deepEqual against Object.create(null) maps */
function plain(v: unknown): unknown {
  return v instanceof LineParseFailure ? { failure: v.reason } : JSON.parse(JSON.stringify(v));
}

interface Read {
  verdict: number;
  deviceId?: string;
  tsRaw?: number;
  metrics?: [string, number][];
  slow?: unknown;
}

/** Scans a whole body with a reader; what it read per point. */
function scanAll(body: Uint8Array, opts = NS, r = new LineProtocolReader()): Read[] {
  const ev = new PackedEvent(limits.metricsPerEventMax);
  r.configure(opts, NOW);
  const out: Read[] = [];
  if (r.frame(body) === null) return out;
  for (let i = 0; i < 100_000; i++) {
    const v = r.next(ev);
    if (v === SCAN_END) break;
    if (v === SCAN_OK) {
      const metrics: [string, number][] = [];
      for (let m = 0; m < ev.metricCount; m++) metrics.push([asciiString(r.nameBytes, ev.nameAt[m], ev.nameLen[m]), ev.values[m]]);
      out.push({ verdict: v, deviceId: asciiString(body, ev.deviceAt, ev.deviceLen), tsRaw: ev.tsRaw, metrics });
    } else out.push({ verdict: v, slow: r.slowEvent() });
  }
  return out;
}

/** Throws on the first point where scanner and generic decoder disagree; answers how many the scanner read itself. */
function checkEquivalent(text: string, opts = NS): number {
  const body = enc(text);
  const d = decodeLineProtocol(body, opts, NOW);
  const events = isBodyError(d) ? [] : d.events as unknown[];
  const read = scanAll(body, opts);
  if (read.length !== events.length) throw new Error(`scanner saw ${read.length} points, generic ${events.length}: ${JSON.stringify(text)}`);
  const scratch = new EventScratch(limits);
  const precision = lpTimePrecision(opts.precision);
  scratch.precision = precision;
  let fast = 0;
  read.forEach((r, i) => {
    const g = events[i];
    if (r.verdict === SCAN_SLOW) {
      if (JSON.stringify(plain(r.slow)) !== JSON.stringify(plain(g))) throw new Error(`point ${i}: slow ${JSON.stringify(plain(r.slow))} vs generic ${JSON.stringify(plain(g))}`);
      return;
    }
    if (r.verdict !== SCAN_OK) throw new Error(`point ${i}: verdict ${r.verdict}`);
    fast++;
    if (g instanceof LineParseFailure) throw new Error(`point ${i}: read fast, generic failure ${g.reason}`);
    // far future allowed: the range of the timestamp is the caller's check
    if (!scratch.validate(g, null, 8.64e15)) {
      if (!scratch.errorCode.includes('TIMESTAMP')) throw new Error(`point ${i}: read fast, refused by validate: ${scratch.errorReason}`);
      return;
    }
    if (r.deviceId !== scratch.deviceId) throw new Error(`point ${i}: device ${r.deviceId} vs ${scratch.deviceId}`);
    if (!Object.is(toEpochMs(r.tsRaw as number, precision), scratch.timestamp)) throw new Error(`point ${i}: timestamp ${r.tsRaw} vs ${scratch.timestamp}`);
    const metrics = r.metrics as [string, number][];
    if (metrics.length !== scratch.metricCount) throw new Error(`point ${i}: ${metrics.length} metrics vs ${scratch.metricCount}`);
    metrics.forEach(([n, v], m) => {
      if (n !== scratch.names[m] || !Object.is(v, scratch.values[m])) throw new Error(`point ${i}: metric ${m} ${n}=${v} vs ${scratch.names[m]}=${scratch.values[m]}`);
    });
  });
  return fast;
}

t.test('a Telegraf line: metrics m.f, the device tag, the other tags, nanoseconds', async (t) => {
  const ev = decode('cpu,host=dev-00042,cpu=cpu-total usage_user=12.5,usage_system=3.25,usage_idle=84.25 1733140800000000000\n');
  t.same(plain(ev[0]), {
    deviceId: 'dev-00042', timestamp: 1733140800000000000,
    metrics: { 'cpu.usage_user': 12.5, 'cpu.usage_system': 3.25, 'cpu.usage_idle': 84.25 }, tags: { cpu: 'cpu-total' },
  });
  const read = scanAll(enc('cpu,host=dev-00042,cpu=cpu-total usage_user=12.5,usage_system=3.25,usage_idle=84.25 1733140800000000000\n'));
  t.equal(read[0].verdict, SCAN_OK);
  t.same(read[0].metrics, [['cpu.usage_user', 12.5], ['cpu.usage_system', 3.25], ['cpu.usage_idle', 84.25]]);
  t.equal(read[0].deviceId, 'dev-00042');
  t.equal(toEpochMs(read[0].tsRaw as number, 'ns'), 1733140800000);
});

t.test('value types: value field, integers, unsigned, booleans, exponents, negatives, strings as tags', async (t) => {
  const [ev] = decode('temp,host=h value=-1.5e3,n=10i,u=7u,neg=-3i,b1=t,b2=FALSE,b3=True,s="a \\"q\\" b" 5\n');
  t.same(plain(ev), {
    deviceId: 'h', timestamp: 5,
    metrics: { temp: -1500, 'temp.n': 10, 'temp.u': 7, 'temp.neg': -3, 'temp.b1': 1, 'temp.b2': 0, 'temp.b3': 1 },
    tags: { s: 'a "q" b' },
  });
  // an escape in a string field: the generic path; without one, the scanner
  t.equal(checkEquivalent('temp,host=h value=-1.5e3,n=10i,u=7u,neg=-3i,b1=t,b2=FALSE,b3=True,s="a \\"q\\" b" 5\n'), 0);
  t.equal(checkEquivalent('temp,host=h value=-1.5e3,n=10i,u=7u,neg=-3i,b1=t,b2=FALSE,b3=True,s="a q b" 5\n'), 1);
  // Telegraf prints computed floats with 16-17 digits: read fast, to the last bit
  const long = 'cpu,host=h usage_user=0.7518796992481203,usage_idle=99.24812030075188,x=-1.2345678901234567e-7 1\n';
  t.equal(checkEquivalent(long), 1);
  t.same(scanAll(enc(long))[0].metrics, [['cpu.usage_user', 0.7518796992481203], ['cpu.usage_idle', 99.24812030075188], ['cpu.x', -1.2345678901234567e-7]]);
  const [small] = decode('m,host=h a=.5,b=1.,c=1E-2,d=-0 1\n');
  t.same(plain(small), { deviceId: 'h', timestamp: 1, metrics: { 'm.a': 0.5, 'm.b': 1, 'm.c': 0.01, 'm.d': 0 } });
  t.ok(Object.is((small as { metrics: Record<string, number> }).metrics['m.d'], -0), 'a float -0 stays -0');
});

t.test('escapes in measurement, tags and field keys', async (t) => {
  const [ev] = decode('my\\ cpu\\,x,host=dev\\ 1,re\\=gion=eu\\,west f\\=1=2 1\n');
  t.same(plain(ev), { deviceId: 'dev 1', timestamp: 1, metrics: { 'my cpu,x.f=1': 2 }, tags: { 're=gion': 'eu,west' } });
  // the names are invalid for Sluice; the scanner leaves them to the generic path, which words why
  const read = scanAll(enc('my\\ cpu,host=d v=1 1\n'));
  t.equal(read[0].verdict, SCAN_SLOW);
  t.equal(checkEquivalent('my\\ cpu\\,x,host=dev\\ 1,re\\=gion=eu\\,west f\\=1=2 1\n'), 0);
});

t.test('timestamps: absent = receive time, precisions, CRLF, trailing spaces', async (t) => {
  const now = (p: LpPrecision): number => (decode('m,host=h v=1\n', { deviceTag: 'host', precision: p })[0] as { timestamp: number }).timestamp;
  t.equal(toEpochMs(now('ns'), 'ns'), NOW);
  t.equal(toEpochMs(now('us'), 'us'), NOW);
  t.equal(now('ms'), NOW);
  t.equal(toEpochMs(now('s'), 's'), NOW);
  t.equal(toEpochMs(now('h'), 's'), NOW);
  const h = decode('m,host=h v=1 481428\n', { deviceTag: 'host', precision: 'h' })[0] as { timestamp: number };
  t.equal(h.timestamp, 481428 * 3600, 'hours are sent on as seconds');
  t.equal((decode('m,host=h v=1 28885680\n', { deviceTag: 'host', precision: 'm' })[0] as { timestamp: number }).timestamp, 28885680 * 60);
  const crlf = decode('m,host=h value=1 1733140800000\r\nm,host=h value=2\r\n', { deviceTag: 'host', precision: 'ms' });
  t.same(crlf.map(plain), [
    { deviceId: 'h', timestamp: 1733140800000, metrics: { m: 1 } },
    { deviceId: 'h', timestamp: NOW, metrics: { m: 2 } },
  ]);
  t.equal(checkEquivalent('m,host=h v=1 1733140800000\r\nm,host=h v=2\r\n', { deviceTag: 'host', precision: 'ms' }), 2);
  t.equal(checkEquivalent('m,host=h v=1 1733140800000  \nm,host=h v=2  ', { deviceTag: 'host', precision: 'ms' }), 2);
  // 19 digits past 2^53: the scanner's hi/lo words round as Number(BigInt) does
  t.equal(checkEquivalent('m,host=h v=1 1733140809999999999\nm,host=h v=1 9223372036854775806\nm,host=h v=1 9223372036854775807\n'), 2);
  t.same(plain(decode('m,host=h v=1 9223372036854775807\n')[0]), { failure: 'timestamp 9223372036854775807 outside range -9223372036854775806 - 9223372036854775806' });
});

t.test('comments, blank lines, trailing newline; line numbers count them', async (t) => {
  const text = '# DML\n\n  \nm,host=a v=1 1\n# c\nbad\n\nm,host=a x="two\nlines" 2\nm,host=a v=3 3';
  const ev = decode(text);
  t.equal(ev.length, 4);
  t.same(plain(ev[1]), { failure: 'measurement "bad": missing fields' });
  t.same(lineProtocolEventLines(enc(text), NS), [4, 6, 8, 10]);
  t.equal(checkEquivalent(text), 2, 'lines 4 and 10 read fast; a newline in a string goes slow');
  t.ok(isEmptyLineProtocol(enc('')));
  t.ok(isEmptyLineProtocol(enc('# only\n\n \r\n')));
  t.notOk(isEmptyLineProtocol(enc('# only\nx')));
});

t.test('parse failures name the field', async (t) => {
  const cases: [string, string][] = [
    ['cpu,host=a\n', 'missing fields'],
    [',host=a v=1\n', 'missing measurement'],
    ['cpu,host= v=1\n', 'tag "host": missing tag value'],
    ['cpu,=a v=1\n', 'missing tag key'],
    ['cpu,host=a,host=b v=1\n', 'tag "host": duplicate tags'],
    ['cpu,host=a v=\n', 'field "v": missing field value'],
    ['cpu,host=a v\n', 'field "v": invalid field format (no "=")'],
    ['cpu,host=a v=tRue\n', 'field "v": invalid boolean "tRue"'],
    ['cpu,host=a v=abc\n', 'field "v": invalid value "abc" (a number, an integer 1i or 1u, a boolean or a "string")'],
    ['cpu,host=a v=1e400\n', 'field "v": invalid float "1e400" (out of range)'],
    ['cpu,host=a v=1.5i\n', 'field "v": invalid integer "1.5i"'],
    ['cpu,host=a v=-1u\n', 'field "v": invalid unsigned integer "-1u"'],
    ['cpu,host=a v=9223372036854775808i\n', 'field "v": 9223372036854775808 out of range for an integer'],
    ['cpu,host=a v="open\n', 'field "v": unbalanced quotes'],
    ['cpu,host=a v=1 12x\n', 'bad timestamp "12x"'],
    ['cpu,host=a v=1 1 2\n', 'bad timestamp "1"'],
  ];
  for (const [line, reason] of cases) {
    t.same(plain(decode(line)[0]), { failure: reason }, line);
    t.equal(checkEquivalent(line), 0, `${line}: not read fast`);
  }
});

t.test('Sluice rules: no device tag, bad names, long tag values go to EventScratch', async (t) => {
  const scratch = new EventScratch(limits);
  scratch.precision = 'ns';
  const reasonOf = (line: string): string => {
    const [ev] = decode(line);
    t.notOk(ev instanceof LineParseFailure, line);
    t.notOk(scratch.validate(ev, null, NOW), line);
    return lineProtocolReason(scratch.errorReason, 3, 'host');
  };
  t.equal(reasonOf('cpu usage=1 1733140800000000000\n'), 'line 3: missing the device tag "host" (--lp-device-tag)');
  t.match(reasonOf('cpu,host=bad/dev usage=1 1733140800000000000\n'), /^line 3: tag "host": must be 1-128 characters/);
  t.match(reasonOf('cpu,host=d usage-x=1 1733140800000000000\n'), /metric name "cpu.usage-x" must be/);
  t.match(reasonOf(`cpu,host=d,t=${'x'.repeat(257)} v=1 1733140800000000000\n`), /tags.t: must be a string of at most 256/);
  t.match(reasonOf('cpu,host=d s="text" 1733140800000000000\n'), /carries no metric/);
  t.equal(checkEquivalent('cpu usage=1 1\ncpu,host=bad/dev usage=1 1\ncpu,host=d usage-x=1 1\n'), 0);
});

t.test('precision parameters per API', async (t) => {
  t.equal(parseLpPrecision(null, 'v1'), 'ns');
  t.equal(parseLpPrecision('n', 'v1'), 'ns');
  t.equal(parseLpPrecision('u', 'v1'), 'us');
  t.equal(parseLpPrecision('h', 'v1'), 'h');
  t.equal(parseLpPrecision('h', 'v2'), undefined);
  t.equal(parseLpPrecision('us', 'v2'), 'us');
  t.equal(parseLpPrecision('x', 'v1'), undefined);
});

t.test('the name arena: a name repeated in a frame keeps one position; many names grow it', async (t) => {
  const r = new LineProtocolReader();
  const ev = new PackedEvent(8);
  r.configure(NS, NOW);
  r.frame(enc('cpu,host=a x=1,y=2 1\ncpu,host=b y=3,x=4 2\n'));
  t.equal(r.next(ev), SCAN_OK);
  const x = ev.nameAt[0], y = ev.nameAt[1];
  t.equal(r.next(ev), SCAN_OK);
  t.same([ev.nameAt[0], ev.nameAt[1]], [y, x]);
  // 3000 distinct names in one frame: the arena and the table grow, every name reads back
  let text = '';
  for (let i = 0; i < 3000; i++) text += `m${i},host=h f${i}=${i} 1\n`;
  const read = scanAll(enc(text));
  t.equal(read.length, 3000);
  t.ok(read.every((p, i) => p.verdict === SCAN_OK && p.metrics?.[0][0] === `m${i}.f${i}` && p.metrics[0][1] === i));
  t.equal(checkEquivalent(text), 3000);
});

// ---- property tests ----

/** mostly valid parts (so that many points reach the fast path), with every odd case mixed in */
const often = <T>(common: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof({ weight: 6, arbitrary: common }, { weight: 1, arbitrary: odd });
const measurement = often(fc.constantFrom('cpu', 'mem', 'disk.io', 'x_1'),
  fc.constantFrom('1a', '__proto__', 'my\\ m', 'a\\,b', 'é', 'm-1', 'a'.repeat(60), ''));
const tagKey = often(fc.constantFrom('cpu', 'region', 'rack'), fc.constantFrom('h-1', 'a\\=b', '', 'host'));
const tagValue = often(fc.oneof(fc.constantFrom('dev-1', 'dev:2', 'cpu-total', 'é', '"q"'), fc.string({ minLength: 1, maxLength: 6 }).map((s) => s.replace(/[\s,=\\]/g, '_'))),
  fc.constantFrom('a\\ b', 'a\\,b', 'x'.repeat(129), 'y'.repeat(257), '', 'a=b'));
const fieldKey = often(fc.constantFrom('value', 'usage', 'u_2', 'x.y'), fc.constantFrom('bad-key', 'f\\ k', '9', ''));
const numberText = often(
  fc.oneof(fc.double().map(String), fc.integer().map(String), { weight: 4, arbitrary: fc.integer({ min: -1e6, max: 1e6 }).map((n) => String(n / 100)) }),
  fc.constantFrom('1e3', '1E+3', '-0', '.5', '1.', '0.000123', '123456789012345678', '1.5e-7', '1e400', '12.50', '+1', '1.2.3', '--1', '0x10', 'NaN', 'Infinity', '1e-400', '00012'),
);
const fieldValue = fc.oneof(
  { weight: 8, arbitrary: numberText },
  fc.oneof(fc.integer(), fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n })).map((n) => `${n}i`),
  fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 65n })).map((n) => `${n}u`),
  fc.constantFrom('t', 'T', 'true', 'True', 'TRUE', 'f', 'F', 'false', 'False', 'FALSE', 'tRue', 'yes', 'tru'),
  fc.string({ maxLength: 8 }).map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`),
  fc.constantFrom('"a\\"b"', '"line\nbreak"', '"unclosed', `"${'z'.repeat(300)}"`, ''),
);
const timestamp = often(
  fc.oneof(fc.constant(''), fc.integer({ min: 0, max: 2 ** 31 }).map(String), fc.bigInt({ min: 0n, max: 9223372036854775806n }).map(String)),
  fc.oneof(fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
    fc.constantFrom('1733140800000000000', '1733140809999999999', '9223372036854775806', '9223372036854775807', '-5', '12x', '0001', '18446744073709551616')),
);
const line = fc.tuple(
  measurement,
  fc.option(often(fc.constantFrom('dev-1', 'dev:2', 'd.3'), tagValue), { freq: 8 }),
  often(fc.uniqueArray(fc.tuple(tagKey, tagValue), { maxLength: 2, selector: ([k]) => k }), fc.array(fc.tuple(tagKey, tagValue), { maxLength: 3 })),
  fc.oneof({ weight: 9, arbitrary: fc.uniqueArray(fc.tuple(fieldKey, fieldValue), { minLength: 1, maxLength: 3, selector: ([k]) => k }) }, fc.array(fc.tuple(fieldKey, fieldValue), { maxLength: 4 })),
  timestamp,
  often(fc.constant(' '), fc.constantFrom('  ', '\t')),
  fc.constantFrom('\n', '\r\n', '\n\n', '\n# comment\n', ' \n', '\r'),
).map(([m, device, tags, fields, ts, sp, eol]) =>
  m + (device === null ? '' : `,host=${device}`) + tags.map(([k, v]) => `,${k}=${v}`).join('') + sp + fields.map(([k, v]) => `${k}=${v}`).join(',') + (ts === '' ? '' : sp + ts) + eol);
const body = fc.array(line, { minLength: 1, maxLength: 6 }).map((ls) => ls.join(''));
const precision = fc.constantFrom<LpPrecision>('ns', 'us', 'ms', 's', 'm', 'h');

t.test('property: the scanner reads what the generic decoder reads, point for point', async (t) => {
  let fast = 0;
  assertProperty(fc.property(body, precision, often(fc.constant('host'), fc.constant('cpu')), (text, p, tag) => {
    fast += checkEquivalent(text, { deviceTag: tag, precision: p });
  }), 3000);
  t.ok(fast > 1000, `the generator reaches the fast path (${fast} points read fast)`);
});

t.test('property: valid Telegraf-like lines are all read fast, with their values', async (t) => {
  const valid = fc.tuple(fc.constantFrom('cpu', 'mem', 'net'), fc.constantFrom('dev-1', 'dev-2'), fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'value'), fc.double({ noNaN: true, noDefaultInfinity: true })), { minLength: 1, maxLength: 4 }),
    fc.bigInt({ min: 0n, max: 9223372036854775806n }))
    .map(([m, h, fs, ts]) => {
      const seen = new Set<string>();
      const fields = fs.filter(([k]) => !seen.has(k) && seen.add(k));
      return `${m},host=${h} ${fields.map(([k, v]) => `${k}=${v}`).join(',')} ${ts}\n`;
    });
  assertProperty(fc.property(fc.array(valid, { minLength: 1, maxLength: 5 }), (ls) => {
    const text = ls.join('');
    const n = checkEquivalent(text);
    const read = scanAll(enc(text));
    // only exponents past the fast path's (|e| > 22 with 15 digits or fewer) may go slow
    const slowOk = read.every((r, i) => r.verdict === SCAN_OK || /e/.test(ls[i]));
    if (!slowOk || n > ls.length) throw new Error(`not read fast: ${text}`);
  }), 1000);
  t.pass();
});

t.test('property: random bytes never throw, scanner and decoder see the same points', async (t) => {
  assertProperty(fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), body.map((s) => enc(s)).chain((b) => fc.tuple(fc.constant(b), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([x, i, v]) => {
    const c = new Uint8Array(x);
    if (c.length > 0) c[i % c.length] = v;
    return c;
  }))), (bytes) => {
    checkEquivalent(Buffer.from(bytes).toString('latin1') === '' ? '' : Buffer.from(bytes).toString('utf8'));
    // the bytes themselves (not re-encoded): same point count, nothing thrown
    const d = decodeLineProtocol(bytes, NS, NOW);
    const n = isBodyError(d) ? 0 : (d.events as unknown[]).length;
    if (scanAll(bytes).length !== n) throw new Error('point counts differ');
    lineProtocolEventLines(bytes, NS);
  }), 3000);
  t.pass();
});
