/** http-batch: 1,000 JSON events per POST /v1/events (a JSON array over 1,000 devices). */
import { jsonBatchBody } from '../frames';
import { httpScenario } from '../scenario';

const CONNECTIONS = 16;
const EVENTS = 1000;
const DEVICES = 10_000;

export const httpBatch = httpScenario('http-batch',
  `HTTP POST /v1/events, JSON arrays of ${EVENTS} events over 10k devices, ${CONNECTIONS} keep-alive connections`,
  () => {
    const base = Date.now();
    const bodies: string[] = [];
    for (let b = 0; b < DEVICES / EVENTS; b++) bodies.push(jsonBatchBody(b * EVENTS, EVENTS, DEVICES, base, b));
    return { path: '/v1/events', contentType: 'application/json', bodies, connections: CONNECTIONS };
  }, EVENTS);
