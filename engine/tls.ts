/**
 * TLS for the front-end (--tls-cert, --tls-key): checks the PEM files before uWS sees them.
 *
 * uWS's SSLApp takes file names and reads them in C; given a missing file, a key that is not PEM
 * or a key of another certificate it still builds an app that listens, and every handshake then
 * fails with nothing in our log. So checkTlsFiles() reads both files with Node's own TLS stack
 * first: each must be readable, parse as PEM of its kind, and the key must be the certificate's.
 * A failure throws TlsConfigError naming the setting and the file (main.ts: exit 1, message on
 * stderr). Start-up only; the files are read again by uWS, which is why they must stay in place.
 */

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AppOptions } from 'uWebSockets.js';

export class TlsConfigError extends Error {}

export interface TlsFiles {
  /** absolute paths: uWS resolves a relative one against its own idea of the working directory */
  cert: string;
  key: string;
  /** the certificate's subject and validity, for the start-up log line */
  subject: string;
  validTo: string;
}

function readPem(setting: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable (permission denied)' : code === 'EISDIR' ? 'a directory, not a file' : `${code}`;
    throw new TlsConfigError(`${setting}: ${JSON.stringify(file)} cannot be read: ${why}`);
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

/** Reads and cross-checks the certificate and key; throws TlsConfigError naming what is wrong. */
export function checkTlsFiles(certFile: string, keyFile: string): TlsFiles {
  const certPem = readPem('--tls-cert', certFile);
  const keyPem = readPem('--tls-key', keyFile);
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(certPem);
  } catch (e) {
    throw new TlsConfigError(`--tls-cert: ${JSON.stringify(certFile)} is not a PEM certificate (${firstLine(e)})`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(keyPem);
  } catch (e) {
    throw new TlsConfigError(`--tls-key: ${JSON.stringify(keyFile)} is not an unencrypted PEM private key (${firstLine(e)})`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new TlsConfigError(`--tls-key: ${JSON.stringify(keyFile)} is not the private key of the certificate in --tls-cert ${JSON.stringify(certFile)}`);
  }
  return { cert: path.resolve(certFile), key: path.resolve(keyFile), subject: cert.subject.replace(/\n/g, ', '), validTo: cert.validTo };
}

/** The SSLApp options of checked files. */
export function sslAppOptions(files: TlsFiles): AppOptions {
  return { cert_file_name: files.cert, key_file_name: files.key };
}
