import t from 'tap';
import {
  createRingBuffer, EventScratch, RingConsumer, RingProducer, REC_DEFINE_DEVICE, REC_DEFINE_METRIC,
  REC_EVENTS, REC_COLUMNAR, type RecordHandler,
} from '../../protocol';
import { Dictionary, shardOfDevice } from '../../engine/dictionary';
import { BatchStager } from '../../engine/batch-stager';

import { publishAll, reserveAndPublish } from '../helpers/rings';

const limits = { batchEventsMax: 10_000, metricsPerEventMax: 4, futureSkewMs: 60_000 };
const NOW = 1_700_000_000_000;

class TypeCounter implements RecordHandler {
  types: number[] = [];
  onRecord(_o: number, _t: number, type: number): void { this.types.push(type); }
}

function devicesOnShards(shards: number): [string, string] {
  let a = '', b = '';
  for (let i = 0; !a || !b; i++) {
    const id = `dev-${i}`;
    if (shardOfDevice(id, shards) === 0 && !a) a = id;
    if (shardOfDevice(id, shards) === 1 && !b) b = id;
  }
  return [a, b];
}

function setup() {
  const sabs = [createRingBuffer(65536), createRingBuffer(65536)];
  const producers = sabs.map((s) => new RingProducer(s));
  const consumers = sabs.map((s) => new RingConsumer(s));
  const dict = new Dictionary(2, 1000);
  const stager = new BatchStager(dict, producers, limits.metricsPerEventMax);
  const ev = new EventScratch(limits);
  return { producers, consumers, dict, stager, ev };
}

function stage(s: ReturnType<typeof setup>, deviceId: string, n: number): void {
  for (let i = 0; i < n; i++) {
    if (!s.ev.validate({ deviceId, timestamp: NOW + i, metrics: { cpu: i } }, null, NOW + 1e9)) throw new Error(s.ev.errorReason);
    if (!s.stager.stageEvent(s.ev)) throw new Error('device limit');
  }
}

t.test('routing is a stable hash of deviceId', async (t) => {
  t.equal(shardOfDevice('device-1234', 7), shardOfDevice('device-1234', 7));
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) counts[shardOfDevice(`d${i}`, 4)]++;
  t.ok(counts.every((c) => c > 800 && c < 1200), `spread ${counts}`);
});

t.test('a batch commits to every ring it touches, names defined once before first use', async (t) => {
  const s = setup();
  const [a, b] = devicesOnShards(2);
  s.stager.begin();
  stage(s, a, 3);
  stage(s, b, 2);
  t.equal(reserveAndPublish(s.stager, s.producers, 1), true);
  const seen = [new TypeCounter(), new TypeCounter()];
  s.consumers[0].poll(seen[0], 1 << 20);
  s.consumers[1].poll(seen[1], 1 << 20);
  t.same(seen[0].types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS]);
  t.same(seen[1].types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS]);
  s.stager.begin();
  stage(s, a, 1);
  t.equal(reserveAndPublish(s.stager, s.producers, 2), true);
  const again = new TypeCounter();
  s.consumers[0].poll(again, 1 << 20);
  t.same(again.types, [REC_EVENTS], 'names already sent are not sent again');
});

t.test('all or nothing: a full ring refuses the whole batch and undoes its name announcements', async (t) => {
  const s = setup();
  const [a, b] = devicesOnShards(2);
  // fill shard 1's ring
  let filled = 0;
  while (s.producers[1].tryReserve(1024, REC_EVENTS) >= 0) filled++;
  s.producers[1].abandon();
  const blocker = s.producers[1];
  for (let i = 0; i < filled; i++) blocker.tryReserve(1024, 99);
  blocker.publish();
  s.stager.begin();
  stage(s, a, 10);
  stage(s, b, 10);
  t.equal(reserveAndPublish(s.stager, s.producers, 1), false, 'refused');
  const d = s.stager.detach();
  const seen = new TypeCounter();
  t.equal(s.consumers[0].poll(seen, 1 << 20), 0, 'nothing reached the ring that had room');
  // free shard 1 by consuming the blocker records, then retry the detached batch
  s.consumers[1].poll(new TypeCounter(), 1 << 30);
  t.equal((s.stager.tryReserveDetached(d, 2) && publishAll(s.producers)), true);
  const r0 = new TypeCounter();
  const r1 = new TypeCounter();
  s.consumers[0].poll(r0, 1 << 20);
  s.consumers[1].poll(r1, 1 << 20);
  t.same(r0.types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS]);
  t.same(r1.types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS]);
});

t.test('the backlog bound: a batch waits while a ring it touches holds backlogMax unapplied bytes, then goes whole', async (t) => {
  const s = setup();
  const [a, b] = devicesOnShards(2);
  s.producers[1].backlogMax = 4096;
  // shard 1 holds 4 KiB unapplied: at its bound, though the ring has 60 KiB free
  for (let i = 0; i < 4; i++) s.producers[1].tryReserve(1024, 99);
  s.producers[1].publish();
  s.stager.begin();
  stage(s, a, 10);
  t.equal(reserveAndPublish(s.stager, s.producers, 1), true, 'a batch of shard 0 only is not held back by shard 1');
  s.consumers[0].poll(new TypeCounter(), 1 << 20);
  s.stager.begin();
  stage(s, a, 10);
  stage(s, b, 300); // larger than the bound on its own: it still goes once the backlog is under it
  t.equal(reserveAndPublish(s.stager, s.producers, 2), false, 'refused while shard 1 is at its bound');
  const d = s.stager.detach();
  t.equal(s.consumers[0].poll(new TypeCounter(), 1 << 20), 0, 'nothing of it reached shard 0');
  t.equal(s.stager.tryReserveDetached(d, 3), false, 'still at the bound: refused again');
  s.consumers[1].poll(new TypeCounter(), 1 << 30);
  t.equal(s.stager.tryReserveDetached(d, 3) && publishAll(s.producers), true, 'applied: the whole batch goes');
  t.ok(s.producers[1].usedBytes() > 4096, `the batch itself may pass the bound (${s.producers[1].usedBytes()} bytes)`);
  const r1 = new TypeCounter();
  s.consumers[1].poll(r1, 1 << 20);
  t.same(r1.types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS], 'shard 1 got the batch with its names');
});

t.test('devicesMax bounds the dictionary', async (t) => {
  const dict = new Dictionary(1, 2);
  t.equal(dict.device('a'), 0);
  t.equal(dict.device('b'), 1);
  t.equal(dict.device('c'), -1);
  t.equal(dict.device('a'), 0);
});

t.test('scanned runs of one device and the same metrics become COLUMNAR records, in order with row events', async (t) => {
  const s = setup();
  const [a, b] = devicesOnShards(2);
  const da = s.dict.device(a);
  const db = s.dict.device(b);
  const cpu = s.dict.metric('cpu');
  const mem = s.dict.metric('mem');
  const ids = new Int32Array([cpu, mem]);
  const values = new Float64Array([1, 2]);
  s.stager.begin();
  for (let i = 0; i < 6; i++) s.stager.stagePacked(da, NOW + i, ids, values, 2); // a run: COLUMNAR
  s.stager.stagePacked(db, NOW, ids, values, 1); // another device, shorter: rows
  for (let i = 0; i < 2; i++) s.stager.stagePacked(da, NOW + 10 + i, ids, values, 1); // a run too short: rows
  stage(s, a, 1); // a generic event after them: the open run is written first
  t.equal(s.stager.eventsStaged, 10);
  t.equal(reserveAndPublish(s.stager, s.producers, 1), true);
  const seen = [new TypeCounter(), new TypeCounter()];
  s.consumers[0].poll(seen[0], 1 << 20);
  s.consumers[1].poll(seen[1], 1 << 20);
  const shardA = s.dict.shardOf(da);
  t.same(seen[shardA].types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_DEFINE_METRIC, REC_COLUMNAR, REC_EVENTS]);
  t.same(seen[1 - shardA].types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS]);
});

t.test('an abandoned batch forgets its staged names and its open run', async (t) => {
  const s = setup();
  const [a] = devicesOnShards(2);
  const da = s.dict.device(a);
  const ids = new Int32Array([s.dict.metric('cpu')]);
  s.stager.begin();
  for (let i = 0; i < 5; i++) s.stager.stagePacked(da, NOW + i, ids, new Float64Array([i]), 1);
  s.stager.abandon();
  t.equal(s.stager.eventsStaged, 0);
  t.equal(s.stager.stagedBytes, 0, 'nothing staged');
  s.stager.begin();
  s.stager.stagePacked(da, NOW, ids, new Float64Array([1]), 1);
  t.equal(reserveAndPublish(s.stager, s.producers, 1), true);
  const seen = new TypeCounter();
  s.consumers[s.dict.shardOf(da)].poll(seen, 1 << 20);
  t.same(seen.types, [REC_DEFINE_DEVICE, REC_DEFINE_METRIC, REC_EVENTS], 'the names are defined again');
});
