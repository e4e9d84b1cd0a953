import t from 'tap';
import { pack } from 'msgpackr';
import { TopicDevice, isFault, payloadKind } from '../../engine/mqtt-message';

t.test('TopicDevice: the + level is the deviceId', async (t) => {
  const td = new TopicDevice('devices/+/telemetry');
  t.equal(td.deviceOf('devices/dev-1/telemetry'), 'dev-1');
  t.equal(td.deviceOf('devices/a.b:c_d-9/telemetry'), 'a.b:c_d-9');
  t.equal(new TopicDevice('+').deviceOf('gw-3'), 'gw-3', 'a filter that is only +');
  t.equal(new TopicDevice('site/7/+').deviceOf('site/7/pump-2'), 'pump-2', '+ last');
  const cases: [string, RegExp][] = [
    ['devices//telemetry', /level 2 \(the deviceId\) must be 1-128 characters.*got ""/],
    ['devices/bad id/telemetry', /got "bad id"/],
    [`devices/${'x'.repeat(129)}/telemetry`, /level 2/],
    ['devices/dev-1/status', /does not match --mqtt-topic devices\/\+\/telemetry/],
    ['devices/dev-1/telemetry/extra', /does not match/],
    ['other/dev-1/telemetry', /does not match/],
  ];
  for (const [topic, reason] of cases) {
    const r = td.deviceOf(topic);
    t.ok(isFault(r), `${topic}: refused`);
    if (isFault(r)) {
      t.equal(r.code, 'SLUICE_E_BAD_DEVICE_ID');
      t.match(r.reason, reason);
      t.match(r.reason, /^topic: /, 'the reason names the field');
    }
  }
  const long = td.deviceOf(`x/${'y'.repeat(5000)}`);
  t.ok(isFault(long) && long.reason.length < 400, 'a long topic is cut in the reason');
  t.throws(() => new TopicDevice('devices/telemetry'), /exactly one \+ level/);
});

t.test('payloadKind: JSON when it starts with { or [ after whitespace, else msgpack', async (t) => {
  const b = (s: string) => Buffer.from(s);
  t.equal(payloadKind(b('{"cpu":1}'), 100), 'json');
  t.equal(payloadKind(b(' \r\n\t[1]'), 100), 'json');
  t.equal(payloadKind(pack({ cpu: 1 }), 100), 'msgpack', 'a msgpack map (0x8N)');
  t.equal(payloadKind(pack([{ cpu: 1 }]), 100), 'msgpack', 'a msgpack array (0x9N)');
  t.equal(payloadKind(b('cpu=1'), 100), 'msgpack', 'neither: the msgpack decoder words the refusal');
  t.match(payloadKind(new Uint8Array(0), 100), { code: 'SLUICE_E_BAD_BODY', reason: /^payload: empty/ });
  t.match(payloadKind(b('  \n '), 100), { code: 'SLUICE_E_BAD_BODY', reason: /only whitespace/ });
  t.match(payloadKind(b('{"a":12345}'), 5), { code: 'SLUICE_E_BODY_TOO_LARGE', reason: 'payload: 11 bytes, more than the 5 of --body-max' });
  // total: every byte string maps to a kind or a fault, none throws
  let odd = 0;
  for (let i = 0; i < 2000; i++) {
    const bytes = new Uint8Array(i % 7).map((_, j) => (i * 7919 + j * 104729) & 0xff);
    const k = payloadKind(bytes, 4);
    if (!(k === 'json' || k === 'msgpack' || isFault(k))) odd++;
  }
  t.equal(odd, 0, '2000 byte strings: each a kind or a fault');
});
