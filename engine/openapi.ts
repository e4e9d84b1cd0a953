/**
 * The OpenAPI 3.1 document of every route the server answers, at GET /openapi.json.
 *
 * ROUTE_DOCS holds one entry per route, keyed by the uWS method and pattern it is registered
 * with. The served document lists the entries of the routes the app really registered (see
 * engine/route-recorder.ts), so the fault-injection routes appear only when they are enabled;
 * assertDocumented() makes the engine refuse to start with a route that has no entry here. uWS
 * has no WebSocket verb in OpenAPI: a `ws` route is a GET answered with 101 (x-websocket: true).
 * Error codes come from protocol/errors.ts. Front-end thread only.
 */

import fs from 'node:fs';
import path from 'node:path';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { ERRORS, TOP_BY } from '../protocol';
import { routesOf, type RecordedRoute } from './route-recorder';
import { sendJson } from './http-util';

type Json = Record<string, unknown>;

export interface RouteDoc {
  method: 'get' | 'post' | 'del' | 'ws';
  /** the uWS pattern */
  pattern: string;
  operation: Json;
}

/** the catch-all that answers 404 for any other route: not a route of its own */
const CATCH_ALL: RecordedRoute = { method: 'any', pattern: '/*' };

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string, example?: unknown): Json => ({
  description, content: { 'application/json': example === undefined ? { schema } : { schema, example } },
});
const error = (description: string): Json => json(ref('Error'), description);
const query = (name: string, description: string, schema: Json = { type: 'string' }, required = false): Json => ({ name, in: 'query', required, description, schema });
const pathParam = (name: string, description: string, schema: Json = { type: 'string' }): Json => ({ name, in: 'path', required: true, description, schema });

const TIME = { type: 'string', description: 'epoch milliseconds or ISO-8601 (UTC when no zone is given)' };
const RANGE = [
  query('from', 'range start (default: `to` - 1 h)', TIME),
  query('to', 'range end (default: now)', TIME),
];
const RESOLUTION = query('resolution', 'window length, one of --resolutions (10s, 1m, 1h, 1d); default: the finest giving at most 1,000 windows');
const QUANTILES = query('q', 'comma-separated quantiles in [0, 1] (default --quantiles)');
const INTERNAL = error('an internal error (SLUICE_E_INTERNAL); the log has the details');
const BAD_PARAM = error('a bad parameter (SLUICE_E_BAD_PARAM); `error` names it');
const PRECISION = query('precision', 'the unit of numeric timestamps: s, ms, us or ns (default ms; an unqualified number below 10^11 is refused as looking like seconds). ISO-8601 strings are unaffected', { type: 'string', enum: ['s', 'ms', 'us', 'ns'] });
const CONTENT_ENCODING = { name: 'Content-Encoding', in: 'header', required: false, description: 'identity (default), gzip, x-gzip or deflate: a compressed body is inflated as it arrives, and --body-max holds its decompressed size too', schema: { type: 'string', enum: ['identity', 'gzip', 'x-gzip', 'deflate'] } };
const BAD_ENCODING = error('a Content-Encoding other than identity, gzip, x-gzip, deflate (SLUICE_E_UNSUPPORTED_MEDIA_TYPE)');
const RETRY_AFTER = { 'Retry-After': { description: 'seconds to wait before sending again', schema: { type: 'integer' } } };

const CPU_WINDOW_DOC = 'Windows are the finest of --resolutions of at least 1 minute (1 min by default), of the metric `cpuUsage`; ' +
  'times are epoch milliseconds (UTC), windowEnd exclusive; quantiles come from the window\'s t-digest. ' +
  '"Now" is event time: the newest event time Sluice has applied (any device, any metric).';

const PROM_RESULT = json({ type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['success', 'error'] }, data: {}, errorType: { type: 'string' }, error: { type: 'string' } } },
  'Prometheus\'s answer shape: {status: "success", data} (data as Prometheus\'s HTTP API documents it)');
const PROM_BAD = json({ type: 'object' }, 'bad_data: a bad parameter, a PromQL parse error, or a part of PromQL Sluice does not support (named in `error`)');
const PROM_LIMIT = json({ type: 'object' }, 'execution: the query would read too many series (narrow it, or aggregate over the fleet)');
const PROM_QUERY = [query('query', 'PromQL (Sluice\'s subset: selectors with = != =~ !~, sum/avg/max/min/count by/without, topk/bottomk, arithmetic with scalars)', { type: 'string' }, true)];
const PROM_RANGE = [query('start', 'RFC 3339 or Unix seconds', { type: 'string' }, true), query('end', 'RFC 3339 or Unix seconds', { type: 'string' }, true), query('step', 'duration (15s, 1m) or seconds', { type: 'string' }, true)];
const PROM_MATCH = [query('match[]', 'series selector (repeatable)', { type: 'string' }, true)];
const promOp = (summary: string, parameters: Json[]): Json => ({
  tags: ['prometheus'], summary, parameters, responses: { 200: PROM_RESULT, 400: PROM_BAD, 422: PROM_LIMIT, 500: PROM_RESULT },
});
const PROM_API_DOCS: RouteDoc[] = [
  ...(['get', 'post'] as const).flatMap((method): RouteDoc[] => [
    { method, pattern: '/api/v1/query', operation: promOp('PromQL instant query over Sluice\'s windows (finest resolution)', [...PROM_QUERY, query('time', 'RFC 3339 or Unix seconds (default now)')]) },
    { method, pattern: '/api/v1/query_range', operation: promOp('PromQL range query: each step reads the window of the finest resolution at least as long as the step', [...PROM_QUERY, ...PROM_RANGE]) },
    { method, pattern: '/api/v1/series', operation: promOp('series matching selectors: sluice_<metric>_<aggregate>{device, metric}', PROM_MATCH) },
    { method, pattern: '/api/v1/labels', operation: promOp('label names: __name__, device, metric, quantile', []) },
  ]),
  { method: 'get', pattern: '/api/v1/label/:name/values', operation: promOp('values of a label (device: at most 10,000 per shard)', [pathParam('name', 'label name')]) },
  { method: 'get', pattern: '/api/v1/status/buildinfo', operation: promOp('build information (the Prometheus API version followed; revision names Sluice\'s version)', []) },
];

export const ROUTE_DOCS: RouteDoc[] = [
  {
    method: 'post', pattern: '/v1/events', operation: {
      tags: ['ingest'], summary: 'Send events over HTTP',
      description: 'One event, an array, NDJSON lines or msgpack (one event, an array, or a columnar batch). ' +
        'In durable mode (--ack durable, the default) the answer is sent after the WAL commit that holds the batch.',
      parameters: [PRECISION, CONTENT_ENCODING, { name: 'Sluice-Device-Seq', in: 'header', required: false, description: 'per-device batch sequence for exactly-once delivery (every event of the batch names the same device)', schema: { type: 'integer', minimum: 0 } }],
      requestBody: {
        required: true,
        content: {
          'application/json': { schema: { oneOf: [ref('Event'), { type: 'array', items: ref('Event') }] } },
          'application/x-ndjson': { schema: { type: 'string', description: 'one JSON event per line' } },
          'application/msgpack': { schema: { type: 'string', contentEncoding: 'binary', description: 'msgpack: an event, an array of events or a columnar batch' } },
        },
      },
      responses: {
        204: { description: 'every event accepted' },
        200: json(ref('IngestResult'), 'some events rejected (the valid ones are kept), or a duplicate device sequence'),
        400: json(ref('IngestResult'), 'no event valid, or the body does not parse (with `error` and `code`)'),
        409: json(ref('Error'), 'the device sequence skips ahead (SLUICE_E_SEQUENCE_GAP, with `expected`)'),
        413: error('body over --body-max (as sent, or once decompressed)'),
        415: error('a Content-Type other than JSON, NDJSON or msgpack, or a Content-Encoding other than identity, gzip, x-gzip, deflate'),
        503: { ...error('rings full (SLUICE_E_BACKPRESSURE), storage full or faulty, or stopping: nothing of the batch was kept'), headers: RETRY_AFTER },
      },
    },
  },
  {
    method: 'ws', pattern: '/v1/stream', operation: {
      tags: ['ingest'], summary: 'Send events over a WebSocket',
      description: 'Binary frames are msgpack, text frames JSON: an event, an array, an envelope {"seq","deviceId"?,"events"} or (msgpack) a columnar batch. ' +
        'Each frame gets one answer: {"ack":n}, {"ack":n,"accepted":k,"rejected":[...]} or {"error","code","seq","rejected"} (nothing kept).',
      parameters: [query('deviceId', 'pins the connection to one device: its events may omit deviceId'), PRECISION],
      responses: { 101: { description: 'switched to the WebSocket protocol' }, 400: BAD_PARAM },
    },
  },
  {
    method: 'get', pattern: '/v1/devices/:deviceId/metrics/:metric', operation: {
      tags: ['query'], summary: 'A device\'s windows of one metric',
      parameters: [pathParam('deviceId', 'the device'), pathParam('metric', 'the metric name'), ...RANGE, RESOLUTION, QUANTILES],
      responses: { 200: json(ref('DeviceSeries'), 'the windows overlapping [from, to) that hold data'), 400: BAD_PARAM, 404: error('no such device (SLUICE_E_NOT_FOUND)'), 500: INTERNAL },
    },
  },
  {
    method: 'get', pattern: '/v1/metrics/:metric/top', operation: {
      tags: ['query'], summary: 'The top devices of a metric',
      parameters: [pathParam('metric', 'the metric name'), query('n', 'how many devices (1-1000, default 10)', { type: 'integer', minimum: 1, maximum: 1000 }),
        query('by', 'the ranking value (default mean)', { type: 'string', enum: [...TOP_BY] }), ...RANGE, RESOLUTION],
      responses: { 200: json(ref('TopDevices'), 'the devices, highest first (ties: deviceId ascending)'), 400: BAD_PARAM, 500: INTERNAL },
    },
  },
  {
    method: 'get', pattern: '/v1/metrics/:metric', operation: {
      tags: ['query'], summary: 'A metric merged over all devices',
      parameters: [pathParam('metric', 'the metric name'), ...RANGE, RESOLUTION, QUANTILES],
      responses: { 200: json(ref('FleetSeries'), 'the fleet windows, with exact distinct devices'), 400: BAD_PARAM, 500: INTERNAL },
    },
  },
  {
    method: 'get', pattern: '/v1/devices', operation: {
      tags: ['query'], summary: 'Device ids with their metric names',
      parameters: [query('prefix', 'only ids starting with it (at most 128 characters)'), query('limit', 'at most this many (1-10000, default 100)', { type: 'integer', minimum: 1, maximum: 10000 })],
      responses: {
        200: json({ type: 'object', required: ['devices', 'truncated'], properties: { devices: { type: 'array', items: { type: 'object', properties: { deviceId: { type: 'string' }, metrics: { type: 'array', items: { type: 'string' } } } } }, truncated: { type: 'boolean' } } }, 'the devices, sorted'),
        400: BAD_PARAM, 500: INTERNAL,
      },
    },
  },
  {
    method: 'get', pattern: '/metrics', operation: {
      tags: ['operations'], summary: 'The engine\'s own metrics in Prometheus text format (sluice_*: ingest, WAL and ack latency, shards, checkpoints, connections, process and GC)',
      responses: { 200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } }, 500: INTERNAL },
    },
  },
  // the Prometheus-compatible query API (engine/prom-api-routes.ts): Prometheus's own shapes
  ...PROM_API_DOCS,
  // issue #13: tokens (admin role)
  {
    method: 'post', pattern: '/v1/tokens', operation: {
      tags: ['tokens'], summary: 'Make a token: {"role":"device","deviceId":"d-1"}, {"role":"write"}, {"role":"read"} or {"role":"admin"}, optionally "description" (admin role)',
      requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['role'], properties: { role: { type: 'string', enum: ['device', 'write', 'read', 'admin'] }, deviceId: { type: 'string' }, description: { type: 'string', maxLength: 256 } } } } } },
      responses: {
        201: json({ type: 'object', required: ['id', 'token', 'role'], properties: { id: { type: 'string' }, token: { type: 'string', description: 'shown once: only its hash is stored' }, role: { type: 'string' }, deviceId: { type: 'string' }, description: { type: 'string' } } }, 'the token'),
        400: error('a bad body (SLUICE_E_BAD_BODY) or field (SLUICE_E_BAD_PARAM)'), 401: error('no token, or an unknown or revoked one (SLUICE_E_UNAUTHORIZED)'), 403: error('not the admin role (SLUICE_E_FORBIDDEN)'), 404: error('--auth off: no tokens are made (SLUICE_E_NOT_FOUND)'), 413: error('body over 4 KiB'), 503: error('storage refused the write'), 500: INTERNAL,
      },
    },
  },
  {
    method: 'get', pattern: '/v1/tokens', operation: {
      tags: ['tokens'], summary: 'Every token, without its secret (revoked ones with revokedAt) (admin role)',
      responses: { 200: json({ type: 'object', required: ['tokens'], properties: { tokens: { type: 'array', items: { type: 'object' } } } }, 'the tokens'), 401: error('SLUICE_E_UNAUTHORIZED'), 403: error('SLUICE_E_FORBIDDEN'), 404: error('--auth off: no tokens (SLUICE_E_NOT_FOUND)'), 500: INTERNAL },
    },
  },
  {
    method: 'del', pattern: '/v1/tokens/:id', operation: {
      tags: ['tokens'], summary: 'Revoke a token: it stops working at once, and the WebSockets opened with it are closed (1008) (admin role)',
      parameters: [pathParam('id', 'the token id (12 hex digits)')],
      responses: { 204: { description: 'revoked' }, 401: error('SLUICE_E_UNAUTHORIZED'), 403: error('SLUICE_E_FORBIDDEN'), 404: error('no such token (SLUICE_E_NOT_FOUND)'), 503: error('storage refused the write'), 500: INTERNAL },
    },
  },
  // issue #14: the tools people already run (line protocol, remote-write, MQTT)
  {
    method: 'post', pattern: '/write', operation: {
      tags: ['ingest'], summary: 'InfluxDB 1.x line protocol write',
      parameters: [query('db', 'accepted and ignored (Sluice has one store)'), query('precision', 'n or ns (default), u or us, ms, s, m or h (m and h are taken as seconds x 60 / x 3600)'), query('u', 'user (accepted; checked once tokens exist)'), query('p', 'password (accepted; checked once tokens exist)'), CONTENT_ENCODING],
      requestBody: { required: true, content: { 'text/plain': { schema: { type: 'string', description: 'InfluxDB line protocol, one point per line' } } } },
      responses: { 204: { description: 'every point accepted (after the WAL commit in durable mode), or a body of blank lines and comments only' }, 400: json({ type: 'object', properties: { error: { type: 'string' }, code: { type: 'string' }, accepted: { type: 'integer' } } }, 'InfluxDB\'s error shape: `partial write: line N: reason; ... dropped=K` (the valid points are kept), `unable to parse line N: reason; ... dropped=K` (none valid, nothing kept), `unable to parse: ...` (a batch over --batch-events-max, nothing kept), or a bad precision'), 413: error('body over --body-max (as sent or decompressed)'), 415: error('a Content-Encoding other than identity, gzip, x-gzip, deflate'), 503: { ...error('rings full, storage full or faulty, or stopping: nothing kept, send again'), headers: RETRY_AFTER }, 500: INTERNAL },
    },
  },
  {
    method: 'post', pattern: '/api/v2/write', operation: {
      tags: ['ingest'], summary: 'InfluxDB 2.x line protocol write',
      parameters: [query('org', 'accepted and ignored'), query('bucket', 'accepted and ignored'), query('precision', 'ns (default), us, ms or s'), CONTENT_ENCODING],
      requestBody: { required: true, content: { 'text/plain': { schema: { type: 'string', description: 'InfluxDB line protocol, one point per line' } } } },
      responses: { 204: { description: 'every point accepted (after the WAL commit in durable mode), or a body of blank lines and comments only' }, 400: json({ type: 'object', properties: { error: { type: 'string' }, code: { type: 'string' }, accepted: { type: 'integer' } } }, 'InfluxDB\'s error shape: `partial write: line N: reason; ... dropped=K` (the valid points are kept), `unable to parse line N: reason; ... dropped=K` (none valid, nothing kept), `unable to parse: ...` (a batch over --batch-events-max, nothing kept), or a bad precision'), 413: error('body over --body-max (as sent or decompressed)'), 415: error('a Content-Encoding other than identity, gzip, x-gzip, deflate'), 503: { ...error('rings full, storage full or faulty, or stopping: nothing kept, send again'), headers: RETRY_AFTER }, 500: INTERNAL },
    },
  },
  {
    method: 'get', pattern: '/ping', operation: {
      tags: ['ingest'], summary: 'InfluxDB liveness check (the influx CLI and Telegraf call it first)',
      responses: { 204: { description: 'the engine is up; headers X-Influxdb-Version: 1.8.10 and X-Influxdb-Build: OSS (the clients check them)' } },
    },
  },
  {
    method: 'post', pattern: '/api/v1/write', operation: {
      tags: ['ingest'], summary: 'Prometheus remote-write 1.0 (snappy-compressed protobuf WriteRequest)',
      description: 'One event per sample: deviceId from the --prom-device-label label (instance), metric from __name__ (characters outside [A-Za-z0-9_.] become _, names over 64 characters are shortened with a hash), other labels as tags (a label Sluice refuses as a tag is dropped and counted). Staleness markers, other NaN/Inf values, native histograms, exemplars and metadata are skipped and counted. A request of more samples than --batch-events-max is written in several batches and answered once. Answered after the WAL commit (durable mode).',
      parameters: [{ name: 'Content-Encoding', in: 'header', required: false, description: 'snappy (block format), what Prometheus sends; absent is read as snappy too', schema: { type: 'string', enum: ['snappy'] } }],
      requestBody: { required: true, content: { 'application/x-protobuf': { schema: { type: 'string', contentEncoding: 'binary', description: 'snappy-compressed prometheus.WriteRequest (remote-write 1.0)' } } } },
      responses: {
        204: { description: 'every sample written, or skipped (see the description)', headers: { 'Sluice-Remote-Write': { description: 'written=n refused=n stale=n nonFinite=n histograms=n exemplars=n metadata=n labelsDropped=n', schema: { type: 'string' } } } },
        400: error('a body that does not decompress or decode (nothing kept), or some samples invalid (no __name__ or device label, timestamp refused): the valid ones are kept, `error` names the first reasons, `written`, `refused` and `refusedByCode` count them. Prometheus does not retry'),
        413: error('body over --body-max as sent, or as its snappy preamble announces it decompressed'),
        415: error('a Content-Type other than application/x-protobuf (a remote-write 2.0 request), or a Content-Encoding other than snappy'),
        503: { ...error('rings full, storage full or faulty, or stopping: Prometheus retries (readings of a split request already kept are written again)'), headers: RETRY_AFTER },
        500: INTERNAL,
      },
    },
  },
  {
    method: 'get', pattern: '/v1/mqtt/rejected', operation: {
      tags: ['ingest'], summary: 'MQTT messages refused (logged, counted and acknowledged so the broker does not redeliver them), newest first',
      description: 'The last 200 messages refused whole or in part (memory only: a restart starts the list empty). A partially valid message kept its valid events (`accepted`) and lists the refused ones. With --mqtt-url off: `enabled` false and an empty list.',
      responses: {
        200: json({
          type: 'object', required: ['enabled', 'total', 'kept', 'messages'], properties: {
            enabled: { type: 'boolean', description: 'MQTT ingest is on (--mqtt-url)' },
            total: { type: 'integer', description: 'messages refused whole or in part since start' },
            kept: { type: 'integer', description: 'how many of the newest the list keeps' },
            messages: {
              type: 'array', items: {
                type: 'object', required: ['time', 'topic', 'deviceId', 'code', 'reason', 'accepted', 'events', 'eventsRejected'], properties: {
                  time: { type: 'string', format: 'date-time' },
                  topic: { type: 'string' },
                  deviceId: { type: ['string', 'null'], description: "the topic's device, null when the topic names none" },
                  code: { type: 'string', description: 'a SLUICE_E_* code' },
                  reason: { type: 'string', description: 'names the field: topic, payload, or the first refused event' },
                  accepted: { type: 'integer', description: 'events of the message that were kept' },
                  events: { type: 'array', description: 'the first 10 refused events', items: { type: 'object', properties: { index: { type: 'integer' }, code: { type: 'string' }, reason: { type: 'string' } } } },
                  eventsRejected: { type: 'integer' },
                },
              },
            },
          },
        }, 'newest first'),
        500: INTERNAL,
      },
    },
  },
  {
    method: 'get', pattern: '/healthz', operation: {
      tags: ['operations'], summary: 'Health: shards, ingest and storage counters',
      responses: { 200: json({ type: 'object' }, 'every shard is running: "ok", or "busy" (no answer in 2 s; its last published figures and heartbeat age)'), 503: json({ type: 'object' }, 'a shard has not run its loop for 30 s (state "unresponsive", status "degraded")') },
    },
  },
  {
    method: 'get', pattern: '/v1/late', operation: {
      tags: ['query'], summary: 'Late events: corrections of final windows (kept) and events beyond --late-horizon (refused), with their counts',
      parameters: [query('deviceId', 'only this device'), query('from', 'event time from', TIME), query('to', 'event time to', TIME), query('limit', 'at most this many events (1-10000, default 100)', { type: 'integer', minimum: 1, maximum: 10000 })],
      responses: { 200: json({ type: 'object', required: ['events', 'counts', 'total', 'corrections'], properties: { events: { type: 'array', items: { type: 'object' } }, counts: { type: 'array', items: { type: 'object' } }, total: { type: 'integer', description: 'events refused (beyond --late-horizon)' }, corrections: { type: 'integer', description: 'events kept as corrections of final windows' } } }, 'newest first'), 400: BAD_PARAM, 500: INTERNAL },
    },
  },
  {
    method: 'get', pattern: '/v1/reports', operation: {
      tags: ['reports'], summary: 'Recent periodic reports',
      parameters: [query('metric', 'one report metric (default: all of --report-metrics)'), query('limit', 'at most this many (1-1000, default 10)', { type: 'integer', minimum: 1, maximum: 1000 })],
      responses: { 200: json({ type: 'object', required: ['reports'], properties: { reports: { type: 'array', items: ref('Report') } } }, 'newest first'), 400: BAD_PARAM },
    },
  },
  {
    method: 'ws', pattern: '/v1/reports/stream', operation: {
      tags: ['reports'], summary: 'Periodic reports pushed over a WebSocket',
      description: 'Every new report of the chosen metrics as a JSON text frame (a Report). What the client sends is ignored.',
      parameters: [query('metric', 'one report metric (default: all)')],
      responses: { 101: { description: 'switched to the WebSocket protocol' }, 400: BAD_PARAM },
    },
  },
  {
    method: 'post', pattern: '/v1/debug/fail-wal', operation: {
      tags: ['debug'], summary: 'Fault injection: fail the next n WAL appends (only with SLUICE_DEBUG_ROUTES=1)',
      parameters: [query('n', 'WAL appends to fail (1-1000000)', { type: 'integer', minimum: 1, maximum: 1000000 }, true)],
      responses: { 200: json({ type: 'object', properties: { failNextAppends: { type: 'integer' } } }, 'armed'), 400: BAD_PARAM },
    },
  },
  {
    method: 'post', pattern: '/v1/debug/stall-shards', operation: {
      tags: ['debug'], summary: 'Fault injection: block every shard worker for ms (only with SLUICE_DEBUG_ROUTES=1)',
      parameters: [query('ms', 'milliseconds (1-60000)', { type: 'integer', minimum: 1, maximum: 60000 }, true)],
      responses: { 200: json({ type: 'object', properties: { stalled: { type: 'integer' }, ms: { type: 'integer' } } }, 'stalled'), 400: BAD_PARAM },
    },
  },
  {
    method: 'post', pattern: '/v1/debug/throw', operation: {
      tags: ['debug'], summary: 'Fault injection: throw an unexpected error in the handler or the body callback (only with SLUICE_DEBUG_ROUTES=1)',
      parameters: [query('in', 'where to throw: handler (default) or body', { type: 'string', enum: ['handler', 'body'] })],
      responses: { 500: INTERNAL },
    },
  },
  {
    method: 'ws', pattern: '/v1/debug/throw-stream', operation: {
      tags: ['debug'], summary: 'Fault injection: a WebSocket whose message callback throws (only with SLUICE_DEBUG_ROUTES=1)',
      description: 'Every frame is answered with an error frame {"error","code":"SLUICE_E_INTERNAL","requestId"}, then the socket is closed with 1011.',
      responses: { 101: { description: 'switched to the WebSocket protocol' } },
    },
  },
  {
    method: 'post', pattern: '/telemetry/cpu', operation: {
      tags: ['seed APIs'], summary: 'One CPU reading (seed API)',
      description: 'The event becomes metric `cpu` with tag `clientVersion`, through the same admission, WAL and acknowledgement as POST /v1/events; the periodic report counts it. The body is read as JSON whatever the Content-Type.',
      parameters: [PRECISION, CONTENT_ENCODING],
      requestBody: { required: true, content: { 'application/json': { schema: ref('CpuTelemetry'), example: { timestamp: '2020-01-01T00:00:00Z', deviceId: 'device-1234', clientVersion: 'v1.2.3', cpu: 83.2 } } } },
      responses: {
        204: { description: 'accepted (durable once answered, in durable mode)' },
        400: error('not one JSON object, no `cpu`, or an invalid field (`error` names it)'),
        413: error('body over --body-max (as sent, or once decompressed)'),
        415: BAD_ENCODING,
        503: { ...error('rings full, storage full or faulty, or stopping: nothing kept, send again'), headers: RETRY_AFTER },
      },
    },
  },
  {
    method: 'post', pattern: '/analytics', operation: {
      tags: ['seed APIs'], summary: 'Record a click or an impression (seed API)',
      description: 'The user is the device; the event is metric `click` or `impression` with value 1 at the timestamp, through the same admission, WAL and acknowledgement as POST /v1/events.',
      parameters: [
        PRECISION,
        query('timestamp', 'epoch milliseconds (ISO-8601 also accepted)', { type: 'string' }, true),
        query('user', 'the user id: 1-128 characters of [A-Za-z0-9_.:-]', { type: 'string' }, true),
        query('event', 'what happened', { type: 'string', enum: ['click', 'impression'] }, true),
      ],
      responses: {
        204: { description: 'recorded' },
        400: error('a missing or invalid parameter (`error` names it)'),
        500: { ...error('nothing kept (rings full, storage full or faulty, stopping): send again'), headers: RETRY_AFTER },
      },
    },
  },
  {
    method: 'get', pattern: '/analytics', operation: {
      tags: ['seed APIs'], summary: 'Users, clicks and impressions of an hour (seed API)',
      description: 'For the UTC hour that holds the timestamp. unique_users is exact: distinct users with a click or an impression (one who did both counts once). Past hours answer from the rollups, after they closed and across restarts.',
      parameters: [PRECISION, query('timestamp', 'epoch milliseconds (ISO-8601 also accepted)', { type: 'string' }, true)],
      responses: {
        200: json(ref('AnalyticsHour'), 'the hour\'s figures', { unique_users: 2, clicks: 3, impressions: 5 }),
        400: error('timestamp missing or invalid'), 500: INTERNAL,
      },
    },
  },
  {
    method: 'get', pattern: '/metrics/top/:n', operation: {
      tags: ['seed APIs'], summary: 'The n devices with the highest p99 of cpuUsage in the last window (seed API)',
      description: `The last window is the latest complete one: the window just before the one that holds "now" (which is still filling). ${CPU_WINDOW_DOC}`,
      parameters: [pathParam('n', 'how many devices (1-1000)', { type: 'integer', minimum: 1, maximum: 1000 })],
      responses: { 200: json({ type: 'array', items: ref('CpuWindow') }, 'highest p99 first (ties: deviceId ascending); empty before the first complete window'), 400: BAD_PARAM, 500: INTERNAL },
    },
  },
  {
    method: 'get', pattern: '/metrics/devices/:deviceId', operation: {
      tags: ['seed APIs'], summary: 'A device\'s recent cpuUsage windows (seed API)',
      description: `The device's windows of the last hour up to "now", the current (still filling) window included, newest first. ${CPU_WINDOW_DOC}`,
      parameters: [pathParam('deviceId', 'the device')],
      responses: { 200: json({ type: 'array', items: ref('CpuWindow') }, 'newest first'), 400: BAD_PARAM, 404: error('no event ever named the device (SLUICE_E_NOT_FOUND)'), 500: INTERNAL },
    },
  },
  {
    method: 'post', pattern: '/compute/metrics', operation: {
      tags: ['seed APIs'], summary: 'Compute metrics of sensors over a time range (seed API)',
      description: 'A sensor is a metric name merged over every device. Metrics: count, average, mean (= average), max, min. `from` and `to` are UTC, read to the second and both included. ' +
        'Unknown sensors (keys) and metrics are reported in `errors` with the seed\'s messages while the valid parts are computed. The body is read as JSON whatever the Content-Type; a trailing comma is tolerated.',
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('ComputeRequest'), example: { temperature: ['count', 'min'], humidity: ['average', 'max'], from: '2020-01-13 15:12:00', to: '2020-01-13 15:13:00' } } },
      },
      parameters: [CONTENT_ENCODING],
      responses: {
        200: json(ref('ComputeResult'), 'the valid parts computed; the others in `errors`', { result: { temperature: { count: 61, min: 2 }, humidity: { average: 48.557377049180324, max: 98 } }, errors: [] }),
        400: json(ref('ComputeResult'), 'nothing valid to compute, from/to missing or malformed, or not a non-empty JSON object: empty `result`, with `code`'),
        413: error('body over --body-max (as sent, or once decompressed)'),
        415: BAD_ENCODING,
        500: json(ref('ComputeResult'), 'an internal error (SLUICE_E_INTERNAL)'),
      },
    },
  },
  {
    method: 'get', pattern: '/openapi.json', operation: {
      tags: ['docs'], summary: 'This document (OpenAPI 3.1)',
      responses: { 200: json({ type: 'object' }, 'the OpenAPI document') },
    },
  },
  {
    method: 'get', pattern: '/', operation: {
      tags: ['docs'], summary: 'Redirects to the API reference page (/docs)',
      responses: { 302: { description: 'to /docs', headers: { Location: { description: '/docs', schema: { type: 'string' } } } } },
    },
  },
  {
    method: 'get', pattern: '/docs', operation: {
      tags: ['docs'], summary: 'The API reference page (Swagger UI, served offline)',
      responses: { 200: { description: 'an HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
    },
  },
  {
    method: 'get', pattern: '/docs/:file', operation: {
      tags: ['docs'], summary: 'The API reference page\'s assets (swagger-ui-dist)',
      parameters: [pathParam('file', 'an asset of the page', { type: 'string', enum: ['swagger-ui.css', 'swagger-ui-bundle.js', 'docs-init.js', 'favicon-32x32.png'] })],
      responses: { 200: { description: 'the asset' }, 404: error('no such asset (SLUICE_E_NOT_FOUND)') },
    },
  },
  // issue #15: the live dashboard (engine/ui-routes.ts), served offline from web/ and the uplot package
  ...(['/ui', '/ui/'] as const).map((pattern): RouteDoc => ({
    method: 'get', pattern, operation: {
      tags: ['dashboard'], summary: 'The live dashboard page: ingest rate, ack latency, ring fill, late events, the latest report, top devices, a device\'s windows',
      responses: { 200: { description: 'an HTML page', content: { 'text/html': { schema: { type: 'string' } } } }, 304: { description: 'not modified (If-None-Match matched the ETag)' } },
    },
  })),
  {
    method: 'get', pattern: '/ui/:file', operation: {
      tags: ['dashboard'], summary: 'The dashboard\'s scripts and styles (the files of web/)',
      parameters: [pathParam('file', 'a file of the page, e.g. app.js or style.css')],
      responses: { 200: { description: 'the file, with its content type and an ETag' }, 304: { description: 'not modified (If-None-Match matched the ETag)' }, 404: error('no such file (SLUICE_E_NOT_FOUND)') },
    },
  },
  {
    method: 'get', pattern: '/ui/vendor/:file', operation: {
      tags: ['dashboard'], summary: 'The chart library the dashboard uses (uPlot, from the uplot package)',
      parameters: [pathParam('file', 'a uPlot file', { type: 'string', enum: ['uPlot.iife.min.js', 'uPlot.min.css'] })],
      responses: { 200: { description: 'the file (cacheable for a day)' }, 304: { description: 'not modified (If-None-Match matched the ETag)' }, 404: error('no such file (SLUICE_E_NOT_FOUND)') },
    },
  },
  {
    method: 'ws', pattern: '/v1/ui/stream', operation: {
      tags: ['dashboard'], summary: 'The dashboard\'s live figures, pushed once a second',
      description: 'First a {"type":"hello","shards","tickMs","avgIntervals"} frame, then once a second a {"type":"live"} frame: ' +
        'ingest (events accepted: total, perSec over the last second, perSecAvg over up to 5 s), ack latency (p50Ms, p99Ms from the ack histogram\'s buckets over up to 5 s; null without acks), ' +
        'late and corrected events (total, perSec) and per shard: ring fill (0-1), events applied, late and corrected. What the client sends is ignored.',
      responses: { 101: { description: 'switched to the WebSocket protocol' } },
    },
  },
];

const WINDOW_PROPS = {
  start: { type: 'integer', description: 'epoch ms' }, end: { type: 'integer', description: 'epoch ms, exclusive' },
  count: { type: 'integer' }, sum: { type: 'number' }, min: { type: ['number', 'null'] }, max: { type: ['number', 'null'] },
  mean: { type: ['number', 'null'] }, last: { type: ['number', 'null'] },
  histogram: { type: 'object', properties: { min: { type: 'number' }, max: { type: 'number' }, divisions: { type: 'array', items: { type: 'integer' } }, under: { type: 'integer' }, over: { type: 'integer' } } },
  quantiles: { type: 'object', additionalProperties: { type: ['number', 'null'] } },
  devices: { type: 'integer', description: 'distinct devices (fleet windows)' },
};

const SCHEMAS: Json = {
  ErrorCode: { type: 'string', enum: Object.keys(ERRORS), description: Object.entries(ERRORS).map(([c, m]) => `${c}: ${m}`).join('; ') },
  Error: { type: 'object', required: ['error', 'code'], properties: { error: { type: 'string', description: 'what went wrong, naming the field' }, code: ref('ErrorCode') } },
  Rejection: { type: 'object', required: ['index', 'code', 'reason'], properties: { index: { type: 'integer' }, code: ref('ErrorCode'), reason: { type: 'string' } } },
  IngestResult: {
    type: 'object', required: ['accepted', 'rejected'],
    properties: { accepted: { type: 'integer' }, rejected: { type: 'array', items: ref('Rejection') }, duplicate: { type: 'boolean' }, error: { type: 'string' }, code: ref('ErrorCode') },
  },
  Event: {
    type: 'object', required: ['deviceId', 'timestamp'],
    description: 'Either {deviceId, timestamp, metrics, tags?} or a flat shape where every other numeric field is a metric and every string field a tag.',
    properties: {
      deviceId: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,128}$' },
      timestamp: { type: ['integer', 'string'], description: 'epoch ms or ISO-8601' },
      metrics: { type: 'object', additionalProperties: { type: 'number' } },
      tags: { type: 'object', additionalProperties: { type: 'string' } },
    },
    additionalProperties: { type: ['number', 'string'] },
  },
  Window: { type: 'object', properties: WINDOW_PROPS },
  DeviceSeries: { type: 'object', properties: { deviceId: { type: 'string' }, metric: { type: 'string' }, resolution: { type: 'string' }, from: { type: 'integer' }, to: { type: 'integer' }, windows: { type: 'array', items: ref('Window') } } },
  FleetSeries: { type: 'object', properties: { metric: { type: 'string' }, resolution: { type: 'string' }, from: { type: 'integer' }, to: { type: 'integer' }, devices: { type: 'integer' }, windows: { type: 'array', items: ref('Window') } } },
  TopDevices: {
    type: 'object',
    properties: {
      metric: { type: 'string' }, by: { type: 'string' }, from: { type: 'integer' }, to: { type: 'integer' },
      devices: { type: 'array', items: { type: 'object', properties: { deviceId: { type: 'string' }, value: { type: 'number' }, count: { type: 'integer' }, sum: { type: 'number' }, min: { type: 'number' }, max: { type: 'number' }, mean: { type: 'number' } } } },
    },
  },
  Report: {
    type: 'object', required: ['metric', 'periodStart', 'periodEnd', 'count', 'devices', 'histogram'],
    properties: { metric: { type: 'string' }, periodStart: { type: 'integer' }, periodEnd: { type: 'integer' }, count: { type: 'integer' }, devices: { type: 'integer' }, histogram: WINDOW_PROPS.histogram, error: { type: 'string' } },
  },
  CpuTelemetry: {
    type: 'object', required: ['timestamp', 'deviceId', 'cpu'],
    properties: { timestamp: { type: ['string', 'integer'], description: 'ISO-8601 or epoch ms' }, deviceId: { type: 'string' }, clientVersion: { type: 'string' }, cpu: { type: 'number' } },
  },
  AnalyticsHour: {
    type: 'object', required: ['unique_users', 'clicks', 'impressions'],
    properties: { unique_users: { type: 'integer' }, clicks: { type: 'integer' }, impressions: { type: 'integer' } },
  },
  CpuWindow: {
    type: 'object', required: ['deviceId', 'windowStart', 'windowEnd', 'p50', 'p90', 'p99', 'count'],
    properties: {
      deviceId: { type: 'string' }, windowStart: { type: 'integer', description: 'epoch ms' }, windowEnd: { type: 'integer', description: 'epoch ms, exclusive' },
      p50: { type: 'number' }, p90: { type: 'number' }, p99: { type: 'number' }, count: { type: 'integer' },
    },
  },
  ComputeRequest: {
    type: 'object', required: ['from', 'to'],
    properties: { from: { type: 'string', description: 'YYYY-MM-DD hh:mm:ss (UTC), included' }, to: { type: 'string', description: 'YYYY-MM-DD hh:mm:ss (UTC), included' } },
    additionalProperties: { type: 'array', items: { type: 'string', enum: ['count', 'average', 'mean', 'max', 'min'] }, description: 'a sensor (metric name) and the metrics to compute' },
  },
  ComputeResult: {
    type: 'object', required: ['result', 'errors'],
    properties: {
      result: { type: 'object', additionalProperties: { type: 'object', additionalProperties: { type: ['number', 'null'] } } },
      errors: { type: 'array', items: { type: 'string' } },
      code: ref('ErrorCode'),
    },
  },
};

/** `:name` segments of a uWS pattern as OpenAPI `{name}`. */
export function openApiPath(pattern: string): string {
  return pattern.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function docOf(r: RecordedRoute): RouteDoc | undefined {
  return ROUTE_DOCS.find((d) => d.method === r.method && d.pattern === r.pattern);
}

/** Registered routes that have no entry in ROUTE_DOCS (the catch-all aside). */
export function undocumentedRoutes(routes: readonly RecordedRoute[]): RecordedRoute[] {
  return routes.filter((r) => !(r.method === CATCH_ALL.method && r.pattern === CATCH_ALL.pattern) && docOf(r) === undefined);
}

/** Sluice's version from package.json ('0.0.0' when it cannot be read). */
export function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** The document of the given routes (each must have its entry). */
export function openApiDocument(routes: readonly RecordedRoute[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const d = docOf(r);
    if (d === undefined) continue;
    const p = openApiPath(d.pattern);
    const item = paths[p] ?? (paths[p] = {});
    const verb = d.method === 'ws' ? 'get' : d.method === 'del' ? 'delete' : d.method;
    item[verb] = { operationId: `${d.method}${p.replace(/[^A-Za-z0-9]+/g, '_')}`, ...d.operation, ...(d.method === 'ws' ? { 'x-websocket': true } : {}) };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Sluice',
      version: packageVersion(),
      description: 'A single-node telemetry engine: ingest over HTTP and WebSocket, event-time window aggregates, queries, reports, and the seed systems\' APIs. ' +
        'Every error body carries a stable `code` (see ErrorCode).',
    },
    paths,
    components: {
      schemas: SCHEMAS,
      // --auth on: Authorization: Bearer <token> (or Token <token>); /docs' "Authorize" takes it
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a Sluice token (sl_...): POST /v1/tokens makes them; the admin token is in --admin-token-file. Needed with --auth on on every route but /healthz, /docs, /openapi.json, /ping and /ui\'s files' } },
    },
    security: [{ bearer: [] }],
  };
}

/** Throws when the app answers a route this file does not document. */
export function assertDocumented(app: TemplatedApp): void {
  const missing = undocumentedRoutes(routesOf(app));
  if (missing.length > 0) {
    throw new Error(`routes without an OpenAPI entry in engine/openapi.ts: ${missing.map((r) => `${r.method} ${r.pattern}`).join(', ')}`);
  }
}

/** GET /openapi.json: the document of the routes the app has, built once at the first request. */
export function registerOpenApi(app: TemplatedApp): void {
  let body: string | null = null;
  app.get('/openapi.json', (res: HttpResponse, _req: HttpRequest) => {
    if (body === null) body = JSON.stringify(openApiDocument(routesOf(app)));
    sendJson({ res, aborted: false }, 200, body);
  });
}
