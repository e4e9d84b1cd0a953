/**
 * The connection to the MQTT broker: one MQTT.js client with a persistent session (fixed client
 * id, clean start off, a session that never expires), subscribed at QoS 1 to --mqtt-topic,
 * reconnecting with a doubling delay (RECONNECT_BASE_MS up to RECONNECT_CAP_MS). Front-end thread.
 *
 * Acknowledgements (MQTT.js 5.16, lib/handlers/publish.js and client.js, read for this): with
 * `customHandleAcks`, a QoS 1 PUBLISH is acknowledged only through the handler's callback, and
 * MQTT.js reads the connection's next packet only after that callback: called with 0 it first
 * writes the PUBACK; called with an Error it writes no PUBACK, goes on reading and emits the error.
 * MQTT.js keeps nothing of an incoming QoS 1 message (its incoming store serves QoS 2 only) and
 * never acknowledges one by itself. A message never acknowledged stays in the broker's session
 * and is sent again (DUP) on the next connection (mosquitto: first the unacknowledged, in order,
 * then the queued ones).
 *
 * Acknowledging through the callback would hand messages over one at a time: one WAL commit (an
 * fsync) per message, 2-10 ms here, 100-500 messages/s. So the handler answers DEFERRED (no
 * PUBACK; the next message is read) and the PUBACK is written later with MQTT.js's own packet
 * writer, once Sluice has decided: many messages are in flight and share group commits. PUBACKs
 * go out in the order the messages arrived (MQTT 5, 4.6: "MUST send PUBACK packets in the order
 * in which the corresponding PUBLISH packets were received"): a decided message waits for the
 * ones before it.
 *
 * Flow control: mosquitto 2.0.11 does not hold to the Receive Maximum once PUBACKs flow (measured:
 * 380 unacknowledged messages with a Receive Maximum of 10), so the bound is Sluice's own: while
 * hasRoom() is false the handler's callback is held back, MQTT.js reads no further packet, and TCP
 * pushes back on the broker, which keeps the messages queued in the session.
 *
 * An acknowledgement is sent only on the connection that delivered the message: MQTT.js would
 * queue a PUBACK written while disconnected and send it on the next connection, where the broker
 * may have given its packet id to another message by then.
 *
 * QoS 0 (a device that publishes at QoS 0: the broker delivers at the lower QoS) arrives through
 * the 'message' event, without an acknowledgement to send: at-most-once.
 *
 * No exception leaves an MQTT.js callback: every handler is wrapped, and the client always has
 * an 'error' listener (an EventEmitter without one throws).
 */

import type { IClientOptions, IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';

/** MQTT.js, loaded at the first connection: an engine without --mqtt-url never holds it (~6 MB of RSS). */
function mqttConnect(url: string, options: IClientOptions): MqttClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('mqtt') as typeof import('mqtt')).connect(url, options);
}
import type { Logger } from './logger';

/** reconnect delays: doubled after every failed attempt, back to the base once connected */
const RECONNECT_BASE_MS = 1_000;
const RECONNECT_CAP_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;
const KEEPALIVE_S = 30;
/**
 * QoS 1 messages the broker may have sent and not seen acknowledged (MQTT 5 Receive Maximum). Asked
 * for, though mosquitto does not hold to it (see the header): the bound is hasRoom().
 */
const RECEIVE_MAXIMUM = 100;
/** MQTT 5 Session Expiry Interval: the largest value means the session never expires */
const SESSION_NEVER_EXPIRES = 0xffffffff;
/** how long stop() waits for the DISCONNECT to be written before it drops the socket */
const END_TIMEOUT_MS = 2_000;

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'stopped';

/** One message as delivered, with the means to acknowledge it on the connection that brought it. */
export interface Delivery {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  /** the broker's DUP flag: a redelivery (Sluice may or may not have committed it before) */
  dup: boolean;
  /** QoS 1: its PUBACK is to be sent (in arrival order) if the delivering connection is still up; false when it will not be */
  ack(): boolean;
  /** the delivering connection is still up (an ack could still be sent) */
  live(): boolean;
}

export interface ConnectionOptions {
  url: string;
  topic: string;
  clientId: string;
}

/** the customHandleAcks answer that writes no PUBACK and lets MQTT.js read the next packet */
const DEFERRED = new Error('Sluice acknowledges this message after its WAL commit');

interface PendingAck {
  messageId: number;
  decided: boolean;
}

/** MQTT.js's packet writer: private in its typings, the one that writes its own PUBACKs. */
interface PacketWriter {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode: number }, cb?: (err?: Error) => void): void;
}

export class MqttConnection {
  state: ConnectionState = 'connecting';
  connects = 0;
  reconnects = 0;
  sessionPresent: boolean | null = null;
  subscribed = false;
  lastError: { message: string; at: string } | null = null;
  private client: MqttClient | null = null;
  /** bumped whenever a connection ends: deliveries of an older one are not acknowledged */
  private generation = 0;
  private loggedError = '';
  /** the current connection's QoS 1 messages whose PUBACK has not been written, in arrival order */
  private acks: PendingAck[] = [];
  private delayMs = RECONNECT_BASE_MS;

  /** the held-back callback of the message that found no room (MQTT.js reads nothing until it is called) */
  private paused: (() => void) | null = null;
  private resumeQueued = false;

  constructor(private readonly opts: ConnectionOptions, private readonly log: Logger,
    private readonly onDelivery: (d: Delivery) => void, private readonly hasRoom: () => boolean) {}

  /**
   * Reads on (after a pause for room), once there is room again. From the next turn: the caller
   * is deciding a message, and the next one must not be handed over inside that decision.
   */
  resume(): void {
    if (this.paused === null || this.resumeQueued || !this.hasRoom()) return;
    this.resumeQueued = true;
    setImmediate(() => {
      this.resumeQueued = false;
      const p = this.paused;
      if (p === null || !this.hasRoom()) return;
      this.paused = null;
      this.guard(p, 'resume');
    });
  }

  /** true while MQTT.js is held from reading (Sluice holds as many messages as it may) */
  get isPaused(): boolean {
    return this.paused !== null;
  }

  /** Starts connecting; resolves once the first attempt has connected or failed (retries go on). */
  start(): Promise<void> {
    const options: IClientOptions = {
      clientId: this.opts.clientId,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: SESSION_NEVER_EXPIRES, receiveMaximum: RECEIVE_MAXIMUM },
      reconnectPeriod: RECONNECT_BASE_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepalive: KEEPALIVE_S,
      // subscribed on every connect by onConnect(), with retain handling 1
      resubscribe: false,
      queueQoSZero: false,
      customHandleAcks: (topic, message, packet, done) => this.deliver(topic, message, packet as IPublishPacket, done),
    };
    const client = mqttConnect(this.opts.url, options);
    this.client = client;
    const first = new Promise<void>((resolve) => {
      client.once('connect', () => resolve());
      client.once('close', () => resolve());
    });
    client.on('connect', (p) => this.guard(() => this.onConnect(client, p), 'connect'));
    client.on('close', () => this.guard(() => this.onClose(), 'close'));
    client.on('reconnect', () => this.guard(() => this.onReconnect(client), 'reconnect'));
    client.on('error', (err) => { if (err !== DEFERRED) this.guard(() => this.noteError(err), 'error'); });
    client.on('message', (topic, payload, packet) => { if (packet.qos === 0) this.deliverQos0(topic, payload); });
    client.on('disconnect', (p) => this.guard(() => this.noteError(new Error(`the broker disconnected Sluice (reason code ${p.reasonCode ?? 0}${p.properties?.reasonString ? `: ${p.properties.reasonString}` : ''})`)), 'disconnect'));
    return first;
  }

  /** Closes the connection (a DISCONNECT, so the broker keeps the session and its unacknowledged messages). */
  async stop(): Promise<void> {
    const client = this.client;
    this.state = 'stopped';
    this.generation++;
    this.acks = [];
    this.paused = null;
    if (client === null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, () => resolve()), END_TIMEOUT_MS);
      client.end(false, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private deliver(topic: string, payload: Buffer, packet: IPublishPacket, done: (error: Error | number, code?: number) => void): void {
    const generation = this.generation;
    const client = this.client;
    const pending: PendingAck = { messageId: packet.messageId ?? 0, decided: false };
    this.acks.push(pending);
    const live = (): boolean => generation === this.generation && client !== null && client.connected;
    this.handOver({
      topic, payload, qos: 1, dup: packet.dup === true, live,
      ack: () => {
        if (!live() || pending.decided) return false;
        pending.decided = true;
        this.writeAcks(client as MqttClient);
        return true;
      },
    });
    const readOn = (): void => {
      // a connection that ended has a new reader: its old one is left as it is
      if (generation !== this.generation) return;
      try {
        done(DEFERRED);
      } catch (err) {
        this.log.error({ err }, 'MQTT: BUG: MQTT.js refused the deferred acknowledgement');
      }
    };
    if (this.hasRoom()) readOn();
    else this.paused = readOn;
  }

  private deliverQos0(topic: string, payload: Buffer): void {
    const client = this.client;
    const generation = this.generation;
    this.handOver({ topic, payload, qos: 0, dup: false, live: () => generation === this.generation && client !== null && client.connected, ack: () => false });
  }

  private handOver(d: Delivery): void {
    try {
      this.onDelivery(d);
    } catch (err) {
      // a bug in Sluice: logged with its stack; the message stays unacknowledged until the next connection
      this.log.error({ err, topic: d.topic }, 'MQTT: BUG: handling a message threw');
    }
  }

  /** Writes the PUBACKs of the decided messages at the head of the arrival order. */
  private writeAcks(client: MqttClient): void {
    const acks = this.acks;
    let n = 0;
    while (n < acks.length && acks[n].decided) {
      const messageId = acks[n].messageId;
      n++;
      try {
        (client as unknown as PacketWriter)._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 });
      } catch (err) {
        this.log.error({ err }, 'MQTT: MQTT.js failed to write a PUBACK');
      }
    }
    if (n > 0) acks.splice(0, n);
  }

  private onConnect(client: MqttClient, p: IConnackPacket): void {
    this.connects++;
    this.state = 'connected';
    this.sessionPresent = p.sessionPresent;
    this.delayMs = RECONNECT_BASE_MS;
    client.options.reconnectPeriod = RECONNECT_BASE_MS;
    this.loggedError = '';
    this.log.info({ url: redactUrl(this.opts.url), clientId: this.opts.clientId, sessionPresent: p.sessionPresent },
      `MQTT: connected (${p.sessionPresent ? 'session resumed: unacknowledged messages follow' : 'new session'})`);
    // on a resumed session too: the subscription may be from an older --mqtt-topic. Retain
    // handling 1: retained messages only when the subscription is new, not at every reconnect
    client.subscribe(this.opts.topic, { qos: 1, rh: 1 }, (err, granted) => this.guard(() => {
      const code = granted?.[0]?.qos;
      if (err || code === undefined || code > 1) {
        this.subscribed = false;
        this.noteError(err ?? new Error(`the broker refused the subscription to ${this.opts.topic} (code ${code ?? 'none'})`));
        return;
      }
      if (!this.subscribed) this.log.info({ topic: this.opts.topic, qos: code }, 'MQTT: subscribed');
      this.subscribed = true;
    }, 'subscribe'));
  }

  private onClose(): void {
    this.generation++;
    // nothing of them is acknowledged any more: the broker sends them again on the next connection
    this.acks = [];
    this.paused = null;
    this.subscribed = false;
    if (this.state === 'stopped') return;
    if (this.state === 'connected') {
      this.log.warn({ url: redactUrl(this.opts.url), lastError: this.lastError?.message ?? null, retryInMs: this.delayMs },
        'MQTT: connection lost; reconnecting (unacknowledged messages stay with the broker)');
    }
    this.state = 'reconnecting';
  }

  /** MQTT.js arms its next attempt from options.reconnectPeriod when this one fails: double it. */
  private onReconnect(client: MqttClient): void {
    this.reconnects++;
    this.delayMs = Math.min(this.delayMs * 2, RECONNECT_CAP_MS);
    client.options.reconnectPeriod = this.delayMs;
  }

  private noteError(err: Error): void {
    const message = err?.message ?? String(err);
    this.lastError = { message, at: new Date().toISOString() };
    // a broker that stays down fails every attempt the same way: logged once, until it changes
    if (message === this.loggedError) return;
    this.loggedError = message;
    this.log.warn({ url: redactUrl(this.opts.url), err: message, state: this.state, retryInMs: this.delayMs }, `MQTT: ${message}`);
  }

  private guard(f: () => void, what: string): void {
    try {
      f();
    } catch (err) {
      this.log.error({ err }, `MQTT: BUG: the ${what} handler threw`);
    }
  }
}

/** The URL without its password, for logs and /healthz. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
