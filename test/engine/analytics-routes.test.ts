import t from 'tap';
import { startEngine, getJson, post, type EngineProcess } from '../helpers/engine';
import { rng } from '../helpers/rng';
import fc from 'fast-check';
import { analyticsEvent } from '../../engine/analytics-routes';
import { anyTimestamp, assertProperty, valueOrSluiceError } from '../helpers/property';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const HOUR = 3_600_000;

interface Click { timestamp: number; user: string; event: 'click' | 'impression' }
interface HourFigures { unique_users: number; clicks: number; impressions: number }

function expected(events: Click[], hourStart: number): HourFigures {
  const inHour = events.filter((e) => e.timestamp >= hourStart && e.timestamp < hourStart + HOUR);
  return {
    unique_users: new Set(inHour.map((e) => e.user)).size,
    clicks: inHour.filter((e) => e.event === 'click').length,
    impressions: inHour.filter((e) => e.event === 'impression').length,
  };
}

/** the seed's request: POST /analytics?timestamp={millis}&user={user_id}&event={click|impression}, no body */
async function record(url: string, e: Click): Promise<Response> {
  return fetch(`${url}/analytics?timestamp=${e.timestamp}&user=${e.user}&event=${e.event}`, { method: 'POST' });
}

async function hour(url: string, timestamp: number): Promise<{ status: number; body: HourFigures }> {
  return getJson(`${url}/analytics?timestamp=${timestamp}`);
}

t.test('/analytics over the real server: exact hourly figures, past hours from rollups, across restarts', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  let engine: EngineProcess = await startEngine(['--shards', '2']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());
  const rand = rng(seed);
  const now = Date.now();
  const current = Math.floor(now / HOUR) * HOUR;
  const past = current - 3 * HOUR;
  // 150 users over the hour before `past`, `past` itself and the hour after: some only click,
  // some only see impressions, most do both; sent in event-time order (within the lateness)
  const events: Click[] = [];
  for (let i = 0; i < 600; i++) {
    const user = `u-${String(Math.floor(rand() * 150)).padStart(3, '0')}`;
    const kind = Number(user.slice(2)) % 5;
    const event = kind === 0 ? 'click' : kind === 1 ? 'impression' : rand() < 0.3 ? 'click' : 'impression';
    events.push({ timestamp: past - HOUR + Math.floor(rand() * 3 * HOUR), user, event });
  }
  // the hour's first and last millisecond
  events.push({ timestamp: past, user: 'edge-first', event: 'click' }, { timestamp: past + HOUR - 1, user: 'edge-last', event: 'impression' });
  events.sort((a, b) => a.timestamp - b.timestamp);

  t.test('the seed requests: POST answers 204 with an empty body', async (t) => {
    for (let i = 0; i < events.length; i += 8) {
      const answers = await Promise.all(events.slice(i, i + 8).map((e) => record(engine.url, e)));
      for (const r of answers) {
        if (r.status !== 204 || (await r.text()) !== '') {
          t.fail(`POST answered ${r.status}`);
          return;
        }
      }
    }
    t.pass(`${events.length} events recorded`);
  });

  const want = expected(events, past);
  t.ok(want.unique_users > 0 && want.unique_users < want.clicks + want.impressions, 'users both click and see impressions');

  t.test('GET: the UTC hour of the timestamp, unique users exact across clicks and impressions', async (t) => {
    for (const ts of [past, past + 1, past + HOUR / 2, past + HOUR - 1]) {
      const r = await hour(engine.url, ts);
      t.equal(r.status, 200);
      t.same(r.body, want, `timestamp ${ts - past} ms into the hour`);
    }
    t.same((await hour(engine.url, past - HOUR)).body, expected(events, past - HOUR), 'the hour before');
    t.same((await hour(engine.url, past + HOUR)).body, expected(events, past + HOUR), 'the hour after');
    t.same((await hour(engine.url, past - 10 * HOUR)).body, { unique_users: 0, clicks: 0, impressions: 0 }, 'an hour without events');
    const raw = await fetch(`${engine.url}/analytics?timestamp=${past}`);
    t.equal(raw.headers.get('content-type'), 'application/json');
    t.equal(await raw.text(), JSON.stringify({ unique_users: want.unique_users, clicks: want.clicks, impressions: want.impressions }), 'exactly the seed\'s three fields');
  });

  // the current hour: the events above close the past hours into rollups (event time moves on)
  const live: Click[] = [
    { timestamp: now - 2000, user: 'alice', event: 'click' },
    { timestamp: now - 1000, user: 'alice', event: 'impression' },
    { timestamp: now - 1000, user: 'bob', event: 'impression' },
    { timestamp: now, user: 'carol', event: 'click' },
    { timestamp: now, user: 'carol', event: 'click' },
  ];
  const wantLive = expected(live.filter((e) => e.timestamp >= current), current);

  t.test('a past hour answers from the rollups once closed', async (t) => {
    for (const e of live) t.equal((await record(engine.url, e)).status, 204);
    const h = await getJson(`${engine.url}/healthz`);
    for (const s of h.body.shards) t.ok(s.watermark === null || s.watermark > past + HOUR, `shard ${s.shard}: the watermark passed the hour`);
    t.same((await hour(engine.url, past)).body, want);
    // the hour is final: another event for it, within the late horizon (1 d), is a correction:
    // counted in the hour, and listed by /v1/late as a correction
    t.equal((await record(engine.url, { timestamp: past + 5, user: 'latecomer', event: 'click' })).status, 204);
    const late = await getJson(`${engine.url}/v1/late?deviceId=latecomer`);
    t.same([late.body.total, late.body.corrections, late.body.events[0]?.correction], [0, 1, true], 'a correction of the final hour');
    want.clicks++;
    want.unique_users++;
    t.same((await hour(engine.url, past)).body, want, 'the hour with its correction');
    t.same((await hour(engine.url, now)).body, expected(live, current), 'the current hour');
  });

  t.test('the same figures after a graceful restart and after kill -9', async (t) => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await engine.stop(signal);
      engine = await startEngine(['--shards', '2'], engine.dataDir);
      t.same((await hour(engine.url, past)).body, want, `past hour after ${signal}`);
      t.same((await hour(engine.url, past + HOUR)).body, expected(events, past + HOUR), `next hour after ${signal}`);
      t.same((await hour(engine.url, now)).body, wantLive, `current hour after ${signal}`);
    }
  });

  t.test('invalid input: 400 naming the parameter; nothing accepted is lost', async (t) => {
    const ts = Date.now();
    const cases: [string, string, RegExp][] = [
      [`user=alice&event=click`, 'POST', /^timestamp: missing/],
      [`timestamp=soon&user=alice&event=click`, 'POST', /^timestamp: "soon" is neither/],
      [`timestamp=${ts}&event=click`, 'POST', /^user: missing/],
      [`timestamp=${ts}&user=al%20ice&event=click`, 'POST', /^user: "al ice" must be 1-128 characters/],
      [`timestamp=${ts}&user=alice`, 'POST', /^event: missing/],
      [`timestamp=${ts}&user=alice&event=hover`, 'POST', /^event: "hover" is not one of click, impression/],
      [`timestamp=${ts + 3_600_000}&user=alice&event=click`, 'POST', /^timestamp: .* in the future/],
      [``, 'GET', /^timestamp: missing/],
      [`timestamp=yesterday`, 'GET', /^timestamp: "yesterday" is neither/],
      [`timestamp=${Math.floor(ts / 1000)}`, 'GET', /^timestamp: \d+ is before 1973 .*looks like epoch seconds/],
      [`timestamp=${Math.floor(ts / 1000)}&user=alice&event=click`, 'POST', /^timestamp: \d+ is before 1973 .*looks like epoch seconds/],
    ];
    for (const [query, method, re] of cases) {
      const r = await fetch(`${engine.url}/analytics?${query}`, { method });
      const body = await r.json() as { error: string; code: string };
      t.equal(r.status, 400, `${method} ${query}`);
      t.match(body.error, re, `${method} ${query}`);
      t.ok(body.code.startsWith('SLUICE_E_'), body.code);
    }
    t.same((await hour(engine.url, past)).body, want);
    t.same((await hour(engine.url, now)).body, wantLive);
    const inSeconds = await getJson(`${engine.url}/analytics?timestamp=${Math.floor(past / 1000)}&precision=s`);
    t.same(inSeconds.body, want, 'GET with ?precision=s reads the same hour');
  });

  t.test('500 when the event cannot be kept (WAL fault): nothing counted', async (t) => {
    await engine.stop();
    process.env.SLUICE_DEBUG_ROUTES = '1';
    engine = await startEngine(['--shards', '2'], engine.dataDir);
    delete process.env.SLUICE_DEBUG_ROUTES;
    t.equal((await post(`${engine.url}/v1/debug/fail-wal?n=1`, 'application/json', '')).status, 200);
    const r = await record(engine.url, { timestamp: Date.now(), user: 'dave', event: 'click' });
    t.equal(r.status, 500);
    t.equal(((await r.json()) as { code: string }).code, 'SLUICE_E_STORAGE_FAULT');
    t.equal(r.headers.get('retry-after'), '1');
    t.same((await hour(engine.url, now)).body, wantLive);
  });
});

t.test('property: the POST parameters give an event or a SLUICE_E_BAD_PARAM naming the parameter', async () => {
  const text = fc.oneof(fc.constant(null), fc.string(), anyTimestamp.map((v) => String(v)));
  assertProperty(fc.property(text, text, text, (timestamp, user, event) => {
    const q = new URLSearchParams();
    if (timestamp !== null) q.set('timestamp', timestamp);
    if (user !== null) q.set('user', user);
    if (event !== null) q.set('event', event);
    const v = valueOrSluiceError(() => analyticsEvent(q));
    if (typeof v === 'string') return typeof JSON.parse(v) === 'object';
    return /^(timestamp|user|event): /.test(v.message);
  }));
});
