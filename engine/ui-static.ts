/**
 * The dashboard's static files (GET /ui, /ui/{file}, /ui/vendor/{file}), served from memory.
 *
 * Contract: loadUiAssets() reads, once at start-up, every regular file directly in web/ whose name
 * is plain ([A-Za-z0-9._-], no leading dot) and whose extension has a content type here, plus the
 * uPlot files the page uses from the uplot package. A request names a file by one path segment
 * and is answered only when that exact name is in the table: the name never reaches the file
 * system, so no spelling of `..` (raw, %2e, %2f, backslash) can leave web/. A missing web/ or
 * uplot fails the start-up with the path (a packaging bug, not something to serve around).
 *
 * Caching: every answer has an ETag (a hash of the body) and If-None-Match answers 304. The page
 * and its scripts say `no-cache` (revalidate each load: they change with the engine, and a stale
 * app.js against a newer engine is worse than a 304 round trip); uPlot may be kept for a day.
 * Front-end thread only.
 */

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { sendError } from './http-util';

export interface UiAsset {
  contentType: string;
  body: Buffer;
  etag: string;
  cacheControl: string;
}

export interface UiAssets {
  /** web/ files by name (index.html among them) */
  files: Map<string, UiAsset>;
  /** uPlot's files by name */
  vendor: Map<string, UiAsset>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** the uplot files the page loads, as they are named in uplot/dist */
const VENDOR_FILES = ['uPlot.iife.min.js', 'uPlot.min.css'];
const CACHE_REVALIDATE = 'no-cache';
const CACHE_VENDOR_S = 86_400;

/**
 * The page may load and connect only to this origin: a script that reached for a CDN or another
 * host would fail here (and show as a console error in the browser test) instead of leaking.
 * uPlot sets styles through the CSSOM, which style-src does not restrict.
 */
const PAGE_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** web/ in the source tree: dist/engine/ui-static.js -> ../../web */
export function webDir(): string {
  return path.join(__dirname, '..', '..', 'web');
}

export function uplotDistDir(): string {
  return path.join(path.dirname(require.resolve('uplot/package.json')), 'dist');
}

function asset(body: Buffer, contentType: string, cacheControl: string): UiAsset {
  const etag = `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { contentType, body, etag, cacheControl };
}

export function loadUiAssets(web: string = webDir(), vendorDir: string = uplotDistDir()): UiAssets {
  const files = new Map<string, UiAsset>();
  for (const entry of fs.readdirSync(web, { withFileTypes: true })) {
    if (!entry.isFile() || !SAFE_NAME.test(entry.name)) continue;
    const type = CONTENT_TYPES[path.extname(entry.name).toLowerCase()];
    if (type === undefined) continue;
    files.set(entry.name, asset(fs.readFileSync(path.join(web, entry.name)), type, CACHE_REVALIDATE));
  }
  if (!files.has('index.html')) throw new Error(`the dashboard page is missing: no index.html in ${web}`);
  const vendor = new Map<string, UiAsset>();
  for (const name of VENDOR_FILES) {
    const type = CONTENT_TYPES[path.extname(name)];
    vendor.set(name, asset(fs.readFileSync(path.join(vendorDir, name)), type, `public, max-age=${CACHE_VENDOR_S}`));
  }
  return { files, vendor };
}

function send(res: HttpResponse, req: HttpRequest, a: UiAsset): void {
  const fresh = req.getHeader('if-none-match') === a.etag;
  res.cork(() => {
    res.writeStatus(fresh ? '304 Not Modified' : '200 OK');
    res.writeHeader('ETag', a.etag);
    res.writeHeader('Cache-Control', a.cacheControl);
    res.writeHeader('X-Content-Type-Options', 'nosniff');
    if (fresh) {
      res.endWithoutBody();
      return;
    }
    res.writeHeader('Content-Type', a.contentType);
    if (a.contentType.startsWith('text/html')) res.writeHeader('Content-Security-Policy', PAGE_CSP);
    res.end(a.body);
  });
}

function notFound(res: HttpResponse, name: string, where: string): void {
  // the name as sent is echoed through JSON.stringify only: never formatted in a way that can throw
  sendError({ res, aborted: false }, 404, 'SLUICE_E_NOT_FOUND', `${where}: no dashboard file ${JSON.stringify(name.slice(0, 200))}`);
}

/** Registers GET /ui, /ui/, /ui/{file} and /ui/vendor/{file} (HEAD comes with GET: head-routes.ts). */
export function registerUiStatic(app: TemplatedApp, assets: UiAssets): void {
  const page = assets.files.get('index.html');
  if (page === undefined) throw new Error('registerUiStatic: no index.html');
  app.get('/ui', (res: HttpResponse, req: HttpRequest) => send(res, req, page));
  app.get('/ui/', (res: HttpResponse, req: HttpRequest) => send(res, req, page));
  app.get('/ui/:file', (res: HttpResponse, req: HttpRequest) => {
    const name = req.getParameter(0) ?? '';
    const a = assets.files.get(name);
    if (a === undefined) notFound(res, name, '/ui');
    else send(res, req, a);
  });
  app.get('/ui/vendor/:file', (res: HttpResponse, req: HttpRequest) => {
    const name = req.getParameter(0) ?? '';
    const a = assets.vendor.get(name);
    if (a === undefined) notFound(res, name, '/ui/vendor');
    else send(res, req, a);
  });
}
