/**
 * Records every route registered on the uWS app, so that the OpenAPI document (engine/openapi.ts)
 * is checked against what the server really answers rather than against a copy of the list.
 *
 * recordRoutes() wraps the app: the route methods (get, post, ws, any, ...) note their method and
 * pattern, then register on the real app; every other member is the app's own, bound to it (uWS
 * methods are native and need the real object as `this`). Registration only: no per-request cost.
 * Front-end thread only.
 */

import type { TemplatedApp } from 'uWebSockets.js';

export const ROUTE_METHODS = ['get', 'post', 'put', 'del', 'patch', 'options', 'head', 'connect', 'trace', 'any', 'ws'] as const;
export type RouteMethod = typeof ROUTE_METHODS[number];

export interface RecordedRoute {
  method: RouteMethod;
  /** the uWS pattern, e.g. /v1/devices/:deviceId/metrics/:metric */
  pattern: string;
}

const recorded = new WeakMap<object, RecordedRoute[]>();

export function recordRoutes(app: TemplatedApp): TemplatedApp {
  const routes: RecordedRoute[] = [];
  const proxy: TemplatedApp = new Proxy(app, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if ((ROUTE_METHODS as readonly (string | symbol)[]).includes(prop)) {
        return (pattern: string, ...rest: unknown[]) => {
          routes.push({ method: prop as RouteMethod, pattern });
          (value as (...args: unknown[]) => unknown).call(target, pattern, ...rest);
          return proxy;
        };
      }
      return (value as (...args: unknown[]) => unknown).bind(target);
    },
  });
  recorded.set(proxy, routes);
  return proxy;
}

/** The routes registered so far on an app made by recordRoutes() (empty for another app). */
export function routesOf(app: TemplatedApp): readonly RecordedRoute[] {
  return recorded.get(app) ?? [];
}
