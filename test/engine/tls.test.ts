import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { MAIN, startEngine, tempDir } from '../helpers/engine';
import { checkTlsFiles, TlsConfigError } from '../../engine/tls';

/** A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (openssl). */
function makeCerts(dir: string): { ca: string; cert: string; key: string; otherKey: string } {
  const f = (name: string): string => path.join(dir, name);
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'pipe' }); };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=sluice test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf'));
  ssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f('other.key'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key'), otherKey: f('other.key') };
}

function request(port: number, ca: Buffer, method: string, pathname: string, body?: string):
  Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path: pathname, ca, timeout: 10_000,
      headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${pathname}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs the engine expecting it not to start: its exit code and stderr. */
function failedStart(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', tempDir(), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  return new Promise((resolve) => proc.once('exit', (code) => {
    clearTimeout(timer);
    resolve({ code, stderr, ms: Date.now() - t0 });
  }));
}

const dir = tempDir('sluice-tls-');
const certs = makeCerts(dir);
const ca = fs.readFileSync(certs.ca);

t.test('checkTlsFiles names the setting and the file', async (t) => {
  t.match(checkTlsFiles(certs.cert, certs.key), { cert: certs.cert, key: certs.key, subject: /CN=localhost/ });
  const missing = path.join(dir, 'nope.pem');
  t.throws(() => checkTlsFiles(missing, certs.key), new TlsConfigError(`--tls-cert: ${JSON.stringify(missing)} cannot be read: no such file`));
  t.throws(() => checkTlsFiles(certs.cert, dir), { message: /^--tls-key: .* cannot be read: a directory, not a file$/ });
  t.throws(() => checkTlsFiles(certs.key, certs.key), { message: /^--tls-cert: .*server\.key" is not a PEM certificate/ });
  t.throws(() => checkTlsFiles(certs.cert, certs.cert), { message: /^--tls-key: .*server\.pem" is not an unencrypted PEM private key/ });
  t.throws(() => checkTlsFiles(certs.cert, certs.otherKey), { message: /^--tls-key: .*other\.key" is not the private key of the certificate in --tls-cert/ });
});

t.test('the engine refuses to start on a bad certificate or key, naming the file', async (t) => {
  const missing = path.join(dir, 'missing.pem');
  const a = await failedStart(['--tls-cert', missing, '--tls-key', certs.key]);
  t.equal(a.code, 1);
  t.match(a.stderr, `--tls-cert: ${JSON.stringify(missing)} cannot be read: no such file`);
  const b = await failedStart(['--tls-cert', certs.cert, '--tls-key', certs.otherKey]);
  t.equal(b.code, 1);
  t.match(b.stderr, /--tls-key: ".*other\.key" is not the private key of the certificate/);
  const c = await failedStart(['--tls-cert', certs.cert]);
  t.equal(c.code, 2, 'one without the other is a bad setting');
  t.match(c.stderr, '--tls-key: not set while --tls-cert is');
});

t.test('HTTPS and WSS with the test CA', async (t) => {
  const engine = await startEngine(['--shards', '1', '--tls-cert', certs.cert, '--tls-key', certs.key]);
  t.teardown(() => engine.stop());
  t.ok(engine.logs.some((l) => l.includes('TLS: HTTPS and WSS')), 'the start-up log says TLS is on');
  const now = Date.now();

  const posted = await request(engine.port, ca, 'POST', '/v1/events',
    JSON.stringify([{ deviceId: 'tls-1', timestamp: now - 1000, metrics: { cpu: 42 } }]));
  t.equal(posted.status, 204, 'POST /v1/events over HTTPS');

  const wss = new WebSocket(`wss://localhost:${engine.port}/v1/stream?deviceId=tls-2`, { ca });
  const ack = await new Promise<string>((resolve, reject) => {
    wss.once('open', () => wss.send(JSON.stringify({ seq: 7, events: [{ timestamp: now - 500, metrics: { cpu: 8 } }] })));
    wss.once('message', (d: Buffer) => resolve(d.toString('utf8')));
    wss.once('error', reject);
  });
  t.same(JSON.parse(ack), { ack: 7 }, 'a WSS frame acked');
  wss.close();

  const q = await request(engine.port, ca, 'GET', '/v1/devices/tls-1/metrics/cpu');
  t.equal(q.status, 200);
  t.match(JSON.parse(q.text).windows[0], { count: 1, sum: 42 });
  const q2 = await request(engine.port, ca, 'GET', '/v1/devices/tls-2/metrics/cpu');
  t.match(JSON.parse(q2.text).windows[0], { count: 1, sum: 8 });

  // without the CA the certificate is not trusted: TLS really is in the way
  await t.rejects(request(engine.port, Buffer.from(''), 'GET', '/healthz'), /self[- ]signed|unable to verify|certificate/i);

  t.test('plain HTTP to the TLS port is closed; the engine goes on', async (t) => {
    const t0 = Date.now();
    const outcome = await new Promise<{ bytes: string; closed: boolean }>((resolve) => {
      const s = net.connect(engine.port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
      let bytes = '';
      s.on('data', (c: Buffer) => { bytes += c.toString('latin1'); });
      s.on('error', () => { /* a reset is a clean refusal too */ });
      s.setTimeout(15_000, () => { s.destroy(); resolve({ bytes, closed: false }); });
      s.on('close', () => resolve({ bytes, closed: true }));
    });
    t.ok(outcome.closed, `closed by the engine after ${Date.now() - t0} ms`);
    t.notMatch(outcome.bytes, /HTTP\/1\.1 200/, 'no HTTP answer in clear');
    const h = await request(engine.port, ca, 'GET', '/healthz');
    t.equal(h.status, 200, '/healthz still answers over TLS');
    t.equal(JSON.parse(h.text).faults.count, 0);
    t.equal(engine.proc.exitCode, null, 'the engine is running');
  });
});
