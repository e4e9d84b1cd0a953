/**
 * seal-bench: sealing one slice of N series (6 readings each) in steps, as the shard worker does
 * (workers/sealer.ts), against a real LMDB in a temp dir. Standalone, not part of `node bench`:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/seal-bench.js [--series 1000000]
 *
 * Prints, per seal: the sort, the longest chunk, the summary, the longest step between yields
 * (what a query or /healthz may wait behind) and the wall time from the start to the drop.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlockStore, RollupStore } from '../storage';
import { ShardState } from '../workers/shard-state';

const MIN = 60_000;
const T0 = 1_764_590_400_000;
const arg = process.argv.indexOf('--series');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 1_000_000;

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-seal-bench-'));
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  const state = new ShardState({
    shard: 0, paneMs: 10_000, latenessMs: 300_000, lateHorizonMs: 86_400_000, resolutions: [10_000, MIN, 3_600_000, 86_400_000],
    histogram: { divisions: 20, min: 0, max: 100 }, lateLogSize: 1000,
  }, blocks, rollups, (e) => { throw e; });
  for (let d = 0; d < N; d++) state.series.defineDevice(d, `dev-${d}`);
  state.series.defineMetric(0, 'cpu');
  let seq = 0;
  // a yield counter: how long the event loop waits between turns while seals run
  let turns = 0;
  let worstGap = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    if (now - last > worstGap) worstGap = now - last;
    last = now;
    turns++;
  }, 1);
  for (let slice = 0; slice < 4; slice++) {
    for (let step = 0; step < 6; step++) {
      const t = T0 + slice * MIN + step * 10_000;
      for (let s = 0; s < N; s++) state.apply(state.series.seriesOf(s, 0), t + ((s * 7919) % 10_000), Math.round(s % 1000) / 10);
      state.afterRecord(++seq);
      await new Promise((r) => setImmediate(r));
    }
    const c = state.sealer.counters;
    if (slice > 0) {
      await state.pending;
      process.stdout.write(`slice ${slice - 1}: ${N.toLocaleString('en-US')} series, series ids ${c.lastIdsMs.toFixed(1)} ms, longest chunk ${c.lastChunkMaxMs.toFixed(1)} ms, ` +
        `summary ${c.lastSummaryMs.toFixed(1)} ms, longest step ${c.lastStepMaxMs.toFixed(1)} ms, busy ${c.lastBusyMs.toFixed(0)} ms, start to drop ${c.lastSealMs.toFixed(0)} ms; worst event-loop gap so far ${worstGap.toFixed(1)} ms\n`);
      worstGap = 0;
    }
  }
  clearInterval(tick);
  await blocks.close();
  await rollups.close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${turns} timer turns\n`);
}

void main();
