/**
 * recovery: WAL replay rate at start-up for a WAL of N events. Waits for the durability issue:
 * until then it reports "not yet available". When it lands: fill an engine with N events, kill -9
 * it, restart on the same data dir and time the start-up to "listening" and the replayed events.
 */
import { notYetAvailable } from '../scenario';

export const recovery = notYetAvailable('recovery',
  'start-up WAL replay rate (events/s) after kill -9 with N events in the WAL',
  'waits for the durability issue: the engine has no WAL to replay yet');
