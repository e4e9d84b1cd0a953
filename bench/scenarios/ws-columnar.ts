/** ws-columnar: the same devices sending the protocol's columnar batch (timestamps and cpu as f64 LE bins). */
import { wsScenario } from '../scenario';

export const wsColumnar = wsScenario('ws-columnar',
  'WebSocket, msgpack columnar batches {deviceId, timestamps: f64 LE, metrics: {cpu: f64 LE}} of 1,000 rows, 10k devices',
  'columnar');
