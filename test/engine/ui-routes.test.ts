import t from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { startEngine, post, getJson, type EngineProcess } from '../helpers/engine';

// the functions passed to page.evaluate run in the page; the project compiles without the DOM lib
declare const document: any;

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, '..', '..', '..', 'test-artifacts');
const WEB = path.join(__dirname, '..', '..', '..', 'web');

interface RawAnswer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A GET with the path sent as written (fetch would resolve `..` before sending it). */
function rawGet(url: string, rawPath: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawAnswer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: rawPath, method, agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${rawPath}: no answer in 10 s`)));
    req.once('error', reject);
    req.end();
  });
}

t.test('static routes: the page and its files, content types, caching, 404, no traversal', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const page = fs.readFileSync(path.join(WEB, 'index.html'), 'utf8');

  for (const p of ['/ui', '/ui/']) {
    const r = await rawGet(engine.url, p);
    t.equal(r.status, 200, `${p}: 200`);
    t.equal(r.headers['content-type'], 'text/html; charset=utf-8', `${p}: HTML`);
    t.equal(r.body, page, `${p}: web/index.html`);
    t.match(String(r.headers['content-security-policy']), /default-src 'self'/, `${p}: the page may load from this origin only`);
  }
  const types: Record<string, string> = {
    '/ui/app.js': 'text/javascript; charset=utf-8',
    '/ui/style.css': 'text/css; charset=utf-8',
    '/ui/vendor/uPlot.iife.min.js': 'text/javascript; charset=utf-8',
    '/ui/vendor/uPlot.min.css': 'text/css; charset=utf-8',
  };
  for (const [p, type] of Object.entries(types)) {
    const r = await rawGet(engine.url, p);
    t.equal(r.status, 200, `${p}: 200`);
    t.equal(r.headers['content-type'], type, `${p}: ${type}`);
    t.equal(r.headers['x-content-type-options'], 'nosniff');
    t.ok(/^"[A-Za-z0-9_-]+"$/.test(String(r.headers.etag)), `${p}: an ETag (${r.headers.etag})`);
    t.equal(r.headers['cache-control'], p.startsWith('/ui/vendor/') ? 'public, max-age=86400' : 'no-cache');
    const again = await rawGet(engine.url, p, { 'if-none-match': String(r.headers.etag) });
    t.equal(again.status, 304, `${p}: If-None-Match answers 304`);
    t.equal(again.body, '', `${p}: 304 without a body`);
    const stale = await rawGet(engine.url, p, { 'if-none-match': '"other"' });
    t.equal(stale.status, 200, `${p}: another ETag gets the file`);
  }
  t.equal((await rawGet(engine.url, '/ui/vendor/uPlot.iife.min.js')).body,
    fs.readFileSync(path.join(path.dirname(require.resolve('uplot/package.json')), 'dist', 'uPlot.iife.min.js'), 'utf8'), 'uPlot from the uplot package');
  const head = await rawGet(engine.url, '/ui/app.js', {}, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], String(fs.statSync(path.join(WEB, 'app.js')).size), 'HEAD: the length of the body GET sends');
  t.equal(head.body, '');

  const refused = [
    '/ui/nope.js', '/ui/vendor/uPlot.js', '/ui/vendor/', '/ui/index.htm', '/ui/.hidden',
    '/ui/../package.json', '/ui/vendor/../../package.json', '/ui/..%2Fpackage.json', '/ui/%2e%2e/package.json',
    '/ui/%2e%2e%2fpackage.json', '/ui/vendor/..%2F..%2Fpackage.json', '/ui/..%5Cpackage.json', '/ui/..\\package.json',
    '/ui/%2Fetc%2Fpasswd', '/ui//etc/passwd', '/ui/vendor/%2e%2e%2f%2e%2e%2fpackage.json', '/ui/app.js%00.css',
  ];
  for (const p of refused) {
    const r = await rawGet(engine.url, p);
    t.equal(r.status, 404, `${p}: 404`);
    t.equal(r.headers['content-type'], 'application/json', `${p}: an error body`);
    t.notMatch(r.body, /"dependencies"|root:/, `${p}: no file from outside web/`);
    t.equal(JSON.parse(r.body).code, 'SLUICE_E_NOT_FOUND');
  }
  t.equal((await getJson(`${engine.url}/healthz`)).status, 200, 'the engine still serves');
});

t.test('WS /v1/ui/stream over the engine: hello, then frames with the accepted events', async (t) => {
  const engine = await startEngine(['--shards', '2']);
  t.teardown(() => engine.stop());
  const ws = new WebSocket(`${engine.url.replace(/^http/, 'ws')}/v1/ui/stream`);
  const frames: Record<string, any>[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, any>));
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  t.teardown(() => ws.close());
  const now = Date.now();
  const events = Array.from({ length: 300 }, (_x, i) => ({ deviceId: `ws-${i % 6}`, timestamp: now - i, metrics: { cpu: i % 100 } }));
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(events))).status, 204);
  ws.send('garbage that is no command');
  const deadline = Date.now() + 10_000;
  while (!frames.some((f) => f.type === 'live' && f.ingest.accepted === 300 && f.shards.reduce((n: number, s: any) => n + s.applied, 0) === 300)) {
    if (Date.now() > deadline) throw new Error(`no frame with the 300 events: ${JSON.stringify(frames.slice(-2))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same(frames[0], { type: 'hello', shards: 2, tickMs: 1000, avgIntervals: 5 });
  const f = frames.find((x) => x.type === 'live' && x.ingest.accepted === 300 && x.ack.count > 0) ?? frames[frames.length - 1];
  t.equal(f.shards.length, 2, 'one entry per shard');
  t.ok(f.shards.every((s: any) => s.fill >= 0 && s.fill <= 1), 'ring fill is a fraction');
  t.equal(f.ack.count, 1, 'one batch acknowledged');
  t.ok(f.ack.p50Ms > 0 && f.ack.p99Ms >= f.ack.p50Ms, `ack latency ${f.ack.p50Ms} / ${f.ack.p99Ms} ms`);
  t.same([f.late.total, f.corrected.total], [0, 0]);
  t.equal(ws.readyState, WebSocket.OPEN, 'the garbage message was ignored');
});

// ---- the page in a real browser ----------------------------------------------------------------

const RATE = 2000;
const BATCH = 100;
const LOAD_MS = 9000;
const MINUTE = 60_000;
const PANE = 10_000;

interface Seeded { top: { deviceId: string; p99: number }[]; deviceWindows: number }

/**
 * Data the panels can be checked against. cpuUsage (the top-devices route's metric) is sent only
 * here: the newest reading (top-marker, now) puts the last complete minute just before the
 * current one, and the load (cpu only) never moves it.
 */
async function seed(engine: EngineProcess): Promise<Seeded> {
  const now = Date.now();
  const minute = Math.floor(now / MINUTE) * MINUTE;
  const ev: unknown[] = [];
  for (let i = 0; i < 60; i++) ev.push({ deviceId: `ui-dev-${String(i).padStart(2, '0')}`, timestamp: now - 1000, metrics: { cpu: i } });
  // ui-dev-42: readings 40, 50, 60 in each of the 6 panes of the previous minute (p99 60)
  for (let k = 1; k <= 6; k++) {
    for (const [j, v] of [40, 50, 60].entries()) ev.push({ deviceId: 'ui-dev-42', timestamp: minute - k * PANE + 1000 * (j + 1), metrics: { cpu: 40 + k, cpuUsage: v } });
  }
  const top = [{ deviceId: 'top-a', p99: 95 }, { deviceId: 'top-b', p99: 85 }, { deviceId: 'top-c', p99: 75 }];
  for (const d of top) for (let j = 0; j < 5; j++) ev.push({ deviceId: d.deviceId, timestamp: minute - 30_000 + j * 1000, metrics: { cpuUsage: d.p99 - 4 + j } });
  ev.push({ deviceId: 'top-marker', timestamp: now, metrics: { cpuUsage: 1 } });
  const r = await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify(ev));
  if (r.status !== 204) throw new Error(`seed: ${r.status} ${JSON.stringify(r.body)}`);
  return { top: [...top, { deviceId: 'ui-dev-42', p99: 60 }], deviceWindows: 6 };
}

interface Load { sent: number; failed: number; sentAt: number[] }

/**
 * RATE events a second in batches of BATCH, on a fixed schedule (a slow answer does not slow it).
 * sentAt: when each batch was sent, for the rate over any span.
 */
async function load(engine: EngineProcess, durationMs: number, sentAt: number[]): Promise<Load> {
  const t0 = Date.now();
  const everyMs = (BATCH / RATE) * 1000;
  const pending: Promise<void>[] = [];
  let sent = 0;
  let failed = 0;
  for (let k = 0; k * everyMs < durationMs; k++) {
    const wait = t0 + k * everyMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const ts = Date.now();
    sentAt.push(ts);
    const body = JSON.stringify(Array.from({ length: BATCH }, (_x, i) => ({ deviceId: `load-${i % 20}`, timestamp: ts, metrics: { cpu: (k + i) % 100 } })));
    pending.push(post(`${engine.url}/v1/events`, 'application/json', body).then((r) => {
      if (r.status === 204) sent += BATCH;
      else failed++;
    }, () => { failed++; }));
  }
  await Promise.all(pending);
  return { sent, failed, sentAt };
}

const NO_BROWSER = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium): the browser tests need it`;

t.test('the dashboard in headless Chromium', { skip: NO_BROWSER, timeout: 180_000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const engine = await startEngine(['--shards', '2', '--report-period', '2s']);
  t.teardown(() => engine.stop());
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const seeded = await seed(engine);

  const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
  const errors: string[] = [];
  const deviceRequests: string[] = [];
  const foreign: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.host !== new URL(engine.url).host && u.protocol !== 'data:') foreign.push(r.url());
    if (u.pathname === '/v1/devices') deviceRequests.push(u.search);
  });
  await page.goto(`${engine.url}/ui`);
  await page.waitForSelector('#feed-status[data-state="live"]', { timeout: 10_000 });

  /**
   * Pixels of the chart's canvas in the colour of one of its series (data-strokes; within 40 per
   * channel: antialiasing), and how many lie in the canvas' upper half. Axes and grid are grey.
   */
  const pixels = (sel: string): Promise<{ n: number; upper: number }> => page.evaluate((s) => {
    const el = document.querySelector(s);
    const canvas = el?.querySelector('canvas');
    if (!canvas) return { n: 0, upper: 0 };
    const colours = String(el.dataset.strokes).split(',').map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height) as { data: Uint8ClampedArray };
    let n = 0;
    let upper = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] <= 128) continue;
      if (colours.some((rgb) => Math.abs(data[i] - rgb[0]) <= 40 && Math.abs(data[i + 1] - rgb[1]) <= 40 && Math.abs(data[i + 2] - rgb[2]) <= 40)) {
        n++;
        if (i / 4 / canvas.width < canvas.height / 2) upper++;
      }
    }
    return { n, upper };
  }, sel);
  const figure = async (sel: string): Promise<number> => Number(await page.getAttribute(sel, 'data-value'));

  await t.test('live: the ingest rate shown is within 10 % of the rate sent; the charts draw it', async (t) => {
    const sentAt: number[] = [];
    const sending = load(engine, LOAD_MS, sentAt);
    // the page's figure is a 5 s average: read it once 5 s of load lie behind it
    await page.waitForTimeout(LOAD_MS - 1500);
    const shown = await figure('#ingest-rate');
    const shownT = Number(await page.getAttribute('#ingest-rate', 'data-t'));
    const shownSpan = Number(await page.getAttribute('#ingest-rate', 'data-window-ms'));
    const ackP99 = await figure('#ack-p99');
    const sent = await sending;
    t.equal(sent.failed, 0, 'every batch accepted');
    // the sending rate (answers may come late on a busy machine: not part of it)
    const overall = (sentAt.length * BATCH) / ((sentAt[sentAt.length - 1] - sentAt[0] + (BATCH / RATE) * 1000) / 1000);
    t.ok(Math.abs(overall - RATE) < RATE * 0.05, `the test sent ${Math.round(overall)}/s (${RATE} planned)`);
    // on a busy machine the sender falls behind and catches up in bursts: the page is held to
    // what was sent in the very span its figure covers (its frame's time and window)
    t.ok(shownSpan >= 4000 && shownSpan <= 6000, `the figure spans ~5 s (${shownSpan} ms)`);
    const inSpan = sentAt.filter((x) => x > shownT - shownSpan && x <= shownT).length * BATCH;
    const sentRate = inSpan / (shownSpan / 1000);
    t.ok(Math.abs(shown - sentRate) <= sentRate * 0.1, `#ingest-rate ${Math.round(shown)} within 10 % of the ${Math.round(sentRate)}/s sent in its span (${RATE} planned)`);
    t.ok(ackP99 > 0, `ack p99 shown: ${ackP99} ms`);
    t.ok(await figure('#events-applied') >= sent.sent * 0.5, 'events applied shown');

    const rate = await pixels('#chart-rate');
    // ~8 s of data in a 5 min window: short lines (a flat line at 0 is ~2 px by 15), while no
    // pixel of a series colour is there without a series (axes and grid are grey)
    t.ok(rate.n > 100, `the rate line is drawn (${rate.n} px)`);
    t.ok(rate.upper > 50, `and rises to the upper half at ${RATE}/s (${rate.upper} px)`);
    for (const [chart, least] of [['#chart-ack', 20], ['#chart-rings', 10], ['#chart-late', 10]] as const) {
      const p = await pixels(chart);
      t.ok(p.n > least, `${chart}: its lines are drawn (${p.n} px)`);
    }
  });

  await t.test('report: the latest periodic report\'s histogram and count', async (t) => {
    await page.waitForFunction(() => Number(document.getElementById('chart-report')?.dataset.count) > 0, undefined, { timeout: 10_000 });
    const count = Number(await page.getAttribute('#chart-report', 'data-count'));
    const end = Number(await page.getAttribute('#chart-report', 'data-period-end'));
    const reports = (await getJson(`${engine.url}/v1/reports?metric=cpu&limit=50`)).body.reports as { periodEnd: number; count: number }[];
    const same = reports.find((r) => r.periodEnd === end);
    t.ok(same !== undefined, 'the page shows a report the engine made');
    t.equal(count, same?.count, `its count (${count})`);
    t.match(await page.textContent('#report-summary'), new RegExp(`^${count.toLocaleString('en')} events`));
    const bars = await pixels('#chart-report');
    t.ok(bars.n > 500, `the bars are drawn (${bars.n} px)`);
  });

  await t.test('top devices by p99, refreshed', async (t) => {
    await page.waitForFunction((n) => document.querySelectorAll('#top-devices tbody tr').length >= n, seeded.top.length, { timeout: 10_000 });
    const rows = await page.$$eval('#top-devices tbody tr', (trs: any[]) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td: any) => String(td.textContent))));
    t.same(rows.map((r) => r[1]), seeded.top.map((d) => d.deviceId), 'highest p99 first');
    t.same(rows.map((r) => Number(r[4])), seeded.top.map((d) => d.p99), 'their p99');
  });

  await t.test('device search: 20 suggestions at most, pick one, its windows are charted', async (t) => {
    await page.fill('#device-q', 'ui-dev-');
    await page.waitForSelector('#device-suggestions li[role="option"]');
    t.equal(await page.locator('#device-suggestions li[role="option"]').count(), 20, '60 devices match: 20 are listed');
    t.match(await page.textContent('#device-suggestions li.more'), /type more/);
    await page.fill('#device-q', 'ui-dev-4');
    await page.waitForFunction(() => document.querySelectorAll('#device-suggestions li[role="option"]').length === 10);
    await page.click('#device-suggestions li[data-device="ui-dev-42"]');
    t.same(await page.$$eval('#device-metric option', (os: any[]) => os.map((o) => String(o.value))), ['cpu', 'cpuUsage'], 'the device\'s metrics');
    await page.selectOption('#device-range', '900000');
    await page.selectOption('#device-metric', 'cpuUsage');
    await page.waitForFunction(() => {
      const el = document.getElementById('chart-device');
      return el?.dataset.metric === 'cpuUsage' && el.querySelector('canvas') !== null;
    });
    t.equal(await page.getAttribute('#chart-device', 'data-device'), 'ui-dev-42');
    t.equal(Number(await page.getAttribute('#chart-device', 'data-points')), seeded.deviceWindows, 'one point per window with data');
    t.match(await page.textContent('#device-caption'), /ui-dev-42 · cpuUsage: 6 windows of 10s/);
    const drawn = await pixels('#chart-device');
    t.ok(drawn.n > 100, `the windows are drawn (${drawn.n} px)`);
    t.ok(deviceRequests.length > 0, 'the page searched');
    for (const q of deviceRequests) {
      const p = new URLSearchParams(q);
      t.ok(Number(p.get('limit')) <= 20 && (p.get('prefix') ?? '') !== '', `never the whole list: ${q}`);
    }
  });

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'ui.png'), fullPage: true });
  t.same(foreign, [], 'no request leaves the engine');
  t.same(errors, [], 'no console error, no page error');
  // before the engine stops (teardown): the page would log its reconnection attempts
  await browser.close();
});
