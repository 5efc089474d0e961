// agents.test.mjs - issue 4 / CONTRACT "Agents" / handed.md C16 (c)-(g), end to end with
// npm `ws` as the agent, an SSE subscriber on the deployment job, the orchestrator posting
// assignments and cancellations over HTTP, and `rtlog export` as the auditor:
// - an agent takes a task, reports progress, logs and completion, drops; a cancellation and
//   a fourth task arrive while it is away; it resumes with its cursor and receives exactly
//   what it missed; the job subscriber sees task_started/progress/log/completed with the
//   right ids, status and duration; job_completed seals the job;
// - identity comes from the token: agent a1 cannot open a2 nor report a2's task, a user
//   cannot open an agent stream, an agent cannot assign itself work; a second completion
//   and reports after it are refused and not stored;
// - a task with no report within its timeout is failed in the job stream; reports renew it;
// - the credentials' secret appears in no file of the data directory, not in the server's
//   output and not in `rtlog export`, and only the agent itself ever receives it while the
//   task is open; after a restart the task table and the sealing key come back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { start, mint, wsOpen, sseOpen, post201, storedEvents, waitUntil, within, sleep,
    assertWsRefused, rawHttp } from './lib/itest.mjs';
import { rtlogBin } from './lib/harness.mjs';

const SECRET = 'pa55-Zq9-secret-' + process.pid + '-' + Date.now();
let srv, admin, a1, a2, user;

before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--log-level', 'debug'] });
    admin = await mint(srv.key, { sub: 'orchestrator', subscribe: ['*'], publish: ['*'] });
    a1 = await mint(srv.key, { sub: 'agent-a1', subscribe: ['agents/a1'], publish: [] });
    a2 = await mint(srv.key, { sub: 'agent-a2', subscribe: ['agents/a2'], publish: [] });
    user = await mint(srv.key, { sub: 'user-1', subscribe: ['workflow-runs/*', 'deployment-jobs/*'], publish: [] });
});

after(async () => {
    if (!srv) return;
    const r = await srv.stop();
    assert.deepEqual(r, { code: 0, signal: null }, srv.err);
    assert.ok(!srv.output().includes(SECRET), 'the credentials secret is in the server output');
});

async function api(method, p, body, token) {
    const h = { 'content-type': 'application/json' };
    if (token) h.authorization = `Bearer ${token}`;
    const res = await fetch(`${srv.base}/api/v1/${p}`, {
        method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch {}
    return { status: res.status, text, json };
}

const task = (id, job, extra = {}) => ({
    taskId: id, taskType: 'docker.pull', jobId: job, targetId: 'tgt-' + id, targetName: 'prod-web-' + id,
    payload: { image: 'myapp', digest: 'sha256:abc', ratio: 0.1 },
    credentials: { 'registry.username': 'deploy', 'registry.password': SECRET },
    timeout: 300, ...extra,
});

async function assign(agent, t, token = admin) {
    const r = await api('POST', `agents/${agent}/tasks`, t, token);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.stream, `agents/${agent}`);
    return r.json;
}

/** The job stream's events as parsed JSON, followed live by an SSE subscriber. */
function follow(job) {
    return sseOpen(srv, `deployment-jobs/${job}/stream`, { token: admin });
}

/** Replay an agent stream (follow=false) over SSE as @token; events as parsed JSON. */
async function agentReplay(agent, token, lastEventId) {
    const c = sseOpen(srv, `agents/${agent}/task-stream?follow=false`, { token, lastEventId });
    await within(c.ended, 10000, `replay of agents/${agent}`);
    assert.equal(c.status, 200, c.text);
    assert.ok(!c.raw.some((b) => b.includes(Buffer.from(SECRET))), 'secret in an SSE replay');
    return c.json_events();
}

const ofTask = (evs, id, type) => evs.filter((e) => e.taskId === id && (!type || e.type === type));

test('agent takes a task, reports, drops, resumes with its cursor; the job sees it all', async () => {
    await post201(srv, 'deployment-jobs/j1', [], { token: admin });
    const job = follow('j1');
    for (const id of ['t1', 't2', 't3']) await assign('a1', task(id, 'j1'));

    let ag = wsOpen(srv, 'agents/a1/task-stream', { token: a1 });
    await ag.waitEvents(3);
    const got = ag.events();
    assert.deepEqual(got.map((e) => [e.seq, e.type, e.task.taskId]),
        [[1, 'task_assigned', 't1'], [2, 'task_assigned', 't2'], [3, 'task_assigned', 't3']]);
    // the agent itself gets its credentials, in clear, while the task is open; the rest of
    // the task exactly as posted (a real stays 0.1)
    assert.equal(got[0].task.credentials['registry.password'], SECRET);
    assert.deepEqual(got[0].task.payload, { image: 'myapp', digest: 'sha256:abc', ratio: 0.1 });
    assert.equal(got[0].task.jobId, 'j1');

    ag.send({ type: 'task_progress', taskId: 't1', progress: 50, message: 'Pulling image layer 3/5' });
    ag.send({ type: 'task_log', taskId: 't1', level: 'info', message: 'Image layer downloaded: sha256:def' });
    await sleep(150);
    ag.send({ type: 'task_completed', taskId: 't1', success: true, result: { imageId: 'sha256:abc123' } });
    await waitUntil(() => ofTask(job.json_events(), 't1', 'task_completed').length, 10000, 't1 completion in the job');
    const lastSeen = Math.max(...ag.events().map((e) => e.seq));
    assert.equal(lastSeen, 3);
    ag.close();
    await ag.closed;

    // while it is away
    const cancel = await api('POST', 'agents/a1/tasks/t2/cancel', { reason: 'Deployment cancelled by user' }, admin);
    assert.equal(cancel.status, 201, cancel.text);
    await assign('a1', task('t4', 'j1'));

    ag = wsOpen(srv, 'agents/a1/task-stream', { token: a1, lastEventId: lastSeen });
    await ag.waitEvents(2);
    await sleep(500); // nothing else may follow
    const missed = ag.events();
    assert.deepEqual(missed.map((e) => [e.seq, e.type]), [[4, 'task_cancelled'], [5, 'task_assigned']]);
    assert.equal(missed[0].taskId, 't2');
    assert.equal(missed[0].reason, 'Deployment cancelled by user');
    assert.equal(missed[1].task.taskId, 't4');
    assert.equal(missed[1].task.credentials['registry.password'], SECRET);

    // finished and cancelled tasks take no more reports
    ag.send({ type: 'task_progress', taskId: 't2', progress: 10 });
    const e1 = await ag.waitFor((m) => m.type === 'error');
    assert.equal(e1.code, 'conflict');
    ag.send({ type: 'task_completed', taskId: 't3', success: false, result: { error: 'pull failed' } });
    ag.send({ type: 'task_completed', taskId: 't4', success: true });
    await waitUntil(() => ofTask(job.json_events(), 't4', 'task_completed').length, 10000, 't4 completion');
    assert.equal((await api('POST', 'agents/a1/tasks/t1/cancel', {}, admin)).status, 409, 'cancelling a finished task');

    await post201(srv, 'deployment-jobs/j1', { type: 'job_completed', status: 'failed', targetsDeployed: 2, targetsFailed: 1 }, { token: admin });
    await within(job.ended, 10000, 'job_completed ends the job stream');
    const evs = job.json_events();
    const t1 = ofTask(evs, 't1');
    assert.deepEqual(t1.map((e) => e.type), ['task_started', 'task_progress', 'task_log', 'task_completed']);
    assert.equal(t1[0].targetId, 'tgt-t1');
    assert.equal(t1[0].targetName, 'prod-web-t1');
    assert.equal(t1[0].taskType, 'docker.pull');
    assert.equal(t1[0].agentId, 'a1');
    assert.equal(t1[1].progress, 50);
    assert.equal(t1[1].message, 'Pulling image layer 3/5');
    assert.equal(t1[2].line, 'Image layer downloaded: sha256:def');
    assert.equal(t1[2].level, 'info');
    const done = t1[3];
    assert.equal(done.status, 'succeeded');
    assert.equal(done.targetId, 'tgt-t1');
    assert.deepEqual(done.result, { imageId: 'sha256:abc123' });
    assert.equal(typeof done.duration, 'number');
    assert.ok(done.duration >= 0.1 && done.duration < 120, `duration ${done.duration}`);
    assert.equal(ofTask(evs, 't2', 'task_completed')[0].status, 'cancelled');
    assert.equal(ofTask(evs, 't2', 'task_completed')[0].reason, 'Deployment cancelled by user');
    assert.equal(ofTask(evs, 't3', 'task_completed')[0].status, 'failed');
    assert.equal(ofTask(evs, 't4', 'task_completed')[0].status, 'succeeded');
    for (const id of ['t1', 't2', 't3', 't4'])
        assert.equal(ofTask(evs, id, 'task_completed').length, 1, `${id}: one completion`);
    assert.equal(evs.at(-1).type, 'job_completed');
    ag.close();
});

test('identity comes from the token (handed.md C16 c-g)', async () => {
    // (c) an agent cannot open another agent's stream; (d) a user cannot open an agent's
    let c = wsOpen(srv, 'agents/a2/task-stream', { token: a1 });
    await assertWsRefused(c, 403, 'forbidden', 'a1 on a2');
    c = wsOpen(srv, 'agents/a1/task-stream', { token: user });
    await assertWsRefused(c, 403, 'forbidden', 'user on a1');
    const sse = sseOpen(srv, 'agents/a1/task-stream', { token: user });
    await sse.ended;
    assert.equal(sse.status, 403);
    // an agent cannot assign or cancel its own tasks (its grant lets it report, no more)
    assert.equal((await api('POST', 'agents/a1/tasks', task('self', 'j2'), a1)).status, 403);
    assert.equal((await api('POST', 'agents/a1/tasks/t1/cancel', {}, a1)).status, 403);

    await post201(srv, 'deployment-jobs/j2', [], { token: admin });
    await assign('a2', task('tb1', 'j2'));
    await assign('a1', task('ta1', 'j2'));
    const ag = wsOpen(srv, 'agents/a1/task-stream', { token: a1, lastEventId: 5 });
    await ag.waitFor((m) => m.type === 'task_assigned' && m.task.taskId === 'ta1');
    // (e) a report for another agent's task: refused, nothing stored
    ag.send({ type: 'task_completed', taskId: 'tb1', success: true, result: {} });
    const e = await ag.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'forbidden');
    // unknown task: the same answer (no oracle on other agents' task ids)
    ag.send({ type: 'task_progress', taskId: 'nope', progress: 1 });
    await ag.waitFor((m) => m.type === 'error' && m !== e);
    assert.equal(ag.msgs.filter((m) => m.type === 'error').at(-1).code, 'forbidden');
    // (f) agent_id in the payload is ignored: attributed to the token's agent
    ag.send({ type: 'task_progress', taskId: 'ta1', agent_id: 'a2', progress: 50 });
    // (g) completion twice, then progress: one completion stored, the rest refused
    ag.send({ type: 'task_completed', taskId: 'ta1', success: true });
    ag.send({ type: 'task_completed', taskId: 'ta1', success: true });
    ag.send({ type: 'task_progress', taskId: 'ta1', progress: 99 });
    await waitUntil(() => ag.msgs.filter((m) => m.type === 'error').length >= 4, 10000, 'two conflicts');
    assert.deepEqual(ag.msgs.filter((m) => m.type === 'error').slice(2).map((m) => m.code), ['conflict', 'conflict']);
    // malformed reports: precise bad_request, nothing stored
    ag.send({ type: 'task_progress', taskId: 'ta1', progress: 'half' });
    const bad = await ag.waitFor((m) => m.type === 'error' && m.code === 'bad_request');
    assert.match(bad.message, /progress/);
    ag.close();

    // the refusals come at once; the accepted reports are committed in their own time
    const evs = await waitUntil(async () => {
        const x = await storedEvents(srv, admin, 'deployment-jobs/j2');
        return ofTask(x, 'ta1', 'task_completed').length ? x : null;
    }, 10000, 'ta1 completion stored');
    assert.equal(ofTask(evs, 'tb1').length, 0, 'nothing stored for the foreign task');
    const ta1 = ofTask(evs, 'ta1');
    assert.deepEqual(ta1.map((x) => x.type), ['task_started', 'task_progress', 'task_completed']);
    assert.equal(ta1[0].agentId, 'a1');
    assert.ok(!JSON.stringify(ta1).includes('a2'), 'payload agent_id not stored');
    // a duplicate taskId is a conflict, a bad body a precise 400
    assert.equal((await api('POST', 'agents/a1/tasks', task('ta1', 'j2'), admin)).status, 409);
    const r400 = await api('POST', 'agents/a1/tasks', { taskId: 'x y', taskType: 't', jobId: 'j2', targetId: 'x' }, admin);
    assert.equal(r400.status, 400);
    assert.match(r400.json.message, /taskId/);
    const r400b = await api('POST', 'agents/a1/tasks', { taskId: 'ok1', taskType: 't', targetId: 'x' }, admin);
    assert.equal(r400b.status, 400);
    assert.match(r400b.json.message, /jobId/);
    assert.equal((await api('POST', 'agents/a1/tasks/never/cancel', {}, admin)).status, 404);
    // a cancel without any body (no Content-Length: an empty body, RFC 9112), reason and all
    await assign('a1', task('nobody', 'j2'));
    const raw = await rawHttp(srv, `POST /api/v1/agents/a1/tasks/nobody/cancel HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${admin}\r\nConnection: close\r\n\r\n`);
    assert.equal(raw.status, 201, raw.raw.toString());
    assert.equal((await api('POST', 'agents/a1/events', [], admin)).status, 404, 'agent streams are not ingest streams');
});

test('a task with no report within its timeout fails; reports renew the lease', async () => {
    // no job stream made beforehand: the assignment makes it, so it can be followed at once
    await assign('a3', task('slow', 'j3', { timeout: 1 }));
    const job = follow('j3');
    await within(job.opened, 10000, 'job stream made by the assignment');
    assert.equal(job.status, 200);
    await assign('a3', task('busy', 'j3', { timeout: 2 }));
    const a3 = await mint(srv.key, { sub: 'agent-a3', subscribe: ['agents/a3'], publish: [] });
    const ag = wsOpen(srv, 'agents/a3/task-stream', { token: a3 });
    await ag.waitEvents(2);
    // keep `busy` alive well past its 2 s lease
    for (let i = 0; i < 12; i++) {
        ag.send({ type: 'task_progress', taskId: 'busy', progress: i * 5 });
        await sleep(300);
    }
    const cancelled = await ag.waitFor((m) => m.type === 'task_cancelled' && m.taskId === 'slow', 15000, 'timeout to the agent');
    assert.equal(cancelled.cause, 'timeout');
    assert.match(cancelled.reason, /timed out/);
    ag.send({ type: 'task_completed', taskId: 'busy', success: true });
    await waitUntil(() => ofTask(job.json_events(), 'busy', 'task_completed').length, 10000, 'busy completion');
    const evs = job.json_events();
    const slow = ofTask(evs, 'slow', 'task_completed');
    assert.equal(slow.length, 1);
    assert.equal(slow[0].status, 'failed');
    assert.match(slow[0].reason, /timed out/);
    assert.equal(ofTask(evs, 'busy', 'task_completed')[0].status, 'succeeded');
    // a report after the timeout is refused
    ag.send({ type: 'task_completed', taskId: 'slow', success: true });
    const e = await ag.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'conflict');
    ag.close();
    job.close();
});

function filesUnder(dir) {
    const out = [];
    for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, ent.name);
        if (ent.isDirectory()) out.push(...filesUnder(p));
        else if (ent.isFile()) out.push(p);
    }
    return out;
}

test('credentials: never on disk, in exports or in anyone else\'s replay; survive a restart', async () => {
    await post201(srv, 'deployment-jobs/j4', [], { token: admin });
    await assign('a4', task('open1', 'j4'));
    // the admin (wildcard grant) sees the assignment redacted, live and in replay
    const adm = await agentReplay('a4', admin);
    assert.equal(adm[0].task.credentials, '[REDACTED]');
    const sse = await agentReplay('a1', admin, 0);
    assert.ok(sse.length >= 5 && !JSON.stringify(sse).includes(SECRET));
    // the agent's own SSE replay, task finished: redacted
    assert.ok((await agentReplay('a1', a1)).length >= 5);
    // the agent after its task is finished: redacted too
    const a1Again = wsOpen(srv, 'agents/a1/task-stream', { token: a1, query: 'follow=false' });
    await within(a1Again.closed, 10000, 'a1 replay');
    assert.ok(a1Again.events().length >= 5);
    assert.ok(!a1Again.raw.some((m) => m.s.includes(SECRET)), 'a finished task\'s credentials re-sent');

    const bytes = [];
    for (const f of filesUnder(srv.dataDir)) {
        const b = fs.readFileSync(f);
        assert.ok(!b.includes(Buffer.from(SECRET)), `secret in clear in ${f}`);
        assert.ok(!b.includes(Buffer.from(SECRET, 'utf16le')), `secret (UTF-16) in ${f}`);
        bytes.push(b.length);
    }
    assert.ok(bytes.length >= 2);
    for (const stream of ['agents/a1', 'agents/a4', 'deployment-jobs/j1']) {
        const out = execFileSync(rtlogBin(), ['export', stream, '--data', srv.dataDir]).toString();
        assert.ok(out.includes('"type"'), out.slice(0, 200));
        assert.ok(!out.includes(SECRET), `secret in the export of ${stream}`);
        execFileSync(rtlogBin(), ['verify', stream, '--data', srv.dataDir]);
    }
    assert.ok(!srv.output().includes(SECRET), 'secret in the server output');

    // restart on the same data directory: the open task still opens for its agent, the
    // finished ones stay finished
    const r = await srv.stop();
    assert.deepEqual(r, { code: 0, signal: null });
    const dataDir = srv.dataDir;
    const old = srv;
    srv = await start({ dataDir, args: ['--heartbeat', '1'] });
    old.cleanup = () => {};
    process.once('exit', () => { try { fs.rmSync(dataDir, { recursive: true, force: true }); } catch {} });
    const a4 = await mint(srv.key, { sub: 'agent-a4', subscribe: ['agents/a4'], publish: [] });
    const ag = wsOpen(srv, 'agents/a4/task-stream', { token: a4 });
    await ag.waitEvents(1);
    assert.equal(ag.events()[0].task.credentials['registry.password'], SECRET);
    ag.close();
    const ag1 = wsOpen(srv, 'agents/a1/task-stream', { token: a1, lastEventId: 5 });
    await ag1.opened;
    ag1.send({ type: 'task_completed', taskId: 't1', success: true });
    const e = await ag1.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'conflict', 'completed before the restart');
    ag1.close();
});

test('a cancellation whose job-stream half was lost in a crash is completed at the next start', async () => {
    // RTLOG_FAULT_SKIP_JOB_CLOSE=1 makes the server stop exactly between the two appends of a
    // cancellation (the agent stream has task_cancelled, the job stream never gets its
    // task_completed), as a crash there would; the next start must repair it, once.
    const dataDir = srv.dataDir;
    await srv.stop();
    const old = srv;
    srv = await start({ dataDir, args: ['--heartbeat', '1'], env: { RTLOG_FAULT_SKIP_JOB_CLOSE: '1' } });
    old.cleanup = () => {};
    await assign('a5', task('lost-close', 'j5'));
    const c = await api('POST', 'agents/a5/tasks/lost-close/cancel', { reason: 'rollback' }, admin);
    assert.equal(c.status, 201, c.text);
    let evs = await storedEvents(srv, admin, 'deployment-jobs/j5');
    assert.equal(ofTask(evs, 'lost-close', 'task_completed').length, 0, 'the fault left the job open');
    assert.match(srv.output(), /fault injection/);
    await srv.stop();
    srv = await start({ dataDir, args: ['--heartbeat', '1'] });
    evs = await waitUntil(async () => {
        const x = await storedEvents(srv, admin, 'deployment-jobs/j5');
        return ofTask(x, 'lost-close', 'task_completed').length ? x : null;
    }, 10000, 'the repair at start');
    const done = ofTask(evs, 'lost-close', 'task_completed');
    assert.equal(done.length, 1);
    assert.equal(done[0].status, 'cancelled');
    // a second start finds nothing to repair
    await srv.stop();
    srv = await start({ dataDir, args: ['--heartbeat', '1'] });
    evs = await storedEvents(srv, admin, 'deployment-jobs/j5');
    assert.equal(ofTask(evs, 'lost-close', 'task_completed').length, 1);
});
