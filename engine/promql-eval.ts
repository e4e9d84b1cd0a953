/**
 * Evaluates a parsed PromQL expression (promql.ts) at a list of times, over Sluice's windows.
 *
 * A series' sample at time t is the value of its window that contains t, at the evaluation's
 * resolution (no lookback into earlier windows: an aggregate of a window without data is absent,
 * not the previous window's count again). Evaluation works on whole columns: every value is a
 * Float64Array over the times with a presence mask, so a range query costs one pass per node.
 *
 * Semantics follow Prometheus where the subset overlaps: aggregations group by the by/without
 * labels (the metric name is dropped), topk/bottomk keep the chosen series' labels and choose per
 * time, arithmetic with a scalar drops the metric name, a scalar stays a scalar. The data comes
 * from a PromSource (prom-source.ts), which may answer a whole-fleet sum/min/max/count from the
 * fleet's own windows instead of every device's.
 *
 * Front-end thread; pure apart from the source's reads.
 */

import { type AggOp, type ArithOp, type Expr, type Matcher, PromqlError } from './promql';

export type Labels = Record<string, string>;

export interface Series {
  labels: Labels;
  values: Float64Array;
  /** 1 where the series has a sample at that time */
  has: Uint8Array;
}

export type Value = { kind: 'scalar'; values: Float64Array } | { kind: 'vector'; series: Series[] };

/** A series as the source reads it: its windows' values by window start (ms). */
export interface SourceSeries {
  labels: Labels;
  points: Map<number, number>;
}

export interface PromSource {
  /** the series the matchers select, their windows in [from, to) at resolutionMs */
  select(matchers: Matcher[], from: number, to: number, resolutionMs: number): Promise<SourceSeries[]>;
  /**
   * A whole-fleet aggregation read from the fleet's windows (sum of counts or sums, min of mins,
   * max of maxes, count of devices), or null when the source cannot answer it that way.
   */
  fleet(op: AggOp, matchers: Matcher[], from: number, to: number, resolutionMs: number): Promise<SourceSeries[] | null>;
}

export interface EvalTimes {
  /** evaluation times, ms, ascending */
  times: number[];
  resolutionMs: number;
}

function windowStart(t: number, r: number): number {
  return Math.floor(t / r) * r;
}

export async function evaluate(e: Expr, at: EvalTimes, src: PromSource): Promise<Value> {
  const n = at.times.length;
  switch (e.kind) {
    case 'number':
      return { kind: 'scalar', values: new Float64Array(n).fill(e.value) };
    case 'selector':
      return { kind: 'vector', series: columns(await src.select(e.matchers, ...span(at)), at) };
    case 'negate': {
      const v = await evaluate(e.expr, at, src);
      return arith('*', v, { kind: 'scalar', values: new Float64Array(n).fill(-1) });
    }
    case 'binary':
      return arith(e.op, await evaluate(e.lhs, at, src), await evaluate(e.rhs, at, src));
    case 'aggregate':
      return aggregate(e, at, src);
  }
}

/** The window range that holds every evaluation time. */
function span(at: EvalTimes): [number, number, number] {
  const r = at.resolutionMs;
  return [windowStart(at.times[0], r), windowStart(at.times[at.times.length - 1], r) + r, r];
}

function columns(read: SourceSeries[], at: EvalTimes): Series[] {
  const n = at.times.length;
  const out: Series[] = [];
  for (const s of read) {
    const values = new Float64Array(n);
    const has = new Uint8Array(n);
    let any = false;
    for (let i = 0; i < n; i++) {
      const v = s.points.get(windowStart(at.times[i], at.resolutionMs));
      if (v !== undefined) {
        values[i] = v;
        has[i] = 1;
        any = true;
      }
    }
    if (any) out.push({ labels: s.labels, values, has });
  }
  return out;
}

function apply(op: ArithOp, a: number, b: number): number {
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/': return a / b;
    // Go's math.Mod: the sign of the dividend, as JS's %
    case '%': return a % b;
    case '^': return a ** b;
  }
}

function dropName(l: Labels): Labels {
  const { __name__: _, ...rest } = l;
  return rest;
}

function arith(op: ArithOp, l: Value, r: Value): Value {
  if (l.kind === 'scalar' && r.kind === 'scalar') {
    const v = new Float64Array(l.values.length);
    for (let i = 0; i < v.length; i++) v[i] = apply(op, l.values[i], r.values[i]);
    return { kind: 'scalar', values: v };
  }
  if (l.kind === 'vector' && r.kind === 'vector') throw new PromqlError('arithmetic between two vectors is not supported');
  const vec = (l.kind === 'vector' ? l : r) as { kind: 'vector'; series: Series[] };
  const sc = (l.kind === 'scalar' ? l : r) as { kind: 'scalar'; values: Float64Array };
  const vecLeft = l.kind === 'vector';
  return {
    kind: 'vector',
    series: vec.series.map((s) => {
      const values = new Float64Array(s.values.length);
      for (let i = 0; i < values.length; i++) {
        if (s.has[i] === 1) values[i] = vecLeft ? apply(op, s.values[i], sc.values[i]) : apply(op, sc.values[i], s.values[i]);
      }
      return { labels: dropName(s.labels), values, has: s.has };
    }),
  };
}

/** The group of a series: its `by` labels, or all but the `without` ones and the name; neither: one group. */
function groupLabels(l: Labels, by: string[] | null, without: string[] | null): Labels {
  const out: Labels = {};
  if (by === null && without === null) return out;
  if (by !== null) {
    for (const k of by) if (l[k] !== undefined && l[k] !== '') out[k] = l[k];
  } else {
    const drop = new Set(without ?? []);
    drop.add('__name__');
    for (const k in l) if (!drop.has(k)) out[k] = l[k];
  }
  return out;
}

function keyOf(l: Labels): string {
  return JSON.stringify(Object.keys(l).sort().map((k) => [k, l[k]]));
}

async function aggregate(e: Extract<Expr, { kind: 'aggregate' }>, at: EvalTimes, src: PromSource): Promise<Value> {
  const n = at.times.length;
  const wholeFleet = (e.by === null || e.by.length === 0) && (e.without === null);
  if (wholeFleet && e.expr.kind === 'selector' && e.op !== 'avg' && e.op !== 'topk' && e.op !== 'bottomk') {
    const fleet = await src.fleet(e.op, e.expr.matchers, ...span(at));
    if (fleet !== null) return { kind: 'vector', series: columns(fleet, at).map((s) => ({ ...s, labels: {} })) };
  }
  const inner = await evaluate(e.expr, at, src);
  if (inner.kind !== 'vector') throw new PromqlError(`${e.op} needs a vector, got a scalar`);
  if (e.op === 'topk' || e.op === 'bottomk') return { kind: 'vector', series: topk(e, inner.series, n) };
  const groups = new Map<string, { labels: Labels; members: Series[] }>();
  for (const s of inner.series) {
    const labels = groupLabels(s.labels, e.by, e.without);
    const k = keyOf(labels);
    let g = groups.get(k);
    if (g === undefined) groups.set(k, g = { labels, members: [] });
    g.members.push(s);
  }
  const out: Series[] = [];
  for (const g of groups.values()) {
    const values = new Float64Array(n);
    const has = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      let c = 0;
      let acc = 0;
      for (const s of g.members) {
        if (s.has[i] === 0) continue;
        const v = s.values[i];
        if (c === 0) acc = e.op === 'count' ? 1 : v;
        else if (e.op === 'sum' || e.op === 'avg') acc += v;
        else if (e.op === 'max') acc = v > acc || Number.isNaN(acc) ? v : acc;
        else if (e.op === 'min') acc = v < acc || Number.isNaN(acc) ? v : acc;
        else acc += 1;
        c++;
      }
      if (c === 0) continue;
      values[i] = e.op === 'avg' ? acc / c : acc;
      has[i] = 1;
    }
    out.push({ labels: g.labels, values, has });
  }
  return { kind: 'vector', series: out };
}

/** topk / bottomk per time and group: the chosen series keep their labels; ties by labels, stable. */
function topk(e: Extract<Expr, { kind: 'aggregate' }>, series: Series[], n: number): Series[] {
  const k = Math.floor((e.param as { value: number }).value);
  const bottom = e.op === 'bottomk';
  const chosen = series.map((s) => ({ labels: s.labels, values: s.values, has: new Uint8Array(n) }));
  if (k < 1) return [];
  const groups = new Map<string, number[]>();
  series.forEach((s, idx) => {
    const key = keyOf(groupLabels(s.labels, e.by, e.without));
    let g = groups.get(key);
    if (g === undefined) groups.set(key, g = []);
    g.push(idx);
  });
  for (const members of groups.values()) {
    for (let i = 0; i < n; i++) {
      const present = members.filter((m) => series[m].has[i] === 1);
      present.sort((a, b) => {
        const va = series[a].values[i];
        const vb = series[b].values[i];
        // NaN sorts last either way, as in Prometheus
        if (Number.isNaN(va) !== Number.isNaN(vb)) return Number.isNaN(va) ? 1 : -1;
        return bottom ? va - vb : vb - va;
      });
      for (let j = 0; j < Math.min(k, present.length); j++) chosen[present[j]].has[i] = 1;
    }
  }
  return chosen.filter((s) => s.has.some((h) => h === 1));
}
