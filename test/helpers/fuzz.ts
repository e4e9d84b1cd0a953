/**
 * The fuzz suite's shared parts (test/engine/fuzz-*.test.ts, issue #13 part 4): the run budget,
 * a raw keep-alive HTTP/1.1 client, byte mutations, the health check and the reference data that
 * must come out of the fuzzing unchanged.
 *
 * Budget: SLUICE_FUZZ_RUNS is the number of generated inputs of the whole suite (default 10,000,
 * so that npm test stays fast; CI sets 100,000); each surface takes its share (FUZZ_SHARES).
 * Inputs are drawn with fc.sample in chunks, chunk i from seed SLUICE_FUZZ_SEED + i, so one
 * failing input is replayed by the seed, the chunk and the index its failure message names.
 * They are sent concurrently over keep-alive connections: fast-check's own runner would send one
 * at a time and 10^5 inputs would take far longer than CI allows.
 *
 * The client writes bytes as given (any header byte, any Content-Length), which node:http and
 * fetch refuse to do, and tells "answered" from "closed without an answer".
 */

import net from 'node:net';
import fc from 'fast-check';
import type { Test } from 'tap';
import { getJson, post, type EngineProcess } from './engine';
import { PROPERTY_SEED } from './property';

export const FUZZ_SEED = Number(process.env.SLUICE_FUZZ_SEED ?? PROPERTY_SEED);
export const FUZZ_RUNS_TOTAL = Number(process.env.SLUICE_FUZZ_RUNS ?? 10_000);

/** each surface's share of FUZZ_RUNS_TOTAL (sums to 1) */
export const FUZZ_SHARES = {
  events: 0.3, headers: 0.08, lineProtocol: 0.12, remoteWrite: 0.12, queries: 0.14, stream: 0.24,
} as const;

export function runsOf(surface: keyof typeof FUZZ_SHARES): number {
  return Math.max(50, Math.round(FUZZ_RUNS_TOTAL * FUZZ_SHARES[surface]));
}

/** inputs drawn per fc.sample call: bounds memory whatever the budget */
export const CHUNK = 2_000;

/** Draws n inputs in chunks; f gets each chunk with its index (chunk i is seed FUZZ_SEED + i). */
export async function forChunks<T>(arb: fc.Arbitrary<T>, n: number, f: (inputs: T[], chunk: number) => Promise<void>): Promise<void> {
  for (let chunk = 0; chunk * CHUNK < n; chunk++) {
    const size = Math.min(CHUNK, n - chunk * CHUNK);
    await f(fc.sample(arb, { seed: FUZZ_SEED + chunk, numRuns: size }), chunk);
  }
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** what a request came back with: an answer, or the server closed the connection without one */
export type Outcome = HttpAnswer | { closed: true } | { timeout: true };

export function isAnswer(o: Outcome): o is HttpAnswer {
  return (o as HttpAnswer).status !== undefined;
}

const REQUEST_TIMEOUT_MS = 20_000;

/** One keep-alive HTTP/1.1 connection; one request at a time. */
export class RawConnection {
  private sock: net.Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private waiter: ((o: Outcome) => void) | null = null;
  private closedEarly = false;

  constructor(private readonly port: number) {}

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.port, '127.0.0.1');
      s.setNoDelay(true);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
      s.on('data', (d: Buffer) => this.onData(d));
      s.on('close', () => this.onClose(s));
      s.on('error', () => { /* 'close' follows */ });
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? Buffer.from(d) : Buffer.concat([this.buf, d]);
    this.tryParse(false);
  }

  private onClose(s: net.Socket): void {
    if (this.sock !== s) return;
    this.sock = null;
    this.tryParse(true);
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w({ closed: true });
    }
    this.buf = Buffer.alloc(0);
  }

  /** Parses one whole response from buf (ended: the peer closed, a body without length ends here). */
  private tryParse(ended: boolean): void {
    if (this.waiter === null) return;
    const headEnd = this.buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const lines = this.buf.subarray(0, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (m === null) {
      this.finish({ status: -1, headers: { line: lines[0] }, body: Buffer.alloc(0) }, this.buf.length);
      return;
    }
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    const status = Number(m[1]);
    const start = headEnd + 4;
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length']);
      if (this.buf.length < start + len) return;
      this.finish({ status, headers, body: this.buf.subarray(start, start + len) }, start + len);
    } else if ((headers['transfer-encoding'] ?? '').toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      let at = start;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', at);
        if (nl < 0) return;
        const size = parseInt(this.buf.subarray(at, nl).toString('latin1'), 16);
        if (this.buf.length < nl + 2 + size + 2) return;
        if (size === 0) {
          this.finish({ status, headers, body: Buffer.concat(parts) }, nl + 4);
          return;
        }
        parts.push(this.buf.subarray(nl + 2, nl + 2 + size));
        at = nl + 2 + size + 2;
      }
    } else if (status === 204 || status === 304 || status < 200) {
      this.finish({ status, headers, body: Buffer.alloc(0) }, start);
    } else if (ended) {
      this.finish({ status, headers, body: this.buf.subarray(start) }, this.buf.length);
    }
  }

  private finish(a: HttpAnswer, consumed: number): void {
    this.buf = this.buf.subarray(consumed);
    const w = this.waiter!;
    this.waiter = null;
    w(a);
  }

  /** Sends the bytes of one request; end: half-close the socket after them (a truncated body). */
  async request(bytes: Buffer, end = false): Promise<Outcome> {
    if (this.sock === null || this.closedEarly) {
      this.closedEarly = false;
      this.buf = Buffer.alloc(0);
      this.sock = await this.connect();
    }
    const sock = this.sock;
    const answered = new Promise<Outcome>((resolve) => { this.waiter = resolve; });
    const timer = setTimeout(() => {
      if (this.waiter !== null) {
        const w = this.waiter;
        this.waiter = null;
        this.sock = null;
        sock.destroy();
        w({ timeout: true });
      }
    }, REQUEST_TIMEOUT_MS);
    if (end) sock.end(bytes);
    else sock.write(bytes);
    const o = await answered;
    clearTimeout(timer);
    if (end || (isAnswer(o) && (o.headers.connection ?? '').toLowerCase() === 'close')) {
      // the next request needs a fresh connection
      this.sock = null;
      sock.destroy();
    }
    return o;
  }

  close(): void {
    const s = this.sock;
    this.sock = null;
    s?.destroy();
  }
}

export interface RawRequest {
  method: string;
  /** path and query, as sent (latin1: every byte 0x00-0xff can be written) */
  target: string;
  headers: [string, string][];
  body?: Buffer;
  /** the Content-Length header, when it should differ from body.length (or not be a number) */
  contentLength?: string | null;
}

export function requestBytes(r: RawRequest): Buffer {
  const body = r.body ?? Buffer.alloc(0);
  let head = `${r.method} ${r.target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const [k, v] of r.headers) head += `${k}: ${v}\r\n`;
  const cl = r.contentLength === undefined ? (r.method === 'GET' && body.length === 0 ? null : String(body.length)) : r.contentLength;
  if (cl !== null) head += `Content-Length: ${cl}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), body]);
}

/** Runs f over inputs on `connections` keep-alive connections, each sending one request at a time. */
export async function overConnections<T>(port: number, connections: number, inputs: T[],
  f: (input: T, index: number, conn: RawConnection) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: connections }, async () => {
    const conn = new RawConnection(port);
    try {
      while (next < inputs.length) {
        const i = next++;
        await f(inputs[i], i, conn);
      }
    } finally {
      conn.close();
    }
  }));
}

export function parseJsonBody(body: Buffer): any {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
}

/** A short printable form of an input for a failure message (bytes as JSON-escaped latin1). */
export function show(bytes: Buffer | string, max = 600): string {
  const s = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}...(${s.length} chars)` : s);
}

/**
 * Tallies answers per status, and keeps the first few failures with how to replay them.
 * "Fails" means: a 5xx, no answer (closed or timed out), or a 4xx without a Sluice code.
 */
export class Tally {
  readonly byStatus = new Map<string, number>();
  readonly failures: string[] = [];
  count = 0;

  add(status: string): void {
    this.count++;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  fail(what: string): void {
    if (this.failures.length < 10) this.failures.push(what);
    else if (this.failures.length === 10) this.failures.push('... (more)');
  }

  summary(): string {
    return [...this.byStatus.entries()].sort().map(([k, v]) => `${k}: ${v}`).join(', ');
  }

  /** answers with this status prefix ('2', '4', ...) */
  countOf(prefix: string): number {
    let n = 0;
    for (const [k, v] of this.byStatus) if (k.startsWith(prefix)) n += v;
    return n;
  }
}

/** Sluice's error codes, as an answer may carry them (loaded lazily: test files import this first) */
function isCode(code: unknown): boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ERRORS } = require('../../protocol') as typeof import('../../protocol');
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

export interface Verdict {
  /** the input is built to be invalid: only a 4xx will do */
  mustRefuse: boolean;
}

/**
 * Judges one HTTP outcome: records its status, and a failure (with the replay key `where` and the
 * input) when it is not an answer, a 5xx, a 2xx to an input built invalid, or an error without
 * a SLUICE_E_* code. `codeOptional`: routes that answer Prometheus's or no error shape.
 */
export function judge(tally: Tally, o: Outcome, v: Verdict, where: string, input: string, codeOptional = false): void {
  if (!isAnswer(o)) {
    const what = 'closed' in o ? 'closed' : 'timeout';
    tally.add(what);
    tally.fail(`${where}: ${what} without an answer; input ${input}`);
    return;
  }
  tally.add(String(o.status));
  const body = o.body.length > 0 ? parseJsonBody(o.body) : null;
  if (o.status >= 500 || o.status < 100) {
    tally.fail(`${where}: ${o.status} ${show(o.body, 300)}; input ${input}`);
  } else if (o.status >= 400) {
    if (!codeOptional && !isCode(body?.code)) tally.fail(`${where}: ${o.status} without a SLUICE_E_* code: ${show(o.body, 300)}; input ${input}`);
  } else if (v.mustRefuse && o.status < 300 && body?.duplicate !== true) {
    // (a duplicate device seq is acknowledged before its body is read, and nothing is kept)
    tally.fail(`${where}: ${o.status} to an input built invalid: ${show(o.body, 300)}; input ${input}`);
  }
}

/** The engine process is running, /healthz answers 200 and no internal fault was counted. */
export async function assertHealthy(t: Test, engine: EngineProcess, after: string): Promise<void> {
  t.equal(engine.proc.exitCode, null, `engine still running after ${after}`);
  t.equal(engine.proc.signalCode, null, `engine not killed by a signal after ${after}`);
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.status, 200, `/healthz 200 after ${after}`);
  t.equal(h.body?.faults?.count, 0, `no internal fault after ${after} (last: ${h.body?.faults?.lastRequestId})`);
}

/**
 * The reference data: a device and a metric no generator produces (`ref` and `.` are not drawn
 * from the fuzz alphabets' positions where ids start; generated ids start with `fz`), with
 * readings whose aggregates are known exactly.
 */
export const REF_DEVICE = 'refdev:0';
export const REF_METRIC = 'ref.metric';
export const REF_VALUES = [1, 2, 3, 4, 10.5];

export interface RefSnapshot {
  device: unknown;
  fleet: unknown;
}

/** Writes the reference readings in one 10 s window two minutes ago; returns the window start. */
export async function seedReference(engine: EngineProcess): Promise<number> {
  const t0 = Math.floor((Date.now() - 120_000) / 10_000) * 10_000;
  const events = REF_VALUES.map((v, i) => ({ deviceId: REF_DEVICE, timestamp: t0 + i * 1000, metrics: { [REF_METRIC]: v } }));
  const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(events));
  if (r.status !== 204) throw new Error(`seeding the reference data: ${r.status} ${JSON.stringify(r.body)}`);
  return t0;
}

/** The reference device's and the fleet's windows over the reference window. */
export async function referenceSnapshot(engine: EngineProcess, t0: number): Promise<RefSnapshot> {
  const range = `from=${t0}&to=${t0 + 10_000}&resolution=10s`;
  const d = await getJson(`${engine.url}/v1/devices/${encodeURIComponent(REF_DEVICE)}/metrics/${REF_METRIC}?${range}`);
  const f = await getJson(`${engine.url}/v1/metrics/${REF_METRIC}?${range}`);
  return { device: d.status === 200 ? d.body.windows : d, fleet: f.status === 200 ? f.body.windows : f };
}

/** Asserts the reference data's exact aggregates (before the fuzz and, unchanged, after it). */
export function assertReference(t: Test, snap: RefSnapshot, when: string): void {
  const sum = REF_VALUES.reduce((a, b) => a + b, 0);
  const expected = { count: REF_VALUES.length, sum, min: Math.min(...REF_VALUES), max: Math.max(...REF_VALUES), last: REF_VALUES[REF_VALUES.length - 1] };
  t.match(snap.device, [expected], `reference device's window ${when}`);
  t.match(snap.fleet, [{ ...expected, devices: 1 }], `reference metric's fleet window ${when}`);
}

/** Byte mutations of a valid input: flips, overwrites, insertions, deletions, truncation, repeats. */
export function mutated(base: Buffer): fc.Arbitrary<Buffer> {
  const op = fc.oneof(
    fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ k: fc.constant('set' as const), at: fc.nat(), v: fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0xc0, 0xc1, 0xd9, 0xdb, 0xdd, 0xdf, 0x22, 0x5c, 0x2c, 0x0a, 0x3d, 0x20) }),
    fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
    fc.record({ k: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ k: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 64 }), times: fc.integer({ min: 2, max: 50 }) }),
  );
  return fc.array(op, { minLength: 1, maxLength: 4 }).map((ops) => {
    let b = Buffer.from(base);
    for (const o of ops) {
      const at = b.length === 0 ? 0 : o.at % b.length;
      switch (o.k) {
        case 'flip': if (b.length > 0) b[at] ^= 1 << o.bit; break;
        case 'set': if (b.length > 0) b[at] = o.v; break;
        case 'insert': b = Buffer.concat([b.subarray(0, at), Buffer.from(o.bytes), b.subarray(at)]); break;
        case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + o.n)]); break;
        case 'truncate': b = b.subarray(0, at); break;
        case 'repeat': {
          const piece = b.subarray(at, at + o.n);
          b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: o.times }, () => piece), b.subarray(at)]);
          break;
        }
      }
    }
    return b;
  });
}

/** Strings that break naive code: controls, quotes, escapes, surrogates, long runs, percent-encoding. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('%', '2', 'F', 'z', 'Z', '0', 'e', '+', '&', '=', '.', '-', ':', '\\', '"', '\u0000', '\u00ff'), maxLength: 40 }),
  fc.constantFrom('', ' ', '%', '%%', '%0', '%zz', '%ED%A0%80', '%C0%AF', '%FF', '%00', '..', '../..', '\\', 'null', 'undefined', 'NaN',
    'Infinity', '-Infinity', '1e309', '-0', '0x10', '9'.repeat(40), '__proto__', 'constructor', 'toString', '\ud800', '\udfff', '\u202e'),
  fc.integer({ min: 200, max: 20_000 }).map((n) => 'a'.repeat(n)),
);
