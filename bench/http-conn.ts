/**
 * A minimal keep-alive HTTP/1.1 client for the bench's own requests (query latency): one request
 * at a time on one socket, the response read up to its Content-Length. Latency measured from the
 * write to the last byte, without undici's per-request overhead in the figure.
 */

import net from 'node:net';

export class HttpConn {
  private socket: net.Socket;
  private pending: Buffer | null = null;
  private resolve: ((r: { status: number; body: string }) => void) | null = null;
  private reject: ((e: Error) => void) | null = null;

  private constructor(socket: net.Socket, private readonly host: string) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.reject?.(e));
    socket.on('close', () => this.reject?.(new Error('connection closed')));
  }

  static open(host: string, port: number): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, noDelay: true });
      s.once('error', reject);
      s.once('connect', () => { s.off('error', reject); resolve(new HttpConn(s, `${host}:${port}`)); });
    });
  }

  get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.host}\r\n\r\n`);
    });
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) { this.pending = buf; return; }
    const head = buf.toString('latin1', 0, end);
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const total = end + 4 + (m ? Number(m[1]) : 0);
    if (buf.length < total) { this.pending = buf; return; }
    this.pending = null;
    const r = this.resolve;
    this.resolve = null;
    this.reject = null;
    r?.({ status: Number(head.slice(9, 12)), body: buf.toString('utf8', end + 4, total) });
  }

  close(): void {
    this.socket.destroy();
  }
}
