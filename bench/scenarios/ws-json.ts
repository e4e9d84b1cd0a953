/** ws-json: the ws-msgpack load as JSON text frames. */
import { wsScenario } from '../scenario';

export const wsJson = wsScenario('ws-json',
  'WebSocket, JSON text frames {deviceId, events} of 1,000 events (1 metric), 10k devices',
  'json');
