/**
 * Token management (issue #13), admin role only (engine/auth.ts ROUTE_ACCESS):
 *   POST /v1/tokens  {"role":"device","deviceId":"d-1"} | {"role":"write"} | {"role":"read"} |
 *                    {"role":"admin"}, optionally "description": 201 {id, token, role, deviceId?}
 *                    (the token's text is shown once: only its hash is stored)
 *   GET /v1/tokens   every token without its secret, revoked ones with revokedAt
 *   DELETE /v1/tokens/:id  204; the token stops working at once and its WebSockets are closed
 * Also: the admin token file, made at the first start with --auth on (ensureAdminToken).
 */

import fs from 'node:fs';
import path from 'node:path';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { isValidDeviceId } from '../protocol';
import { ROLES, type Role, type TokenStore } from '../storage';
import type { Auth } from './auth';
import type { Logger } from './logger';
import { type Answerable, readBody, sendEmpty, sendError, sendJson } from './http-util';

const BODY_BYTES_MAX = 4096;
const DESCRIPTION_MAX = 256;

/**
 * With --auth off nothing checks a token, so nobody may make one either: a token made then by
 * anyone who can reach the port would be valid (an admin one too) once auth is turned on.
 */
function refusedWhileOff(a: Answerable, auth: Auth): boolean {
  if (auth.mode === 'on') return false;
  sendError(a, 404, 'SLUICE_E_NOT_FOUND', 'token management needs --auth on (with it off, no route takes a token)');
  return true;
}

export function registerTokenRoutes(app: TemplatedApp, tokens: TokenStore, auth: Auth, log: Logger): void {
  app.post('/v1/tokens', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    if (refusedWhileOff(a, auth)) return;
    readBody(a, Number(req.getHeader('content-length') || '0'), BODY_BYTES_MAX, 'identity', (body) => {
      let v: unknown;
      try {
        v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
      } catch (err) {
        sendError(a, 400, 'SLUICE_E_BAD_BODY', `the body is not JSON: ${(err as Error).message}`);
        return;
      }
      const spec = tokenSpec(v);
      if (typeof spec === 'string') {
        sendError(a, 400, 'SLUICE_E_BAD_PARAM', spec);
        return;
      }
      tokens.create(spec.role, spec.deviceId, spec.description).then(({ token, record }) => {
        log.info({ tokenId: record.id, role: record.role, deviceId: record.deviceId }, `token ${record.id} made (${record.role}${record.deviceId ? ` of ${record.deviceId}` : ''})`);
        const out: Record<string, unknown> = { id: record.id, token, role: record.role };
        if (record.deviceId !== undefined) out.deviceId = record.deviceId;
        if (record.description !== undefined) out.description = record.description;
        sendJson(a, 201, JSON.stringify(out));
      }, (err: Error) => sendError(a, 503, 'SLUICE_E_STORAGE_FAULT', `the token could not be stored: ${err.message}`));
    });
  });

  app.get('/v1/tokens', (res: HttpResponse) => {
    const a: Answerable = { res, aborted: false };
    if (refusedWhileOff(a, auth)) return;
    sendJson(a, 200, JSON.stringify({ tokens: tokens.list() }));
  });

  app.del('/v1/tokens/:id', (res: HttpResponse, req: HttpRequest) => {
    const a: Answerable = { res, aborted: false };
    res.onAborted(() => { a.aborted = true; });
    if (refusedWhileOff(a, auth)) return;
    const id = req.getParameter(0) ?? '';
    if (!/^[0-9a-f]{12}$/.test(id)) {
      sendError(a, 404, 'SLUICE_E_NOT_FOUND', `no token ${JSON.stringify(id)}: an id is 12 hex digits (GET /v1/tokens lists them)`);
      return;
    }
    tokens.revoke(id).then((found) => {
      if (!found) {
        sendError(a, 404, 'SLUICE_E_NOT_FOUND', `no token ${JSON.stringify(id)}`);
        return;
      }
      auth.revoked(id);
      log.info({ tokenId: id }, `token ${id} revoked`);
      sendEmpty(a, 204);
    }, (err: Error) => sendError(a, 503, 'SLUICE_E_STORAGE_FAULT', `the revocation could not be stored: ${err.message}`));
  });
}

/** The token a POST body asks for, or what is wrong with it (naming the field). */
function tokenSpec(v: unknown): { role: Role; deviceId?: string; description?: string } | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'the body must be an object {"role": ..., "deviceId"?: ..., "description"?: ...}';
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['role', 'deviceId', 'description'].includes(k)) return `${k}: not a token field (role, deviceId, description)`;
  if (typeof o.role !== 'string' || !(ROLES as readonly string[]).includes(o.role)) return `role: one of ${ROLES.join(', ')}, got ${JSON.stringify(o.role)}`;
  const role = o.role as Role;
  if (role === 'device') {
    if (typeof o.deviceId !== 'string' || !isValidDeviceId(o.deviceId)) return `deviceId: a device token names its device (1-128 characters of [A-Za-z0-9_.:-]), got ${JSON.stringify(o.deviceId)}`;
  } else if (o.deviceId !== undefined) return `deviceId: only a device token names a device (role ${role})`;
  if (o.description !== undefined && (typeof o.description !== 'string' || o.description.length > DESCRIPTION_MAX)) return `description: a string of at most ${DESCRIPTION_MAX} characters`;
  const out: { role: Role; deviceId?: string; description?: string } = { role };
  if (role === 'device') out.deviceId = o.deviceId as string;
  if (o.description !== undefined) out.description = o.description as string;
  return out;
}

/**
 * With auth on: the admin token file (--admin-token-file, default <data-dir>/admin.token). At the
 * first start it is absent: a random admin token is made and written there, mode 0600, and its
 * path (never its value) logged. Later starts read it: a token the store does not know (a data
 * dir made again beside a kept file) is stored as admin, so the file always works.
 */
export async function ensureAdminToken(tokens: TokenStore, file: string, log: Logger): Promise<void> {
  let text: string | null = null;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`--admin-token-file ${file}: cannot read it: ${(err as Error).message}`);
  }
  if (text === null) {
    const { token, record } = await tokens.create('admin', undefined, 'the admin token (first start)');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    log.info({ file, tokenId: record.id }, `auth on: an admin token was made and written to ${file} (mode 0600)`);
    return;
  }
  const known = tokens.verify(text);
  if (known !== undefined) {
    if (known.revokedAt !== undefined) log.warn({ file, tokenId: known.id }, `auth on: the admin token in ${file} was revoked: delete the file and restart for a new one`);
    return;
  }
  try {
    const r = await tokens.adopt(text, 'admin', `the admin token of ${file}`);
    log.info({ file, tokenId: r.id }, `auth on: the admin token in ${file} was stored`);
  } catch (err) {
    throw new Error(`--admin-token-file ${file}: ${(err as Error).message}: delete it and restart for a new one`);
  }
}
