/**
 * durable-vs-fast: ack latency and throughput with --ack durable (after the WAL commit) and --ack
 * fast (on enqueue). Waits for the durability issue (WAL, ack modes): until then it reports
 * "not yet available". When it lands: run the ws-msgpack load (wsScenario's body) once per mode
 * with the engine's ack flag, and report both rows and the durable/fast ratio.
 */
import { notYetAvailable } from '../scenario';

export const durableVsFast = notYetAvailable('durable-vs-fast',
  'ws-msgpack load with durable acks (after the WAL group commit) against fast acks (on enqueue)',
  'waits for the durability issue: the engine has no WAL and no ack modes yet');
