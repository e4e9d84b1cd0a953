/**
 * Issue #12: 1,000 concurrent single-event POSTs whose WAL commits are grouped (one entry per
 * event-loop turn) are all answered correctly: the right status per request, none lost, none
 * answered twice, and every accepted event counted once, also after kill -9 and a WAL replay.
 * Raw sockets, one request per connection, all written at once: a second answer on a connection
 * would be seen as bytes after the first response.
 */

import net from 'node:net';
import t from 'tap';
import { startEngine, tempDir, getJson } from '../helpers/engine';

const REQUESTS = 1000;
const now = Date.now();
const base = now - (now % 60_000) - 120_000;

interface Planned {
  body: string;
  seq: string | null;
  /** the status the request must get; 'seq' requests of one device: one 204 and one duplicate */
  status: number;
  kind: 'ok' | 'bad' | 'partial' | 'seq';
  device: string;
  /** events of this request that must be counted */
  counted: number;
}

/**
 * i % 10: 0-6 a valid event (204), 7 a bad timestamp (400), 8 an array of one valid and one bad
 * event (200, accepted 1), 9 one event with Sluice-Device-Seq 1 for a device shared by two such
 * requests (one is admitted, 204; the other waits for its commit and is a duplicate, 200).
 */
function plan(i: number): Planned {
  const ev = (device: string, value: number): Record<string, unknown> => ({ deviceId: device, timestamp: base + (i % 1000) * 10, metrics: { cpu: value } });
  switch (i % 10) {
    case 7: return { body: JSON.stringify({ ...ev(`g-${i % 50}`, 1), timestamp: 'yesterday' }), seq: null, status: 400, kind: 'bad', device: `g-${i % 50}`, counted: 0 };
    case 8: return { body: JSON.stringify([ev(`g-${i % 50}`, i % 100), { ...ev(`g-${i % 50}`, 1), timestamp: 'nope' }]), seq: null, status: 200, kind: 'partial', device: `g-${i % 50}`, counted: 1 };
    case 9: {
      const device = `s-${Math.floor(i / 20)}`;
      return { body: JSON.stringify(ev(device, 50)), seq: '1', status: 0, kind: 'seq', device, counted: 0 };
    }
    default: return { body: JSON.stringify(ev(`g-${i % 50}`, i % 100)), seq: null, status: 204, kind: 'ok', device: `g-${i % 50}`, counted: 1 };
  }
}

function request(port: number, p: Planned): string {
  const seq = p.seq === null ? '' : `Sluice-Device-Seq: ${p.seq}\r\n`;
  return `POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n${seq}` +
    `Content-Length: ${Buffer.byteLength(p.body)}\r\n\r\n${p.body}`;
}

interface Answer { status: number; body: string; extraBytes: number }

/** Opens one connection; send() writes the request; answer resolves with the first response (and counts bytes after it). */
function connection(port: number): Promise<{ socket: net.Socket; answer: Promise<Answer>; extra: () => number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let buf = Buffer.alloc(0);
    let answered: Answer | null = null;
    let extra = 0;
    let onAnswer: (a: Answer) => void = () => {};
    const answer = new Promise<Answer>((res) => { onAnswer = res; });
    socket.on('data', (chunk: Buffer) => {
      if (answered !== null) {
        extra += chunk.length;
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) return;
      answered = { status: Number(head.slice(9, 12)), body: buf.toString('utf8', end + 4, total), extraBytes: 0 };
      extra += buf.length - total;
      onAnswer(answered);
    });
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, answer, extra: () => extra }));
  });
}

async function countsByDevice(url: string, devices: string[]): Promise<Map<string, { count: number; sum: number }>> {
  const out = new Map<string, { count: number; sum: number }>();
  for (const d of devices) {
    const q = await getJson(`${url}/v1/devices/${d}/metrics/cpu?from=${base - 60_000}&to=${base + 60_000}&resolution=1h`);
    const windows = (q.body?.windows ?? []) as { count: number; sum: number }[];
    out.set(d, { count: windows.reduce((n, w) => n + w.count, 0), sum: windows.reduce((n, w) => n + w.sum, 0) });
  }
  return out;
}

t.test(`${REQUESTS} concurrent single-event POSTs with grouped commits: each answered once, right status, every event counted once`, async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--shards', '2', '--checkpoint-interval', '1h'], dataDir);
  t.teardown(() => engine.stop());
  const h0 = (await getJson(`${engine.url}/healthz`)).body;

  const planned = Array.from({ length: REQUESTS }, (_, i) => plan(i));
  const conns = await Promise.all(planned.map(() => connection(engine.port)));
  // every request written in one go: they reach the engine in a few event-loop turns
  for (let i = 0; i < REQUESTS; i++) conns[i].socket.write(request(engine.port, planned[i]));
  const answers = await Promise.all(conns.map((c) => c.answer));
  // a second answer on a connection would arrive right behind the first
  await new Promise((r) => setTimeout(r, 300));

  const expected = new Map<string, { count: number; sum: number }>();
  const seqStatuses = new Map<string, number[]>();
  let wrong = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const p = planned[i];
    const a = answers[i];
    if (conns[i].extra() !== 0) t.fail(`request ${i}: ${conns[i].extra()} bytes after its answer (answered twice?)`);
    if (p.kind === 'seq') {
      seqStatuses.set(p.device, [...(seqStatuses.get(p.device) ?? []), a.status]);
      if (a.status === 200 && !JSON.parse(a.body).duplicate) t.fail(`request ${i}: a 200 that is not a duplicate: ${a.body}`);
      if (a.status === 204) expected.set(p.device, { count: 1, sum: 50 });
      continue;
    }
    if (a.status !== p.status) {
      wrong++;
      if (wrong <= 5) t.fail(`request ${i} (${p.kind}): status ${a.status}, expected ${p.status}: ${a.body}`);
      continue;
    }
    if (p.kind === 'partial') t.match(JSON.parse(a.body), { accepted: 1, rejected: [{ index: 1 }] });
    if (p.kind === 'bad') t.equal(JSON.parse(a.body).code, 'SLUICE_E_BAD_TIMESTAMP');
    if (p.counted > 0) {
      const e = expected.get(p.device) ?? { count: 0, sum: 0 };
      e.count += 1;
      e.sum += i % 100;
      expected.set(p.device, e);
    }
  }
  t.equal(wrong, 0, 'every request got its status');
  t.equal(answers.length, REQUESTS, 'every request answered');
  for (const [device, statuses] of seqStatuses) {
    t.same([...statuses].sort(), [200, 204], `${device}: one admitted, one duplicate`);
  }
  for (const c of conns) c.socket.destroy();

  const h1 = (await getJson(`${engine.url}/healthz`)).body;
  const accepted = [...expected.values()].reduce((n, e) => n + e.count, 0);
  t.equal(accepted, 800 + 50, '700 single events, 100 from the partial batches, 50 device-seq batches');
  t.equal(h1.ingest.eventsAccepted - h0.ingest.eventsAccepted, accepted, '/healthz counts each accepted event once');
  const batches = h1.storage.wal.walBatches - h0.storage.wal.walBatches;
  const appends = h1.storage.wal.walAppends - h0.storage.wal.walAppends;
  t.equal(batches, 850, 'one WAL batch per admitted request');
  t.ok(appends < batches, `the commits were grouped: ${batches} batches in ${appends} WAL entries`);

  const devices = [...expected.keys()];
  await waitFor(async () => sumCounts(await countsByDevice(engine.url, devices)) === accepted);
  t.same(await countsByDevice(engine.url, devices), expected, 'every device holds exactly its accepted events');

  // kill -9: the grouped WAL entries replay to the same counts, and the device seqs are kept
  t.equal(await engine.stop('SIGKILL'), null);
  engine = await startEngine(['--shards', '2', '--checkpoint-interval', '1h'], dataDir);
  t.same(await countsByDevice(engine.url, devices), expected, 'the same counts after kill -9 and the WAL replay');
  const again = await connection(engine.port);
  again.socket.write(request(engine.port, plan(9)));
  const dup = await again.answer;
  again.socket.destroy();
  t.equal(dup.status, 200);
  t.equal(JSON.parse(dup.body).duplicate, true, 'a device seq admitted in a group is still known after the replay');
});

function sumCounts(m: Map<string, { count: number }>): number {
  let n = 0;
  for (const e of m.values()) n += e.count;
  return n;
}

async function waitFor(f: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
