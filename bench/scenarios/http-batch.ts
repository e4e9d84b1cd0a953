/** http-batch: 1,000 JSON events per POST /v1/events (a JSON array over 1,000 devices). */
import { jsonBatchBody } from '../frames';
import { httpScenario } from '../scenario';
import type { HttpLoad } from '../loadgen';

const CONNECTIONS = 16;
const EVENTS = 1000;
const DEVICES = 10_000;

export const HTTP_BATCH_EVENTS = EVENTS;

/** The http-batch load (also durable-vs-fast's HTTP rows). */
export function httpBatchLoad(): Omit<HttpLoad, 'port'> {
  const base = Date.now();
  const bodies: string[] = [];
  for (let b = 0; b < DEVICES / EVENTS; b++) bodies.push(jsonBatchBody(b * EVENTS, EVENTS, DEVICES, base, b));
  return { path: '/v1/events', contentType: 'application/json', bodies, connections: CONNECTIONS };
}

export const httpBatch = httpScenario('http-batch',
  `HTTP POST /v1/events, JSON arrays of ${EVENTS} events over 10k devices, ${CONNECTIONS} keep-alive connections`,
  httpBatchLoad, EVENTS);
