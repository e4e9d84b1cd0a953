// The device panel: a prefix search over GET /v1/devices (at most SUGGESTIONS_MAX ids per
// request: the page never loads the whole device list, so it stays quick with 100k devices), a
// metric picker (the device's own metrics), a range picker, and a chart of the device's windows
// with min, p50, p90, p99 and max (GET /v1/devices/{id}/metrics/{metric}).

import { COLORS, lineSeries, makeChart, timeAxis } from './charts.js';
import { getJson } from './api.js';

const SUGGESTIONS_MAX = 20;
const TYPING_PAUSE_MS = 150;
const QUANTILES = ['0.5', '0.9', '0.99'];

export function startDeviceSearch(doc) {
  const input = doc.getElementById('device-q');
  const list = doc.getElementById('device-suggestions');
  const metricSel = doc.getElementById('device-metric');
  const rangeSel = doc.getElementById('device-range');
  const caption = doc.getElementById('device-caption');
  const chartEl = doc.getElementById('chart-device');
  let searchCtl = null;
  let chartCtl = null;
  let timer = null;
  let active = -1;
  let device = null;

  const closeList = () => {
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute('aria-expanded', 'false');
    active = -1;
  };

  const items = () => [...list.querySelectorAll('li[role="option"]')];
  const highlight = (i) => {
    const all = items();
    if (all.length === 0) return;
    active = (i + all.length) % all.length;
    all.forEach((li, k) => li.setAttribute('aria-selected', String(k === active)));
    all[active].scrollIntoView({ block: 'nearest' });
  };

  const renderList = (devices, truncated) => {
    list.replaceChildren(...devices.map((d) => {
      const li = doc.createElement('li');
      li.setAttribute('role', 'option');
      li.dataset.device = d.deviceId;
      const name = doc.createElement('span');
      name.textContent = d.deviceId;
      const metrics = doc.createElement('span');
      metrics.className = 'metrics';
      metrics.textContent = d.metrics.join(', ');
      li.append(name, metrics);
      // mousedown, not click: the input's blur would close the list before a click lands
      li.addEventListener('mousedown', (e) => { e.preventDefault(); pick(d); });
      return li;
    }));
    if (devices.length === 0 || truncated) {
      const li = doc.createElement('li');
      li.className = 'more';
      li.textContent = devices.length === 0 ? 'no device with this prefix' : 'more devices: type more of the id';
      list.append(li);
    }
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    active = -1;
  };

  const search = async (prefix) => {
    searchCtl?.abort(); // only the newest prefix's answer is shown
    searchCtl = new AbortController();
    const q = new URLSearchParams({ prefix, limit: String(SUGGESTIONS_MAX) });
    const r = await getJson(`/v1/devices?${q}`, searchCtl.signal);
    if (r.aborted) return;
    if (r.error) { caption.textContent = `device search: ${r.error}`; return; }
    renderList(r.body.devices, r.body.truncated);
  };

  // the metric picked before stays picked when the next device has it too
  const pick = (d, prefer = metricSel.value) => {
    closeList();
    input.value = d.deviceId;
    device = d;
    metricSel.replaceChildren(...d.metrics.map((m) => new Option(m, m)));
    if (d.metrics.includes(prefer)) metricSel.value = prefer;
    metricSel.disabled = d.metrics.length === 0;
    draw();
  };

  const draw = async () => {
    if (device === null || metricSel.value === '') return;
    chartCtl?.abort();
    chartCtl = new AbortController();
    const to = Date.now();
    const from = to - Number(rangeSel.value);
    const q = new URLSearchParams({ from: String(from), to: String(to), q: QUANTILES.join(',') });
    const path = `/v1/devices/${encodeURIComponent(device.deviceId)}/metrics/${encodeURIComponent(metricSel.value)}?${q}`;
    caption.textContent = 'loading…';
    const r = await getJson(path, chartCtl.signal);
    if (r.aborted) return;
    if (r.error) { caption.textContent = `${device.deviceId}: ${r.error}`; return; }
    const ws = r.body.windows;
    const xs = ws.map((w) => w.start / 1000);
    const col = (of) => ws.map(of);
    const data = [xs, col((w) => w.min), col((w) => w.quantiles['0.5']), col((w) => w.quantiles['0.9']), col((w) => w.quantiles['0.99']), col((w) => w.max)];
    const pts = { show: true, size: 5 };
    makeChart(chartEl, {
      series: [{}, lineSeries('min', COLORS[2], { points: pts }), lineSeries('p50', COLORS[0], { points: pts }),
        lineSeries('p90', COLORS[3], { points: pts }), lineSeries('p99', COLORS[1], { points: pts }), lineSeries('max', COLORS[4], { points: pts })],
      bands: [{ series: [5, 1], fill: 'rgba(37, 99, 235, 0.08)' }],
      scales: { x: { time: true, range: [from / 1000, to / 1000] } },
      axes: [timeAxis(), { size: 60 }],
      legend: { live: true },
    }, data);
    chartEl.dataset.points = String(ws.length);
    chartEl.dataset.device = device.deviceId;
    chartEl.dataset.metric = metricSel.value;
    caption.textContent = `${device.deviceId} · ${metricSel.value}: ${ws.length} windows of ${r.body.resolution}` +
      (ws.length === 0 ? ' (no data in this range)' : '');
  };

  input.addEventListener('input', () => {
    clearTimeout(timer);
    const prefix = input.value.trim();
    if (prefix === '') { searchCtl?.abort(); closeList(); return; }
    timer = setTimeout(() => search(prefix), TYPING_PAUSE_MS);
  });
  input.addEventListener('keydown', (e) => {
    if (list.hidden) return;
    if (e.key === 'ArrowDown') { e.preventDefault(); highlight(active + 1); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); highlight(active - 1); }
    else if (e.key === 'Escape') closeList();
    else if (e.key === 'Enter') {
      e.preventDefault();
      const li = items()[active < 0 ? 0 : active];
      if (li) li.dispatchEvent(new MouseEvent('mousedown', { cancelable: true }));
    }
  });
  input.addEventListener('blur', () => setTimeout(closeList, 100));
  doc.getElementById('device-form').addEventListener('submit', (e) => e.preventDefault());
  metricSel.addEventListener('change', draw);
  rangeSel.addEventListener('change', draw);

  /** Opens a device by id (from the top-devices table): its metrics come from the search route. */
  const open = async (deviceId) => {
    const r = await getJson(`/v1/devices?${new URLSearchParams({ prefix: deviceId, limit: String(SUGGESTIONS_MAX) })}`);
    const d = r.body?.devices.find((x) => x.deviceId === deviceId);
    if (d === undefined) { caption.textContent = `${deviceId}: not found`; return; }
    pick(d, 'cpuUsage');
  };
  return { open };
}
