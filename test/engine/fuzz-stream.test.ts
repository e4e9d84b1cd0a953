import t from 'tap';
import fc from 'fast-check';
import WebSocket from 'ws';
import { startEngine } from '../helpers/engine';
import { FUZZ_SEED, assertHealthy, assertReference, forChunks, referenceSnapshot, runsOf, seedReference, show, Tally } from '../helpers/fuzz';
import { jsonBody, msgpackBody, type BodyInput } from '../helpers/fuzz-inputs';
import { isSluiceCode } from '../helpers/property';

// Issue #13 part 4: hostile text and binary frames on /v1/stream, pinned and unpinned. Every frame
// gets exactly one answer, in frame order: an ack (only for a frame that may be valid) or an
// error frame with a SLUICE_E_* code other than SLUICE_E_INTERNAL; the connection stays open.

interface Frame extends BodyInput {
  binary: boolean;
}

const frame: fc.Arbitrary<Frame> = fc.oneof(
  // text frames are UTF-8 by the protocol (RFC 6455 8.1: invalid UTF-8 closes the connection)
  jsonBody.map((b) => ({ ...b, body: Buffer.from(b.body.toString('utf8')), binary: false })),
  msgpackBody.map((b) => ({ ...b, binary: true })),
);

/** frames in flight per connection before their answers are checked */
const WINDOW = 250;

class Conn {
  readonly answers: string[] = [];
  closed: string | null = null;
  private wake: (() => void) | null = null;

  private constructor(readonly ws: WebSocket, readonly pinned: boolean) {
    ws.on('message', (data: Buffer) => {
      this.answers.push(data.toString('utf8'));
      this.wake?.();
    });
    ws.on('close', (code, reason) => {
      this.closed = `${code} ${reason.toString()}`;
      this.wake?.();
    });
  }

  static open(url: string, pinned: boolean): Promise<Conn> {
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Conn(ws, pinned)));
      ws.once('error', reject);
    });
  }

  async waitFor(n: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < n && this.closed === null && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }
}

t.test(`fuzz: ${runsOf('stream')} WebSocket frames on /v1/stream (seed ${FUZZ_SEED}, SLUICE_FUZZ_RUNS)`, async (t) => {
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const t0 = await seedReference(engine);
  assertReference(t, await referenceSnapshot(engine, t0), 'before the fuzz');
  const base = `ws://127.0.0.1:${engine.port}/v1/stream`;
  const conns = await Promise.all([
    Conn.open(base, false), Conn.open(base, false), Conn.open(`${base}?deviceId=fzws-1`, true), Conn.open(`${base}?deviceId=fzws-2&precision=s`, true),
  ]);
  t.teardown(() => { for (const c of conns) c.ws.terminate(); });
  const tally = new Tally();
  await forChunks(frame, runsOf('stream'), async (inputs, chunk) => {
    await Promise.all(conns.map(async (c, ci) => {
      const mine = inputs.filter((_, i) => i % conns.length === ci);
      for (let from = 0; from < mine.length && c.closed === null; from += WINDOW) {
        const sent = c.answers.length;
        const batch = mine.slice(from, from + WINDOW);
        for (const f of batch) c.ws.send(f.body, { binary: f.binary });
        await c.waitFor(sent + batch.length);
        batch.forEach((f, k) => {
          const where = `seed ${FUZZ_SEED} chunk ${chunk} connection ${ci} frame #${(from + k) * conns.length + ci}`;
          const text = c.answers[sent + k];
          if (text === undefined) {
            tally.add(c.closed === null ? 'timeout' : 'closed');
            tally.fail(`${where}: no answer (${c.closed === null ? 'timeout' : `closed ${c.closed}`}); frame ${show(f.body)}`);
            return;
          }
          let a: any = null;
          try { a = JSON.parse(text); } catch { /* judged below */ }
          if (a !== null && typeof a.error === 'string') {
            tally.add(`error ${a.code}`);
            if (!isSluiceCode(a.code) || a.code === 'SLUICE_E_INTERNAL') tally.fail(`${where}: ${text}; frame ${show(f.body)}`);
          } else if (a !== null && a.ack !== undefined && a.duplicate === true) {
            // a device seq already admitted is acknowledged as a duplicate before its body is read:
            // nothing of the frame is kept, whatever it holds
            tally.add('ack duplicate');
          } else if (a !== null && a.ack !== undefined) {
            tally.add(a.rejected === undefined ? 'ack' : 'ack partial');
            // a pinned connection names the device itself: an event built without one may be valid there
            if (f.mustRefuse && !c.pinned) tally.fail(`${where}: ack to a frame built invalid: ${text}; frame ${show(f.body)}`);
          } else {
            tally.add('other');
            tally.fail(`${where}: not an answer: ${show(text)}; frame ${show(f.body)}`);
          }
        });
      }
    }));
    await assertHealthy(t, engine, `stream chunk ${chunk}`);
  });
  t.same(conns.map((c) => c.closed), [null, null, null, null], 'no connection closed');
  t.same(tally.failures, [], `every frame answered once, in order: ${tally.summary()}`);
  t.ok(tally.count >= runsOf('stream'), `${tally.count} frames answered`);
  assertReference(t, await referenceSnapshot(engine, t0), 'after the fuzz');
});
