/**
 * `node bench` (`npm run bench`): runs the scenarios, prints progress on stderr and the table at
 * the end, writes the JSON to bench/results/<ISO time>.json; `--json` prints the JSON on stdout
 * instead of the table. See bench/README.md.
 */

import fs from 'node:fs';
import path from 'node:path';
import type { BenchOptions, Target } from './measure';
import { machine, table, type BenchReport } from './report';
import type { Scenario, ScenarioResult } from './scenario';
import { pinSelf, LOAD_CPU, PINNED, WRK, ENGINE_EXTRA_ARGS } from './proc';
import { WRK_INSTALL_HINT } from './loadgen';
import { wsMsgpack } from './scenarios/ws-msgpack';
import { wsMsgpackMaps } from './scenarios/ws-msgpack-maps';
import { wsJson } from './scenarios/ws-json';
import { wsColumnar } from './scenarios/ws-columnar';
import { httpSingle } from './scenarios/http-single';
import { httpBatch } from './scenarios/http-batch';
import { queryUnderLoad } from './scenarios/query-under-load';
import { memory } from './scenarios/memory';
import { durableVsFast } from './scenarios/durable-vs-fast';
import { recovery } from './scenarios/recovery';
import { eventTime } from './scenarios/event-time';
import { lineProtocol } from './scenarios/line-protocol';

const SCENARIOS: Scenario[] = [wsMsgpack, wsMsgpackMaps, wsJson, wsColumnar, httpSingle, httpBatch, queryUnderLoad, memory, durableVsFast, recovery, eventTime, lineProtocol];

const RESULTS_DIR = path.join(__dirname, '..', '..', 'bench', 'results');

const HELP = `Usage: node bench [options]      (build first: npx tsc -p tsconfig.json)

Runs Sluice's benchmark scenarios, each against the engine and against a bare uWebSockets.js
ceiling in the same run, and prints a table. Progress goes to stderr.

Options:
  --only a,b        run only these scenarios (default: all)
  --duration S      measured seconds per target (default 10; --quick: 2)
  --warmup S        warm-up seconds per target (default 3; --quick: 1)
  --quick           a few-second smoke run (also smaller memory stages)
  --connections N   WebSocket connections (default 16)
  --window N        frames in flight per connection (default 4)
  --et-devices N    event-time: devices (default 100,000; --quick: 10,000)
  --et-minutes M    event-time: simulated minutes (default 30; --quick: 10)
  --et-limit S      event-time: seconds of load before it stops and reports a partial result
                    (default 1200; --quick: 180)
  --targets a,b     ingest scenarios: measure only these of engine, ceiling, naive (default: all
                    three; e.g. --targets engine for a quick before/after of one change)
  --engine-arg A    pass A to every engine started (repeat: --engine-arg --ring-size
                    --engine-arg 4MiB), e.g. to compare a setting's effect
  --json            print the JSON report on stdout instead of the table
  --no-save         do not write bench/results/<ISO time>.json
  --help            this text

Scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(17)} ${s.description}`).join('\n')}
`;

interface Cli {
  only: string[] | null; targets: Target[] | undefined; durationS: number | null; warmupS: number | null; quick: boolean; json: boolean; save: boolean; connections: number; window: number;
  eventTime: { devices?: number; minutes?: number; limitS?: number };
}

function parse(argv: string[]): Cli {
  const cli: Cli = { only: null, targets: undefined, durationS: null, warmupS: null, quick: false, json: false, save: true, connections: 16, window: 4, eventTime: {} };
  const positive = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${flag}: expected a positive number, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--help': case '-h': process.stdout.write(HELP); process.exit(0);
      // eslint-disable-next-line no-fallthrough
      case '--quick': cli.quick = true; break;
      case '--json': cli.json = true; break;
      case '--no-save': cli.save = false; break;
      case '--only': {
        const names = (argv[++i] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
        if (names.length === 0 || unknown.length) throw new Error(`--only: unknown scenario ${unknown.join(', ') || '(none given)'}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
        cli.only = names;
        break;
      }
      case '--targets': {
        const names = (argv[++i] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        const unknown = names.filter((n) => n !== 'engine' && n !== 'ceiling' && n !== 'naive');
        if (names.length === 0 || unknown.length) throw new Error(`--targets: expected some of engine, ceiling, naive, got ${unknown.join(', ') || '(none)'}`);
        cli.targets = names as Target[];
        break;
      }
      case '--duration': cli.durationS = positive(a, argv[++i]); break;
      case '--warmup': cli.warmupS = positive(a, argv[++i]); break;
      case '--connections': cli.connections = Math.floor(positive(a, argv[++i])); break;
      case '--window': cli.window = Math.floor(positive(a, argv[++i])); break;
      case '--et-devices': cli.eventTime.devices = Math.floor(positive(a, argv[++i])); break;
      case '--et-minutes': cli.eventTime.minutes = Math.floor(positive(a, argv[++i])); break;
      case '--et-limit': cli.eventTime.limitS = positive(a, argv[++i]); break;
      case '--engine-arg': {
        const v = argv[++i];
        if (v === undefined) throw new Error('--engine-arg: expected an engine option or its value');
        ENGINE_EXTRA_ARGS.push(v);
        break;
      }
      default: throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  return cli;
}

async function main(): Promise<void> {
  let cli: Cli;
  try {
    cli = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exit(2);
  }
  pinSelf(LOAD_CPU);
  const opts: BenchOptions = {
    durationS: cli.durationS ?? (cli.quick ? 2 : 10),
    warmupS: cli.warmupS ?? (cli.quick ? 1 : 3),
    quick: cli.quick,
    connections: cli.connections,
    window: cli.window,
    devices: 10_000,
    eventsPerFrame: 1000,
    eventTime: cli.eventTime,
    targets: cli.targets,
    progress: (line) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`),
  };
  const selected = cli.only ? SCENARIOS.filter((s) => cli.only!.includes(s.name)) : SCENARIOS;
  const startedAt = new Date().toISOString();
  opts.progress(PINNED ? `server pinned to CPU 0, load generators and bench to CPU ${LOAD_CPU}` : 'NOT PINNED: taskset missing or fewer than 2 CPUs');
  if (WRK === null) opts.progress(WRK_INSTALL_HINT);
  if (ENGINE_EXTRA_ARGS.length > 0) opts.progress(`every engine started with ${ENGINE_EXTRA_ARGS.join(' ')}`);
  const results: ScenarioResult[] = [];
  for (let i = 0; i < selected.length; i++) {
    const s = selected[i];
    opts.progress(`${s.name}: start (${i + 1}/${selected.length})`);
    try {
      results.push(await s.run(opts, i));
    } catch (e) {
      opts.progress(`${s.name}: FAILED: ${(e as Error).stack ?? e}`);
      results.push({ name: s.name, status: 'failed', description: s.description, reason: (e as Error).message, engine: null, ceiling: null, ratio: null, generator: '', notes: [] });
    }
  }
  const report: BenchReport = {
    version: 1, startedAt, finishedAt: new Date().toISOString(), machine: machine(),
    options: { durationS: opts.durationS, warmupS: opts.warmupS, quick: opts.quick, connections: opts.connections, window: opts.window, devices: opts.devices, eventsPerFrame: opts.eventsPerFrame, only: cli.only, eventTime: cli.eventTime },
    scenarios: results,
  };
  const json = JSON.stringify(report, null, 2);
  if (cli.save) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `${startedAt.replace(/:/g, '-')}.json`);
    fs.writeFileSync(file, `${json}\n`);
    opts.progress(`wrote ${path.relative(process.cwd(), file)}`);
  }
  if (cli.json) process.stdout.write(`${json}\n`);
  else process.stdout.write(`\n${table(results)}\n`);
  process.exitCode = results.some((r) => r.status === 'failed') ? 1 : 0;
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
