import t from 'tap';
import { pack } from 'msgpackr';
import { startEngine, tempDir, getJson, post } from '../helpers/engine';
import { BlockStore, SUMMARY_CHUNK } from '../../storage';

const MIN = 60_000;
const HOUR = 3_600_000;

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
}

async function send(url: string, events: object[]): Promise<void> {
  for (let i = 0; i < events.length; i += 5000) {
    const r = await post(`${url}/v1/events`, 'application/json', JSON.stringify(events.slice(i, i + 5000)));
    if (r.status !== 204) throw new Error(`POST answered ${r.status}: ${JSON.stringify(r.body)}`);
  }
}

interface Win { start: number; count: number; sum: number; min: number; max: number; last: number; histogram: { divisions: number[] }; quantiles: Record<string, number> }

async function windows(url: string, path: string): Promise<Win[]> {
  const r = await getJson(url + path);
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.windows;
}

function roundSums(ws: Win[]): Win[] {
  return ws.map((w) => ({ ...w, sum: Number(w.sum.toPrecision(12)), ...('mean' in w ? { mean: Number((w as { mean: number }).mean.toPrecision(12)) } : {}) }));
}

function exact(w: Win) {
  return { start: w.start, count: w.count, sum: w.sum, min: w.min, max: w.max, last: w.last, histogram: w.histogram.divisions };
}

function rankError(sorted: number[], estimate: number, q: number): number {
  let below = 0;
  while (below < sorted.length && sorted[below] < estimate) below++;
  let atOrBelow = below;
  while (atOrBelow < sorted.length && sorted[atOrBelow] <= estimate) atOrBelow++;
  // the estimate's rank is anywhere in [below, atOrBelow]: distance from q to that interval
  const lo = below / sorted.length;
  const hi = atOrBelow / sorted.length;
  return q < lo ? lo - q : q > hi ? q - hi : 0;
}

t.test('out of order within the allowed lateness gives the same aggregates as in order (property)', async (t) => {
  const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed}`);
  const r = rng(seed);
  // the watermark is per shard: one engine fed in order, one fed the same events shuffled
  const a = await startEngine(['--shards', '1', '--allowed-lateness', '5m']);
  const engine = await startEngine(['--shards', '1', '--allowed-lateness', '5m']);
  t.teardown(async () => { await a.stop(); await engine.stop(); });
  const base = Date.now() - 2 * HOUR;
  const stream: { ts: number; v: number }[] = [];
  // integer values: float sums depend on the order of additions, integers do not
  for (let i = 0; i < 3000; i++) stream.push({ ts: base + i * 500 + r(400), v: r(1000) });
  // shuffled: each event delayed by up to 4 minutes behind the newest sent, never beyond lateness
  const shuffled = stream.map((e, i) => ({ e, key: i * 500 + r(4 * MIN) })).sort((x, y) => x.key - y.key).map((x) => x.e);
  const ordered = [...stream].sort((x, y) => x.ts - y.ts);
  await send(a.url, ordered.map((e) => ({ deviceId: 'ooo', timestamp: e.ts, cpu: e.v })));
  await send(engine.url, shuffled.map((e) => ({ deviceId: 'ooo', timestamp: e.ts, cpu: e.v })));
  const range = `from=${base - MIN}&to=${base + HOUR}`;
  for (const res of ['10s', '1m', '1h']) {
    const x = await windows(a.url, `/v1/devices/ooo/metrics/cpu?${range}&resolution=${res}`);
    const y = await windows(engine.url, `/v1/devices/ooo/metrics/cpu?${range}&resolution=${res}`);
    t.same(y.map(exact), x.map(exact), `${res}: the same windows, exact fields equal (seed ${seed})`);
  }
  const late = await getJson(`${engine.url}/v1/late?deviceId=ooo`);
  t.equal(late.body.total, 0, 'nothing was too late');
});

t.test('events beyond the late horizon are not applied, are counted, and are listed by /v1/late', async (t) => {
  // a horizon as short as the lateness: every event for a final window is beyond it
  const engine = await startEngine(['--shards', '1', '--allowed-lateness', '1m', '--late-horizon', '1m']);
  t.teardown(() => engine.stop());
  const T = Date.now() - HOUR;
  await send(engine.url, [{ deviceId: 'late-1', timestamp: T, cpu: 10 }]);
  await send(engine.url, [{ deviceId: 'late-1', timestamp: T + 10 * MIN, cpu: 20 }]);
  // the watermark is now T + 9 min: an event at T + 1 min is too late, one at T + 9.5 min is not
  await send(engine.url, [
    { deviceId: 'late-1', timestamp: T + MIN, cpu: 99 },
    { deviceId: 'late-1', timestamp: T + 2 * MIN, metrics: { cpu: 98, mem: 5 } },
    { deviceId: 'late-1', timestamp: T + 9.5 * MIN, cpu: 30 },
  ]);
  const w = await windows(engine.url, `/v1/devices/late-1/metrics/cpu?from=${T - MIN}&to=${T + HOUR}&resolution=1h`);
  const total = w.reduce((n, x) => n + x.count, 0);
  const sum = w.reduce((n, x) => n + x.sum, 0);
  t.equal(total, 3, 'the two late events were not applied');
  t.equal(sum, 60);
  const late = await getJson(`${engine.url}/v1/late?deviceId=late-1`);
  t.equal(late.status, 200);
  t.equal(late.body.total, 3, 'three late values: cpu twice, mem once');
  t.same(late.body.counts.map((c: { metric: string; count: number }) => [c.metric, c.count]).sort(), [['cpu', 2], ['mem', 1]]);
  t.same(late.body.events.map((e: { timestamp: number; metric: string; value: number }) => [e.timestamp, e.metric, e.value]).sort(),
    [[T + MIN, 'cpu', 99], [T + 2 * MIN, 'cpu', 98], [T + 2 * MIN, 'mem', 5]].sort());
  const ranged = await getJson(`${engine.url}/v1/late?deviceId=late-1&from=${T + 90_000}&limit=10`);
  t.equal(ranged.body.events.length, 2, 'from filters on event time');
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.body.shards[0].lateEvents, 2);
  t.equal(h.body.shards[0].watermark, T + 9 * MIN);
  // a columnar batch with one late row: the late row is logged, the others applied
  const f64 = (xs: number[]) => Buffer.from(new Float64Array(xs).buffer);
  const col = await post(`${engine.url}/v1/events`, 'application/msgpack',
    pack({ deviceId: 'late-col', timestamps: f64([T + 9.5 * MIN, T + 3 * MIN, T + 9.6 * MIN]), metrics: { cpu: f64([1, 2, 3]) } }));
  t.equal(col.status, 204);
  const cw = await windows(engine.url, `/v1/devices/late-col/metrics/cpu?from=${T - MIN}&to=${T + HOUR}&resolution=1h`);
  t.same([cw.reduce((n, x) => n + x.count, 0), cw.reduce((n, x) => n + x.sum, 0)], [2, 4], 'columnar: the on-time rows applied');
  const lc = await getJson(`${engine.url}/v1/late?deviceId=late-col`);
  t.same(lc.body.events.map((e: { timestamp: number; value: number }) => [e.timestamp, e.value]), [[T + 3 * MIN, 2]], 'columnar: the late row logged');
  const bad = await getJson(`${engine.url}/v1/late?limit=0`);
  t.equal(bad.status, 400);
});

t.test('a 1 h rollup equals the merge of its 360 panes, and survives graceful and kill -9 restarts', async (t) => {
  const dataDir = tempDir();
  const args = ['--shards', '2', '--allowed-lateness', '2m'];
  let engine = await startEngine(args, dataDir);
  t.teardown(() => engine.stop());
  const now = Date.now();
  const hour = now - (now % HOUR) - 2 * HOUR;
  const r = rng(42);
  const values: number[] = [];
  const events: object[] = [];
  for (let i = 0; i < 3600; i++) {
    const v = r(10_000) / 100;
    values.push(v);
    events.push({ deviceId: 'hour-1', timestamp: hour + i * 1000, cpu: v });
  }
  await send(engine.url, events);
  // close the hour: the watermark passes its end
  await send(engine.url, [{ deviceId: 'hour-1', timestamp: hour + HOUR + 5 * MIN, cpu: 1 }, { deviceId: 'hour-2', timestamp: hour + 30 * MIN, cpu: 1 }]);
  const range = `from=${hour}&to=${hour + HOUR}`;
  const [h1] = await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?${range}&resolution=1h&q=0.1,0.5,0.99`);
  const panes = await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?${range}&resolution=10s`);
  t.equal(panes.length, 360);
  const merged = panes.reduce((a, w) => ({ count: a.count + w.count, sum: a.sum + w.sum, min: Math.min(a.min, w.min), max: Math.max(a.max, w.max) }),
    { count: 0, sum: 0, min: Infinity, max: -Infinity });
  t.equal(h1.count, merged.count);
  t.equal(h1.count, 3600);
  t.ok(Math.abs(h1.sum - merged.sum) < 1e-6, 'sum equal (to float rounding of the merge order)');
  t.equal(h1.min, merged.min);
  t.equal(h1.max, merged.max);
  t.equal(h1.last, values[3599]);
  const sorted = [...values].sort((a, b) => a - b);
  for (const q of ['0.1', '0.5', '0.99']) t.ok(rankError(sorted, h1.quantiles[q], Number(q)) <= 0.01, `q${q} within 1% rank`);
  const fleet = await getJson(`${engine.url}/v1/metrics/cpu?${range}&resolution=1h`);
  t.equal(fleet.body.windows[0].count, 3601, 'fleet: both devices');
  t.equal(fleet.body.windows[0].devices, 2);
  t.equal(fleet.body.devices, 2);

  const before = {
    hour: await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?${range}&resolution=1h`),
    panes: await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?${range}&resolution=10s`),
    open: await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?from=${hour + HOUR}&to=${hour + 2 * HOUR}&resolution=10s`),
    fleet: (await getJson(`${engine.url}/v1/metrics/cpu?${range}&resolution=1m`)).body,
  };
  t.equal(before.open.length, 1, 'the newest pane is still open in memory');
  for (const how of ['SIGTERM', 'SIGKILL'] as const) {
    await engine.stop(how);
    engine = await startEngine(args, dataDir);
    t.same(await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?${range}&resolution=1h`), before.hour, `${how}: the 1 h rollup is kept`);
    t.same(await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?${range}&resolution=10s`), before.panes, `${how}: the panes' rollups are kept`);
    t.same(await windows(engine.url, `/v1/devices/hour-1/metrics/cpu?from=${hour + HOUR}&to=${hour + 2 * HOUR}&resolution=10s`), before.open, `${how}: the open pane is kept`);
    const fleetNow = (await getJson(`${engine.url}/v1/metrics/cpu?${range}&resolution=1m`)).body;
    // a slice read from the head before and from its block after sums in another order: sums
    // and means agree to float rounding, everything else exactly
    t.same([roundSums(fleetNow.windows), fleetNow.devices], [roundSums(before.fleet.windows), before.fleet.devices], `${how}: fleet windows agree`);
  }
});

t.test('an hour still filling is composed from its closed minutes and open panes; once complete it is stored, once', async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--shards', '1', '--allowed-lateness', '1m'], dataDir);
  t.teardown(() => engine.stop());
  const now = Date.now();
  const hour = now - (now % HOUR) - 3 * HOUR;
  const r = rng(7);
  const values: number[] = [];
  const reading = (i: number): object => {
    const v = r(4000) / 40;
    values.push(v);
    return { deviceId: 'fill-1', timestamp: hour + i * 5000, cpu: v };
  };
  const first = [];
  for (let i = 0; i < 480; i++) first.push(reading(i)); // 40 minutes: ~38 closed into 1 min windows
  await send(engine.url, first);
  const range = `from=${hour}&to=${hour + HOUR}`;
  const check = async (n: number, what: string): Promise<void> => {
    const part = values.slice(0, n);
    const [h] = await windows(engine.url, `/v1/devices/fill-1/metrics/cpu?${range}&resolution=1h`);
    t.same([h.start, h.count, h.min, h.max], [hour, n, Math.min(...part), Math.max(...part)], `${what}: the 1 h window`);
    t.ok(Math.abs(h.sum - part.reduce((a, b) => a + b, 0)) < 1e-6, `${what}: its sum`);
    const [d] = await windows(engine.url, `/v1/devices/fill-1/metrics/cpu?${range}&resolution=1d`);
    t.equal(d.count, n, `${what}: the 1 d window`);
    const fleet = (await getJson(`${engine.url}/v1/metrics/cpu?${range}&resolution=1h`)).body;
    t.same([fleet.windows[0].count, fleet.windows[0].devices, fleet.devices], [n, 1, 1], `${what}: the fleet's 1 h window and its device`);
  };
  await check(480, 'filling');
  const rest = [];
  for (let i = 480; i < 720; i++) rest.push(reading(i));
  await send(engine.url, rest);
  await send(engine.url, [{ deviceId: 'other', timestamp: hour + HOUR + 2 * MIN, cpu: 1 }]); // the hour completes
  await check(720, 'complete');
  await engine.stop('SIGKILL');
  engine = await startEngine(['--shards', '1', '--allowed-lateness', '1m'], dataDir);
  await check(720, 'after kill -9');
  await engine.stop();
  const blocks = BlockStore.open(dataDir);
  const sealed = [...blocks.blocks(0, MIN, hour, hour + HOUR)];
  await blocks.close();
  t.same([...new Set(sealed.map((b) => b.start))], Array.from({ length: 60 }, (_, m) => hour + m * MIN), 'the hour is 60 sealed slices, each stored once');
  t.equal(sealed.filter((b) => b.chunk === SUMMARY_CHUNK).length, 60, 'each with its summary');
});

t.test('late log survives a kill -9', async (t) => {
  const dataDir = tempDir();
  const args = ['--shards', '1', '--allowed-lateness', '1m', '--late-horizon', '1m'];
  let engine = await startEngine(args, dataDir);
  t.teardown(() => engine.stop());
  const T = Date.now() - HOUR;
  await send(engine.url, [{ deviceId: 'kl', timestamp: T + 10 * MIN, cpu: 1 }]);
  await send(engine.url, [{ deviceId: 'kl', timestamp: T, cpu: 2 }]);
  const before = (await getJson(`${engine.url}/v1/late?deviceId=kl`)).body;
  t.equal(before.total, 1);
  await engine.stop('SIGKILL');
  engine = await startEngine(args, dataDir);
  const after = (await getJson(`${engine.url}/v1/late?deviceId=kl`)).body;
  t.same(after.counts, before.counts, 'counted once, not again on replay');
  t.equal(after.events.length, 1);
});

t.test('retention deletes expired rollups and nothing else', async (t) => {
  const engine = await startEngine(['--shards', '1', '--allowed-lateness', '30s', '--retention', '10s:2m']);
  t.teardown(() => engine.stop());
  const base = Date.now() - HOUR;
  const events = [];
  for (let i = 0; i < 600; i++) events.push({ deviceId: 'ret-1', timestamp: base + i * 1000, cpu: 1 });
  await send(engine.url, events);
  const range = `from=${base}&to=${base + 11 * MIN}`;
  const minutesBefore = await windows(engine.url, `/v1/devices/ret-1/metrics/cpu?${range}&resolution=1m`);
  t.equal(minutesBefore.reduce((n, w) => n + w.count, 0), 600);
  // the newest event is base + 599 s: 10 s windows that ended more than 2 min before it expire,
  // a 1-minute block of them (how they are stored) once all of its windows expired
  const cutoff = base + 599_000 - 2 * MIN;
  const blockEnd = (start: number): number => Math.floor(start / MIN) * MIN + MIN;
  const expected: number[] = [];
  for (let p = Math.floor(base / 10_000) * 10_000; p <= base + 599_000; p += 10_000) if (blockEnd(p) > cutoff) expected.push(p);
  let panes: Win[] = [];
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 250));
    panes = await windows(engine.url, `/v1/devices/ret-1/metrics/cpu?${range}&resolution=10s`);
    if (panes.length > 0 && blockEnd(panes[0].start) > cutoff) break;
  }
  t.same(panes.map((w) => w.start), expected, 'exactly the blocks with an unexpired window are left');
  const minutes = await windows(engine.url, `/v1/devices/ret-1/metrics/cpu?${range}&resolution=1m`);
  t.same(minutes, minutesBefore, '1 m rollups (no retention set) are untouched');
});
