// dashboard.js - the dashboard view (/ui/dashboard): the latest metrics, the alerts and
// the promotions of the `dashboard` stream. With no cursor the server starts at the latest
// metric_update (CONTRACT "Resuming"), so the page shows the current figures at once.

import { el, pageHeader, openStream } from '/ui/common.js';

document.title = 'Dashboard · rtlog';
const hdr = pageHeader('Dashboard', 'dashboard');
const main = document.getElementById('main');
const metricsEl = el('section', 'metrics');
metricsEl.id = 'metrics';
const envEl = el('section', 'envs');
envEl.id = 'environments';
const alertsEl = el('section', 'alerts');
alertsEl.id = 'alerts';
const promosEl = el('section', 'promotions');
promosEl.id = 'promotions';
const updated = el('p', 'updated', 'no metrics yet');
updated.id = 'updated';
main.append(updated, metricsEl, envEl,
  el('div', 'columns', null,
    el('div', 'col', null, el('h2', null, 'Alerts'), alertsEl),
    el('div', 'col', null, el('h2', null, 'Promotions'), promosEl)));

const MAX_ALERTS = 200;
let promotions;

function card(label, value, extra) {
  const c = el('div', 'card', null, el('div', 'card-value', value), el('div', 'card-label', label));
  if (extra) c.appendChild(el('div', 'card-extra', extra));
  c.dataset.metric = label;
  return c;
}

function show(v) {
  if (v === null || v === undefined) return '–';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function onMetrics(ev) {
  const m = ev.metrics || {};
  const cards = [];
  const known = new Set(['pipelineStatus', 'systemHealth']);
  for (const [k, v] of Object.entries(m))
    if (!known.has(k) && (typeof v !== 'object' || v === null)) cards.push(card(k, show(v)));
  const h = m.systemHealth;
  if (h && typeof h === 'object') {
    if ('agentsOnline' in h || 'agentsTotal' in h)
      cards.push(card('agents online', show(h.agentsOnline) + ' / ' + show(h.agentsTotal)));
    for (const [k, v] of Object.entries(h))
      if (k !== 'agentsOnline' && k !== 'agentsTotal') cards.push(card(k, show(v)));
  }
  for (const [k, v] of Object.entries(m))
    if (!known.has(k) && v && typeof v === 'object') cards.push(card(k, show(v)));
  metricsEl.replaceChildren(...cards);
  const envs = Array.isArray(m.pipelineStatus) ? m.pipelineStatus : [];
  envEl.replaceChildren(...envs.map((e) => {
    const health = String(e && e.health || 'unknown');
    const d = el('div', 'env health-' + health.replace(/[^a-z]/gi, ''), null,
      el('span', 'env-name', e && (e.name || e.environmentId) || '?'), el('span', 'badge', health));
    return d;
  }));
  updated.textContent = 'metrics of ' + (ev.timestamp || 'seq ' + ev.seq);
}

function onAlert(ev) {
  const a = ev.alert || {};
  const sev = String(a.severity || 'info');
  const item = el('article', 'alert sev-' + sev.replace(/[^a-z]/gi, ''), null,
    el('span', 'badge', sev), el('span', 'alert-title', a.title || a.id || 'alert'),
    el('div', 'alert-msg', a.message || ''),
    el('div', 'alert-meta', [a.resourceType, a.resourceId, a.timestamp || ev.timestamp].filter(Boolean).join(' · ')));
  item.dataset.seq = String(ev.seq);
  alertsEl.prepend(item);
  while (alertsEl.childElementCount > MAX_ALERTS) alertsEl.lastElementChild.remove();
}

function onPromotion(ev) {
  const p = ev.promotion || {};
  const id = String(p.id);
  let row = promotions.get(id);
  if (!row) {
    row = el('article', 'promotion');
    row.dataset.id = id;
    promotions.set(id, row);
  }
  const st = String(p.status);
  row.replaceChildren(el('span', 'promo-name', p.releaseName || id),
    el('span', 'promo-env', p.targetEnvironment ? '→ ' + p.targetEnvironment : ''),
    el('span', 'badge st-' + st.replace(/[^a-z_]/gi, ''), st),
    el('span', 'promo-by', p.requestedBy ? 'by ' + p.requestedBy : ''));
  promosEl.prepend(row); // the latest change on top
}

function resetView() {
  promotions = new Map();
  metricsEl.replaceChildren();
  envEl.replaceChildren();
  alertsEl.replaceChildren();
  promosEl.replaceChildren();
  updated.textContent = 'no metrics yet';
}

resetView();
openStream('dashboard', hdr, {
  onStart: resetView,
  onEvent: (ev) => {
    if (ev.type === 'metric_update') onMetrics(ev);
    else if (ev.type === 'alert') onAlert(ev);
    else if (ev.type === 'promotion_update') onPromotion(ev);
  },
  onReset: resetView,
  onState: (state) => { document.body.dataset.conn = state; },
});
