/**
 * The one guard between uWebSockets.js and our handlers: no request ends the process.
 *
 * uWS calls JavaScript from native code; an exception that escapes a handler, a body callback or
 * a WebSocket callback ends the process (every device loses its connection). guardRoutes() wraps
 * the app once, at registration: every HTTP handler, the body callback (res.onData) of every
 * request that can carry a body, and every callback of every WebSocket behaviour run inside
 * try/catch. An unexpected exception is answered `500 SLUICE_E_INTERNAL` with a request id
 * (WebSocket: an error frame with the id, then close 1011), logged once with its stack under that
 * id, counted (`faults`, shown by /healthz), and the engine goes on serving everyone else.
 * Callbacks that run later, outside any uWS callback (an answer after a WAL commit, a retry
 * timer), report through report(): logged and counted the same way; whoever calls them keeps
 * going with the other requests.
 *
 * This is for bugs on the front-end thread, not for input: validation is total (every input maps
 * to a value or a SLUICE_E_* code). Shard workers keep their own policy (ARCHITECTURE.md: a
 * broken invariant fails the shard, recovery rebuilds it from the WAL). Front-end thread only.
 */

import crypto from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import type { Logger } from './logger';
import type { ErrorCode } from '../protocol';
import { type HttpHandler, wrapRoutes } from './route-wrap';

type DataHandler = (chunk: ArrayBuffer, isLast: boolean) => void;

/** route methods whose requests may carry a body: their onData callbacks are guarded too */
const BODY_METHODS = new Set(['post', 'put', 'patch', 'any']);
const SLUICE_E_INTERNAL: ErrorCode = 'SLUICE_E_INTERNAL';

function internalError(id: string): string {
  return JSON.stringify({ error: `internal error (request ${id}): the engine's log has the details`, code: SLUICE_E_INTERNAL, requestId: id });
}

/** A guarded route that can carry a body: its guard and what its log lines call it. */
interface BodyRoute {
  guard: FaultGuard;
  where: string;
}

/**
 * The body route whose handler is running (null outside a guarded handler): res.onData and
 * lateFailure() read it. uWS requires onData to be attached inside the handler, so it is always
 * set when they are called for a guarded request.
 */
let activeBodyRoute: BodyRoute | null = null;
/** HttpResponse prototypes whose onData runs body callbacks guarded (one per uWS app kind) */
const guardedPrototypes = new WeakSet<object>();
let lastGuardedPrototype: object | null = null;

/**
 * Makes onData of every response of res's prototype run its callback inside try/catch when it is
 * attached by a guarded handler (responses of unguarded apps get the callback as it is). Done
 * once per prototype: the per-request cost is one closure, where shadowing onData on each
 * response (and remembering it in a WeakMap) cost ~4 % of the front-end thread on http-single
 * (perf: WeakCollectionSet + ephemeron barriers, 2026-12-02).
 */
function guardOnData(res: HttpResponse): void {
  const proto = Object.getPrototypeOf(res) as { onData: HttpResponse['onData'] };
  if (proto === lastGuardedPrototype) return;
  lastGuardedPrototype = proto;
  if (guardedPrototypes.has(proto)) return;
  guardedPrototypes.add(proto);
  const onData = proto.onData;
  proto.onData = function guardedOnData(this: HttpResponse, cb: DataHandler): HttpResponse {
    const route = activeBodyRoute;
    if (route === null) return onData.call(this, cb);
    const res = this;
    return onData.call(this, (chunk: ArrayBuffer, isLast: boolean) => {
      try {
        cb(chunk, isLast);
      } catch (err) {
        route.guard.failHttp(res, err, route.where);
      }
    });
  };
}

/**
 * For code that will answer a guarded request from outside any uWS callback (a decompressed body
 * arrives from a zlib callback): call it in the handler; the function it returns reports a fault
 * and answers 500 as the guard does. Null when the handler is not a guarded body route's (the
 * caller answers itself).
 */
export function lateFailure(res: HttpResponse): ((err: unknown) => void) | null {
  const route = activeBodyRoute;
  if (route === null) return null;
  return (err: unknown) => route.guard.failHttp(res, err, route.where);
}

export class FaultGuard {
  /** unexpected exceptions caught since the start */
  faults = 0;
  /** the id of the latest fault, for /healthz */
  lastFaultId: string | null = null;
  private readonly idPrefix = crypto.randomBytes(3).toString('hex');
  private idSeq = 0;

  constructor(private readonly log: Logger) {}

  /** Logs and counts a fault; returns its request id. */
  report(err: unknown, where: string): string {
    const id = `${this.idPrefix}-${(++this.idSeq).toString(36)}`;
    this.faults++;
    this.lastFaultId = id;
    this.log.error({ err, requestId: id, where }, `internal error in ${where} (request ${id}): answered ${SLUICE_E_INTERNAL}, the engine goes on`);
    return id;
  }

  /** Reports the fault and answers 500 with its id, if the response can still be written. */
  failHttp(res: HttpResponse, err: unknown, where: string): void {
    const id = this.report(err, where);
    try {
      res.cork(() => {
        res.writeStatus('500 Internal Server Error');
        res.writeHeader('Content-Type', 'application/json');
        res.end(internalError(id));
      });
    } catch {
      // answered or aborted already: uWS refuses access to a finished response
    }
  }

  /** Reports the fault, sends an error frame with its id and closes the socket with 1011. */
  failWs(ws: WebSocket<unknown>, err: unknown, where: string): void {
    const id = this.report(err, where);
    try {
      ws.cork(() => {
        ws.send(internalError(id), false);
        ws.end(1011, 'internal error');
      });
    } catch {
      // closed already
    }
  }

  private guardHttp(method: string, pattern: string, handler: HttpHandler): HttpHandler {
    const where = `${method.toUpperCase()} ${pattern}`;
    if (!BODY_METHODS.has(method)) {
      return (res, req) => {
        try {
          handler(res, req);
        } catch (err) {
          this.failHttp(res, err, where);
        }
      };
    }
    const route: BodyRoute = { guard: this, where: `${where} (body)` };
    return (res, req) => {
      guardOnData(res);
      activeBodyRoute = route;
      try {
        handler(res, req);
      } catch (err) {
        this.failHttp(res, err, where);
      } finally {
        activeBodyRoute = null;
      }
    };
  }

  private guardWs<U>(pattern: string, behavior: WebSocketBehavior<U>): WebSocketBehavior<U> {
    const out: Record<string, unknown> = { ...behavior };
    for (const [key, value] of Object.entries(behavior)) {
      if (typeof value !== 'function') continue;
      const where = `WS ${pattern} ${key}`;
      const fn = value as (...args: unknown[]) => unknown;
      out[key] = key === 'upgrade'
        ? (res: HttpResponse, req: HttpRequest, context: unknown) => {
          try {
            return fn(res, req, context);
          } catch (err) {
            this.failHttp(res, err, where);
          }
        }
        : (ws: WebSocket<unknown>, ...args: unknown[]) => {
          try {
            return fn(ws, ...args);
          } catch (err) {
            // after close the socket cannot be written: only report
            if (key === 'close') this.report(err, where);
            else this.failWs(ws, err, where);
          }
        };
    }
    return out as WebSocketBehavior<U>;
  }

  /**
   * The app with every route registered through it guarded. Registration only: the per-request
   * cost is one try/catch, plus one wrapping closure of the body callback for routes that can
   * carry a body (HttpResponse's onData is guarded once, on its prototype: guardOnData).
   */
  guardRoutes(app: TemplatedApp): TemplatedApp {
    return wrapRoutes(app, {
      http: (method, pattern, handler) => this.guardHttp(method, pattern, handler),
      ws: (pattern, behavior) => this.guardWs(pattern, behavior),
    });
  }
}
