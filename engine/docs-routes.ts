/**
 * GET /docs: a human-readable API reference (Swagger UI over GET /openapi.json) that works
 * offline. The page and its assets come from the swagger-ui-dist package (a dependency), read
 * into memory when the routes are registered, and are served by Sluice itself: the page loads
 * nothing from another host (no CDN; the online validator badge is switched off).
 *
 *   GET /docs          the page
 *   GET /docs/{file}   one of ASSETS; 404 {error, code} for any other name
 *
 * Front-end thread only; a missing swagger-ui-dist fails the start-up with the reason.
 */

import fs from 'node:fs';
import path from 'node:path';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { sendError } from './http-util';

interface Asset {
  contentType: string;
  body: Buffer;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sluice API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs-init.js"></script>
</body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise send the document to an online validator
const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null });\n`;

/** the files of swagger-ui-dist the page uses, by the name it is served under */
const DIST_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

export function swaggerUiDir(): string {
  return path.dirname(require.resolve('swagger-ui-dist/package.json'));
}

export function loadDocsAssets(): Map<string, Asset> {
  const dir = swaggerUiDir();
  const assets = new Map<string, Asset>();
  for (const [name, contentType] of Object.entries(DIST_FILES)) assets.set(name, { contentType, body: fs.readFileSync(path.join(dir, name)) });
  assets.set('docs-init.js', { contentType: 'text/javascript; charset=utf-8', body: Buffer.from(INIT) });
  return assets;
}

function send(res: HttpResponse, a: Asset): void {
  res.cork(() => {
    res.writeStatus('200 OK');
    res.writeHeader('Content-Type', a.contentType);
    res.writeHeader('Cache-Control', 'public, max-age=3600');
    res.end(a.body);
  });
}

export function registerDocsRoutes(app: TemplatedApp): void {
  const assets = loadDocsAssets();
  const page: Asset = { contentType: 'text/html; charset=utf-8', body: Buffer.from(PAGE) };
  app.get('/docs', (res: HttpResponse) => send(res, page));
  app.get('/docs/:file', (res: HttpResponse, req: HttpRequest) => {
    const name = req.getParameter(0) ?? '';
    const a = assets.get(name);
    if (a === undefined) {
      sendError({ res, aborted: false }, 404, 'SLUICE_E_NOT_FOUND', `no docs asset ${JSON.stringify(name)} (the page uses ${[...assets.keys()].join(', ')})`);
      return;
    }
    send(res, a);
  });
}
