// The live panel: frames from WS /v1/ui/stream (one a second) into the figures and the rolling
// charts (ingest rate, ack latency, ring fill per shard, late and corrected events).

import { COLORS, RollingChart, lineSeries } from './charts.js';
import { reconnecting, showFigure } from './api.js';

const WINDOW_S = 300;

export function startLive(doc) {
  const el = (id) => doc.getElementById(id);
  const status = el('feed-status');
  const rate = new RollingChart(el('chart-rate'), [lineSeries('events/s', COLORS[0])], { windowS: WINDOW_S });
  const ack = new RollingChart(el('chart-ack'), [lineSeries('p50', COLORS[0]), lineSeries('p99', COLORS[1])], { windowS: WINDOW_S });
  const late = new RollingChart(el('chart-late'), [lineSeries('late/s', COLORS[1]), lineSeries('corrected/s', COLORS[4])], { windowS: WINDOW_S });
  let rings = null;
  let shardCount = -1;

  const ringChart = (n) => {
    const series = Array.from({ length: n }, (_x, i) => lineSeries(`shard ${i}`, COLORS[i % COLORS.length]));
    return new RollingChart(el('chart-rings'), series, { windowS: WINDOW_S, yRange: [0, 100] });
  };

  const onFrame = (f) => {
    if (f.type === 'hello') {
      // a restarted engine may have another shard count: the ring chart follows it
      if (f.shards !== shardCount) {
        shardCount = f.shards;
        rings = ringChart(shardCount);
      }
      return;
    }
    if (f.type === 'error') {
      status.dataset.state = 'down';
      status.textContent = f.error;
      return;
    }
    if (f.type !== 'live') return;
    if (status.dataset.state !== 'live') {
      status.dataset.state = 'live';
      status.textContent = 'live';
    }
    showFigure(el('ingest-rate'), f.ingest.perSecAvg);
    // the span the average covers, so that a reader (the browser test) can compare like with like
    el('ingest-rate').dataset.t = String(f.t);
    el('ingest-rate').dataset.windowMs = String(f.ingest.avgWindowMs);
    showFigure(el('ack-p50'), f.ack.p50Ms, 'ms');
    showFigure(el('ack-p99'), f.ack.p99Ms, 'ms');
    showFigure(el('events-applied'), f.shards.reduce((n, s) => n + s.applied, 0));
    showFigure(el('late-total'), f.late.total);
    showFigure(el('corrected-total'), f.corrected.total);
    rate.push(f.t, [f.ingest.perSec]);
    ack.push(f.t, [f.ack.p50Ms, f.ack.p99Ms]);
    late.push(f.t, [f.late.perSec, f.corrected.perSec]);
    if (rings === null || f.shards.length !== shardCount) {
      shardCount = f.shards.length;
      rings = ringChart(shardCount);
    }
    rings.push(f.t, f.shards.map((s) => s.fill * 100));
  };

  return reconnecting('/v1/ui/stream', {
    onMessage: onFrame,
    onState: (state) => {
      status.dataset.state = state;
      status.textContent = state === 'live' ? 'live' : 'disconnected: retrying…';
    },
  });
}
