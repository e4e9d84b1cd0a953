/**
 * checkpoint-bench: the shard pause and the bytes of ShardCheckpoints.take() (workers/checkpoint.ts)
 * for the series table's part of a checkpoint (the head is left empty: its chunks are measured by
 * head-slices-bench). Standalone, not part of `node bench`:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/checkpoint-bench.js [--series 1000000] [--batch 500000] [--steady 300]
 *     [--warmup 0] [--group-rows 65536]
 *
 * Load (the event-time scenario's shape: one metric, devices named dev-000000...): `--series`
 * series defined in batches of `--batch` new devices and series per take (the first cycles of a
 * 1M-device run), then `--steady` takes with few new series each (0 to 200, a device joining now
 * and then). Every take's groups go into an in-memory copy of the stored checkpoint (put the
 * groups, delete the ids no longer live, as storage/checkpoint-store.ts write does); at the end
 * the stored copy is decoded and restored into a fresh ShardState and compared with the live one,
 * then one full take (after a failed write) and its restore are timed. Figures: the pause (ms,
 * take() alone) and the bytes written per take, the live groups, the stored bytes.
 *
 * A fresh process is the cold case: on this VM the first touch of fresh memory costs ~6 ms per
 * MB (an 11 MB take spends most of its time there), a process whose allocator already holds
 * freed memory far less. `--warmup N` first runs N takes of `--batch` series on a throwaway
 * table (its groups dropped), so the measured takes run in a warm process, as a long-running
 * shard worker does. Under `node --expose-gc` a full GC runs before each take, then a 20 ms wait
 * for its concurrent sweeping (outside the timing): otherwise a major GC that the defines made due may finalize inside a take (one steady
 * take of 141 B measured 88 ms, all of it a Mark-Compact of the 1M-series heap).
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlockStore, RollupStore } from '../storage';
import { SERIES_GROUP_ROWS, ShardCheckpoints, decodeCheckpoint } from '../workers/checkpoint';
import { ShardState } from '../workers/shard-state';
import type { CheckpointGroup } from '../protocol';

interface Cli { series: number; batch: number; steady: number; warmup: number; groupRows: number }

function parseCli(argv: string[]): Cli {
  const cli: Cli = { series: 1_000_000, batch: 500_000, steady: 300, warmup: 0, groupRows: SERIES_GROUP_ROWS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = Number(argv[++i]);
    if (!(Number.isInteger(v) && v >= 0)) throw new Error(`${a} needs a whole number, got ${argv[i]}`);
    if (a === '--series') cli.series = v;
    else if (a === '--batch') cli.batch = Math.max(1, v);
    else if (a === '--steady') cli.steady = v;
    else if (a === '--warmup') cli.warmup = v;
    else if (a === '--group-rows') cli.groupRows = Math.max(1, v);
    else throw new Error(`unknown option ${a}`);
  }
  return cli;
}

function fmt(x: number, digits = 0): string {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

function deviceName(i: number): string {
  return `dev-${String(i).padStart(6, '0')}`;
}

function newState(dir: string): { state: ShardState; close: () => Promise<void> } {
  const blocks = BlockStore.open(dir);
  const rollups = RollupStore.open(dir);
  const state = new ShardState({
    shard: 0, paneMs: 10_000, latenessMs: 300_000, lateHorizonMs: 86_400_000, resolutions: [10_000, 60_000],
    histogram: { divisions: 10, min: 0, max: 100 }, lateLogSize: 100,
  }, blocks, rollups, (err) => { throw err; });
  return { state, close: async () => { await blocks.close(); await rollups.close(); } };
}

/** The stored checkpoint as storage/store.ts keeps it: the base and the live groups. */
class StoredCopy {
  base: Uint8Array = new Uint8Array(0);
  readonly groups = new Map<number, Uint8Array>();

  write(base: Uint8Array, groups: readonly CheckpointGroup[], live: readonly number[]): void {
    this.base = base;
    for (const g of groups) this.groups.set(g.paneNo, g.bytes);
    const keep = new Set(live);
    for (const id of [...this.groups.keys()]) if (!keep.has(id)) this.groups.delete(id);
  }

  bytes(): number {
    let n = this.base.byteLength;
    for (const b of this.groups.values()) n += b.byteLength;
    return n;
  }
}

interface Take { pauseMs: number; bytes: number; groups: number; live: number }

const gc = (globalThis as { gc?: () => void }).gc;

async function take(cp: ShardCheckpoints, state: ShardState, store: StoredCopy, seq: number, full: boolean): Promise<Take> {
  // with --expose-gc: a collection before each take, so that a major GC the defines made due
  // (~90 ms at 1M series here) does not land inside the take it happens to fall in; then a
  // pause for the concurrent sweeping it starts (a take right after it pays for sweeping)
  if (gc !== undefined) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const t0 = process.hrtime.bigint();
  const c = cp.take(state, seq, full);
  const pauseMs = Number(process.hrtime.bigint() - t0) / 1e6;
  let bytes = c.base.byteLength;
  for (const g of c.groups) bytes += g.bytes.byteLength;
  store.write(c.base, c.groups, c.live);
  return { pauseMs, bytes, groups: c.groups.length, live: c.live.length };
}

function row(label: string, t: Take, newSeries: number): void {
  const perSeries = newSeries > 0 ? `${fmt(t.bytes / newSeries, 1)} B/new series` : '';
  process.stdout.write(`${label.padEnd(34)} pause ${fmt(t.pauseMs, 2).padStart(9)} ms  written ${fmt(t.bytes).padStart(12)} B  ` +
    `groups ${String(t.groups).padStart(3)}  live ${String(t.live).padStart(4)}  ${perSeries}\n`);
}

/** takes of --batch new series on a throwaway shard state, their groups dropped: the allocator's memory warms up */
async function warmup(cli: Cli): Promise<void> {
  if (cli.warmup === 0) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ckpt-bench-'));
  const { state, close } = newState(dir);
  const cp = new ShardCheckpoints(0, cli.groupRows);
  state.series.defineMetric(0, 'cpu');
  for (let k = 0, d = 0; k < cli.warmup; k++) {
    for (let i = 0; i < cli.batch; i++, d++) {
      state.series.defineDevice(d, deviceName(d));
      state.series.seriesOf(d, 0);
    }
    const t0 = process.hrtime.bigint();
    cp.take(state, k, false);
    process.stdout.write(`warm-up take ${k + 1} (${fmt(cli.batch)} new series, throwaway): ${fmt(Number(process.hrtime.bigint() - t0) / 1e6, 2)} ms\n`);
  }
  await close();
  fs.rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ckpt-bench-'));
  const live = newState(dir);
  const state = live.state;
  const cp = new ShardCheckpoints(0, cli.groupRows);
  const store = new StoredCopy();
  await warmup(cli);
  state.series.defineMetric(0, 'cpu');
  let devices = 0;
  let seq = 0;
  const defineDevices = (n: number): void => {
    for (let i = 0; i < n; i++, devices++) {
      state.series.defineDevice(devices, deviceName(devices));
      state.series.seriesOf(devices, 0);
    }
  };
  process.stdout.write(`checkpoint-bench: ${fmt(cli.series)} series in batches of ${fmt(cli.batch)}, then ${cli.steady} steady takes, ` +
    `series groups of ${fmt(cli.groupRows)} rows${gc === undefined ? '' : ', gc before each take'} (node ${process.version})\n`);

  while (devices < cli.series) {
    const n = Math.min(cli.batch, cli.series - devices);
    defineDevices(n);
    row(`take with ${fmt(n)} new series`, await take(cp, state, store, ++seq, false), n);
  }

  // steady: few new series per take (a pseudo-random 0..200, most takes none)
  const steady: Take[] = [];
  let x = 12345;
  let added = 0;
  for (let i = 0; i < cli.steady; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const n = x % 4 === 0 ? x % 201 : 0;
    defineDevices(n);
    added += n;
    steady.push(await take(cp, state, store, ++seq, false));
  }
  if (steady.length > 0) {
    const pauses = steady.map((t) => t.pauseMs);
    const bytes = steady.map((t) => t.bytes);
    process.stdout.write(`steady: ${steady.length} takes, ${fmt(added)} new series in all\n`);
    process.stdout.write(`  pause ms: median ${fmt(quantile(pauses, 0.5), 3)}  p99 ${fmt(quantile(pauses, 0.99), 3)}  max ${fmt(Math.max(...pauses), 3)}\n`);
    process.stdout.write(`  written B: median ${fmt(quantile(bytes, 0.5))}  p99 ${fmt(quantile(bytes, 0.99))}  max ${fmt(Math.max(...bytes))}  ` +
      `total ${fmt(bytes.reduce((a, b) => a + b, 0))}\n`);
    process.stdout.write(`  live groups at the end ${steady[steady.length - 1]!.live}\n`);
    const worst = steady.map((t, i) => ({ ...t, i })).sort((a, b) => b.pauseMs - a.pauseMs).slice(0, 3);
    process.stdout.write(`  slowest: ${worst.map((t) => `#${t.i} ${fmt(t.pauseMs, 2)} ms ${fmt(t.bytes)} B`).join(', ')}\n`);
  }
  process.stdout.write(`stored: ${fmt(store.bytes())} B in ${store.groups.size} groups (${fmt(store.bytes() / state.series.seriesCount, 1)} B per series)\n`);

  const verify = async (label: string): Promise<void> => {
    const t0 = process.hrtime.bigint();
    const restored = decodeCheckpoint(store.base, [...store.groups].map(([paneNo, bytes]) => ({ paneNo, bytes })));
    const t1 = process.hrtime.bigint();
    const backDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-ckpt-bench-'));
    const back = newState(backDir);
    back.state.restore(restored);
    const t2 = process.hrtime.bigint();
    const a = state.series;
    const b = back.state.series;
    let same = a.seriesCount === b.seriesCount && a.deviceCount === b.deviceCount;
    for (let s = 0; same && s < a.seriesCount; s++) {
      same = a.seriesDevice(s) === b.seriesDevice(s) && a.seriesMetric(s) === b.seriesMetric(s) && a.deviceName(a.seriesDevice(s)) === b.deviceName(b.seriesDevice(s));
    }
    process.stdout.write(`${label}: decode ${fmt(Number(t1 - t0) / 1e6, 1)} ms, restore ${fmt(Number(t2 - t1) / 1e6, 1)} ms, ` +
      `${fmt(b.seriesCount)} series, ${same ? 'equal to the live table' : 'DIFFERENT from the live table'}\n`);
    await back.close();
    fs.rmSync(backDir, { recursive: true, force: true });
    if (!same) process.exitCode = 1;
  };
  await verify('restore after the incremental takes');

  row('full take (after a failed write)', await take(cp, state, store, ++seq, true), 0);
  await verify('restore after the full take');
  row('take after the full one', await take(cp, state, store, ++seq, false), 0);
  await live.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
