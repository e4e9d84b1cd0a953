// JSON over HTTP from the engine that served the page (same origin), with a time limit. A
// failure is returned as { error } for the panel to show: never thrown at the page.

const TIMEOUT_MS = 10_000;

// --auth on: open the page as /ui?token=<a read token>; it is sent with every request (and kept
// for this tab only, so a reload without it still works)
const TOKEN = (() => {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) sessionStorage.setItem('sluice-token', fromUrl);
  return fromUrl || sessionStorage.getItem('sluice-token') || '';
})();

export async function getJson(path, signal) {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const headers = { accept: 'application/json' };
    if (TOKEN) headers.authorization = `Bearer ${TOKEN}`;
    const r = await fetch(path, { signal: combined, headers });
    const body = await r.json().catch(() => null);
    if (!r.ok) return { error: body?.error ?? `HTTP ${r.status}`, status: r.status };
    return { body };
  } catch (e) {
    if (signal?.aborted) return { aborted: true };
    return { error: e?.name === 'TimeoutError' ? 'no answer in 10 s' : String(e?.message ?? e) };
  }
}

/** ws:// or wss:// URL of a path on this origin. */
export function wsUrl(path) {
  const token = TOKEN ? `${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(TOKEN)}` : '';
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${path}${token}`;
}

/** A WebSocket that reconnects (1 s, doubling to 10 s) until stop(); onState('live'|'down'). */
export function reconnecting(path, { onMessage, onState }) {
  let ws = null;
  let delay = 1000;
  let stopped = false;
  let timer = null;
  const open = () => {
    ws = new WebSocket(wsUrl(path));
    ws.onopen = () => { delay = 1000; onState?.('live'); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      onMessage(msg);
    };
    ws.onclose = () => {
      onState?.('down');
      if (stopped) return;
      timer = setTimeout(open, delay);
      delay = Math.min(10_000, delay * 2);
    };
  };
  open();
  return { stop() { stopped = true; clearTimeout(timer); ws?.close(); } };
}

const numberFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
const msFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 2 });

/** Shows a figure: the text for people, data-value for scripts (and tests). */
export function showFigure(el, value, unit = '') {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    el.textContent = '–';
    el.dataset.value = '';
    return;
  }
  el.textContent = `${unit === 'ms' ? msFormat.format(value) : numberFormat.format(value)}${unit ? ` ${unit}` : ''}`;
  el.dataset.value = String(value);
}
