import t from 'tap';
import { failedReport, mergeReportParts, type ReportPart } from '../../protocol/report';

function part(metric: string, histogram: number[], under: number, over: number, devices: number): ReportPart {
  return { metric, count: histogram.reduce((a, b) => a + b, 0) + under + over, histogram, under, over, devices };
}

t.test('merges shards per metric: counts, divisions, under/over and devices add up', async (t) => {
  const shard0 = [part('cpu', [1, 0, 2], 1, 0, 3), part('temp', [0, 5, 0], 0, 1, 2)];
  const shard1 = [part('cpu', [0, 4, 1], 0, 2, 4), part('temp', [1, 0, 0], 0, 0, 1)];
  const shard2: ReportPart[] = [];
  const reports = mergeReportParts([shard0, shard1, shard2], 1000, 11_000, 0, 30);
  t.same(reports, [
    { metric: 'cpu', periodStart: 1000, periodEnd: 11_000, count: 11, devices: 7, histogram: { min: 0, max: 30, divisions: [1, 4, 3], under: 1, over: 2 } },
    { metric: 'temp', periodStart: 1000, periodEnd: 11_000, count: 7, devices: 3, histogram: { min: 0, max: 30, divisions: [1, 5, 0], under: 0, over: 1 } },
  ]);
  t.same(shard0[0].histogram, [1, 0, 2], 'the parts are not mutated');
});

t.test('no shard, no report; mismatched divisions are a bug', async (t) => {
  t.same(mergeReportParts([], 0, 1, 0, 100), []);
  t.throws(() => mergeReportParts([[part('cpu', [1, 2], 0, 0, 1)], [part('cpu', [1], 0, 0, 1)]], 0, 1, 0, 100), /divisions differ/);
});

t.test('a failed period carries zeros and its reason', async (t) => {
  t.same(failedReport('cpu', 5, 6, 2, 0, 1, 'collection failed: boom'), {
    metric: 'cpu', periodStart: 5, periodEnd: 6, count: 0, devices: 0,
    histogram: { min: 0, max: 1, divisions: [0, 0], under: 0, over: 0 }, error: 'collection failed: boom',
  });
});
