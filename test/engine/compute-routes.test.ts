import t from 'tap';
import { startEngine, post } from '../helpers/engine';
import fc from 'fast-check';
import { planCompute, ComputeRefusal } from '../../engine/compute-routes';
import { anyTimestamp, assertProperty, isSluiceCode } from '../helpers/property';

// The seed's three example requests, byte for byte (tabs, and the trailing comma its README has)
const SEED_REQUEST = `{
\t"temperature" : ["count", "min"],
\t"humidity" : ["average", "max"],
\t"from": "2020-01-13 15:12:00",
\t"to": "2020-01-13 15:13:00",
}`;
const SEED_REQUEST_WITH_ERRORS = `{
\t"temperature" : ["count", "min", "wrongMetric"],
\t"humidity" : ["average", "max"],
\t"from": "2020-01-13 15:12:00",
\t"to": "2020-01-13 15:13:00",
\t"wrongKey": 1
}`;
const SEED_REQUEST_NOTHING_VALID = `{
\t"wrong" : ["wrongMetric"],
\t"from": "2020-01-13 15:12:00",
\t"to": "2020-01-13 15:13:00",
\t"wrongKey": 1
}`;
// and the seed's answers
const SEED_RESULT = { temperature: { count: 61, min: 2 }, humidity: { average: 48.557377049180324, max: 98 } };
const SEED_ERRORS = ['Unexpected metric wrongMetric to compute for the sensor temperature', 'Unexpected key wrongKey in the request body'];

const FROM = Date.UTC(2020, 0, 13, 15, 12, 0);
const TO = Date.UTC(2020, 0, 13, 15, 13, 0);

/**
 * The seed's sensors stream one reading per second, before, during and after the range. In
 * [FROM, TO] (61 readings) temperature has min 2, humidity sums to 2962 (average 2962 / 61 =
 * 48.557377049180324) with max 98; outside it temperature reads 0 and humidity 100, so a reading
 * counted from outside the range shows. Temperature comes from two devices (even and odd
 * seconds): a sensor is merged over every device.
 */
function readings(): object[] {
  const humidity: number[] = [];
  for (let i = 0; i < 61; i++) humidity.push(i === 30 ? 98 : 21 + ((i * 13) % 56));
  const rest = 2962 - humidity.reduce((a, b) => a + b, 0) + humidity[60];
  if (rest < 0 || rest > 97) throw new Error(`cannot make the humidity sum: ${rest}`);
  humidity[60] = rest;
  const events: object[] = [];
  for (let ts = FROM - 30_000; ts <= TO + 30_000; ts += 1000) {
    const inside = ts >= FROM && ts <= TO;
    const i = (ts - FROM) / 1000;
    events.push({ deviceId: i % 2 === 0 ? 'thermo-a' : 'thermo-b', timestamp: new Date(ts).toISOString(), temperature: inside ? 2 + ((i * 11) % 30) : 0 });
    events.push({ deviceId: 'hygro-1', timestamp: ts, humidity: inside ? humidity[i] : 100 });
  }
  events.push({ deviceId: 'baro-1', timestamp: FROM - 3_600_000, pressure: 1013 }); // a sensor with no reading in the range
  return events;
}

async function compute(url: string, body: string, contentType = 'application/json'): Promise<{ status: number; text: string; body: any }> {
  const r = await fetch(`${url}/compute/metrics`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
  const text = await r.text();
  return { status: r.status, text, body: JSON.parse(text) };
}

t.test('POST /compute/metrics over the real server', async (t) => {
  const engine = await startEngine(['--shards', '2', '--body-max', '4KiB']);
  t.teardown(() => engine.stop());
  const all = readings();
  for (let i = 0; i < all.length; i += 20) {
    // small batches: --body-max is 4 KiB here
    const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(all.slice(i, i + 20)));
    if (r.status !== 204) t.fail(`readings ${i}..: ${r.status} ${JSON.stringify(r.body)}`);
  }

  t.test('the seed example: 61 readings at one per second, from and to both included', async (t) => {
    const r = await compute(engine.url, SEED_REQUEST);
    t.equal(r.status, 200);
    t.same(r.body, { result: SEED_RESULT, errors: [] });
    t.equal(r.text, JSON.stringify({ result: SEED_RESULT, errors: [] }), 'the seed\'s answer');
  });

  t.test('the seed example with a wrong metric and a wrong key: the valid parts computed, the others in errors', async (t) => {
    const r = await compute(engine.url, SEED_REQUEST_WITH_ERRORS);
    t.equal(r.status, 200);
    t.same(r.body.errors, SEED_ERRORS, 'the seed\'s messages, in body order');
    t.same(Object.keys(r.body.result), ['temperature', 'humidity']);
    t.same(r.body.result, SEED_RESULT);
  });

  t.test('the seed example with nothing valid: 400 and an empty result', async (t) => {
    const r = await compute(engine.url, SEED_REQUEST_NOTHING_VALID);
    t.equal(r.status, 400);
    t.same(r.body, {
      result: {},
      errors: ['Unexpected key wrong in the request body', 'Unexpected key wrongKey in the request body'],
      code: 'SLUICE_E_NOTHING_TO_COMPUTE',
    });
  });

  t.test('a range on pane boundaries: every metric, mean = average, fleet-merged', async (t) => {
    // [15:12:00, 15:12:59]: 60 readings
    const r = await compute(engine.url, JSON.stringify({ temperature: ['count', 'min', 'max', 'average', 'mean'], from: '2020-01-13 15:12:00', to: '2020-01-13 15:12:59' }));
    t.equal(r.status, 200);
    const temps = Array.from({ length: 60 }, (_, i) => 2 + ((i * 11) % 30));
    const avg = temps.reduce((a, b) => a + b, 0) / 60;
    t.same(r.body, { result: { temperature: { count: 60, min: 2, max: Math.max(...temps), average: avg, mean: avg } }, errors: [] });
  });

  t.test('a sensor without readings in the range: count 0, the others null; any Content-Type; ISO-8601 accepted', async (t) => {
    const r = await compute(engine.url, JSON.stringify({ pressure: ['count', 'min', 'max', 'average'], from: '2020-01-13T15:12:00Z', to: '2020-01-13T15:13:00Z' }), 'text/plain');
    t.equal(r.status, 200);
    t.same(r.body, { result: { pressure: { count: 0, min: null, max: null, average: null } }, errors: [] });
  });

  t.test('invalid requests: 400 with the seed\'s messages and an empty result', async (t) => {
    const cases: [string, string, string[]][] = [
      ['{"temperature": ["count"], "from": ', 'SLUICE_E_BAD_BODY', ['body must be valid non empty json']],
      ['{}', 'SLUICE_E_BAD_BODY', ['body must be valid non empty json']],
      ['[1, 2]', 'SLUICE_E_BAD_BODY', ['body must be valid non empty json']],
      ['', 'SLUICE_E_BAD_BODY', ['body must be valid non empty json']],
      ['{"temperature": ["count"], "from": "2020-01-13 15:12:00"}', 'SLUICE_E_BAD_PARAM', ['Keys "from" and "to" are required']],
      ['{"temperature": ["count"], "from": "13/01/2020 15:12", "to": "2020-01-13 15:13:00"}', 'SLUICE_E_BAD_PARAM', ['Incorrect input timestamp format, should be YYYY-MM-DD hh:mm:ss']],
      ['{"temperature": ["count"], "from": "2020-01-13 15:14:00", "to": "2020-01-13 15:13:00"}', 'SLUICE_E_BAD_PARAM', ['"from" has to be earlier than "to"']],
      ['{"from": "2020-01-13 15:12:00", "to": "2020-01-13 15:13:00"}', 'SLUICE_E_NOTHING_TO_COMPUTE', ['Nothing to compute: name a sensor with a list of metrics (count, average, mean, max, min)']],
      ['{"temperature": "count", "from": "2020-01-13 15:12:00", "to": "2020-01-13 15:13:00"}', 'SLUICE_E_NOTHING_TO_COMPUTE', ['Unexpected value count for the sensor temperature: a list of metrics to compute (count, average, mean, max, min) is expected']],
      ['{"temperature": ["median"], "from": "2020-01-13 15:12:00", "to": "2020-01-13 15:13:00"}', 'SLUICE_E_NOTHING_TO_COMPUTE', ['Unexpected metric median to compute for the sensor temperature']],
    ];
    for (const [body, code, errors] of cases) {
      const r = await compute(engine.url, body);
      t.equal(r.status, 400, body);
      t.same(r.body, { result: {}, errors, code }, body);
    }
  });

  t.test('413 over --body-max', async (t) => {
    const r = await compute(engine.url, JSON.stringify({ temperature: ['count'], from: '2020-01-13 15:12:00', to: '2020-01-13 15:13:00', pad: 'x'.repeat(5000) }));
    t.equal(r.status, 413);
    t.equal(r.body.code, 'SLUICE_E_BODY_TOO_LARGE');
  });
});

t.test('property: planCompute is total over bodies: a plan or a refusal with a code', async () => {
  const body = fc.oneof(
    fc.string(),
    fc.record({ from: anyTimestamp, to: anyTimestamp, temperature: fc.anything(), humidity: fc.array(fc.string()) }, { requiredKeys: [] })
      .map((b) => JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) ?? ''),
  );
  assertProperty(fc.property(body, (text) => {
    const plan = planCompute(text, (name) => name === 'temperature' || name === 'humidity');
    if (plan instanceof ComputeRefusal) return isSluiceCode(plan.code) && plan.errors.length > 0;
    return Number.isFinite(plan.from) && Number.isFinite(plan.toExclusive) && plan.from < plan.toExclusive;
  }));
});
