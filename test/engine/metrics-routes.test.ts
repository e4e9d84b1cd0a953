import t from 'tap';
import { startEngine, getJson, post } from '../helpers/engine';

// the seed's own event, byte for byte
const SEED_EVENT = '{"deviceId":"device-11","timestamp":12385439653,"cpuUsage":78.986}';
const MINUTE = 60_000;
const M0 = Math.floor(12385439653 / MINUTE) * MINUTE; // the seed event's minute
const DEVICES = Array.from({ length: 12 }, (_, i) => `device-${i + 1}`);

interface CpuWindow { deviceId: string; windowStart: number; windowEnd: number; p50: number; p90: number; p99: number; count: number }

/** device-k reads k*8 .. k*8+5: the p99 ranking is device-12, device-11, ... */
function reading(k: number, i: number): number {
  return k * 8 + (i * 7) % 6;
}

/** the same window as the engine's own /v1 query gives it */
async function v1Window(url: string, deviceId: string, start: number): Promise<Omit<CpuWindow, 'deviceId'>> {
  const r = await getJson(`${url}/v1/devices/${deviceId}/metrics/cpuUsage?from=${start}&to=${start + MINUTE}&resolution=1m&q=0.5,0.9,0.99`);
  const w = r.body.windows.find((x: { start: number }) => x.start === start);
  return { windowStart: w.start, windowEnd: w.end, p50: w.quantiles['0.5'], p90: w.quantiles['0.9'], p99: w.quantiles['0.99'], count: w.count };
}

t.test('/metrics over the real server', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());

  t.test('before any cpuUsage: an empty top; an unknown device 404', async (t) => {
    const top = await getJson(`${engine.url}/metrics/top/5`);
    t.equal(top.status, 200);
    t.same(top.body, []);
    const dev = await getJson(`${engine.url}/metrics/devices/device-11`);
    t.equal(dev.status, 404);
    t.equal(dev.body.code, 'SLUICE_E_NOT_FOUND');
    t.match(dev.body.error, /^deviceId: no device "device-11"/);
  });

  // minutes M0-2 .. M0+1: every device reads every 2 s; the seed event is in minute M0, which is
  // then the last complete window (M0+1 holds the newest readings and is still filling)
  const events: object[] = [];
  for (let ts = M0 - 2 * MINUTE; ts < M0 + 2 * MINUTE; ts += 2000) {
    DEVICES.forEach((d, k) => events.push({ deviceId: d, timestamp: ts, cpuUsage: reading(k + 1, ts / 2000) }));
  }
  // device-3 is silent in minute M0: not in the top of that window
  const sent = events.filter((e) => !((e as { deviceId: string }).deviceId === 'device-3' && (e as { timestamp: number }).timestamp >= M0 && (e as { timestamp: number }).timestamp < M0 + MINUTE));

  t.test('the seed event and the readings are accepted', async (t) => {
    // 12385439653 is May 1970 in ms: below 10^11 an unqualified number is refused as looking like
    // seconds, so the seed's clients say precision=ms
    const unqualified = await post(`${engine.url}/v1/events`, 'application/json', SEED_EVENT);
    t.equal(unqualified.status, 400, 'unqualified: looks like seconds');
    t.match(unqualified.body.error, /looks like epoch seconds/);
    t.equal((await post(`${engine.url}/v1/events?precision=ms`, 'application/json', SEED_EVENT)).status, 204, 'the seed event');
    t.equal((await post(`${engine.url}/v1/events?precision=ms`, 'application/json', JSON.stringify(sent))).status, 204);
  });

  const checkTop = async (t: tap.Test, label: string): Promise<void> => {
    const top = await getJson(`${engine.url}/metrics/top/3`);
    t.equal(top.status, 200);
    t.same(top.body.map((w: CpuWindow) => w.deviceId), ['device-12', 'device-11', 'device-10'], `${label}: highest p99 first`);
    for (const w of top.body as CpuWindow[]) {
      t.same(Object.keys(w), ['deviceId', 'windowStart', 'windowEnd', 'p50', 'p90', 'p99', 'count'], 'the seed fields, in order');
      t.same({ ...w, deviceId: undefined }, { ...(await v1Window(engine.url, w.deviceId, M0)), deviceId: undefined }, `${label}: ${w.deviceId} is its minute M0 window`);
    }
    t.equal(top.body[1].count, 31, 'device-11: 30 readings and the seed event');
    t.equal(top.body[0].windowStart, M0);
    t.equal(top.body[0].windowEnd, M0 + MINUTE);
    const all = await getJson(`${engine.url}/metrics/top/1000`);
    t.equal(all.body.length, 11, `${label}: every device with data in the window (device-3 was silent)`);
    const p99s = all.body.map((w: CpuWindow) => w.p99);
    t.same(p99s, [...p99s].sort((a: number, b: number) => b - a), 'sorted by p99');
  };

  const checkDevice = async (t: tap.Test, label: string): Promise<void> => {
    const r = await getJson(`${engine.url}/metrics/devices/device-11`);
    t.equal(r.status, 200);
    t.same(r.body.map((w: CpuWindow) => w.windowStart), [M0 + MINUTE, M0, M0 - MINUTE, M0 - 2 * MINUTE], `${label}: the device's windows, newest first`);
    t.same(r.body.map((w: CpuWindow) => w.count), [30, 31, 30, 30]);
    for (const w of r.body as CpuWindow[]) t.same({ ...w, deviceId: undefined }, { ...(await v1Window(engine.url, 'device-11', w.windowStart)), deviceId: undefined });
    const quiet = await getJson(`${engine.url}/metrics/devices/device-3`);
    t.same(quiet.body.map((w: CpuWindow) => w.windowStart), [M0 + MINUTE, M0 - MINUTE, M0 - 2 * MINUTE], 'a silent minute has no window');
  };

  t.test('GET /metrics/top/{n}: the latest complete minute, by p99', (t) => checkTop(t, 'open panes'));
  t.test('GET /metrics/devices/{deviceId}: recent windows, newest first', (t) => checkDevice(t, 'open panes'));

  t.test('another metric, later in event time, moves neither; the windows close into rollups', async (t) => {
    const later = [0, 1, 2, 3, 4, 5].map((i) => ({ deviceId: `other-${i}`, timestamp: M0 + 30 * MINUTE, temperature: 20 }));
    t.equal((await post(`${engine.url}/v1/events?precision=ms`, 'application/json', JSON.stringify(later))).status, 204);
    const h = await getJson(`${engine.url}/healthz`);
    for (const s of h.body.shards) t.ok(s.watermark > M0 + 2 * MINUTE, `shard ${s.shard}: the cpuUsage minutes are closed`);
    await checkTop(t, 'rollups');
    await checkDevice(t, 'rollups');
    const none = await getJson(`${engine.url}/metrics/devices/other-1`);
    t.equal(none.status, 200);
    t.same(none.body, [], 'a known device without cpuUsage has no windows');
  });

  t.test('bad parameters: 400 naming them; unknown device 404', async (t) => {
    const cases: [string, RegExp][] = [
      ['/metrics/top/0', /^n: 0 is out of range \(allowed: 1\.\.1000\)/],
      ['/metrics/top/1001', /^n: 1001 is out of range/],
      ['/metrics/top/ten', /^n: "ten" is not an integer/],
      ['/metrics/top/-1', /^n: "-1" is not an integer/],
      ['/metrics/devices/device%2011', /^deviceId: "device 11" must be 1-128 characters/],
      ['/metrics/devices/%E0%A4%A', /^deviceId: .* is not valid percent-encoding/],
    ];
    for (const [path, re] of cases) {
      const r = await getJson(engine.url + path);
      t.equal(r.status, 400, path);
      t.equal(r.body.code, 'SLUICE_E_BAD_PARAM', path);
      t.match(r.body.error, re, path);
    }
    const r = await getJson(`${engine.url}/metrics/devices/device-99`);
    t.equal(r.status, 404);
    t.equal(r.body.code, 'SLUICE_E_NOT_FOUND');
  });
});
