/** http-single: one JSON event per POST /v1/events, keep-alive, many connections (wrk). */
import { deviceId, readings } from '../frames';
import { httpScenario } from '../scenario';

const CONNECTIONS = 64;

export const httpSingle = httpScenario('http-single',
  `HTTP POST /v1/events, one JSON event per request, ${CONNECTIONS} keep-alive connections, 10k devices`,
  () => {
    const base = Date.now();
    const bodies: string[] = [];
    const devices = 10_000;
    const rows = readings(devices, base, 0);
    for (let d = 0; d < devices; d++) {
      bodies.push(JSON.stringify({ deviceId: deviceId(d), timestamp: base - (d % 10_000), metrics: { cpu: rows[d].cpu } }));
    }
    return { path: '/v1/events', contentType: 'application/json', bodies, connections: CONNECTIONS };
  }, 1);
