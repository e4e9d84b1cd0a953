/**
 * The event schema and its validation.
 *
 * An event is `{deviceId, timestamp, metrics: {name: number}, tags?: {name: string}}`, or the
 * seeds' flat shapes (`{deviceId, timestamp, cpu, clientVersion}`, `{deviceId, timestamp,
 * cpuUsage}`, sensor readings) where every other numeric field is a metric and every string field
 * a tag. validateEvent() fills a reusable EventScratch (no allocation per event) or reports one
 * rejection whose reason names the field. Tags are validated; they are not aggregated yet.
 */

import type { ErrorCode } from './errors';
import { type TimePrecision, epochMsMin, formatTime, numericTimestampProblem, parseIsoTimestamp, toEpochMs } from './time';

export const DEVICE_ID_LENGTH_MAX = 128;
export const METRIC_NAME_LENGTH_MAX = 64;
export const TAG_NAME_LENGTH_MAX = 64;
export const TAG_VALUE_LENGTH_MAX = 256;

export interface EventLimits {
  batchEventsMax: number;
  metricsPerEventMax: number;
  futureSkewMs: number;
}

/** [A-Za-z0-9_.:-], 1-128 chars */
export function isValidDeviceId(s: string): boolean {
  const n = s.length;
  if (n === 0 || n > DEVICE_ID_LENGTH_MAX) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 58) || c === 95 || c === 46 || c === 45;
    if (!ok) return false;
  }
  return true;
}

/** [A-Za-z0-9_.], 1-64 chars */
export function isValidMetricName(s: string): boolean {
  const n = s.length;
  if (n === 0 || n > METRIC_NAME_LENGTH_MAX) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 46;
    if (!ok) return false;
  }
  return true;
}

/**
 * A value as a rejection reason shows it: strings quoted and cut at 40 characters, arrays and
 * objects by their kind. Never throws, whatever the value's depth or size (JSON.stringify of a
 * client's deeply nested array overflows the stack).
 */
export function describeValue(v: unknown): string {
  return quote(v);
}

function quote(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** One validated event, reused across a batch. */
export class EventScratch {
  deviceId = '';
  timestamp = 0;
  metricCount = 0;
  readonly names: string[];
  readonly values: Float64Array;
  errorCode: ErrorCode = 'SLUICE_E_BAD_EVENT';
  errorReason = '';
  /** the unit of numeric timestamps in the batch being validated (null: unqualified ms) */
  precision: TimePrecision | null = null;

  constructor(readonly limits: EventLimits) {
    this.names = new Array<string>(limits.metricsPerEventMax).fill('');
    this.values = new Float64Array(limits.metricsPerEventMax);
  }

  fail(code: ErrorCode, reason: string): false {
    this.errorCode = code;
    this.errorReason = reason;
    return false;
  }

  private addMetric(name: string, value: unknown, field: string): boolean {
    if (!isValidMetricName(name)) {
      return this.fail('SLUICE_E_BAD_METRIC_NAME', `${field}: metric name ${quote(name)} must be 1-${METRIC_NAME_LENGTH_MAX} characters of [A-Za-z0-9_.]`);
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      return this.fail('SLUICE_E_BAD_METRIC_VALUE', `${field}: must be a finite number, got ${quote(value)}`);
    }
    if (this.metricCount >= this.limits.metricsPerEventMax) {
      return this.fail('SLUICE_E_TOO_MANY_METRICS', `metrics: more than ${this.limits.metricsPerEventMax} metrics in one event`);
    }
    this.names[this.metricCount] = name;
    this.values[this.metricCount] = value;
    this.metricCount++;
    return true;
  }

  private checkTag(name: string, value: unknown, field: string): boolean {
    if (!isValidMetricName(name) || name.length > TAG_NAME_LENGTH_MAX) {
      return this.fail('SLUICE_E_BAD_TAG', `${field}: tag name ${quote(name)} must be 1-${TAG_NAME_LENGTH_MAX} characters of [A-Za-z0-9_.]`);
    }
    if (typeof value !== 'string' || value.length > TAG_VALUE_LENGTH_MAX) {
      return this.fail('SLUICE_E_BAD_TAG', `${field}: must be a string of at most ${TAG_VALUE_LENGTH_MAX} characters, got ${quote(value)}`);
    }
    return true;
  }

  /**
   * Validates one decoded event. pinnedDevice: the device a WebSocket connection is pinned to
   * (events may omit deviceId, and may not name another), else null. nowMs bounds the future.
   */
  validate(raw: unknown, pinnedDevice: string | null, nowMs: number): boolean {
    this.metricCount = 0;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return this.fail('SLUICE_E_BAD_EVENT', `event must be an object, got ${quote(raw)}`);
    }
    const ev = raw as Record<string, unknown>;
    const dev = ev.deviceId;
    if (dev === undefined && pinnedDevice !== null) {
      this.deviceId = pinnedDevice;
    } else if (typeof dev !== 'string' || !isValidDeviceId(dev)) {
      return this.fail('SLUICE_E_BAD_DEVICE_ID', dev === undefined
        ? 'deviceId: missing'
        : `deviceId: must be 1-${DEVICE_ID_LENGTH_MAX} characters of [A-Za-z0-9_.:-], got ${quote(dev)}`);
    } else if (pinnedDevice !== null && dev !== pinnedDevice) {
      return this.fail('SLUICE_E_DEVICE_MISMATCH', `deviceId: ${quote(dev)} on a connection pinned to ${quote(pinnedDevice)}`);
    } else {
      this.deviceId = dev;
    }
    const tsRaw = ev.timestamp;
    let ts: number;
    if (typeof tsRaw === 'number') {
      ts = toEpochMs(tsRaw, this.precision);
      const futureMax = nowMs + this.limits.futureSkewMs;
      // negated so that NaN fails too
      if (!(ts >= epochMsMin(this.precision) && ts <= futureMax)) {
        const p = numericTimestampProblem('timestamp', tsRaw, this.precision, futureMax, this.limits.futureSkewMs);
        return this.fail(p.code, p.reason);
      }
    } else if (typeof tsRaw === 'string') {
      ts = parseIsoTimestamp(tsRaw);
      if (!(ts >= 0)) {
        return this.fail('SLUICE_E_BAD_TIMESTAMP', Number.isNaN(ts)
          ? `timestamp: must be epoch milliseconds or an ISO-8601 string, got ${quote(tsRaw)}`
          : `timestamp: ${quote(tsRaw)} is before 1970-01-01`);
      }
      if (ts > nowMs + this.limits.futureSkewMs) {
        return this.fail('SLUICE_E_FUTURE_TIMESTAMP', `timestamp: ${formatTime(ts)} is more than ${this.limits.futureSkewMs} ms in the future`);
      }
    } else {
      return this.fail('SLUICE_E_BAD_TIMESTAMP', tsRaw === undefined
        ? 'timestamp: missing'
        : `timestamp: must be epoch milliseconds or an ISO-8601 string, got ${quote(tsRaw)}`);
    }
    this.timestamp = ts;
    return ev.metrics !== undefined ? this.readNested(ev) : this.readFlat(ev);
  }

  private readNested(ev: Record<string, unknown>): boolean {
    const metrics = ev.metrics;
    if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) {
      return this.fail('SLUICE_E_BAD_METRIC_VALUE', `metrics: must be an object of name: number, got ${quote(metrics)}`);
    }
    for (const key in ev) {
      if (key !== 'deviceId' && key !== 'timestamp' && key !== 'metrics' && key !== 'tags') {
        return this.fail('SLUICE_E_BAD_EVENT', `${key}: unexpected field (an event with a metrics object carries only deviceId, timestamp, metrics, tags)`);
      }
    }
    const m = metrics as Record<string, unknown>;
    for (const name in m) {
      if (!this.addMetric(name, m[name], `metrics.${name}`)) return false;
    }
    const tags = ev.tags;
    if (tags !== undefined) {
      if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) {
        return this.fail('SLUICE_E_BAD_TAG', `tags: must be an object of name: string, got ${quote(tags)}`);
      }
      const tg = tags as Record<string, unknown>;
      for (const name in tg) {
        if (!this.checkTag(name, tg[name], `tags.${name}`)) return false;
      }
    }
    if (this.metricCount === 0) return this.fail('SLUICE_E_NO_METRICS', 'metrics: the event carries no metric');
    return true;
  }

  private readFlat(ev: Record<string, unknown>): boolean {
    for (const key in ev) {
      if (key === 'deviceId' || key === 'timestamp') continue;
      const v = ev[key];
      if (typeof v === 'number') {
        if (!this.addMetric(key, v, key)) return false;
      } else if (typeof v === 'string') {
        if (!this.checkTag(key, v, key)) return false;
      } else if (key === 'tags' && typeof v === 'object' && v !== null && !Array.isArray(v)) {
        const tg = v as Record<string, unknown>;
        for (const name in tg) {
          if (!this.checkTag(name, tg[name], `tags.${name}`)) return false;
        }
      } else {
        return this.fail('SLUICE_E_BAD_METRIC_VALUE', `${key}: must be a finite number (a metric) or a string (a tag), got ${quote(v)}`);
      }
    }
    if (this.metricCount === 0) {
      return this.fail('SLUICE_E_NO_METRICS', 'metrics: the event carries no metric (give a metrics object or numeric fields)');
    }
    return true;
  }
}
