// views.test.mjs - the other pages in a real browser (issue 7): the dashboard (metrics,
// environments, alerts, promotions; screenshot), the job view (targets and their tasks),
// the index (recent runs and jobs through GET /api/v1/streams), a reset (the client's, and
// the page's after a restore from an older backup), a WebSocket page that answers heartbeats
// and so keeps its one connection, and an expired token replaced by a pasted one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, restartServer, sleep } from '../server/lib/harness.mjs';
import { launch, artifact, tokenPage, until } from './lib/browser.mjs';

let srv, browser, token;

before(async () => {
  srv = await startServer({ args: ['--heartbeat', '1'] });
  token = await srv.token({ sub: 'browser-views' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  const r = await srv?.stop();
  srv?.cleanup();
  assert.deepEqual(r, { code: 0, signal: null });
});

async function post(stream, evs, base = srv, tok = token) {
  const r = await fetch(`${base.url}/api/v1/${stream}/events`, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + tok, 'content-type': 'application/json' },
    body: JSON.stringify(evs),
  });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  return JSON.parse(text);
}

const state = (page) => page.evaluate(() => document.body.dataset.conn);

test('dashboard: latest metrics, environments, alerts and promotions, live', async () => {
  await post('dashboard', [
    { type: 'metric_update', metrics: { pendingApprovals: 1, activeDeployments: 0 } },
    { type: 'alert', alert: { id: 'old', severity: 'info', title: 'Before the latest metrics' } },
    { type: 'metric_update', metrics: {
      pipelineStatus: [{ environmentId: 'e1', name: 'Production', health: 'healthy' },
        { environmentId: 'e2', name: 'Staging', health: 'degraded' }],
      pendingApprovals: 3, activeDeployments: 1, recentReleases: 12,
      systemHealth: { agentsOnline: 8, agentsTotal: 10, queueDepth: 5 } } },
  ]);
  const { ctx, page } = await tokenPage(browser, token);
  await page.goto(`${srv.url}/ui/dashboard`);
  await until(async () => (await state(page)) === 'live', 15000, 'live');
  // the server starts a cursor-less dashboard at its latest metric_update
  const cards = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#metrics .card')]
    .map((c) => [c.dataset.metric, c.querySelector('.card-value').textContent])));
  await until(async () => (await cards()).pendingApprovals === '3', 10000, 'the latest metrics');
  assert.deepEqual(await cards(), { pendingApprovals: '3', activeDeployments: '1', recentReleases: '12',
    'agents online': '8 / 10', queueDepth: '5' });
  assert.equal(await page.locator('#alerts .alert').count(), 0, 'an alert older than the latest metrics');

  await post('dashboard', [
    { type: 'alert', alert: { id: 'a1', severity: 'warning', title: 'Deployment Failed',
      message: 'Deployment to Production failed: health check timeout', resourceType: 'deployment', resourceId: 'd-17' } },
    { type: 'promotion_update', promotion: { id: 'p1', releaseName: 'myapp-v2.3.1', targetEnvironment: 'Production',
      status: 'awaiting_approval', requestedBy: 'John Doe' } },
    { type: 'promotion_update', promotion: { id: 'p2', releaseName: 'api-v1.9.0', targetEnvironment: 'Staging',
      status: 'deployed', requestedBy: 'CI' } },
    { type: 'promotion_update', promotion: { id: 'p1', releaseName: 'myapp-v2.3.1', targetEnvironment: 'Production',
      status: 'approved', requestedBy: 'John Doe' } },
    { type: 'alert', alert: { id: 'a2', severity: 'critical', title: '<b>agent down</b>', message: 'agent-7 missed 3 heartbeats' } },
  ]);
  await until(() => page.evaluate(() => document.querySelectorAll('#alerts .alert').length === 2 &&
    document.querySelectorAll('#promotions .promotion').length === 2), 10000, 'alerts and promotions');
  const r = await page.evaluate(() => ({
    alerts: [...document.querySelectorAll('#alerts .alert .alert-title')].map((e) => e.textContent),
    promos: [...document.querySelectorAll('#promotions .promotion')].map((e) => [e.dataset.id, e.querySelector('.badge').textContent]),
    envs: [...document.querySelectorAll('#environments .env')].map((e) => e.textContent),
    bold: document.querySelectorAll('#alerts b').length,
  }));
  assert.deepEqual(r.alerts, ['<b>agent down</b>', 'Deployment Failed'], 'newest first, text only');
  assert.equal(r.bold, 0);
  assert.deepEqual(r.promos, [['p1', 'approved'], ['p2', 'deployed']], 'one row per promotion, latest status');
  assert.deepEqual(r.envs, ['Productionhealthy', 'Stagingdegraded']);
  assert.deepEqual(page.errors, []);
  await page.screenshot({ path: artifact('dashboard.png') });
  await ctx.close();
});

test('job view: targets with their tasks, states, progress and logs', async () => {
  const id = 'job-' + Date.now();
  await post('deployment-jobs/' + id, []);
  const { ctx, page } = await tokenPage(browser, token);
  await page.goto(`${srv.url}/ui/jobs/${id}?transport=ws`);
  await until(async () => (await state(page)) === 'live', 15000, 'live');
  await post('deployment-jobs/' + id, [
    { type: 'task_started', taskId: 't1', targetId: 'tg1', targetName: 'prod-web-01', taskType: 'docker.pull' },
    { type: 'task_started', taskId: 't2', targetId: 'tg2', targetName: 'prod-web-02', taskType: 'docker.pull' },
    { type: 'task_progress', taskId: 't1', progress: 75, message: 'Pulling layer 4/5' },
    { type: 'task_log', taskId: 't1', line: '\x1b[32mContainer started successfully\x1b[0m', level: 'info' },
    { type: 'task_started', taskId: 't3', targetId: 'tg1', targetName: 'prod-web-01', taskType: 'docker.run' },
    { type: 'task_completed', taskId: 't1', targetId: 'tg1', status: 'succeeded', duration: 45.2, result: { digest: 'sha256:abc' } },
    { type: 'task_log', taskId: 't2', line: 'manifest unknown', level: 'error' },
    { type: 'task_completed', taskId: 't2', targetId: 'tg2', status: 'failed', duration: 3 },
    { type: 'task_completed', taskId: 't3', targetId: 'tg1', status: 'succeeded', duration: 2 },
  ]);
  await post('deployment-jobs/' + id, [{ type: 'job_completed', status: 'failed', targetsDeployed: 1, targetsFailed: 1, duration: 50.5 }]);
  await until(async () => (await state(page)) === 'ended', 15000, 'ended');
  const r = await page.evaluate(() => ({
    targets: [...document.querySelectorAll('#targets .target')].map((t) => [t.querySelector('h2').textContent,
      [...t.querySelectorAll('.task')].map((k) => [k.dataset.task, k.dataset.state, k.querySelector('.duration').textContent])]),
    logs: [...document.querySelectorAll('#targets .line .tx')].map((l) => l.textContent),
    status: document.getElementById('job-status').textContent,
  }));
  assert.deepEqual(r.targets, [
    ['prod-web-01', [['t1', 'succeeded', '45.2 s'], ['t3', 'succeeded', '2 s']]],
    ['prod-web-02', [['t2', 'failed', '3 s']]],
  ]);
  assert.deepEqual(r.logs, ['Container started successfully', 'manifest unknown']);
  assert.equal(r.status, 'failed');
  assert.deepEqual(page.errors, []);
  await page.screenshot({ path: artifact('job-view.png') });
  await ctx.close();
});

test('index: recent runs and jobs the token may see, newest first', async () => {
  const t0 = Date.now();
  await post(`workflow-runs/idx-a-${t0}`, [{ type: 'workflow_completed', status: 'succeeded' }]);
  await post(`workflow-runs/idx-b-${t0}`, []);
  const { ctx, page } = await tokenPage(browser, token);
  await page.goto(`${srv.url}/ui/`);
  await until(() => page.evaluate(() => document.querySelectorAll('#runs tr').length > 2), 10000, 'the run list');
  const rows = await page.evaluate(() => [...document.querySelectorAll('#runs tr')].slice(1)
    .map((tr) => [tr.querySelector('a').textContent, tr.querySelector('.badge').textContent, tr.querySelector('a').getAttribute('href')]));
  const mine = rows.filter((r) => r[0].endsWith(String(t0)));
  assert.deepEqual(mine, [[`idx-b-${t0}`, 'running', `/ui/runs/idx-b-${t0}`],
    [`idx-a-${t0}`, 'succeeded', `/ui/runs/idx-a-${t0}`]]);
  assert.ok(await page.locator('#jobs a').count() >= 1);
  await ctx.close();

  // a token limited to jobs sees no runs
  const jobsOnly = await srv.token({ subscribe: ['deployment-jobs/*'] });
  const other = await tokenPage(browser, jobsOnly);
  await other.page.goto(`${srv.url}/ui/`);
  await until(() => other.page.evaluate(() => document.querySelector('#runs .empty') !== null), 10000, 'an empty run list');
  await other.ctx.close();
});

test('reset: a cursor the stream cannot honour is shown, and the view is rebuilt', async () => {
  // The page resumes after seq 40 on a stream whose head is 3 (a restore from an older
  // backup looks like this to a browser): the server says reset, then replays from seq 1.
  const id = 'reset-' + Date.now();
  await post('workflow-runs/' + id, [
    { type: 'step_started', nodeId: 'n', stepType: 'script' },
    { type: 'step_log', nodeId: 'n', line: 'first', level: 'info' },
    { type: 'step_log', nodeId: 'n', line: 'second', level: 'info' },
  ]);
  const { ctx, page } = await tokenPage(browser, token);
  await page.goto(`${srv.url}/ui/`);
  const r = await page.evaluate(async (stream) => {
    const { RtlogStream } = await import('/ui/rtlog-client.js');
    const seen = [], states = [];
    let reset;
    const s = new RtlogStream({ stream, token: sessionStorage.getItem('rtlog.token'), after: 40,
      onEvent: (e) => seen.push(e.seq), onReset: (i) => { reset = i; },
      onState: (st) => states.push(st) });
    s.start();
    for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((res) => setTimeout(res, 50));
    s.stop();
    return { seen, reset, states, stats: s.stats };
  }, 'workflow-runs/' + id);
  assert.deepEqual(r.reset, { type: 'reset', earliestSeq: 1, lastSeq: 3 });
  assert.deepEqual(r.seen, [1, 2, 3]);
  assert.ok(r.states.includes('reset'), r.states.join(','));
  assert.equal(r.stats.resets, 1);
  assert.equal(r.stats.duplicates, 0);
  await ctx.close();
});

test('WebSocket: an idle page answers heartbeats and keeps its one connection', async () => {
  // heartbeat 0.5 s, no pong within 1 s ends a connection: a page that did not answer
  // would be dropped within ~2 s and reconnect; this one must stay on its first socket.
  const strict = await startServer({ args: ['--heartbeat', '0.5', '--pong-timeout', '1'] });
  try {
    const t = await strict.token();
    const id = 'hb-' + Date.now();
    await post('workflow-runs/' + id, [], strict, t);
    const { ctx, page } = await tokenPage(browser, t);
    await page.goto(`${strict.url}/ui/runs/${id}?transport=ws&idleTimeout=3000`);
    await until(async () => (await state(page)) === 'live', 15000, 'live');
    await sleep(5000);
    const stats = await page.evaluate(() => window.rtlogPage.client.stats);
    assert.equal(stats.connects, 1, JSON.stringify(stats));
    assert.equal(stats.reconnects, 0, JSON.stringify(stats));
    assert.ok(stats.heartbeats >= 4, JSON.stringify(stats));
    assert.equal(await state(page), 'live');
    await ctx.close();
  } finally {
    await strict.stop();
    strict.cleanup();
  }
});

test('an expired token: the page says so, a pasted new one continues where it was', async () => {
  const s = await startServer({ args: ['--jwt-leeway', '0', '--heartbeat', '1'] });
  try {
    const publisher = await s.token({ ttl: 600 });
    const id = 'exp-' + Date.now();
    const log = (i) => ({ type: 'step_log', nodeId: 'n', line: 'line ' + i, level: 'info' });
    await post('workflow-runs/' + id, [{ type: 'step_started', nodeId: 'n', stepType: 'script' }, log(1), log(2)], s, publisher);
    const short = await s.token({ exp: Math.floor(Date.now() / 1000) + 3 });
    const { ctx, page } = await tokenPage(browser, short);
    await page.goto(`${s.url}/ui/runs/${id}`);
    await until(() => page.evaluate(() => document.querySelectorAll('#steps .line').length === 2), 10000, '2 lines');
    await until(async () => (await state(page)) === 'error', 15000, 'the expiry shown');
    assert.match(await page.textContent('#conn .detail'), /unauthorized/);
    await post('workflow-runs/' + id, [log(3), log(4)], s, publisher);
    await page.fill('#token-input', await s.token({ ttl: 600 }));
    await page.click('#token-form button[type=submit]');
    await post('workflow-runs/' + id, [log(5), { type: 'workflow_completed', status: 'succeeded' }], s, publisher);
    await until(async () => (await state(page)) === 'ended', 15000, 'ended');
    const lines = await page.evaluate(() => [...document.querySelectorAll('#steps .line')].map((l) => [Number(l.dataset.seq), l.querySelector('.tx').textContent]));
    assert.deepEqual(lines, [[2, 'line 1'], [3, 'line 2'], [4, 'line 3'], [5, 'line 4'], [6, 'line 5']]);
    const stats = await page.evaluate(() => window.rtlogPage.client.stats);
    assert.equal(stats.events, 4, 'the new token resumed after seq 3, not from the start');
    assert.equal(stats.duplicates, 0);
    await ctx.close();
  } finally {
    await s.stop();
    s.cleanup();
  }
});

test('a restore from an older backup: the page shows the reset and rebuilds the run', async () => {
  let s = await startServer({ args: ['--heartbeat', '1'] });
  const backup = s.dataDir + '-backup';
  try {
    const t = await s.token();
    const id = 'restore-' + Date.now();
    const log = (x) => ({ type: 'step_log', nodeId: 'n', line: x, level: 'info' });
    await post('workflow-runs/' + id, [{ type: 'step_started', nodeId: 'n', stepType: 'script' }, log('a'), log('b')], s, t);
    // the backup holds seqs 1-3 (taken while stopped: a consistent copy)
    await s.stop();
    fs.cpSync(s.dataDir, backup, { recursive: true });
    ({ server: s } = await restartServer(s, 0));
    await post('workflow-runs/' + id, [log('c'), log('d'), log('e')], s, t);
    const { ctx, page } = await tokenPage(browser, t);
    await page.goto(`${s.url}/ui/runs/${id}?transport=ws&idleTimeout=3000`);
    await until(() => page.evaluate(() => document.querySelectorAll('#steps .line').length === 5), 10000, '5 lines');
    // restore the backup on the same address: the page's cursor (6) is beyond the head (3)
    await s.stop();
    fs.rmSync(s.dataDir, { recursive: true, force: true });
    fs.cpSync(backup, s.dataDir, { recursive: true });
    ({ server: s } = await restartServer(s, 0));
    await until(() => page.evaluate(() => !document.getElementById('banner').hidden), 30000, 'the reset banner');
    await post('workflow-runs/' + id, [log('x'), { type: 'workflow_completed', status: 'failed' }], s, t);
    await until(async () => (await state(page)) === 'ended', 15000, 'ended');
    const r = await page.evaluate(() => ({
      lines: [...document.querySelectorAll('#steps .line')].map((l) => [Number(l.dataset.seq), l.querySelector('.tx').textContent]),
      banner: document.getElementById('banner').textContent,
      stats: window.rtlogPage.client.stats,
    }));
    assert.deepEqual(r.lines, [[2, 'a'], [3, 'b'], [4, 'x']], 'the view is the restored stream, rebuilt');
    assert.match(r.banner, /earliest seq 1, last seq 3/);
    assert.equal(r.stats.resets, 1);
    assert.ok(page.states.includes('reset'), page.states.join(','));
    await page.screenshot({ path: artifact('run-view-reset.png') });
    await ctx.close();
  } finally {
    await s.stop();
    s.cleanup();
    fs.rmSync(backup, { recursive: true, force: true });
  }
});
