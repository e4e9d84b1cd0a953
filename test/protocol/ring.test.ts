import t from 'tap';
import {
  createRingBuffer, RingConsumer, RingProducer, RECORD_HEADER_BYTES, isPowerOfTwo,
  type RecordHandler,
} from '../../protocol';

/** Collects records as [type, payload bytes] so tests compare against a plain array model. */
class Collector implements RecordHandler {
  got: { type: number; payload: number[] }[] = [];
  constructor(private readonly c: RingConsumer) {}
  onRecord(offset: number, total: number, type: number): void {
    this.got.push({ type, payload: Array.from(this.c.bytes.subarray(offset + RECORD_HEADER_BYTES, offset + total)) });
  }
}

function write(p: RingProducer, type: number, payload: number[]): boolean {
  const total = (RECORD_HEADER_BYTES + payload.length + 7) & ~7;
  const off = p.tryReserve(total, type);
  if (off < 0) return false;
  p.bytes.set(payload, off + RECORD_HEADER_BYTES);
  p.bytes.fill(0, off + RECORD_HEADER_BYTES + payload.length, off + total);
  return true;
}

function padded(payload: number[]): number[] {
  const out = payload.slice();
  while ((out.length + RECORD_HEADER_BYTES) % 8 !== 0) out.push(0);
  return out;
}

t.test('capacity must be a power of two within bounds', async (t) => {
  t.throws(() => createRingBuffer(100_000), /power of two/);
  t.throws(() => createRingBuffer(1024), /power of two between/);
  t.ok(isPowerOfTwo(65536));
  t.notOk(isPowerOfTwo(65535));
  const sab = createRingBuffer(65536);
  t.equal(new RingProducer(sab).capacity, 65536);
});

t.test('records cross the ring in order, wrap around with padding, and free space', async (t) => {
  const sab = createRingBuffer(65536);
  const p = new RingProducer(sab);
  const c = new RingConsumer(sab);
  const col = new Collector(c);
  const sent: { type: number; payload: number[] }[] = [];
  // 3000-byte records: 65536 is not a multiple, so the ring must pad and wrap many times
  for (let round = 0; round < 200; round++) {
    const payload = Array.from({ length: 2992 }, (_, i) => (round * 31 + i) & 255);
    t.equal(write(p, 7, payload), true);
    p.publish();
    sent.push({ type: 7, payload });
    c.poll(col, 1 << 30);
  }
  t.equal(col.got.length, 200);
  t.same(col.got, sent);
  t.equal(c.usedBytes(), 0);
});

t.test('a full ring refuses, abandon() forgets unpublished records, publish makes them visible', async (t) => {
  const sab = createRingBuffer(65536);
  const p = new RingProducer(sab);
  const c = new RingConsumer(sab);
  const col = new Collector(c);
  let n = 0;
  while (write(p, 1, [n & 255, 1, 2, 3])) n++;
  t.equal(n, 65536 / 16, 'fills exactly: 16-byte records');
  t.equal(c.poll(col, 1 << 30), 0, 'nothing published yet');
  p.abandon();
  t.equal(write(p, 2, [9]), true, 'space is back after abandon');
  p.publish();
  c.poll(col, 1 << 30);
  t.same(col.got, [{ type: 2, payload: padded([9]) }]);
  t.throws(() => p.tryReserve(12, 1), /multiple of 8/);
  t.throws(() => p.tryReserve(p.recordBytesMax + 8, 1), /multiple of 8 between/);
});

t.test('poll respects its budget and resumes where it stopped', async (t) => {
  const sab = createRingBuffer(65536);
  const p = new RingProducer(sab);
  const c = new RingConsumer(sab);
  const col = new Collector(c);
  for (let i = 0; i < 10; i++) write(p, 3, [i, 0, 0, 0, 0, 0, 0, 0]);
  p.publish();
  t.equal(c.poll(col, 40), 48, 'stops after the record that crosses the budget');
  t.equal(col.got.length, 3);
  c.poll(col, 1 << 30);
  t.same(col.got.map((r) => r.payload[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

t.test('property: random record sizes against a plain array model', async (t) => {
  const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed} (set SLUICE_TEST_SEED to replay)`);
  let s = seed;
  const rnd = (n: number): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
  const sab = createRingBuffer(65536);
  const p = new RingProducer(sab);
  const c = new RingConsumer(sab);
  const col = new Collector(c);
  const model: { type: number; payload: number[] }[] = [];
  let refused = 0;
  for (let step = 0; step < 4000; step++) {
    if (rnd(6) !== 0) {
      const len = rnd(rnd(10) === 0 ? 16000 : 200);
      const payload = Array.from({ length: len }, () => rnd(256));
      const type = 1 + rnd(5);
      if (write(p, type, payload)) {
        model.push({ type, payload: padded(payload) });
        if (rnd(4) === 0) p.publish();
      } else {
        refused++;
        p.publish();
      }
    } else {
      c.poll(col, rnd(40000));
    }
  }
  p.publish();
  c.poll(col, 1 << 30);
  t.ok(refused > 0, 'the ring filled up at least once');
  t.equal(col.got.length, model.length, `seed ${seed}`);
  // one string compare: tap's deep compare of thousands of byte arrays takes seconds
  t.equal(JSON.stringify(col.got), JSON.stringify(model), `seed ${seed}`);
});

t.test('a sleeping consumer is woken across threads by publish', async (t) => {
  const { Worker } = await import('node:worker_threads');
  const sab = createRingBuffer(65536);
  const p = new RingProducer(sab);
  const ringModule = require.resolve('../../protocol/ring');
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    const { RingConsumer } = require(workerData.mod);
    const c = new RingConsumer(workerData.sab);
    // Atomics.waitAsync does not keep a thread alive; a port listener does (piscina's does too)
    parentPort.on('message', () => process.exit(0));
    let sum = 0, n = 0;
    const h = { onRecord(off, total, type) { sum += c.view.getUint32(off + 8, true); n++; } };
    function pump() {
      if (c.poll(h, 1 << 20) > 0) { if (n >= 1000) { parentPort.postMessage({ sum, n }); return; } setImmediate(pump); return; }
      const wake = c.waitForData();
      if (wake === null) setImmediate(pump); else wake.then(() => { c.awake(); pump(); });
    }
    pump();
  `, { eval: true, workerData: { sab, mod: ringModule } });
  const done = new Promise<{ sum: number; n: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  let expected = 0;
  for (let i = 0; i < 1000; i++) {
    // space for 1000 small records is there; every 10th publish is delayed so the consumer sleeps
    const off = p.tryReserve(16, 1);
    t.not(off, -1);
    p.view.setUint32(off + 8, i, true);
    expected += i;
    p.publish();
    if (i % 100 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  const got = await done;
  w.postMessage('exit');
  t.same(got, { sum: expected, n: 1000 });
});
