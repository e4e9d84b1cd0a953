/**
 * engine/name-cache.ts: byte ranges find the id cached for the same bytes, never another's, however
 * many names share a hash bucket or the table grows (random names against a Map as reference).
 */

import t from 'tap';
import fc from 'fast-check';
import { NameCache } from '../../engine/name-cache';
import { nameHash, DEVICE_NAME } from '../../protocol';
import { assertProperty } from '../helpers/property';

function bytesOf(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

t.test('lookups agree with a Map of the names, across growth and collisions', async (t) => {
  assertProperty(fc.property(fc.array(fc.stringMatching(/^[a-z0-9.:-]{1,12}$/), { maxLength: 3000 }), fc.boolean(), (names, constantHash) => {
    const cache = new NameCache();
    const ref = new Map<string, number>();
    for (const n of names) {
      // a frame holds names at any offset: put each one behind some other bytes
      const b = bytesOf(`xx${n}yy`);
      // constantHash: every name in one bucket chain (the worst case of the probe)
      const h = constantHash ? 7 : nameHash(b, 2, n.length, DEVICE_NAME);
      const got = cache.lookup(b, 2, n.length, h);
      const want = ref.get(n) ?? -1;
      if (got !== want) throw new Error(`${n}: cache ${got}, reference ${want}`);
      if (got < 0) {
        ref.set(n, ref.size);
        cache.insert(b, 2, n.length, h, ref.size - 1);
      }
    }
    return cache.size === ref.size;
  }), 200);
  t.pass('agrees');
});

t.test('a name is found whatever buffer and offset it is read from', async (t) => {
  const cache = new NameCache();
  const a = bytesOf('....dev-1');
  cache.insert(a, 4, 5, nameHash(a, 4, 5, DEVICE_NAME), 42);
  const b = bytesOf('dev-1,dev-2');
  t.equal(cache.lookup(b, 0, 5, nameHash(b, 0, 5, DEVICE_NAME)), 42);
  t.equal(cache.lookup(b, 6, 5, nameHash(b, 6, 5, DEVICE_NAME)), -1);
  // the source buffer may be reused (uWS neuters it): the cache kept its own copy
  a.fill(0);
  t.equal(cache.lookup(b, 0, 5, nameHash(b, 0, 5, DEVICE_NAME)), 42);
});
