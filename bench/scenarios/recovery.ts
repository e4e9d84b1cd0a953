/**
 * recovery: start-up after kill -9 with N events in the WAL and no checkpoint to start from.
 *  1. An engine on its own data dir with `--checkpoint-interval 1h` (so no interval checkpoint is
 *     written during the load), durable acks (the default), takes the ws-msgpack load until the
 *     generator has N events acknowledged (default 2,000,000; --quick 200,000).
 *  2. The load stops, the workers catch up, RSS is read, and the engine is killed with SIGKILL.
 *  3. A new engine starts on the same data dir. Its `recovery:` log line gives the WAL entries and
 *     events replayed and the recovery's own durationMs (replay rate = events / durationMs); the
 *     bench times spawn -> "Sluice listening" and spawn -> the first /healthz answer (the port
 *     answers), reads the engine's CPU time at that point and its RSS after recovery.
 *  4. For scale, a start-up on an empty data dir is timed the same way.
 * The table row: events/s = replay rate, ns/event = the restarted engine's CPU time up to the
 * port answering / events replayed (start-up included), RSS after recovery.
 */

import fs from 'node:fs';
import { startWsGen } from '../loadgen';
import type { Measure } from '../measure';
import { cpuNs, engineApplied, engineWarnings, killHard, rssBytes, sleep, startEngine, tempDir, type Server } from '../proc';
import type { Scenario, ScenarioResult } from '../scenario';

const NAME = 'recovery';
const ENGINE_ARGS = ['--checkpoint-interval', '1h'];

interface RecoveryLine { checkpointsLoaded: number; walEntriesReplayed: number; eventsReplayed: number; recordsReplayed?: number; durationMs: number; msg: string }

function recoveryLine(s: Server): RecoveryLine | null {
  for (const line of s.logs) {
    if (!line.includes('"recovery:')) continue;
    try {
      const j = JSON.parse(line) as RecoveryLine;
      if (typeof j.msg === 'string' && j.msg.startsWith('recovery:')) return j;
    } catch { /* not a whole JSON line */ }
  }
  return null;
}

interface Startup { server: Server; listeningMs: number; answersMs: number; cpuNsAtAnswer: number }

/** Starts an engine on dataDir and times spawn -> listening line -> first /healthz answer. */
async function timedStart(dataDir: string): Promise<Startup> {
  const t0 = performance.now();
  const server = await startEngine({ dataDir, extraArgs: ENGINE_ARGS });
  const listeningMs = performance.now() - t0;
  for (;;) {
    try {
      await engineApplied(server.port);
      break;
    } catch {
      if (performance.now() - t0 > 600_000) throw new Error('the restarted engine did not answer /healthz in 600 s');
      await sleep(5);
    }
  }
  return { server, listeningMs, answersMs: performance.now() - t0, cpuNsAtAnswer: cpuNs(server.pid) };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);

export const recovery: Scenario = {
  name: NAME,
  description: 'WAL replay at start-up after kill -9 with N events (2M; --quick 200k) in the WAL and no checkpoint (--checkpoint-interval 1h)',
  async run(opts): Promise<ScenarioResult> {
    const target = opts.quick ? 200_000 : 2_000_000;
    const dataDir = tempDir('sluice-bench-recovery-');
    const warnings: string[] = [];
    try {
      // 0. an empty start-up, for scale
      const emptyDir = tempDir('sluice-bench-recovery-empty-');
      const empty = await timedStart(emptyDir);
      await empty.server.stop();
      fs.rmSync(emptyDir, { recursive: true, force: true });

      // 1. load N acknowledged events
      const first = await startEngine({ dataDir, extraArgs: ENGINE_ARGS });
      let acked = 0;
      let accepted = 0;
      let appliedBeforeKill = 0;
      let walBytes = 0;
      let rssBeforeKill = 0;
      let loadSeconds = 0;
      try {
        opts.progress(`${NAME}: loading ${fmt(target)} events with durable acks (checkpoint interval 1h)`);
        const gen = await startWsGen({
          host: '127.0.0.1', port: first.port, path: '/v1/stream', kind: 'msgpack', connections: opts.connections,
          window: opts.window, devices: opts.devices, eventsPerFrame: opts.eventsPerFrame, eventsPerSec: 0, load: true,
        });
        const t0 = performance.now();
        try {
          for (;;) {
            acked = (await gen.report()).units * opts.eventsPerFrame;
            if (acked >= target) break;
            if (performance.now() - t0 > 600_000) throw new Error(`only ${acked} events acknowledged in 600 s`);
            await sleep(10);
          }
        } finally {
          await gen.stop();
        }
        loadSeconds = (performance.now() - t0) / 1000;
        // 2. let the workers catch up (the frames in flight at the stop may still commit), then kill -9
        let last = -1;
        for (let i = 0; i < 600; i++) {
          const h = await engineApplied(first.port);
          accepted = h.health.ingest.eventsAccepted;
          appliedBeforeKill = h.applied;
          walBytes = h.health.storage?.walBytes ?? 0;
          if (h.applied === accepted && h.applied === last && (h.health.storage?.pendingCommits ?? 0) === 0) break;
          last = h.applied;
          await sleep(100);
        }
        rssBeforeKill = rssBytes(first.pid);
        opts.progress(`${NAME}: ${fmt(accepted)} events accepted (${fmt(acked)} acknowledged to the generator) in ${loadSeconds.toFixed(1)} s, WAL ${mib(walBytes)} MiB; kill -9`);
      } finally {
        await killHard(first);
        for (const w of engineWarnings(first)) warnings.push(`loaded engine: engine log: ${w}`);
      }

      // 3. restart on the same data dir
      opts.progress(`${NAME}: restarting on the same data dir`);
      const again = await timedStart(dataDir);
      try {
        const line = recoveryLine(again.server);
        if (line === null) throw new Error(`the restarted engine logged no "recovery:" line:\n${again.server.logs.slice(-10).join('\n')}`);
        const rssAtAnswer = rssBytes(again.server.pid);
        await sleep(1000);
        const rssAfter = rssBytes(again.server.pid);
        const h = await engineApplied(again.server.port);
        const replayRate = line.durationMs > 0 ? line.eventsReplayed / (line.durationMs / 1000) : NaN;
        const cpuNsPerEvent = line.eventsReplayed > 0 ? again.cpuNsAtAnswer / line.eventsReplayed : NaN;
        opts.progress(`${NAME}: ${fmt(line.eventsReplayed)} events (${fmt(line.walEntriesReplayed)} WAL entries) replayed in ${fmt(line.durationMs)} ms = ${fmt(replayRate)} events/s; port answers after ${fmt(again.answersMs)} ms`);
        const notes = [
          `${fmt(line.eventsReplayed)} events in ${fmt(line.walEntriesReplayed)} WAL entries replayed in ${fmt(line.durationMs)} ms (${line.checkpointsLoaded} checkpoints loaded): ${fmt(replayRate)} events/s`,
          `port answers ${fmt(again.answersMs)} ms after spawn ("Sluice listening" at ${fmt(again.listeningMs)} ms); an empty data dir: ${fmt(empty.answersMs)} ms`,
          `RSS ${mib(rssAfter)} MiB after recovery (${mib(rssBeforeKill)} MiB before the kill); CPU up to the port answering ${(again.cpuNsAtAnswer / 1e9).toFixed(2)} s = ${fmt(cpuNsPerEvent)} ns per replayed event`,
          `loaded: ${fmt(accepted)} events accepted, ${fmt(appliedBeforeKill)} applied before the kill, WAL ${mib(walBytes)} MiB, load ${loadSeconds.toFixed(1)} s`,
        ];
        if (line.eventsReplayed < acked) notes.push(`LOST: ${fmt(acked)} events were acknowledged but only ${fmt(line.eventsReplayed)} replayed`);
        if (line.eventsReplayed > accepted) notes.push(`${fmt(line.eventsReplayed)} events replayed but only ${fmt(accepted)} were accepted`);
        if (h.applied !== line.eventsReplayed) notes.push(`after recovery the workers report ${fmt(h.applied)} events applied, the recovery line ${fmt(line.eventsReplayed)}`);
        if (line.checkpointsLoaded !== 0) notes.push(`${line.checkpointsLoaded} checkpoints were loaded: the WAL was not replayed from its start`);
        for (const w of engineWarnings(again.server)) warnings.push(`restarted engine: engine log: ${w}`);
        notes.push(...warnings);
        const measure: Measure = {
          target: 'engine', seconds: line.durationMs / 1000, events: line.eventsReplayed, eventsPerSec: replayRate,
          mbPerSec: NaN, latencyMs: { p50: NaN, p99: NaN, p999: NaN, max: NaN, samples: 0 },
          serverCpuPercent: NaN, serverNsPerEvent: cpuNsPerEvent, serverRssBytes: rssAfter,
          generatorCpuPercent: NaN, generatorSaturated: false, refused: 0,
        };
        return {
          name: NAME, status: 'ok', description: this.description, engine: measure, ceiling: null, ratio: null,
          generator: `raw WebSocket generator (ws-msgpack load, durable acks) until ${fmt(target)} events were acknowledged`,
          notes, rows: [{ label: 'WAL replay', measure }],
          extra: {
            targetEvents: target, eventsAcked: acked, eventsAccepted: accepted, eventsAppliedBeforeKill: appliedBeforeKill,
            walBytes, loadSeconds, rssBeforeKillBytes: rssBeforeKill, recoveryLine: line, replayEventsPerSec: replayRate,
            listeningMs: again.listeningMs, portAnswersMs: again.answersMs, emptyStartPortAnswersMs: empty.answersMs,
            cpuNsUntilAnswer: again.cpuNsAtAnswer, rssAtAnswerBytes: rssAtAnswer, rssAfterRecoveryBytes: rssAfter,
            appliedAfterRecovery: h.applied,
          },
        };
      } finally {
        await again.server.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
};
