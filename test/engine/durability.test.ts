import t from 'tap';
import { pack } from 'msgpackr';
import { startEngine, tempDir, getJson, post, StreamClient } from '../helpers/engine';

const now = Date.now();
const base = now - (now % 10_000) - 60_000;

function events(device: string, n: number, value: number): string {
  return JSON.stringify(Array.from({ length: n }, (_, i) => ({ deviceId: device, timestamp: base + i, cpu: value })));
}

async function seqPost(url: string, device: string, seq: number, n: number) {
  const r = await fetch(`${url}/v1/events`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'sluice-device-seq': String(seq) }, body: events(device, n, 1),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function countOf(url: string, device: string): Promise<number> {
  const q = await getJson(`${url}/v1/devices/${device}/metrics/cpu?from=${base - 60_000}&resolution=1h`);
  return q.status === 200 ? q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0) : -1;
}

t.test('device sequences over HTTP: duplicates acknowledged once, gaps refused with the expected seq', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  t.equal((await seqPost(engine.url, 'seq-h', 5, 10)).status, 204, 'the first seq sets the start');
  const dup = await seqPost(engine.url, 'seq-h', 5, 10);
  t.equal(dup.status, 200);
  t.equal(dup.body.duplicate, true);
  const gap = await seqPost(engine.url, 'seq-h', 7, 10);
  t.equal(gap.status, 409);
  t.match(gap.body, { code: 'SLUICE_E_SEQUENCE_GAP', expected: 6 });
  t.equal((await seqPost(engine.url, 'seq-h', 6, 10)).status, 204);
  t.equal((await seqPost(engine.url, 'seq-h', 4, 10)).body.duplicate, true, 'an older seq is a duplicate too');
  t.equal(await countOf(engine.url, 'seq-h'), 20, 'two batches applied, once each');
  const mixed = await fetch(`${engine.url}/v1/events`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'sluice-device-seq': '1' },
    body: JSON.stringify([{ deviceId: 'a1', timestamp: base, cpu: 1 }, { deviceId: 'b1', timestamp: base, cpu: 1 }]),
  });
  t.equal(mixed.status, 200, 'an event of another device in a seq batch is rejected alone');
  t.equal(((await mixed.json()) as any).rejected[0].code, 'SLUICE_E_DEVICE_MISMATCH');
  const badHeader = await fetch(`${engine.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', 'sluice-device-seq': 'x' }, body: events('z', 1, 1) });
  t.equal(badHeader.status, 400);
  t.equal(((await badHeader.json()) as any).code, 'SLUICE_E_BAD_SEQUENCE');
});

t.test('device sequences over a pinned WebSocket: ack, duplicate, gap, and they survive a restart', async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--shards', '2'], dataDir);
  t.teardown(() => engine.stop());
  const ws = () => StreamClient.open(`${engine.url.replace('http', 'ws')}/v1/stream?deviceId=seq-w`);
  const frame = (seq: number) => pack({ seq, events: Array.from({ length: 5 }, (_, i) => ({ timestamp: base + i, metrics: { cpu: 2 } })) });
  let c = await ws();
  c.ws.send(frame(1));
  c.ws.send(frame(2));
  c.ws.send(frame(2));
  c.ws.send(frame(4));
  const a = await c.waitFor(4);
  t.same(a.slice(0, 3), [{ ack: 1 }, { ack: 2 }, { ack: 2, duplicate: true }]);
  t.match(a[3], { code: 'SLUICE_E_SEQUENCE_GAP', seq: 4, expected: 3 });
  c.close();
  t.equal(await engine.stop('SIGKILL'), null, 'killed');
  engine = await startEngine(['--shards', '2'], dataDir);
  c = await ws();
  c.ws.send(frame(2));
  c.ws.send(frame(3));
  const b = await c.waitFor(2);
  t.same(b, [{ ack: 2, duplicate: true }, { ack: 3 }], 'the device seq was recovered after kill -9');
  c.close();
  t.equal(await countOf(engine.url, 'seq-w'), 15);
});

t.test('a clean shutdown checkpoints: the restart loads it and replays nothing; queries agree', async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--shards', '2', '--checkpoint-interval', '1h'], dataDir);
  for (let i = 0; i < 20; i++) t.equal((await post(`${engine.url}/v1/events`, 'application/json', events(`clean-${i % 4}`, 100, i))).status, 204);
  const before = await getJson(`${engine.url}/v1/metrics/cpu?from=${base - 60_000}`);
  t.equal(await engine.stop('SIGTERM'), 0);
  t.ok(engine.logs.some((l) => /"reason":"SIGTERM".*final checkpoint written/.test(l)), 'the stop wrote a final checkpoint');
  engine = await startEngine(['--shards', '2', '--checkpoint-interval', '1h'], dataDir);
  t.teardown(() => engine.stop());
  const rec = engine.logs.map((l) => { try { return JSON.parse(l); } catch { return {}; } }).find((l) => /^recovery:/.test(l.msg ?? ''));
  t.ok(rec, 'a recovery summary line');
  t.equal(rec.checkpointsLoaded, 2);
  t.equal(rec.walEntriesReplayed, 0);
  const after = await getJson(`${engine.url}/v1/metrics/cpu?from=${base - 60_000}&to=${before.body.to}`);
  t.same(after.body.windows, before.body.windows, 'the same windows after the restart');
  t.equal(after.body.devices, 4);
});

t.test('recovery after kill -9 replays the WAL after the checkpoint', async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--shards', '1', '--checkpoint-interval', '1h'], dataDir);
  for (let i = 0; i < 10; i++) await post(`${engine.url}/v1/events`, 'application/json', events('replay-1', 100, 3));
  await engine.stop('SIGKILL');
  engine = await startEngine(['--shards', '1', '--checkpoint-interval', '1h'], dataDir);
  t.teardown(() => engine.stop());
  const rec = engine.logs.map((l) => { try { return JSON.parse(l); } catch { return {}; } }).find((l) => /^recovery:/.test(l.msg ?? ''));
  t.equal(rec.walEntriesReplayed, 10);
  t.equal(rec.eventsReplayed, 1000);
  t.equal(await countOf(engine.url, 'replay-1'), 1000);
});

t.test('changing the shard count of a data dir is refused with a clear message', async (t) => {
  const dataDir = tempDir();
  const engine = await startEngine(['--shards', '2'], dataDir);
  await post(`${engine.url}/v1/events`, 'application/json', events('x', 1, 1));
  await engine.stop('SIGKILL');
  await t.rejects(startEngine(['--shards', '3'], dataDir), /written with --shards 2; start with --shards 2/);
});

t.test('storage full: ingest answers 503 while the budget is used up, recovers by itself, loses nothing acknowledged', async (t) => {
  const engine = await startEngine(['--shards', '1', '--max-db-size', '1MiB', '--checkpoint-interval', '400ms']);
  t.teardown(() => engine.stop());
  let accepted = 0;
  let full = 0;
  let acceptedAfterFull = 0;
  const body = events('full-1', 1000, 1);
  const stopAt = Date.now() + 4000;
  while (Date.now() < stopAt) {
    const r = await post(`${engine.url}/v1/events`, 'application/json', body);
    if (r.status === 204) {
      accepted++;
      if (full > 0) acceptedAfterFull++;
    } else {
      t.equal(r.status, 503);
      t.equal(r.body.code, 'SLUICE_E_STORAGE_FULL');
      t.equal(r.headers.get('retry-after'), '1');
      full++;
      await new Promise((res) => setTimeout(res, 20));
    }
    if (full > 0 && acceptedAfterFull > 3) break;
  }
  t.ok(full > 0, `the budget filled up (${full} refusals)`);
  t.ok(acceptedAfterFull > 0, 'ingest came back once checkpoints shrank the WAL');
  const q = await getJson(`${engine.url}/v1/metrics/cpu?from=${base - 60_000}`);
  t.equal(q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0), accepted * 1000, 'exactly the acknowledged events');
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.body.storage.fault, null);
});

t.test('a failed WAL write: the batch is neither applied nor acked, storage recovers by itself, device seqs stay exact', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '2']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());
  t.equal((await seqPost(engine.url, 'wf-1', 1, 10)).status, 204);
  t.equal((await post(`${engine.url}/v1/debug/fail-wal?n=1`, 'application/json', '')).status, 200);
  const failed = await seqPost(engine.url, 'wf-1', 2, 10);
  t.equal(failed.status, 503);
  t.equal(failed.body.code, 'SLUICE_E_STORAGE_FAULT');
  // the storage is in fault until a probe write succeeds (about a second)
  let retried = await seqPost(engine.url, 'wf-1', 2, 10);
  for (let i = 0; i < 50 && retried.status === 503; i++) {
    await new Promise((r) => setTimeout(r, 100));
    retried = await seqPost(engine.url, 'wf-1', 2, 10);
  }
  t.equal(retried.status, 204, 'the same seq is accepted once storage is back: the failed one did not consume it');
  t.equal((await seqPost(engine.url, 'wf-1', 3, 10)).status, 204);
  t.equal(await countOf(engine.url, 'wf-1'), 30, 'batches 1, 2 (the resend) and 3, once each');
  const h = await getJson(`${engine.url}/healthz`);
  t.equal(h.body.storage.fault, null);
  t.equal(h.body.storage.wal.walFailures, 1);
});
