// job.js - the job view (/ui/jobs/{id}): each target of deployment-jobs/{id} with its
// tasks (type, state, progress, duration, log lines), and the job's outcome.

import { el, fmtDuration, secondsBetween, idFromPath, pageHeader, followToggle, openStream, frameBatcher } from '/ui/common.js';
import { renderLine } from '/ui/ansi.js';

const jobId = idFromPath();
document.title = 'Job ' + jobId + ' · rtlog';
const hdr = pageHeader('Job ' + jobId, 'deployment-jobs/' + jobId);
const main = document.getElementById('main');
const toolbar = el('div', 'toolbar');
const follow = followToggle(toolbar);
const summary = el('section', 'summary');
summary.id = 'summary';
const banner = el('div', 'banner');
banner.hidden = true;
const targetsEl = el('section', 'targets');
targetsEl.id = 'targets';
main.append(toolbar, summary, banner, targetsEl);

let targets, tasks, job;

function resetView() {
  targets = new Map();
  tasks = new Map();
  job = { status: 'running', events: 0, lastSeq: 0 };
  targetsEl.replaceChildren();
  renderSummary();
}

function renderSummary() {
  const status = el('span', 'badge st-' + job.status, job.status);
  status.id = 'job-status';
  const parts = [el('span', 'k', 'status '), status, el('span', 'k', ' targets '), el('span', 'v', targets.size),
    el('span', 'k', ' tasks '), el('span', 'v', tasks.size), el('span', 'k', ' last seq '), el('span', 'v', job.lastSeq)];
  if (job.targetsDeployed !== undefined) parts.push(el('span', 'k', ' deployed '), el('span', 'v', job.targetsDeployed));
  if (job.targetsFailed !== undefined) parts.push(el('span', 'k', ' failed '), el('span', 'v', job.targetsFailed));
  if (job.duration !== undefined) parts.push(el('span', 'k', ' duration '), el('span', 'v', fmtDuration(job.duration)));
  summary.replaceChildren(...parts);
}

function target(id, name) {
  const key = id || '(unknown target)';
  let t = targets.get(key);
  if (!t) {
    const title = el('h2', null, name || key);
    const sub = el('span', 'subtitle', name && id ? id : '');
    const list = el('div', 'tasks');
    const box = el('section', 'target', null, el('div', 'target-head', null, title, sub), list);
    box.dataset.target = key;
    targetsEl.appendChild(box);
    t = { box, title, list };
    targets.set(key, t);
  } else if (name) {
    t.title.textContent = name;
  }
  return t;
}

function task(taskId, targetId, targetName) {
  let k = tasks.get(taskId);
  if (k) return k;
  const t = target(targetId, targetName);
  const badge = el('span', 'badge st-pending', 'pending');
  const type = el('span', 'type', '');
  const dur = el('span', 'duration', '');
  const head = el('div', 'step-head', null, el('span', 'name', taskId), type, badge, dur);
  const bar = el('div', 'bar-fill');
  const msg = el('span', 'progress-msg', '');
  const result = el('div', 'outputs');
  const log = el('div', 'log');
  const box = el('article', 'step task', null, head, el('div', 'progress', null, el('div', 'bar', null, bar), msg), result, log);
  box.dataset.task = taskId;
  t.list.appendChild(box);
  k = { box, badge, type, dur, bar, msg, result, log, startedAt: undefined };
  tasks.set(taskId, k);
  return k;
}

function setState(k, s) {
  k.box.dataset.state = s;
  k.badge.className = 'badge st-' + s;
  k.badge.textContent = s;
}

function setProgress(k, p, message) {
  const v = Math.max(0, Math.min(100, Number(p) || 0));
  k.bar.style.width = v + '%';
  k.msg.textContent = Math.round(v) + '%' + (message ? ' ' + message : '');
}

function onEvent(ev) {
  job.events++;
  job.lastSeq = ev.seq;
  switch (ev.type) {
  case 'task_started': {
    const k = task(ev.taskId, ev.targetId, ev.targetName);
    setState(k, 'running');
    k.type.textContent = ev.taskType || '';
    k.startedAt = ev.timestamp;
    break;
  }
  case 'task_progress':
    setProgress(task(ev.taskId), ev.progress, ev.message);
    break;
  case 'task_log': {
    const k = task(ev.taskId);
    const line = el('div', 'line' + (ev.level && ev.level !== 'info' ? ' lvl-' + String(ev.level).replace(/[^a-z]/gi, '') : ''));
    line.dataset.seq = String(ev.seq);
    const tx = el('span', 'tx');
    renderLine(tx, String(ev.line));
    line.append(el('span', 'ln', ev.seq), tx);
    k.log.appendChild(line);
    break;
  }
  case 'task_completed': {
    const k = task(ev.taskId, ev.targetId);
    setState(k, String(ev.status));
    const d = typeof ev.duration === 'number' ? ev.duration : secondsBetween(k.startedAt, ev.timestamp);
    k.dur.textContent = fmtDuration(d);
    if (ev.status === 'succeeded') setProgress(k, 100);
    if (ev.result && typeof ev.result === 'object')
      k.result.replaceChildren(...Object.entries(ev.result).map(([a, b]) =>
        el('span', 'kv', null, el('span', 'k', a + ' '), el('span', 'v', typeof b === 'string' ? b : JSON.stringify(b)))));
    break;
  }
  case 'job_completed':
    job.status = String(ev.status);
    job.targetsDeployed = ev.targetsDeployed;
    job.targetsFailed = ev.targetsFailed;
    job.duration = typeof ev.duration === 'number' ? ev.duration : undefined;
    document.body.dataset.jobStatus = job.status;
    break;
  default:
    break;
  }
}

// Events are drawn once per frame (common.js frameBatcher), the summary once per batch.
const batch = frameBatcher(onEvent, () => { renderSummary(); follow.changed(); });

resetView();
openStream('deployment-jobs/' + jobId, hdr, {
  onStart: () => { batch.clear(); resetView(); },
  onEvent: (ev) => batch.push(ev),
  onReset: (info) => {
    batch.clear();
    resetView();
    banner.hidden = false;
    banner.textContent = 'History reset (earliest seq ' + info.earliestSeq + '): the view was rebuilt from the start.';
  },
  onState: (state) => {
    batch.flush(); // the view is complete before the state says so
    document.body.dataset.conn = state;
  },
});
