// run.js - the run view (/ui/runs/{id}): each step's state, duration, progress bar and
// log lines (ANSI rendered), filled in live from workflow-runs/{id}.
//
// The view is a pure function of the events received: a `reset` clears it and the replay
// that follows rebuilds it. Every log line carries data-seq (its event's seq), which is
// what the browser tests compare with the posted run.

import { el, fmtDuration, secondsBetween, idFromPath, pageHeader, followToggle, openStream, frameBatcher } from '/ui/common.js';
import { renderLine } from '/ui/ansi.js';

const runId = idFromPath();
document.title = 'Run ' + runId + ' · rtlog';
const hdr = pageHeader('Run ' + runId, 'workflow-runs/' + runId);
const main = document.getElementById('main');

const toolbar = el('div', 'toolbar');
const follow = followToggle(toolbar);
const summary = el('section', 'summary');
summary.id = 'summary';
const banner = el('div', 'banner');
banner.id = 'banner';
banner.hidden = true;
const stepsEl = el('section', 'steps');
stepsEl.id = 'steps';
main.append(toolbar, summary, banner, stepsEl);

let steps, run;

function resetView() {
  steps = new Map();
  run = { status: 'running', duration: undefined, events: 0, lines: 0, lastSeq: 0, outputs: null };
  stepsEl.replaceChildren();
  renderSummary();
}

function renderSummary() {
  const status = el('span', 'badge st-' + run.status, run.status);
  status.id = 'run-status';
  const parts = [
    el('span', 'k', 'status '), status,
    el('span', 'k', ' steps '), el('span', 'v', steps.size),
    el('span', 'k', ' log lines '), el('span', 'v', run.lines),
    el('span', 'k', ' last seq '), el('span', 'v', run.lastSeq),
  ];
  if (run.duration !== undefined) parts.push(el('span', 'k', ' duration '), el('span', 'v', fmtDuration(run.duration)));
  summary.replaceChildren(...parts);
}

function step(nodeId) {
  let s = steps.get(nodeId);
  if (s) return s;
  const name = el('span', 'name', nodeId);
  const type = el('span', 'type', '');
  const badge = el('span', 'badge st-pending', 'pending');
  const dur = el('span', 'duration', '');
  const toggle = el('button', 'collapse', '▾');
  toggle.type = 'button';
  toggle.title = 'show or hide the log';
  const head = el('div', 'step-head', null, toggle, name, type, badge, dur);
  const bar = el('div', 'bar-fill');
  const barWrap = el('div', 'bar', null, bar);
  const msg = el('span', 'progress-msg', '');
  const prog = el('div', 'progress', null, barWrap, msg);
  const log = el('div', 'log');
  const outputs = el('div', 'outputs');
  const box = el('article', 'step', null, head, prog, outputs, log);
  box.dataset.node = nodeId;
  toggle.addEventListener('click', () => box.classList.toggle('collapsed'));
  stepsEl.appendChild(box);
  s = { box, badge, dur, type, bar, msg, log, outputs, startedAt: undefined, lastTs: undefined,
    state: 'pending', progress: 0 };
  steps.set(nodeId, s);
  return s;
}

function setState(s, state) {
  s.state = state;
  s.box.dataset.state = state;
  s.badge.className = 'badge st-' + state;
  s.badge.textContent = state;
}

function setProgress(s, p, message) {
  s.progress = Math.max(0, Math.min(100, p));
  s.bar.style.width = s.progress + '%';
  s.bar.parentNode.dataset.progress = String(s.progress);
  if (message !== undefined) s.msg.textContent = Math.round(s.progress) + '% ' + message;
  else s.msg.textContent = Math.round(s.progress) + '%';
}

function touch(s, ts) {
  if (ts) s.lastTs = ts;
  if (s.state === 'running' && s.startedAt && s.lastTs) {
    const d = secondsBetween(s.startedAt, s.lastTs);
    if (d !== undefined) s.dur.textContent = fmtDuration(d);
  }
}

function onEvent(ev) {
  run.events++;
  run.lastSeq = ev.seq;
  switch (ev.type) {
  case 'step_started': {
    const s = step(ev.nodeId);
    setState(s, 'running');
    s.type.textContent = ev.stepType || '';
    s.startedAt = ev.timestamp;
    touch(s, ev.timestamp);
    break;
  }
  case 'step_progress': {
    const s = step(ev.nodeId);
    setProgress(s, Number(ev.progress) || 0, ev.message);
    touch(s, ev.timestamp);
    break;
  }
  case 'step_log': {
    const s = step(ev.nodeId);
    const line = el('div', 'line' + (ev.level && ev.level !== 'info' ? ' lvl-' + String(ev.level).replace(/[^a-z]/gi, '') : ''));
    line.dataset.seq = String(ev.seq);
    const tx = el('span', 'tx');
    renderLine(tx, String(ev.line));
    line.append(el('span', 'ln', ev.seq), tx);
    s.log.appendChild(line);
    run.lines++;
    touch(s, ev.timestamp);
    break;
  }
  case 'step_completed': {
    const s = step(ev.nodeId);
    setState(s, String(ev.status));
    const d = typeof ev.duration === 'number' ? ev.duration : secondsBetween(s.startedAt, ev.timestamp);
    s.dur.textContent = fmtDuration(d);
    if (ev.status === 'succeeded') setProgress(s, 100);
    if (ev.outputs && typeof ev.outputs === 'object') {
      s.outputs.replaceChildren(...Object.entries(ev.outputs).map(([k, v]) =>
        el('span', 'kv', null, el('span', 'k', k + ' '), el('span', 'v', typeof v === 'string' ? v : JSON.stringify(v)))));
    }
    break;
  }
  case 'workflow_completed':
    run.status = String(ev.status);
    run.duration = typeof ev.duration === 'number' ? ev.duration : undefined;
    document.body.dataset.runStatus = run.status;
    break;
  default:
    break;
  }
}

// Events are drawn once per frame (common.js frameBatcher), the summary once per batch.
const batch = frameBatcher(onEvent, () => { renderSummary(); follow.changed(); });

resetView();
openStream('workflow-runs/' + runId, hdr, {
  onStart: () => { batch.clear(); resetView(); },
  onEvent: (ev) => batch.push(ev),
  onReset: (info) => {
    batch.clear();
    resetView();
    banner.hidden = false;
    banner.textContent = 'The server could not resume this run where the page was (its history was ' +
      'reset: earliest seq ' + info.earliestSeq + ', last seq ' + info.lastSeq + '). The view was rebuilt from the start.';
  },
  onState: (state) => {
    batch.flush(); // the view is complete before the state says so
    document.body.dataset.conn = state;
  },
});
