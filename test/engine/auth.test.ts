import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { startEngine, getJson, tempDir, type EngineProcess } from '../helpers/engine';
import { ROUTE_DOCS, openApiPath } from '../../engine/openapi';
import { ROUTE_ACCESS, tokenOf } from '../../engine/auth';

type Who = 'none' | 'device' | 'write' | 'read' | 'admin';
const SAMPLE: Record<string, string> = { deviceId: 'auth-dev-1', metric: 'cpu', n: '3', file: 'index.html', id: '000000000000', name: 'device' };

async function call(url: string, method: string, token: string | null, body?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body: parsed };
}

function openWs(url: string, token: string | null): Promise<{ ws: WebSocket | null; status: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => { res.resume(); resolve({ ws: null, status: res.statusCode ?? 0 }); });
    ws.once('error', () => resolve({ ws: null, status: -1 }));
  });
}

async function makeToken(engine: EngineProcess, admin: string, spec: object): Promise<{ id: string; token: string }> {
  const r = await call(`${engine.url}/v1/tokens`, 'POST', admin, JSON.stringify(spec));
  if (r.status !== 201) throw new Error(`token ${JSON.stringify(spec)}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

t.test('tokens from the header, Basic\'s password or the query', async (t) => {
  t.equal(tokenOf('Bearer abc', ''), 'abc');
  t.equal(tokenOf('Token abc', ''), 'abc', 'InfluxDB clients');
  t.equal(tokenOf(`Basic ${Buffer.from('user:abc').toString('base64')}`, ''), 'abc', 'InfluxDB 1.x u/p as Basic');
  t.equal(tokenOf('', 'db=x&p=abc'), 'abc', '?p= (InfluxDB 1.x)');
  t.equal(tokenOf('', 'token=abc'), 'abc', '?token= (WebSocket)');
  t.equal(tokenOf('', ''), null);
  t.equal(tokenOf('', 'deviceId=x'), null);
});

t.test('every documented route has an access, and every access names a documented route', async (t) => {
  const routes = new Set(ROUTE_DOCS.map((d) => `${d.method} ${d.pattern}`));
  t.same([...routes].filter((r) => ROUTE_ACCESS[r] === undefined), [], 'each route says who may call it');
  t.same(Object.keys(ROUTE_ACCESS).filter((r) => r !== 'any /*' && !routes.has(r)), [], 'no access for a route that is not there');
});

t.test('--auth on: the admin token file, the role matrix, device tokens, revocation, kill -9', async (t) => {
  const dataDir = tempDir();
  let engine = await startEngine(['--auth', 'on', '--shards', '2'], dataDir);
  t.teardown(() => engine.stop());
  const file = path.join(dataDir, 'admin.token');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'the admin token file is mode 0600');
  const admin = fs.readFileSync(file, 'utf8').trim();
  t.match(admin, /^sl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  t.ok(engine.logs.some((l) => l.includes(file)) && !engine.logs.some((l) => l.includes(admin)), 'its path is logged, not its value');

  const tokens: Record<Who, string | null> = {
    none: null,
    admin,
    device: (await makeToken(engine, admin, { role: 'device', deviceId: SAMPLE.deviceId, description: 'a sensor' })).token,
    write: (await makeToken(engine, admin, { role: 'write' })).token,
    read: (await makeToken(engine, admin, { role: 'read' })).token,
  };

  t.test('every route x every role x no token', async (t) => {
    const debugRoute = (p: string) => p.startsWith('/v1/debug/');
    for (const d of ROUTE_DOCS) {
      if (debugRoute(d.pattern)) continue; // not registered without SLUICE_DEBUG_ROUTES
      const access = ROUTE_ACCESS[`${d.method} ${d.pattern}`];
      const concrete = openApiPath(d.pattern).replace(/\{([^}]+)\}/g, (_m, name: string) => SAMPLE[name] ?? 'x');
      for (const who of ['none', 'device', 'write', 'read', 'admin'] as Who[]) {
        const token = tokens[who];
        let status: number;
        if (d.method === 'ws') {
          const r = await openWs(`${engine.url.replace(/^http/, 'ws')}${concrete}`, token);
          r.ws?.close();
          status = r.status;
        } else {
          const method = d.method === 'del' ? 'DELETE' : d.method.toUpperCase();
          status = (await call(`${engine.url}${concrete}`, method, token, d.method === 'get' ? undefined : '{}')).status;
        }
        const deviceMay = who === 'device' && (d.pattern === '/v1/events' || d.pattern === '/v1/stream');
        const want = access === 'public' || who === 'admin' || who === access || deviceMay ? 'allowed' : who === 'none' ? 401 : 403;
        const label = `${d.method} ${d.pattern} as ${who} (${access}): ${status}`;
        if (want === 'allowed') t.ok(status !== 401 && status !== 403, label);
        else t.equal(status, want, label);
      }
    }
  });

  t.test('a device token writes its own device only', async (t) => {
    const now = Date.now();
    const own = await call(`${engine.url}/v1/events`, 'POST', tokens.device, JSON.stringify([{ deviceId: SAMPLE.deviceId, timestamp: now, metrics: { cpu: 1 } }]));
    t.equal(own.status, 204);
    const noId = await call(`${engine.url}/v1/events`, 'POST', tokens.device, JSON.stringify([{ timestamp: now, metrics: { cpu: 2 } }]));
    t.equal(noId.status, 204, 'events without a deviceId are the token\'s device');
    const other = await call(`${engine.url}/v1/events`, 'POST', tokens.device, JSON.stringify([
      { deviceId: SAMPLE.deviceId, timestamp: now, metrics: { cpu: 3 } }, { deviceId: 'someone-else', timestamp: now, metrics: { cpu: 4 } }]));
    t.equal(other.status, 403);
    t.equal(other.body.code, 'SLUICE_E_FORBIDDEN');
    t.match(other.body.error, /someone-else/, 'the answer names the device');
    const q = await call(`${engine.url}/v1/devices/${SAMPLE.deviceId}/metrics/cpu?from=${now - 60_000}&to=${now + 60_000}`, 'GET', tokens.read);
    t.equal(q.body.windows.reduce((n: number, w: { count: number }) => n + w.count, 0), 2, 'two events kept: the forbidden batch kept nothing');
    t.equal((await call(`${engine.url}/v1/devices/someone-else/metrics/cpu`, 'GET', tokens.read)).status, 404, 'no event of the other device');
    const ws = await openWs(`${engine.url.replace(/^http/, 'ws')}/v1/stream?deviceId=someone-else`, tokens.device);
    t.equal(ws.status, 403, 'a stream pinned to another device is refused');
    const mine = await openWs(`${engine.url.replace(/^http/, 'ws')}/v1/stream`, tokens.device);
    t.equal(mine.status, 101);
    const answer = await new Promise<any>((resolve) => {
      mine.ws!.once('message', (m) => resolve(JSON.parse(String(m))));
      mine.ws!.send(JSON.stringify([{ deviceId: 'someone-else', timestamp: now, metrics: { cpu: 5 } }]));
    });
    t.equal(answer.code, 'SLUICE_E_FORBIDDEN', 'a frame naming another device: the error answer');
    mine.ws!.close();
  });

  t.test('InfluxDB clients: the token as Token, Basic password or ?p=', async (t) => {
    const line = `m,host=lp-1 value=1 ${Date.now()}`;
    const send = (headers: Record<string, string>, query = '') => fetch(`${engine.url}/write?precision=ms${query}`, { method: 'POST', headers, body: line }).then((r) => r.status);
    t.equal(await send({ authorization: `Token ${tokens.write}` }), 204);
    t.equal(await send({ authorization: `Basic ${Buffer.from(`telegraf:${tokens.write}`).toString('base64')}` }), 204);
    t.equal(await send({}, `&u=telegraf&p=${tokens.write}`), 204);
    t.equal(await send({}, ''), 401);
    t.equal(await send({ authorization: `Token ${tokens.read}` }), 403);
  });

  t.test('token management: validation, no secrets listed, revocation at once', async (t) => {
    for (const [body, want] of [['{"role":"root"}', /role: one of/], ['{"role":"device"}', /deviceId/], ['{"role":"read","deviceId":"d"}', /only a device token/], ['{"role":"read","x":1}', /x: not a token field/], ['nope', /not JSON/]] as const) {
      const r = await call(`${engine.url}/v1/tokens`, 'POST', admin, body);
      t.equal(r.status, 400, body);
      t.match(r.body.error, want);
    }
    const list = await call(`${engine.url}/v1/tokens`, 'GET', admin);
    t.equal(list.status, 200);
    t.ok(list.body.tokens.length >= 4);
    t.notOk(JSON.stringify(list.body).includes('hash') || JSON.stringify(list.body).includes('sl_'), 'no hash and no token text listed');
    const victim = await makeToken(engine, admin, { role: 'write', description: 'to revoke' });
    const ws = await openWs(`${engine.url.replace(/^http/, 'ws')}/v1/stream?deviceId=rv-1`, victim.token);
    t.equal(ws.status, 101);
    const closed = new Promise<number>((resolve) => ws.ws!.once('close', (code) => resolve(code)));
    t.equal((await call(`${engine.url}/v1/tokens/${victim.id}`, 'DELETE', admin)).status, 204);
    t.equal(await closed, 1008, 'its WebSocket is closed at once');
    const after = await call(`${engine.url}/v1/events`, 'POST', victim.token, JSON.stringify({ deviceId: 'rv-1', timestamp: Date.now(), metrics: { cpu: 1 } }));
    t.equal(after.status, 401);
    t.match(after.body.error, /revoked/);
    t.equal((await call(`${engine.url}/v1/tokens/${victim.id}`, 'DELETE', admin)).status, 204, 'revoking twice is fine');
    t.equal((await call(`${engine.url}/v1/tokens/0123456789ab`, 'DELETE', admin)).status, 404);
    tokens.none = victim.token; // revoked: checked again after the restart
  });

  t.test('tokens survive kill -9', async (t) => {
    await engine.stop('SIGKILL');
    engine = await startEngine(['--auth', 'on', '--shards', '2'], dataDir);
    t.equal((await call(`${engine.url}/v1/tokens`, 'GET', admin)).status, 200, 'the admin token (the file is read again)');
    t.equal((await call(`${engine.url}/v1/devices`, 'GET', tokens.read)).status, 200, 'a read token');
    t.equal((await call(`${engine.url}/v1/devices`, 'GET', tokens.none)).status, 401, 'a revoked token stays revoked');
    t.equal((await call(`${engine.url}/healthz`, 'GET', null)).status, 200, '/healthz needs no token');
  });
});

t.test('--auth off (the default): no token needed', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  t.equal((await getJson(`${engine.url}/v1/devices`)).status, 200);
  t.notOk(fs.existsSync(path.join(engine.dataDir, 'admin.token')), 'no admin token file');
  // a token made while nothing checks them would be valid once auth is on: none is made
  const made = await call(`${engine.url}/v1/tokens`, 'POST', null, '{"role":"admin"}');
  t.equal(made.status, 404);
  t.match(made.body.error, /needs --auth on/);
  t.equal((await call(`${engine.url}/v1/tokens`, 'GET', null)).status, 404);
});
