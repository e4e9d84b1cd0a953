/**
 * The commit pipeline's group commit against a real store in a temp dir: the batches of one
 * event-loop turn become one WAL entry (with their device seqs), the rings show them only after
 * that entry is on disk, and every batch of the group is answered once, in order; a failed write
 * answers every batch of its group false and leaves none of their events in the rings; a MARK
 * reserved behind an open group is published after it.
 */

import t from 'tap';
import {
  createRingBuffer, EventScratch, RingConsumer, RingProducer, REC_EVENTS, REC_MARK, type RecordHandler,
} from '../../protocol';
import { decodeWalEntry, Store } from '../../storage';
import { Dictionary, shardOfDevice } from '../../engine/dictionary';
import { BatchStager } from '../../engine/batch-stager';
import { CommitPipeline } from '../../engine/commit-pipeline';
import { FaultGuard } from '../../engine/fault-guard';
import { createLogger } from '../../engine/logger';
import { tempDir } from '../helpers/engine';

const limits = { batchEventsMax: 10_000, metricsPerEventMax: 4, futureSkewMs: 60_000 };
const NOW = Date.now();

class TypeCounter implements RecordHandler {
  types: number[] = [];
  onRecord(_o: number, _t: number, type: number): void { this.types.push(type); }
}

function deviceOnShard(shard: number, shards: number, skip = 0): string {
  for (let i = 0, found = 0; ; i++) {
    const id = `cp-${i}`;
    if (shardOfDevice(id, shards) === shard && found++ === skip) return id;
  }
}

/** the subtest's asserts that setup() uses */
type SetupTest = Pick<typeof t, 'ok' | 'teardown'>;

function setup(t: SetupTest) {
  const store = Store.open(tempDir());
  const sabs = [createRingBuffer(65536), createRingBuffer(65536)];
  const producers = sabs.map((s) => new RingProducer(s));
  const consumers = sabs.map((s) => new RingConsumer(s));
  const dict = new Dictionary(2, 1000);
  const stager = new BatchStager(dict, producers, limits.metricsPerEventMax);
  const log = createLogger('silent');
  const pipeline = new CommitPipeline(store, producers, 'durable', 1 << 30, log, new FaultGuard(log));
  t.teardown(async () => {
    pipeline.stop();
    await store.close();
  });
  const ev = new EventScratch(limits);
  let nextSeq = 1;
  /** stages one event of deviceId, reserves it under the open group's seq (or the next, as Ingest does) and joins it */
  const join = (deviceId: string, done: (ok: boolean, reason: string) => void, deviceSeq = -1): void => {
    const seq = pipeline.groupSeq >= 0 ? pipeline.groupSeq : nextSeq++;
    stager.begin();
    t.ok(ev.validate({ deviceId, timestamp: NOW - 1000, metrics: { cpu: 1 } }, null, NOW));
    t.ok(stager.stageEvent(ev));
    t.ok(stager.tryReserve(seq));
    pipeline.join(seq, stager.records, stager.startCursors, stager.endCursors, deviceSeq >= 0 ? dict.device(deviceId) : -1, deviceSeq, done);
  };
  const drain = (shard: number): number[] => {
    const c = new TypeCounter();
    consumers[shard].poll(c, 1 << 20);
    return c.types;
  };
  return { store, producers, consumers, dict, stager, pipeline, join, drain };
}

function waitUntil(f: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (f()) resolve();
      else if (Date.now() > deadline) reject(new Error('timed out'));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

t.test('the batches of one turn: one WAL entry with their device seqs, published and answered after its commit', async (t) => {
  const s = setup(t);
  const answers: string[] = [];
  const a = deviceOnShard(0, 2);
  const b = deviceOnShard(1, 2);
  s.join(a, (ok) => answers.push(`a ${ok}`));
  t.equal(s.pipeline.groupSeq, 1, 'the first batch opened group 1');
  s.join(b, (ok) => answers.push(`b ${ok}`), 7);
  s.join(a, (ok) => answers.push(`a2 ${ok}`));
  t.same(s.drain(0), [], 'nothing published before the commit');
  t.same(answers, [], 'nothing answered before the commit');
  await waitUntil(() => answers.length === 3);
  t.same(answers, ['a true', 'b true', 'a2 true'], 'each batch answered once, in the order they joined');
  t.equal(s.pipeline.groupSeq, -1, 'no group open after the turn');
  t.same(s.pipeline.counters, { walAppends: 1, walBatches: 3, walFailures: 0, walBytesWritten: s.pipeline.counters.walBytesWritten });
  const entries = [...s.store.walAfter(0)];
  t.equal(entries.length, 1, 'one WAL entry');
  t.equal(entries[0].seq, 1);
  const parts = decodeWalEntry(entries[0].entry);
  t.ok(parts[0].byteLength > 0 && parts[1].byteLength > 0, 'the entry holds the records of both shards');
  t.same(s.store.loadDeviceSeqs(), [{ id: s.dict.device(b), seq: 7 }], 'the device seq was stored with it');
  t.same(s.drain(0).filter((x) => x === REC_EVENTS).length, 2, 'shard 0: both of its batches published');
  t.same(s.drain(1).filter((x) => x === REC_EVENTS).length, 1, 'shard 1: its batch published');
});

t.test('a failed WAL write answers every batch of its group false and publishes none of their events', async (t) => {
  const s = setup(t);
  s.pipeline.failNextAppends = 1;
  const answers: [boolean, string][] = [];
  s.join(deviceOnShard(0, 2), (ok, reason) => answers.push([ok, reason]));
  s.join(deviceOnShard(1, 2), (ok, reason) => answers.push([ok, reason]));
  await waitUntil(() => answers.length === 2);
  for (const [ok, reason] of answers) {
    t.equal(ok, false);
    t.match(reason, /WAL write of batch 1 failed: injected/);
  }
  t.equal(s.drain(0).filter((x) => x === REC_EVENTS).length, 0, 'shard 0: the events became padding');
  t.equal(s.drain(1).filter((x) => x === REC_EVENTS).length, 0, 'shard 1: the events became padding');
  t.match(s.pipeline.refusal(0), /storage fault/, 'storage is in fault until a probe succeeds');
  t.equal(s.store.walCount(), 0);
});

t.test('a MARK reserved behind an open group closes it first and is published after it', async (t) => {
  const s = setup(t);
  const order: string[] = [];
  s.join(deviceOnShard(0, 2), () => order.push('batch'));
  s.stager.begin();
  s.stager.stageMark(1);
  t.ok(s.stager.tryReserve(1));
  s.pipeline.submitMark(s.stager.startCursors, s.stager.endCursors, () => order.push('mark'));
  t.equal(s.pipeline.groupSeq, -1, 'the mark closed the group');
  t.same(s.drain(0), [], 'the mark waits for the group: nothing published yet');
  await waitUntil(() => order.length === 2);
  t.same(order, ['batch', 'mark']);
  const types = s.drain(0);
  t.ok(types.indexOf(REC_EVENTS) >= 0 && types.indexOf(REC_EVENTS) < types.indexOf(REC_MARK), 'the group\'s events come before the mark');
  await s.pipeline.idle();
});

t.test('idle() closes the open group and resolves once it is written', async (t) => {
  const s = setup(t);
  let answered = false;
  s.join(deviceOnShard(1, 2), (ok) => { answered = ok; });
  await s.pipeline.idle();
  t.equal(answered, true);
  t.equal(s.store.walCount(), 1);
});

t.test('after a commit, the next group waits for as many batches as it answered (the senders coming back), at most a moment', async (t) => {
  const s = setup(t);
  s.pipeline.siblingsWaitMs = 300;
  const dev = deviceOnShard(0, 2);
  const answers: number[] = [];
  let answered: () => void = () => {};
  const answer = (group: number) => () => {
    answers.push(group);
    answered();
  };
  const twoAnswers = new Promise<void>((r) => { answered = () => { if (answers.length === 2) r(); }; });
  s.join(dev, answer(1));
  s.join(dev, answer(1));
  await twoAnswers;
  // two batches answered: a group that holds one of them waits for the other
  s.join(dev, answer(2));
  t.equal(s.pipeline.groupSeq, 2);
  await new Promise((r) => setImmediate(r));
  t.equal(s.pipeline.groupSeq, 2, 'one batch back of two: the group waits at the end of the turn');
  s.join(dev, answer(2));
  await new Promise((r) => setImmediate(r));
  t.equal(s.pipeline.groupSeq, -1, 'both back: the group closed at the end of the turn');
  await waitUntil(() => answers.length === 4);
  // one batch back of two, and no other: the wait ends by itself
  const t0 = Date.now();
  s.join(dev, answer(3));
  await waitUntil(() => answers.length === 5, 5000);
  t.ok(Date.now() - t0 >= 250, `the lone batch waited for the others (${Date.now() - t0} ms)`);
  t.same(answers, [1, 1, 2, 2, 3]);
  t.same([...s.store.walAfter(0)].map((e) => e.seq), [1, 2, 3], 'three groups, three WAL entries');
});
