/**
 * MQTT ingest against a real mosquitto (/usr/sbin/mosquitto, started here on a free port of
 * 127.0.0.1 and ended by PID) and the real engine process: messages counted through the query
 * routes, refusals acknowledged and listed, a broker that comes up late, and the crash test:
 * 100 devices x 100 QoS 1 messages with envelope seqs while the engine is SIGKILLed and restarted,
 * every message counted exactly once.
 */

import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pack } from 'msgpackr';
import { connectAsync, type MqttClient } from 'mqtt';
import { startEngine, tempDir, getJson, freePort, type EngineProcess } from '../helpers/engine';
import { Mosquitto, until } from '../helpers/mosquitto';

const run = promisify(execFile);

interface Totals { count: number; sum: number }

/** count and sum of cpu over every 1 d window of the device (0 when unknown) */
async function deviceTotals(engine: EngineProcess, id: string, from: number): Promise<Totals> {
  const q = await getJson(`${engine.url}/v1/devices/${encodeURIComponent(id)}/metrics/cpu?from=${from}&to=${Date.now() + 60_000}&resolution=1d`);
  if (q.status === 404) return { count: 0, sum: 0 };
  if (q.status !== 200) throw new Error(`device query answered ${q.status}: ${JSON.stringify(q.body)}`);
  return q.body.windows.reduce((a: Totals, w: Totals) => ({ count: a.count + w.count, sum: a.sum + w.sum }), { count: 0, sum: 0 });
}

async function fleetCount(engine: EngineProcess, from: number): Promise<number> {
  const q = await getJson(`${engine.url}/v1/metrics/cpu?from=${from}&to=${Date.now() + 60_000}&resolution=1d`);
  if (q.status !== 200) throw new Error(`fleet query answered ${q.status}`);
  return q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0);
}

async function mqttStatus(engine: EngineProcess): Promise<Record<string, any>> {
  const h = await getJson(`${engine.url}/healthz`);
  return h.body.mqtt;
}

async function publisher(broker: Mosquitto, id: string): Promise<MqttClient> {
  return connectAsync(broker.url, { clientId: id, clean: true, reconnectPeriod: 200 });
}

let clientIds = 0;
function engineArgs(broker: { url: string }, clientId = `sluice-test-${process.pid}-${++clientIds}`): string[] {
  return ['--shards', '2', '--mqtt-url', broker.url, '--mqtt-client-id', clientId];
}

t.setTimeout(240_000);

t.test('JSON and msgpack messages are counted, as one event, an array or an envelope', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const engine = await startEngine(engineArgs(broker));
  t.teardown(() => engine.stop());
  await until('the subscription', async () => ((await mqttStatus(engine)).subscribed === true ? true : undefined));
  const from = Date.now() - 60_000;
  const now = Date.now();
  const pub = await publisher(broker, `pub-basic-${process.pid}`);
  t.teardown(() => pub.endAsync());
  await pub.publishAsync('devices/json-1/telemetry', JSON.stringify({ timestamp: now, metrics: { cpu: 10 } }), { qos: 1 });
  await pub.publishAsync('devices/json-1/telemetry', ` \n[{"timestamp":${now},"metrics":{"cpu":20}},{"timestamp":${now},"cpu":30}]`, { qos: 1 });
  await pub.publishAsync('devices/json-2/telemetry', JSON.stringify({ seq: 1, events: [{ timestamp: now, metrics: { cpu: 5 } }] }), { qos: 1 });
  await pub.publishAsync('devices/mp-1/telemetry', pack({ timestamp: now, metrics: { cpu: 1 } }), { qos: 1 });
  await pub.publishAsync('devices/mp-1/telemetry', pack([{ timestamp: now, metrics: { cpu: 2 } }, { timestamp: now, metrics: { cpu: 3 } }]), { qos: 1 });
  await pub.publishAsync('devices/mp-2/telemetry', pack({ seq: 7, deviceId: 'mp-2', events: [{ timestamp: now, metrics: { cpu: 4 } }] }), { qos: 1 });
  // the command line of the README
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-q', '1', '-t', 'devices/cli-1/telemetry',
    '-m', JSON.stringify({ seq: 1, events: [{ timestamp: now, metrics: { cpu: 42.5 } }] })]);

  // QoS 0: nothing to acknowledge, counted all the same (at-most-once)
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-q', '0', '-t', 'devices/cli-0/telemetry',
    '-m', JSON.stringify({ timestamp: now, cpu: 7 })]);

  const s = await until('7 messages acknowledged and the QoS 0 one', async () => {
    const st = await mqttStatus(engine);
    return st.acked >= 7 && st.qos0 >= 1 ? st : undefined;
  });
  t.same(await deviceTotals(engine, 'json-1', from), { count: 3, sum: 60 }, 'JSON: one event and an array (with leading whitespace)');
  t.same(await deviceTotals(engine, 'json-2', from), { count: 1, sum: 5 }, 'JSON envelope');
  t.same(await deviceTotals(engine, 'mp-1', from), { count: 3, sum: 6 }, 'msgpack: one event and an array');
  t.same(await deviceTotals(engine, 'mp-2', from), { count: 1, sum: 4 }, 'msgpack envelope naming its own (same) device');
  t.same(await deviceTotals(engine, 'cli-1', from), { count: 1, sum: 42.5 }, 'mosquitto_pub -q 1');
  t.same(await deviceTotals(engine, 'cli-0', from), { count: 1, sum: 7 }, 'mosquitto_pub -q 0');
  t.match(s, {
    url: broker.url, topic: 'devices/+/telemetry', state: 'connected', subscribed: true, connects: 1,
    received: 8, acked: 7, qos0: 1, rejected: 0, duplicates: 0, inFlight: 0, eventsAccepted: 10,
  }, '/healthz shows the MQTT state');

  await t.test('a resent envelope (same device seq) is acknowledged and not counted again', async (t) => {
    await pub.publishAsync('devices/json-2/telemetry', JSON.stringify({ seq: 1, events: [{ timestamp: now, metrics: { cpu: 5 } }] }), { qos: 1 });
    await pub.publishAsync('devices/json-2/telemetry', JSON.stringify({ seq: 2, events: [{ timestamp: now, metrics: { cpu: 6 } }] }), { qos: 1 });
    const st = await until('2 more acks', async () => {
      const x = await mqttStatus(engine);
      return x.acked >= 9 ? x : undefined;
    });
    t.equal(st.duplicates, 1);
    t.same(await deviceTotals(engine, 'json-2', from), { count: 2, sum: 11 });
  });
});

t.test('bad messages are logged, listed, acknowledged (not redelivered) and the engine goes on', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const args = engineArgs(broker);
  const dataDir = tempDir('sluice-mqtt-');
  let engine = await startEngine(args, dataDir);
  t.teardown(() => engine.stop());
  await until('the subscription', async () => ((await mqttStatus(engine)).subscribed === true ? true : undefined));
  const from = Date.now() - 60_000;
  const now = Date.now();
  const pub = await publisher(broker, `pub-bad-${process.pid}`);
  t.teardown(() => pub.endAsync());
  const bad: [string, string | Buffer][] = [
    ['devices/bad-1/telemetry', '{"timestamp": 1, "metrics": '], // JSON cut short
    ['devices/bad-1/telemetry', Buffer.from([0xc1, 0x00])], // not msgpack
    ['devices/bad id/telemetry', JSON.stringify({ timestamp: now, cpu: 1 })], // the topic level is no deviceId
    ['devices/bad-2/telemetry', JSON.stringify({ deviceId: 'other', timestamp: now, cpu: 1 })], // names another device
    ['devices/bad-2/telemetry', JSON.stringify([{ timestamp: now, metrics: { cpu: 'high' } }, { timestamp: now, cpu: 8 }])], // half valid
    ['devices/bad-2/telemetry', ''],
  ];
  for (const [topic, payload] of bad) await pub.publishAsync(topic, payload, { qos: 1 });
  const st = await until('6 messages acknowledged', async () => {
    const x = await mqttStatus(engine);
    return x.acked >= 6 ? x : undefined;
  });
  t.match(st, { received: 6, acked: 6, rejected: 5, partial: 1, eventsAccepted: 1, eventsRejected: 2, inFlight: 0 });
  const r = await getJson(`${engine.url}/v1/mqtt/rejected`);
  t.equal(r.status, 200);
  t.equal(r.body.total, 6);
  const list = r.body.messages as { topic: string; deviceId: string | null; code: string; reason: string; time: string; accepted: number }[];
  // listed in the order Sluice decided: a refusal of the topic or payload at once, one of the
  // events after Ingest (the partial message after its commit)
  t.same(list.map((m) => m.code).sort(), [
    'SLUICE_E_BAD_BODY', 'SLUICE_E_BAD_BODY', 'SLUICE_E_BAD_BODY', 'SLUICE_E_BAD_DEVICE_ID', 'SLUICE_E_BAD_METRIC_VALUE', 'SLUICE_E_DEVICE_MISMATCH',
  ], 'each listed with its code');
  const times = list.map((m) => Date.parse(m.time));
  t.ok(times.every((x, i) => i === 0 || x <= times[i - 1]), 'newest first');
  const find = (re: RegExp) => list.find((m) => re.test(m.reason));
  t.match(find(/payload: empty/), { topic: 'devices/bad-2/telemetry', deviceId: 'bad-2', code: 'SLUICE_E_BAD_BODY' });
  t.match(find(/1 event\(s\) refused, 1 kept; first: metrics.cpu/), { deviceId: 'bad-2', accepted: 1, code: 'SLUICE_E_BAD_METRIC_VALUE' });
  t.match(find(/topic: level 2/), { topic: 'devices/bad id/telemetry', deviceId: null, code: 'SLUICE_E_BAD_DEVICE_ID' });
  t.match(find(/payload read as msgpack/), { deviceId: 'bad-1', code: 'SLUICE_E_BAD_BODY' });
  t.match(find(/payload read as json/), { deviceId: 'bad-1', code: 'SLUICE_E_BAD_BODY' });
  t.match(find(/deviceId/), { deviceId: 'bad-2', code: 'SLUICE_E_DEVICE_MISMATCH' });
  t.ok(list.every((m) => !Number.isNaN(Date.parse(m.time))), 'each has its time');
  t.same(await deviceTotals(engine, 'bad-2', from), { count: 1, sum: 8 }, 'the valid event of the partial message was kept');
  t.ok(engine.logs.some((l) => l.includes('MQTT: message refused and acknowledged') && l.includes('SLUICE_E_DEVICE_MISMATCH')), 'logged with the reason');
  t.equal((await getJson(`${engine.url}/healthz`)).status, 200, 'the engine still runs');

  await t.test('a seq refused whole leaves a gap: the next message of the device is admitted over it', async (t) => {
    const ev = (cpu: unknown) => [{ timestamp: now, metrics: { cpu } }];
    await pub.publishAsync('devices/gap-1/telemetry', JSON.stringify({ seq: 1, events: ev(1) }), { qos: 1 });
    await pub.publishAsync('devices/gap-1/telemetry', JSON.stringify({ seq: 2, events: ev('x') }), { qos: 1 });
    await pub.publishAsync('devices/gap-1/telemetry', JSON.stringify({ seq: 3, events: ev(3) }), { qos: 1 });
    await pub.publishAsync('devices/gap-1/telemetry', JSON.stringify({ seq: 3, events: ev(3) }), { qos: 1 });
    const x = await until('4 more acks', async () => {
      const y = await mqttStatus(engine);
      return y.acked >= 10 ? y : undefined;
    });
    t.match(x, { gapsSkipped: 1, duplicates: 1, rejected: 6 });
    t.same(await deviceTotals(engine, 'gap-1', from), { count: 2, sum: 4 }, 'seq 1 and 3, once each');
    t.ok(engine.logs.some((l) => l.includes('skips from seq 2 to 3')), 'the skip is logged');
  });

  // a second run on the same session: the broker has nothing left to redeliver
  t.equal(await engine.stop(), 0, 'graceful stop');
  engine = await startEngine(args, dataDir);
  await until('the subscription', async () => ((await mqttStatus(engine)).subscribed === true ? true : undefined));
  await pub.publishAsync('devices/after-1/telemetry', JSON.stringify({ timestamp: now, cpu: 3 }), { qos: 1 });
  const st2 = await until('the message after the restart', async () => {
    const x = await mqttStatus(engine);
    return x.acked >= 1 ? x : undefined;
  });
  t.match(st2, { received: 1, acked: 1, rejected: 0, sessionPresent: true, redelivered: 0 }, 'no refused message came back');
  t.equal((await getJson(`${engine.url}/v1/mqtt/rejected`)).body.total, 0);
  t.same(await deviceTotals(engine, 'after-1', from), { count: 1, sum: 3 });
});

t.test('a broker that is down: the engine starts, reports it, and connects when it comes up', async (t) => {
  const port = await freePort();
  const broker = new Mosquitto(port);
  t.teardown(() => broker.stop());
  const engine = await startEngine(engineArgs(broker));
  t.teardown(() => engine.stop());
  const down = await mqttStatus(engine);
  t.match(down, { state: /^(connecting|reconnecting)$/, connects: 0, subscribed: false }, 'not connected');
  t.match(down.lastError, { message: /ECONNREFUSED/ }, 'the last error says why');
  t.equal((await getJson(`${engine.url}/healthz`)).body.status, 'ok', 'the engine itself is up');
  await broker.start();
  const up = await until('the connection after the broker came up', async () => {
    const s = await mqttStatus(engine);
    return s.state === 'connected' && s.subscribed ? s : undefined;
  }, 40_000);
  t.ok(up.reconnects >= 1, `reconnected after ${up.reconnects} attempt(s)`);
  const refusedLogs = engine.logs.filter((l) => l.includes('ECONNREFUSED')).length;
  t.equal(refusedLogs, 1, 'the same failure is logged once, not at every attempt');
  const from = Date.now() - 60_000;
  const pub = await publisher(broker, `pub-late-${process.pid}`);
  t.teardown(() => pub.endAsync());
  await pub.publishAsync('devices/late-1/telemetry', JSON.stringify({ timestamp: Date.now(), cpu: 9 }), { qos: 1 });
  await until('the message counted', async () => ((await deviceTotals(engine, 'late-1', from)).count === 1 ? true : undefined));
  t.pass('counted');
});

const DEVICES = 100;
const MESSAGES = 100;
const KILLS = 2;
const KILL_AFTER_ACKS = 2_500;

t.test(`crash: ${DEVICES} devices x ${MESSAGES} QoS 1 messages, the engine SIGKILLed ${KILLS} times mid-stream, each counted exactly once`, async (t) => {
  const t0 = Date.now();
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const args = engineArgs(broker);
  const dataDir = tempDir('sluice-mqtt-crash-');
  let engine = await startEngine(args, dataDir);
  t.teardown(() => engine.stop('SIGKILL'));
  await until('the subscription', async () => ((await mqttStatus(engine)).subscribed === true ? true : undefined));
  const from = Date.now() - 60_000;
  const pub = await publisher(broker, `pub-crash-${process.pid}`);
  t.teardown(() => pub.endAsync());

  // round r sends every device's message r (seq r, one event of cpu = r): per device in seq
  // order, as one device would, all devices interleaved
  let published = 0;
  const publishing = (async () => {
    for (let r = 1; r <= MESSAGES; r++) {
      const round: Promise<unknown>[] = [];
      for (let d = 0; d < DEVICES; d++) {
        const body = { seq: r, events: [{ timestamp: Date.now(), metrics: { cpu: r } }] };
        round.push(pub.publishAsync(`devices/crash-${d}/telemetry`, d % 2 === 0 ? JSON.stringify(body) : pack(body), { qos: 1 }));
      }
      await Promise.all(round);
      published += DEVICES;
    }
  })();

  // SIGKILL twice, each time once a good part was acknowledged by that run
  for (let kill = 1; kill <= KILLS; kill++) {
    const before = await until(`${KILL_AFTER_ACKS} messages acknowledged`, async () => {
      const s = await mqttStatus(engine);
      return s.acked >= KILL_AFTER_ACKS ? s : undefined;
    }, 60_000, 10);
    await engine.stop('SIGKILL');
    t.comment(`kill ${kill} after ${Date.now() - t0} ms: ${before.acked} acked by this run, ${before.inFlight} in flight, ${published} published`);
    engine = await startEngine(args, dataDir);
  }
  // and a graceful stop while messages flow: what was committed is acknowledged, the rest stays with the broker
  await until('messages flowing again', async () => ((await mqttStatus(engine)).acked >= 500 ? true : undefined), 60_000, 10);
  t.equal(await engine.stop('SIGTERM'), 0, 'SIGTERM mid-stream: exit 0');
  t.ok(engine.logs.some((l) => l.includes('MQTT: stopped')), 'the MQTT client was stopped');
  engine = await startEngine(args, dataDir);
  await publishing;
  t.comment(`all ${DEVICES * MESSAGES} published after ${Date.now() - t0} ms`);
  // the broker delivers each device's messages in order: once its end marker is counted, all are
  const ends: Promise<unknown>[] = [];
  for (let d = 0; d < DEVICES; d++) {
    ends.push(pub.publishAsync(`devices/crash-${d}/telemetry`, JSON.stringify({ seq: MESSAGES + 1, events: [{ timestamp: Date.now(), metrics: { end: 1 } }] }), { qos: 1 }));
  }
  await Promise.all(ends);
  await until('every device\'s end marker', async () => {
    const q = await getJson(`${engine.url}/v1/metrics/end?from=${from}&to=${Date.now() + 60_000}&resolution=1d`);
    return q.status === 200 && q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0) >= DEVICES ? true : undefined;
  }, 60_000, 100);
  const total = await fleetCount(engine, from);
  t.equal(total, DEVICES * MESSAGES, 'every message counted once');
  let wrong = 0;
  for (let d = 0; d < DEVICES; d++) {
    const got = await deviceTotals(engine, `crash-${d}`, from);
    if (got.count !== MESSAGES || got.sum !== (MESSAGES * (MESSAGES + 1)) / 2) {
      wrong++;
      if (wrong <= 5) t.fail(`crash-${d}: ${JSON.stringify(got)}, expected ${MESSAGES} events summing to ${(MESSAGES * (MESSAGES + 1)) / 2}`);
    }
  }
  t.equal(wrong, 0, `each device: ${MESSAGES} messages, each once`);
  const after = await mqttStatus(engine);
  t.comment(`after the restart: ${JSON.stringify({ received: after.received, acked: after.acked, duplicates: after.duplicates, redelivered: after.redelivered, gapsSkipped: after.gapsSkipped })}`);
  t.equal(after.gapsSkipped, 0, 'no device sequence had a gap');
  t.equal(after.rejected, 0);
  t.ok(after.redelivered > 0, 'the broker redelivered what was not acknowledged before the kill');
  const ms = Date.now() - t0;
  t.comment(`done in ${ms} ms (${Math.round((DEVICES * MESSAGES * 1000) / ms)} messages/s overall, restarts included)`);
  t.ok(ms < 90_000, `bounded time: ${ms} ms`);
});
