/**
 * line-protocol: InfluxDB line protocol ingest (issue #14).
 *
 * (a) The parser alone, in this (bench) process on its own core: LineProtocolReader over a body of
 *     5,000 typical Telegraf lines (`cpu,host=dev-NNNNN,cpu=cpu-total usage_user=..,usage_system=..,
 *     usage_idle=.. <ns>`), lines/s and ns/line, next to the generic decoder (decodeLineProtocol)
 *     on the same body: the notes and `extra` carry both and their ratio (target: >= 1.5M lines/s).
 * (b) End to end: POST /write of those bodies (5,000 points = 15,000 readings each) against the
 *     engine (durable acks) and the ceiling (bare uWS reading the body), the standard columns,
 *     events = points. The naive server reads no line protocol: not measured. The load comes from
 *     a small keep-alive generator in this process (one request in flight per connection): the
 *     shared HTTP generators read bodies one per line, and a line protocol body is many lines.
 */

import http from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  LineProtocolReader, PackedEvent, SCAN_END, SCAN_OK, decodeLineProtocol, isBodyError, type LineProtocolOptions,
} from '../../protocol';
import { LatencyHistogram } from '../histogram';
import { type GenReport, type LoadGen } from '../loadgen';
import { ceilingCounter, engineCounter, measurePhase, type Measure, type Target } from '../measure';
import { withServer, healthNotes, ratioOf, type Scenario, type ScenarioResult } from '../scenario';
import { PINNED, type Server } from '../proc';

const LINES = 5000;
const DEVICES = 10_000;
const CONNECTIONS = 8;
const BODIES = 8;
const OPTS: LineProtocolOptions = { deviceTag: 'host', precision: 'ns' };

/**
 * BODIES bodies of LINES points each over DEVICES devices, 2 ms apart in event time, ending now;
 * without timestamps for the end-to-end runs: the bodies are sent again and again, and points
 * with their old timestamps would be corrections of sealed slices after the first minute (a
 * worker cost of ~6 us a point, not ingest's), while points without one take the receive time.
 */
function bodies(timestamps: boolean): Buffer[] {
  const out: Buffer[] = [];
  const end = Date.now();
  for (let b = 0; b < BODIES; b++) {
    const lines: string[] = [];
    for (let i = 0; i < LINES; i++) {
      const n = b * LINES + i;
      const ts = BigInt(end - (BODIES * LINES - n) * 2) * 1_000_000n;
      const user = ((n * 7919) % 10_000) / 100;
      const system = ((n * 104_729) % 2000) / 100;
      lines.push(`cpu,host=dev-${String(n % DEVICES).padStart(5, '0')},cpu=cpu-total usage_user=${user},usage_system=${system},usage_idle=${(100 - user - system).toFixed(2)}${timestamps ? ` ${ts}` : ''}`);
    }
    out.push(Buffer.from(lines.join('\n') + '\n'));
  }
  return out;
}

/** (a): lines/s of the scanner and of the generic decoder over the same body, each for `seconds`. */
function parserRates(body: Buffer, seconds: number): { scanNs: number; genericNs: number; fast: number } {
  const r = new LineProtocolReader();
  const ev = new PackedEvent(64);
  let fast = 0;
  const scanOnce = (): void => {
    r.configure(OPTS, Date.now());
    r.frame(body);
    fast = 0;
    for (;;) {
      const st = r.next(ev);
      if (st === SCAN_END) break;
      if (st === SCAN_OK) fast++;
      else r.slowEvent();
    }
  };
  const rate = (f: () => void): number => {
    for (let i = 0; i < 20; i++) f(); // warm-up: the optimising compiler
    let runs = 0;
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    while (performance.now() < until) {
      f();
      runs++;
    }
    return ((performance.now() - t0) * 1e6) / (runs * LINES);
  };
  const scanNs = rate(scanOnce);
  const genericNs = rate(() => {
    const d = decodeLineProtocol(body, OPTS, Date.now());
    if (isBodyError(d)) throw new Error(d.reason);
  });
  return { scanNs, genericNs, fast };
}

/** Keep-alive POSTs of the bodies in turn, one in flight per connection, from this process. */
class InProcessHttpGen implements LoadGen {
  readonly label = 'in-process keep-alive HTTP generator';
  readonly pid = process.pid;
  private readonly agent: http.Agent;
  private running = true;
  private next = 0;
  private hist = new LatencyHistogram();
  private units = 0;
  private bytes = 0;
  private refused = 0;
  private markedAt = performance.now();
  private loops: Promise<void>[] = [];

  constructor(private readonly port: number, private readonly path: string, private readonly bodies: Buffer[], connections: number) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    for (let c = 0; c < connections; c++) this.loops.push(this.loop());
  }

  private post(body: Buffer): Promise<number> {
    return new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, path: this.path, method: 'POST', agent: this.agent,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end(body);
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const body = this.bodies[this.next++ % this.bodies.length];
      const t0 = performance.now();
      const status = await this.post(body);
      if (status >= 200 && status < 300) {
        this.hist.record((performance.now() - t0) * 1000);
        this.units++;
        this.bytes += body.length;
      } else {
        this.refused++;
        if (status === 0) await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  async warmup(seconds: number): Promise<void> {
    await new Promise((r) => setTimeout(r, seconds * 1000));
  }

  async mark(): Promise<void> {
    this.hist.reset();
    this.units = 0;
    this.bytes = 0;
    this.refused = 0;
    this.markedAt = performance.now();
  }

  async report(): Promise<GenReport> {
    return { seconds: (performance.now() - this.markedAt) / 1000, units: this.units, bytes: this.bytes, refused: this.refused, latencyMs: this.hist.summaryMs() };
  }

  cpuNs(): number {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
  }

  send(): void { /* no IPC: in process */ }
  async waitFor(): Promise<unknown> { return null; }
  on(): void { /* no progress messages */ }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

async function measureLp(server: Server, target: Target, load: Buffer[], opts: Parameters<Scenario['run']>[0]): Promise<Measure> {
  const gen = new InProcessHttpGen(server.port, '/write?precision=ns', load, CONNECTIONS);
  try {
    const counter = target === 'engine' ? engineCounter(server) : ceilingCounter(server, 'requests', LINES);
    return (await measurePhase({ label: `line-protocol ${target}`, target, server, gen, counter, eventsPerUnit: LINES, opts })).measure;
  } finally {
    await gen.stop();
  }
}

const DESCRIPTION = `InfluxDB line protocol: the parser alone (lines/s, one core) and POST /write of ${LINES} Telegraf cpu lines (3 fields) per request, ${CONNECTIONS} keep-alive connections`;

export const lineProtocol: Scenario = {
  name: 'line-protocol',
  description: DESCRIPTION,
  async run(opts, index): Promise<ScenarioResult> {
    opts.progress(`line-protocol: parser alone, ${opts.quick ? 1 : 3} s each`);
    const p = parserRates(bodies(true)[0], opts.quick ? 1 : 3);
    const load = bodies(false);
    const measures: Partial<Record<Target, Measure>> = {};
    const warnings: string[] = [];
    const order: Target[] = index % 2 === 0 ? ['ceiling', 'engine'] : ['engine', 'ceiling'];
    for (const target of order.filter((t) => opts.targets === undefined || opts.targets.includes(t))) {
      measures[target] = await withServer(target, (server) => measureLp(server, target, load, opts), {}, warnings);
    }
    const { engine, ceiling } = measures;
    const notes = [
      `parser alone (bench process${PINNED ? ', its own core' : ''}): LineProtocolReader ${(1e9 / p.scanNs / 1e6).toFixed(2)}M lines/s (${p.scanNs.toFixed(0)} ns/line, ${p.fast}/${LINES} lines on the fast path); ` +
        `generic decodeLineProtocol ${(1e9 / p.genericNs / 1e6).toFixed(2)}M lines/s (${p.genericNs.toFixed(0)} ns/line): ${(p.genericNs / p.scanNs).toFixed(1)}x`,
      `events = points (3 readings each; end to end without timestamps: the receive time); naive not measured: it reads no line protocol`,
      ...(engine ? healthNotes('engine', engine) : []),
      ...warnings,
    ];
    if (engine?.threadNsPerEvent) {
      const th = engine.threadNsPerEvent;
      notes.push(`engine CPU per point by thread: front-end ${Math.round(th.main)} ns, busiest other thread (the shard worker) ${Math.round(th.busiest)} ns, all others ${Math.round(th.others)} ns`);
    }
    return {
      name: 'line-protocol', status: 'ok', description: DESCRIPTION,
      engine: engine ?? null, ceiling: ceiling ?? null, ratio: engine && ceiling ? ratioOf(engine, ceiling) : null,
      generator: `${CONNECTIONS} keep-alive connections from the bench process, one request in flight each`,
      notes,
      extra: { parserNsPerLine: p.scanNs, parserLinesPerSec: 1e9 / p.scanNs, genericNsPerLine: p.genericNs, fastLines: p.fast },
    };
  },
};
