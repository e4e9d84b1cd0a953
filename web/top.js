// Top devices by p99 of cpuUsage over the last complete minute (GET /metrics/top/{n}, README
// "Seed APIs"), refreshed every few seconds. A device's name opens it in the device panel.

import { getJson } from './api.js';

const TOP_N = 10;
const REFRESH_MS = 5000;

const fmt = (x) => (Number.isFinite(x) ? String(Math.round(x * 100) / 100) : '–');

export function startTop(doc, onPick) {
  const body = doc.querySelector('#top-devices tbody');
  const empty = doc.getElementById('top-empty');
  const windowNote = doc.getElementById('top-window');
  let inFlight = false;

  const render = (rows) => {
    body.replaceChildren(...rows.map((r, i) => {
      const tr = doc.createElement('tr');
      const name = doc.createElement('button');
      name.type = 'button';
      name.textContent = r.deviceId;
      name.addEventListener('click', () => onPick(r.deviceId));
      const cells = [String(i + 1), name, fmt(r.p50), fmt(r.p90), fmt(r.p99), String(r.count)];
      for (const c of cells) {
        const td = doc.createElement('td');
        td.append(c);
        tr.append(td);
      }
      return tr;
    }));
    empty.hidden = rows.length > 0;
    windowNote.textContent = rows.length > 0
      ? `(${new Date(rows[0].windowStart).toLocaleTimeString()}–${new Date(rows[0].windowEnd).toLocaleTimeString()})` : '';
  };

  const refresh = async () => {
    if (inFlight) return; // a slow engine gets no pile of requests
    inFlight = true;
    const { body: rows, error } = await getJson(`/metrics/top/${TOP_N}`);
    inFlight = false;
    if (error) { empty.hidden = false; empty.textContent = `top devices: ${error}`; return; }
    empty.textContent = 'no complete minute of cpuUsage yet';
    render(Array.isArray(rows) ? rows : []);
  };
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return { stop() { clearInterval(timer); } };
}
