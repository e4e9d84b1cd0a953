/**
 * What an MQTT message is before admission: its device (the topic level under the filter's `+`)
 * and its codec (JSON or msgpack, told apart by the first byte). Pure, front-end thread; no I/O.
 *
 * Contract: deviceOf() and payloadKind() never throw, whatever the bytes; a message they refuse
 * comes back as a MessageFault whose reason names the field (topic or payload), so the caller can
 * acknowledge, count and list it (a broker would otherwise redeliver it forever).
 */

import { isValidDeviceId, type ErrorCode } from '../protocol';

export interface MessageFault {
  code: ErrorCode;
  reason: string;
}

/** Topics and reasons are echoed into logs and /v1/mqtt/rejected: longer ones are cut there. */
export const TOPIC_SHOWN_MAX = 256;

export function shown(s: string, max = TOPIC_SHOWN_MAX): string {
  return s.length <= max ? s : `${s.slice(0, max)}...(${s.length} chars)`;
}

/**
 * A topic filter with exactly one `+` level (config.ts checked that): the filter is split once
 * here, so a message costs one split of its topic.
 */
export class TopicDevice {
  private readonly levels: string[];
  private readonly at: number;

  constructor(readonly filter: string) {
    this.levels = filter.split('/');
    this.at = this.levels.indexOf('+');
    if (this.at < 0 || this.levels.lastIndexOf('+') !== this.at) throw new Error(`BUG: MQTT topic filter ${filter} must have exactly one + level`);
  }

  /** The deviceId the topic names, or why it names none. */
  deviceOf(topic: string): string | MessageFault {
    const levels = topic.split('/');
    // a session subscribed under an older --mqtt-topic still receives that filter's messages
    let matches = levels.length === this.levels.length;
    for (let i = 0; matches && i < levels.length; i++) if (i !== this.at && levels[i] !== this.levels[i]) matches = false;
    if (!matches) return { code: 'SLUICE_E_BAD_DEVICE_ID', reason: `topic: ${JSON.stringify(shown(topic))} does not match --mqtt-topic ${this.filter}` };
    const device = levels[this.at];
    if (!isValidDeviceId(device)) {
      return { code: 'SLUICE_E_BAD_DEVICE_ID', reason: `topic: level ${this.at + 1} (the deviceId) must be 1-128 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(shown(device))}` };
    }
    return device;
  }
}

export function isFault(x: unknown): x is MessageFault {
  return typeof x === 'object' && x !== null && typeof (x as MessageFault).code === 'string';
}

/**
 * JSON when the first byte after whitespace is `{` or `[`, else msgpack: neither `{` (0x7b) nor
 * `[` (0x5b) can start a msgpack map or array, and a msgpack value that starts with them (the
 * integers 91 and 123) is no event anyway, so it is refused as such by the msgpack decoder.
 */
export function payloadKind(payload: Uint8Array, bytesMax: number): 'json' | 'msgpack' | MessageFault {
  const n = payload.byteLength;
  if (n === 0) return { code: 'SLUICE_E_BAD_BODY', reason: 'payload: empty (expected a JSON or msgpack event, array or envelope)' };
  if (n > bytesMax) return { code: 'SLUICE_E_BODY_TOO_LARGE', reason: `payload: ${n} bytes, more than the ${bytesMax} of --body-max` };
  for (let i = 0; i < n; i++) {
    const c = payload[i];
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return c === 0x7b || c === 0x5b ? 'json' : 'msgpack';
  }
  return { code: 'SLUICE_E_BAD_BODY', reason: 'payload: only whitespace (expected a JSON or msgpack event, array or envelope)' };
}
