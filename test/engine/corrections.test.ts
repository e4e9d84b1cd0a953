import t from 'tap';
import { pack } from 'msgpackr';
import { startEngine, tempDir, getJson, post } from '../helpers/engine';

const MIN = 60_000;
const HOUR = 60 * MIN;
const f64 = (xs: number[]): Buffer => Buffer.from(new Float64Array(xs).buffer);

interface Win { start: number; count: number; sum: number; min: number; max: number; devices?: number }

async function windows(url: string, path: string): Promise<Win[]> {
  const r = await getJson(`${url}${path}`);
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.windows as Win[];
}

const total = (ws: Win[]): [number, number] => [ws.reduce((n, w) => n + w.count, 0), ws.reduce((n, w) => n + w.sum, 0)];

t.test('an offline device: an hour of buffered readings sent after the fleet moved on is counted, once, across kill -9', async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--shards', '2'], dataDir);
  t.teardown(() => engine.stop());
  const now = Date.now();
  const start = Math.floor((now - 80 * MIN) / MIN) * MIN;
  // the fleet reports every 10 s up to now: event time moves on, the past hour is final and sealed
  const fleet: object[] = [];
  for (let ts = start; ts <= now; ts += 10_000) for (const d of ['fleet-1', 'fleet-2', 'fleet-3']) fleet.push({ deviceId: d, timestamp: ts, cpu: 50 });
  for (let i = 0; i < fleet.length; i += 1000) t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(fleet.slice(i, i + 1000)))).status, 204);
  // the offline device's hour: 360 readings, one columnar batch
  const ts = Array.from({ length: 360 }, (_, i) => start + i * 10_000);
  const values = ts.map((_, i) => (i % 100) + 0.5);
  const r = await post(`${engine.url}/v1/events`, 'application/msgpack', pack({ deviceId: 'offline-1', timestamps: f64(ts), metrics: { cpu: f64(values) } }));
  t.equal(r.status, 204, 'accepted');
  const want: [number, number] = [360, values.reduce((a, b) => a + b, 0)];
  const range = `from=${start}&to=${start + HOUR}`;
  const check = async (what: string): Promise<void> => {
    t.same(total(await windows(engine.url, `/v1/devices/offline-1/metrics/cpu?${range}&resolution=1m`)), want, `${what}: every reading, at 1 m`);
    t.same(total(await windows(engine.url, `/v1/devices/offline-1/metrics/cpu?${range}&resolution=10s`)), want, `${what}: at 10 s`);
    const fleetHour = await windows(engine.url, `/v1/metrics/cpu?${range}&resolution=1m`);
    t.equal(fleetHour.reduce((n, w) => n + w.count, 0), 360 * 4, `${what}: in the fleet's windows`);
    t.ok(fleetHour.every((w) => w.devices === 4), `${what}: 4 distinct devices in every minute`);
    const late = await getJson(`${engine.url}/v1/late?deviceId=offline-1&limit=1000`);
    t.same([late.body.total, late.body.corrections], [0, 360], `${what}: 360 corrections, none refused`);
  };
  await check('at once');
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.body.shards.reduce((n: number, s: { correctedEvents: number }) => n + s.correctedEvents, 0), 360, '/healthz counts the corrections');
  await engine.stop('SIGKILL');
  engine = await startEngine(['--shards', '2'], dataDir);
  await check('after kill -9');
});

t.test('beyond the late horizon a reading stays out of the aggregates, in the late log', async (t) => {
  const engine = await startEngine(['--shards', '1', '--late-horizon', '10m']);
  t.teardown(() => engine.stop());
  const now = Date.now();
  await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify([{ deviceId: 'h-1', timestamp: now, cpu: 1 }]));
  const old = [{ deviceId: 'h-1', timestamp: now - 8 * MIN, cpu: 2 }, { deviceId: 'h-1', timestamp: now - 30 * MIN, cpu: 3 }];
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(old))).status, 204);
  t.same(total(await windows(engine.url, `/v1/devices/h-1/metrics/cpu?from=${now - HOUR}&to=${now + 1}&resolution=1h`)), [2, 3], 'the 8 min old reading counts, the 30 min old one does not');
  const late = await getJson(`${engine.url}/v1/late?deviceId=h-1`);
  t.same([late.body.total, late.body.corrections], [1, 1]);
  t.same(late.body.events.map((e: { value: number; correction: boolean }) => [e.value, e.correction]).sort(), [[2, true], [3, false]]);
});

/**
 * The property of issue #11: a random stream with readings up to 2x the lateness late and up to
 * past the horizon, kill -9 at random points (every acknowledged batch is in the WAL), gives the
 * windows of a brute-force reference over the readings the engine counts: the ones within the
 * horizon (or whose slice was still open); the others are in the late log. The reference routes as
 * ShardState.route() does: one shard, the closed bound moved after each batch (one ring record).
 */
t.test('random streams with kill -9 at random points: the windows of a brute-force reference', async (t) => {
  const PANE = 10_000;
  const LATENESS = MIN;
  const HORIZON = 3 * MIN;
  for (const seed of [11, 22, 33]) {
    let x = seed;
    const rand = (): number => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x / 2147483648;
    };
    const dataDir = tempDir();
    const args = ['--shards', '1', '--allowed-lateness', '1m', '--late-horizon', '3m', '--checkpoint-interval', '200ms'];
    let engine = await startEngine(args, dataDir);
    const base = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR;
    const kills = new Set([Math.floor(rand() * 150), 150 + Math.floor(rand() * 150)]);
    const counted: { d: string; ts: number; v: number }[] = [];
    let refused = 0;
    let maxTs = -Infinity;
    let closedBefore = -Infinity;
    let clock = base;
    for (let b = 0; b < 300; b++) {
      const batch: { deviceId: string; timestamp: number; cpu: number }[] = [];
      for (let i = 0; i < 8; i++) {
        clock += Math.floor(rand() * 3000);
        const r = rand();
        const late = r < 0.7 ? rand() * 5000 : r < 0.9 ? rand() * 2 * LATENESS : rand() * 1.5 * HORIZON;
        const ts = Math.floor(Math.max(base, clock - late));
        batch.push({ deviceId: `p-${Math.floor(rand() * 12)}`, timestamp: ts, cpu: Math.floor(rand() * 400) / 4 });
      }
      t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(batch))).status, 204, `seed ${seed} batch ${b}`);
      const sealedBefore = closedBefore === -Infinity ? -Infinity : Math.floor(closedBefore / MIN) * MIN;
      for (const e of batch) {
        if (e.timestamp >= sealedBefore || e.timestamp >= maxTs - HORIZON) {
          counted.push({ d: e.deviceId, ts: e.timestamp, v: e.cpu });
          if (e.timestamp >= sealedBefore && e.timestamp > maxTs) maxTs = e.timestamp;
        } else refused++;
      }
      const below = Math.floor((maxTs - LATENESS) / PANE) * PANE;
      if (below > closedBefore) closedBefore = below;
      if (kills.has(b)) {
        await engine.stop('SIGKILL');
        engine = await startEngine(args, dataDir);
      }
    }
    const to = clock + MIN;
    for (const res of [10_000, MIN, HOUR]) {
      const devices = [...new Set(counted.map((c) => c.d))].sort().slice(0, 4);
      for (const d of devices) {
        const want = new Map<number, { count: number; sum: number; min: number; max: number }>();
        for (const c of counted) {
          if (c.d !== d) continue;
          const w = Math.floor(c.ts / res) * res;
          const a = want.get(w) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
          a.count++;
          a.sum += c.v;
          a.min = Math.min(a.min, c.v);
          a.max = Math.max(a.max, c.v);
          want.set(w, a);
        }
        const got = await windows(engine.url, `/v1/devices/${d}/metrics/cpu?from=${base}&to=${to}&resolution=${res / 1000}s`);
        const wanted = [...want.entries()].sort((p, q) => p[0] - q[0]).map(([start, a]) => [start, a.count, a.sum, a.min, a.max]);
        t.same(got.map((w) => [w.start, w.count, w.sum, w.min, w.max]), wanted, `seed ${seed}: ${d} at ${res / 1000} s`);
      }
    }
    const fleet = await windows(engine.url, `/v1/metrics/cpu?from=${base}&to=${to}&resolution=60s`);
    t.equal(fleet.reduce((n, w) => n + w.count, 0), counted.length, `seed ${seed}: the fleet counts every counted reading`);
    const late = await getJson(`${engine.url}/v1/late?limit=10000`);
    t.equal(late.body.total, refused, `seed ${seed}: the readings beyond the horizon are in the late log (${refused})`);
    await engine.stop();
  }
});
