import t from 'tap';
import { pack } from 'msgpackr';
import { startEngine, getJson, post, StreamClient } from '../helpers/engine';

const f64 = (xs: number[]): Buffer => Buffer.from(new Float64Array(xs).buffer);

/** the events counted for the metric cpu of devices `${prefix}0` .. `${prefix}${devices - 1}` since `from` */
async function countOf(url: string, prefix: string, devices: number, from: number): Promise<number> {
  let count = 0;
  for (let d = 0; d < devices; d++) {
    const q = await getJson(`${url}/v1/devices/${prefix}${d}/metrics/cpu?from=${from}`);
    count += q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0);
  }
  return count;
}

t.test('WebSocket /v1/stream over the real server', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '2', '--ring-size', '256KiB', '--body-max', '64KiB']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());
  const ws = engine.url.replace('http', 'ws') + '/v1/stream';
  const now = Date.now();
  const base = now - (now % 10_000) - 20_000;

  t.test('pinned, binary msgpack envelopes: acked by seq, deviceId may be omitted', async (t) => {
    const c = await StreamClient.open(`${ws}?deviceId=pin-1`);
    c.ws.send(pack({ seq: 41, events: [{ timestamp: base, metrics: { cpu: 5 } }, { timestamp: base + 1, metrics: { cpu: 7 } }] }));
    c.ws.send(pack({ seq: 42, events: [{ timestamp: base + 2, metrics: { cpu: 9 } }, { deviceId: 'other', timestamp: base, metrics: { cpu: 1 } }] }));
    const answers = await c.waitFor(2);
    t.same(answers[0], { ack: 41 });
    t.equal(answers[1].ack, 42);
    t.equal(answers[1].accepted, 1);
    t.match((answers[1].rejected as { index: number; code: string }[])[0], { index: 1, code: 'SLUICE_E_DEVICE_MISMATCH' });
    c.close();
    const q = await getJson(`${engine.url}/v1/devices/pin-1/metrics/cpu`);
    t.match(q.body.windows[0], { count: 3, sum: 21, min: 5, max: 9, last: 9 });
    const other = await getJson(`${engine.url}/v1/devices/other/metrics/cpu`);
    t.equal(other.status, 404, 'the mismatched event was not applied anywhere');
  });

  t.test('unpinned text JSON frames: acked by frame counter; bad frames answered with an error', async (t) => {
    const c = await StreamClient.open(ws);
    c.ws.send(JSON.stringify([{ deviceId: 'txt-1', timestamp: base, cpu: 1 }, { deviceId: 'txt-2', timestamp: base, cpu: 2 }]));
    c.ws.send('{broken');
    c.ws.send(JSON.stringify({ deviceId: 'txt-1', timestamp: base + 5, cpu: 3 }));
    c.ws.send(JSON.stringify([{ deviceId: 'txt-1', timestamp: 'nope', cpu: 3 }]));
    c.ws.send(pack({ deviceId: 'txt-1', timestamp: base + 6, cpu: 4 }));
    const a = await c.waitFor(5);
    t.same(a[0], { ack: 1 });
    t.match(a[1], { code: 'SLUICE_E_BAD_BODY', seq: 2, rejected: [] });
    t.same(a[2], { ack: 3 });
    t.match(a[3], { code: 'SLUICE_E_BAD_TIMESTAMP', seq: 4 });
    t.match(a[3].error, /^no valid event: timestamp:/);
    t.same(a[4], { ack: 5 }, 'binary frames on the same connection are msgpack');
    c.close();
    const q = await getJson(`${engine.url}/v1/devices/txt-1/metrics/cpu`);
    t.match(q.body.windows[0], { count: 3, sum: 8 });
  });

  t.test('columnar frames on a pinned connection', async (t) => {
    const c = await StreamClient.open(`${ws}?deviceId=gw-7`);
    const ts = Array.from({ length: 500 }, (_, i) => base + i);
    c.ws.send(pack({ seq: 1, timestamps: f64(ts), metrics: { cpu: f64(ts.map((_, i) => i % 100)), temp: f64(ts.map(() => 20)) } }));
    const a = await c.waitFor(1);
    t.same(a[0], { ack: 1 });
    c.close();
    const q = await getJson(`${engine.url}/v1/devices/gw-7/metrics/cpu`);
    let expected = 0;
    for (let i = 0; i < 500; i++) expected += i % 100;
    t.match(q.body.windows[0], { count: 500, sum: expected, min: 0, max: 99 });
  });

  t.test('an invalid pin is refused at upgrade', async (t) => {
    await t.rejects(StreamClient.open(`${ws}?deviceId=${encodeURIComponent('bad id')}`), /upgrade refused: 400/);
  });

  t.test('a frame that finds the rings full waits for room (--backpressure-wait) instead of being refused', async (t) => {
    // stalled for less than the wait (1 s by default): every frame is kept, none is refused
    const stall = await post(`${engine.url}/v1/debug/stall-shards?ms=300`, 'application/json', '');
    t.equal(stall.status, 200);
    const c = await StreamClient.open(ws);
    for (let seq = 1; seq <= 60; seq++) {
      const evs = Array.from({ length: 500 }, (_, i) => ({ deviceId: `wait-ws-${seq % 3}`, timestamp: base + i, metrics: { cpu: 1 } }));
      c.ws.send(pack({ seq, events: evs }));
    }
    const a = await c.waitFor(60);
    t.same(a.map((x) => x.ack), Array.from({ length: 60 }, (_, i) => i + 1), 'every frame acked, in frame order');
    c.close();
    t.equal(await countOf(engine.url, 'wait-ws-', 3, base - 60_000), 60 * 500, 'each frame counted once');
  });

  t.test('a frame that cannot be queued is answered with an error naming its seq, and resent', async (t) => {
    const stall = await post(`${engine.url}/v1/debug/stall-shards?ms=2000`, 'application/json', '');
    t.equal(stall.status, 200);
    // unpinned, so envelope seqs are labels (not device sequences): each frame stands alone
    const c = await StreamClient.open(ws);
    const frames = new Map<number, Buffer>();
    for (let seq = 1; seq <= 60; seq++) {
      const evs = Array.from({ length: 500 }, (_, i) => ({ deviceId: `bp-ws-${seq % 3}`, timestamp: base + i, metrics: { cpu: 1 } }));
      const f = pack({ seq, events: evs });
      frames.set(seq, f);
      c.ws.send(f);
    }
    const a = await c.waitFor(60);
    t.same(a.map((x) => (x.ack ?? x.seq) as number), Array.from({ length: 60 }, (_, i) => i + 1), 'answers in frame order');
    const refused = a.filter((x) => x.code === 'SLUICE_E_BACKPRESSURE').map((x) => x.seq as number);
    const acked = a.filter((x) => x.ack !== undefined).map((x) => x.ack as number);
    t.ok(refused.length > 0, 'some frames hit the full ring');
    t.equal(refused.length + acked.length, 60);
    let pending = refused;
    for (let round = 0; round < 50 && pending.length > 0; round++) {
      await new Promise((r) => setTimeout(r, 200));
      const before = c.answers.length;
      for (const seq of pending) c.ws.send(frames.get(seq)!);
      const got = (await c.waitFor(before + pending.length)).slice(before);
      pending = got.filter((x) => x.code === 'SLUICE_E_BACKPRESSURE').map((x) => x.seq as number);
    }
    t.same(pending, [], 'every frame was eventually acked');
    c.close();
    t.equal(await countOf(engine.url, 'bp-ws-', 3, base - 60_000), 60 * 500, 'each frame counted exactly once');
  });
});
