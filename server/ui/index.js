// index.js - the start page (/ui/): recent runs and jobs (GET /api/v1/streams, newest
// first, only those the token may subscribe to), a link to the dashboard, and a box to
// open a run or job by id.

import { el, pageHeader, getToken, apiGet } from '/ui/common.js';

document.title = 'rtlog';
const hdr = pageHeader('Streams', '', { indicator: false });
const main = document.getElementById('main');

const open = el('form', 'open-form');
const kind = el('select');
for (const [v, t] of [['runs', 'run'], ['jobs', 'job']]) {
  const o = el('option', null, t);
  o.value = v;
  kind.appendChild(o);
}
const id = el('input');
id.placeholder = 'id';
id.pattern = '[A-Za-z0-9._:\\-]{1,128}';
id.required = true;
const go = el('button', null, 'Open');
go.type = 'submit';
open.append(el('span', null, 'Open a '), kind, id, go);
open.addEventListener('submit', (e) => {
  e.preventDefault();
  location.href = '/ui/' + kind.value + '/' + encodeURIComponent(id.value.trim());
});
const dash = el('a', 'dash-link', 'Dashboard →');
dash.href = '/ui/dashboard';
const runs = el('section', 'list');
runs.id = 'runs';
const jobs = el('section', 'list');
jobs.id = 'jobs';
const msg = el('p', 'message', '');
msg.id = 'list-message';
main.append(el('div', 'toolbar', null, open, dash), msg,
  el('h2', null, 'Recent runs'), runs, el('h2', null, 'Recent jobs'), jobs);

function table(items, page) {
  if (!items.length) return el('p', 'empty', 'none');
  const tb = el('table');
  tb.appendChild(el('tr', null, null, el('th', null, 'id'), el('th', null, 'status'),
    el('th', null, 'events'), el('th', null, 'created')));
  for (const s of items) {
    const a = el('a', null, s.id);
    a.href = '/ui/' + page + '/' + encodeURIComponent(s.id);
    const st = s.sealed ? String(s.status || 'completed') : 'running';
    tb.appendChild(el('tr', null, null, el('td', null, null, a),
      el('td', null, null, el('span', 'badge st-' + st.replace(/[^a-z_]/gi, ''), st)),
      el('td', 'num', s.events), el('td', null, s.createdAt)));
  }
  return tb;
}

async function load() {
  if (!getToken()) {
    msg.textContent = 'Paste a token above to list streams (rtlog token --subscribe \'*\').';
    runs.replaceChildren();
    jobs.replaceChildren();
    return;
  }
  msg.textContent = 'loading…';
  try {
    const [r, j] = await Promise.all([
      apiGet('/api/v1/streams?kind=workflow-runs&limit=50'),
      apiGet('/api/v1/streams?kind=deployment-jobs&limit=50'),
    ]);
    runs.replaceChildren(table(r.streams, 'runs'));
    jobs.replaceChildren(table(j.streams, 'jobs'));
    msg.textContent = '';
  } catch (e) {
    msg.textContent = 'Cannot list streams: ' + e.message;
  }
}

hdr.onToken(load);
load();
