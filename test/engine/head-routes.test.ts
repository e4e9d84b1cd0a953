import t from 'tap';
import net from 'node:net';
import { startEngine, post } from '../helpers/engine';

/** One raw request on its own connection: the exact bytes the server sends back. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('error', reject);
    // the answer is complete once its headers and Content-Length bytes arrived
    const timer = setInterval(() => {
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(got.slice(0, end))?.[1] ?? 0);
      const isHead = request.startsWith('HEAD');
      if (got.length >= end + 4 + (isHead ? 0 : len)) {
        // give a wrongly sent HEAD body a moment to show up
        setTimeout(() => { clearInterval(timer); s.destroy(); resolve(got); }, isHead ? 100 : 0);
        clearInterval(timer);
      }
    }, 5);
  });
}

t.test('HEAD on every GET route: the GET status and headers, with the body\'s length and no body', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const ts = Date.now() - 1000;
  t.equal((await post(`${engine.url}/v1/events`, 'application/json', JSON.stringify({ deviceId: 'h-1', timestamp: ts, metrics: { cpu: 1 } }))).status, 204);
  const paths = ['/openapi.json', '/docs', '/docs/swagger-ui.css', '/v1/devices', '/v1/devices/h-1/metrics/cpu', '/v1/reports',
    '/v1/devices/nobody/metrics/cpu', '/no/such/route', '/v1/metrics/cpu?from=x'];
  for (const p of paths) {
    const get = await raw(engine.port, `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`);
    const head = await raw(engine.port, `HEAD ${p} HTTP/1.1\r\nHost: t\r\n\r\n`);
    const status = (s: string): string => s.slice(0, s.indexOf('\r\n'));
    const length = (s: string): string | undefined => /content-length: (\d+)/i.exec(s)?.[1];
    t.equal(status(head), status(get), `${p}: same status`);
    t.equal(length(head), length(get), `${p}: same Content-Length`);
    t.equal(head.slice(head.indexOf('\r\n\r\n') + 4), '', `${p}: no body`);
  }
});

t.test('GET / redirects to the API page', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const r = await fetch(`${engine.url}/`, { redirect: 'manual' });
  t.equal(r.status, 302);
  t.equal(r.headers.get('location'), '/docs');
  const followed = await fetch(`${engine.url}/`);
  t.equal(followed.status, 200);
  t.match(await followed.text(), 'swagger-ui');
});
