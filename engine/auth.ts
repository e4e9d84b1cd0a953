/**
 * Tokens and roles on the routes (issue #13): `--auth on` checks every request's token against
 * the access its route needs (ROUTE_ACCESS), once, before the route's handler runs.
 *
 * Roles: `device` (bound to one deviceId: writes that device's events only, on /v1/events and
 * /v1/stream), `write` (any device, every ingest route), `read` (queries, reports, metrics, the
 * dashboard's feed), `admin` (everything, token management included). A route's access is
 * `public` (no token: /healthz, /docs, /openapi.json, /ping, the dashboard's static files), `read`,
 * `write` or `admin`; admin satisfies every access, write and read do not satisfy each other.
 *
 * Credentials: `Authorization: Bearer <token>` or `Token <token>` (InfluxDB clients), `Basic`
 * with the token as password (InfluxDB 1.x clients' u/p), the `p` query parameter (the same, in
 * the URL), and on a WebSocket upgrade the same header or `?token=`. No token, or an unknown or
 * revoked one: 401 SLUICE_E_UNAUTHORIZED; a role that may not: 403 SLUICE_E_FORBIDDEN.
 *
 * Cost: a check is a Map lookup of the header's token (the verified principal is cached; a
 * revocation clears the cache), so no hash runs per request and nothing runs per event.
 * WebSocket connections are checked at their upgrade; their sockets are tracked by token, so a
 * revocation closes them at once (1008).
 *
 * The handler of a request, run synchronously by wrap(), can ask currentPrincipal() who is
 * calling (ingest routes pin a device token's requests to its device). Front-end thread only.
 */

import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import type { Role, TokenRecord, TokenStore } from '../storage';
import type { AuthMode } from './config';
import { sendError } from './http-util';
import { wrapRoutes } from './route-wrap';

export type Access = 'public' | 'read' | 'write' | 'admin';

export interface Principal {
  tokenId: string;
  role: Role;
  deviceId?: string;
}

/** The access of every route, by `method pattern`: a route missing here makes the engine refuse to start. */
export const ROUTE_ACCESS: Readonly<Record<string, Access>> = {
  'get /': 'public',
  'get /healthz': 'public',
  'get /docs': 'public',
  'get /docs/:file': 'public',
  'get /openapi.json': 'public',
  'get /ping': 'public',
  'get /ui': 'public',
  'get /ui/': 'public',
  'get /ui/:file': 'public',
  'get /ui/vendor/:file': 'public',
  'any /*': 'public',
  'post /v1/events': 'write',
  'ws /v1/stream': 'write',
  'post /telemetry/cpu': 'write',
  'post /analytics': 'write',
  'post /write': 'write',
  'post /api/v2/write': 'write',
  'post /api/v1/write': 'write',
  'get /analytics': 'read',
  'get /metrics': 'read',
  'get /metrics/devices/:deviceId': 'read',
  'get /metrics/top/:n': 'read',
  'post /compute/metrics': 'read',
  'get /v1/devices': 'read',
  'get /v1/devices/:deviceId/metrics/:metric': 'read',
  'get /v1/late': 'read',
  'get /v1/metrics/:metric': 'read',
  'get /v1/metrics/:metric/top': 'read',
  'get /v1/mqtt/rejected': 'read',
  'get /v1/reports': 'read',
  'ws /v1/reports/stream': 'read',
  'ws /v1/ui/stream': 'read',
  'get /api/v1/query': 'read',
  'post /api/v1/query': 'read',
  'get /api/v1/query_range': 'read',
  'post /api/v1/query_range': 'read',
  'get /api/v1/series': 'read',
  'post /api/v1/series': 'read',
  'get /api/v1/labels': 'read',
  'post /api/v1/labels': 'read',
  'get /api/v1/label/:name/values': 'read',
  'get /api/v1/status/buildinfo': 'read',
  'post /v1/tokens': 'admin',
  'get /v1/tokens': 'admin',
  'del /v1/tokens/:id': 'admin',
  'post /v1/debug/fail-wal': 'admin',
  'post /v1/debug/stall-shards': 'admin',
  'post /v1/debug/throw': 'admin',
  'ws /v1/debug/throw-stream': 'admin',
};

/** the routes a device token may call (pinned to its device) */
const DEVICE_ROUTES = new Set(['post /v1/events', 'ws /v1/stream']);

const CACHE_MAX = 10_000;

let current: Principal | null = null;

/** Who calls the handler running now (null: auth off, or a public route). */
export function currentPrincipal(): Principal | null {
  return current;
}

/** The token of a request: Authorization (Bearer, Token, Basic's password), else ?p= or ?token=. */
export function tokenOf(authorization: string, query: string): string | null {
  if (authorization !== '') {
    const sp = authorization.indexOf(' ');
    const scheme = (sp < 0 ? authorization : authorization.slice(0, sp)).toLowerCase();
    const value = sp < 0 ? '' : authorization.slice(sp + 1).trim();
    if (scheme === 'bearer' || scheme === 'token') return value;
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      return colon < 0 ? decoded : decoded.slice(colon + 1);
    }
    return value;
  }
  if (query === '') return null;
  const q = new URLSearchParams(query);
  return q.get('token') ?? q.get('p');
}

export type AuthVerdict = { ok: true; principal: Principal } | { ok: false; status: 401 | 403; code: 'SLUICE_E_UNAUTHORIZED' | 'SLUICE_E_FORBIDDEN'; message: string };

function allows(role: Role, access: Access, route: string): boolean {
  if (access === 'public' || role === 'admin') return true;
  if (role === 'device') return DEVICE_ROUTES.has(route);
  return role === access;
}

export class Auth {
  private readonly cache = new Map<string, Principal>();
  /** open WebSockets by the token they were opened with */
  private readonly sockets = new Map<string, Set<WebSocket<unknown>>>();
  readonly counters = { checked: 0, unauthorized: 0, forbidden: 0, revokedClosed: 0 };

  constructor(readonly mode: AuthMode, private readonly tokens: TokenStore) {}

  /** The verdict on a token for a route (`method pattern`) of the given access. */
  check(token: string | null, route: string, access: Access): AuthVerdict {
    this.counters.checked++;
    if (token === null || token === '') return this.unauthorized('no token: send Authorization: Bearer <token>');
    let p = this.cache.get(token);
    if (p === undefined) {
      const r = this.tokens.verify(token);
      if (r === undefined) return this.unauthorized('unknown token');
      if (r.revokedAt !== undefined) return this.unauthorized(`token ${r.id} was revoked`);
      p = principalOf(r);
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(token, p);
    }
    if (!allows(p.role, access, route)) {
      this.counters.forbidden++;
      const what = p.role === 'device' ? `a device token (device ${JSON.stringify(p.deviceId)}) may only send that device's events (POST /v1/events, /v1/stream)` : `the ${p.role} role may not call ${route.replace(/^del /, 'delete ')} (it needs ${access})`;
      return { ok: false, status: 403, code: 'SLUICE_E_FORBIDDEN', message: what };
    }
    return { ok: true, principal: p };
  }

  private unauthorized(message: string): AuthVerdict {
    this.counters.unauthorized++;
    return { ok: false, status: 401, code: 'SLUICE_E_UNAUTHORIZED', message };
  }

  /** A token was revoked: forget cached principals and close its WebSockets. */
  revoked(id: string): void {
    for (const [token, p] of this.cache) if (p.tokenId === id) this.cache.delete(token);
    const open = this.sockets.get(id);
    if (open === undefined) return;
    this.sockets.delete(id);
    for (const ws of open) {
      this.counters.revokedClosed++;
      ws.end(1008, 'token revoked');
    }
  }

  /** Wraps the app: every route registered through it checks its access first (when auth is on). */
  wrap(app: TemplatedApp): TemplatedApp {
    if (this.mode === 'off') return app;
    return wrapRoutes(app, {
      http: (method, pattern, handler) => this.wrapHttp(`${method} ${pattern}`, handler),
      ws: (pattern, behavior) => this.wrapWs(pattern, behavior),
    });
  }

  private accessOf(route: string): Access {
    // HEAD of a GET route (head-routes.ts) needs what the GET needs
    const a = ROUTE_ACCESS[route.startsWith('head ') ? `get ${route.slice(5)}` : route];
    if (a === undefined) throw new Error(`the route ${route} has no access in engine/auth.ts ROUTE_ACCESS: say who may call it`);
    return a;
  }

  private wrapHttp(route: string, handler: (res: HttpResponse, req: HttpRequest) => void): (res: HttpResponse, req: HttpRequest) => void {
    const access = this.accessOf(route);
    if (access === 'public') return handler;
    return (res, req) => {
      const v = this.check(tokenOf(req.getHeader('authorization'), req.getQuery() ?? ''), route, access);
      if (!v.ok) {
        refuseRequest(res, v);
        return;
      }
      current = v.principal;
      try {
        handler(res, req);
      } finally {
        current = null;
      }
    };
  }

  private wrapWs(pattern: string, behavior: WebSocketBehavior<unknown>): WebSocketBehavior<unknown> {
    const route = `ws ${pattern}`;
    const access = this.accessOf(route);
    if (access === 'public') return behavior;
    const upgrade = behavior.upgrade;
    const open = behavior.open;
    const close = behavior.close;
    return {
      ...behavior,
      upgrade: (res, req, context) => {
        const v = this.check(tokenOf(req.getHeader('authorization'), req.getQuery() ?? ''), route, access);
        if (!v.ok) {
          refuseRequest(res, v);
          return;
        }
        // the socket's user data carries its token id (for revocation): res.upgrade is wrapped
        // for this request only, whenever the route calls it (now or after an await)
        const tokenId = v.principal.tokenId;
        const realUpgrade = res.upgrade;
        res.upgrade = ((userData: Record<string, unknown>, ...rest: unknown[]) =>
          (realUpgrade as (...a: unknown[]) => void).call(res, { ...userData, authTokenId: tokenId }, ...rest)) as typeof res.upgrade;
        current = v.principal;
        try {
          if (upgrade !== undefined) upgrade(res, req, context);
          else res.upgrade({ authTokenId: tokenId }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
        } finally {
          current = null;
        }
      },
      open: (ws) => {
        const id = (ws.getUserData() as { authTokenId?: string }).authTokenId;
        if (id !== undefined) {
          let set = this.sockets.get(id);
          if (set === undefined) this.sockets.set(id, set = new Set());
          set.add(ws);
        }
        if (open !== undefined) open(ws);
      },
      close: (ws, code, message) => {
        const id = (ws.getUserData() as { authTokenId?: string }).authTokenId;
        if (id !== undefined) this.sockets.get(id)?.delete(ws);
        if (close !== undefined) close(ws, code, message);
      },
    };
  }
}

/** 401 (with the scheme to use) or 403, in the error shape of every route. */
function refuseRequest(res: HttpResponse, v: Extract<AuthVerdict, { ok: false }>): void {
  sendError({ res, aborted: false }, v.status, v.code, v.message, undefined, v.status === 401 ? UNAUTHORIZED_HEADERS : undefined);
}

const UNAUTHORIZED_HEADERS = { 'WWW-Authenticate': 'Bearer realm="sluice"' };

function principalOf(r: TokenRecord): Principal {
  return r.deviceId === undefined ? { tokenId: r.id, role: r.role } : { tokenId: r.id, role: r.role, deviceId: r.deviceId };
}
