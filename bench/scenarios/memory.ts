/**
 * memory: engine RSS per active (device, metric) series. One engine is filled in stages (10k,
 * 100k, 1M distinct devices, one cpu reading each: one series and one open pane per device) over
 * unpinned msgpack frames of 1,000 events; after each stage, once the workers applied every
 * event, RSS is read from /proc. Per series = (RSS - RSS before the first event) / series.
 * No ceiling: the target is absolute (<= 1 KiB per series).
 */

import { startWsGen } from '../loadgen';
import { engineApplied, rssBytes, rssParts, sleep, startEngine } from '../proc';
import type { Scenario, ScenarioResult } from '../scenario';

const NAME = 'memory';
const FILL_EVENTS_PER_FRAME = 1000;

export interface MemoryStage { series: number; rssBytes: number; bytesPerSeries: number; fillSeconds: number; anonBytes: number; fileBytes: number; anonBytesPerSeries: number }

export const memory: Scenario = {
  name: NAME,
  description: 'engine RSS per active (device, metric) series at 10k, 100k and 1M series (--quick: 10k, 50k)',
  async run(opts): Promise<ScenarioResult> {
    const targets = opts.quick ? [10_000, 50_000] : [10_000, 100_000, 1_000_000];
    const engine = await startEngine();
    try {
      await sleep(1000);
      const baseline = rssBytes(engine.pid);
      const baseParts = rssParts(engine.pid);
      const gen = await startWsGen({
        host: '127.0.0.1', port: engine.port, path: '/v1/stream', kind: 'msgpack', connections: 4, window: 4,
        devices: 0, eventsPerFrame: FILL_EVENTS_PER_FRAME, eventsPerSec: 0, load: false,
      });
      const stages: MemoryStage[] = [];
      try {
        let filled = 0;
        for (const target of targets) {
          opts.progress(`${NAME}: filling to ${target.toLocaleString('en-US')} series`);
          const t0 = performance.now();
          const done = gen.waitFor('filled', 600_000);
          gen.send({ cmd: 'fill', first: filled, count: target - filled, eventsPerFrame: FILL_EVENTS_PER_FRAME });
          await done;
          filled = target;
          for (let i = 0; i < 600; i++) {
            if ((await engineApplied(engine.port)).applied >= target) break;
            await sleep(100);
          }
          const fillSeconds = (performance.now() - t0) / 1000;
          await sleep(1000);
          const rss = rssBytes(engine.pid);
          const parts = rssParts(engine.pid);
          stages.push({ series: target, rssBytes: rss, bytesPerSeries: (rss - baseline) / target, fillSeconds,
            anonBytes: parts.anonBytes, fileBytes: parts.fileBytes, anonBytesPerSeries: (parts.anonBytes - baseParts.anonBytes) / target });
          opts.progress(`${NAME}: ${target.toLocaleString('en-US')} series, RSS ${(rss / 2 ** 20).toFixed(0)} MiB, ${((rss - baseline) / target).toFixed(0)} B/series (anonymous ${((parts.anonBytes - baseParts.anonBytes) / target).toFixed(0)} B/series, file-backed ${(parts.fileBytes / 2 ** 20).toFixed(0)} MiB)`);
        }
      } finally {
        await gen.stop();
      }
      const health = await engineApplied(engine.port);
      const series = health.health.shards.reduce((a, s) => a + (s.series ?? 0), 0);
      const notes = stages.map((s) => `${s.series.toLocaleString('en-US')} series: ${(s.rssBytes / 2 ** 20).toFixed(0)} MiB RSS, ${s.bytesPerSeries.toFixed(0)} B/series (anonymous memory ${s.anonBytesPerSeries.toFixed(0)} B/series; file-backed RSS, LMDB's map included, ${(s.fileBytes / 2 ** 20).toFixed(0)} MiB)`);
      if (series !== targets[targets.length - 1]) notes.push(`the engine reports ${series} series, expected ${targets[targets.length - 1]}`);
      return {
        name: NAME, status: 'ok', description: this.description, engine: null, ceiling: null, ratio: null,
        generator: 'raw WebSocket generator, unpinned msgpack frames of 1,000 distinct devices',
        notes, extra: { baselineRssBytes: baseline, baselineRssParts: baseParts, stages, engineSeries: series },
      };
    } finally {
      await engine.stop();
    }
  },
};
