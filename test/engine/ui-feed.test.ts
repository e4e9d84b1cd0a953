import t from 'tap';
import WebSocket from 'ws';
import type { us_listen_socket } from 'uWebSockets.js';
import { loadNativeUws } from '../../engine/uws';
import { LatencyHistogram, LATENCY_BOUNDS_SECONDS } from '../../engine/latency-histogram';
import { AVG_INTERVALS, LiveSampler, bucketQuantile, type FeedSnapshot, type LiveFrame } from '../../engine/ui-feed';
import { registerUiRoutes, UI_TICK_MS, type UiSources } from '../../engine/ui-routes';

function snap(monoMs: number, accepted: number, ack: LatencyHistogram, shards: FeedSnapshot['shards'] = []): FeedSnapshot {
  return { monoMs, wallMs: 1_700_000_000_000 + monoMs, eventsAccepted: accepted, ackCounts: Float64Array.from(ack.counts), shards };
}

t.test('bucketQuantile interpolates inside the bucket that holds the rank', async (t) => {
  const bounds = [1, 2, 4];
  t.equal(bucketQuantile(bounds, [0, 0, 0, 0], 0.5), null, 'no observation: no quantile');
  t.equal(bucketQuantile(bounds, [10, 0, 0, 0], 0.5), 0.5, 'half of the first bucket [0, 1]');
  t.equal(bucketQuantile(bounds, [0, 4, 4, 0], 0.5), 2, 'the rank at the edge of [1, 2]');
  t.equal(bucketQuantile(bounds, [0, 4, 4, 0], 0.75), 3, 'halfway through [2, 4]');
  t.equal(bucketQuantile(bounds, [0, 0, 0, 5], 0.99), 4, 'in the +Inf bucket: the highest finite bound');
});

t.test('LiveSampler: rates from measured time, ack quantiles from bucket deltas, shard figures', async (t) => {
  const ack = new LatencyHistogram();
  const s = new LiveSampler(ack.bounds);
  const shard = (applied: number, used: number, late: number, corrected: number) =>
    ({ shard: 0, ringUsedBytes: used, ringCapacityBytes: 1024, eventsApplied: applied, lateEvents: late, correctedEvents: corrected });
  for (let i = 0; i < 50; i++) ack.observe(0.0001); // before the baseline: not in any frame
  t.equal(s.sample(snap(0, 1000, ack, [shard(0, 0, 0, 0)])), null, 'the first snapshot is the baseline');
  for (let i = 0; i < 100; i++) ack.observe(0.003); // all in (0.002, 0.005]
  const f = s.sample(snap(1250, 3500, ack, [shard(2000, 256, 3, 1)])) as LiveFrame;
  t.equal(f.intervalMs, 1250);
  t.equal(f.ingest.accepted, 3500);
  t.equal(f.ingest.perSec, 2000, '2,500 events in 1.25 s');
  t.equal(f.ack.count, 100, 'only the acks since the baseline');
  t.ok(Math.abs((f.ack.p50Ms ?? 0) - 3.5) < 1e-9, `p50 halfway through the 2-5 ms bucket (${f.ack.p50Ms})`);
  t.ok(Math.abs((f.ack.p99Ms ?? 0) - 4.97) < 1e-9, `p99 near the bucket top (${f.ack.p99Ms})`);
  t.same(f.shards, [{ shard: 0, fill: 0.25, applied: 2000, appliedPerSec: 1600, late: 3, corrected: 1 }]);
  t.same(f.late, { total: 3, perSec: 2.4 });
  t.same(f.corrected, { total: 1, perSec: 0.8 });

  // the average spans at most AVG_INTERVALS intervals: the oldest snapshots drop out
  let accepted = 3500;
  let mono = 1250;
  let last = f;
  for (let i = 0; i < AVG_INTERVALS + 2; i++) {
    mono += 1000;
    accepted += i < 2 ? 0 : 1000; // two idle seconds, then 1,000/s
    last = s.sample(snap(mono, accepted, ack, [shard(2000, 0, 3, 1)])) as LiveFrame;
  }
  t.equal(last.ingest.perSec, 1000);
  t.equal(last.ingest.avgWindowMs, AVG_INTERVALS * 1000);
  t.equal(last.ingest.perSecAvg, 1000, 'the idle seconds are older than the window');
  t.equal(last.ack.p50Ms, null, 'no ack in the window: no latency');
  t.equal(last.ack.count, 0);

  s.reset();
  t.equal(s.sample(snap(mono + 1000, accepted + 5, ack)), null, 'after reset the next snapshot is a new baseline');
});

t.test('LiveSampler never reports a negative rate (a counter read out of order)', async (t) => {
  const ack = new LatencyHistogram(LATENCY_BOUNDS_SECONDS);
  const s = new LiveSampler(ack.bounds);
  s.sample(snap(0, 100, ack));
  const f = s.sample(snap(1000, 50, ack)) as LiveFrame;
  t.equal(f.ingest.perSec, 0);
});

/** Sources with the figures the feed reads; the route and uWS around them are real. */
function sources(): UiSources & { counters: { eventsAccepted: number } } {
  const counters = { eventsAccepted: 0 };
  return {
    counters,
    config: { shards: 2 },
    ingest: { counters },
    pipeline: { ackSeconds: new LatencyHistogram() },
    shards: { ringStates: () => [0, 1].map((shard) => ({ shard, ringUsedBytes: 0, ringCapacityBytes: 4096, eventsApplied: counters.eventsAccepted / 2, lateEvents: 0, correctedEvents: 0 })) },
    dict: {},
  } as unknown as UiSources & { counters: { eventsAccepted: number } };
}

function openWs(url: string): Promise<{ ws: WebSocket; frames: Record<string, any>[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const frames: Record<string, any>[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, any>));
    ws.once('open', () => resolve({ ws, frames }));
    ws.once('error', reject);
  });
}

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('WS /v1/ui/stream: the timer runs only while a socket is open; frames are published once a second', async (t) => {
  const uws = loadNativeUws();
  const app = uws.App();
  const src = sources();
  const ui = registerUiRoutes(app, src);
  const listen = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen')))));
  t.teardown(() => { ui.close(); uws.us_listen_socket_close(listen); });
  const url = `ws://127.0.0.1:${uws.us_socket_local_port(listen)}/v1/ui/stream`;

  t.equal(ui.running(), false, 'no timer before anyone watches');
  const a = await openWs(url);
  t.equal(ui.running(), true, 'the first socket starts it');
  const b = await openWs(url);
  await until('a hello on both', () => a.frames.length > 0 && b.frames.length > 0);
  t.same(a.frames[0], { type: 'hello', shards: 2, tickMs: UI_TICK_MS, avgIntervals: AVG_INTERVALS });
  // garbage and an oversized frame: ignored, or that one socket closed by uWS; never a crash
  b.ws.send(Buffer.from([0xff, 0x00, 0x13]));
  b.ws.send('{"not":"a command"');
  src.counters.eventsAccepted = 1500;
  await until('a live frame', () => a.frames.some((f) => f.type === 'live'), 3000);
  const live = a.frames.find((f) => f.type === 'live') as LiveFrame;
  t.equal(live.ingest.accepted, 1500);
  t.ok(live.ingest.perSec > 1000 && live.ingest.perSec < 2000, `1,500 events over ~1 s (${live.ingest.perSec}/s)`);
  t.same(live.shards.map((s) => s.applied), [750, 750]);

  const closedB = new Promise<number>((r) => b.ws.once('close', (code) => r(code)));
  b.ws.send('x'.repeat(4096)); // over maxPayloadLength: uWS drops this connection
  const codeB = await closedB;
  t.ok(codeB === 1006 || codeB === 1009, `an oversized message closes only its socket (${codeB})`);
  t.equal(a.ws.readyState, WebSocket.OPEN, 'the other socket stays open');
  t.equal(ui.running(), true, 'one socket is still open');
  const closedA = new Promise<void>((r) => a.ws.once('close', () => r()));
  a.ws.close();
  await closedA;
  await until('the timer to stop', () => !ui.running());
  t.equal(ui.running(), false, 'the last close stops it');

  const c = await openWs(url);
  t.equal(ui.running(), true, 'a new socket starts it again');
  const closedC = new Promise<number>((r) => c.ws.once('close', (code) => r(code)));
  ui.close();
  t.equal(await closedC, 1001, 'close() ends the sockets (going away)');
  t.equal(ui.running(), false, 'close() stops the timer');
});
