/**
 * durable-vs-fast: the same loads against the engine started with `--ack durable` (the default:
 * a frame or request is answered after its batch's WAL commit in LMDB is on disk; concurrent
 * batches share one commit) and with `--ack fast` (answered once validated and queued; the WAL is
 * written a moment later). Loads: ws-msgpack (the headline) and http-batch (wrk, 1,000-event JSON
 * arrays). Each engine runs on its own fresh temp data dir. No ceiling: the comparison is durable
 * against fast, ratio = durable events/s / fast events/s (on the durable rows), and the ack
 * latencies side by side. The order alternates per load so neither mode always runs warmer.
 */

import { healthNotes, measureHttp, measureWs, withServer, type LabelledRow, type Scenario, type ScenarioResult } from '../scenario';
import type { Measure } from '../measure';
import { PINNED, WRK } from '../proc';
import { WRK_INSTALL_HINT } from '../loadgen';
import { HTTP_BATCH_EVENTS, httpBatchLoad } from './http-batch';

const NAME = 'durable-vs-fast';
type Mode = 'durable' | 'fast';

function pct(r: number): string {
  return `${(r * 100).toFixed(0)} %`;
}

export const durableVsFast: Scenario = {
  name: NAME,
  description: 'ws-msgpack and http-batch loads against the engine with --ack durable (ack after the fsynced WAL commit) and --ack fast (ack on enqueue), each on its own data dir',
  async run(opts, index): Promise<ScenarioResult> {
    const warnings: string[] = [];
    const modes: Mode[] = index % 2 === 0 ? ['durable', 'fast'] : ['fast', 'durable'];
    const ws = {} as Record<Mode, Measure>;
    for (const mode of modes) {
      ws[mode] = await withServer('engine', (server) => measureWs(server, 'engine', 'msgpack', opts, `${NAME} ws-msgpack ${mode}`),
        { extraArgs: ['--ack', mode] }, warnings, `ws-msgpack ${mode}`);
    }
    const http = {} as Record<Mode, Measure>;
    if (WRK === null) opts.progress(WRK_INSTALL_HINT);
    for (const mode of [...modes].reverse()) {
      http[mode] = await withServer('engine', (server) => measureHttp(server, 'engine', httpBatchLoad(), HTTP_BATCH_EVENTS, opts, `${NAME} http-batch ${mode}`),
        { extraArgs: ['--ack', mode] }, warnings, `http-batch ${mode}`);
    }
    const ratio = (a: Measure, b: Measure): number | null => (b.eventsPerSec > 0 ? a.eventsPerSec / b.eventsPerSec : null);
    const wsRatio = ratio(ws.durable, ws.fast);
    const httpRatio = ratio(http.durable, http.fast);
    const rows: LabelledRow[] = [
      { label: 'ws durable', measure: ws.durable, ratio: wsRatio === null ? '' : pct(wsRatio) },
      { label: 'ws fast', measure: ws.fast },
      { label: 'http-batch durable', measure: http.durable, ratio: httpRatio === null ? '' : pct(httpRatio) },
      { label: 'http-batch fast', measure: http.fast },
    ];
    const notes: string[] = [];
    if (!PINNED) notes.push('not pinned: taskset missing or fewer than 2 CPUs');
    if (WRK === null) notes.push(WRK_INSTALL_HINT);
    const lat = (d: Measure, f: Measure): string =>
      `p50 ${(d.latencyMs.p50 / f.latencyMs.p50).toFixed(2)}x, p99 ${(d.latencyMs.p99 / f.latencyMs.p99).toFixed(2)}x, p99.9 ${(d.latencyMs.p999 / f.latencyMs.p999).toFixed(2)}x`;
    notes.push(`ratio column = durable events/s / fast events/s; ack latency durable/fast: ws ${lat(ws.durable, ws.fast)}; http-batch ${lat(http.durable, http.fast)}`);
    for (const [label, m] of [['ws durable', ws.durable], ['ws fast', ws.fast], ['http-batch durable', http.durable], ['http-batch fast', http.fast]] as [string, Measure][]) {
      const h = m.engineHealth;
      if (h && h.walAppends > 0) {
        const batches = h.walBatches > 0 ? ` holding ${h.walBatches.toLocaleString('en-US')} batches` : '';
        notes.push(`${label}: ${h.walAppends.toLocaleString('en-US')} WAL appends (commit groups${batches}; ${Math.round(m.events / h.walAppends).toLocaleString('en-US')} events each), ${m.refused.toLocaleString('en-US')} frames/requests refused`);
      }
      notes.push(...healthNotes(label, m));
      if (m.generatorSaturated) notes.push(`${label}: the generator saturated its core (${m.generatorCpuPercent.toFixed(0)} %)`);
    }
    notes.push(...warnings);
    return {
      name: NAME, status: 'ok', description: this.description, engine: ws.durable, ceiling: null, ratio: wsRatio,
      generator: `raw WebSocket generator, ${opts.connections} connections x ${opts.window} frames in flight; ${WRK !== null ? 'wrk, 1 thread' : 'Node HTTP generator'}, 16 keep-alive connections`,
      notes, rows,
      extra: { wsMsgpack: { durable: ws.durable, fast: ws.fast, ratio: wsRatio }, httpBatch: { durable: http.durable, fast: http.fast, ratio: httpRatio } },
    };
  },
};
