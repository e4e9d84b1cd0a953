import t from 'tap';
import { rng } from '../helpers/rng';
import { RollupCodec, type RollupValue } from '../../storage';
import { compressAggregate } from '../../protocol/aggregate';
import { aggregateOf } from '../helpers/aggregates';

const seed = process.env['SLUICE_SEED'] !== undefined ? Number(process.env['SLUICE_SEED']) : (Date.now() % 1e9);
t.comment(`seed=${seed} (replay with SLUICE_SEED=${seed})`);

const SPEC = { divisions: 10, min: 0, max: 100 };

/** a pane of n values, its digest compressed as a stored window's is past 64 values */
function paneValue(values: number[], paneNo: number): RollupValue {
  const agg = aggregateOf(values.map((v, i) => [paneNo * 10_000 + (i % 10_000), v] as const), paneNo * 10_000, (paneNo + 1) * 10_000,
    SPEC.divisions, SPEC.min, SPEC.max);
  if (agg.means.length > 64) compressAggregate(agg);
  return { ...agg, lastPaneNo: paneNo };
}

t.test('round trip: raw and full layouts give back every field', (t) => {
  const rand = rng(seed);
  const codec = new RollupCodec(SPEC);
  const sizes: Record<number, number> = {};
  const layouts: Record<number, number> = {};
  const expectedLayout: Record<number, number> = {};
  for (const n of [1, 2, 5, 64, 65, 300, 5000]) {
    // values on a 1/8 grid, some outside [0, 100] (under / over)
    const values = Array.from({ length: n }, () => Math.round((rand() * 130 - 15) * 8) / 8);
    const v = paneValue(values, 170_000_000 + n);
    const bytes = Uint8Array.from(codec.encode(v));
    sizes[n] = bytes.byteLength;
    layouts[n] = bytes[0]!;
    expectedLayout[n] = v.weights.every((w) => w === 1) && v.means.length === v.count && v.count <= 64 ? 1 : 2;
    t.same(codec.decode(bytes), v, `${n} values: the decoded window equals the stored one`);
  }
  t.equal(sizes[1], 72, 'one value: 72 bytes');
  t.same([layouts[1], layouts[5000]], [1, 2], 'one value raw, a compressed digest full');
  t.same(Object.keys(layouts).map((n) => layouts[Number(n)]), Object.keys(layouts).map((n) => expectedLayout[Number(n)]),
    'raw exactly when every centroid is one event (weights 1, one per event) and there are at most 64');
  const fleet: RollupValue = { ...paneValue([10, 20, 30], 7), devices: 3 };
  t.same(codec.decode(Uint8Array.from(codec.encode(fleet))), fleet, 'devices survive (fleet windows)');
  const compressed = paneValue(Array.from({ length: 2000 }, (_, i) => i % 97), 9);
  compressAggregate(compressed);
  t.same(codec.decode(Uint8Array.from(codec.encode(compressed))), compressed, 'a compressed digest (weights > 1): full layout');
  t.end();
});

t.test('a window whose histogram does not derive from its values is not stored raw', (t) => {
  const codec = new RollupCodec(SPEC);
  const v = paneValue([42], 3);
  // the same values under another histogram range: derived buckets differ, so it must go full
  const other = new RollupCodec({ divisions: 10, min: 0, max: 50 });
  const bytes = Uint8Array.from(other.encode(v));
  t.equal(bytes[0], 2, 'full layout');
  t.same(other.decode(bytes), v);
  t.equal(codec.encode(v)[0], 1, 'raw under its own range');
  t.end();
});

t.test('decode refuses bytes that are not a window of this engine', (t) => {
  const codec = new RollupCodec(SPEC);
  const bytes = Uint8Array.from(codec.encode(paneValue([1, 2, 3], 5)));
  t.throws(() => codec.decode(bytes.subarray(0, 5)), /shorter than its head/);
  t.throws(() => codec.decode(bytes.subarray(0, bytes.byteLength - 8)), /not a window/);
  t.throws(() => new RollupCodec({ ...SPEC, divisions: 20 }).decode(bytes), /20/);
  const bad = Uint8Array.from(bytes);
  bad[0] = 9;
  t.throws(() => codec.decode(bad), /layout 9/);
  t.end();
});
