import t from 'tap';
import { rng } from '../helpers/rng';
import { NameLog } from '../../workers/name-log';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

t.test('names by id and ids by name, against a Map, through the table doubling many times', async (t) => {
  const rand = rng(seed);
  const log = new NameLog();
  const byName = new Map<string, number>();
  const byId = new Map<number, string>();
  // sparse ids (a shard holds 1/shards of them), names of every length and alphabet
  const alphabet = ['a', 'Z', '-', '0', '9', 'é', '温', '🌡'];
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const id = 3 * i + Math.floor(rand() * 3);
    let name = `dev-${i}`;
    // a suffix after '/' (never in the base names): dev-1178 + '0' must not make dev-11780 twice
    if (rand() < 0.05) {
      name += '/';
      for (let k = Math.floor(rand() * 40); k > 0; k--) name += alphabet[Math.floor(rand() * alphabet.length)];
    }
    if (!log.define(id, name)) refused++;
    byName.set(name, id);
    byId.set(id, name);
  }
  t.equal(refused, 0, 'every new binding taken');
  let wrong = 0;
  for (const [name, id] of byName) if (log.idOf(name) !== id || log.nameOf(id) !== name) wrong++;
  t.equal(wrong, 0, 'every name and id found again');
  t.equal(log.n, byName.size);
  t.equal(log.idOf('dev-20000'), -1, 'an unknown name');
  t.equal(log.idOf(''), -1, 'the empty name');
  t.equal(log.nameOf(1e6), undefined, 'an unknown id past the table');
  t.equal(log.nameOf(-1), undefined);
  const bits = log.idBits();
  let set = 0;
  for (let id = 0; id < bits.length * 8; id++) {
    const on = (bits[id >>> 3]! & (1 << (id & 7))) !== 0;
    if (on) set++;
    if (on !== byId.has(id)) t.fail(`bit ${id}`);
  }
  t.equal(set, byId.size, 'idBits: the defined ids');
});

t.test('a repeated binding is a no-op; a conflicting one throws and changes nothing', async (t) => {
  const log = new NameLog();
  t.equal(log.define(5, 'a'), true);
  t.equal(log.define(5, 'a'), false, 'the same binding again');
  t.throws(() => log.define(5, 'b'), /device id 5 is bound to "a", not "b"/);
  t.throws(() => log.define(6, 'a'), /device "a" is bound to id 5, not 6/);
  t.throws(() => log.define(-1, 'c'), RangeError);
  t.throws(() => log.define(2 ** 31, 'c'), RangeError);
  t.throws(() => new NameLog('metric').define(1.5, 'c'), /metric id must be an integer/);
  t.equal(log.n, 1);
  t.equal(log.idOf('b'), -1);
});

t.test('a range of rows restores into another log, names of 300 bytes and non-ASCII included; malformed rows throw', async (t) => {
  const log = new NameLog();
  const names = ['x'.repeat(300), 'capteur-é-ü-温度-🌡', 'd1', 'd2', 'd3'];
  names.forEach((n, i) => log.define(10 + i, n));
  const back = new NameLog();
  back.restoreRows(log.rows(0, 2));
  back.restoreRows(log.rows(2, 5));
  back.restoreRows(log.rows(1, 3)); // rows already held: checked, not added twice
  t.equal(back.n, 5);
  names.forEach((n, i) => {
    t.equal(back.nameOf(10 + i), n);
    t.equal(back.idOf(n), 10 + i);
  });
  t.type(log.rows(0, 5).lengths, Uint16Array, 'a 300-byte name needs 2-byte lengths');
  t.type(log.rows(2, 5).lengths, Uint8Array);
  const r = log.rows(2, 5);
  t.throws(() => back.restoreRows({ ...r, lengths: new Uint8Array([1, 1, 1]) }), /hold 6 bytes, their lengths add up to 3/);
  t.throws(() => back.restoreRows({ ...r, ids: new Int32Array(2) }), /malformed/);
  t.throws(() => back.restoreRows(undefined), /malformed/);
  const other = new NameLog();
  other.define(12, 'elsewhere');
  t.throws(() => other.restoreRows(r), /device id 12 is bound to "elsewhere", not "d1"/, 'a conflicting restore throws');
});
