/**
 * ws-msgpack-maps: ws-msgpack's frames with every event a plain msgpack map instead of a msgpackr
 * record: what a client of any other msgpack library sends (issue #12 compared Sluice on these).
 */
import { wsScenario } from '../scenario';

export const wsMsgpackMaps = wsScenario('ws-msgpack-maps',
  'WebSocket, msgpack frames {deviceId, events} of 1,000 events as plain msgpack maps (1 metric), each frame pinned to one of 10k devices by its envelope deviceId',
  'msgpack-maps');
