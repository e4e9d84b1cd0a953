/**
 * A Prometheus-compatible query API over Sluice's windows, enough for Grafana's built-in
 * Prometheus data source and `promtool query`:
 *   GET|POST /api/v1/query, /api/v1/query_range, /api/v1/series, /api/v1/labels
 *   GET /api/v1/label/:name/values, /api/v1/status/buildinfo
 *
 * Series and the PromQL subset: prom-source.ts and promql.ts. Answers use Prometheus's shapes:
 * `{status: "success", data}`, or `{status: "error", errorType, error}` with 400 (bad_data: the
 * query or a parameter; an unsupported PromQL part is named), 422 (execution: a limit) or 500.
 * POST takes the parameters as a form body (application/x-www-form-urlencoded), as Grafana sends
 * them, merged with the URL's.
 *
 * Resolution: a range query reads the windows of the finest --resolutions at least as long as its
 * step (the coarsest when the step is longer), so each value is one whole window; an instant query
 * reads the finest. The value at time t is the window that holds t.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { SluiceConfig } from './config';
import type { Dictionary } from './dictionary';
import type { ShardPool } from './shard-pool';
import { type Answerable, readBody, sendJson } from './http-util';
import { parsePromql, PromqlError, type Matcher } from './promql';
import { evaluate, type Value } from './promql-eval';
import { AGGREGATES, PromLimitError, ShardPromSource, promName } from './prom-source';

/** Prometheus's own bound on the points of one range query */
const POINTS_MAX = 11_000;
/** Form bodies are a query and a few parameters */
const FORM_BYTES_MAX = 256 * 1024;
/** buildinfo claims the Prometheus API version this subset follows, as other compatible servers do */
const PROMETHEUS_API_VERSION = '2.42.0';

export interface PromApiContext {
  config: SluiceConfig;
  dict: Dictionary;
  shards: ShardPool;
  version: string;
}

class BadData extends Error {}

type Params = URLSearchParams;
type Handler = (p: Params, ctx: PromApiContext, src: ShardPromSource) => Promise<unknown>;

/** Prometheus's time parameter: RFC 3339 or Unix seconds (fractions allowed). */
export function parsePromTime(name: string, raw: string | null, def: number | null): number {
  if (raw === null || raw === '') {
    if (def === null) throw new BadData(`missing parameter ${JSON.stringify(name)}`);
    return def;
  }
  if (/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) return Math.round(Number(raw) * 1000);
  const ms = Date.parse(raw);
  if (/^\d{4}-\d\d-\d\dT/.test(raw) && Number.isFinite(ms)) return ms;
  throw new BadData(`invalid parameter ${JSON.stringify(name)}: cannot parse ${JSON.stringify(raw)} to a valid timestamp`);
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };

/** Prometheus's duration parameter: `1h30m`, `15s`, or seconds as a number. */
export function parsePromDuration(name: string, raw: string | null): number {
  if (raw === null || raw === '') throw new BadData(`missing parameter ${JSON.stringify(name)}`);
  if (/^\d+(\.\d+)?$/.test(raw)) return Math.round(Number(raw) * 1000);
  const re = /(\d+)(ms|s|m|h|d|w|y)/y;
  let ms = 0;
  let at = 0;
  while (at < raw.length) {
    re.lastIndex = at;
    const m = re.exec(raw);
    if (m === null) throw new BadData(`invalid parameter ${JSON.stringify(name)}: cannot parse ${JSON.stringify(raw)} to a valid duration`);
    ms += Number(m[1]) * DURATION_UNIT_MS[m[2]];
    at = re.lastIndex;
  }
  return ms;
}

/** Go's strconv.FormatFloat(v, 'f', -1, 64) for the values Prometheus writes as strings. */
export function formatSample(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  const s = String(v);
  if (!s.includes('e')) return s;
  if (Number.isInteger(v)) return BigInt(v).toString();
  return v.toFixed(20).replace(/0+$/, '').replace(/\.$/, '');
}

function resolutionForStep(stepMs: number, resolutions: readonly number[]): number {
  for (const r of resolutions) if (r >= stepMs) return r;
  return resolutions[resolutions.length - 1];
}

function query(p: Params): string {
  const q = p.get('query');
  if (q === null || q === '') throw new BadData('missing parameter "query"');
  return q;
}

function instantResult(v: Value, t: number): unknown {
  const ts = t / 1000;
  if (v.kind === 'scalar') return { resultType: 'scalar', result: [ts, formatSample(v.values[0])] };
  return {
    resultType: 'vector',
    result: v.series.filter((s) => s.has[0] === 1).map((s) => ({ metric: s.labels, value: [ts, formatSample(s.values[0])] })),
  };
}

function rangeResult(v: Value, times: number[]): unknown {
  if (v.kind === 'scalar') {
    return { resultType: 'matrix', result: [{ metric: {}, values: times.map((t, i) => [t / 1000, formatSample(v.values[i])]) }] };
  }
  return {
    resultType: 'matrix',
    result: v.series.map((s) => {
      const values: [number, string][] = [];
      for (let i = 0; i < times.length; i++) if (s.has[i] === 1) values.push([times[i] / 1000, formatSample(s.values[i])]);
      return { metric: s.labels, values };
    }).filter((s) => s.values.length > 0),
  };
}

const instantQuery: Handler = async (p, ctx, src) => {
  const q = query(p);
  const t = parsePromTime('time', p.get('time'), Date.now());
  const expr = parsePromql(q);
  const v = await evaluate(expr, { times: [t], resolutionMs: ctx.config.resolutionsMs[0] }, src);
  return instantResult(v, t);
};

const rangeQuery: Handler = async (p, ctx, src) => {
  const q = query(p);
  const start = parsePromTime('start', p.get('start'), null);
  const end = parsePromTime('end', p.get('end'), null);
  const step = parsePromDuration('step', p.get('step'));
  if (end < start) throw new BadData('invalid parameter "end": end timestamp must not be before start time');
  if (step <= 0) throw new BadData('zero or negative query resolution step widths are not accepted. Try a positive integer');
  if ((end - start) / step + 1 > POINTS_MAX) throw new BadData(`exceeded maximum resolution of ${POINTS_MAX} points per timeseries. Try decreasing the query resolution (?step=XX)`);
  const times: number[] = [];
  for (let t = start; t <= end; t += step) times.push(t);
  const expr = parsePromql(q);
  const v = await evaluate(expr, { times, resolutionMs: resolutionForStep(step, ctx.config.resolutionsMs) }, src);
  return rangeResult(v, times);
};

/** The selectors of match[] (each must be a plain selector). */
function selectorsOf(p: Params): Matcher[][] {
  const all = p.getAll('match[]');
  if (all.length === 0) throw new BadData('no match[] parameter provided');
  return all.map((m) => {
    const e = parsePromql(m);
    if (e.kind !== 'selector') throw new BadData(`match[] must be a series selector, got ${JSON.stringify(m)}`);
    return e.matchers;
  });
}

const series: Handler = async (p, _ctx, src) => {
  const seen = new Map<string, Record<string, string>>();
  for (const matchers of selectorsOf(p)) {
    const cands = src.candidates(matchers);
    if (cands.length === 0) continue;
    const devices = await src.devices(matchers, new Set(cands.map((c) => c.metric)));
    for (const d of devices) {
      for (const c of cands) {
        if (!d.metrics.includes(c.metric)) continue;
        const labels: Record<string, string> = { __name__: c.name, device: d.deviceId, metric: c.metric };
        const key = `${c.name}\u0000${d.deviceId}\u0000${c.metric}`;
        if (!seen.has(key)) seen.set(key, labels);
      }
    }
  }
  return [...seen.values()];
};

const labels: Handler = async () => ['__name__', 'device', 'metric', 'quantile'];

const buildinfo: Handler = async (_p, ctx) => ({
  version: PROMETHEUS_API_VERSION, revision: `sluice-${ctx.version}`, branch: 'sluice', buildUser: 'sluice', buildDate: '', goVersion: '',
});

async function labelValues(name: string, ctx: PromApiContext, src: ShardPromSource): Promise<string[]> {
  switch (name) {
    case '__name__':
      return [...new Set(ctx.dict.metricNames.flatMap((m) => AGGREGATES.map((a) => promName(m, a))))].sort();
    case 'metric':
      return [...ctx.dict.metricNames].sort();
    case 'quantile':
      return ctx.config.quantiles.map(String);
    case 'device': {
      const all = await src.devices([{ name: 'device', op: '=~', value: '.+', re: /^(?:.+)$/ }], new Set(ctx.dict.metricNames));
      return all.map((d) => d.deviceId).sort();
    }
    default:
      return [];
  }
}

function sendProm(a: Answerable, status: number, body: unknown): void {
  sendJson(a, status, JSON.stringify(body));
}

function answer(a: Answerable, run: () => Promise<unknown>): void {
  run().then(
    (data) => sendProm(a, 200, { status: 'success', data }),
    (err: unknown) => {
      if (err instanceof BadData || err instanceof PromqlError) sendProm(a, 400, { status: 'error', errorType: 'bad_data', error: (err as Error).message });
      // a stack overflow on a client's query (a selector's matchers, a regex): its fault, not ours
      else if (err instanceof RangeError && /call stack/.test(err.message)) sendProm(a, 400, { status: 'error', errorType: 'bad_data', error: `the query is too complex to evaluate: ${err.message}` });
      else if (err instanceof PromLimitError) sendProm(a, 422, { status: 'error', errorType: 'execution', error: err.message });
      else sendProm(a, 500, { status: 'error', errorType: 'internal', error: (err as Error).message });
    },
  );
}

/** GET and POST of one path; POST's form body joins the URL's parameters. */
function both(app: TemplatedApp, pattern: string, ctx: PromApiContext, src: ShardPromSource, h: Handler): void {
  app.get(pattern, (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const p = new URLSearchParams(req.getQuery() ?? '');
    answer(a, () => h(p, ctx, src));
  });
  app.post(pattern, (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const p = new URLSearchParams(req.getQuery() ?? '');
    const contentLength = Number(req.getHeader('content-length') || '0');
    readBody(a, contentLength, FORM_BYTES_MAX, 'identity', (body) => {
      for (const [k, v] of new URLSearchParams(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'))) p.append(k, v);
      answer(a, () => h(p, ctx, src));
    });
  });
}

export function registerPromApiRoutes(app: TemplatedApp, ctx: PromApiContext): void {
  const src = new ShardPromSource(ctx.dict, ctx.shards, ctx.config.quantiles);
  both(app, '/api/v1/query', ctx, src, instantQuery);
  both(app, '/api/v1/query_range', ctx, src, rangeQuery);
  both(app, '/api/v1/series', ctx, src, series);
  both(app, '/api/v1/labels', ctx, src, labels);
  app.get('/api/v1/label/:name/values', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const raw = req.getParameter(0) ?? '';
    answer(a, async () => {
      let name: string;
      try {
        name = decodeURIComponent(raw);
      } catch {
        throw new BadData(`invalid label name ${JSON.stringify(raw)}: bad percent-encoding`);
      }
      return labelValues(name, ctx, src);
    });
  });
  app.get('/api/v1/status/buildinfo', (res: HttpResponse) => {
    const a: Answerable = { res, aborted: false };
    answer(a, () => buildinfo(new URLSearchParams(), ctx, src));
  });
}
