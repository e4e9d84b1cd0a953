import t from 'tap';
import fc from 'fast-check';
import { DeviceNames } from '../../engine/device-names';
import { Dictionary, deviceHash } from '../../engine/dictionary';
import { NAME_CHUNK, namesOf } from '../../storage';

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-';
const deviceId = fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 128 });

t.test('add, lookup, name, joined agree with a Map and an array', async (t) => {
  fc.assert(fc.property(fc.array(deviceId, { maxLength: 3000 }), (raw) => {
    const d = new DeviceNames();
    const byName = new Map<string, number>();
    const byId: string[] = [];
    for (const name of raw) {
      const want = byName.get(name) ?? -1;
      if (d.lookup(name) !== want) return false;
      if (want < 0) {
        const id = d.add(name);
        if (id !== byId.length) return false;
        byName.set(name, id);
        byId.push(name);
      }
    }
    if (d.count !== byId.length) return false;
    for (let id = 0; id < byId.length; id++) {
      if (d.name(id) !== byId[id] || d.lookup(byId[id]) !== id || d.hash(id) !== deviceHash(byId[id])) return false;
    }
    const a = Math.floor(byId.length / 3);
    const b = Math.floor((2 * byId.length) / 3);
    return d.joined(a, b) === byId.slice(a, b).join('\n') && d.joined(0, byId.length) === byId.join('\n');
  }), { numRuns: 60 });
  const d = new DeviceNames();
  d.add('a');
  t.throws(() => d.name(1), RangeError);
  t.throws(() => d.joined(0, 2), RangeError);
  t.equal(d.lookup('b'), -1);
  t.equal(d.lookup(''), -1);
});

t.test('addJoined reads runs as joined() writes them', async (t) => {
  const names = Array.from({ length: 10_000 }, (_, i) => `dev-${i}:${(i * 7919) % 1000}`);
  const a = new DeviceNames();
  for (const n of names) a.add(n);
  const b = new DeviceNames();
  t.equal(b.addJoined(a.joined(0, 4096)), 4096);
  t.equal(b.addJoined(a.joined(4096, 10_000)), 10_000 - 4096);
  t.equal(b.addJoined(''), 0);
  t.equal(b.count, names.length);
  t.same(b.joined(0, b.count), names.join('\n'));
  t.ok(names.every((n, id) => b.lookup(n) === id), 'every name under its id');
  t.ok(a.bytes < names.length * 40, `${(a.bytes / names.length).toFixed(1)} B a name`);
});

t.test('Dictionary.restore: chunks, runs beside them, holes; shards as first placed', async (t) => {
  const shards = 3;
  const live = new Dictionary(shards, 1e9);
  const n = 2 * NAME_CHUNK + 50;
  for (let i = 0; i < n; i++) live.device(`r-${i}`);
  const names = namesOf(Array.from({ length: n }, (_, i) => live.deviceName(i)));
  const runs = [
    { first: NAME_CHUNK, text: names.joined(NAME_CHUNK, 2 * NAME_CHUNK), chunk: true },
    { first: 0, text: names.joined(0, NAME_CHUNK), chunk: true },
    // a crash left this run beside its chunk: same ids, the chunk wins
    { first: 10, text: names.joined(10, 30), chunk: false },
    // past the chunks: a run, then a hole of two ids (their names were lost), then a run
    { first: 2 * NAME_CHUNK, text: names.joined(2 * NAME_CHUNK, 2 * NAME_CHUNK + 20), chunk: false },
    { first: 2 * NAME_CHUNK + 22, text: names.joined(2 * NAME_CHUNK + 22, n), chunk: false },
  ];
  const back = new Dictionary(shards, 1e9);
  const missing = back.restore(runs, [{ id: 1, name: 'mem' }, { id: 0, name: 'cpu' }]);
  t.same(missing, [2 * NAME_CHUNK + 20, 2 * NAME_CHUNK + 21]);
  t.equal(back.deviceCount, n);
  const wrong: number[] = [];
  for (let id = 0; id < n; id++) {
    const want = missing.includes(id) ? `unknown-device-${id}` : live.deviceName(id);
    if (back.deviceName(id) !== want || back.lookupDevice(want) !== id || back.shardOf(id) !== deviceHash(want) % shards) wrong.push(id);
  }
  t.same(wrong, [], 'every id: its name, its lookup and its shard');
  t.same(back.metricNames, ['cpu', 'mem']);
  t.equal(back.device('r-5'), 5, 'a restored name is found, not interned again');
  t.equal(back.device('new-one'), n, 'a new device continues the ids');
});
