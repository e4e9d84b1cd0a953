/**
 * Report routes (seed 000) on the front-end's uWS app:
 *
 *   GET /v1/reports?metric=&limit=     {"reports":[Report...]}, newest first. limit 1-1000
 *                                      (default 10); metric: one report metric (default all).
 *   WS  /v1/reports/stream?metric=     every new Report as a JSON text frame (default: of every
 *                                      report metric). What the client sends is ignored.
 *
 * A metric that is not a report metric, or a bad limit, answers 400 SLUICE_E_BAD_PARAM naming
 * the parameter (on the WebSocket route: the upgrade is refused with that answer).
 *
 * Push: one uWS topic per metric (`reports/<metric>`); a socket subscribes to its metrics' topics
 * and each report is published once (uWS fans it out in C++, no JS loop over sockets). A
 * subscriber that does not read its frames is closed once its backpressure passes
 * REPORT_WS_BACKPRESSURE_BYTES_MAX rather than silently missing reports.
 *
 * Everything here runs on the front-end thread; the GET answers inside its uWS callback
 * (Reporter.recent is synchronous), publishes come from the Reporter's timer (uWS corks each
 * subscriber's write itself).
 */

import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import { SluiceError } from '../protocol';
import type { Reporter } from './reporter';
import type { Uws } from './uws';
import { type Answerable, errorBody, sendError, sendJson } from './http-util';
import { parseIntParam } from './query-params';

export const REPORTS_LIMIT_DEFAULT = 10;
export const REPORTS_LIMIT_MAX = 1000;
// a report frame is well under 1 KiB: 1 MiB is ~thousands of unread reports
const REPORT_WS_BACKPRESSURE_BYTES_MAX = 1024 * 1024;
const REPORT_WS_PAYLOAD_BYTES_MAX = 1024;
const REPORT_WS_IDLE_TIMEOUT_S = 120;

export interface ReportRoutesDefaults {
  /** the report metrics (--report-metrics) */
  metrics: string[];
}

export interface ReportStreamUser {
  metrics: string[];
}

/** What the server keeps to shut the routes down. */
export interface ReportRoutes {
  /** open /v1/reports/stream sockets */
  readonly sockets: ReadonlySet<WebSocket<ReportStreamUser>>;
  /** stops publishing and closes every stream socket (1001 going away) */
  close(): void;
}

export function reportTopic(metric: string): string {
  return `reports/${metric}`;
}

/** `metric` of the query: one of the report metrics, or all of them when absent. */
function metricsParam(query: URLSearchParams, metrics: readonly string[]): string[] {
  const m = query.get('metric');
  if (m === null || m === '') return metrics.slice();
  if (!metrics.includes(m)) {
    throw new SluiceError('SLUICE_E_BAD_PARAM', `metric: ${JSON.stringify(m)} is not a report metric (report metrics: ${metrics.join(', ')}; see --report-metrics)`);
  }
  return [m];
}

function badParam(a: Answerable, e: unknown): void {
  if (e instanceof SluiceError) sendError(a, 400, e.code, e.message);
  else sendError(a, 500, 'SLUICE_E_INTERNAL', `reports: ${(e as Error).message}`);
}

export function registerReportRoutes(app: TemplatedApp, uws: Uws, reporter: Reporter,
  defaults: ReportRoutesDefaults): ReportRoutes {
  const metrics = defaults.metrics.slice();
  const sockets = new Set<WebSocket<ReportStreamUser>>();

  app.get('/v1/reports', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    const query = new URLSearchParams(req.getQuery() ?? '');
    try {
      const wanted = metricsParam(query, metrics);
      const limit = parseIntParam(query, 'limit', REPORTS_LIMIT_DEFAULT, 1, REPORTS_LIMIT_MAX);
      const reports = wanted.length === 1 ? reporter.recent(wanted[0], limit) : reporter.recent(null, limit);
      sendJson(a, 200, JSON.stringify({ reports }));
    } catch (e) {
      badParam(a, e);
    }
  });

  app.ws<ReportStreamUser>('/v1/reports/stream', {
    compression: uws.DISABLED,
    maxPayloadLength: REPORT_WS_PAYLOAD_BYTES_MAX,
    maxBackpressure: REPORT_WS_BACKPRESSURE_BYTES_MAX,
    closeOnBackpressureLimit: 1,
    idleTimeout: REPORT_WS_IDLE_TIMEOUT_S,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      // request data is valid only during this call: read everything before answering
      const query = new URLSearchParams(req.getQuery() ?? '');
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let wanted: string[];
      try {
        wanted = metricsParam(query, metrics);
      } catch (e) {
        sendJson({ res, aborted: false }, 400, errorBody('SLUICE_E_BAD_PARAM', (e as Error).message));
        return;
      }
      res.upgrade<ReportStreamUser>({ metrics: wanted }, key, protocol, extensions, context);
    },
    open: (ws) => {
      sockets.add(ws);
      for (const m of ws.getUserData().metrics) ws.subscribe(reportTopic(m));
    },
    close: (ws) => { sockets.delete(ws); },
  });

  const unsubscribe = reporter.subscribe((r) => {
    const topic = reportTopic(r.metric);
    if (app.numSubscribers(topic) > 0) app.publish(topic, JSON.stringify(r), false);
  });

  return {
    sockets,
    close(): void {
      unsubscribe();
      for (const ws of [...sockets]) ws.end(1001, 'server stopping');
      sockets.clear();
    },
  };
}
