/** The engine's pino logger: JSON lines on stdout, level from --log-level. */

import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'sluice' }, timestamp: pino.stdTimeFunctions.isoTime });
}
