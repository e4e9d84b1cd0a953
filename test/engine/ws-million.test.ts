import t from 'tap';
import { Packr } from 'msgpackr';
import { startEngine, getJson, StreamClient } from '../helpers/engine';

const DEVICES = 1000;
const FRAMES = 1000;
const PER_FRAME = 1000;
const CLIENTS = 4;
const IN_FLIGHT_MAX = 16;

t.test('1,000,000 events over WebSocket msgpack from 1,000 devices: counts and sums exact', async (t) => {
  // timestamps are spread over 50 minutes in random order: allow that much lateness
  const engine = await startEngine(['--allowed-lateness', '1h']);
  t.teardown(() => engine.stop());
  const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed}`);
  let s = seed;
  const rnd = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
  const now = Date.now();
  const from = now - 55 * 60_000;
  const sums = new Float64Array(DEVICES);
  const counts = new Float64Array(DEVICES);
  const packr = new Packr({ useRecords: true });
  const frames: Buffer[] = [];
  for (let f = 0; f < FRAMES; f++) {
    const events = new Array(PER_FRAME);
    for (let i = 0; i < PER_FRAME; i++) {
      const d = rnd(DEVICES);
      const v = rnd(101);
      sums[d] += v;
      counts[d]++;
      events[i] = { deviceId: `dev-${d}`, timestamp: from + rnd(50 * 60_000), metrics: { cpu: v } };
    }
    frames.push(packr.pack({ seq: f, events }));
  }

  const t0 = Date.now();
  await Promise.all(Array.from({ length: CLIENTS }, async (_, k) => {
    const c = await StreamClient.open(engine.url.replace('http', 'ws') + '/v1/stream');
    const mine = frames.map((_, i) => i).filter((i) => i % CLIENTS === k);
    let next = 0;
    let inFlight = 0;
    let answered = 0;
    let acked = 0;
    const retry: number[] = [];
    while (acked < mine.length) {
      while (inFlight < IN_FLIGHT_MAX && (retry.length > 0 || next < mine.length)) {
        const i = retry.length > 0 ? retry.shift()! : mine[next++];
        c.ws.send(frames[i]);
        inFlight++;
      }
      const got = await c.waitFor(answered + 1);
      for (; answered < got.length; answered++) {
        const a = got[answered];
        inFlight--;
        if (a.ack !== undefined) acked++;
        else if (a.code === 'SLUICE_E_BACKPRESSURE') retry.push(a.seq as number); // not acknowledged: resend
        else throw new Error(`unexpected answer ${JSON.stringify(a)}`);
      }
    }
    c.close();
  }));
  t.comment(`sent and acked 1,000,000 events in ${Date.now() - t0} ms`);

  const fleet = await getJson(`${engine.url}/v1/metrics/cpu?from=${from}&resolution=1h`);
  t.equal(fleet.status, 200);
  const total = fleet.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0);
  t.equal(total, FRAMES * PER_FRAME, 'fleet count is exactly 1,000,000');
  t.equal(fleet.body.devices, DEVICES, 'distinct devices exact');

  const top = await getJson(`${engine.url}/v1/metrics/cpu/top?n=1000&by=sum&from=${from}`);
  t.equal(top.body.devices.length, DEVICES);
  let wrong = 0;
  for (const row of top.body.devices as { deviceId: string; sum: number; count: number }[]) {
    const d = Number(row.deviceId.slice(4));
    if (row.sum !== sums[d] || row.count !== counts[d]) wrong++;
  }
  t.equal(wrong, 0, 'every device sum and count exact');
  const sorted = (top.body.devices as { value: number }[]).map((r) => r.value);
  t.same(sorted, [...sorted].sort((a, b) => b - a), 'top is ordered by sum');
});
