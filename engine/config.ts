/**
 * The engine's settings: one table (SETTINGS) drives parsing, validation, `--help` and the start-up
 * summary, so a setting is added in exactly one place.
 *
 * Contract: loadConfig runs once on the main thread at start-up, before anything listens. It reads
 * only its arguments and, when one is named, the JSON config file; it never touches process.*.
 * Precedence per setting: CLI flag > SLUICE_* environment variable > config file > default.
 * Any bad input (unknown flag or file key, a flag without a value, an unreadable file, bad JSON, a
 * value out of range) throws a ConfigError whose message names the setting by its flag, the bad
 * value and the allowed range, so the operator can fix it from the message alone.
 * Environment variables set to the empty string count as unset; SLUICE_* variables that name no
 * setting are ignored (the environment is shared with other programs and wrappers).
 */

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { formatDuration, formatSize, parseDuration, parseSize } from '../protocol';

export interface SluiceConfig {
  /** TCP port to listen on; 0 = any free port. */
  port: number;
  /** Address to listen on. */
  host: string;
  /** Folder of the LMDB environment (WAL, checkpoints, rollups). */
  dataDir: string;
  /** Shard worker threads. */
  shards: number;
  /** Per-shard ring capacity in bytes, a power of two. */
  ringBytes: number;
  /** Bytes a shard's ring holds unapplied before ingest waits: bounds how long a query waits for the ring. */
  ringBacklogBytes: number;
  /** Base window (pane) resolution; divides one day evenly. */
  paneMs: number;
  /** Fixed histogram divisions per pane. */
  histogramDivisions: number;
  /** Lower bound of the fixed histogram. */
  histogramMin: number;
  /** Upper bound of the fixed histogram (> histogramMin). */
  histogramMax: number;
  /** Quantiles a query returns when it names none, each in [0, 1]. */
  quantiles: number[];
  /** Largest HTTP body and WebSocket frame. */
  bodyBytesMax: number;
  /** Most events in one batch. */
  batchEventsMax: number;
  /** Most metrics in one event. */
  metricsPerEventMax: number;
  /** How far into the future an event timestamp may be. */
  futureSkewMs: number;
  /** How long ingest (HTTP and WebSocket) waits for ring space before it refuses a batch. */
  backpressureWaitMs: number;
  /** Distinct devices the engine will intern. */
  devicesMax: number;
  /** When an ingest is acknowledged: after the WAL commit (durable) or on enqueue (fast). */
  ackMode: AckMode;
  /** How often each shard writes its checkpoint (and the WAL below it is deleted). */
  checkpointIntervalMs: number;
  /** Budget of the bytes kept in LMDB (WAL entries + checkpoints); over it ingest answers 503. */
  maxDbBytes: number;
  /** Event time: how far behind the newest event a shard still accepts events (watermark). */
  allowedLatenessMs: number;
  /** How late a reading may be and still be counted (a correction of a final window); older ones stay in the late log. */
  lateHorizonMs: number;
  /** Too-late events kept per shard in the late-events log. */
  lateLogSize: number;
  /** Rollup resolutions, finest (= the pane) first, each a multiple of the one before. */
  resolutionsMs: number[];
  /** Retention of rollups per resolution (key: resolution in ms; value: ms, Infinity = forever). */
  retentionMs: Record<string, number>;
  /** How often the periodic report is taken. */
  reportPeriodMs: number;
  /** Metrics the periodic report covers. */
  reportMetrics: string[];
  /** Reports kept in memory per metric. */
  reportHistory: number;
  /** pino log level. */
  logLevel: LogLevel;
  /** InfluxDB line protocol: the tag whose value is a point's deviceId. */
  lpDeviceTag: string;
  /** Prometheus remote-write: the label whose value is a sample's deviceId. */
  promDeviceLabel: string;
  /** MQTT broker to subscribe to (mqtt://host:port or mqtts://...); '' = no MQTT. */
  mqttUrl: string;
  /** MQTT topic filter to subscribe to; its single `+` level is the deviceId. */
  mqttTopic: string;
  /** MQTT client id of the persistent session (fixed, so the broker keeps what was not acknowledged). */
  mqttClientId: string;
  /** Tokens and roles on every route but /healthz, /docs, /openapi.json. */
  auth: AuthMode;
  /** Where the first start with auth on writes the admin token; '' = <data-dir>/admin.token. */
  adminTokenFile: string;
  /** PEM certificate and key: HTTPS and WSS when both are set; '' = plain HTTP. */
  tlsCert: string;
  tlsKey: string;
  /** Open connections (HTTP and WebSocket) at most; beyond, HTTP answers 503 and a WebSocket upgrade is refused. */
  connectionsMax: number;
  /** Bytes a WebSocket may hold unsent (acks a client does not read) before it is closed. */
  wsBackpressureMax: number;
  /** Frames a WebSocket connection may have admitted and not yet acknowledged; beyond, a frame waits (no read) or is refused. */
  wsInflightMax: number;
}

export const AUTH_MODES = ['on', 'off'] as const;
export type AuthMode = typeof AUTH_MODES[number];

export type SettingKey = keyof SluiceConfig;
export type SettingSource = 'default' | 'file' | 'env' | 'cli';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const ACK_MODES = ['durable', 'fast'] as const;
export type AckMode = (typeof ACK_MODES)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A raw value as it arrives: always a string from argv and env, a string or number from the file. */
type Raw = string | number;

/** How one kind of value is parsed, checked and shown. parse throws a plain Error naming the value only. */
interface Kind<T> {
  /** Placeholder in `--help`: `--port N`. */
  readonly placeholder: string;
  /** The allowed values in words, quoted by every error about this setting. */
  readonly allowed: string;
  parse(raw: Raw): T;
  format(value: T): string | number;
}

/** One row of the settings table. The flag is the name: env var and file key derive from it. */
export interface Setting<T = unknown> {
  readonly key: SettingKey;
  /** `--ring-size` */
  readonly flag: string;
  /** `SLUICE_RING_SIZE` */
  readonly env: string;
  /** `ring-size`: the key in the JSON config file. */
  readonly fileKey: string;
  readonly meaning: string;
  readonly kind: Kind<T>;
  /** The default for this machine (shards depends on the CPU count). */
  defaultValue(): T;
}

const MS_PER_DAY = 86_400_000;
const KIB = 1024;
const MIB = KIB * KIB;
const GIB = KIB * MIB;

/** Shows a raw value in a message: bare when it is plain, JSON-quoted when it could mislead. */
function show(raw: Raw): string {
  return typeof raw === 'string' && !/^[\w.:/+-]+$/.test(raw) ? JSON.stringify(raw) : String(raw);
}

function requireString(raw: Raw): string {
  if (typeof raw !== 'string') throw new Error(`${show(raw)} is not a string`);
  return raw;
}

function integer(min: number, max: number): Kind<number> {
  return {
    placeholder: 'N',
    allowed: `an integer from ${min} to ${max}`,
    parse(raw) {
      const value = typeof raw === 'number' ? raw : /^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(value)) throw new Error(`${show(raw)} is not an integer`);
      if (value < min || value > max) throw new Error(`${show(raw)} is out of range`);
      return value;
    },
    format: (value) => value,
  };
}

function parseFloatStrict(raw: Raw): number {
  const value =
    typeof raw === 'number' ? raw : /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(value)) throw new Error(`${show(raw)} is not a finite number`);
  return value;
}

function float(): Kind<number> {
  return { placeholder: 'X', allowed: 'a finite number', parse: parseFloatStrict, format: (value) => value };
}

function text(placeholder: string): Kind<string> {
  return {
    placeholder,
    allowed: 'a non-empty string',
    parse(raw) {
      const value = requireString(raw);
      if (value.trim() === '') throw new Error(`${show(raw)} is empty`);
      return value;
    },
    format: (value) => value,
  };
}

/** A broker URL, or '' (off). */
function brokerUrl(): Kind<string> {
  return {
    placeholder: 'URL',
    allowed: 'a broker URL mqtt://host:port or mqtts://host:port or empty: off',
    parse(raw) {
      const value = requireString(raw).trim();
      if (value === '') return '';
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        throw new Error(`${show(raw)} is not a URL`);
      }
      if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(url.protocol)) {
        throw new Error(`${show(raw)} has protocol ${url.protocol}, not mqtt:, mqtts:, tcp:, ssl:, ws: or wss:`);
      }
      if (url.hostname === '') throw new Error(`${show(raw)} names no host`);
      return value;
    },
    format: (value) => (value === '' ? "'' (off)" : value),
  };
}

/** An MQTT topic filter with exactly one `+` level (the deviceId) and no `#`. */
function deviceTopic(): Kind<string> {
  return {
    placeholder: 'FILTER',
    allowed: 'a topic filter with exactly one + level (the deviceId) and no #',
    parse(raw) {
      const value = requireString(raw);
      const levels = value.split('/');
      if (value === '' || levels.filter((l) => l === '+').length !== 1) throw new Error(`${show(raw)} does not have exactly one + level`);
      if (levels.includes('#')) throw new Error(`${show(raw)} has #: the deviceId level must be the only wildcard`);
      if (levels.some((l) => l !== '+' && (l.includes('+') || l.includes('#')))) throw new Error(`${show(raw)} has a wildcard inside a level`);
      return value;
    },
    format: (value) => value,
  };
}

/** A file path, or '' (not set). */
function optionalPath(placeholder: string, unset: string): Kind<string> {
  return {
    placeholder,
    allowed: `a file path, or empty: ${unset}`,
    parse(raw) {
      return requireString(raw).trim();
    },
    format: (value) => (value === '' ? `'' (${unset})` : value),
  };
}

function oneOf<T extends string>(values: readonly T[], what: string, placeholder: string): Kind<T> {
  return {
    placeholder,
    allowed: `one of ${values.join(', ')}`,
    parse(raw) {
      const value = requireString(raw);
      if (!(values as readonly string[]).includes(value)) throw new Error(`${show(raw)} is not a ${what}`);
      return value as T;
    },
    format: (value) => value,
  };
}

/** An extra rule on a parsed number: returns the complaint (`is not a power of two`) or undefined. */
type Rule = (value: number) => string | undefined;

function quantity(
  placeholder: string,
  parseUnit: (raw: Raw) => number,
  formatUnit: (value: number) => string,
  min: number,
  max: number,
  allowed: string,
  rule?: Rule,
  ruleFirst = false,
): Kind<number> {
  // The checks run in the order the allowed text states them, so the complaint matches the reading:
  // `a power of two between 64KiB and 1GiB` checks the rule first, `from 1s to 1d that divides 1d` the range.
  const inRange: Rule = (value) => (value < min || value > max ? 'is out of range' : undefined);
  const checks = rule === undefined ? [inRange] : ruleFirst ? [rule, inRange] : [inRange, rule];
  return {
    placeholder,
    allowed,
    parse(raw) {
      const value = parseUnit(raw);
      for (const check of checks) {
        const complaint = check(value);
        if (complaint !== undefined) throw new Error(`${show(raw)} ${complaint}`);
      }
      return value;
    },
    format: formatUnit,
  };
}

function duration(min: number, max: number, rule?: Rule, ruleWords = ''): Kind<number> {
  const allowed = `a duration from ${formatDuration(min)} to ${formatDuration(max)}${ruleWords}`;
  return quantity('DURATION', parseDuration, formatDuration, min, max, allowed, rule);
}

function size(min: number, max: number, rule?: Rule, ruleWords = ''): Kind<number> {
  const allowed = `${ruleWords || 'a size'} between ${formatSize(min)} and ${formatSize(max)}`;
  return quantity('SIZE', parseSize, formatSize, min, max, allowed, rule, true);
}

const powerOfTwo: Rule = (value) =>
  value > 0 && Number.isSafeInteger(value) && 2 ** Math.round(Math.log2(value)) === value
    ? undefined
    : 'is not a power of two';

const dividesDay: Rule = (value) =>
  value > 0 && MS_PER_DAY % value === 0 ? undefined : `does not divide 1d evenly`;

function quantileList(): Kind<number[]> {
  return {
    placeholder: 'Q,Q,...',
    allowed: 'a comma-separated list of numbers from 0 to 1',
    parse(raw) {
      const parts = typeof raw === 'number' ? [raw] : raw.split(',');
      if (typeof raw === 'string' && raw.trim() === '') throw new Error(`${show(raw)} is empty`);
      return parts.map((part) => {
        const value = typeof part === 'number' ? part : Number(part);
        const plain = typeof part === 'number' || /^\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(part);
        if (!plain || !Number.isFinite(value) || value < 0 || value > 1) {
          throw new Error(`${show(raw)} holds ${show(part)}, which is not a number from 0 to 1`);
        }
        return value;
      });
    },
    format: (value) => value.join(','),
  };
}

function durationList(): Kind<number[]> {
  return {
    placeholder: 'D,D,...',
    allowed: 'a comma-separated list of durations, each a multiple of the one before',
    parse(raw) {
      if (typeof raw !== 'string' || raw.trim() === '') throw new Error(`${show(raw)} is not a list of durations`);
      const out = raw.split(',').map((part) => {
        try {
          return parseDuration(part.trim());
        } catch (e) {
          throw new Error(`${show(raw)}: ${(e as Error).message}`);
        }
      });
      for (let i = 1; i < out.length; i++) {
        if (out[i] <= out[i - 1] || out[i] % out[i - 1] !== 0) throw new Error(`${show(raw)}: ${formatDuration(out[i])} is not a multiple of ${formatDuration(out[i - 1])}`);
      }
      return out;
    },
    format: (value) => value.map(formatDuration).join(','),
  };
}

/** `10s:1d,1m:7d,1h:90d,1d:forever`: how long rollups of each resolution are kept (ms; Infinity = forever) */
function retentionList(): Kind<Record<string, number>> {
  return {
    placeholder: 'RES:AGE,...',
    allowed: 'a comma-separated list of resolution:age (age a duration or "forever")',
    parse(raw) {
      if (typeof raw !== 'string' || raw.trim() === '') throw new Error(`${show(raw)} is not a list of resolution:age`);
      const out: Record<string, number> = {};
      for (const part of raw.split(',')) {
        const [res, age] = part.split(':').map((x) => x.trim());
        if (res === undefined || age === undefined) throw new Error(`${show(part)} is not resolution:age`);
        try {
          out[String(parseDuration(res))] = age === 'forever' ? Infinity : parseDuration(age);
        } catch (e) {
          throw new Error(`${show(raw)}: ${(e as Error).message}`);
        }
      }
      return out;
    },
    format: (value) => Object.entries(value).map(([res, age]) => `${formatDuration(Number(res))}:${age === Infinity ? 'forever' : formatDuration(age)}`).join(','),
  };
}

function metricList(): Kind<string[]> {
  return {
    placeholder: 'NAME,...',
    allowed: 'a comma-separated list of metric names (1-64 characters of [A-Za-z0-9_.]), no repeats',
    parse(raw) {
      if (typeof raw !== 'string' || raw.trim() === '') throw new Error(`${show(raw)} is not a list of metric names`);
      const names = raw.split(',').map((x) => x.trim());
      for (const n of names) if (!/^[A-Za-z0-9_.]{1,64}$/.test(n)) throw new Error(`${show(raw)}: ${show(n)} is not a metric name`);
      if (new Set(names).size !== names.length) throw new Error(`${show(raw)} names a metric twice`);
      return names;
    },
    format: (value) => value.join(','),
  };
}

function defaultShards(): number {
  // One core stays with the front-end thread; 64 is the shard limit even on larger machines.
  return Math.min(64, Math.max(1, os.availableParallelism() - 1));
}

type Row<T> = { flag: string; meaning: string; kind: Kind<T>; defaultValue: () => T };

/** The table. The mapped type makes the compiler insist on exactly one row per SluiceConfig field. */
const TABLE: { [K in SettingKey]: Row<SluiceConfig[K]> } = {
  port: {
    flag: '--port',
    meaning: 'TCP port to listen on (0 = any free port)',
    kind: integer(0, 65535),
    defaultValue: () => 8080,
  },
  host: { flag: '--host', meaning: 'address to listen on', kind: text('ADDR'), defaultValue: () => '0.0.0.0' },
  dataDir: {
    flag: '--data-dir',
    meaning: 'folder of the data (WAL, checkpoints, rollups)',
    kind: text('DIR'),
    defaultValue: () => './data',
  },
  shards: {
    flag: '--shards',
    meaning: 'shard worker threads (default: CPUs - 1)',
    kind: integer(1, 64),
    defaultValue: defaultShards,
  },
  ringBytes: {
    flag: '--ring-size',
    meaning: 'per-shard ring capacity',
    kind: size(64 * KIB, GIB, powerOfTwo, 'a power of two'),
    // ingest waits past --ring-backlog (512 KiB) unapplied, so the ring needs room for the largest
    // batch (4 x --body-max) more than for depth; every page of it is touched as it wraps, so a
    // 16 MiB ring was 16 MiB of RSS a shard (170 B a series at 100k) for the same rate (bench/README.md)
    defaultValue: () => 4 * MIB,
  },
  ringBacklogBytes: {
    flag: '--ring-backlog',
    // ~500k-1M events/s per shard at ~32 B per event: 512 KiB is ~15-30 ms of a shard's work,
    // which a query waits for at most (it sees every event acknowledged before it); batches that
    // find it full wait for room (--backpressure-wait), and one batch of any size up to the ring
    // still starts when the backlog is under this. Measured: 256 KiB cost 10-55 % of the rate,
    // 512 KiB and 1 MiB the same rate (bench/README.md)
    meaning: 'unapplied bytes per shard ring past which ingest waits (how long a query may wait for the ring)',
    kind: size(64 * KIB, GIB),
    defaultValue: () => 512 * KIB,
  },
  paneMs: {
    flag: '--pane',
    meaning: 'base window (pane) resolution',
    kind: duration(1000, MS_PER_DAY, dividesDay, ' that divides 1d evenly'),
    defaultValue: () => 10_000,
  },
  histogramDivisions: {
    flag: '--histogram-divisions',
    meaning: 'fixed histogram divisions per pane',
    kind: integer(1, 1000),
    defaultValue: () => 10,
  },
  histogramMin: {
    flag: '--histogram-min',
    meaning: 'lower bound of the fixed histogram',
    kind: float(),
    defaultValue: () => 0,
  },
  histogramMax: {
    flag: '--histogram-max',
    meaning: 'upper bound of the fixed histogram (must be > --histogram-min)',
    kind: float(),
    defaultValue: () => 100,
  },
  quantiles: {
    flag: '--quantiles',
    meaning: 'quantiles a query returns when it names none',
    kind: quantileList(),
    defaultValue: () => [0.5, 0.9, 0.99],
  },
  bodyBytesMax: {
    flag: '--body-max',
    meaning: 'largest HTTP body and WebSocket frame',
    kind: size(KIB, 64 * MIB),
    defaultValue: () => MIB,
  },
  batchEventsMax: {
    flag: '--batch-events-max',
    meaning: 'most events in one batch',
    kind: integer(1, 1_000_000),
    defaultValue: () => 10_000,
  },
  metricsPerEventMax: {
    flag: '--metrics-per-event-max',
    meaning: 'most metrics in one event',
    kind: integer(1, 255),
    defaultValue: () => 64,
  },
  futureSkewMs: {
    flag: '--future-skew',
    meaning: 'how far into the future an event timestamp may be',
    kind: duration(0, MS_PER_DAY),
    defaultValue: () => 60_000,
  },
  backpressureWaitMs: {
    flag: '--backpressure-wait',
    meaning: 'how long ingest waits for ring space before answering 503 (HTTP) or SLUICE_E_BACKPRESSURE (WebSocket)',
    kind: duration(0, 60_000),
    defaultValue: () => 1000,
  },
  devicesMax: {
    flag: '--devices-max',
    meaning: 'distinct devices the engine will intern',
    kind: integer(1, 100_000_000),
    defaultValue: () => 4_000_000,
  },
  ackMode: {
    flag: '--ack',
    meaning: 'durable: acknowledge after the WAL commit is on disk; fast: on enqueue (a crash may lose acknowledged events)',
    kind: oneOf(ACK_MODES, 'ack mode', 'MODE'),
    defaultValue: () => 'durable',
  },
  checkpointIntervalMs: {
    flag: '--checkpoint-interval',
    meaning: 'how often shards checkpoint their state (the WAL below the checkpoints is then deleted)',
    kind: duration(100, 3_600_000),
    defaultValue: () => 5000,
  },
  maxDbBytes: {
    flag: '--max-db-size',
    meaning: 'bytes Sluice may keep in LMDB (WAL + checkpoints); over it ingest answers 503 until checkpoints free space',
    kind: size(MIB, 16 * 1024 * GIB),
    defaultValue: () => 8 * GIB,
  },
  allowedLatenessMs: {
    flag: '--allowed-lateness',
    meaning: 'how far behind the newest event time a shard still accepts events; older ones are too late (logged, not applied)',
    kind: duration(0, 7 * MS_PER_DAY),
    defaultValue: () => 5 * 60_000,
  },
  lateHorizonMs: {
    flag: '--late-horizon',
    meaning: 'how far behind the newest event time a reading is still counted, as a correction of its final windows; older ones are too late (kept in the late log only). At least --allowed-lateness; by default 1d or the finest resolution\'s retention if shorter',
    kind: duration(0, 366 * MS_PER_DAY),
    defaultValue: () => MS_PER_DAY,
  },
  lateLogSize: {
    flag: '--late-log-size',
    meaning: 'too-late events kept per shard in the late-events log (the oldest go first)',
    kind: integer(0, 100_000_000),
    defaultValue: () => 100_000,
  },
  resolutionsMs: {
    flag: '--resolutions',
    meaning: 'rollup resolutions, the pane first',
    kind: durationList(),
    defaultValue: () => [10_000, 60_000, 3_600_000, MS_PER_DAY],
  },
  retentionMs: {
    flag: '--retention',
    meaning: 'how long rollups of each resolution are kept, in event time',
    kind: retentionList(),
    defaultValue: () => ({ '10000': MS_PER_DAY, '60000': 7 * MS_PER_DAY, '3600000': 90 * MS_PER_DAY, '86400000': Infinity }),
  },
  reportPeriodMs: {
    flag: '--report-period',
    meaning: 'how often the periodic report (events received and their histogram per report metric) is taken',
    kind: duration(1000, MS_PER_DAY),
    defaultValue: () => 10_000,
  },
  reportMetrics: {
    flag: '--report-metrics',
    meaning: 'metrics the periodic report covers',
    kind: metricList(),
    defaultValue: () => ['cpu'],
  },
  reportHistory: {
    flag: '--report-history',
    meaning: 'reports kept in memory per metric (GET /v1/reports)',
    kind: integer(1, 100_000),
    defaultValue: () => 360,
  },
  logLevel: {
    flag: '--log-level',
    meaning: 'log level',
    kind: oneOf(LOG_LEVELS, 'log level', 'LEVEL'),
    defaultValue: () => 'info',
  },
  lpDeviceTag: {
    flag: '--lp-device-tag',
    meaning: 'InfluxDB line protocol: the tag that names the device',
    kind: text('TAG'),
    defaultValue: () => 'host',
  },
  promDeviceLabel: {
    flag: '--prom-device-label',
    meaning: 'Prometheus remote-write: the label that names the device',
    kind: text('LABEL'),
    defaultValue: () => 'instance',
  },
  mqttUrl: {
    flag: '--mqtt-url',
    meaning: "MQTT broker to subscribe to ('' = off)",
    kind: brokerUrl(),
    defaultValue: () => '',
  },
  mqttTopic: {
    flag: '--mqtt-topic',
    meaning: 'MQTT topic filter; its + level is the deviceId',
    kind: deviceTopic(),
    defaultValue: () => 'devices/+/telemetry',
  },
  mqttClientId: {
    flag: '--mqtt-client-id',
    meaning: 'MQTT client id of the persistent session',
    kind: text('ID'),
    defaultValue: () => 'sluice',
  },
  auth: {
    flag: '--auth',
    meaning: 'tokens and roles on every route but /healthz, /docs, /openapi.json',
    kind: oneOf(AUTH_MODES, 'valid mode', 'on|off'),
    defaultValue: () => 'off',
  },
  adminTokenFile: {
    flag: '--admin-token-file',
    meaning: 'where the first start with --auth on writes the admin token (mode 0600)',
    kind: optionalPath('FILE', '<data-dir>/admin.token'),
    defaultValue: () => '',
  },
  tlsCert: {
    flag: '--tls-cert',
    meaning: 'PEM certificate: HTTPS and WSS (with --tls-key)',
    kind: optionalPath('FILE', 'plain HTTP'),
    defaultValue: () => '',
  },
  tlsKey: {
    flag: '--tls-key',
    meaning: 'PEM private key of --tls-cert',
    kind: optionalPath('FILE', 'plain HTTP'),
    defaultValue: () => '',
  },
  connectionsMax: {
    flag: '--connections-max',
    meaning: 'open connections at most (HTTP and WebSocket); beyond, 503 / upgrade refused',
    kind: integer(1, 1_000_000),
    defaultValue: () => 10_000,
  },
  wsBackpressureMax: {
    flag: '--ws-max-backpressure',
    meaning: 'bytes a WebSocket may hold unsent before it is closed (a client that does not read its acks)',
    kind: size(64 * KIB, GIB),
    // acks are tiny: 1 MiB is thousands of frames' worth; 200 readers that never read peaked at
    // 303 MiB of RSS with 1 MiB each (16 MiB each: up to 3.2 GiB)
    defaultValue: () => MIB,
  },
  wsInflightMax: {
    flag: '--ws-inflight-max',
    meaning: 'frames of one WebSocket admitted and not yet acknowledged, at most',
    kind: integer(1, 1_000_000),
    defaultValue: () => 64,
  },
};

/** Every setting, in help order. The README's settings table is checked against this. */
export const SETTINGS: readonly Setting[] = (Object.keys(TABLE) as SettingKey[]).map((key) => {
  const row = TABLE[key] as Row<unknown>;
  const fileKey = row.flag.slice(2);
  return {
    key,
    flag: row.flag,
    env: `SLUICE_${fileKey.toUpperCase().replace(/-/g, '_')}`,
    fileKey,
    meaning: row.meaning,
    kind: row.kind,
    defaultValue: row.defaultValue,
  };
});

/** The settings flag that names the config file, and its variable. */
export const CONFIG_FLAG = '--config';
export const CONFIG_ENV = 'SLUICE_CONFIG';

const BY_FLAG = new Map(SETTINGS.map((setting) => [setting.flag, setting]));
const BY_FILE_KEY = new Map(SETTINGS.map((setting) => [setting.fileKey, setting]));

/** Rules across settings, checked once every setting has its value. */
const CROSS_CHECKS: ReadonlyArray<(config: SluiceConfig) => string | undefined> = [
  (config) =>
    (config.tlsCert === '') === (config.tlsKey === '')
      ? undefined
      : `${config.tlsCert === '' ? '--tls-cert' : '--tls-key'}: not set while ${config.tlsCert === '' ? '--tls-key' : '--tls-cert'} is (allowed: both, for HTTPS and WSS, or neither)`,
  (config) =>
    config.histogramMax > config.histogramMin
      ? undefined
      : `--histogram-max: ${config.histogramMax} is not greater than --histogram-min ${config.histogramMin}` +
        ` (allowed: a number greater than --histogram-min)`,
  (config) =>
    config.resolutionsMs[0] === config.paneMs
      ? undefined
      : `--resolutions: the first resolution ${formatDuration(config.resolutionsMs[0])} is not the pane (--pane ${formatDuration(config.paneMs)})` +
        ' (allowed: a list that starts with the pane)',
  (config) => {
    for (const key of Object.keys(config.retentionMs)) {
      if (!config.resolutionsMs.includes(Number(key))) {
        return `--retention: ${formatDuration(Number(key))} is not one of --resolutions (allowed: resolution:age for resolutions in --resolutions)`;
      }
    }
    return undefined;
  },
  // a batch of --body-max stages into at most ~1.2x its size in ring records (measured worst case:
  // new devices with long ids); 4x leaves room, so a valid batch always fits once the ring drains
  (config) =>
    config.ringBytes >= 4 * config.bodyBytesMax
      ? undefined
      : `--ring-size: ${formatSize(config.ringBytes)} is less than 4 x --body-max (${formatSize(config.bodyBytesMax)})` +
        ` (allowed: at least ${formatSize(4 * config.bodyBytesMax)}, so that any accepted batch fits a ring)`,
];

export type LoadResult =
  | { help: string }
  | { config: SluiceConfig; sources: Record<SettingKey, SettingSource> };

/** Raw values for one source, with where each came from (for error messages). */
interface RawValues {
  values: Map<SettingKey, Raw>;
  origin: string;
}

/** Splits argv into setting values, the config file path and the help request. */
function readArgv(argv: readonly string[]): { help: boolean; configPath?: string; raw: RawValues } {
  const values = new Map<SettingKey, Raw>();
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') return { help: true, raw: { values, origin: '' } };
    if (!arg.startsWith('--') || arg === '--') {
      throw new ConfigError(`unexpected argument ${show(arg)}: options are --name VALUE or --name=VALUE (see --help)`);
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const setting = BY_FLAG.get(flag);
    if (setting === undefined && flag !== CONFIG_FLAG) {
      throw new ConfigError(`unknown option ${flag} (see --help for the options)`);
    }
    let value: string;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new ConfigError(`${flag}: missing value (use ${flag} VALUE or ${flag}=VALUE)`);
      }
      value = next;
      i++;
    }
    if (setting === undefined) configPath = value;
    else values.set(setting.key, value);
  }
  return { help: false, configPath, raw: { values, origin: '' } };
}

function readEnv(env: Record<string, string | undefined>): RawValues {
  const values = new Map<SettingKey, Raw>();
  for (const setting of SETTINGS) {
    const value = env[setting.env];
    if (value !== undefined && value !== '') values.set(setting.key, value);
  }
  return { values, origin: 'env' };
}

function readFile(path: string): RawValues {
  const where = `config file ${path}`;
  let textContent: string;
  try {
    textContent = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${CONFIG_FLAG}: cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(textContent);
  } catch (error) {
    throw new ConfigError(`${where} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${where} must hold a JSON object such as {"port": 8080, "ring-size": "16MiB"}`);
  }
  const values = new Map<SettingKey, Raw>();
  for (const [key, value] of Object.entries(parsed)) {
    const setting = BY_FILE_KEY.get(key);
    if (setting === undefined) {
      throw new ConfigError(`${where}: unknown key ${JSON.stringify(key)} (known: ${[...BY_FILE_KEY.keys()].join(', ')})`);
    }
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw new ConfigError(
        `${setting.flag}: ${JSON.stringify(value)} in ${where} must be a JSON string or number (allowed: ${setting.kind.allowed})`,
      );
    }
    values.set(setting.key, value);
  }
  return { values, origin: where };
}

function parseSetting(setting: Setting, raw: Raw, origin: string): unknown {
  try {
    return setting.kind.parse(raw);
  } catch (error) {
    const from = origin === '' ? '' : ` [from ${origin === 'env' ? setting.env : origin}]`;
    throw new ConfigError(`${setting.flag}: ${(error as Error).message} (allowed: ${setting.kind.allowed})${from}`);
  }
}

/**
 * Resolves the settings from argv (`process.argv.slice(2)`) and the environment.
 * Returns `{ help }` when `--help` or `-h` is given; throws ConfigError on any bad input.
 */
export function loadConfig(argv: string[], env: Record<string, string | undefined>): LoadResult {
  let cli: ReturnType<typeof readArgv>;
  try {
    cli = readArgv(argv);
  } catch (error) {
    // `--help` wins over a mistake elsewhere on the line: the operator is asking how to fix it.
    if (argv.includes('--help') || argv.includes('-h')) return { help: helpText() };
    throw error;
  }
  if (cli.help) return { help: helpText() };
  const envValues = readEnv(env);
  const configPath = cli.configPath ?? (env[CONFIG_ENV] === '' ? undefined : env[CONFIG_ENV]);
  const layers: Array<[SettingSource, RawValues]> = [['cli', cli.raw], ['env', envValues]];
  if (configPath !== undefined) layers.push(['file', readFile(configPath)]);

  const config: Record<string, unknown> = {};
  const sources: Record<string, SettingSource> = {};
  for (const setting of SETTINGS) {
    const layer = layers.find(([, raw]) => raw.values.has(setting.key));
    if (layer === undefined) {
      config[setting.key] = setting.defaultValue();
      sources[setting.key] = 'default';
    } else {
      const [source, raw] = layer;
      config[setting.key] = parseSetting(setting, raw.values.get(setting.key) as Raw, raw.origin);
      sources[setting.key] = source;
    }
  }
  const result = config as unknown as SluiceConfig;
  followPane(result, sources);
  fitLateHorizon(result, sources);
  for (const check of CROSS_CHECKS) {
    const complaint = check(result);
    if (complaint !== undefined) throw new ConfigError(complaint);
  }
  return { config: result, sources: sources as Record<SettingKey, SettingSource> };
}

/**
 * The late horizon is at most the finest resolution's retention (a correction must find its
 * windows) and at least the allowed lateness. The default shrinks to fit; a value set by hand that
 * does not fit is refused, naming both settings.
 */
function fitLateHorizon(config: SluiceConfig, sources: Record<string, SettingSource>): void {
  const finest = config.retentionMs[String(config.resolutionsMs[0])] ?? Infinity;
  const max = Math.max(finest, config.allowedLatenessMs);
  if (config.lateHorizonMs > max) {
    if (sources.lateHorizonMs !== 'default') {
      throw new ConfigError(`--late-horizon: ${formatDuration(config.lateHorizonMs)} is longer than the retention of the finest resolution ` +
        `(${formatDuration(finest)}) (allowed: at most ${formatDuration(max)})`);
    }
    config.lateHorizonMs = max;
  }
  if (config.lateHorizonMs < config.allowedLatenessMs) {
    if (sources.lateHorizonMs !== 'default') {
      throw new ConfigError(`--late-horizon: ${formatDuration(config.lateHorizonMs)} is shorter than --allowed-lateness ` +
        `(${formatDuration(config.allowedLatenessMs)}) (allowed: at least ${formatDuration(config.allowedLatenessMs)})`);
    }
    config.lateHorizonMs = config.allowedLatenessMs;
  }
}

/**
 * The default rollup resolutions start at the pane: with another --pane they become that pane and
 * the default coarser ones that are multiples of it, and the default retention follows.
 */
function followPane(config: SluiceConfig, sources: Record<string, SettingSource>): void {
  if (sources.resolutionsMs === 'default' && config.resolutionsMs[0] !== config.paneMs) {
    const coarser = config.resolutionsMs.filter((r) => r > config.paneMs && r % config.paneMs === 0);
    config.resolutionsMs = [config.paneMs, ...coarser];
  }
  if (sources.retentionMs === 'default') {
    const defaults = config.retentionMs;
    const retention: Record<string, number> = {};
    for (const r of config.resolutionsMs) retention[String(r)] = defaults[String(r)] ?? (r === config.resolutionsMs[0] ? MS_PER_DAY : Infinity);
    config.retentionMs = retention;
  }
}

/** A flat summary for the start-up log line: durations and sizes as `10s` and `16MiB`. */
export function describeConfig(config: SluiceConfig): Record<string, string | number> {
  const summary: Record<string, string | number> = {};
  for (const setting of SETTINGS) summary[setting.key] = setting.kind.format(config[setting.key]);
  return summary;
}

/** The `--help` text: usage, then one line per setting with flag, env var, default and meaning. */
export function helpText(): string {
  const rows: string[][] = SETTINGS.map((setting) => [
    `${setting.flag} ${setting.kind.placeholder}`,
    setting.env,
    String(setting.kind.format(setting.defaultValue())),
    `${setting.meaning}; ${setting.kind.allowed}`,
  ]);
  rows.push([`${CONFIG_FLAG} FILE`, CONFIG_ENV, '(none)', 'JSON file of settings; keys are the flag names without the dashes']);
  rows.push(['-h, --help', '', '', 'print this help and exit']);
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => (row[column] as string).length)));
  const line = (row: string[]): string =>
    `  ${row.map((cell, column) => (column < 3 ? cell.padEnd(widths[column] as number) : cell)).join('  ')}`.trimEnd();
  return [
    'Usage: npm start -- [options]',
    '       node dist/engine/main.js [options]',
    '',
    'Each setting is taken from its flag, else its environment variable, else the config file, else its default.',
    'Durations: 250ms, 10s, 5m, 1h, 1d. Sizes: 512B, 1KiB, 16MiB, 2GiB (or KB, MB, GB in powers of 1000).',
    '',
    line(['Option', 'Environment', 'Default', 'Meaning']),
    ...rows.map(line),
    '',
  ].join('\n');
}
