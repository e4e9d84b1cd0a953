/**
 * Compressed request bodies: `Content-Encoding: gzip` (or `x-gzip`) and `deflate` (zlib format,
 * RFC 1950), inflated with node:zlib as the chunks arrive; `identity` or no header is the plain
 * body, which never comes here (http-util's readBody reads it without zlib or extra copies).
 *
 * Contract. Front-end thread only. The route handler reads the header once (bodyEncodingOf) and
 * decides a 415 before reading the body. A BodyInflater then takes the body's chunks in order:
 * write() copies each one (uWS neuters the ArrayBuffer when its onData callback returns) and hands
 * it to zlib. The inflated size is held to bytesMax: as soon as zlib's output passes it the
 * inflater stops (zlib destroyed, what was inflated dropped) and reports 413, so a zip bomb costs
 * at most about bytesMax of memory, whatever it would inflate to. A body zlib cannot read reports
 * 400 SLUICE_E_BAD_BODY naming zlib's reason. The done callback runs once, from a zlib callback
 * (outside any uWS callback), unless destroy() ran first; nothing here throws, so a zlib callback
 * can never end the process. The caller keeps the limit on the compressed (wire) size itself.
 */

import zlib from 'node:zlib';

/** what a body is encoded with; 'identity' = as sent */
export type BodyEncoding = 'identity' | 'gzip' | 'deflate';

/** the Content-Encoding values Sluice reads (case-insensitive), for the 415 message and the docs */
export const CONTENT_ENCODINGS = ['identity', 'gzip', 'x-gzip', 'deflate'] as const;

/** The encoding a Content-Encoding header names ('' = absent), or null when Sluice does not read it. */
export function bodyEncodingOf(header: string): BodyEncoding | null {
  if (header === '') return 'identity';
  switch (header.trim().toLowerCase()) {
    case 'identity': return 'identity';
    case 'gzip':
    case 'x-gzip': return 'gzip';
    case 'deflate': return 'deflate';
    default: return null;
  }
}

export type Inflated =
  | { ok: true; body: Buffer }
  | { ok: false; status: 400 | 413; code: 'SLUICE_E_BAD_BODY' | 'SLUICE_E_BODY_TOO_LARGE'; reason: string };

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : 'unknown error';
}

export class BodyInflater {
  private readonly zs: zlib.Gunzip | zlib.Inflate;
  private parts: Buffer[] = [];
  private bytes = 0;
  /** true once the result is reported or the inflater destroyed: nothing more happens */
  private settled = false;

  constructor(private readonly encoding: 'gzip' | 'deflate', private readonly bytesMax: number,
    private readonly done: (result: Inflated) => void) {
    this.zs = encoding === 'gzip' ? zlib.createGunzip() : zlib.createInflate();
    this.zs.on('data', (out: Buffer) => this.onOutput(out));
    this.zs.on('end', () => this.onEnd());
    // always listened to: an 'error' event without a listener would throw
    this.zs.on('error', (err: unknown) => this.settle({
      ok: false, status: 400, code: 'SLUICE_E_BAD_BODY', reason: `body: invalid ${this.encoding}: ${messageOf(err)}`,
    }));
  }

  get finished(): boolean {
    return this.settled;
  }

  /** Feeds one chunk of the compressed body (copied: the ArrayBuffer may be neutered on return). */
  write(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.settled) return;
    const copy = Buffer.from(new Uint8Array(chunk));
    if (isLast) this.zs.end(copy);
    else this.zs.write(copy);
  }

  /** Stops inflating and drops what was inflated; the done callback will not run. */
  destroy(): void {
    this.settled = true;
    this.parts = [];
    this.zs.destroy();
  }

  private onOutput(out: Buffer): void {
    if (this.settled) return;
    this.bytes += out.byteLength;
    if (this.bytes > this.bytesMax) {
      this.settle({
        ok: false, status: 413, code: 'SLUICE_E_BODY_TOO_LARGE',
        reason: `body: more than ${this.bytesMax} bytes once decompressed (--body-max limits the decompressed size)`,
      });
      return;
    }
    this.parts.push(out);
  }

  private onEnd(): void {
    if (this.settled) return;
    const body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes);
    this.settle({ ok: true, body });
  }

  private settle(result: Inflated): void {
    if (this.settled) return;
    this.destroy();
    this.done(result);
  }
}
