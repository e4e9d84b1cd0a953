/**
 * Property tests: fast-check with the project's fixed seed, so a CI failure replays exactly
 * (fast-check's failure message names the seed and the path of the shrunk counterexample; put
 * that counterexample into the test as a fixed case). SLUICE_PROPERTY_SEED explores another seed,
 * SLUICE_PROPERTY_RUNS changes the number of runs.
 */

import fc from 'fast-check';
import { ERRORS, SluiceError } from '../../protocol';

export const PROPERTY_SEED = Number(process.env.SLUICE_PROPERTY_SEED ?? 20261202);
export const PROPERTY_RUNS = Number(process.env.SLUICE_PROPERTY_RUNS ?? 10_000);

export function assertProperty<T>(prop: fc.IProperty<T>, runs = PROPERTY_RUNS): void {
  fc.assert(prop, { seed: PROPERTY_SEED, numRuns: runs });
}

export async function assertAsyncProperty<T>(prop: fc.IAsyncProperty<T>, runs = PROPERTY_RUNS): Promise<void> {
  await fc.assert(prop, { seed: PROPERTY_SEED, numRuns: runs });
}

/** True for a stable Sluice error code. */
export function isSluiceCode(code: unknown): boolean {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

/** Runs f: its value, or a SluiceError (any other throw fails the property). */
export function valueOrSluiceError<T>(f: () => T): T | SluiceError {
  try {
    return f();
  } catch (e) {
    if (e instanceof SluiceError && isSluiceCode(e.code) && e.message.length > 0) return e;
    throw e;
  }
}

/** Numbers of every magnitude and the values that break naive code. */
export const anyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.double({ min: 1e9, max: 1e19, noNaN: true }),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 1e300, -1e300, 8.64e15, 8.64e15 + 1, Number.MAX_VALUE,
    Number.MIN_VALUE, Number.MAX_SAFE_INTEGER, 1796174194000000000, 1764590000, 1764590000000, 1764590000000000),
);

/** ISO-8601 look-alikes: valid ones, out-of-range fields, odd separators and zones. */
export const isoLike: fc.Arbitrary<string> = fc.tuple(
  fc.integer({ min: 0, max: 99999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }),
  fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 61 }),
  fc.option(fc.stringMatching(/^\d{1,12}$/)), fc.constantFrom('', 'Z', 'z', '+00:00', '-23:59', '+2400', '+99:99', ' UTC'),
  fc.constantFrom('T', ' ', 't', ''),
).map(([y, mo, d, h, mi, s, frac, zone, sep]) => {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${String(y).padStart(4, '0')}-${p2(mo)}-${p2(d)}${sep}${p2(h)}:${p2(mi)}:${p2(s)}${frac === null ? '' : '.' + frac}${zone}`;
});

/** A timestamp field as clients send it, and as they should not. */
export const anyTimestamp: fc.Arbitrary<unknown> = fc.oneof(
  anyNumber, isoLike, fc.string(), fc.stringMatching(/^\d{1,25}$/), fc.constant(undefined), fc.constant(null),
  fc.boolean(), fc.bigInt(), fc.array(anyNumber, { maxLength: 2 }), fc.object({ maxDepth: 1 }),
);

/** Device ids: valid, empty, huge, unicode, control characters. */
export const anyDeviceId: fc.Arbitrary<unknown> = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/), fc.string(), fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.constantFrom('', 'x'.repeat(129), 'd\u0000', 'd\n1', 'd\u202e1', '\ud800', 'caf\u00e9'),
  fc.string({ minLength: 129, maxLength: 2000 }), anyNumber, fc.constant(null), fc.constant(undefined),
);

export const anyMetricName: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.]{1,64}$/), fc.string(), fc.constantFrom('', 'm'.repeat(65), '__proto__', 'constructor', 'a b', 'é'),
);

export const anyMetricValue: fc.Arbitrary<unknown> = fc.oneof(anyNumber, fc.string({ maxLength: 5 }), fc.constant(null), fc.boolean(), fc.bigInt());
