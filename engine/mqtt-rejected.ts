/**
 * The MQTT messages Sluice refused, whole or in part: a bounded ring of the last
 * REJECTED_KEPT_MAX (memory only: a restart starts it empty; the counts in /healthz are the
 * totals since start), read newest first by GET /v1/mqtt/rejected. Front-end thread only.
 *
 * A refused message is still acknowledged to the broker (it would redeliver it forever
 * otherwise), so this list and the log are where its sender can find out why.
 */

import type { TemplatedApp } from 'uWebSockets.js';
import type { ErrorCode, Rejection } from '../protocol';
import { type Answerable, sendJson } from './http-util';
import { shown } from './mqtt-message';

export const REJECTED_KEPT_MAX = 200;
/** refusals of single events kept per message (the first ones, in event order) */
export const EVENT_REJECTIONS_KEPT_MAX = 10;
const REASON_SHOWN_MAX = 500;

export interface MqttRejection {
  /** ISO-8601, when Sluice decided */
  time: string;
  topic: string;
  /** the topic's device, null when the topic names none */
  deviceId: string | null;
  code: ErrorCode;
  reason: string;
  /** events of the message that were kept (a partially valid message) */
  accepted: number;
  /** the refused events (at most EVENT_REJECTIONS_KEPT_MAX), with their index in the message */
  events: Rejection[];
  /** refused events in all */
  eventsRejected: number;
}

export class RejectedRing {
  private readonly ring: (MqttRejection | null)[];
  private next = 0;
  /** rejections added since start (the ring keeps the last capacity of them) */
  total = 0;

  constructor(readonly capacity = REJECTED_KEPT_MAX) {
    this.ring = new Array<MqttRejection | null>(capacity).fill(null);
  }

  add(topic: string, deviceId: string | null, code: ErrorCode, reason: string, accepted = 0, events: readonly Rejection[] = []): MqttRejection {
    const r: MqttRejection = {
      time: new Date().toISOString(), topic: shown(topic), deviceId, code, reason: shown(reason, REASON_SHOWN_MAX), accepted,
      events: events.slice(0, EVENT_REJECTIONS_KEPT_MAX).map((e) => ({ index: e.index, code: e.code, reason: shown(e.reason, REASON_SHOWN_MAX) })),
      eventsRejected: events.length,
    };
    this.ring[this.next] = r;
    this.next = (this.next + 1) % this.capacity;
    this.total++;
    return r;
  }

  newestFirst(): MqttRejection[] {
    const out: MqttRejection[] = [];
    for (let i = 1; i <= this.capacity; i++) {
      const r = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (r === null) break;
      out.push(r);
    }
    return out;
  }
}

/** GET /v1/mqtt/rejected: `{enabled, total, kept, messages}`, messages newest first (empty when MQTT is off). */
export function registerRejectedRoute(app: TemplatedApp, rejected: RejectedRing | null): void {
  app.get('/v1/mqtt/rejected', (res) => {
    const a: Answerable = { res, aborted: false };
    const messages = rejected === null ? [] : rejected.newestFirst();
    sendJson(a, 200, JSON.stringify({
      enabled: rejected !== null, total: rejected === null ? 0 : rejected.total, kept: rejected === null ? 0 : rejected.capacity, messages,
    }));
  });
}
