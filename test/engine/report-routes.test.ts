import t from 'tap';
import pino from 'pino';
import http from 'node:http';
import WebSocket from 'ws';
import type { us_listen_socket } from 'uWebSockets.js';
import { loadNativeUws } from '../../engine/uws';
import { Reporter } from '../../engine/reporter';
import { registerReportRoutes } from '../../engine/report-routes';
import type { Report, ReportPart } from '../../protocol/report';

function part(metric: string, count: number, devices: number): ReportPart {
  const histogram = new Array<number>(10).fill(0);
  histogram[9] = count;
  return { metric, count, histogram, under: 0, over: 0, devices };
}

/**
 * GET on a fresh connection with `Connection: close` (agent: false): the server runs in this
 * process, so no connection may outlive the test.
 */
function get(url: string): Promise<{ status: number; contentType: string; json: () => Promise<unknown> }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), json: async () => JSON.parse(body) }));
    }).once('error', reject);
  });
}

/** opens a WebSocket and resolves once open (or rejects with the HTTP status of a refusal) */
function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      // with this listener ws leaves the request to us; Node would only half-close the socket after
      // the answer, and uWS keeps it open until its idle timeout: destroy it
      const socket = res.socket;
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString('utf8'); });
      res.on('end', () => socket.destroy());
      res.on('close', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

function nextMessages(ws: WebSocket, n: number): Promise<Report[]> {
  return new Promise((resolve) => {
    const got: Report[] = [];
    const on = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (isBinary) throw new Error('reports are text frames');
      got.push(JSON.parse(String(data)) as Report);
      if (got.length === n) {
        ws.off('message', on);
        resolve(got);
      }
    };
    ws.on('message', on);
  });
}

t.test('GET /v1/reports and WS /v1/reports/stream on a bare uWS app', async (t) => {
  const uws = loadNativeUws();
  const app = uws.App();
  let n = 0;
  const reporter = new Reporter({ periodMs: 10_000, historyMax: 360, divisions: 10, min: 0, max: 100, metrics: ['cpu', 'temp'] },
    async () => { n++; return [[part('cpu', n, 1), part('temp', 100 + n, 2)], [part('cpu', 10 * n, 3)]]; },
    pino({ level: 'silent' }));
  const routes = registerReportRoutes(app, uws, reporter, { metrics: ['cpu', 'temp'] });
  const listen = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (s) => (s === false ? reject(new Error('listen failed')) : resolve(s)));
  });
  const port = uws.us_socket_local_port(listen);
  const base = `http://127.0.0.1:${port}`;
  const wsBase = `ws://127.0.0.1:${port}`;
  const clients: WebSocket[] = [];
  t.teardown(() => {
    for (const c of clients) c.terminate();
    routes.close();
    uws.us_listen_socket_close(listen);
  });

  t.test('empty history, then reports newest first with limit and metric', async (t) => {
    let r = await get(`${base}/v1/reports`);
    t.equal(r.status, 200);
    t.match(r.contentType, /application\/json/);
    t.same(await r.json(), { reports: [] });
    for (let i = 0; i < 12; i++) await reporter.flush();
    r = await get(`${base}/v1/reports`);
    const all = (await r.json()) as { reports: Report[] };
    t.equal(all.reports.length, 10, 'default limit 10');
    t.same(all.reports.slice(0, 2).map((x) => [x.metric, x.count]), [['cpu', 132], ['temp', 112]], 'newest period first, all report metrics');
    r = await get(`${base}/v1/reports?metric=cpu&limit=3`);
    const cpu = (await r.json()) as { reports: Report[] };
    t.same(cpu.reports.map((x) => [x.metric, x.count, x.devices]), [['cpu', 132, 4], ['cpu', 121, 4], ['cpu', 110, 4]]);
    t.same(cpu.reports[0].histogram, { min: 0, max: 100, divisions: [0, 0, 0, 0, 0, 0, 0, 0, 0, 132], under: 0, over: 0 });
    r = await get(`${base}/v1/reports?metric=temp&limit=1000`);
    t.equal(((await r.json()) as { reports: Report[] }).reports.length, 12);
  });

  t.test('bad parameters: 400 SLUICE_E_BAD_PARAM naming the parameter', async (t) => {
    for (const [q, name] of [['metric=mem', 'metric'], ['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=ten', 'limit'], ['limit=-1', 'limit']]) {
      const r = await get(`${base}/v1/reports?${q}`);
      t.equal(r.status, 400, q);
      const body = (await r.json()) as { error: string; code: string };
      t.equal(body.code, 'SLUICE_E_BAD_PARAM');
      t.match(body.error, new RegExp(`^${name}: `), `${q}: ${body.error}`);
    }
  });

  t.test('WebSocket subscribers get each new report, filtered by metric', async (t) => {
    const everything = await openWs(`${wsBase}/v1/reports/stream`);
    const onlyTemp = await openWs(`${wsBase}/v1/reports/stream?metric=temp`);
    clients.push(everything, onlyTemp);
    const gotAll = nextMessages(everything, 4);
    const gotTemp = nextMessages(onlyTemp, 2);
    await reporter.flush();
    await reporter.flush();
    const all = await gotAll;
    const temp = await gotTemp;
    t.same(all.map((x) => [x.metric, x.count]), [['cpu', 143], ['temp', 113], ['cpu', 154], ['temp', 114]]);
    t.same(temp.map((x) => [x.metric, x.count]), [['temp', 113], ['temp', 114]]);
    t.same(temp[1], reporter.recent('temp', 1)[0], 'the pushed report is the stored one');
    t.equal(routes.sockets.size, 2);
    everything.close();
    onlyTemp.close();
    await Promise.all([everything, onlyTemp].map((w) => new Promise((r) => w.once('close', r))));
  });

  t.test('an unknown metric refuses the upgrade with 400', async (t) => {
    const err = await openWs(`${wsBase}/v1/reports/stream?metric=mem`).then(() => null, (e: { status: number; body: string }) => e);
    t.equal(err?.status, 400);
    t.match(JSON.parse(err?.body ?? '{}'), { code: 'SLUICE_E_BAD_PARAM', error: /^metric: "mem" is not a report metric/ });
  });

  t.test('close() ends the stream sockets', async (t) => {
    const ws = await openWs(`${wsBase}/v1/reports/stream?metric=cpu`);
    clients.push(ws);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    routes.close();
    t.equal(await closed, 1001);
    t.equal(routes.sockets.size, 0);
  });
});
