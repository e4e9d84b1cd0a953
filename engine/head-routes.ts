/**
 * HEAD on every GET route (load balancers and uptime checks use it): answerHead() wraps the app
 * so that registering a GET registers a HEAD with the same handler, whose response sends the
 * status and headers, with the Content-Length of the body GET would send, and no body. The
 * catch-all `any` routes get the same treatment for HEAD requests.
 *
 * Why a shadowed end(): uWS sends the body of res.end(body) even to HEAD (seen on the fork we
 * use), and its endWithoutBody(length) aborts the process; endWithoutBody() with an explicit
 * Content-Length header is what works. Registration only; GET requests pay nothing.
 * Front-end thread only.
 */

import type { HttpRequest, HttpResponse, RecognizedString, TemplatedApp } from 'uWebSockets.js';

type HttpHandler = (res: HttpResponse, req: HttpRequest) => void;

function byteLength(body: RecognizedString | undefined): number {
  if (body === undefined) return 0;
  if (typeof body === 'string') return Buffer.byteLength(body);
  return (body as ArrayBufferLike | ArrayBufferView).byteLength;
}

/** This response, for a HEAD request: end(body) sends the headers and the body's length only. */
function withoutBody(res: HttpResponse): void {
  res.end = (body?: RecognizedString): HttpResponse => {
    res.writeHeader('Content-Length', String(byteLength(body)));
    return res.endWithoutBody();
  };
}

export function answerHead(app: TemplatedApp): TemplatedApp {
  const proxy: TemplatedApp = new Proxy(app, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === 'get') {
        return (pattern: string, handler: HttpHandler) => {
          fn.call(target, pattern, handler);
          target.head(pattern, (res, req) => {
            withoutBody(res);
            handler(res, req);
          });
          return proxy;
        };
      }
      if (prop === 'any') {
        return (pattern: string, handler: HttpHandler) => {
          fn.call(target, pattern, (res: HttpResponse, req: HttpRequest) => {
            if (req.getMethod() === 'head') withoutBody(res);
            handler(res, req);
          });
          return proxy;
        };
      }
      return fn.bind(target);
    },
  });
  return proxy;
}
