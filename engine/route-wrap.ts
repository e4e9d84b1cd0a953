/**
 * One way to put a layer around every route an app registers (the fault guard, the connection
 * limits, the token check): a Proxy of the app whose route methods register the wrapped handler
 * or WebSocket behaviour instead. Registration only: the wrappers a layer returns are what runs
 * per request, so a layer costs nothing but its own check.
 */

import type { HttpRequest, HttpResponse, TemplatedApp, WebSocketBehavior } from 'uWebSockets.js';

export type HttpHandler = (res: HttpResponse, req: HttpRequest) => void;

/** uWS's HTTP route methods (`del` is DELETE) */
export const HTTP_METHODS: ReadonlySet<string> = new Set(['get', 'post', 'put', 'del', 'patch', 'options', 'head', 'connect', 'trace', 'any']);

export interface RouteLayer {
  /** the handler to register for `method pattern` */
  http(method: string, pattern: string, handler: HttpHandler): HttpHandler;
  /** the behaviour to register for the WebSocket route `pattern` */
  ws(pattern: string, behavior: WebSocketBehavior<unknown>): WebSocketBehavior<unknown>;
}

export function wrapRoutes(app: TemplatedApp, layer: RouteLayer): TemplatedApp {
  const proxy: TemplatedApp = new Proxy(app, {
    get: (target, prop) => {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === 'ws') {
        return (pattern: string, behavior: WebSocketBehavior<unknown>) => {
          fn.call(target, pattern, layer.ws(pattern, behavior));
          return proxy;
        };
      }
      if (typeof prop === 'string' && HTTP_METHODS.has(prop)) {
        return (pattern: string, handler: HttpHandler) => {
          fn.call(target, pattern, layer.http(prop, pattern, handler));
          return proxy;
        };
      }
      return fn.bind(target);
    },
  });
  return proxy;
}
