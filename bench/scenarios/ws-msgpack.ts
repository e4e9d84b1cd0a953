/** ws-msgpack: WebSocket binary frames of 1,000 msgpack events (msgpackr records), each frame one device's. */
import { wsScenario } from '../scenario';

export const wsMsgpack = wsScenario('ws-msgpack',
  'WebSocket, msgpack frames {deviceId, events} of 1,000 events (msgpackr records, 1 metric), each frame pinned to one of 10k devices by its envelope deviceId',
  'msgpack');
