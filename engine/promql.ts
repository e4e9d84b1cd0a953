/**
 * The PromQL subset Sluice answers (issue #15), parsed with Prometheus's own grammar
 * (@prometheus-io/lezer-promql) into a small expression tree that promql-eval.ts evaluates.
 *
 * Taken: vector selectors with =, !=, =~ and !~ matchers; sum, avg, max, min, count with by or
 * without; topk and bottomk; + - * / % ^ between a scalar and a vector or two scalars; unary
 * minus; parentheses; number literals. Anything else (functions, range selectors, offset, @,
 * subqueries, comparisons, set operators, vector-to-vector arithmetic, other aggregations) is a
 * PromqlError naming the part, which the routes answer in Prometheus's error shape (bad_data):
 * a partial answer to a query Sluice does not understand would be a wrong graph.
 *
 * Pure: no I/O. Regexes are anchored as Prometheus anchors them (the whole value must match).
 */

import type { LRParser } from '@lezer/lr';

let promqlParser: LRParser | null = null;

/** Prometheus's grammar, loaded at the first query (~2 MB of RSS an engine nobody queries this way does not hold). */
function parser(): LRParser {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  promqlParser ??= (require('@prometheus-io/lezer-promql') as typeof import('@prometheus-io/lezer-promql')).parser;
  return promqlParser;
}
import type { SyntaxNode } from '@lezer/common';

export class PromqlError extends Error {}

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
  /** for =~ and !~, anchored */
  re: RegExp | null;
}

export type AggOp = 'sum' | 'avg' | 'max' | 'min' | 'count' | 'topk' | 'bottomk';
export type ArithOp = '+' | '-' | '*' | '/' | '%' | '^';

export type Expr =
  | { kind: 'number'; value: number }
  | { kind: 'selector'; matchers: Matcher[]; text: string }
  | { kind: 'aggregate'; op: AggOp; by: string[] | null; without: string[] | null; param: Expr | null; expr: Expr }
  | { kind: 'binary'; op: ArithOp; lhs: Expr; rhs: Expr }
  | { kind: 'negate'; expr: Expr };

const AGG_OPS: Record<string, AggOp> = { Sum: 'sum', Avg: 'avg', Max: 'max', Min: 'min', Count: 'count', Topk: 'topk', Bottomk: 'bottomk' };
const ARITH_OPS: Record<string, ArithOp> = { Add: '+', Sub: '-', Mul: '*', Div: '/', Mod: '%', Pow: '^' };
const MATCH_OPS: Record<string, MatchOp> = { EqlSingle: '=', Neq: '!=', EqlRegex: '=~', NeqRegex: '!~' };

/** Node names of the grammar, in words, for the error of an unsupported part. */
const UNSUPPORTED: Record<string, string> = {
  FunctionCall: 'function calls',
  MatrixSelector: 'range selectors ([5m])',
  OffsetExpr: 'offset',
  StepInvariantExpr: '@ modifiers',
  SubqueryExpr: 'subqueries',
  StringLiteral: 'string literals',
};

/** Parses `query`; throws PromqlError naming what is wrong or not supported. */
export function parsePromql(query: string): Expr {
  try {
    return parseChecked(query);
  } catch (err) {
    // a query nested or long enough to overflow the stack is the query's fault (400), not the engine's
    if (err instanceof RangeError) throw new PromqlError(`the query is too deeply nested or too long to parse (${query.length} characters): ${err.message}`);
    throw err;
  }
}

function parseChecked(query: string): Expr {
  if (query.trim() === '') throw new PromqlError('empty query');
  const tree = parser().parse(query);
  let bad: SyntaxNode | null = null;
  tree.iterate({
    enter(n) {
      if (bad === null && n.type.isError) bad = n.node;
    },
  });
  if (bad !== null) {
    const at = (bad as SyntaxNode).from;
    throw new PromqlError(`parse error at char ${at + 1}: unexpected ${at >= query.length ? 'end of input' : JSON.stringify(query.slice(at, at + 12))}`);
  }
  const top = tree.topNode.firstChild;
  if (top === null) throw new PromqlError('empty query');
  return toExpr(top, query);
}

function text(n: SyntaxNode, q: string): string {
  return q.slice(n.from, n.to);
}

function unsupported(n: SyntaxNode, q: string, what: string): PromqlError {
  return new PromqlError(`unsupported in Sluice's PromQL subset: ${what} (${JSON.stringify(text(n, q))})`);
}

function children(n: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = n.firstChild; c !== null; c = c.nextSibling) out.push(c);
  return out;
}

function toExpr(n: SyntaxNode, q: string): Expr {
  switch (n.name) {
    case 'NumberDurationLiteral':
    case 'NumberLiteral':
      return { kind: 'number', value: parseNumber(text(n, q), n, q) };
    case 'ParenExpr': {
      const inner = n.firstChild;
      if (inner === null) throw new PromqlError('empty parentheses');
      return toExpr(inner, q);
    }
    case 'UnaryExpr': {
      const [op, inner] = children(n);
      const e = toExpr(inner, q);
      return text(op, q) === '-' ? { kind: 'negate', expr: e } : e;
    }
    case 'VectorSelector':
      return selector(n, q);
    case 'AggregateExpr':
      return aggregate(n, q);
    case 'BinaryExpr':
      return binary(n, q);
    default:
      throw unsupported(n, q, UNSUPPORTED[n.name] ?? n.name);
  }
}

function parseNumber(s: string, n: SyntaxNode, q: string): number {
  const t = s.toLowerCase();
  if (t === 'inf' || t === '+inf') return Infinity;
  if (t === '-inf') return -Infinity;
  if (t === 'nan') return NaN;
  const v = /^0x[0-9a-f]+$/.test(t) ? parseInt(t, 16) : Number(t);
  if (Number.isNaN(v)) throw unsupported(n, q, 'durations as numbers');
  return v;
}

function unquote(raw: string, n: SyntaxNode, q: string): string {
  if (raw.startsWith('`')) return raw.slice(1, -1);
  try {
    // PromQL's double- and single-quoted strings use Go's escapes, a superset of JSON's for what labels hold
    return raw.startsWith("'") ? JSON.parse(`"${raw.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) as string : JSON.parse(raw) as string;
  } catch {
    throw new PromqlError(`bad string ${raw} in ${JSON.stringify(text(n, q))}`);
  }
}

function selector(n: SyntaxNode, q: string): Expr {
  const matchers: Matcher[] = [];
  const id = n.getChild('Identifier');
  if (id !== null) matchers.push({ name: '__name__', op: '=', value: text(id, q), re: null });
  const list = n.getChild('LabelMatchers');
  if (list !== null) {
    for (const m of children(list)) {
      if (m.name !== 'UnquotedLabelMatcher' && m.name !== 'QuotedLabelMatcher') throw unsupported(m, q, m.name);
      const name = m.getChild('LabelName');
      const op = m.getChild('MatchOp');
      const value = m.getChild('StringLiteral');
      if (name === null || op === null || value === null || op.firstChild === null) throw unsupported(m, q, 'this label matcher form');
      const mop = MATCH_OPS[op.firstChild.name];
      if (mop === undefined) throw unsupported(op, q, `match operator ${text(op, q)}`);
      const v = unquote(text(value, q), m, q);
      let re: RegExp | null = null;
      if (mop === '=~' || mop === '!~') {
        const risk = regexRisk(v);
        if (risk !== null) throw new PromqlError(`the regex ${JSON.stringify(v)} for label ${text(name, q)}: ${risk}`);
        try {
          re = new RegExp(`^(?:${v})$`);
        } catch (err) {
          throw new PromqlError(`bad regex ${JSON.stringify(v)} for label ${text(name, q)}: ${(err as Error).message}`);
        }
      }
      matchers.push({ name: text(name, q), op: mop, value: v, re });
    }
  }
  // Prometheus's rule: a selector must have a matcher that does not match the empty string
  if (!matchers.some((m) => !matches(m, ''))) {
    throw new PromqlError(`vector selector must contain at least one non-empty matcher: ${JSON.stringify(text(n, q))}`);
  }
  return { kind: 'selector', matchers, text: text(n, q) };
}

/**
 * Why a label regex could take exponential or steep polynomial time in JavaScript's backtracking
 * engine (Prometheus uses RE2, which cannot), or null. A quantified group (`(a|aa)*`, `(a+)+`)
 * can backtrack exponentially, and many unbounded quantifiers polynomially: neither is needed to
 * match label values (`a|b`, `dev-.*`, `[0-9]+`, `(x|y)-.*` are fine), and one such query would
 * hold the front-end thread.
 */
export function regexRisk(v: string): string | null {
  const plain = v.replace(/\\./g, 'x');
  if (/\)\s*(?:[*+?]|\{\d)/.test(plain)) return 'a quantified group ((...)*, (...)+, (...){n}) is not supported: it can take exponential time here';
  const unbounded = (plain.replace(/\[[^\]]*\]/g, 'x').match(/[*+]|\{\d+,\}/g) ?? []).length;
  if (unbounded > 4) return `${unbounded} unbounded quantifiers (* + {n,}): at most 4`;
  return null;
}

export function matches(m: Matcher, value: string): boolean {
  switch (m.op) {
    case '=': return value === m.value;
    case '!=': return value !== m.value;
    case '=~': return regexTest(m, value);
    case '!~': return !regexTest(m, value);
  }
}

/**
 * A client's regex on a value. A pattern that compiles can still overflow the stack when it runs
 * (found by the fuzz suite: a 500 "Maximum call stack size exceeded", now and then): that is the
 * query's fault, a PromqlError (400), not the engine's.
 */
function regexTest(m: Matcher, value: string): boolean {
  try {
    return (m.re as RegExp).test(value);
  } catch (err) {
    throw new PromqlError(`the regex ${JSON.stringify(m.value.length > 80 ? `${m.value.slice(0, 80)}...` : m.value)} of label ${m.name} is too complex to evaluate: ${(err as Error).message}`);
  }
}

function aggregate(n: SyntaxNode, q: string): Expr {
  const opNode = n.getChild('AggregateOp');
  const op = opNode?.firstChild ? AGG_OPS[opNode.firstChild.name] : undefined;
  if (op === undefined || opNode === null) throw unsupported(n, q, `the aggregation ${opNode ? text(opNode, q) : '?'} (sum, avg, max, min, count, topk and bottomk are)`);
  let by: string[] | null = null;
  let without: string[] | null = null;
  const mod = n.getChild('AggregateModifier');
  if (mod !== null) {
    const labels = (mod.getChild('GroupingLabels')?.getChildren('LabelName') ?? []).map((l) => text(l, q));
    if (mod.getChild('By') !== null) by = labels;
    else without = labels;
  }
  const body = n.getChild('FunctionCallBody');
  const args = body === null ? [] : children(body);
  const wantArgs = op === 'topk' || op === 'bottomk' ? 2 : 1;
  if (args.length !== wantArgs) throw new PromqlError(`${op} takes ${wantArgs} argument${wantArgs > 1 ? 's' : ''}, got ${args.length}: ${JSON.stringify(text(n, q))}`);
  const param = wantArgs === 2 ? toExpr(args[0], q) : null;
  if (param !== null && param.kind !== 'number') throw unsupported(args[0], q, `a ${op} parameter that is not a number literal`);
  return { kind: 'aggregate', op, by, without, param, expr: toExpr(args[args.length - 1], q) };
}

function binary(n: SyntaxNode, q: string): Expr {
  const parts = children(n);
  if (parts.length !== 3) {
    const extra = parts.find((p) => p.name === 'BoolModifier' || p.name === 'MatchingModifierClause');
    throw unsupported(extra ?? n, q, 'vector matching and bool modifiers');
  }
  const [l, opNode, r] = parts;
  const op = ARITH_OPS[opNode.name];
  if (op === undefined) throw unsupported(opNode, q, `the operator ${text(opNode, q)} (only + - * / % ^ with a scalar are)`);
  const lhs = toExpr(l, q);
  const rhs = toExpr(r, q);
  if (!isScalar(lhs) && !isScalar(rhs)) throw unsupported(n, q, 'arithmetic between two vectors (one side must be a number)');
  return { kind: 'binary', op, lhs, rhs };
}

/** True when the expression is a scalar (number literals and arithmetic between them). */
export function isScalar(e: Expr): boolean {
  switch (e.kind) {
    case 'number': return true;
    case 'negate': return isScalar(e.expr);
    case 'binary': return isScalar(e.lhs) && isScalar(e.rhs);
    default: return false;
  }
}
