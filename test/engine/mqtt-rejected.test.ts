import t from 'tap';
import { RejectedRing, EVENT_REJECTIONS_KEPT_MAX } from '../../engine/mqtt-rejected';

t.test('RejectedRing keeps the last N, newest first, and counts them all', async (t) => {
  const r = new RejectedRing(3);
  t.same(r.newestFirst(), []);
  for (let i = 1; i <= 5; i++) r.add(`devices/d${i}/telemetry`, `d${i}`, 'SLUICE_E_BAD_BODY', `reason ${i}`);
  t.equal(r.total, 5);
  t.same(r.newestFirst().map((x) => x.deviceId), ['d5', 'd4', 'd3']);
  const x = r.newestFirst()[0];
  t.match(x, { topic: 'devices/d5/telemetry', code: 'SLUICE_E_BAD_BODY', reason: 'reason 5', accepted: 0, events: [], eventsRejected: 0 });
  t.ok(!Number.isNaN(Date.parse(x.time)));
});

t.test('a partial message keeps its first refused events, and long texts are cut', async (t) => {
  const r = new RejectedRing(2);
  const events = Array.from({ length: 25 }, (_, i) => ({ index: i, code: 'SLUICE_E_BAD_METRIC_VALUE' as const, reason: `metrics.cpu: bad ${i}` }));
  r.add('t/'.repeat(500), null, 'SLUICE_E_BAD_METRIC_VALUE', 'r'.repeat(2000), 3, events);
  const x = r.newestFirst()[0];
  t.equal(x.events.length, EVENT_REJECTIONS_KEPT_MAX);
  t.equal(x.eventsRejected, 25);
  t.equal(x.accepted, 3);
  t.ok(x.topic.length < 300 && x.reason.length < 600, 'cut');
});
