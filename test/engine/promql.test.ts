import t from 'tap';
import { parsePromql, PromqlError, isScalar, regexRisk } from '../../engine/promql';

t.test('the subset parses into the expression tree', async (t) => {
  const e = parsePromql('topk(3, sluice_cpu_p99{device=~"d-1.*", metric!="x"}) * 2');
  t.equal(e.kind, 'binary');
  if (e.kind !== 'binary') return;
  t.equal(e.op, '*');
  t.same(e.rhs, { kind: 'number', value: 2 });
  t.equal(e.lhs.kind, 'aggregate');
  if (e.lhs.kind !== 'aggregate') return;
  t.equal(e.lhs.op, 'topk');
  t.same(e.lhs.param, { kind: 'number', value: 3 });
  const sel = e.lhs.expr;
  t.equal(sel.kind, 'selector');
  if (sel.kind !== 'selector') return;
  t.same(sel.matchers.map((m) => [m.name, m.op, m.value]), [['__name__', '=', 'sluice_cpu_p99'], ['device', '=~', 'd-1.*'], ['metric', '!=', 'x']]);
  t.ok(sel.matchers[1].re!.test('d-12'), 'regexes are anchored: d-12 matches d-1.*');
  t.notOk(sel.matchers[1].re!.test('xd-12'), 'and xd-12 does not');

  const by = parsePromql('sum by (device) (sluice_cpu_count)');
  t.match(by, { kind: 'aggregate', op: 'sum', by: ['device'], without: null });
  const after = parsePromql('max(sluice_cpu_max) without (device)');
  t.match(after, { kind: 'aggregate', op: 'max', by: null, without: ['device'] });
  t.match(parsePromql('-sluice_cpu_min'), { kind: 'negate' });
  t.match(parsePromql('(1 + 2) ^ 2'), { kind: 'binary', op: '^' });
  t.ok(isScalar(parsePromql('(1 + 2) ^ 2')));
  t.notOk(isScalar(parsePromql('1 + x')));
  t.match(parsePromql('{__name__="sluice_cpu_sum", device!~"a|b"}'), { kind: 'selector' });
  t.match(parsePromql("x{device='d1'}"), { kind: 'selector', matchers: [{ name: '__name__' }, { name: 'device', value: 'd1' }] });
});

t.test('what the subset does not take is an error naming the part', async (t) => {
  const cases: [string, RegExp][] = [
    ['rate(x[5m])', /unsupported.*function calls.*rate\(x\[5m\]\)/],
    ['x offset 5m', /unsupported.*offset/],
    ['x @ 100', /unsupported.*@ modifiers/],
    ['x[5m:1m]', /unsupported.*subqueries/],
    ['x > 1', /unsupported.*operator >/],
    ['x and y', /unsupported.*operator and/],
    ['x + y', /unsupported.*two vectors/],
    ['x + on(device) 1', /unsupported.*vector matching/],
    ['quantile(0.9, x)', /unsupported.*aggregation quantile/],
    ['count_values("v", x)', /unsupported.*aggregation count_values/],
    ['topk(x, y)', /unsupported.*topk parameter that is not a number/],
    ['"text"', /unsupported.*string literals/],
    ['x +', /parse error at char 4: unexpected end of input/],
    ['sum(', /parse error/],
    ['', /empty query/],
    ['{device=~".*"}', /at least one non-empty matcher/],
    ['x{device=~"("}', /bad regex/],
  ];
  for (const [q, want] of cases) {
    let err: unknown = null;
    try {
      parsePromql(q);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof PromqlError, `${JSON.stringify(q)} is refused as a PromqlError`);
    t.match((err as Error | null)?.message ?? '', want, `${JSON.stringify(q)}: ${(err as Error | null)?.message}`);
  }
});

t.test('label regexes that could backtrack for ever are refused; a stack overflow is the query\'s fault', async (t) => {
  for (const bad of ['(a|aa)*b', '(a+)+', '(?:x|y){3}', '.*a.*b.*c.*d.*e']) {
    t.throws(() => parsePromql(`x{device=~"${bad}"}`), /not supported|at most 4/, bad);
    t.not(regexRisk(bad), null);
  }
  for (const ok of ['a|b', 'dev-.*', '[0-9]+', '(x|y)-.*', 'a{2,}b{3}', 'prefix.*']) t.equal(regexRisk(ok), null, ok);
  // took seconds (exponential) before the check: now refused at once
  const t0 = Date.now();
  t.throws(() => parsePromql('x{device=~"(a|aa)*b"}'), /quantified group/);
  t.ok(Date.now() - t0 < 100);
  const deep = '('.repeat(100_000) + '1' + ')'.repeat(100_000);
  let err: unknown = null;
  try {
    parsePromql(deep);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof PromqlError, `a query nested 100,000 deep is a PromqlError: ${(err as Error).message.slice(0, 80)}`);
});
