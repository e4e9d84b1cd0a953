import t from 'tap';
import { rng } from '../helpers/rng';
import { startEngine, post } from '../helpers/engine';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

interface Reading { ts: number; value: number }

/** "YYYY-MM-DD HH:MM:SS" in UTC, the seed's format */
function seedTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

type Answer = { count: number; min: number | null; max: number | null; average: number | null };

function expected(readings: Reading[], from: number, to: number): Answer {
  const inside = readings.filter((r) => r.ts >= from && r.ts < to + 1000);
  if (inside.length === 0) return { count: 0, min: null, max: null, average: null }; // the route's answer for no reading
  const sum = inside.reduce((a, r) => a + r.value, 0);
  return { count: inside.length, min: Math.min(...inside.map((r) => r.value)), max: Math.max(...inside.map((r) => r.value)), average: sum / inside.length };
}

async function compute(url: string, from: number, to: number): Promise<Answer> {
  const body = JSON.stringify({ vibration: ['count', 'min', 'max', 'average'], from: seedTime(from), to: seedTime(to) });
  const r = await post(`${url}/compute/metrics`, 'application/json', body);
  if (r.status !== 200) throw new Error(`compute answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.result.vibration;
}

t.test('a sensor over any second-precision range is exact: open and closed seconds, whole panes and partial ones, after kill -9', async (t) => {
  const rand = rng(seed);
  const engine = await startEngine(['--shards', '2', '--allowed-lateness', '30s']);
  t.teardown(() => engine.stop('SIGKILL'));
  // 12 devices, readings at random milliseconds over 20 minutes an hour ago, values on a 1/4 grid
  // (exact sums in any order); the last 25 s stay open (lateness 30 s), the rest closes
  const base = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
  const readings: Reading[] = [];
  const events: object[] = [];
  for (let i = 0; i < 3000; i++) {
    const ts = base + Math.floor(rand() * 1_200_000);
    const value = Math.round(rand() * 400) / 4 - 50;
    readings.push({ ts, value });
    events.push({ deviceId: `vib-${i % 12}`, timestamp: ts, vibration: value });
  }
  events.sort((a, b) => (a as Reading & { timestamp: number }).timestamp - (b as Reading & { timestamp: number }).timestamp);
  for (let i = 0; i < events.length; i += 1000) {
    const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(events.slice(i, i + 1000)));
    t.equal(r.status, 204);
  }
  const ranges: [number, number][] = [[base, base + 1_199_000], [base + 7000, base + 7000], [base + 1_180_000, base + 1_199_000]];
  for (let k = 0; k < 12; k++) {
    const from = base + Math.floor(rand() * 1_200) * 1000;
    ranges.push([from, from + Math.floor(rand() * 400) * 1000]);
  }
  const before: unknown[] = [];
  for (const [from, to] of ranges) {
    const got = await compute(engine.url, from, to);
    before.push(got);
    t.same(got, expected(readings, from, to), `[${seedTime(from)}, ${seedTime(to)}]`);
  }
  await engine.stop('SIGKILL');
  const again = await startEngine(['--shards', '2', '--allowed-lateness', '30s'], engine.dataDir);
  t.teardown(() => again.stop());
  const after: unknown[] = [];
  for (const [from, to] of ranges) after.push(await compute(again.url, from, to));
  t.same(after, before, 'the same answers after kill -9 and a restart');
});
