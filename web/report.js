// The latest periodic report (README "Periodic reports"): its histogram over the report's
// divisions as bars, and its count. The newest reports come from GET /v1/reports at load, then
// every new one from WS /v1/reports/stream.

import { BarChart, COLORS } from './charts.js';
import { getJson, reconnecting } from './api.js';

const HISTORY = 20;

function divisionLabels(h) {
  const n = h.divisions.length;
  const step = (h.max - h.min) / n;
  const fmt = (x) => String(Math.round(x * 100) / 100);
  return h.divisions.map((_d, i) => `${fmt(h.min + i * step)}–${fmt(h.min + (i + 1) * step)}`);
}

export function startReport(doc) {
  const select = doc.getElementById('report-metric');
  const summary = doc.getElementById('report-summary');
  const chartEl = doc.getElementById('chart-report');
  /** newest report per metric */
  const latest = new Map();
  let chart = null;
  let chartKey = '';

  const show = () => {
    const r = latest.get(select.value);
    if (r === undefined) return;
    const h = r.histogram;
    const key = `${h.min}:${h.max}:${h.divisions.length}`;
    if (chart === null || key !== chartKey) {
      chart = new BarChart(chartEl, divisionLabels(h), { color: COLORS[0], label: 'events' });
      chartKey = key;
    }
    chart.setValues(h.divisions);
    chartEl.dataset.count = String(r.count);
    chartEl.dataset.periodEnd = String(r.periodEnd);
    const end = new Date(r.periodEnd).toLocaleTimeString();
    summary.textContent = `${r.count.toLocaleString('en')} events from ${r.devices.toLocaleString('en')} devices, period ending ${end}` +
      (h.under || h.over ? ` (below ${h.min}: ${h.under}, above ${h.max}: ${h.over})` : '') + (r.error ? ` (${r.error})` : '');
  };

  const add = (r) => {
    if (!r || typeof r.metric !== 'string' || !r.histogram) return;
    const had = latest.get(r.metric);
    if (had !== undefined && had.periodEnd > r.periodEnd) return;
    latest.set(r.metric, r);
    if (![...select.options].some((o) => o.value === r.metric)) {
      select.add(new Option(r.metric, r.metric));
    }
    if (select.value === r.metric) show();
  };

  select.addEventListener('change', show);
  getJson(`/v1/reports?limit=${HISTORY}`).then(({ body, error }) => {
    if (error) { summary.textContent = `reports: ${error}`; return; }
    for (const r of [...body.reports].reverse()) add(r);
  });
  return reconnecting('/v1/reports/stream', { onMessage: add });
}
