/**
 * Crash test: the real engine is SIGKILLed at random moments while WebSocket and HTTP clients
 * stream batches with device sequences and resend whatever was not acknowledged; after every
 * kill it restarts on the same data dir. At the end every device's count/sum/min/max must equal
 * those of the acknowledged batches exactly: no loss, no double count.
 *
 * Long runs: node dist/test/engine/crash-recovery.test.js --kills 50
 */

import t from 'tap';
import { pack } from 'msgpackr';
import WebSocket from 'ws';
import { startEngine, tempDir, getJson, type EngineProcess } from '../helpers/engine';

const argKills = process.argv.indexOf('--kills');
const KILLS = argKills > 0 ? Number(process.argv[argKills + 1]) : Number(process.env.SLUICE_CRASH_KILLS ?? 5);
const WS_DEVICES = 3;
const HTTP_DEVICES = 2;
const EVENTS_PER_BATCH = 50;
const WINDOW = 4;
const PACE_MS = 4;

interface Batch {
  seq: number;
  events: { timestamp: number; metrics: { cpu: number } }[];
}

interface Totals { count: number; sum: number; min: number; max: number }

function totalsOf(batches: Iterable<Batch>): Totals {
  const t: Totals = { count: 0, sum: 0, min: Infinity, max: -Infinity };
  for (const b of batches) {
    for (const e of b.events) {
      t.count++;
      t.sum += e.metrics.cpu;
      if (e.metrics.cpu < t.min) t.min = e.metrics.cpu;
      if (e.metrics.cpu > t.max) t.max = e.metrics.cpu;
    }
  }
  return t;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Rng {
  constructor(private s: number) {}
  next(n: number): number {
    this.s = (Math.imul(this.s, 1103515245) + 12345) >>> 0;
    return this.s % n;
  }
}

/**
 * Event time runs EVENT_SPEEDUP times faster than the wall clock from `from`: a batch is made when
 * it is first sent, so all devices stay close in event time (within the allowed lateness even
 * across restarts), windows close while the engine is being killed, and a resent batch keeps the
 * timestamps it was first sent with.
 */
const EVENT_SPEEDUP = 30;
const LATENESS = '2m';

class BatchSource {
  private readonly made: Batch[] = [];
  constructor(private readonly count: number, private readonly rng: Rng, private readonly from: number, private readonly t0: number) {}
  get length(): number { return this.count; }
  get(i: number): Batch {
    while (this.made.length <= i) {
      const now = this.from + (Date.now() - this.t0) * EVENT_SPEEDUP;
      const events = [];
      for (let k = 0; k < EVENTS_PER_BATCH; k++) events.push({ timestamp: now + this.rng.next(5000), metrics: { cpu: this.rng.next(1000) - 200 } });
      this.made.push({ seq: this.made.length + 1, events });
    }
    return this.made[i];
  }
  madeSoFar(): Batch[] { return this.made; }
}

/** Where the engine is now (it moves to a new port on every restart), or null while it is down. */
interface Target { url: string | null }

/** A device over a pinned WebSocket, WINDOW batches in flight, resending from the first unacked. */
async function wsDevice(id: string, batches: BatchSource, target: Target, acked: Set<number>, stop: () => boolean): Promise<void> {
  while (acked.size < batches.length && !stop()) {
    if (target.url === null) { await sleep(20); continue; }
    const ws = new WebSocket(`${target.url.replace('http', 'ws')}/v1/stream?deviceId=${id}`);
    const closed = new Promise<void>((resolve) => { ws.on('close', () => resolve()); ws.on('error', () => resolve()); });
    const opened = await new Promise<boolean>((resolve) => { ws.once('open', () => resolve(true)); ws.once('error', () => resolve(false)); ws.once('close', () => resolve(false)); });
    if (!opened) { await sleep(20); continue; }
    // resend from the first batch not acknowledged, in order
    let next = firstUnacked(batches, acked);
    let inFlight = 0;
    const sendMore = () => {
      while (inFlight < WINDOW && next < batches.length && next >= 0) {
        const b = batches.get(next++);
        if (acked.has(b.seq)) continue;
        ws.send(pack({ seq: b.seq, events: b.events }));
        inFlight++;
      }
    };
    ws.on('message', (data: Buffer) => {
      const a = JSON.parse(data.toString());
      inFlight--;
      if (a.ack !== undefined) acked.add(a.ack);
      else if (a.code === 'SLUICE_E_SEQUENCE_GAP') next = Math.min(next, a.expected - 1);
      else next = Math.min(next, a.seq - 1); // not accepted: send it again
      if (acked.size === batches.length) ws.close();
      else setTimeout(sendMore, PACE_MS);
    });
    sendMore();
    await closed;
  }
}

/** A device over HTTP with Sluice-Device-Seq, one request at a time, retrying until acknowledged. */
function firstUnacked(batches: BatchSource, acked: Set<number>): number {
  let i = 0;
  while (i < batches.length && acked.has(i + 1)) i++;
  return i;
}

async function httpDevice(id: string, batches: BatchSource, target: Target, acked: Set<number>, stop: () => boolean): Promise<void> {
  let i = 0;
  while (i < batches.length && !stop()) {
    const url = target.url;
    if (url === null) { await sleep(20); continue; }
    const b = batches.get(i);
    try {
      const r = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'sluice-device-seq': String(b.seq) },
        body: JSON.stringify(b.events.map((e) => ({ deviceId: id, ...e }))),
        signal: AbortSignal.timeout(5000),
      });
      const text = await r.text();
      if (r.status === 204 || r.status === 200) { acked.add(b.seq); i++; await sleep(PACE_MS); }
      else if (r.status === 409) i = JSON.parse(text).expected - 1;
      else await sleep(10);
    } catch {
      await sleep(20); // the engine is down: try again
    }
  }
}

t.setTimeout(120_000 + KILLS * 10_000);

t.test(`exact aggregates across ${KILLS} SIGKILLs and restarts`, async (t) => {
  const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed}, kills ${KILLS}`);
  const rng = new Rng(seed);
  const dataDir = tempDir('sluice-crash-');
  const args = ['--shards', '2', '--checkpoint-interval', '300ms', '--allowed-lateness', LATENESS];
  let engine: EngineProcess | null = await startEngine(args, dataDir);
  const target: Target = { url: engine.url };
  t.teardown(async () => { if (engine) await engine.stop('SIGKILL'); });
  const from = Date.now() - 2 * 86_400_000;
  const t0 = Date.now();
  // clients are paced (PACE_MS between batches) so that traffic flows through every kill
  const batchesPerDevice = 120 * (KILLS + 2);
  const devices: { id: string; http: boolean; batches: BatchSource; acked: Set<number> }[] = [];
  for (let d = 0; d < WS_DEVICES + HTTP_DEVICES; d++) {
    devices.push({ id: `crash-${d}`, http: d >= WS_DEVICES, batches: new BatchSource(batchesPerDevice, rng, from, t0), acked: new Set() });
  }
  let stopAll = false;
  const clients = devices.map((d) => (d.http ? httpDevice : wsDevice)(d.id, d.batches, target, d.acked, () => stopAll));
  const done = () => devices.every((d) => d.acked.size === d.batches.length);

  let kills = 0;
  const deadline = Date.now() + 90_000 + KILLS * 8_000;
  while (kills < KILLS && Date.now() < deadline) {
    await sleep(150 + rng.next(600));
    target.url = null;
    await engine!.stop('SIGKILL');
    kills++;
    engine = await startEngine(args, dataDir);
    target.url = engine.url;
  }
  t.comment(`acknowledged before the last kill: ${devices.map((d) => d.acked.size).join(', ')} of ${batchesPerDevice} each (done: ${done()})`);
  let timer: NodeJS.Timeout | undefined;
  const finished = await Promise.race([
    Promise.all(clients).then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now())); }),
  ]);
  clearTimeout(timer);
  stopAll = true;
  t.ok(finished, 'every client got every batch acknowledged');
  t.ok(kills >= Math.min(KILLS, 5), `killed ${kills} times`);

  // one last kill after everything was acknowledged: recovery alone must hold it all
  await engine!.stop('SIGKILL');
  engine = await startEngine(args, dataDir);
  let wrong = 0;
  for (const d of devices) {
    const expected = totalsOf(d.batches.madeSoFar().filter((b) => d.acked.has(b.seq)));
    const q = await getJson(`${engine.url}/v1/devices/${d.id}/metrics/cpu?from=${from - 86_400_000}&to=${Date.now()}&resolution=1d`);
    const got = q.body.windows.reduce((a: Totals, w: Totals) => ({
      count: a.count + w.count, sum: a.sum + w.sum, min: Math.min(a.min, w.min), max: Math.max(a.max, w.max),
    }), { count: 0, sum: 0, min: Infinity, max: -Infinity });
    if (!t.same(got, expected, `${d.id} (${d.http ? 'HTTP' : 'WebSocket'}): aggregates equal the acknowledged batches`)) wrong++;
  }
  t.equal(wrong, 0);
  const late = await getJson(`${engine.url}/v1/late`);
  t.equal(late.body.total, 0, 'no event was too late (else the reference above would not apply)');
  const h = await getJson(`${engine.url}/healthz`);
  t.ok(h.body.shards.some((s: { watermark: number | null }) => s.watermark !== null && s.watermark > from), 'windows closed into rollups during the run');
});
