// common.js - what every rtlog page shares: the token, the header, the connection
// indicator, the follow-the-tail toggle and small formatting helpers.
//
// The token: a person pastes it once into the header's form; it is kept in this tab's
// sessionStorage (gone when the tab closes, never sent anywhere but the API's
// Authorization header / WS auth message, never put in a page URL that could be shared,
// bookmarked or logged). `rtlog token --subscribe '*'` prints one. Pages hold no data and
// need no token; only the API calls do.

import { RtlogStream } from '/ui/rtlog-client.js';

export const TOKEN_KEY = 'rtlog.token';

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives only in this page */ }
}

/** document.createElement with a class, text (textContent) and children. */
export function el(tag, cls, text, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const c of children) if (c) e.appendChild(c);
  return e;
}

/** "1.5 s", "2 min 05 s", "1 h 02 min". */
export function fmtDuration(seconds) {
  if (typeof seconds !== 'number' || !isFinite(seconds) || seconds < 0) return '';
  if (seconds < 60) return (Math.round(seconds * 10) / 10) + ' s';
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  if (m < 60) return m + ' min ' + String(s).padStart(2, '0') + ' s';
  return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
}

/** Seconds between two RFC 3339 timestamps, or undefined. */
export function secondsBetween(a, b) {
  const x = Date.parse(a), y = Date.parse(b);
  return isFinite(x) && isFinite(y) && y >= x ? (y - x) / 1000 : undefined;
}

/** The last path segment of the page URL, decoded (the run or job id). */
export function idFromPath() {
  const parts = location.pathname.split('/').filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] || '');
}

/** ?idleTimeout=MS of the page URL: the client's idleTimeoutMs (for servers run with a
 *  short --heartbeat, as the tests do); undefined = the client's default. */
export function idleTimeoutFromQuery() {
  const v = Number(new URLSearchParams(location.search).get('idleTimeout'));
  return Number.isInteger(v) && v >= 100 ? v : undefined;
}

/** ?transport=sse|ws|eventsource of the page URL (default sse). */
export function transportFromQuery() {
  const t = new URLSearchParams(location.search).get('transport');
  return ['sse', 'ws', 'eventsource'].includes(t) ? t : 'sse';
}

const STATE_TEXT = {
  connecting: 'Connecting',
  'catching-up': 'Catching up',
  live: 'Live',
  reconnecting: 'Reconnecting',
  reset: 'Reset',
  ended: 'Complete',
  error: 'Error',
  stopped: 'Stopped',
  'no-token': 'No token',
};

/**
 * The header of every page: title, connection indicator and the token form.
 * Returns {indicator(state, info), onToken(fn)}.
 */
export function pageHeader(title, subtitle, { indicator: withIndicator = true } = {}) {
  const header = document.getElementById('top');
  const h1 = el('h1', null, null, el('a', 'home', 'rtlog'), el('span', 'title', title));
  h1.firstChild.href = '/ui/';
  const sub = el('span', 'subtitle', subtitle || '');
  const dot = el('span', 'dot');
  const label = el('span', 'label', 'Connecting');
  const detail = el('span', 'detail', '');
  const ind = el('div', 'indicator state-connecting', null, dot, label, detail);
  ind.id = 'conn';
  ind.setAttribute('role', 'status');
  ind.setAttribute('aria-live', 'polite');

  const form = el('form', 'token-form');
  form.id = 'token-form';
  const input = el('input');
  input.type = 'password';
  input.name = 'token';
  input.id = 'token-input';
  input.autocomplete = 'off';
  input.placeholder = 'paste a token (rtlog token --subscribe ...)';
  const save = el('button', null, 'Use token');
  save.type = 'submit';
  const forget = el('button', 'secondary', 'Forget');
  forget.type = 'button';
  forget.id = 'token-forget';
  const tokState = el('span', 'token-state', '');
  form.append(input, save, forget, tokState);

  ind.hidden = !withIndicator;
  header.append(h1, sub, ind, form);
  const listeners = [];
  const showTok = () => {
    const has = Boolean(getToken());
    tokState.textContent = has ? 'token set for this tab' : 'no token';
    form.classList.toggle('has-token', has);
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = input.value.trim();
    input.value = '';
    if (!t) return;
    setToken(t);
    showTok();
    for (const f of listeners) f(t);
  });
  forget.addEventListener('click', () => { setToken(''); showTok(); for (const f of listeners) f(''); });
  showTok();

  let countdown = null;
  const indicator = (state, info = {}) => {
    ind.className = 'indicator state-' + state;
    ind.dataset.state = state;
    label.textContent = STATE_TEXT[state] || state;
    clearInterval(countdown);
    countdown = null;
    let d = '';
    if (state === 'reconnecting' && info.at) {
      const tick = () => {
        const left = Math.max(0, Math.ceil((info.at - Date.now()) / 1000));
        detail.textContent = 'retry ' + info.attempt + ' in ' + left + ' s' + (info.why ? ' (' + info.why + ')' : '');
      };
      tick();
      countdown = setInterval(tick, 500);
      return;
    }
    if (state === 'reconnecting') d = info.native ? 'browser reconnecting' : 'connecting…';
    else if (state === 'reset') d = 'history reset: rebuilding from seq ' + info.earliestSeq;
    else if (state === 'error') d = (info.code ? info.code + ': ' : '') + (info.message || '');
    else if (state === 'no-token') d = 'paste a token to load data';
    detail.textContent = d;
  };
  return { indicator, onToken: (f) => listeners.push(f), header };
}

/**
 * Follow-the-tail: while on, new content scrolls the page to the bottom (once per frame).
 * A person scrolling up (wheel, touch, keys) turns it off; the checkbox turns it back on.
 * Scroll events are not used for that: content growing or the browser's scroll anchoring
 * fire them too, and would switch follow off without anyone touching the page.
 */
export function followToggle(container) {
  const box = el('input');
  box.type = 'checkbox';
  box.id = 'follow';
  box.checked = true;
  const label = el('label', 'follow', null, box, el('span', null, ' Follow the tail'));
  container.appendChild(label);
  let pending = false;
  const toBottom = () => {
    pending = false;
    if (box.checked) window.scrollTo(0, document.documentElement.scrollHeight);
  };
  const off = () => { box.checked = false; };
  window.addEventListener('wheel', (e) => { if (e.deltaY < 0) off(); }, { passive: true });
  window.addEventListener('touchmove', off, { passive: true });
  window.addEventListener('keydown', (e) => {
    if (['ArrowUp', 'PageUp', 'Home'].includes(e.key) && e.target === document.body) off();
  });
  box.addEventListener('change', () => { if (box.checked) toBottom(); });
  return {
    get on() { return box.checked; },
    changed() {
      if (box.checked && !pending) { pending = true; requestAnimationFrame(toBottom); }
    },
  };
}

/**
 * Open @stream with the page's transport and the stored token, wire the indicator, and
 * restart when a new token is pasted. Returns a handle whose .client is the RtlogStream
 * (tests read its stats through window.rtlogPage).
 */
export function openStream(stream, hdr, handlers) {
  const page = { client: null };
  const start = () => {
    // A new token (say, after the old one expired) continues after the last event shown;
    // only a first start (re)builds the view from the beginning.
    const prev = page.client;
    const after = prev && prev.stats.events > 0 ? prev.lastSeq : undefined;
    if (prev) prev.stop();
    page.client = null;
    if (!getToken()) { hdr.indicator('no-token'); return; }
    if (after === undefined) handlers.onStart?.();
    page.client = new RtlogStream({
      stream,
      after,
      token: getToken,
      transport: transportFromQuery(),
      idleTimeoutMs: idleTimeoutFromQuery(),
      onEvent: handlers.onEvent,
      onReset: handlers.onReset,
      onState: (s, info) => { hdr.indicator(s, info); handlers.onState?.(s, info); },
    });
    page.client.start();
  };
  hdr.onToken(start);
  start();
  window.rtlogPage = page;
  return page;
}

/**
 * Apply events in batches, once per frame: a catch-up or a fast run delivers thousands of
 * events (over WebSocket, each its own task), and drawing each one, then laying out the page
 * and scrolling, per event would make the page fall behind. @apply(ev) updates the view,
 * @after() runs once per batch. A timer backs up requestAnimationFrame, which hidden tabs do
 * not run. flush() applies what is queued now (before the view is read: end, reset).
 */
export function frameBatcher(apply, after) {
  let queue = [];
  let raf = 0, timer = 0;
  const flush = () => {
    if (raf) cancelAnimationFrame(raf);
    if (timer) clearTimeout(timer);
    raf = timer = 0;
    const batch = queue;
    queue = [];
    for (const ev of batch) apply(ev);
    if (batch.length) after();
  };
  return {
    push(ev) {
      queue.push(ev);
      if (!raf) raf = requestAnimationFrame(flush);
      if (!timer) timer = setTimeout(flush, 100);
    },
    flush,
    clear() { queue = []; },
  };
}

/** GET an API path with the stored token; resolves to the parsed JSON or throws. */
export async function apiGet(path) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + getToken() }, cache: 'no-store' });
  let body;
  try { body = await r.json(); } catch { body = undefined; }
  if (!r.ok) throw new Error((body && body.message) || 'HTTP ' + r.status);
  return body;
}
