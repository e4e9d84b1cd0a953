/**
 * Summarises `node --cpu-prof` profiles: self time per function, top N, as a share of the
 * profile's wall time, with (idle), (garbage collector) and (program) kept as their own rows.
 *
 *   SLUICE_BENCH_ENGINE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench --only ws-msgpack
 *   node dist/bench/profile-summary.js /tmp/prof/*.cpuprofile [--top 20]
 *
 * Node writes one file per thread (CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile): thread 0
 * is the engine's front-end, the others its shard workers (and piscina's helpers, if any). The
 * engine's profiles are written at its SIGTERM, so they cover warm-up and start-up too.
 */

import fs from 'node:fs';
import path from 'node:path';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface Row { name: string; where: string; selfUs: number; percent: number }

function where(cf: CallFrame): string {
  if (!cf.url) return '';
  const u = cf.url.replace(/^file:\/\//, '');
  const i = u.indexOf('node_modules/');
  const short = i >= 0 ? u.slice(i + 'node_modules/'.length) : u.includes('/dist/') ? u.slice(u.indexOf('/dist/') + 6) : path.basename(u);
  return `${short}:${cf.lineNumber + 1}`;
}

export function summarise(p: Profile): { totalUs: number; rows: Row[] } {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
  }
  const agg = new Map<string, Row>();
  let totalUs = 0;
  for (const [id, us] of self) {
    totalUs += us;
    const cf = byId.get(id)!.callFrame;
    const name = cf.functionName || '(anonymous)';
    const w = where(cf);
    const key = `${name}@${w}`;
    const r = agg.get(key) ?? { name, where: w, selfUs: 0, percent: 0 };
    r.selfUs += us;
    agg.set(key, r);
  }
  const rows = [...agg.values()].sort((a, b) => b.selfUs - a.selfUs);
  for (const r of rows) r.percent = totalUs > 0 ? (r.selfUs / totalUs) * 100 : 0;
  return { totalUs, rows };
}

function main(): void {
  const args = process.argv.slice(2);
  let top = 20;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    else files.push(args[i]);
  }
  if (files.length === 0) {
    process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile... [--top N]\n');
    process.exit(2);
  }
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(f, 'utf8')) as Profile;
    const { totalUs, rows } = summarise(p);
    const thread = /\.(\d+)\.(\d+)\.(\d+)\.cpuprofile$/.exec(path.basename(f))?.[2] ?? '?';
    const busy = rows.filter((r) => r.name !== '(idle)').reduce((a, r) => a + r.percent, 0);
    process.stdout.write(`\n${path.basename(f)}  thread ${thread}  ${(totalUs / 1e6).toFixed(1)} s sampled, ${busy.toFixed(0)} % not idle\n`);
    for (const r of rows.slice(0, top)) {
      process.stdout.write(`  ${r.percent.toFixed(1).padStart(5)} %  ${r.name.padEnd(34)} ${r.where}\n`);
    }
  }
}

if (require.main === module) main();
