// uPlot helpers shared by the panels: a rolling time-series chart, a bar chart, and a chart that
// follows its container's width. uPlot is the global the vendor script defines (no bundler).

/* global uPlot */

export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];
const HEIGHT = 220;

function widthOf(el) {
  return Math.max(200, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 600));
}

// one listener for every chart: a resize re-fits each to its container
const charts = new Set();
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const { u, el } of charts) u.setSize({ width: widthOf(el), height: HEIGHT });
  }, 150);
});

/** A uPlot chart in el (replacing one that was there); data-strokes lists its series' colours. */
export function makeChart(el, opts, data) {
  const old = el.__chart;
  if (old) {
    charts.delete(old);
    old.u.destroy();
  }
  const u = new uPlot({ width: widthOf(el), height: HEIGHT, legend: { live: false }, ...opts }, data, el);
  const entry = { u, el };
  charts.add(entry);
  el.__chart = entry;
  // the series' colours, for whoever checks what is drawn (the browser test counts their pixels)
  el.dataset.strokes = opts.series.slice(1).map((sr) => sr.stroke).filter(Boolean).join(',');
  return u;
}

const pad = (n) => String(n).padStart(2, '0');

/**
 * Time-axis labels on one line: clock time, with the date once the axis spans more than a day
 * (uPlot's default adds a second line with the date that crowds small charts).
 */
export function timeAxis() {
  return {
    values: (u, splits) => {
      const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
      return splits.map((s) => {
        const d = new Date(s * 1000);
        const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
        if (span > 86_400) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
        return span > 1800 ? hm : `${hm}:${pad(d.getSeconds())}`;
      });
    },
  };
}

export function lineSeries(label, color, extra = {}) {
  return { label, stroke: color, width: 2, points: { show: false }, spanGaps: false, ...extra };
}

/**
 * A line chart of the last windowS seconds, fed one point at a time: push(t, values) appends
 * (t in epoch ms, one value per series, null for a gap) and drops points older than the window.
 */
export class RollingChart {
  constructor(el, series, { windowS = 300, yRange, yLabel } = {}) {
    this.windowS = windowS;
    this.data = [[], ...series.map(() => [])];
    const y = yRange ? { range: yRange } : { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] };
    this.u = makeChart(el, {
      series: [{}, ...series],
      // the whole window from the start, so the time axis does not rescale as points arrive
      scales: { x: { time: true, range: (_u, _min, max) => [(max ?? Date.now() / 1000) - windowS, max ?? Date.now() / 1000] }, y },
      axes: [timeAxis(), { label: yLabel, size: 60 }],
    }, this.data);
  }

  push(tMs, values) {
    const t = tMs / 1000;
    this.data[0].push(t);
    for (let i = 0; i < values.length; i++) this.data[i + 1].push(values[i]);
    const cutoff = t - this.windowS;
    let drop = 0;
    while (drop < this.data[0].length && this.data[0][drop] < cutoff) drop++;
    if (drop > 0) for (const col of this.data) col.splice(0, drop);
    this.u.setData(this.data);
  }
}

/** A bar chart over categories (labels): setValues(values) redraws it. */
export class BarChart {
  constructor(el, labels, { color = COLORS[0], label = 'count' } = {}) {
    this.labels = labels;
    const xs = labels.map((_l, i) => i);
    this.u = makeChart(el, {
      series: [{}, { label, stroke: color, fill: `${color}cc`, width: 1, paths: uPlot.paths.bars({ size: [0.8, 80] }), points: { show: false } }],
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 1) * 1.1)] } },
      axes: [
        { splits: () => xs, values: (_u, splits) => splits.map((i) => labels[i] ?? '') },
        { size: 60 },
      ],
      cursor: { drag: { x: false, y: false } },
    }, [xs, labels.map(() => 0)]);
  }

  setValues(values) {
    this.u.setData([this.labels.map((_l, i) => i), values]);
  }
}
