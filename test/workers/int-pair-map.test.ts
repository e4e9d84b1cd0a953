import t from 'tap';
import { rng } from '../helpers/rng';
import { IntPairMap } from '../../workers/int-pair-map';

/** mulberry32: small seeded PRNG so a failing run can be replayed with SLUICE_SEED */

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);

t.test('matches a JS Map under random set/get/delete (property test)', (t) => {
  t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);
  const rand = rng(seed);
  const deadline = Date.now() + 2000;
  let rounds = 0;
  while (Date.now() < deadline && rounds < 40) {
    rounds++;
    const map = new IntPairMap(rand() < 0.5 ? 1 : 64);
    const ref = new Map<string, number>();
    // Small key ranges force collisions, updates and deletes of present keys; b sometimes beyond 2^32.
    const aRange = 1 + Math.floor(rand() * 200);
    const bRange = 1 + Math.floor(rand() * 200);
    const bBase = rand() < 0.3 ? 2 ** 40 + Math.floor(rand() * 1e6) : Math.floor(rand() * 1e6);
    const ops = 5000;
    for (let k = 0; k < ops; k++) {
      const a = Math.floor(rand() * aRange);
      const b = bBase + Math.floor(rand() * bRange);
      const key = `${a},${b}`;
      const r = rand();
      if (r < 0.5) {
        const v = Math.floor(rand() * 0x7ffffff0);
        map.set(a, b, v);
        ref.set(key, v);
      } else if (r < 0.7) {
        const had = ref.delete(key);
        if (map.delete(a, b) !== had) {
          t.fail(`delete(${a},${b}) disagrees (seed=${seed}, round=${rounds}, op=${k})`);
          return t.end();
        }
      } else {
        const expected = ref.get(key) ?? -1;
        if (map.get(a, b) !== expected) {
          t.fail(`get(${a},${b}) = ${map.get(a, b)}, expected ${expected} (seed=${seed}, round=${rounds}, op=${k})`);
          return t.end();
        }
      }
      if (map.size !== ref.size) {
        t.fail(`size ${map.size} != ${ref.size} (seed=${seed}, round=${rounds}, op=${k})`);
        return t.end();
      }
    }
    // Full sweep: every reference key is found, and forEach yields exactly the reference entries.
    for (const [key, v] of ref) {
      const [a, b] = key.split(',').map(Number) as [number, number];
      if (map.get(a, b) !== v) {
        t.fail(`final get(${key}) = ${map.get(a, b)}, expected ${v} (seed=${seed}, round=${rounds})`);
        return t.end();
      }
    }
    let seen = 0;
    map.forEach((a, b, v) => {
      seen++;
      if (ref.get(`${a},${b}`) !== v) t.fail(`forEach yielded (${a},${b})=${v} not in reference (seed=${seed})`);
    });
    if (seen !== ref.size) {
      t.fail(`forEach yielded ${seen} entries, expected ${ref.size} (seed=${seed})`);
      return t.end();
    }
  }
  t.pass(`${rounds} rounds agreed with the reference map`);
  t.end();
});

t.test('grows at load 1/2 and keeps all entries', (t) => {
  const map = new IntPairMap(16);
  for (let i = 0; i < 8; i++) map.set(i, i * 7, i);
  t.equal(map.capacity, 16, '8 entries fit in 16 slots');
  map.set(100, 1, 100);
  t.equal(map.capacity, 32, 'the 9th entry doubles the table');
  for (let i = 0; i < 8; i++) t.equal(map.get(i, i * 7), i);
  t.equal(map.get(100, 1), 100);
  t.equal(map.size, 9);
  t.end();
});

t.test('absent keys answer -1; keys differing only in the high bits of b are distinct', (t) => {
  const map = new IntPairMap();
  t.equal(map.get(0, 0), -1);
  map.set(3, 5, 1);
  map.set(3, 5 + 2 ** 32, 2);
  map.set(3, 5 + 2 ** 33, 3);
  t.equal(map.get(3, 5), 1);
  t.equal(map.get(3, 5 + 2 ** 32), 2);
  t.equal(map.get(3, 5 + 2 ** 33), 3);
  t.equal(map.get(3, 6), -1);
  t.equal(map.get(4, 5), -1);
  t.end();
});

t.test('rejects keys and values it cannot represent', (t) => {
  const map = new IntPairMap();
  t.throws(() => map.set(-1, 0, 1));
  t.throws(() => map.set(2 ** 31, 0, 1));
  t.throws(() => map.set(0, -1, 1));
  t.throws(() => map.set(0, 1.5, 1));
  t.throws(() => map.set(0, 2 ** 53, 1));
  t.throws(() => map.set(0, 0, -1));
  t.throws(() => map.set(0, 0, 2 ** 31));
  t.equal(map.size, 0);
  t.end();
});

t.test('reserve(n): room for n entries at once, no growth while they are set, entries kept', async (t) => {
  const m = new IntPairMap(16);
  for (let i = 0; i < 10; i++) m.set(i, 1, i);
  m.reserve(100_000);
  const capacity = m.capacity;
  t.ok(capacity >= 200_000, `capacity ${capacity} holds 100k at most half full`);
  for (let i = 10; i < 100_000; i++) m.set(i, 1, i);
  t.equal(m.capacity, capacity, 'no growth');
  let wrong = 0;
  for (let i = 0; i < 100_000; i++) if (m.get(i, 1) !== i) wrong++;
  t.equal(wrong, 0, 'every entry found');
  m.reserve(10);
  t.equal(m.capacity, capacity, 'never shrinks');
});
