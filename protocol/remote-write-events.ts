/**
 * Prometheus series onto Sluice events: one event per sample,
 * `{deviceId, timestamp, metrics: {name: value}, tags}`.
 *
 * - deviceId: the value of the device label (--prom-device-label, `instance` by default, e.g.
 *   `127.0.0.1:9090`); characters outside [A-Za-z0-9_.:-] become `_`. A series without it is
 *   refused (its samples are invalid: the route answers 400).
 * - metric: `__name__`, characters outside [A-Za-z0-9_.] (a recording rule's `:`) become `_`;
 *   a series without it is refused.
 * - a name or deviceId still too long (Prometheus 2.42's own
 *   `prometheus_remote_storage_string_interner_zero_reference_releases_total` has 71 characters)
 *   is shortened, not refused (a refusal would fail every request that carries it, each scrape):
 *   its first 64 - 9 (deviceId: 128 - 9) characters, `_`, and 8 hex digits of the FNV-1a hash of
 *   the whole mapped name, so that the same name always maps the same way and two long names
 *   that share their start stay apart.
 * - tags: every other label. One Sluice refuses (a name over 64 characters or outside
 *   [A-Za-z0-9_.], a value over 256 characters) is dropped from the tags and counted, the sample
 *   kept: tags are not aggregated, and a label must not cost its reading.
 * - a staleness marker (NaN 0x7ff0000000000002) is no reading: skipped and counted. Any other NaN
 *   or ±Inf is a valid Prometheus sample that Sluice cannot aggregate (values are finite): skipped
 *   and counted too, not refused, since Prometheus would log a failed request for every summary
 *   quantile that is NaN between observations. Native histograms and exemplars are counted, not read.
 *
 * Series that differ only by labels other than the device label map to one Sluice metric: their
 * samples merge in its windows until tags are aggregated.
 *
 * Contract: pure, any thread; never throws on input (every series maps to events or refusals).
 */

import type { ErrorCode } from './errors';
import { DEVICE_ID_LENGTH_MAX, METRIC_NAME_LENGTH_MAX, TAG_NAME_LENGTH_MAX, TAG_VALUE_LENGTH_MAX, isValidDeviceId, isValidMetricName } from './event';
import type { SeriesView, WriteRequestView } from './remote-write';

export interface PromEvent {
  deviceId: string;
  timestamp: number;
  metrics: Record<string, number>;
  tags: Record<string, string>;
}

/** At most this many refusal reasons are kept word for word; the others are counted by code. */
export const REFUSAL_REASONS_MAX = 5;
/** A series named in a reason is cut to this many characters. */
const SERIES_TEXT_MAX = 160;
/** Entries of the name-mapping caches; past it a cache starts over (names come from scraped targets). */
const NAME_CACHE_MAX = 50_000;

/** Samples refused: a count per code and the first few reasons word for word. */
export class RefusalTally {
  total = 0;
  readonly byCode = new Map<ErrorCode, number>();
  readonly first: { code: ErrorCode; reason: string }[] = [];

  /** reason: built only while fewer than REFUSAL_REASONS_MAX are kept (a function defers the work) */
  add(code: ErrorCode, reason: string | (() => string), count = 1): void {
    this.total += count;
    this.byCode.set(code, (this.byCode.get(code) ?? 0) + count);
    if (this.first.length < REFUSAL_REASONS_MAX) this.first.push({ code, reason: typeof reason === 'string' ? reason : reason() });
  }
}

export interface MappedRequest {
  events: PromEvent[];
  /** per event, the index of its series in the request (to name it in a refusal) */
  eventSeries: number[];
  refusals: RefusalTally;
  stale: number;
  nonFinite: number;
  labelsDropped: number;
}

const METRIC_CHAR_NOT = /[^A-Za-z0-9_.]/gu;
const DEVICE_CHAR_NOT = /[^A-Za-z0-9_.:-]/gu;

/** Maps Prometheus names onto Sluice's; caches the mapping (a target's names repeat every scrape). */
export class PromNameMapper {
  private readonly metrics = new Map<string, string>();
  private readonly devices = new Map<string, string>();

  constructor(readonly deviceLabel: string) {}

  /** `__name__` (not empty) as a Sluice metric name: disallowed characters `_`, shortened past 64. */
  metricName(name: string): string {
    if (isValidMetricName(name)) return name;
    return cached(this.metrics, name, () => shorten(name.replace(METRIC_CHAR_NOT, '_'), METRIC_NAME_LENGTH_MAX));
  }

  /** The device label's value (not empty) as a deviceId: disallowed characters `_`, shortened past 128. */
  deviceId(value: string): string {
    if (isValidDeviceId(value)) return value;
    return cached(this.devices, value, () => shorten(value.replace(DEVICE_CHAR_NOT, '_'), DEVICE_ID_LENGTH_MAX));
  }

  /** Maps every sample of the request (see the module header). */
  map(req: WriteRequestView): MappedRequest {
    const out: MappedRequest = { events: [], eventSeries: [], refusals: new RefusalTally(), stale: 0, nonFinite: 0, labelsDropped: 0 };
    const { values, timestamps, isStale } = req;
    for (let s = 0; s < req.series.length; s++) {
      const series = req.series[s];
      const from = series.sampleStart;
      const to = from + series.sampleCount;
      let readings = 0;
      for (let i = from; i < to; i++) {
        if (isStale[i] === 1) out.stale++;
        else if (!Number.isFinite(values[i])) out.nonFinite++;
        else readings++;
      }
      if (readings === 0) continue;
      const head = this.seriesHead(series, readings, out);
      if (typeof head === 'string') continue;
      for (let i = from; i < to; i++) {
        if (isStale[i] === 1 || !Number.isFinite(values[i])) continue;
        out.events.push({ deviceId: head.deviceId, timestamp: timestamps[i], metrics: { [head.metric]: values[i] }, tags: head.tags });
        out.eventSeries.push(s);
      }
    }
    return out;
  }

  /** deviceId, metric and tags of a series, or the refusal reason (tallied for its readings). */
  private seriesHead(series: SeriesView, readings: number, out: MappedRequest): { deviceId: string; metric: string; tags: Record<string, string> } | string {
    const labels = series.labels;
    let name: string | null = null;
    let device: string | null = null;
    const tags: Record<string, string> = {};
    for (let l = 0; l < labels.length; l += 2) {
      const k = labels[l];
      const v = labels[l + 1];
      if (k === '__name__') name = v;
      else if (k === this.deviceLabel) device = v;
      else if (isValidMetricName(k) && k.length <= TAG_NAME_LENGTH_MAX && v.length <= TAG_VALUE_LENGTH_MAX && !(k in tags)) tags[k] = v;
      else out.labelsDropped++;
    }
    if (name === null || name === '') return refuse(out, readings, 'SLUICE_E_BAD_METRIC_NAME', `series ${seriesText(labels)}: label __name__ missing`);
    const metric = this.metricName(name);
    if (device === null || device === '') {
      return refuse(out, readings, 'SLUICE_E_BAD_DEVICE_ID', `series ${seriesText(labels)}: label ${this.deviceLabel} (--prom-device-label, the deviceId) missing`);
    }
    return { deviceId: this.deviceId(device), metric, tags };
  }
}

function refuse(out: MappedRequest, readings: number, code: ErrorCode, reason: string): string {
  out.refusals.add(code, reason, readings);
  return reason;
}

/** name itself when it fits lengthMax, else its start, `_` and the 8 hex digits of its FNV-1a hash. */
export function shorten(name: string, lengthMax: number): string {
  if (name.length <= lengthMax) return name;
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return `${name.slice(0, lengthMax - 9)}_${(h >>> 0).toString(16).padStart(8, '0')}`;
}

function cached(cache: Map<string, string>, key: string, make: () => string): string {
  let v = cache.get(key);
  if (v === undefined) {
    if (cache.size >= NAME_CACHE_MAX) cache.clear();
    v = make();
    cache.set(key, v);
  }
  return v;
}

/** `name{label="value",...}` for a reason, cut to SERIES_TEXT_MAX characters. */
export function seriesText(labels: readonly string[]): string {
  let name = '';
  const parts: string[] = [];
  for (let l = 0; l < labels.length; l += 2) {
    if (labels[l] === '__name__') name = labels[l + 1];
    else parts.push(`${labels[l]}=${JSON.stringify(labels[l + 1])}`);
  }
  const text = `${name}{${parts.join(',')}}`;
  return text.length > SERIES_TEXT_MAX ? text.slice(0, SERIES_TEXT_MAX) + '…' : text;
}
