import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPI } from 'openapi-types';
import { startEngine, getJson } from '../helpers/engine';
import { ERRORS } from '../../protocol';
import { ROUTE_DOCS, openApiPath, undocumentedRoutes } from '../../engine/openapi';

const ENGINE_SRC = path.join(__dirname, '..', '..', '..', 'engine');

interface Operation { responses: Record<string, unknown>; parameters?: { name: string; in: string; required?: boolean }[]; 'x-websocket'?: boolean }
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, { enum?: string[] }> } };

/** "verb path" of every route registered in engine/*.ts, read from the source (uWS patterns as OpenAPI paths; ws as get) */
function routesInSource(): Set<string> {
  const found = new Set<string>();
  for (const file of fs.readdirSync(ENGINE_SRC)) {
    if (!file.endsWith('.ts')) continue;
    const src = fs.readFileSync(path.join(ENGINE_SRC, file), 'utf8');
    for (const m of src.matchAll(/\bapp\.(get|post|put|del|patch|options|head|any|ws)(?:<[^>]*>)?\(\s*'([^']+)'/g)) {
      if (m[1] === 'any' && m[2] === '/*') continue; // the catch-all 404
      found.add(`${m[1] === 'ws' ? 'get' : m[1] === 'del' ? 'delete' : m[1]} ${openApiPath(m[2])}`);
    }
    // query-routes.ts registers its GET routes through a helper
    for (const m of src.matchAll(/\broute\(app,\s*'([^']+)'/g)) found.add(`get ${openApiPath(m[1])}`);
    // prom-api-routes.ts registers GET and POST of a path through a helper
    for (const m of src.matchAll(/\bboth\(app,\s*'([^']+)'/g)) {
      found.add(`get ${openApiPath(m[1])}`);
      found.add(`post ${openApiPath(m[1])}`);
    }
  }
  return found;
}

function routesInDoc(doc: Doc): Set<string> {
  const found = new Set<string>();
  for (const [p, item] of Object.entries(doc.paths)) for (const verb of Object.keys(item)) found.add(`${verb} ${p}`);
  return found;
}

const SAMPLE_PATH: Record<string, string> = { deviceId: 'probe-1', metric: 'cpu', n: '3', file: 'swagger-ui.css' };
const SAMPLE_QUERY: Record<string, string> = { timestamp: String(Date.now()), user: 'probe-1', event: 'click', n: '1', ms: '1' };

function openWs(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => { ws.close(); resolve(); });
    ws.once('unexpected-response', (_req, res) => { res.socket.destroy(); reject(new Error(`upgrade refused: ${res.statusCode}`)); });
    ws.once('error', reject);
  });
}

t.test('the document lists exactly the routes registered in the code, each with its entry', async (t) => {
  const inSource = routesInSource();
  const inDocs = new Set(ROUTE_DOCS.map((d) => `${d.method === 'ws' ? 'get' : d.method === 'del' ? 'delete' : d.method} ${openApiPath(d.pattern)}`));
  t.same([...inSource].sort(), [...inDocs].sort(), 'engine/*.ts registrations = ROUTE_DOCS');
  t.ok(inSource.size >= 20, `${inSource.size} routes found in the source`);
  t.same(undocumentedRoutes([{ method: 'get', pattern: '/v1/nope' }, { method: 'any', pattern: '/*' }, { method: 'get', pattern: '/docs' }]),
    [{ method: 'get', pattern: '/v1/nope' }], 'a route without an entry is reported; the catch-all is not a route');
});

t.test('GET /openapi.json over the real server', async (t) => {
  process.env.SLUICE_DEBUG_ROUTES = '1';
  const engine = await startEngine(['--shards', '1']);
  delete process.env.SLUICE_DEBUG_ROUTES;
  t.teardown(() => engine.stop());
  const r = await getJson(`${engine.url}/openapi.json`);
  t.equal(r.status, 200);
  const doc = r.body as Doc;

  t.test('an OpenAPI 3.1 document that validates', async (t) => {
    t.equal(doc.openapi, '3.1.0');
    await t.resolves(SwaggerParser.validate(structuredClone(doc) as unknown as OpenAPI.Document), 'swagger-parser validates it');
    t.same(doc.components.schemas['ErrorCode']?.enum, Object.keys(ERRORS), 'every error code');
  });

  t.test('it lists every route the server answers (the debug routes too, when enabled), and no other', async (t) => {
    t.same([...routesInDoc(doc)].sort(), [...routesInSource()].sort());
  });

  t.test('every documented operation is answered by its route, with a documented status', async (t) => {
    for (const [p, item] of Object.entries(doc.paths)) {
      for (const [verb, op] of Object.entries(item)) {
        const concrete = p.replace(/\{([^}]+)\}/g, (_m, name: string) => SAMPLE_PATH[name] ?? 'x');
        const query = (op.parameters ?? []).filter((q) => q.in === 'query' && q.required).map((q) => `${q.name}=${SAMPLE_QUERY[q.name] ?? 'x'}`).join('&');
        const url = `${engine.url}${concrete}${query ? `?${query}` : ''}`;
        if (op['x-websocket']) {
          await t.resolves(openWs(url.replace(/^http/, 'ws')), `${verb} ${p}: a WebSocket opens`);
          continue;
        }
        const res = await fetch(url, { method: verb.toUpperCase(), redirect: 'manual' });
        const text = await res.text();
        t.notOk(res.status === 404 && text.includes('no such route'), `${verb} ${p}: answered by its route (${res.status})`);
        t.ok(String(res.status) in op.responses, `${verb} ${p}: status ${res.status} is documented (${Object.keys(op.responses).join(', ')})`);
      }
    }
  });
});

t.test('without SLUICE_DEBUG_ROUTES the fault-injection routes are neither answered nor documented', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const doc = (await getJson(`${engine.url}/openapi.json`)).body as Doc;
  const debug = Object.keys(doc.paths).filter((p) => p.startsWith('/v1/debug/'));
  t.same(debug, []);
  t.ok(Object.keys(doc.paths).length >= 18);
  const r = await fetch(`${engine.url}/v1/debug/stall-shards?ms=1`, { method: 'POST' });
  t.equal(r.status, 404);
});
