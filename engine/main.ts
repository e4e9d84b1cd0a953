/**
 * `npm start` / `node dist/engine/main.js [options]`: runs the engine until SIGINT/SIGTERM.
 * Exit codes: 0 after a clean stop, 1 when the engine cannot start or fails, 2 for a bad setting.
 */

import { ConfigError, describeConfig, loadConfig } from './config';
import { createLogger } from './logger';
import { startEngine } from './server';
import { UwsLoadError } from './uws';

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`sluice: ${e.message}\nRun with --help for every setting.\n`);
      process.exit(2);
    }
    throw e;
  }
  if ('help' in loaded) {
    process.stdout.write(loaded.help);
    return;
  }
  const { config } = loaded;
  const log = createLogger(config.logLevel);
  let engine;
  try {
    engine = await startEngine(config, log, () => process.exit(1));
  } catch (e) {
    const msg = e instanceof UwsLoadError ? `sluice cannot start: ${e.message}` : `sluice cannot start: ${(e as Error).message}`;
    log.fatal({ err: e }, msg);
    process.stderr.write(msg + '\n');
    process.exit(1);
  }
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  const scheme = config.tlsCert === '' ? 'http' : 'https';
  log.info({ config: describeConfig(config), port: engine.port, url: `${scheme}://${host}:${engine.port}` },
    `Sluice listening on ${scheme}://${host}:${engine.port} (${config.shards} shard${config.shards === 1 ? '' : 's'})`);
  const onSignal = (sig: string): void => {
    log.info({ signal: sig }, `${sig}: stopping`);
    engine.stop(sig).then(() => process.exit(0), (err) => {
      log.fatal({ err }, 'stop failed');
      process.exit(1);
    });
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
}

void main();
