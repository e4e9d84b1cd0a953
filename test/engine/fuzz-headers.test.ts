import t from 'tap';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { startEngine } from '../helpers/engine';
import {
  FUZZ_SEED, assertHealthy, assertReference, judge, forChunks, oddString, overConnections, referenceSnapshot, requestBytes,
  runsOf, seedReference, show, Tally, isAnswer, RawConnection,
} from '../helpers/fuzz';
import { remoteWriteBody } from '../helpers/prompb';

// Issue #13 part 4: hostile headers on every ingest route (Content-Type, Content-Encoding,
// Sluice-Device-Seq, Content-Length short, long, not a number or twice, chunked bodies).

const CONNECTIONS = 8;

t.test(`fuzz: headers of the ingest routes (seed ${FUZZ_SEED}, SLUICE_FUZZ_RUNS)`, async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const t0 = await seedReference(engine);
  assertReference(t, await referenceSnapshot(engine, t0), 'before the fuzz');

  await t.test(`headers: ${runsOf('headers')} Content-Type, Content-Encoding, Sluice-Device-Seq and Content-Length cases`, async (t) => {
    const tally = new Tally();
    const controls = Promise.all(['\u0000', '\u0001', '\u001f'].map(async (c) => {
      const conn = new RawConnection(engine.port);
      const o = await conn.request(requestBytes({ method: 'POST', target: '/v1/events', headers: [['Content-Type', `application/json${c}`]], body: Buffer.from('{}') }));
      conn.close();
      return o;
    }));
    await forChunks(headerCase, runsOf('headers'), async (inputs, chunk) => {
      await overConnections(engine.port, CONNECTIONS, inputs, async (c, i, conn) => {
        const o = await conn.request(requestBytes(c.request), c.halfClose);
        const where = `seed ${FUZZ_SEED} chunk ${chunk} #${i} (${c.what})`;
        const input = show(requestBytes(c.request), 400);
        if (c.framing && !isAnswer(o) && 'closed' in o) {
          // a request the server cannot delimit (its body never ends, a Content-Length that is no
          // number): closing without an answer is what HTTP/1.1 allows (RFC 9112 6.3)
          tally.add('closed (framing)');
          return;
        }
        judge(tally, o, { mustRefuse: c.mustRefuse }, where, input, c.framing);
        // the rest of a body longer than its Content-Length is read as the next request: start afresh
        if (c.framing) conn.close();
      });
      await assertHealthy(t, engine, `headers chunk ${chunk}`);
    });
    t.same(tally.failures, [], `every request answered, or closed where its framing is broken: ${tally.summary()}`);
    t.same(await controls, [{ closed: true }, { closed: true }, { closed: true }], 'a control character in a header: closed by uWS, no answer');
  });

  await assertHealthy(t, engine, 'the fuzz');
  assertReference(t, await referenceSnapshot(engine, t0), 'after the fuzz');
});

interface HeaderCase {
  what: string;
  request: Parameters<typeof requestBytes>[0];
  halfClose: boolean;
  /** the framing of the request is broken: the server may close instead of answering */
  framing: boolean;
  mustRefuse: boolean;
}

// uWS's parser holds a request with a control character in a header or the target unanswered
// until its idle timeout (~10 s), then closes it: that is HTTP framing, owned by uWS, checked once
// below rather than drawn at random (each would cost 10 s)
const noControls = (s: string): string => s.replace(/[\x00-\x08\x0a-\x1f]/g, '');

/** header values as senders get them wrong: every latin1 byte but the controls, long ones, lists */
const headerValue: fc.Arbitrary<string> = fc.oneof(
  oddString.map((s) => noControls(Buffer.from(s, 'utf8').toString('latin1'))),
  fc.string({ unit: 'binary-ascii', maxLength: 30 }).map(noControls),
  fc.constantFrom('gzip, deflate', 'gzip;q=1', ' gzip ', 'GZIP', 'br', 'zstd', 'compress', 'identity, gzip', '\t', '\u007f', '\u00ff'),
);

/**
 * A header value as the engine reads it: uWS's parser ends a value at its first byte >= 0x80
 * (measured: `Content-Type: a\xe9` reads "a", `\xc3\xa9` reads ""), so such a Content-Encoding
 * reads as absent: identity, which is harmless since the body is then read as sent.
 */
function seenByEngine(value: string): string {
  const cut = value.search(/[\u0080-\uffff]/);
  return cut < 0 ? value : value.slice(0, cut);
}

const ROUTES = ['/v1/events', '/write', '/api/v2/write', '/api/v1/write', '/telemetry/cpu', '/compute/metrics'] as const;
type Route = typeof ROUTES[number];

function validBody(route: Route): Buffer {
  const now = Date.now() - 30_000;
  switch (route) {
    case '/v1/events': return Buffer.from(JSON.stringify({ deviceId: 'fzh-1', timestamp: now, metrics: { fmh: 1 } }));
    case '/write': case '/api/v2/write': return Buffer.from(`fmh,host=fzh-1 v=1 ${now}000000\n`);
    case '/api/v1/write': return remoteWriteBody([{ labels: { __name__: 'fmh', instance: 'fzh-1' }, samples: [{ value: 1, timestamp: now }] }]);
    case '/telemetry/cpu': return Buffer.from(JSON.stringify({ deviceId: 'fzh-1', timestamp: now, cpu: 1 }));
    case '/compute/metrics': return Buffer.from(JSON.stringify({ fmh: ['count'], from: '2020-01-01 00:00:00', to: '2020-01-01 00:01:00' }));
  }
}

const CONTENT_TYPE_OK: Record<Route, string> = {
  '/v1/events': 'application/json', '/write': 'text/plain', '/api/v2/write': 'text/plain', '/api/v1/write': 'application/x-protobuf',
  '/telemetry/cpu': 'application/json', '/compute/metrics': 'application/json',
};

const headerCase: fc.Arbitrary<HeaderCase> = fc.record({
  route: fc.constantFrom(...ROUTES),
  contentType: fc.option(headerValue, { nil: undefined, freq: 2 }),
  encoding: fc.option(fc.oneof(headerValue, fc.constantFrom('gzip', 'x-gzip', 'deflate', 'identity', 'snappy', '')), { nil: undefined }),
  bodyAs: fc.constantFrom('plain', 'gzip', 'deflate', 'garbage', 'truncated-gzip', 'bomb', 'empty'),
  seq: fc.option(fc.oneof(headerValue, fc.nat().map(String), fc.constantFrom('-1', '1.5', '1e3', '9'.repeat(16), ' 1', '0x1', '')), { nil: undefined, freq: 2 }),
  length: fc.constantFrom('exact', 'exact', 'exact', 'shorter', 'longer', 'nan', 'negative', 'huge', 'twice', 'chunked', 'bad-chunked', 'none'),
  extra: fc.option(fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/), headerValue), { nil: undefined }),
}).map((h): HeaderCase => {
  const plain = validBody(h.route);
  let body: Buffer;
  switch (h.bodyAs) {
    case 'plain': body = plain; break;
    case 'gzip': body = zlib.gzipSync(plain); break;
    case 'deflate': body = zlib.deflateSync(plain); break;
    case 'garbage': body = Buffer.from('\x1f\x8b\x08garbage'); break;
    case 'truncated-gzip': body = zlib.gzipSync(plain).subarray(0, 12); break;
    case 'bomb': body = zlib.gzipSync(Buffer.alloc(3 << 20)); break;
    case 'empty': body = Buffer.alloc(0); break;
  }
  const headers: [string, string][] = [];
  if (h.contentType !== undefined) headers.push(['Content-Type', h.contentType]);
  else headers.push(['Content-Type', CONTENT_TYPE_OK[h.route]]);
  if (h.encoding !== undefined) headers.push(['Content-Encoding', h.encoding]);
  if (h.seq !== undefined) headers.push(['Sluice-Device-Seq', h.seq]);
  if (h.extra !== undefined) headers.push(h.extra);
  let contentLength: string | null | undefined;
  let halfClose = false;
  let framing = true;
  switch (h.length) {
    case 'exact': framing = false; break;
    case 'none': contentLength = null; framing = body.length > 0; break;
    case 'shorter': contentLength = String(Math.max(0, body.length - 1 - (body.length >> 1))); break;
    case 'longer': contentLength = String(body.length + 10); halfClose = true; break;
    case 'nan': contentLength = 'abc'; break;
    case 'negative': contentLength = '-1'; break;
    case 'huge': contentLength = '99999999999999999999'; break;
    case 'twice': contentLength = `${body.length}\r\nContent-Length: ${body.length + 1}`; break;
    case 'chunked':
      contentLength = null;
      headers.push(['Transfer-Encoding', 'chunked']);
      body = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
      break;
    case 'bad-chunked':
      contentLength = null;
      headers.push(['Transfer-Encoding', 'chunked']);
      body = Buffer.concat([Buffer.from('zz\r\n'), body, Buffer.from('\r\n')]);
      halfClose = true;
      break;
  }
  const contentType = h.contentType === undefined ? undefined : seenByEngine(h.contentType);
  const badType = h.route === '/v1/events' && contentType !== undefined &&
    !/^\s*application\/(json|x-ndjson|ndjson|jsonl|msgpack|x-msgpack|vnd\.msgpack)\s*(;.*)?$/i.test(contentType);
  const okEncodings = h.route === '/api/v1/write' ? ['', 'snappy'] : ['', 'identity', 'gzip', 'x-gzip', 'deflate'];
  const badEncoding = h.encoding !== undefined && !okEncodings.includes(seenByEngine(h.encoding).trim().toLowerCase());
  return {
    what: `${h.route} type=${JSON.stringify(h.contentType)} encoding=${JSON.stringify(h.encoding)} body=${h.bodyAs} seq=${JSON.stringify(h.seq)} length=${h.length}`,
    request: { method: 'POST', target: h.route, headers, body, contentLength },
    halfClose,
    framing,
    mustRefuse: !framing && (badType || badEncoding),
  };
});
