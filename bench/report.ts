/** The final table (text) and the JSON document of a run. */

import os from 'node:os';
import type { Measure } from './measure';
import { ratioOf, type ScenarioResult } from './scenario';
import { CPU_COUNT, PINNED, WRK } from './proc';

export interface BenchReport {
  version: 1;
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; cpuModel: string; node: string; pinned: boolean; wrk: string | null };
  options: Record<string, unknown>;
  scenarios: ScenarioResult[];
}

export function machine(): BenchReport['machine'] {
  return { cpus: CPU_COUNT, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, pinned: PINNED, wrk: WRK };
}

function num(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function row(name: string, target: string, m: Measure | null, ratio: string, vsNaive = ''): string[] {
  if (m === null) return [name, target, '', '', '', '', '', '', '', '', '', ratio, vsNaive, ''];
  return [
    name, target, num(m.eventsPerSec), num(m.mbPerSec, 1),
    num(m.latencyMs.p50, 2), num(m.latencyMs.p99, 2), num(m.latencyMs.p999, 2),
    num(m.serverCpuPercent), num(m.serverNsPerEvent), num(m.serverRssBytes / 2 ** 20),
    num(m.generatorCpuPercent), ratio, vsNaive, m.generatorSaturated ? 'GEN SATURATED' : '',
  ];
}

function percent(r: number | null | undefined): string {
  return r === null || r === undefined ? '' : `${(r * 100).toFixed(0)} %`;
}

const HEADER = ['scenario', 'target', 'events/s', 'MB/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'CPU %', 'ns/event', 'RSS MiB', 'gen CPU %', 'ratio', 'vs naive', 'flag'];
const NUMERIC = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

export function table(scenarios: ScenarioResult[]): string {
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const s of scenarios) {
    if (s.status !== 'ok') {
      rows.push([s.name, s.status, '', '', '', '', '', '', '', '', '', '', '', '']);
      if (s.reason) notes.push(`${s.name}: ${s.reason}`);
      continue;
    }
    if (s.rows && s.rows.length) {
      s.rows.forEach((r, i) => rows.push(row(i === 0 ? s.name : '', r.label, r.measure, r.ratio ?? '')));
    } else if (s.engine === null && s.ceiling === null) {
      rows.push([s.name, 'engine', '', '', '', '', '', '', '', '', '', '', '', 'see notes']);
    } else {
      const vsNaive = s.naiveRatio === null || s.naiveRatio === undefined ? '' : `${s.naiveRatio.toFixed(2)}x`;
      // --targets may leave any of the three out
      let first = s.name;
      if (s.engine) { rows.push(row(first, 'engine', s.engine, percent(s.ratio), vsNaive)); first = ''; }
      if (s.ceiling) { rows.push(row(first, 'ceiling', s.ceiling, '')); first = ''; }
      if (s.naive) rows.push(row(first, 'naive', s.naive, s.ceiling ? percent(ratioOf(s.naive, s.ceiling)) : ''));
    }
    for (const n of s.notes) notes.push(`${s.name}: ${n}`);
  }
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]): string => r.map((c, i) => (NUMERIC.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const lines = [fmt(HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
  lines.push('', 'events/s: applied by the engine\'s workers (read from /healthz), or received by the ceiling. CPU %, ns/event, RSS: the',
    'server process (all threads, /proc). ratio: engine (or naive) events/s over ceiling events/s; vs naive: engine events/s',
    'over the naive node:http + ws server\'s (bench/naive-server.ts). GEN SATURATED: the load generator used > 90 % of its',
    'core, so the rate is the generator\'s: compare ns/event instead.');
  if (!PINNED) lines.push('NOT PINNED: taskset missing or fewer than 2 CPUs; server and generator share cores.');
  if (notes.length) lines.push('', ...notes.map((n) => `- ${n}`));
  return lines.join('\n');
}
