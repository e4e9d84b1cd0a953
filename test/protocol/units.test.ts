import t from 'tap';
import { formatDuration, formatSize, parseDuration, parseSize } from '../../protocol/units';

t.test('parseDuration accepts every unit and plain milliseconds', async (t) => {
  const cases: Array<[string | number, number]> = [
    ['250ms', 250],
    ['10s', 10_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['0', 0],
    ['0s', 0],
    ['1500', 1500],
    [1500, 1500],
    [0, 0],
    ['1.5s', 1500],
    ['0.5m', 30_000],
    ['.5s', 500],
    [' 10 s ', 10_000],
  ];
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, `${JSON.stringify(text)} is ${ms} ms`);
});

t.test('parseDuration rejects bad text, quoting it and the accepted forms', async (t) => {
  const bad: Array<string | number> = ['', 'abc', '10x', '-5s', '10sec', '10S', '1.5ms', '1.5', '1e3', 's', '5 m s', -1, 1.5, NaN, Infinity];
  for (const text of bad) {
    t.throws(
      () => parseDuration(text),
      { message: new RegExp(`invalid duration ${escape(typeof text === 'string' ? JSON.stringify(text) : String(text))}.*250ms, 10s, 5m, 1h, 1d`) },
      `rejects ${JSON.stringify(text) ?? String(text)}`,
    );
  }
  t.throws(() => parseDuration('99999999999999999d'), /invalid duration/, 'rejects an unsafe integer');
});

t.test('parseSize accepts binary, decimal and plain byte forms', async (t) => {
  const cases: Array<[string | number, number]> = [
    ['512B', 512],
    ['1KiB', 1024],
    ['16MiB', 16 * 1024 * 1024],
    ['2GiB', 2 * 1024 ** 3],
    ['1KB', 1000],
    ['3MB', 3_000_000],
    ['2GB', 2_000_000_000],
    ['4096', 4096],
    [4096, 4096],
    ['0', 0],
    ['0.5KiB', 512],
    ['1.5MB', 1_500_000],
    ['16 MiB', 16 * 1024 * 1024],
  ];
  for (const [text, bytes] of cases) t.equal(parseSize(text), bytes, `${JSON.stringify(text)} is ${bytes} bytes`);
});

t.test('parseSize rejects bad text, quoting it and the accepted forms', async (t) => {
  const bad: Array<string | number> = ['', 'big', '16mib', '16Mb', '16M', '1.3B', '0.1KiB', '-1KiB', '1TiB', 'KiB', 1.5, -1];
  for (const text of bad) {
    t.throws(
      () => parseSize(text),
      { message: new RegExp(`invalid size ${escape(typeof text === 'string' ? JSON.stringify(text) : String(text))}.*KiB, MiB, GiB.*KB, MB, GB`) },
      `rejects ${JSON.stringify(text)}`,
    );
  }
});

t.test('formatDuration gives the shortest exact form', async (t) => {
  const cases: Array<[number, string]> = [
    [10_000, '10s'],
    [1500, '1500ms'],
    [250, '250ms'],
    [60_000, '1m'],
    [90_000, '90s'],
    [3_600_000, '1h'],
    [86_400_000, '1d'],
    [2 * 86_400_000, '2d'],
    [25 * 3_600_000, '25h'],
    [0, '0ms'],
  ];
  for (const [ms, text] of cases) t.equal(formatDuration(ms), text, `${ms} ms is ${text}`);
  t.throws(() => formatDuration(-1), /cannot format/);
  t.throws(() => formatDuration(0.5), /cannot format/);
});

t.test('formatSize gives the shortest exact form', async (t) => {
  const cases: Array<[number, string]> = [
    [16 * 1024 * 1024, '16MiB'],
    [1024, '1KiB'],
    [2 * 1024 ** 3, '2GiB'],
    [512, '512B'],
    [1500, '1500B'],
    [1000, '1KB'],
    [1_000_000, '1MB'],
    [0, '0B'],
    [1536, '1536B'],
    [2_048_000, '2048KB'], // 2000KiB is exact too, but longer
    [1000 * 1024 * 1024, '1000MiB'], // shorter than 1048576KB
  ];
  for (const [bytes, text] of cases) t.equal(formatSize(bytes), text, `${bytes} bytes is ${text}`);
  t.throws(() => formatSize(-1), /cannot format/);
});

t.test('format then parse is the identity', async (t) => {
  // A deterministic spread of values across many factor patterns.
  const wrong: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const ms = ((i * 7919) % 100_000) * [1, 1000, 60_000][i % 3]!;
    if (parseDuration(formatDuration(ms)) !== ms) wrong.push(`duration ${ms} -> ${formatDuration(ms)}`);
    const bytes = ((i * 104_729) % 5000) * [1, 1000, 1024, 1 << 20][i % 4]!;
    if (parseSize(formatSize(bytes)) !== bytes) wrong.push(`size ${bytes} -> ${formatSize(bytes)}`);
  }
  t.same(wrong, [], 'every value survives format then parse');
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
