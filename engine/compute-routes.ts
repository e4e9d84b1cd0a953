/**
 * POST /compute/metrics (seed: a sensor-metrics service), for its clients unchanged.
 *
 * Body: `{"temperature":["count","min"],"humidity":["average","max"],"from":"2020-01-13 15:12:00","to":"2020-01-13 15:13:00"}`.
 * A sensor is a metric name, merged over every device (engine/sensor-query.ts); the metrics to
 * compute are count, average, mean (= average), max, min. `from` and `to` are UTC, read to the
 * second, both included: the readings of [from's second, to's second + 1 s). They take the seed's
 * `YYYY-MM-DD hh:mm:ss` or any ISO-8601 (or epoch ms). The body is read as JSON whatever the
 * Content-Type, gzip or deflate compressed when Content-Encoding says so, and a trailing comma
 * before `}` or `]` is tolerated (the seed's own curl example has one).
 *
 *   200 {"result":{sensor:{metric:value}},"errors":[...]}: the valid parts are computed, the
 *       others named in `errors` with the seed's messages ("Unexpected metric wrongMetric to
 *       compute for the sensor temperature", "Unexpected key wrongKey in the request body"). A
 *       sensor with no reading in the range: count 0, the others null.
 *   400 {"result":{},"errors":[...],"code":...}: nothing valid to compute, from/to missing or
 *       malformed, or the body is not a non-empty JSON object.
 *   400 {error, code} SLUICE_E_BAD_BODY: a compressed body that does not inflate.
 *   413 {error, code} over --body-max (as sent, and once decompressed); 415 {error, code} a
 *       Content-Encoding other than identity, gzip, x-gzip, deflate;
 *   500 {"result":{},"errors":[...],"code":"SLUICE_E_INTERNAL"}.
 *
 * A key is a sensor when some event has named that metric (the engine's dictionary); any other
 * key but from/to is unexpected, as in the seed. Front-end thread only.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { SluiceError, parseTimestamp, type ErrorCode } from '../protocol';
import type { Dictionary } from './dictionary';
import type { ShardPool } from './shard-pool';
import { type Answerable, bodyEncodingParam, refuseOversized, readBody, sendJson } from './http-util';
import { querySensor, type SensorAggregate } from './sensor-query';

export const COMPUTE_METRICS = ['count', 'average', 'mean', 'max', 'min'] as const;
export type ComputeMetric = typeof COMPUTE_METRICS[number];

export interface ComputeRoutesOptions {
  bodyBytesMax: number;
}

/** A request read and checked: the sensors to compute (in body order) and what was wrong. */
export interface ComputePlan {
  from: number;
  toExclusive: number;
  sensors: [string, ComputeMetric[]][];
  errors: string[];
}

/** A request that cannot be computed at all: 400 with these errors. */
export class ComputeRefusal {
  constructor(readonly code: ErrorCode, readonly errors: string[]) {}
}

/** JSON.parse, tolerating a comma before a closing `}` or `]` (outside strings). */
export function parseLenientJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (first) {
    const stripped = withoutTrailingCommas(text);
    if (stripped === text) throw first;
    return JSON.parse(stripped);
  }
}

function withoutTrailingCommas(text: string): string {
  let out = '';
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    if (c === ',') {
      let j = i + 1;
      while (j < text.length && (text[j] === ' ' || text[j] === '\t' || text[j] === '\n' || text[j] === '\r')) j++;
      if (text[j] === '}' || text[j] === ']') continue;
    }
    out += c;
  }
  return out;
}

function shown(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
}

/** Reads a compute request as the seed does: the time range first, then every key in order. */
export function planCompute(text: string, isSensor: (name: string) => boolean): ComputePlan | ComputeRefusal {
  let body: unknown;
  try {
    body = parseLenientJson(text);
  } catch {
    body = undefined;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length === 0) {
    return new ComputeRefusal('SLUICE_E_BAD_BODY', ['body must be valid non empty json']);
  }
  const b = body as Record<string, unknown>;
  if (!('from' in b) || !('to' in b)) return new ComputeRefusal('SLUICE_E_BAD_PARAM', ['Keys "from" and "to" are required']);
  const from = parseTimestamp(b.from);
  const to = parseTimestamp(b.to);
  if (Number.isNaN(from) || Number.isNaN(to)) {
    return new ComputeRefusal('SLUICE_E_BAD_PARAM', ['Incorrect input timestamp format, should be YYYY-MM-DD hh:mm:ss']);
  }
  if (from > to) return new ComputeRefusal('SLUICE_E_BAD_PARAM', ['"from" has to be earlier than "to"']);
  const plan: ComputePlan = { from: Math.floor(from / 1000) * 1000, toExclusive: Math.floor(to / 1000) * 1000 + 1000, sensors: [], errors: [] };
  for (const key of Object.keys(b)) {
    if (key === 'from' || key === 'to') continue;
    if (!isSensor(key)) {
      plan.errors.push(`Unexpected key ${key} in the request body`);
      continue;
    }
    const wanted = b[key];
    if (!Array.isArray(wanted)) {
      plan.errors.push(`Unexpected value ${shown(wanted)} for the sensor ${key}: a list of metrics to compute (${COMPUTE_METRICS.join(', ')}) is expected`);
      continue;
    }
    const metrics: ComputeMetric[] = [];
    for (const m of wanted) {
      if (typeof m === 'string' && (COMPUTE_METRICS as readonly string[]).includes(m)) metrics.push(m as ComputeMetric);
      else plan.errors.push(`Unexpected metric ${shown(m)} to compute for the sensor ${key}`);
    }
    if (metrics.length > 0) plan.sensors.push([key, metrics]);
  }
  if (plan.sensors.length === 0) {
    const errors = plan.errors.length > 0 ? plan.errors
      : [`Nothing to compute: name a sensor with a list of metrics (${COMPUTE_METRICS.join(', ')})`];
    return new ComputeRefusal('SLUICE_E_NOTHING_TO_COMPUTE', errors);
  }
  return plan;
}

export function computeValue(agg: SensorAggregate, metric: ComputeMetric): number | null {
  switch (metric) {
    case 'count': return agg.count;
    case 'average':
    case 'mean': return agg.count === 0 ? null : agg.sum / agg.count;
    case 'max': return agg.count === 0 ? null : agg.max;
    case 'min': return agg.count === 0 ? null : agg.min;
  }
}

export async function compute(plan: ComputePlan, shards: ShardPool, dict: Dictionary): Promise<Record<string, Record<string, number | null>>> {
  const aggs = await Promise.all(plan.sensors.map(([sensor]) => querySensor(shards, dict, sensor, plan.from, plan.toExclusive)));
  const result: Record<string, Record<string, number | null>> = {};
  plan.sensors.forEach(([sensor, metrics], i) => {
    const values: Record<string, number | null> = result[sensor] ?? {};
    for (const m of metrics) values[m] = computeValue(aggs[i], m);
    result[sensor] = values;
  });
  return result;
}

function refuse(a: Answerable, status: number, code: ErrorCode, errors: string[]): void {
  sendJson(a, status, JSON.stringify({ result: {}, errors, code }));
}

export function registerComputeRoutes(app: TemplatedApp, dict: Dictionary, shards: ShardPool, opts: ComputeRoutesOptions): void {
  const isSensor = (name: string): boolean => dict.lookupMetric(name) >= 0;
  app.post('/compute/metrics', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const contentLength = Number(req.getHeader('content-length') || '0');
    const encoding = bodyEncodingParam(a, req.getHeader('content-encoding'));
    if (encoding === false) return;
    if (refuseOversized(a, contentLength, opts.bodyBytesMax)) return;
    readBody(a, contentLength, opts.bodyBytesMax, encoding, (body) => {
      const plan = planCompute(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'), isSensor);
      if (plan instanceof ComputeRefusal) {
        refuse(a, 400, plan.code, plan.errors);
        return;
      }
      compute(plan, shards, dict).then(
        (result) => sendJson(a, 200, JSON.stringify({ result, errors: plan.errors })),
        (err: unknown) => {
          if (err instanceof SluiceError) refuse(a, 400, err.code, [...plan.errors, err.message]);
          else refuse(a, 500, 'SLUICE_E_INTERNAL', [...plan.errors, `compute failed: ${(err as Error).message}`]);
        });
    });
  });
}
