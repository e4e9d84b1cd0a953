/**
 * WebSocket load generator: its own process (pinned to the load CPU by the bench), driven by the
 * bench over IPC. Raw sockets instead of a WebSocket library: frames are precomputed (frames.ts)
 * and written as head + shared body in one writev, unmasked with a zero mask key, so the per-frame
 * work is a write and the parsing of a ~10-byte ack.
 *
 * Flow control: each connection keeps at most `window` frames in flight; every frame gets one
 * answer, in order. `{"ack":n}` completes it (its latency is recorded); an SLUICE_E_BACKPRESSURE
 * error means it was not accepted: it is sent again. Any other answer stops the generator
 * with the answer in the error (the bench's frames must be valid).
 *
 * Jobs (instead of the precomputed load): `fill` sends each of `count` devices one reading (the
 * memory scenario); `steps` sends `steps` simulated steps of event time, each one reading for each
 * of `devices` devices at fromMs + step * stepMs + (device mod spreadMs) (the event-time
 * scenario). Their frames are built as the window makes room, held only until acked.
 *
 * IPC in:  {cmd:'start', config} | {cmd:'mark'} | {cmd:'report'} | {cmd:'rate', eventsPerSec}
 *          | {cmd:'fill', first, count, eventsPerFrame}
 *          | {cmd:'steps', devices, fromMs, stepMs, steps, spreadMs, eventsPerFrame} | {cmd:'stop'}
 * IPC out: {type:'ready'} | {type:'marked'} | {type:'report', report} | {type:'filled'}
 *          | {type:'step', stepsAcked, eventsAcked, resends, atMs} (each time the oldest unfinished step is fully acked)
 *          | {type:'steps-done', stepsAcked, eventsAcked, resends, atMs} | {type:'error', message}
 */

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram } from './histogram';
import { buildFrameSet, fillPayload, stepPayload, wsHeader, type FrameSet, type WsFrameKind } from './frames';

export interface WsGenConfig {
  host: string;
  port: number;
  path: string;
  kind: WsFrameKind;
  connections: number;
  window: number;
  devices: number;
  eventsPerFrame: number;
  /** 0 = as fast as acks allow */
  eventsPerSec: number;
  /** false: only open the connections (the memory scenario fills on command) */
  load: boolean;
  /** an Authorization header for the upgrade (an engine with --auth on) */
  authorization?: string;
}

export interface WsGenReport {
  seconds: number;
  framesAcked: number;
  eventsAcked: number;
  bytesAcked: number;
  resends: number;
  latency: { counts: number[]; maxUs: number };
}

const BACKPRESSURE_RESEND_DELAY_MS = 1;
const HANDSHAKE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export interface StepsCmd {
  devices: number;
  /** event time of step 0 */
  fromMs: number;
  stepMs: number;
  steps: number;
  /** a device's reading is at step start + (device index mod spreadMs) */
  spreadMs: number;
  eventsPerFrame: number;
}

/** A frame of a job (fill or steps): payload, events in it, the step it belongs to. */
interface Outgoing { payload: Buffer; events: number; step: number }

/** A job's frames, built on demand; acked() is called once per frame when its ack arrives. */
interface Job { next(): Outgoing | null; acked(o: Outgoing): void }

interface Conn {
  socket: net.Socket;
  /** in-flight frames, FIFO: frame index (< 0: -1 - key of a job frame in `flying`) and send time */
  ids: Int32Array;
  sentAt: Float64Array;
  head: number;
  count: number;
  next: number;
  pending: Buffer | null;
  open: boolean;
  /** frames waiting to be resent after backpressure (they hold a window slot, not a FIFO slot) */
  held: number;
}

let cfg: WsGenConfig;
let frames: FrameSet | null = null;
const conns: Conn[] = [];
const hist = new LatencyHistogram();
let markedAt = performance.now();
let framesAcked = 0;
let eventsAcked = 0;
let bytesAcked = 0;
let resends = 0;
let sending = false;
let rateStart = 0;
let rateFrames = 0;
let rateTimer: NodeJS.Timeout | null = null;
let job: Job | null = null;
/** job frames sent and not yet acked, by key (kept for backpressure resends) */
const flying = new Map<number, Outgoing>();
let flyKey = 0;

function send(msg: unknown): void {
  process.send!(msg);
}

function fail(message: string): never {
  send({ type: 'error', message });
  setTimeout(() => process.exit(1), 100);
  throw new Error(message);
}

function connect(c: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: cfg.host, port: cfg.port, noDelay: true });
    const conn: Conn = {
      socket, ids: new Int32Array(cfg.window), sentAt: new Float64Array(cfg.window),
      head: 0, count: 0, next: c, pending: null, open: false, held: 0,
    };
    let handshake = '';
    socket.once('error', reject);
    socket.on('connect', () => {
      socket.write(`GET ${cfg.path} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        (cfg.authorization ? `Authorization: ${cfg.authorization}\r\n` : '') +
        `Sec-WebSocket-Key: ${HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    const onHandshake = (chunk: Buffer): void => {
      handshake += chunk.toString('latin1');
      const end = handshake.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!handshake.startsWith('HTTP/1.1 101')) {
        reject(new Error(`upgrade refused: ${handshake.slice(0, handshake.indexOf('\r\n'))}`));
        return;
      }
      socket.off('data', onHandshake);
      socket.on('data', (d: Buffer) => onData(conn, d));
      socket.on('close', () => {
        if (conn.open && sending) fail('the server closed a connection during the run');
        conn.open = false;
      });
      conn.open = true;
      const rest = Buffer.from(handshake.slice(end + 4), 'latin1');
      if (rest.length) onData(conn, rest);
      resolve(conn);
    };
    socket.on('data', onHandshake);
  });
}

function writeFrame(conn: Conn, id: number): void {
  const fs = frames!;
  conn.socket.cork();
  conn.socket.write(fs.heads[id]);
  conn.socket.write(fs.bodies[id % fs.variants]);
  conn.socket.uncork();
  push(conn, id);
}

function push(conn: Conn, id: number): void {
  const slot = (conn.head + conn.count) % cfg.window;
  conn.ids[slot] = id;
  conn.sentAt[slot] = performance.now();
  conn.count++;
}

function budgetAllows(): boolean {
  if (cfg.eventsPerSec <= 0) return true;
  const due = ((performance.now() - rateStart) / 1000) * (cfg.eventsPerSec / cfg.eventsPerFrame);
  return rateFrames < due;
}

function pump(conn: Conn): void {
  if (!conn.open) return;
  if (job !== null) { pumpJob(conn); return; }
  if (!sending) return;
  const fs = frames!;
  const total = fs.devices * fs.variants;
  while (conn.count + conn.held < cfg.window && budgetAllows()) {
    // each connection walks its own devices; variants rotate so a device's frames differ
    const d = conn.next % fs.devices;
    const v = Math.floor(conn.next / fs.devices) % fs.variants;
    conn.next += cfg.connections;
    if (conn.next >= total * cfg.connections) conn.next -= total * cfg.connections;
    writeFrame(conn, d * fs.variants + v);
    rateFrames++;
  }
}

function pumpAll(): void {
  for (const c of conns) pump(c);
}

function writeJobFrame(conn: Conn, payload: Buffer): void {
  conn.socket.cork();
  conn.socket.write(wsHeader(2, payload.length));
  conn.socket.write(payload);
  conn.socket.uncork();
}

function pumpJob(conn: Conn): void {
  while (job !== null && conn.count + conn.held < cfg.window) {
    const o = job.next();
    if (o === null) break;
    const key = flyKey;
    flyKey = (flyKey + 1) & 0x3fffffff;
    flying.set(key, o);
    writeJobFrame(conn, o.payload);
    push(conn, -1 - key);
  }
}

function resend(conn: Conn, id: number): void {
  resends++;
  if (id >= 0) { writeFrame(conn, id); return; }
  writeJobFrame(conn, flying.get(-1 - id)!.payload);
  push(conn, id);
}

function fillJob(first: number, count: number, perFrame: number): Job {
  const base = Date.now();
  let i = 0;
  let outstanding = 0;
  return {
    next() {
      if (i >= count) return null;
      const n = Math.min(perFrame, count - i);
      const o = { payload: fillPayload(first + i, n, base), events: n, step: 0 };
      i += n;
      outstanding++;
      return o;
    },
    acked() {
      if (--outstanding === 0 && i >= count) {
        job = null;
        send({ type: 'filled' });
      }
    },
  };
}

function stepsJob(c: StepsCmd): Job {
  let step = 0;
  let first = 0;
  /** frames of each step not yet acked */
  const remaining: number[] = [];
  let stepsAcked = 0;
  let events = 0;
  const progress = (type: string): void => send({ type, stepsAcked, eventsAcked: events, resends, atMs: Date.now() });
  return {
    next() {
      if (step >= c.steps) return null;
      const n = Math.min(c.eventsPerFrame, c.devices - first);
      const o = { payload: stepPayload(first, n, c.fromMs + step * c.stepMs, c.spreadMs, step), events: n, step };
      remaining[step] = (remaining[step] ?? 0) + 1;
      first += n;
      if (first >= c.devices) { first = 0; step++; }
      return o;
    },
    acked(o) {
      events += o.events;
      remaining[o.step]--;
      // a step is finished once all its frames were built (step moved past it) and acked
      while (stepsAcked < step && remaining[stepsAcked] === 0) {
        stepsAcked++;
        if (stepsAcked < c.steps) progress('step');
      }
      if (stepsAcked === c.steps) {
        job = null;
        progress('steps-done');
      }
    },
  };
}

function onAnswer(conn: Conn, buf: Buffer, start: number, len: number): void {
  if (conn.count === 0) fail(`an answer without a frame in flight: ${buf.toString('utf8', start, start + len)}`);
  const slot = conn.head;
  const id = conn.ids[slot];
  const t = conn.sentAt[slot];
  conn.head = (conn.head + 1) % cfg.window;
  conn.count--;
  // {"ack":n} is short; a partial ack ({"ack":n,"accepted":..}) or an error is longer
  if (buf[start + 2] === 0x61 && len < 24) {
    hist.record((performance.now() - t) * 1000);
    if (id >= 0) {
      framesAcked++;
      eventsAcked += frames!.eventsPerFrame;
      bytesAcked += frames!.payloadBytes[id];
    } else {
      const o = flying.get(-1 - id)!;
      flying.delete(-1 - id);
      framesAcked++;
      eventsAcked += o.events;
      bytesAcked += o.payload.length;
      job?.acked(o);
    }
    return;
  }
  const text = buf.toString('utf8', start, start + len);
  let answer: { code?: string };
  try { answer = JSON.parse(text); } catch { fail(`an answer that is not JSON: ${text.slice(0, 200)}`); }
  if (answer.code === 'SLUICE_E_BACKPRESSURE') {
    // back off a little, as a client should: an immediate resend is refused again and costs the
    // front-end a decode and a validation each time. The frame keeps its window slot meanwhile.
    conn.held++;
    setTimeout(() => { conn.held--; if (conn.open) resend(conn, id); }, BACKPRESSURE_RESEND_DELAY_MS);
    return;
  }
  fail(`the server did not accept a bench frame: ${text.slice(0, 400)}`);
}

function onData(conn: Conn, chunk: Buffer): void {
  const buf = conn.pending ? Buffer.concat([conn.pending, chunk]) : chunk;
  let off = 0;
  for (;;) {
    const avail = buf.length - off;
    if (avail < 2) break;
    const op = buf[off] & 15;
    let len = buf[off + 1] & 127;
    let hl = 2;
    if (len === 126) {
      if (avail < 4) break;
      len = buf.readUInt16BE(off + 2);
      hl = 4;
    } else if (len === 127) {
      if (avail < 10) break;
      len = Number(buf.readBigUInt64BE(off + 2));
      hl = 10;
    }
    if (avail < hl + len) break;
    if (op === 1 || op === 2) onAnswer(conn, buf, off + hl, len);
    else if (op === 9) conn.socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | len, 0, 0, 0, 0]), buf.subarray(off + hl, off + hl + len)]));
    else if (op === 8) conn.open = false;
    off += hl + len;
  }
  conn.pending = off < buf.length ? Buffer.from(buf.subarray(off)) : null;
  pump(conn);
}

function reset(): void {
  hist.reset();
  framesAcked = 0;
  eventsAcked = 0;
  bytesAcked = 0;
  resends = 0;
  markedAt = performance.now();
}

function report(): WsGenReport {
  return { seconds: (performance.now() - markedAt) / 1000, framesAcked, eventsAcked, bytesAcked, resends, latency: hist.toJSON() };
}

function startRate(): void {
  rateStart = performance.now();
  rateFrames = 0;
  if (rateTimer) clearInterval(rateTimer);
  rateTimer = cfg.eventsPerSec > 0 ? setInterval(pumpAll, 1) : null;
}

async function start(config: WsGenConfig): Promise<void> {
  cfg = config;
  if (cfg.load) frames = buildFrameSet(cfg.kind, cfg.devices, cfg.eventsPerFrame, Date.now());
  for (let c = 0; c < cfg.connections; c++) conns.push(await connect(c));
  send({ type: 'ready' });
  if (cfg.load) {
    sending = true;
    startRate();
    reset();
    pumpAll();
  }
}

process.on('message', (m: { cmd: string; config?: WsGenConfig; eventsPerSec?: number; first?: number; count?: number; eventsPerFrame?: number; steps?: StepsCmd }) => {
  switch (m.cmd) {
    case 'start': start(m.config!).catch((e: Error) => fail(`start: ${e.message}`)); break;
    case 'mark': reset(); send({ type: 'marked' }); break;
    case 'report': send({ type: 'report', report: report() }); break;
    case 'rate': cfg.eventsPerSec = m.eventsPerSec!; startRate(); pumpAll(); break;
    case 'fill':
      if (job !== null) fail('fill: a job is running');
      if (m.count! <= 0) { send({ type: 'filled' }); break; }
      job = fillJob(m.first!, m.count!, m.eventsPerFrame!);
      pumpAll();
      break;
    case 'steps':
      if (job !== null) fail('steps: a job is running');
      job = stepsJob(m.steps!);
      pumpAll();
      break;
    case 'stop':
      sending = false;
      if (rateTimer) clearInterval(rateTimer);
      for (const c of conns) { c.open = false; c.socket.destroy(); }
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
