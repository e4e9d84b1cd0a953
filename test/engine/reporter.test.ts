import t from 'tap';
import pino from 'pino';
import { Reporter, type ReporterOptions } from '../../engine/reporter';
import type { Report, ReportPart } from '../../protocol/report';

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { log, lines };
}

function cpuPart(count: number, devices: number): ReportPart {
  const histogram = new Array<number>(10).fill(0);
  histogram[count % 10] = count;
  return { metric: 'cpu', count, histogram, under: 0, over: 0, devices };
}

/** a clock the test moves by hand */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t0 = start;
  return { now: () => t0, advance: (ms) => { t0 += ms; } };
}

function options(over: Partial<ReporterOptions> = {}): ReporterOptions {
  return { periodMs: 10_000, historyMax: 3, divisions: 10, min: 0, max: 100, metrics: ['cpu', 'temp'], ...over };
}

t.test('flush merges the shards, logs one line per report, keeps history newest first within historyMax', async (t) => {
  const { log, lines } = capture();
  const c = clock();
  let n = 0;
  const reporter = new Reporter(options({ now: c.now }), async () => {
    n++;
    // two shards; temp only on shard 1
    return [[cpuPart(n, 1)], [cpuPart(n * 10, 2), { metric: 'temp', count: n, histogram: new Array(10).fill(0), under: n, over: 0, devices: 1 }]];
  }, log);
  for (let i = 0; i < 5; i++) {
    c.advance(10_000);
    await reporter.flush();
  }
  const cpu = reporter.recent('cpu', 10);
  t.same(cpu.map((r) => r.count), [55, 44, 33], 'newest first, at most historyMax');
  t.same(cpu.map((r) => [r.periodStart, r.periodEnd]), [[1_040_000, 1_050_000], [1_030_000, 1_040_000], [1_020_000, 1_030_000]], 'periods follow each other');
  t.equal(cpu[0].devices, 3);
  t.same(cpu[0].histogram, { min: 0, max: 100, divisions: [50, 0, 0, 0, 0, 5, 0, 0, 0, 0], under: 0, over: 0 });
  t.same(reporter.recent('cpu', 1).map((r) => r.count), [55], 'limit');
  t.same(reporter.recent('nope', 10), []);
  const all = reporter.recent(null, 4);
  t.same(all.map((r) => [r.metric, r.count]), [['cpu', 55], ['temp', 5], ['cpu', 44], ['temp', 4]], 'all metrics: newest period first, then metric order');
  const reportLines = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('report '));
  t.equal(reportLines.length, 10, 'one line per report');
  t.match(reportLines[8], { level: 30, msg: 'report cpu: 55 events, 3 devices', metric: 'cpu', count: 55, devices: 3, periodStart: 1_040_000, histogram: { divisions: [50, 0, 0, 0, 0, 5, 0, 0, 0, 0] } });
});

t.test('subscribers get each report; unsubscribe; a throwing subscriber does not stop the others', async (t) => {
  const { log, lines } = capture();
  const reporter = new Reporter(options(), async () => [[cpuPart(3, 1)]], log);
  const got: Report[] = [];
  reporter.subscribe(() => { throw new Error('bad subscriber'); });
  const off = reporter.subscribe((r) => got.push(r));
  await reporter.flush();
  await reporter.flush();
  off();
  await reporter.flush();
  t.same(got.map((r) => [r.metric, r.count]), [['cpu', 3], ['cpu', 3]]);
  t.ok(lines.some((l) => l.msg === 'report subscriber failed'));
});

t.test('a failing collection is reported, not skipped', async (t) => {
  const { log, lines } = capture();
  const c = clock();
  let fail = false;
  const reporter = new Reporter(options({ now: c.now }), async () => {
    if (fail) throw new Error('shard 1 did not answer');
    return [[cpuPart(7, 2)]];
  }, log);
  const got: Report[] = [];
  reporter.subscribe((r) => got.push(r));
  c.advance(10_000);
  await reporter.flush();
  fail = true;
  c.advance(10_000);
  await reporter.flush();
  fail = false;
  c.advance(10_000);
  await reporter.flush();
  t.same(got.map((r) => [r.metric, r.periodStart, r.count, r.error ?? null]), [
    ['cpu', 1_000_000, 7, null],
    ['cpu', 1_010_000, 0, 'collection failed: shard 1 did not answer'],
    ['temp', 1_010_000, 0, 'collection failed: shard 1 did not answer'],
    ['cpu', 1_020_000, 7, null],
  ]);
  t.equal(reporter.failures, 1);
  t.same(reporter.recent('cpu', 10).map((r) => r.error ?? null), [null, 'collection failed: shard 1 did not answer', null]);
  t.ok(lines.some((l) => l.level === 50 && String(l.msg).includes('shard 1 did not answer')), 'the failure is logged as an error');
  t.ok(lines.some((l) => l.level === 40 && l.msg === 'report cpu: collection failed: shard 1 did not answer'), 'and the period says so');
});

t.test('flushes never overlap: a second flush waits for the first collection', async (t) => {
  const { log } = capture();
  let active = 0;
  let maxActive = 0;
  const reporter = new Reporter(options(), async () => {
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise((r) => setTimeout(r, 20));
    active--;
    return [[cpuPart(1, 1)]];
  }, log);
  await Promise.all([reporter.flush(), reporter.flush(), reporter.flush()]);
  t.equal(maxActive, 1);
  t.equal(reporter.recent('cpu', 10).length, 3);
});

t.test('start() reports every period by itself, stop() stops it, the timer does not hold the process', async (t) => {
  const { log } = capture();
  let calls = 0;
  const reporter = new Reporter(options({ periodMs: 100, historyMax: 100 }), async () => { calls++; return [[cpuPart(1, 1)]]; }, log);
  reporter.start();
  await new Promise((r) => setTimeout(r, 550));
  reporter.stop();
  t.ok(calls >= 3 && calls <= 6, `${calls} collections in 550 ms at 100 ms`);
  const reports = reporter.recent('cpu', 100);
  for (let i = 1; i < reports.length; i++) t.equal(reports[i - 1].periodStart, reports[i].periodEnd, 'periods are contiguous');
  const after = calls;
  await new Promise((r) => setTimeout(r, 250));
  t.equal(calls, after, 'no collection after stop()');
  await reporter.flush();
  t.equal(calls, after + 1, 'flush still collects after stop (shutdown)');
});

t.test('options are checked', async (t) => {
  const { log } = capture();
  const none = async (): Promise<ReportPart[][]> => [];
  t.throws(() => new Reporter(options({ periodMs: 0 }), none, log), /periodMs/);
  t.throws(() => new Reporter(options({ historyMax: 0 }), none, log), /historyMax/);
});
