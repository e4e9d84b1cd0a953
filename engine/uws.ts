/**
 * Loads uWebSockets.js and insists on its native binary.
 *
 * The package we use (@trufflesuite/uws-js-unofficial, aliased as uWebSockets.js) silently falls
 * back to a JavaScript implementation on top of `ws` when its binary does not load, which would
 * quietly cost most of our throughput. So we load the binary ourselves, by the same path the
 * package would, and refuse to start when it fails.
 */

import path from 'node:path';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

export class UwsLoadError extends Error {}

export function uwsBinaryPath(): string {
  const pkgDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
  return path.join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
}

let loaded: Uws | null = null;

export function loadNativeUws(): Uws {
  if (loaded !== null) return loaded;
  const env = process.env.UWS_USE_FALLBACK;
  if (env !== undefined && /^(1|true)$/i.test(env)) {
    throw new UwsLoadError('UWS_USE_FALLBACK is set: Sluice runs only on the native uWebSockets.js binary, not on its slow ws fallback. Unset UWS_USE_FALLBACK.');
  }
  const file = uwsBinaryPath();
  let mod: Uws;
  try {
    mod = require(file) as Uws;
  } catch (e) {
    throw new UwsLoadError(
      `the native uWebSockets.js binary did not load (${file}): ${(e as Error).message.split('\n')[0]}. ` +
      `Sluice refuses to run on the package's slow ws fallback. It needs Node.js with ABI ${process.versions.modules} ` +
      `on ${process.platform}-${process.arch}, glibc as the binary was built for; the package ships binaries for Node 16/18/20.`);
  }
  if (typeof mod.App !== 'function' || typeof mod.us_listen_socket_close !== 'function') {
    throw new UwsLoadError(`${file} loaded but is not the uWebSockets.js native addon (no App / us_listen_socket_close)`);
  }
  loaded = mod;
  return mod;
}
