/**
 * MQTT ingest: Sluice subscribes to --mqtt-topic on an existing broker (mqtt-connection.ts) and
 * admits each message like a WebSocket frame pinned to the topic's device (mqtt-message.ts names
 * the device and the codec), through the same Ingest.submit(). Front-end thread only.
 *
 * Acknowledgement policy (a PUBACK is a promise: the broker forgets the message):
 *   durable (accepted, partial, duplicate)     PUBACK after the WAL commit (durable ack mode)
 *   refused for what it is (bad topic, payload or events; none valid)   PUBACK too, counted,
 *                                              logged and listed at /v1/mqtt/rejected: a broker
 *                                              would otherwise redeliver it forever
 *   not durable for now (backpressure, storage fault or full)   no PUBACK; submitted again after
 *                                              a growing delay while the connection lasts
 *   shutting down, or its connection ended     no PUBACK: the broker keeps it in the session and
 *                                              sends it again (DUP) on the next connection
 *
 * Exactly-once: a message with an envelope `{seq, events}` carries its device's sequence (the
 * topic pins the device, so Ingest takes the envelope's seq as the device seq). A redelivery of a
 * message Sluice committed before its PUBACK got out (a crash, a lost connection) is then answered
 * `duplicate`: acknowledged, not applied. Messages without a seq are at-least-once.
 *
 * Order: the broker delivers one session's messages in order and resends the unacknowledged ones
 * first. Messages of different devices are in flight together (they share group commits); the
 * messages of one device are submitted one at a time, in arrival order (a queue per device): a
 * device's seqs must reach Ingest as last + 1, and a message waiting for a retry must hold back
 * the ones behind it. A redelivery that arrives while the first copy, from the previous
 * connection, is still being committed waits behind it in the same queue (then: a duplicate).
 *
 * Sequence gaps: the broker never sends an older message after a newer one, so a gap cannot be
 * filled by waiting; its seqs were refused whole (a batch with no valid event does not consume
 * its seq), lost before the broker (QoS 0, a full queue) or skipped by the device. The device's
 * sequence is moved to just before the message, which is then admitted: counted (gapsSkipped)
 * and logged, never a device stuck behind a seq that will not come.
 *
 * Ack mode `fast` acknowledges at enqueue (before the WAL commit), as for HTTP: a crash can lose
 * the last acknowledged messages.
 */

import type { TemplatedApp } from 'uWebSockets.js';
import type { ErrorCode } from '../protocol';
import type { Logger } from './logger';
import type { Ingest, IngestOutcome } from './ingest';
import type { Dictionary } from './dictionary';
import { MqttConnection, redactUrl, type Delivery } from './mqtt-connection';
import { TopicDevice, isFault, payloadKind, type MessageFault } from './mqtt-message';
import { RejectedRing, registerRejectedRoute } from './mqtt-rejected';

export interface MqttOptions {
  /** --mqtt-url */
  url: string;
  /** --mqtt-topic: one `+` level, the deviceId */
  topic: string;
  /** --mqtt-client-id */
  clientId: string;
  bodyBytesMax: number;
  backpressureWaitMs: number;
}

/** delay before a message that was not made durable is submitted again: doubled up to the cap */
const RETRY_BASE_MS = 20;
const RETRY_CAP_MS = 2_000;
/**
 * Messages Sluice holds, undecided, for the broker: past either bound it reads no more until some
 * are decided (the broker keeps the rest). The count bounds what a crash makes the broker resend.
 */
const HELD_MAX = 2_000;
const HELD_BYTES_MAX = 64 * 1024 * 1024;
/** how long stop() waits for the messages being committed, so their PUBACKs go out */
const STOP_WAIT_MS = 5_000;
/** rejection log lines: at most this many per window; the others are counted in the next line */
const REJECT_LOGS_PER_WINDOW = 20;
const REJECT_LOG_WINDOW_MS = 10_000;

interface InFlight {
  d: Delivery;
  /** submitted to Ingest and not answered yet (else waiting in its device's queue, or for a retry timer) */
  submitted: boolean;
  deviceId: string;
  kind: 'json' | 'msgpack';
  retryMs: number;
  timer: NodeJS.Timeout | null;
  gapSkipped: boolean;
}

export class MqttIngest {
  readonly rejected = new RejectedRing();
  readonly counters = {
    /** messages handed over by the broker (redeliveries included) */
    received: 0,
    /** PUBACKs sent (or queued to be written in arrival order) */
    acked: 0,
    /** QoS 0 messages (nothing to acknowledge: at-most-once) */
    qos0: 0,
    /** messages refused whole (acknowledged, listed) */
    rejected: 0,
    /** messages kept in part: their valid events kept, the others listed */
    partial: 0,
    eventsAccepted: 0,
    eventsRejected: 0,
    /** redeliveries already committed: acknowledged, not applied */
    duplicates: 0,
    /** submissions again of messages that were not made durable (backpressure, storage) */
    retries: 0,
    /** device sequence gaps moved over (see the header) */
    gapsSkipped: 0,
    /** messages left unacknowledged for the broker to redeliver (shutdown, connection ended) */
    leftToBroker: 0,
    redelivered: 0,
  };
  private readonly conn: MqttConnection;
  private readonly topic: TopicDevice;
  /** per device, its messages not decided yet in arrival order; the head is the one submitted */
  private readonly queues = new Map<string, InFlight[]>();
  private held = 0;
  private heldBytes = 0;
  private stopping = false;
  private rejectLogs = 0;
  private rejectLogsSuppressed = 0;
  private rejectLogWindowEnd = 0;

  constructor(readonly opts: MqttOptions, private readonly ingest: Ingest, private readonly dict: Dictionary, private readonly log: Logger) {
    this.topic = new TopicDevice(opts.topic);
    this.conn = new MqttConnection({ url: opts.url, topic: opts.topic, clientId: opts.clientId }, log, (d) => this.onDelivery(d),
      () => this.held < HELD_MAX && this.heldBytes < HELD_BYTES_MAX);
  }

  /** Connects and subscribes; resolves once the first connection is up or has failed (reconnects go on). */
  start(): Promise<void> {
    return this.conn.start();
  }

  /**
   * Stops taking messages, waits (at most STOP_WAIT_MS) for those being committed so their
   * PUBACKs go out, then closes the connection. What is not acknowledged stays with the broker.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    // what waits (in a queue or for a retry) is left to the broker; what Ingest has is awaited
    for (const q of [...this.queues.values()]) {
      const head = q[0];
      if (head.submitted) continue;
      if (head.timer !== null) clearTimeout(head.timer);
      this.leave(head);
    }
    const deadline = Date.now() + STOP_WAIT_MS;
    while (this.held > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (this.held > 0) this.log.warn({ inFlight: this.held }, 'MQTT: stopping with messages still being committed: the broker will send them again');
    await this.conn.stop();
    this.log.info({ counters: this.counters }, 'MQTT: stopped');
  }

  /** For /healthz. */
  status(): Record<string, unknown> {
    const c = this.conn;
    return {
      url: redactUrl(this.opts.url), topic: this.opts.topic, clientId: this.opts.clientId,
      state: c.state, subscribed: c.subscribed, sessionPresent: c.sessionPresent,
      connects: c.connects, reconnects: c.reconnects, lastError: c.lastError,
      inFlight: this.held, inFlightBytes: this.heldBytes, devicesInFlight: this.queues.size, readingPaused: this.conn.isPaused, ...this.counters,
    };
  }

  private onDelivery(d: Delivery): void {
    this.counters.received++;
    if (d.dup) this.counters.redelivered++;
    // not taken: the broker sends it again to the next engine run
    if (this.stopping) {
      this.counters.leftToBroker++;
      return;
    }
    let device: string | MessageFault;
    let kind: ReturnType<typeof payloadKind>;
    try {
      device = this.topic.deviceOf(d.topic);
      kind = isFault(device) ? device : payloadKind(d.payload, this.opts.bodyBytesMax);
    } catch (err) {
      this.log.error({ err, topic: d.topic }, 'MQTT: BUG: reading a message\'s topic or payload threw');
      kind = { code: 'SLUICE_E_INTERNAL', reason: `an internal error: ${(err as Error)?.message ?? String(err)}` };
      device = kind;
    }
    if (isFault(kind)) {
      this.reject(d, isFault(device) ? null : device, kind.code, kind.reason, 0);
      this.ack(d);
      return;
    }
    const m: InFlight = { d, submitted: false, deviceId: device as string, kind, retryMs: RETRY_BASE_MS, timer: null, gapSkipped: false };
    this.held++;
    this.heldBytes += d.payload.byteLength;
    const q = this.queues.get(m.deviceId);
    if (q !== undefined) {
      q.push(m);
      return;
    }
    this.queues.set(m.deviceId, [m]);
    this.submit(m);
  }

  /** Submits the head of its device's queue, unless its connection ended or Sluice is stopping. */
  private submit(m: InFlight): void {
    m.timer = null;
    if (this.stopping || !m.d.live()) {
      this.leave(m);
      return;
    }
    m.submitted = true;
    try {
      this.ingest.submit({ kind: m.kind, body: m.d.payload, pinned: m.deviceId, deviceSeq: null, waitMs: this.opts.backpressureWaitMs, precision: null },
        (o) => this.settleGuarded(m, o));
    } catch (err) {
      if (!m.submitted) throw err; // it was answered before the throw: not ours to answer again
      // Ingest answers every input; a throw is a bug of ours. Acknowledged and listed, so one
      // message cannot block its device forever (redelivered, it would throw again)
      this.log.error({ err, topic: m.d.topic }, 'MQTT: BUG: submitting a message threw');
      this.reject(m.d, m.deviceId, 'SLUICE_E_INTERNAL', `an internal error: ${(err as Error)?.message ?? String(err)}`, 0);
      this.done(m);
    }
  }

  private settleGuarded(m: InFlight, o: IngestOutcome): void {
    try {
      this.settle(m, o);
    } catch (err) {
      this.log.error({ err, topic: m.d.topic }, 'MQTT: BUG: settling a message threw');
    }
  }

  private settle(m: InFlight, o: IngestOutcome): void {
    m.submitted = false;
    switch (o.status) {
      case 'accepted':
        this.counters.eventsAccepted += o.accepted;
        this.done(m);
        return;
      case 'partial':
        this.counters.eventsAccepted += o.accepted;
        this.counters.eventsRejected += o.rejections.length;
        this.counters.partial++;
        this.reject(m.d, m.deviceId, o.rejections[0]?.code ?? 'SLUICE_E_NO_VALID_EVENT',
          `${o.rejections.length} event(s) refused, ${o.accepted} kept; first: ${o.rejections[0]?.reason ?? ''}`, o.accepted, o);
        this.done(m);
        return;
      case 'duplicate':
        this.counters.duplicates++;
        this.done(m);
        return;
      case 'none-valid':
      case 'refused':
        this.counters.eventsRejected += o.rejections.length;
        // the codec was guessed from the first byte: say which one read it
        this.reject(m.d, m.deviceId, o.code ?? 'SLUICE_E_NO_VALID_EVENT',
          o.code === 'SLUICE_E_BAD_BODY' ? `payload read as ${m.kind}${m.kind === 'msgpack' ? ' (it does not start with { or [)' : ''}: ${o.reason}` : o.reason, 0, o);
        this.done(m);
        return;
      case 'gap':
        this.skipGap(m, o);
        return;
      case 'backpressure':
      case 'unavailable':
        this.retryLater(m, o);
        return;
    }
  }

  /** See the header: the missing seqs cannot come any more; the device's sequence moves over them. */
  private skipGap(m: InFlight, o: IngestOutcome): void {
    const seq = o.label;
    const dev = this.dict.device(m.deviceId);
    if (m.gapSkipped || seq === null || dev < 0) {
      // cannot happen (a gap names its seq, and the device is known): refuse rather than loop
      this.reject(m.d, m.deviceId, 'SLUICE_E_SEQUENCE_GAP', o.reason, 0, o);
      this.done(m);
      return;
    }
    m.gapSkipped = true;
    this.counters.gapsSkipped++;
    this.log.warn({ topic: m.d.topic, deviceId: m.deviceId, seq, expected: o.expected },
      `MQTT: device ${m.deviceId} skips from seq ${o.expected ?? '?'} to ${seq}: those never reached Sluice or were refused whole; admitting ${seq}`);
    this.ingest.restoreDeviceSeq(dev, seq - 1);
    this.submit(m);
  }

  private retryLater(m: InFlight, o: IngestOutcome): void {
    if (this.stopping || o.code === 'SLUICE_E_SHUTTING_DOWN') {
      this.leave(m);
      return;
    }
    if (m.retryMs === RETRY_BASE_MS) {
      this.log.warn({ topic: m.d.topic, code: o.code, reason: o.reason }, 'MQTT: a message could not be made durable: not acknowledged, submitted again shortly');
    }
    this.counters.retries++;
    m.timer = setTimeout(() => {
      try {
        // its connection ended (the broker sends it again on the next one) or Sluice stops: left
        this.submit(m);
      } catch (err) {
        this.log.error({ err }, 'MQTT: BUG: a retry threw');
      }
    }, m.retryMs);
    m.retryMs = Math.min(m.retryMs * 2, RETRY_CAP_MS);
  }

  /** Decided: acknowledged (unless its connection is gone); its device's next message goes on. */
  private done(m: InFlight): void {
    this.ack(m.d);
    this.next(m);
  }

  private ack(d: Delivery): void {
    if (d.qos === 0) this.counters.qos0++;
    else if (d.ack()) this.counters.acked++;
    else this.counters.leftToBroker++;
  }

  /** Left unacknowledged: the broker keeps it and sends it again. */
  private leave(m: InFlight): void {
    this.counters.leftToBroker++;
    this.next(m);
  }

  /** m leaves the head of its device's queue; the next one is submitted. */
  private next(m: InFlight): void {
    this.held--;
    this.heldBytes -= m.d.payload.byteLength;
    this.conn.resume();
    const q = this.queues.get(m.deviceId);
    if (q === undefined || q[0] !== m) throw new Error(`BUG: MQTT message of ${m.deviceId} settled while not at the head of its queue`);
    q.shift();
    if (q.length === 0) {
      this.queues.delete(m.deviceId);
      return;
    }
    this.submit(q[0]);
  }

  private reject(d: Delivery, deviceId: string | null, code: ErrorCode, reason: string, accepted: number, o?: IngestOutcome): void {
    if (accepted === 0) this.counters.rejected++;
    const r = this.rejected.add(d.topic, deviceId, code, reason, accepted, o?.rejections ?? []);
    const now = Date.now();
    if (now >= this.rejectLogWindowEnd) {
      this.rejectLogWindowEnd = now + REJECT_LOG_WINDOW_MS;
      this.rejectLogs = 0;
    }
    if (this.rejectLogs >= REJECT_LOGS_PER_WINDOW) {
      this.rejectLogsSuppressed++;
      return;
    }
    this.rejectLogs++;
    const suppressed = this.rejectLogsSuppressed;
    this.rejectLogsSuppressed = 0;
    this.log.warn({ topic: r.topic, deviceId, code, reason: r.reason, accepted, ...(suppressed > 0 ? { notLogged: suppressed } : {}) },
      accepted > 0 ? 'MQTT: message kept in part (see /v1/mqtt/rejected)' : 'MQTT: message refused and acknowledged (see /v1/mqtt/rejected)');
  }
}

/** GET /v1/mqtt/rejected (registered whether or not MQTT is on: an empty list when off). */
export function registerMqttRoutes(app: TemplatedApp, mqtt: MqttIngest | null): void {
  registerRejectedRoute(app, mqtt === null ? null : mqtt.rejected);
}
