/**
 * A real mosquitto broker for tests: /usr/sbin/mosquitto on 127.0.0.1 and a free port, with
 * persistence in a temp dir (so it can be stopped and started again with its sessions), started
 * by the test and ended by PID.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, tempDir } from './engine';

export const MOSQUITTO = '/usr/sbin/mosquitto';


async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export class Mosquitto {
  proc: ChildProcess | null = null;
  readonly logs: string[] = [];
  readonly dir = tempDir('sluice-mosquitto-');

  constructor(readonly port: number) {
    fs.writeFileSync(path.join(this.dir, 'mosquitto.conf'), [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${this.dir}/`,
      // the crash test queues 10,000 messages for an engine that is down: none may be dropped
      'max_queued_messages 1000000',
      'max_queued_bytes 0',
      'max_inflight_messages 100',
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'));
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(port?: number): Promise<Mosquitto> {
    const m = new Mosquitto(port ?? await freePort());
    await m.start();
    return m;
  }

  /** Starts the broker (again, on the same port and persistence dir) and waits until it accepts. */
  async start(): Promise<void> {
    const proc = spawn(MOSQUITTO, ['-c', path.join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (c: Buffer) => this.logs.push(c.toString('utf8')));
    proc.stderr!.on('data', (c: Buffer) => this.logs.push(c.toString('utf8')));
    const deadline = Date.now() + 10_000;
    while (!(await accepts(this.port))) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mosquitto did not start on port ${this.port}:\n${this.logs.join('')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGTERM by PID (mosquitto then saves its sessions), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    process.kill(proc.pid!, 'SIGTERM');
    const timer = setTimeout(() => { if (proc.exitCode === null) process.kill(proc.pid!, 'SIGKILL'); }, 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Polls check() until it returns a value other than undefined, or fails naming what it waited for. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
