import t from 'tap';
import { rng } from '../helpers/rng';
import { countBits, hasBit, orInto, setBit } from '../../storage/device-bits';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

t.test('bitmaps of device ids agree with sets: set, has, or, count (growing as ids grow)', (t) => {
  const rand = rng(seed);
  const sets: Set<number>[] = [];
  const maps: Uint8Array[] = [];
  for (let k = 0; k < 4; k++) {
    const s = new Set<number>();
    let b: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < 500; i++) {
      const id = Math.floor(rand() * (k === 3 ? 200_000 : 3000));
      s.add(id);
      b = setBit(b, id);
    }
    sets.push(s);
    maps.push(b);
  }
  let union: Uint8Array = new Uint8Array(0);
  const all = new Set<number>();
  for (let k = 0; k < 4; k++) {
    t.equal(countBits(maps[k]!), sets[k]!.size, `map ${k}: count`);
    union = orInto(union, maps[k]!);
    for (const id of sets[k]!) all.add(id);
  }
  t.equal(countBits(union), all.size, 'the union counts each id once');
  let agree = true;
  for (let id = 0; id < 200_000; id++) if (hasBit(union, id) !== all.has(id)) agree = false;
  t.ok(agree, 'has() agrees with the union set for every id');
  t.notOk(hasBit(new Uint8Array(0), 5), 'an empty map holds nothing');
  t.end();
});
