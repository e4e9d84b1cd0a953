/**
 * GET /v1/late?deviceId=&from=&to=&limit=: late events (newest first, by when they arrived):
 * corrections (`correction: true`: for windows already final, kept in the aggregates) and the
 * ones beyond --late-horizon (refused from the aggregates), and how many of each every device and
 * metric had (`count`: refused, `corrections`). The late log keeps the last --late-log-size per
 * shard; the counts are never trimmed.
 */

import type { TemplatedApp } from 'uWebSockets.js';
import { SluiceError, isValidDeviceId, parseTimeParam } from '../protocol';
import type { LateCount, LateEntry, RollupStore } from '../storage';
import type { Dictionary } from './dictionary';
import { type Answerable, sendError, sendJson } from './http-util';
import { parseIntParam } from './query-params';
import type { ShardPool } from './shard-pool';

const LIMIT_MAX = 10_000;

export function registerLateRoutes(app: TemplatedApp, rollups: RollupStore, dict: Dictionary, shards: ShardPool): void {
  app.get('/v1/late', (res, req) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    const query = new URLSearchParams(req.getQuery() ?? '');
    // the workers write the late log: let them apply what was acknowledged and commit it first
    shards.runAll({ kind: 'sync' }).then(() => {
      const body = late(query, rollups, dict, shards.shards.length);
      sendJson(a, 200, JSON.stringify(body));
    }).catch((err: unknown) => {
      if (err instanceof SluiceError) sendError(a, 400, err.code, err.message);
      else sendError(a, 500, 'SLUICE_E_INTERNAL', `late query failed: ${(err as Error).message}`);
    });
  });
}

function time(p: URLSearchParams, name: string, def: number): number {
  const text = p.get(name);
  if (text === null || text === '') return def;
  const t = parseTimeParam(text);
  if (Number.isNaN(t)) throw new SluiceError('SLUICE_E_BAD_PARAM', `${name}: ${JSON.stringify(text)} is neither epoch milliseconds nor ISO-8601`);
  return t;
}

function late(p: URLSearchParams, rollups: RollupStore, dict: Dictionary, shards: number) {
  const deviceId = p.get('deviceId');
  if (deviceId !== null && !isValidDeviceId(deviceId)) {
    throw new SluiceError('SLUICE_E_BAD_PARAM', `deviceId: ${JSON.stringify(deviceId)} must be 1-128 characters of [A-Za-z0-9_.:-]`);
  }
  const from = time(p, 'from', 0);
  const to = time(p, 'to', Number.MAX_SAFE_INTEGER);
  const limit = parseIntParam(p, 'limit', 100, 1, LIMIT_MAX);
  const device = deviceId === null ? null : dict.lookupDevice(deviceId);
  if (device === -1) return { events: [], counts: [], total: 0 };
  const events: (LateEntry & { deviceId: string; metricName: string })[] = [];
  for (let s = 0; s < shards; s++) {
    let taken = 0;
    for (const { value } of rollups.lateEntries(s, Number.MAX_SAFE_INTEGER, true)) {
      const e = value as LateEntry;
      if ((device !== null && e.device !== device) || e.ts < from || e.ts >= to) continue;
      events.push({ ...e, deviceId: dict.deviceName(e.device), metricName: dict.metricNames[e.metric] });
      if (++taken >= limit) break;
    }
  }
  events.sort((x, y) => y.at - x.at);
  const counts: { deviceId: string; metric: string; count: number; corrections: number }[] = [];
  let total = 0;
  let corrections = 0;
  for (const { key, value } of rollups.lateCounts(device, LIMIT_MAX)) {
    const c = value as LateCount;
    counts.push({ deviceId: dict.deviceName(key[1] as number), metric: dict.metricNames[key[2] as number], count: c.count, corrections: c.corrections ?? 0 });
    total += c.count;
    corrections += c.corrections ?? 0;
  }
  return {
    events: events.slice(0, limit).map((e) => ({
      deviceId: e.deviceId, metric: e.metricName, timestamp: e.ts, value: e.value, receivedAt: e.at, correction: e.correction === true,
    })),
    counts,
    total,
    corrections,
  };
}
