/**
 * Limits on what clients hold open (--connections-max), and the counters /healthz shows as `limits`.
 *
 * What uWS.js 20.30 lets JavaScript see: it has no hook for an HTTP connection opening or closing
 * (App.filter came in a later uWS.js), only requests and WebSockets. So the limit counts what
 * holds memory in the engine: HTTP requests being read or answered (from the handler's start to
 * end/tryEnd/endWithoutBody/close/upgrade or the abort) plus open WebSockets. A request or an
 * upgrade that finds that many open is answered 503 (Retry-After, SLUICE_E_TOO_MANY_CONNECTIONS naming
 * --connections-max) and its connection closed. A connection with no request in progress (idle
 * keep-alive, headers still arriving: a slowloris) costs only uSockets' few hundred bytes and the
 * kernel's buffers, and uWS closes it after 10 s without a complete request (HTTP_IDLE_TIMEOUT_S,
 * measured: idle, byte-a-second headers and byte-a-second bodies all closed at 12 s, its timers
 * tick every 4 s); /healthz counts those from the kernel's table (`tcp`, Linux).
 *
 * wrap() puts the counting around every route of an app at registration; the per-request cost is
 * one comparison, two property writes and the patched end (HttpResponse's methods are patched once
 * per prototype, as fault-guard.ts does for onData). Front-end thread only.
 */

import fs from 'node:fs';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';
import { errorBody } from './http-util';
import { type HttpHandler, wrapRoutes } from './route-wrap';

type UpgradeHandler = (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => void | Promise<void>;

/** the close code uWS gives a WebSocket it closed without a close frame: idle timeout, backpressure limit, peer gone */
const WS_ABNORMAL_CLOSE = 1006;

/** What ws-stream reports to the counters. */
export interface WsLimitCounters {
  /** a stream socket closed because its unsent answers passed --ws-max-backpressure */
  wsClosedBackpressure: number;
  /** frames answered SLUICE_E_BACKPRESSURE because --ws-inflight-max frames were in flight */
  framesRefusedInflight: number;
  /** stream sockets closed (1008) for sending far past --ws-inflight-max without reading their answers */
  wsClosedInflight: number;
}

/** The per-request mark on an HttpResponse (uWS lets us attach properties to it). */
interface Counted {
  _slLimits?: ConnectionLimits | null;
  _slAbort?: boolean;
}

const noop = (): void => {};

export class ConnectionLimits implements WsLimitCounters {
  httpInFlight = 0;
  wsOpen = 0;
  /** open WebSockets by route pattern */
  readonly wsByRoute: Record<string, number> = {};
  refusedHttp = 0;
  refusedWs = 0;
  /** requests whose connection closed before their answer: the client left, or uWS's 10 s timeout */
  httpAborted = 0;
  /** WebSockets closed 1006 by uWS or the network (idle timeout, a backpressure limit, the peer vanished) */
  wsClosedAbnormal = 0;
  wsClosedBackpressure = 0;
  framesRefusedInflight = 0;
  wsClosedInflight = 0;
  /** the listen port, for the kernel's count (0: not listening yet) */
  port = 0;

  constructor(readonly connectionsMax: number) {}

  /** Called by the patched HttpResponse methods when a counted request is done. */
  ended(res: Counted, aborted: boolean): void {
    res._slLimits = null;
    this.httpInFlight--;
    if (aborted) this.httpAborted++;
  }

  private full(): boolean {
    return this.httpInFlight + this.wsOpen >= this.connectionsMax;
  }

  /** 503 and close: the refused client holds nothing after this. */
  private refuse(res: HttpResponse): void {
    const body = errorBody('SLUICE_E_TOO_MANY_CONNECTIONS',
      `the engine holds ${this.connectionsMax} connections (--connections-max): connect again later`);
    res.cork(() => {
      res.writeStatus('503 Service Unavailable').writeHeader('Content-Type', 'application/json').writeHeader('Retry-After', '1');
      res.end(body, true);
    });
  }

  private admit(res: HttpResponse): boolean {
    patchResponse(res);
    const c = res as unknown as Counted;
    c._slLimits = this;
    c._slAbort = false;
    this.httpInFlight++;
    return true;
  }

  /** A handler that returned without answering and without onAborted: abort must still be counted. */
  private settle(res: HttpResponse): void {
    const c = res as unknown as Counted;
    if (c._slLimits === this && c._slAbort === false) res.onAborted(noop);
  }

  private countHttp(handler: HttpHandler): HttpHandler {
    return (res, req) => {
      if (this.full()) {
        this.refusedHttp++;
        this.refuse(res);
        return;
      }
      this.admit(res);
      try {
        handler(res, req);
      } finally {
        this.settle(res);
      }
    };
  }

  private countWs<U>(pattern: string, behavior: WebSocketBehavior<U>): WebSocketBehavior<U> {
    this.wsByRoute[pattern] = 0;
    const upgrade: UpgradeHandler = behavior.upgrade ?? defaultUpgrade;
    const { open, close } = behavior;
    return {
      ...behavior,
      upgrade: (res, req, context) => {
        if (this.full()) {
          this.refusedWs++;
          this.refuse(res);
          return;
        }
        this.admit(res);
        try {
          return upgrade(res, req, context);
        } finally {
          this.settle(res);
        }
      },
      open: (ws: WebSocket<U>) => {
        this.wsOpen++;
        this.wsByRoute[pattern]++;
        return open?.(ws);
      },
      close: (ws: WebSocket<U>, code: number, message: ArrayBuffer) => {
        this.wsOpen--;
        this.wsByRoute[pattern]--;
        if (code === WS_ABNORMAL_CLOSE) this.wsClosedAbnormal++;
        close?.(ws, code, message);
      },
    };
  }

  /** The app with every route registered through it counted and limited. Registration only. */
  wrap(app: TemplatedApp): TemplatedApp {
    return wrapRoutes(app, {
      http: (_method, _pattern, handler) => this.countHttp(handler),
      ws: (pattern, behavior) => this.countWs(pattern, behavior),
    });
  }

  /** The `limits` object of /healthz. */
  snapshot(): Record<string, unknown> {
    return {
      connectionsMax: this.connectionsMax,
      connections: {
        // what the limit counts
        counted: this.httpInFlight + this.wsOpen,
        httpInFlight: this.httpInFlight,
        websocket: { ...this.wsByRoute },
        // every TCP connection to the port, idle and half-sent ones too (null: not Linux)
        tcp: this.port > 0 ? tcpConnections(this.port) : null,
      },
      refused: { http: this.refusedHttp, websocket: this.refusedWs },
      closed: {
        wsBackpressure: this.wsClosedBackpressure,
        wsInflight: this.wsClosedInflight,
        wsAbnormal: this.wsClosedAbnormal,
        httpAborted: this.httpAborted,
      },
      framesRefusedInflight: this.framesRefusedInflight,
    };
  }
}

/** The upgrade uWS would do itself, for a route that gives none (it must be counted too). */
function defaultUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
  res.upgrade({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
    req.getHeader('sec-websocket-extensions'), context);
}

const patchedPrototypes = new WeakSet<object>();
let lastPatched: object | null = null;

type AnyFn = (this: HttpResponse, ...args: unknown[]) => unknown;

/**
 * Makes every way a response finishes tell its ConnectionLimits, once per prototype (HttpResponse
 * and SSLHttpResponse differ). Responses that were not counted (_slLimits unset) pass through.
 */
function patchResponse(res: HttpResponse): void {
  const proto = Object.getPrototypeOf(res) as Record<string, AnyFn>;
  if (proto === lastPatched) return;
  lastPatched = proto;
  if (patchedPrototypes.has(proto)) return;
  patchedPrototypes.add(proto);
  for (const name of ['end', 'endWithoutBody', 'close', 'upgrade']) {
    const orig = proto[name];
    proto[name] = function patched(this: HttpResponse, ...args: unknown[]): unknown {
      const r = orig.apply(this, args);
      const c = this as unknown as Counted;
      const l = c._slLimits;
      if (l) l.ended(c, false);
      return r;
    };
  }
  const tryEnd = proto.tryEnd;
  proto.tryEnd = function patchedTryEnd(this: HttpResponse, ...args: unknown[]): unknown {
    const r = tryEnd.apply(this, args) as [boolean, boolean];
    const c = this as unknown as Counted;
    const l = c._slLimits;
    if (l && r[1]) l.ended(c, false);
    return r;
  };
  const onAborted = proto.onAborted;
  proto.onAborted = function patchedOnAborted(this: HttpResponse, ...args: unknown[]): unknown {
    const c = this as unknown as Counted;
    const handler = args[0] as () => void;
    if (c._slLimits === undefined) return onAborted.call(this, handler);
    c._slAbort = true;
    return onAborted.call(this, () => {
      const l = c._slLimits;
      if (l) l.ended(c, true);
      handler();
    });
  };
}

/**
 * Established TCP connections to the local port, from /proc/net/tcp and tcp6: the kernel's count,
 * idle keep-alive and half-sent requests included. Read on demand (a /healthz), ~1 ms per 5,000.
 */
export function tcpConnections(port: number): number | null {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  let n = 0;
  let any = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    any = true;
    // "  sl  local_address rem_address   st ..." : the local address's port, then state 01 = ESTABLISHED
    let at = text.indexOf('\n') + 1;
    while (at > 0 && at < text.length) {
      const nl = text.indexOf('\n', at);
      const end = nl < 0 ? text.length : nl;
      const colon = text.indexOf(': ', at);
      if (colon > 0 && colon < end) {
        const local = text.indexOf(' ', colon + 2);
        const localAddr = text.slice(colon + 2, local + 1);
        if (localAddr.endsWith(hexPort)) {
          const rem = text.indexOf(' ', local + 1);
          if (text.startsWith('01', rem + 1)) n++;
        }
      }
      at = nl + 1;
    }
  }
  return any ? n : null;
}
