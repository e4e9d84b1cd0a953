/**
 * /analytics (seed: a click/impression counter), for its clients unchanged.
 *
 *   POST /analytics?timestamp={millis}&user={user_id}&event={click|impression}
 *     The user is the device, the event a metric (`click` or `impression`) of value 1 at the
 *     timestamp. Goes through Ingest like POST /v1/events (validation, WAL, durable ack).
 *     204 empty; 400 {error, code} naming the parameter; 500 {error, code} + Retry-After when
 *     nothing could be kept (rings full, storage full or faulty, stopping): the seed's clients
 *     know 500 as "server failure".
 *   GET /analytics?timestamp={millis}
 *     200 {"unique_users":N,"clicks":N,"impressions":N} for the UTC hour that holds the
 *     timestamp; 400 {error, code}. clicks and impressions are the fleet counts of the hour
 *     (fleetSeries); unique_users the exact distinct users with a click or an impression in it
 *     (distinctDevices: a user who did both counts once). Both read open panes and rollups, so a
 *     past hour answers the same after it closed and after a restart.
 *
 * `timestamp` takes epoch milliseconds (the seed's form) or ISO-8601. Front-end thread only.
 */

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import {
  SluiceError, isValidDeviceId, parseTimeParam, toEpochMs, epochMsMin, numericTimestampProblem, EPOCH_MS_MAX, DEVICE_ID_LENGTH_MAX,
  type TimePrecision,
  type DistinctDevicesResult, type FleetSeriesResult,
} from '../protocol';
import type { Ingest } from './ingest';
import type { ShardPool } from './shard-pool';
import { type Answerable, type OneEventAnswer, answerLater, answerOneEvent, precisionParam, sendError } from './http-util';

export interface AnalyticsRoutesOptions {
  backpressureWaitMs: number;
  /** the configured rollup resolutions (--resolutions) */
  resolutionsMs: number[];
}

export const ANALYTICS_EVENTS = ['click', 'impression'] as const;
const HOUR_MS = 3_600_000;

function bad(message: string): SluiceError {
  return new SluiceError('SLUICE_E_BAD_PARAM', message);
}

function timestampParam(q: URLSearchParams): number {
  const text = q.get('timestamp');
  if (text === null || text === '') throw bad('timestamp: missing (epoch milliseconds)');
  const t = parseTimeParam(text);
  if (Number.isNaN(t)) throw bad(`timestamp: ${JSON.stringify(text)} is neither epoch milliseconds nor ISO-8601`);
  return t;
}

/**
 * GET's timestamp: an hour to count, read as POST reads its timestamp (digits in `precision`, an
 * unqualified number below 10^11 refused as looking like seconds), or ISO-8601.
 */
function hourParam(q: URLSearchParams, precision: TimePrecision | null): number {
  const text = q.get('timestamp');
  if (text === null || !/^\d{1,20}$/.test(text)) return timestampParam(q);
  const raw = Number(text);
  const ms = toEpochMs(raw, precision);
  if (ms >= epochMsMin(precision) && ms <= EPOCH_MS_MAX) return ms;
  throw bad(numericTimestampProblem('timestamp', raw, precision, EPOCH_MS_MAX, 0).reason);
}

/** The JSON event a POST stands for, or a SluiceError naming the parameter. */
export function analyticsEvent(q: URLSearchParams): string {
  const text = q.get('timestamp');
  // digits stay a number, so that ?precision= and the event's own checks apply as on /v1/events;
  // anything else must be ISO-8601 (timestampParam throws naming the parameter)
  let timestamp: number | string;
  if (text !== null && /^\d{1,20}$/.test(text)) timestamp = Number(text);
  else {
    timestampParam(q);
    timestamp = text as string;
  }
  const user = q.get('user');
  if (user === null || user === '') throw bad('user: missing');
  if (!isValidDeviceId(user)) throw bad(`user: ${JSON.stringify(user)} must be 1-${DEVICE_ID_LENGTH_MAX} characters of [A-Za-z0-9_.:-]`);
  const event = q.get('event');
  if (event === null || event === '') throw bad(`event: missing (${ANALYTICS_EVENTS.join(' or ')})`);
  if (!(ANALYTICS_EVENTS as readonly string[]).includes(event)) throw bad(`event: ${JSON.stringify(event)} is not one of ${ANALYTICS_EVENTS.join(', ')}`);
  return JSON.stringify({ deviceId: user, timestamp, metrics: { [event]: 1 } });
}

/**
 * The resolution an hour is read at: 1 h when configured, else the coarsest configured resolution
 * that divides an hour (an hour is then several windows), else null (no exact hour possible).
 */
export function hourResolution(resolutionsMs: readonly number[]): number | null {
  let best: number | null = null;
  for (const r of resolutionsMs) if (HOUR_MS % r === 0 && (best === null || r > best)) best = r;
  return best;
}

export function registerAnalyticsRoutes(app: TemplatedApp, ingest: Ingest, shards: ShardPool, opts: AnalyticsRoutesOptions): void {
  const hourRes = hourResolution(opts.resolutionsMs);

  app.post('/analytics', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const q = new URLSearchParams(req.getQuery() ?? '');
    const precision = precisionParam(a, q);
    if (precision === false) return;
    let event: string;
    try {
      event = analyticsEvent(q);
    } catch (e) {
      sendError(a, 400, (e as SluiceError).code ?? 'SLUICE_E_BAD_PARAM', (e as Error).message);
      return;
    }
    ingest.submit({ kind: 'json', body: Buffer.from(event), pinned: null, deviceSeq: null, waitMs: opts.backpressureWaitMs, precision },
      (o) => answerOneEvent(a, o, ONE_EVENT));
  });

  app.get('/analytics', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const q = new URLSearchParams(req.getQuery() ?? '');
    const precision = precisionParam(a, q);
    if (precision === false) return;
    answerLater(a, (async (): Promise<[number, unknown]> => {
      const t = hourParam(q, precision);
      if (hourRes === null) throw new Error(`no configured resolution divides an hour (--resolutions ${opts.resolutionsMs.join(',')} ms)`);
      return [200, await hourCounts(shards, Math.floor(t / HOUR_MS) * HOUR_MS, hourRes)];
    })(), 'analytics');
  });
}

export async function hourCounts(shards: ShardPool, hourStart: number, resolutionMs: number): Promise<{ unique_users: number; clicks: number; impressions: number }> {
  const from = hourStart;
  const to = hourStart + HOUR_MS;
  const count = async (metric: string): Promise<number> => {
    const parts = await shards.runAll<FleetSeriesResult>({ kind: 'fleetSeries', metric, from, to, resolutionMs });
    let n = 0;
    for (const p of parts) for (const w of p.windows) n += w.count;
    return n;
  };
  const [clicks, impressions, users] = await Promise.all([
    count('click'),
    count('impression'),
    shards.runAll<DistinctDevicesResult>({ kind: 'distinctDevices', metrics: [...ANALYTICS_EVENTS], from, to, resolutionMs }),
  ]);
  return { unique_users: users.reduce((n, p) => n + p.devices, 0), clicks, impressions };
}

// the event was built from the query: a rejection names the parameter the client sent; the
// seed's clients know 500 as "server failure"
const ONE_EVENT: OneEventAnswer = { failStatus: 500, badCode: 'SLUICE_E_BAD_PARAM', reason: (r) => r.replace(/^deviceId:/, 'user:') };
