import t from 'tap';
import { startEngine } from '../helpers/engine';
import {
  FUZZ_SEED, assertHealthy, assertReference, forChunks, judge, overConnections, referenceSnapshot, requestBytes,
  runsOf, seedReference, show, Tally,
} from '../helpers/fuzz';
import { eventsRequest } from '../helpers/fuzz-inputs';

// Issue #13 part 4: hostile bodies on POST /v1/events, against the real engine (headers:
// fuzz-headers.test.ts).
// A 5xx, a connection closed without an answer, a 2xx to an input built invalid, an internal
// fault (/healthz faults.count) or a change to the reference aggregates fails the test.

const CONNECTIONS = 8;

t.test(`fuzz: bodies of POST /v1/events (seed ${FUZZ_SEED}, SLUICE_FUZZ_RUNS)`, async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const t0 = await seedReference(engine);
  assertReference(t, await referenceSnapshot(engine, t0), 'before the fuzz');

  await t.test(`POST /v1/events: ${runsOf('events')} JSON, NDJSON, msgpack and columnar bodies`, async (t) => {
    const tally = new Tally();
    await forChunks(eventsRequest, runsOf('events'), async (inputs, chunk) => {
      await overConnections(engine.port, CONNECTIONS, inputs, async (r, i, conn) => {
        const o = await conn.request(requestBytes({ method: 'POST', target: `/v1/events${r.query}`, headers: [['Content-Type', r.contentType]], body: r.body }));
        judge(tally, o, r, `seed ${FUZZ_SEED} chunk ${chunk} #${i} (${r.kind}, ${r.contentType}${r.query})`, show(r.body));
      });
      await assertHealthy(t, engine, `events chunk ${chunk}`);
    });
    t.same(tally.failures, [], `every body answered 2xx/4xx as its kind allows: ${tally.summary()}`);
    // the generators are meant to be hostile: most inputs must be refused
    t.ok(tally.countOf('4') > tally.count / 2, `mostly refused (${tally.summary()})`);
    t.ok(tally.countOf('2') > 0, 'some mutations happen to be valid and are kept');
  });

  await assertHealthy(t, engine, 'the fuzz');
  assertReference(t, await referenceSnapshot(engine, t0), 'after the fuzz');
});
