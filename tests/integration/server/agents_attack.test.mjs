// agents_attack.test.mjs - hostile and careless input against the agents endpoints (issue 4)
// and dashboard retention, end to end on the real `rtlog serve` (ASan build under ctest).
// Every test states what the server must do; a test whose title starts with "FINDING:"
// fails on the code it was written against and documents a defect (input, what happened,
// what should happen, where) so it can be fixed and kept as a regression test. The rest
// document attacks the server already withstands.
//
// Invariants checked throughout: bad input gets a precise error and changes nothing; the
// credentials never appear in clear anywhere but the agent's own connection while its task
// is open; every report an agent sends is either stored or refused with an error it
// receives; the server exits 0 at the end (LeakSanitizer would make it exit 1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { start, mint, wsOpen, sseOpen, post, post201, storedEvents, waitUntil, within, sleep,
    assertWsRefused, rawHttp, alive, metricUpdate } from './lib/itest.mjs';
import { rtlogBin } from './lib/harness.mjs';

const SECRET = 'Atk-s3cret-' + process.pid + '-' + Date.now();
let srv, admin, orch, viewer;
const servers = [];

before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--log-level', 'debug'] });
    admin = await mint(srv.key, { sub: 'admin', subscribe: ['*'], publish: ['*'] });
    // an orchestrator as deployed: may assign and cancel agents' tasks, read everything
    orch = await mint(srv.key, { sub: 'orchestrator', subscribe: ['*'], publish: ['agents/*'] });
    viewer = await mint(srv.key, { sub: 'viewer', subscribe: ['*'], publish: [] });
});

after(async () => {
    for (const s of [srv, ...servers]) {
        if (!s) continue;
        const r = await s.stop();
        assert.deepEqual(r, { code: 0, signal: null }, s.err.slice(-4000));
        assert.ok(!s.output().includes(SECRET), 'the credentials secret is in the server output');
    }
});

const agentTok = (id, extra = {}) => mint(srv.key, { sub: `agent-${id}`.slice(0, 100), subscribe: [`agents/${id}`], publish: [], ...extra });

async function api(method, p, body, token, headers = {}) {
    const h = { 'content-type': 'application/json', ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    const res = await fetch(`${srv.base}/api/v1/${p}`, {
        method, headers: h,
        body: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch {}
    return { status: res.status, text, json };
}

const task = (id, job, extra = {}) => ({
    taskId: id, taskType: 'docker.pull', jobId: job, targetId: 'tgt-' + id,
    payload: { image: 'myapp' },
    credentials: { 'registry.password': SECRET },
    timeout: 300, ...extra,
});

async function assign(agent, t, token = admin) {
    const r = await api('POST', `agents/${agent}/tasks`, t, token);
    assert.equal(r.status, 201, r.text);
    return r.json;
}

async function job(id) {
    await post201(srv, `deployment-jobs/${id}`, [], { token: admin });
    return `deployment-jobs/${id}`;
}

const ofTask = (evs, id, type) => evs.filter((e) => e.taskId === id && (!type || e.type === type));
const jobEvents = (j) => storedEvents(srv, admin, j);
/** The events of agents/@a (follow=false replay over SSE as the admin); [] when it does not exist. */
async function agentEvents(a, s = srv, tok = admin) {
    const c = sseOpen(s, `agents/${a}/task-stream?follow=false`, { token: tok });
    await within(c.ended, 10000, `replay of agents/${a}`);
    if (c.status === 404) return [];
    assert.equal(c.status, 200, c.text);
    return c.json_events();
}
const errors = (c) => c.msgs.filter((m) => m.type === 'error');

/** A 400 with a message naming @field, and the agent stream unchanged. */
async function refused(agent, body, status, pattern, what) {
    const before = (await sseLast(agent));
    const r = await api('POST', `agents/${agent}/tasks`, body, admin);
    assert.equal(r.status, status, `${what}: ${r.status} ${r.text.slice(0, 300)}`);
    assert.equal(r.json?.type, 'error', `${what}: ${r.text.slice(0, 200)}`);
    if (pattern) assert.match(r.json.message, pattern, what);
    assert.equal(await sseLast(agent), before, `${what}: the agent stream changed`);
    return r;
}

/** Number of events stored in agents/@agent (0 when it does not exist). */
const sseLast = async (agent) => (await agentEvents(agent)).length;

// ---- POST /api/v1/agents/{id}/tasks --------------------------------------------------------

test('assignment bodies: malformed, oversized, nested, duplicate keys, NUL, bad types are precise 400s', async () => {
    await job('jb');
    await assign('ab', task('seed', 'jb'));
    const base = task('x1', 'jb');
    await refused('ab', '', 400, /JSON object/, 'empty body');
    await refused('ab', '[]', 400, /JSON object/, 'array');
    await refused('ab', 'null', 400, /JSON object/, 'null');
    await refused('ab', '{"taskId":"x1"', 400, /JSON object/, 'truncated JSON');
    await refused('ab', JSON.stringify(base) + JSON.stringify(base), 400, /JSON object/, 'two objects');
    await refused('ab', '{"taskId":"x1","taskId":"x2","taskType":"t","jobId":"jb","targetId":"a"}', 400, null, 'duplicate keys');
    const deep = '{"taskId":"x1","taskType":"t","jobId":"jb","targetId":"a","payload":' + '{"a":'.repeat(5000) + '1' + '}'.repeat(5000) + '}';
    await refused('ab', deep, 400, null, 'deeply nested payload');
    await refused('ab', { ...base, taskId: 'a\u0000b' }, 400, /taskId/, 'NUL in taskId');
    await refused('ab', { ...base, targetId: 'a\u0000b' }, 400, /targetId/, 'NUL in targetId');
    await refused('ab', { ...base, taskType: 'x\u0000' }, 400, /taskType/, 'NUL in taskType');
    await refused('ab', { ...base, jobId: 'j\u0000b' }, 400, /jobId/, 'NUL in jobId');
    for (const cred of [[], 'pw', 1, null, true])
        await refused('ab', { ...base, credentials: cred }, 400, /credentials/, `credentials ${JSON.stringify(cred)}`);
    for (const p of [[], 'x', 2])
        await refused('ab', { ...base, payload: p }, 400, /payload/, `payload ${JSON.stringify(p)}`);
    const { targetId, ...noTarget } = base;
    await refused('ab', noTarget, 400, /targetId/, 'missing targetId');
    await refused('ab', { ...base, targetId: 7 }, 400, /targetId/, 'numeric targetId');
    await refused('ab', { ...base, targetId: '' }, 400, /targetId/, 'empty targetId');
    await refused('ab', { ...base, taskType: 'x'.repeat(300) }, 400, /taskType/, 'long taskType');
    await refused('ab', { ...base, taskId: 'x'.repeat(129) }, 400, /taskId/, '129-char taskId');
    await refused('ab', { ...base, jobId: 'j'.repeat(129) }, 400, /jobId/, '129-char jobId');
    for (const id of ['a/b', 'é', 'a b', '%2e', 'a\nb', '😀'])
        await refused('ab', { ...base, taskId: id }, 400, /taskId/, `taskId ${JSON.stringify(id)}`);
    for (const to of [0, -1, '30', 1e308, 2592001, true, null, {}])
        await refused('ab', { ...base, timeout: to }, 400, /timeout/, `timeout ${JSON.stringify(to)}`);
    await refused('ab', '{"taskId":"x1","taskType":"t","jobId":"jb","targetId":"a","timeout":NaN}', 400, null, 'timeout NaN');
    // the event limit (1 MiB) applies to the assignment
    await refused('ab', { ...base, payload: { blob: 'x'.repeat(1100 * 1024) } }, 413, null, 'payload over 1 MiB');
    // nothing above took the id: it is still free
    await assign('ab', base);
    // a 128-character id works end to end (assign, cancel)
    const long = 'L'.repeat(128);
    await assign('ab', task(long, 'jb'));
    const c = await api('POST', `agents/ab/tasks/${long}/cancel`, {}, admin);
    assert.equal(c.status, 201, c.text);
    // unknown extra fields are kept as posted, in order
    await assign('ab', { ...task('extra1', 'jb'), zzz: { nested: [1, 2.5, 'x'] }, aaa: 'first?' });
    const evs = await agentEvents('ab');
    const ex = evs.find((e) => e.type === 'task_assigned' && e.task.taskId === 'extra1');
    assert.deepEqual(ex.task.zzz, { nested: [1, 2.5, 'x'] });
    assert.equal(ex.task.credentials, '[REDACTED]');
    assert.ok(alive(srv.pid));
});

test('assignment framing: chunked bodies, odd Content-Type, sealed job, tokens', async () => {
    await job('jf');
    // chunked: 411, nothing stored
    const body = JSON.stringify(task('chunk1', 'jf'));
    const raw = `POST /api/v1/agents/af/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\n` +
        `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const r = await rawHttp(srv, raw);
    assert.equal(r.status, 411, r.head);
    assert.equal(await sseLast('af'), 0);
    // an odd Content-Type does not change how the task is read
    const t = await api('POST', 'agents/af/tasks', JSON.stringify(task('ct1', 'jf')), admin, { 'content-type': 'text/plain; charset=latin1' });
    assert.equal(t.status, 201, t.text);
    // a sealed job takes no task
    await post201(srv, 'deployment-jobs/jf-sealed', { type: 'job_completed', status: 'succeeded' }, { token: admin });
    const s = await api('POST', 'agents/af/tasks', task('sealed1', 'jf-sealed'), admin);
    assert.equal(s.status, 409, s.text);
    // tokens: the agent's own, a viewer's, a publish-only grant for another agent, expired
    const af = await agentTok('af');
    assert.equal((await api('POST', 'agents/af/tasks', task('tk1', 'jf'), af)).status, 403);
    assert.equal((await api('POST', 'agents/af/tasks', task('tk1', 'jf'), viewer)).status, 403);
    const pubOther = await mint(srv.key, { sub: 'o2', subscribe: [], publish: ['agents/zz'] });
    assert.equal((await api('POST', 'agents/af/tasks', task('tk1', 'jf'), pubOther)).status, 403);
    const expired = await mint(srv.key, { sub: 'old', exp: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal((await api('POST', 'agents/af/tasks', task('tk1', 'jf'), expired)).status, 401);
    assert.equal((await api('POST', 'agents/af/tasks', task('tk1', 'jf'))).status, 401);
    // a publish-only grant for exactly this agent is enough (an orchestrator's)
    const pubOnly = await mint(srv.key, { sub: 'o3', subscribe: [], publish: ['agents/af'] });
    assert.equal((await api('POST', 'agents/af/tasks', task('tk1', 'jf'), pubOnly)).status, 201);
    // ... and the orchestrator cannot read the credentials back (no subscribe grant)
    const rd = sseOpen(srv, 'agents/af/task-stream?follow=false', { token: pubOnly });
    await within(rd.ended, 10000, 'replay');
    assert.equal(rd.status, 403);
});

test('the same taskId: concurrently on one agent, and on two agents: exactly one is stored', async () => {
    await job('jr');
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) =>
        api('POST', `agents/${i % 2 ? 'ar1' : 'ar2'}/tasks`, task('race1', 'jr'), admin)));
    const codes = rs.map((r) => r.status).sort();
    assert.deepEqual(codes, [201, ...Array(11).fill(409)], JSON.stringify(rs.map((r) => r.text)));
    const n = (await sseLast('ar1')) + (await sseLast('ar2'));
    assert.equal(n, 1, 'one task_assigned stored in all');
});

test('was a finding: taskId "." or ".." is accepted but can never be cancelled (the cancel path collapses)', async () => {
    // Input: POST /api/v1/agents/ad/tasks {"taskId":"..",...} -> 201. Then
    // POST /api/v1/agents/ad/tasks/../cancel: lws collapses the dot segment (README Known
    // limits), the request becomes /api/v1/agents/ad/cancel and the task cannot be cancelled
    // by any spelling. Should: refuse "." and ".." as task ids at assignment (400, they are
    // not usable in a URL path), as rtlog_task_id_valid (server/tasks.c:133) and
    // route_agent (server/params.c:176) share the alphabet. The same holds for a jobId of
    // "." / "..": deployment-jobs/.. cannot be subscribed to over HTTP.
    await job('jd');
    for (const id of ['.', '..']) {
        const r = await api('POST', 'agents/ad/tasks', task(id, 'jd'), admin);
        if (r.status === 400) continue; // refused up front: fine
        assert.equal(r.status, 201, r.text);
        const c = await api('POST', `agents/ad/tasks/${id}/cancel`, {}, admin);
        const c2 = await api('POST', `agents/ad/tasks/${id === '.' ? '%2e' : '%2e%2e'}/cancel`, {}, admin);
        assert.ok(c.status === 201 || c2.status === 201,
            `task "${id}" accepted (201) but its cancel answers ${c.status} / ${c2.status}`);
    }
    const rj = await api('POST', 'agents/ad/tasks', task('dotjob', '..'), admin);
    assert.equal(rj.status, 400, `jobId "..": ${rj.status} ${rj.text}`);
});

test('cancel paths: encoded slashes, trailing slash, very long, other agent, pending, twice', async () => {
    await job('jc');
    await assign('ac', task('c1', 'jc'));
    await assign('ac2', task('c2', 'jc'));
    const st = async (p, body = {}) => (await api('POST', p, body, admin)).status;
    assert.equal(await st('agents/ac/tasks/c1%2fx/cancel'), 400);
    assert.notEqual(await st('agents/ac/tasks/c1/cancel/'), 201);
    assert.equal(await st(`agents/ac/tasks/${'z'.repeat(129)}/cancel`), 400);
    assert.notEqual(await st(`agents/ac/tasks/${'z'.repeat(3000)}/cancel`), 201);
    assert.ok([400, 404].includes(await st('agents/ac/tasks//cancel')), 'empty task id');
    assert.equal(await st('agents/ac/tasks/c2/cancel'), 404, 'another agent\'s task');
    assert.equal(await st('agents/ac/tasks/c1/cancel', '[1]'), 400, 'body not an object');
    assert.equal(await st('agents/ac/tasks/c1/cancel', { reason: 5 }), 400, 'reason not a string');
    assert.equal(await st('agents/ac/tasks/c1/cancel', { reason: 'r'.repeat(5000) }), 400, 'reason too long');
    // nothing above touched c1
    assert.equal((await agentEvents('ac')).length, 1);
    assert.equal(await st('agents/ac/tasks/c1/cancel', { reason: 'x' }), 201);
    assert.equal(await st('agents/ac/tasks/c1/cancel'), 409, 'twice');
    // assignment and cancellation racing: the cancel never sees a half-assigned task
    const [a, c] = await Promise.all([api('POST', 'agents/ac/tasks', task('c3', 'jc'), admin),
        api('POST', 'agents/ac/tasks/c3/cancel', {}, admin)]);
    assert.equal(a.status, 201);
    assert.ok([201, 404].includes(c.status), c.text);
    // a cancellation's 201 comes once task_cancelled is stored in the agent's stream; its
    // job-stream half (task_completed, cancelled) is appended right after (agents.c)
    let evs = [];
    const want3 = c.status === 201 ? 1 : 0;
    await waitUntil(async () => {
        evs = await jobEvents('deployment-jobs/jc');
        return ofTask(evs, 'c1', 'task_completed').length >= 1 && ofTask(evs, 'c3', 'task_completed').length >= want3;
    }, 10000, 'the cancellations closed in the job stream');
    assert.equal(ofTask(evs, 'c1', 'task_completed').length, 1);
    assert.equal(ofTask(evs, 'c3', 'task_completed').length, want3);
});

test('ids at their longest: a 128-character agent, task and job work end to end', async () => {
    const A = 'a'.repeat(128), T = 't'.repeat(128), J = 'j'.repeat(128);
    const j = await job(J);
    await assign(A, task(T, J));
    const tok = await agentTok(A);
    const ag = wsOpen(srv, `agents/${A}/task-stream`, { token: tok });
    await ag.waitEvents(1);
    assert.equal(ag.events()[0].task.credentials['registry.password'], SECRET);
    ag.send({ type: 'task_progress', taskId: T, progress: 10 });
    ag.send({ type: 'task_completed', taskId: T, success: true });
    const evs = await waitUntil(async () => {
        const x = await jobEvents(j);
        return ofTask(x, T, 'task_completed').length ? x : null;
    }, 10000, 'completion');
    assert.deepEqual(ofTask(evs, T).map((e) => e.type), ['task_started', 'task_progress', 'task_completed']);
    assert.equal(ofTask(evs, T)[0].agentId, A);
    ag.close();
    assert.equal((await api('POST', `agents/${A}/tasks/${T}/cancel`, {}, admin)).status, 409);
});

// ---- the agent's WebSocket ----------------------------------------------------------------

test('reports before auth, on a non-agent stream, with wrong types, for foreign tasks: refused, nothing stored', async () => {
    const j = await job('jw');
    await assign('aw', task('w1', 'jw'));
    await assign('aw2', task('w2', 'jw'));
    // before auth: one hint, nothing stored, then the auth timeout
    const pre = wsOpen(srv, 'agents/aw/task-stream');
    await pre.opened;
    pre.send({ type: 'task_completed', taskId: 'w1', success: true });
    pre.send({ type: 'task_completed', taskId: 'w1', success: true });
    await pre.waitFor((m) => m.type === 'error');
    assert.equal(errors(pre)[0].code, 'bad_request');
    pre.close();
    // on a job stream, with a token that may read it
    const onJob = wsOpen(srv, 'deployment-jobs/jw/stream', { token: admin });
    await onJob.opened;
    onJob.send({ type: 'task_completed', taskId: 'w1', success: true });
    await onJob.waitFor((m) => m.type === 'error');
    assert.equal(errors(onJob)[0].code, 'bad_request');
    onJob.close();
    const aw = await agentTok('aw');
    const ag = wsOpen(srv, 'agents/aw/task-stream', { token: aw });
    await ag.waitEvents(1);
    const bad = [
        [{ type: 'task_progress', taskId: 'w1', progress: 101 }, /progress/],
        [{ type: 'task_progress', taskId: 'w1', progress: -1 }, /progress/],
        [{ type: 'task_progress', taskId: 'w1', progress: '5' }, /progress/],
        [{ type: 'task_progress', taskId: 7, progress: 5 }, /taskId/],
        [{ type: 'task_progress', progress: 5 }, /taskId/],
        [{ type: 'task_log', taskId: 'w1' }, /message/],
        [{ type: 'task_log', taskId: 'w1', message: 5 }, /message/],
        [{ type: 'task_log', taskId: 'w1', message: 'm', level: 3 }, /level/],
        [{ type: 'task_completed', taskId: 'w1', success: 'true' }, /success/],
        [{ type: 'task_completed', taskId: 'w1', success: true, result: [1] }, /result/],
        [{ type: 'task_completed', taskId: 'w1', success: true, result: 'ok' }, /result/],
        ['{"type":"task_completed","taskId":"w1","taskId":"w1","success":true}', null],
        ['{"type":"task_progress","taskId":"w1\\u0000x","progress":5}', null],
    ];
    for (const [m, re] of bad) {
        const n = errors(ag).length;
        ag.send(m);
        await ag.waitFor(() => errors(ag).length > n, 10000, `error for ${JSON.stringify(m)}`);
        const e = errors(ag).at(-1);
        assert.equal(e.code, 'bad_request', `${JSON.stringify(m)}: ${e.message}`);
        if (re) assert.match(e.message, re, JSON.stringify(m));
    }
    // another agent's task and an unknown one: the same forbidden
    ag.send({ type: 'task_completed', taskId: 'w2', success: true });
    await ag.waitFor(() => errors(ag).length > bad.length);
    ag.send({ type: 'task_completed', taskId: 'nope', success: true });
    await ag.waitFor(() => errors(ag).length > bad.length + 1);
    assert.deepEqual(errors(ag).slice(-2).map((e) => e.code), ['forbidden', 'forbidden']);
    // an agent id inside a message changes nothing
    ag.send({ type: 'task_progress', taskId: 'w2', progress: 5, agentId: 'aw2', agent_id: 'aw2' });
    await ag.waitFor(() => errors(ag).length > bad.length + 2);
    assert.equal(errors(ag).at(-1).code, 'forbidden');
    ag.close();
    const evs = await jobEvents(j);
    assert.equal(ofTask(evs, 'w2').length, 0, 'nothing stored for the foreign task');
    assert.ok(ofTask(evs, 'w1').every((e) => e.type === 'task_started'), JSON.stringify(evs));
});

test('was a finding: every report in a burst is either stored or refused with an error the agent receives', async () => {
    // Input: an agent sends 150 reports in one burst, 100 for its task (progress) and 50 for
    // an unknown task. Happened: the refusals (forbidden, and rate_limited beyond 64 in
    // flight) are queued as control replies in a 4-slot queue (server/ws.c ctl_push, CTL_MAX
    // 4 in server/server_int.h:189) and the rest are dropped silently; accepted reports are
    // not acknowledged (README "Agents"), so the agent cannot know a report was lost.
    // Should: every refused report gets its error (or the connection is closed so the agent
    // knows to resend after reconnecting); stored + refused == sent.
    const j = await job('jburst');
    await assign('aburst', task('b1', 'jburst'));
    const ab = await agentTok('aburst');
    const ag = wsOpen(srv, 'agents/aburst/task-stream', { token: ab });
    await ag.waitEvents(1);
    const N = 150;
    for (let i = 0; i < N; i++)
        ag.send(i % 3 === 2 ? { type: 'task_progress', taskId: 'ghost', progress: 1 }
            : { type: 'task_progress', taskId: 'b1', progress: i % 100 });
    // the pong of a ping sent right behind the burst can be lost the same way; one sent
    // once the burst is answered must come back (the connection itself is fine)
    await sleep(1500);
    ag.send({ type: 'ping' });
    await ag.waitFor((m) => m.type === 'pong', 15000, 'a pong after the burst');
    const stored = await waitUntil(async () => {
        const evs = ofTask(await jobEvents(j), 'b1', 'task_progress');
        await sleep(300);
        const again = ofTask(await jobEvents(j), 'b1', 'task_progress');
        return again.length === evs.length ? again : null;
    }, 15000, 'the job stream to settle');
    const refusedN = errors(ag).length;
    assert.ok(ag.isOpen && ag.code === null, 'the connection stays open');
    ag.close();
    assert.equal(stored.length + refusedN, N,
        `sent ${N}, stored ${stored.length}, refusals received ${refusedN} (codes ${[...new Set(errors(ag).map((e) => e.code))]})`);
});

test('was a finding: a task_completed whose result fits the message limit is stored or refused as bad_request, not internal_error', async () => {
    // Input: task_completed with a `result` making the report just under 1 MiB (the WS
    // message and event limit). Happened: the report passes validation, the job event built
    // from it (+ targetId, status, duration, timestamp) is over 1 MiB, queue_events fails and
    // agents_message (server/agents.c, "report not stored: internal error") answers
    // internal_error and logs an ERR, as if the server were broken. Should: a precise
    // bad_request ("result too big: the job event would be N bytes over 1 MiB") or the report
    // stored; never internal_error for input the client controls.
    const j = await job('jbig');
    await assign('abig', task('big1', 'jbig'));
    const ab = await agentTok('abig');
    const ag = wsOpen(srv, 'agents/abig/task-stream', { token: ab });
    await ag.waitEvents(1);
    const skeleton = JSON.stringify({ type: 'task_completed', taskId: 'big1', success: true, result: { blob: '' } });
    const blob = 'y'.repeat(1024 * 1024 - skeleton.length - 8);
    ag.send({ type: 'task_completed', taskId: 'big1', success: true, result: { blob } });
    ag.send({ type: 'ping' });
    await ag.waitFor((m) => m.type === 'pong', 15000, 'pong');
    await sleep(500);
    const stored = ofTask(await jobEvents(j), 'big1', 'task_completed');
    const errs = errors(ag);
    ag.close();
    assert.ok(stored.length === 1 || (errs.length === 1 && errs[0].code === 'bad_request'),
        `stored ${stored.length}, errors ${JSON.stringify(errs.map((e) => [e.code, e.message]))}`);
});

test('was a finding: a report whose taskId is not an id gets bad_request, and always some reply', async () => {
    // Input: task_progress with taskId '"' x 128 (or 100 U+0001, or 5000 x's). Happened: the
    // taskId is never checked against the id alphabet (agents_message, server/agents.c: only
    // the task table lookup); the refusal text echoes it ("task %.128s is not assigned..."),
    // JSON-escaped each '"' or control byte grows to 2-6 bytes, the error JSON exceeds
    // CTL_BYTES (320, server/server_int.h:190) and ctl_push (server/ws.c) drops it: the agent
    // gets no reply at all. A long plain id gets "forbidden" instead of a bad_request naming
    // the field. Should: bad_request "field \"taskId\": 1-128 characters of [A-Za-z0-9._:-]"
    // without echoing the value, as the assignment endpoint answers.
    const a = await agentTok('aid');
    const ag = wsOpen(srv, 'agents/aid/task-stream', { token: a });
    await ag.opened;
    const ids = ['"'.repeat(128), '\u0001'.repeat(100), '\\'.repeat(200), 'x'.repeat(5000), 'a b'];
    for (const tid of ids) {
        const n = errors(ag).length;
        ag.send({ type: 'task_progress', taskId: tid, progress: 1 });
        ag.send({ type: 'ping' });
        const pongs = ag.msgs.filter((m) => m.type === 'pong').length;
        await ag.waitFor(() => ag.msgs.filter((m) => m.type === 'pong').length > pongs, 10000, 'pong');
        const got = errors(ag).slice(n);
        assert.equal(got.length, 1, `taskId ${JSON.stringify(tid.slice(0, 8))}.. (${tid.length}): no error reply`);
        assert.equal(got[0].code, 'bad_request', `taskId ${JSON.stringify(tid.slice(0, 8))}..: ${got[0].code} ${got[0].message.slice(0, 80)}`);
        assert.match(got[0].message, /taskId/);
    }
    ag.close();
});

test('was a finding: a task_log line with \\u0000 is stored byte for byte like any log line', async () => {
    // Input: {"type":"task_log","taskId":"nul1","message":"before\u0000after"} on the agent's
    // WS. Happened: bad_request "message must be a JSON object with a string \"type\"":
    // handle_message (server/ws.c) parses every message with JSON_REJECT_DUPLICATES but
    // without JSON_ALLOW_NUL, so the report never reaches agents_message (which parses with
    // JSON_ALLOW_NUL). Ingest stores the same string in a step_log line (README "strings are
    // carried byte for byte (... \u0000 ...)"). Should: stored as the job's task_log line
    // "before\u0000after"; at least an error that names the field, not a claim that the
    // message is not a JSON object.
    const j = await job('jnul');
    await assign('anul', task('nul1', 'jnul'));
    const a = await agentTok('anul');
    const ag = wsOpen(srv, 'agents/anul/task-stream', { token: a });
    await ag.waitEvents(1);
    ag.send('{"type":"task_log","taskId":"nul1","message":"before\\u0000after","level":"info"}');
    ag.send({ type: 'ping' });
    await ag.waitFor((m) => m.type === 'pong');
    await sleep(300);
    const errs = errors(ag);
    ag.close();
    assert.deepEqual(errs.map((e) => e.message), []);
    const logs = await waitUntil(async () => {
        const x = ofTask(await jobEvents(j), 'nul1', 'task_log');
        return x.length ? x : null;
    }, 10000, 'the task_log in the job');
    assert.equal(logs[0].line, 'before\u0000after');
});

test('HTTP clients that vanish mid-request leave no half-assigned or stuck task ids', async () => {
    await job('jv');
    await assign('av', task('v-cancel', 'jv'));
    const raw = (p, body) => `POST /api/v1/${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const ids = Array.from({ length: 30 }, (_, i) => `v${i}`);
    // each request is written whole and the socket destroyed at once (an orchestrator that
    // crashes right after sending); half of them cut mid-body
    await Promise.all(ids.map((id, i) => {
        const body = JSON.stringify(task(id, 'jv'));
        let bytes = raw('agents/av/tasks', body);
        if (i % 2) bytes = bytes.slice(0, bytes.length - 10);
        return rawHttp(srv, bytes, { ms: i % 3 ? 1 : 200 });
    }));
    await rawHttp(srv, raw('agents/av/tasks/v-cancel/cancel', '{}'), { ms: 1 });
    await sleep(1000);
    const evs = await agentEvents('av');
    const stored = new Set(evs.filter((e) => e.type === 'task_assigned').map((e) => e.task.taskId));
    for (const [i, id] of ids.entries()) {
        if (i % 2) assert.ok(!stored.has(id), `${id}: a cut body was stored`);
        // the id is either taken by a stored task or free again
        const r = await api('POST', 'agents/av/tasks', task(id, 'jv'), admin);
        assert.equal(r.status, stored.has(id) ? 409 : 201, `${id}: ${r.status} ${r.text}`);
    }
    const cancelled = evs.some((e) => e.type === 'task_cancelled' && e.taskId === 'v-cancel');
    const c = await api('POST', 'agents/av/tasks/v-cancel/cancel', {}, admin);
    assert.equal(c.status, cancelled ? 409 : 201, c.text);
    assert.ok(alive(srv.pid));
});

test('a job completed under an open task: reports conflict, cancel and lease still close the task', async () => {
    const j = await job('jsl');
    await assign('asl', task('s1', 'jsl'));
    await assign('asl', task('s2', 'jsl', { timeout: 1 }));
    const a = await agentTok('asl');
    const ag = wsOpen(srv, 'agents/asl/task-stream', { token: a });
    await ag.waitEvents(2);
    await waitUntil(async () => ofTask(await jobEvents(j), 's2', 'task_started').length, 10000, 'started');
    await post201(srv, j, { type: 'job_completed', status: 'failed' }, { token: admin });
    ag.send({ type: 'task_progress', taskId: 's1', progress: 5 });
    const e = await ag.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'conflict', e.message);
    const c = await api('POST', 'agents/asl/tasks/s1/cancel', { reason: 'late' }, admin);
    assert.equal(c.status, 201, c.text);
    await ag.waitFor((m) => m.type === 'task_cancelled' && m.taskId === 's2', 15000, 's2 lease');
    ag.close();
    const evs = await jobEvents(j);
    assert.equal(evs.at(-1).type, 'job_completed');
    assert.ok(alive(srv.pid));
});

test('was a finding: credentials numbers reach the agent as posted (0.1 stays 0.1)', async () => {
    // Input: credentials {"port":0.1,"big":1.5e300}. Happened: the agent receives
    // {"port":0.10000000000000001,"big":1.5000000000000001e300}: build_assign seals
    // json_dumps(cred, JSON_COMPACT | JSON_PRESERVE_ORDER) (server/agents.c), jansson's
    // default 17-digit reals; the payload next to it stays 0.1 (schema keeps the shortest
    // exact form, README "Event types"). Should: the credentials text as posted, byte for
    // byte like every other value (seal the exact bytes, or dump with the shortest form).
    await job('jnum');
    await assign('anum', { taskId: 'n1', taskType: 't', jobId: 'jnum', targetId: 'x', payload: { port: 0.1 },
        credentials: { port: 0.1, big: 1.5e300, pw: SECRET } });
    const a = await agentTok('anum');
    const ag = wsOpen(srv, 'agents/anum/task-stream', { token: a });
    await ag.waitEvents(1);
    const rawFrame = ag.raw.find((m) => m.s.includes('task_assigned')).s;
    ag.close();
    assert.ok(rawFrame.includes('"payload":{"port":0.1}'), rawFrame.replace(SECRET, 'SECRET'));
    assert.ok(rawFrame.includes(`"credentials":{"port":0.1,"big":1.5e+300,"pw":"${SECRET}"}`) ||
        rawFrame.includes(`"credentials":{"port":0.1,"big":1.5e300,"pw":"${SECRET}"}`), rawFrame.replace(SECRET, 'SECRET'));
});

test('completion racing a cancellation, and a connection closed with reports in flight: exactly one completion', async () => {
    const j = await job('jrace');
    const ar = await agentTok('arace');
    const ids = Array.from({ length: 8 }, (_, i) => `rc${i}`);
    for (const id of ids) await assign('arace', task(id, 'jrace'));
    const ag = wsOpen(srv, 'agents/arace/task-stream', { token: ar });
    await ag.waitEvents(ids.length);
    const cancels = [];
    for (const id of ids) {
        ag.send({ type: 'task_progress', taskId: id, progress: 50 });
        ag.send({ type: 'task_completed', taskId: id, success: true });
        cancels.push(api('POST', `agents/arace/tasks/${id}/cancel`, { reason: 'race' }, admin));
    }
    ag.close(); // with reports possibly still in flight
    const cs = await Promise.all(cancels);
    for (const c of cs) assert.ok([201, 409].includes(c.status), c.text);
    await sleep(500);
    const evs = await jobEvents(j);
    for (const [i, id] of ids.entries()) {
        const done = ofTask(evs, id, 'task_completed');
        assert.equal(done.length, 1, `${id}: ${JSON.stringify(done)}`);
        assert.equal(done[0].status, cs[i].status === 201 ? 'cancelled' : 'succeeded', id);
    }
    assert.ok(alive(srv.pid));
});

test('two connections of one agent: both get the credentials, one task_started; re-auth as another agent is refused', async () => {
    const j = await job('j2c');
    const a = await agentTok('a2c');
    const c1 = wsOpen(srv, 'agents/a2c/task-stream', { token: a });
    const c2 = wsOpen(srv, 'agents/a2c/task-stream', { token: a });
    await Promise.all([c1.opened, c2.opened]);
    await sleep(200);
    await assign('a2c', task('d1', 'j2c'));
    await c1.waitEvents(1);
    await c2.waitEvents(1);
    assert.equal(c1.events()[0].task.credentials['registry.password'], SECRET);
    assert.equal(c2.events()[0].task.credentials['registry.password'], SECRET);
    await waitUntil(async () => ofTask(await jobEvents(j), 'd1', 'task_started').length, 10000, 'task_started');
    // re-auth with another agent's token: refused, the connection ends
    const other = await agentTok('a2c-other');
    c2.send({ type: 'auth', token: other });
    const cl = await within(c2.closed, 10000, 're-auth close');
    assert.equal(cl.code, 4403);
    c1.send({ type: 'task_completed', taskId: 'd1', success: true });
    await waitUntil(async () => ofTask(await jobEvents(j), 'd1', 'task_completed').length, 10000, 'completion');
    c1.close();
    assert.equal(ofTask(await jobEvents(j), 'd1', 'task_started').length, 1);
});

test('was a finding: a token with a wildcard grant can report as any agent', async () => {
    // Input: the orchestrator's token (subscribe "*", publish "agents/*": it may assign and
    // cancel, it may NOT publish to deployment-jobs/*) opens WS /api/v1/agents/aimp/task-stream
    // and sends {"type":"task_completed","taskId":"imp1","success":true,"result":{..}}.
    // Happened: stored in deployment-jobs/jimp as the agent's completion (status succeeded,
    // agentId of the path), although a direct POST to that job is 403 for this token.
    // rtlog_principal_can(pr, 1, "agents/aimp") (server/auth.c:255) matches the publish
    // wildcard before its exact-subscribe rule, and agents_message (server/agents.c) uses it.
    // README "Agents": "The agent is the one the token and path name"; auth.c's comment:
    // "Wildcards do not, so a viewer with "*" cannot speak as any agent". Should: only a token
    // holding exactly agents/<id> in subscribe reports for agent <id>
    // (rtlog_principal_is_agent), the same test that decides who gets the credentials. (If an
    // admin's "*"/"*" token is meant to report, say so in the README; the orchestrator's
    // agents/* publish grant should still not reach into job streams.)
    const j = await job('jimp');
    await assign('aimp', task('imp1', 'jimp'));
    const direct = await post(srv, j, { type: 'task_completed', taskId: 'imp1', status: 'succeeded' }, { token: orch });
    assert.equal(direct.status, 403, 'the orchestrator token cannot publish to the job');
    const ag = wsOpen(srv, 'agents/aimp/task-stream', { token: orch });
    await ag.waitEvents(1);
    assert.equal(ag.events()[0].task.credentials, '[REDACTED]', 'a wildcard token got the credentials');
    ag.send({ type: 'task_completed', taskId: 'imp1', success: true, result: { forged: true } });
    ag.send({ type: 'ping' });
    await ag.waitFor((m) => m.type === 'pong');
    await sleep(500);
    const errs = errors(ag);
    ag.close();
    const done = ofTask(await jobEvents(j), 'imp1', 'task_completed');
    assert.equal(done.length, 0, `forged completion stored: ${JSON.stringify(done)}`);
    assert.equal(errs[0]?.code, 'forbidden');
});

test('re-authenticating an agent connection with another identity (a wildcard token) is refused', async () => {
    // Was a finding: the personal renderer is chosen at stream start and a re-auth swapped
    // the token under it, so a connection then holding a wildcard token still got task
    // credentials opened. Now a re-auth on an agent stream must keep the agent identity
    // (exactly agents/<id> or not): anything else is forbidden + close 4403, and nothing
    // assigned afterwards reaches that connection.
    await job('jra');
    const a = await agentTok('ara');
    const ag = wsOpen(srv, 'agents/ara/task-stream', { token: a });
    await ag.opened;
    await sleep(200);
    ag.send({ type: 'auth', token: viewer });
    const cl = await within(ag.closed, 10000, 're-auth refusal');
    assert.equal(cl.code, 4403);
    assert.equal(ag.msgs.filter((m) => m.type === 'error').at(-1).code, 'forbidden');
    await assign('ara', task('ra1', 'jra'));
    assert.ok(!ag.raw.some((m) => m.s.includes(SECRET)));
    // the same agent re-authenticating with a fresh token of its own is fine
    const ag2 = wsOpen(srv, 'agents/ara/task-stream', { token: a });
    await ag2.waitEvents(1);
    ag2.send({ type: 'auth', token: await agentTok('ara') });
    await sleep(300);
    assert.equal(ag2.code, null, `same-agent re-auth closed the connection: ${ag2.code}`);
    assert.equal(ag2.events()[0].task.credentials['registry.password'], SECRET);
    ag2.close();
});

// ---- credentials --------------------------------------------------------------------------

test('credentials never leak: filters, cursors, SSE vs WS, wildcard and mixed tokens, errors, logs', async () => {
    const j = await job('jcr');
    await assign('acr', task('cr1', 'jcr'));
    const mixed = await mint(srv.key, { sub: 'mixed', subscribe: ['agents/*', 'deployment-jobs/*', 'dashboard'], publish: ['*'] });
    const queries = ['follow=false', 'follow=false&types=task_assigned', 'follow=false&nodeId=cr1',
        'follow=false&types=task_assigned,task_cancelled&lastEventId=0', 'follow=false&lastEventId=0'];
    for (const tok of [admin, orch, viewer, mixed]) {
        for (const q of queries) {
            const s = sseOpen(srv, `agents/acr/task-stream?${q}`, { token: tok });
            await within(s.ended, 10000, q);
            assert.ok([200, 403].includes(s.status), `${q}: ${s.status}`);
            assert.ok(!Buffer.concat(s.raw).includes(SECRET), `SSE ${q} leaked`);
            const w = wsOpen(srv, 'agents/acr/task-stream', { token: tok, query: q });
            await within(w.closed, 10000, q);
            assert.ok(!w.raw.some((m) => m.s.includes(SECRET)), `WS ${q} leaked`);
        }
    }
    // the job stream never carries them
    const js = await jobEvents(j);
    assert.ok(!JSON.stringify(js).includes(SECRET));
    // refused assignments do not echo or log the credentials
    const bad = await api('POST', 'agents/acr/tasks', task('cr1', 'jcr'), admin); // duplicate
    assert.equal(bad.status, 409);
    assert.ok(!bad.text.includes(SECRET));
    const bad2 = await api('POST', 'agents/acr/tasks', `{"taskId":"cr2","taskType":"t","jobId":"jcr","targetId":"x","credentials":{"p":"${SECRET}"},"timeout":"x"}`, admin);
    assert.equal(bad2.status, 400);
    assert.ok(!bad2.text.includes(SECRET));
    const bad3 = await api('POST', 'agents/acr/tasks', `{"taskId":"cr3","taskType":"t","jobId":"jcr","targetId":"x","credentials":{"p":${SECRET}}}`, admin);
    assert.equal(bad3.status, 400);
    assert.ok(!bad3.text.includes(SECRET), bad3.text);
    // the agent's own token, plus other grants: gets them while open
    const own = await agentTok('acr', { subscribe: ['agents/acr', 'dashboard', 'deployment-jobs/*'] });
    const w = wsOpen(srv, 'agents/acr/task-stream', { token: own, query: 'follow=false&types=task_assigned' });
    await within(w.closed, 10000, 'own replay');
    assert.equal(w.events()[0].task.credentials['registry.password'], SECRET);
    // the export of the agent stream and of the job
    for (const stream of ['agents/acr', 'deployment-jobs/jcr']) {
        const out = execFileSync(rtlogBin(), ['export', stream, '--data', srv.dataDir]).toString();
        assert.ok(!out.includes(SECRET), stream);
        const nd = execFileSync(rtlogBin(), ['export', stream, '--ndjson', '--data', srv.dataDir]).toString();
        assert.ok(!nd.includes(SECRET), stream);
    }
    assert.ok(!srv.output().includes(SECRET), 'secret in the debug log');
    // the sealing key made on first start is readable by its owner only
    const mode = fs.statSync(path.join(srv.dataDir, 'secrets-key')).mode & 0o777;
    assert.equal(mode & 0o077, 0, `secrets-key mode ${mode.toString(8)}`);
});

test('was a finding: a payload object {"sealed":"rtlog-sealed:v1:..."} hides the agent\'s real credentials from it', async () => {
    // Input: an assignment whose payload (before credentials) holds an object
    // {"sealed":"rtlog-sealed:v1:AAAA"} (an orchestrator forwarding another system's data,
    // or a copied stored value). Happened: find_envelope (server/agents.c) takes the first
    // `{"sealed":"rtlog-sealed:v1:` in the rendered line, which is inside payload; it does not
    // open, so the agent gets "[REDACTED]" instead of its credentials and an ERR "sealed
    // credentials do not open" is logged. Should: the envelope is looked up at task.credentials
    // only (e.g. from the parsed event, or the stored credentials key), payload content is
    // carried as posted.
    await job('jenv');
    const t = { taskId: 'env1', taskType: 't', jobId: 'jenv', targetId: 'x',
        payload: { cache: { sealed: 'rtlog-sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } },
        credentials: { 'registry.password': SECRET } };
    await assign('aenv', t);
    const a = await agentTok('aenv');
    const ag = wsOpen(srv, 'agents/aenv/task-stream', { token: a });
    await ag.waitEvents(1);
    const got = ag.events()[0].task;
    ag.close();
    assert.deepEqual(got.payload, t.payload);
    assert.deepEqual(got.credentials, t.credentials);
});

test('was a finding: the 1 MiB event limit applies to credentials too', async () => {
    // Input: an assignment with a 4 MiB credentials object (body well under --max-body-bytes).
    // Happened: 201; the event limit is checked on the redacted render (schema/parse.c, the
    // json_len check after RTLOG_JSON_REDACT), so the stored task_assigned is a 5+ MiB record
    // (the sealed envelope) and the agent gets a 4 MiB frame, where every other event is
    // capped at 1 MiB (413). Should: 413 like any event over --max-event-bytes (measured on
    // the credentials in clear or on the stored envelope).
    await job('jhuge');
    const r = await api('POST', 'agents/ahuge/tasks',
        { ...task('huge1', 'jhuge'), credentials: { k: SECRET + 'z'.repeat(4 << 20) } }, admin);
    assert.equal(r.status, 413, `${r.status} ${r.text.slice(0, 200)}`);
});

test('a closed task\'s credentials stay redacted for its agent; an open one\'s open after a restart (SIGKILL)', async () => {
    const s = await start({ args: ['--heartbeat', '1'] });
    servers.push(s);
    const adm = await mint(s.key, { sub: 'adm' });
    const at = await mint(s.key, { sub: 'agent', subscribe: ['agents/ak'], publish: [] });
    await post201(s, 'deployment-jobs/jk', [], { token: adm });
    const post = async (p, b) => fetch(`${s.base}/api/v1/${p}`, { method: 'POST',
        headers: { authorization: `Bearer ${adm}`, 'content-type': 'application/json' }, body: JSON.stringify(b) });
    for (const id of ['k-open', 'k-done', 'k-cancel', 'k-lease'])
        assert.equal((await post('agents/ak/tasks', task(id, 'jk', id === 'k-lease' ? { timeout: 1.5 } : {}))).status, 201);
    assert.equal((await post('agents/ak/tasks/k-cancel/cancel', {})).status, 201);
    let ag = wsOpen(s, 'agents/ak/task-stream', { token: at });
    await ag.waitEvents(5);
    ag.send({ type: 'task_completed', taskId: 'k-done', success: true });
    await waitUntil(async () => ofTask(await storedEvents(s, adm, 'deployment-jobs/jk'), 'k-done', 'task_completed').length, 10000, 'k-done');
    ag.close();
    await s.kill();
    const s2 = await start({ dataDir: s.dataDir, args: ['--heartbeat', '1'] });
    servers[servers.indexOf(s)] = s2;
    ag = wsOpen(s2, 'agents/ak/task-stream', { token: at, query: 'types=task_assigned' });
    await ag.waitEvents(4);
    const byId = Object.fromEntries(ag.events().map((e) => [e.task.taskId, e.task.credentials]));
    assert.equal(byId['k-open']['registry.password'], SECRET);
    assert.equal(byId['k-done'], '[REDACTED]');
    assert.equal(byId['k-cancel'], '[REDACTED]');
    // the lease starts again at the restart and still ends the task
    ag.close();
    const evs = await waitUntil(async () => {
        const x = await agentEvents('ak', s2, adm);
        return x.find((e) => e.type === 'task_cancelled' && e.taskId === 'k-lease') ? x : null;
    }, 20000, 'k-lease timeout after the restart');
    assert.equal(evs.filter((e) => e.type === 'task_cancelled' && e.taskId === 'k-lease').length, 1);
    const je = await waitUntil(async () => {
        const x = await storedEvents(s2, adm, 'deployment-jobs/jk');
        return ofTask(x, 'k-lease', 'task_completed').length ? x : null;
    }, 20000, 'k-lease failed in the job');
    assert.equal(ofTask(je, 'k-lease', 'task_completed')[0].status, 'failed');
    assert.equal(ofTask(je, 'k-cancel', 'task_completed').length, 1);
    assert.ok(!s2.output().includes(SECRET));
});

// ---- leases -------------------------------------------------------------------------------

test('leases: timeout 0.001 and 40 tasks expiring at once: each fails exactly once; reports after it conflict', async () => {
    const j = await job('jl');
    const ids = Array.from({ length: 40 }, (_, i) => `l${i}`);
    for (const id of ids) await assign('al', task(id, 'jl', { timeout: 0.001 }));
    const evs = await waitUntil(async () => {
        const x = await jobEvents(j);
        return ids.every((id) => ofTask(x, id, 'task_completed').length) ? x : null;
    }, 30000, 'all 40 timeouts in the job');
    for (const id of ids) {
        const d = ofTask(evs, id, 'task_completed');
        assert.equal(d.length, 1, id);
        assert.equal(d[0].status, 'failed');
    }
    const ag = await agentEvents('al');
    assert.equal(ag.filter((e) => e.type === 'task_cancelled' && e.cause === 'timeout').length, 40);
    const a = await agentTok('al');
    const w = wsOpen(srv, 'agents/al/task-stream', { token: a });
    await w.waitEvents(80);
    // delivered after they closed: redacted
    assert.ok(w.events().filter((e) => e.type === 'task_assigned').every((e) => e.task.credentials === '[REDACTED]'));
    w.send({ type: 'task_completed', taskId: 'l0', success: true });
    const e = await w.waitFor((m) => m.type === 'error');
    assert.equal(e.code, 'conflict');
    assert.match(e.message, /timed out/);
    w.close();
});

test('SIGKILL while many leases expire: after a restart every task is closed in its job exactly once', async () => {
    // Some timeouts are stored in the agent stream and not yet in the job when the process
    // dies; agents_init must close those (README "Agents", last point) and give the others a
    // full lease, and no task may end up with two closes.
    const s = await start({ args: ['--heartbeat', '1'] });
    const adm = await mint(s.key, { sub: 'adm' });
    await post201(s, 'deployment-jobs/jk9', [], { token: adm });
    const ids = Array.from({ length: 60 }, (_, i) => `k9-${i}`);
    for (const id of ids) {
        const r = await fetch(`${s.base}/api/v1/agents/ak9/tasks`, { method: 'POST',
            headers: { authorization: `Bearer ${adm}`, 'content-type': 'application/json' },
            body: JSON.stringify(task(id, 'jk9', { timeout: 0.3 })) });
        assert.equal(r.status, 201);
    }
    await sleep(200);
    await s.kill();
    const s2 = await start({ dataDir: s.dataDir, args: ['--heartbeat', '1'] });
    servers.push(s2);
    const je = await waitUntil(async () => {
        const x = await storedEvents(s2, adm, 'deployment-jobs/jk9');
        return ids.every((id) => ofTask(x, id, 'task_completed').length) ? x : null;
    }, 30000, 'every task closed in the job after the restart');
    for (const id of ids) {
        assert.equal(ofTask(je, id, 'task_completed').length, 1, `${id}: closes in the job`);
        assert.equal(ofTask(je, id, 'task_completed')[0].status, 'failed', id);
    }
    const ae = await agentEvents('ak9', s2, adm);
    for (const id of ids)
        assert.equal(ae.filter((e) => e.type === 'task_cancelled' && e.taskId === id).length, 1, `${id}: timeouts told to the agent`);
});

// ---- dashboard retention ------------------------------------------------------------------

test('dashboard retention at its smallest: retain 1 event, cursor behind the first seq, export/verify while trimming', async () => {
    const s = await start({ args: ['--heartbeat', '1', '--dashboard-retain-events', '1',
        '--dashboard-retain-interval', '100ms'] });
    servers.push(s);
    const tok = await mint(s.key, { sub: 'dash' });
    const follower = sseOpen(s, 'dashboard/stream?lastEventId=0', { token: tok });
    let last = 0;
    for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 30; i++)
            last = (await post201(s, 'dashboard', i === 29 ? metricUpdate(round * 100 + i) : { type: 'alert', alert: { severity: 'info', n: i } }, { token: tok })).lastSeq;
        // export and verify while the worker trims: either consistent or "run it again" (exit 1), never a crash
        for (let k = 0; k < 3; k++) {
            try {
                const out = execFileSync(rtlogBin(), ['export', 'dashboard', '--ndjson', '--data', s.dataDir], { stdio: 'pipe' }).toString();
                assert.ok(out.length > 0);
            } catch (e) { assert.equal(e.status, 1, String(e.stderr)); }
            try { execFileSync(rtlogBin(), ['verify', 'dashboard', '--data', s.dataDir], { stdio: 'pipe' }); }
            catch (e) { assert.equal(e.status, 1, String(e.stderr)); }
        }
    }
    // the follower saw every event up to the last, in order, or a reset and then the rest
    await waitUntil(() => follower.json_events().some((e) => e.seq === last), 20000, 'follower at the head');
    const seqs = follower.json_events().map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `order ${seqs[i - 1]} ${seqs[i]}`);
    follower.close();
    // a cursor behind the first retained seq: reset then the retained events
    const first = await waitUntil(async () => {
        const st = JSON.parse(execFileSync(rtlogBin(), ['stat', 'dashboard', '--json', '--data', s.dataDir]).toString());
        return (st.firstSeq ?? st.first_seq) > 1 ? st : null;
    }, 20000, 'a trim');
    void first;
    const w = wsOpen(s, 'dashboard/stream', { token: tok, lastEventId: 1, query: 'follow=false' });
    await within(w.closed, 10000, 'dashboard replay');
    assert.equal(w.msgs[0].type, 'reset', JSON.stringify(w.msgs[0]));
    assert.equal(w.events().at(-1).seq, last);
    assert.equal(w.events().at(-1).type, 'metric_update');
    // a cursor beyond the head
    const w2 = wsOpen(s, 'dashboard/stream', { token: tok, lastEventId: last + 1000, query: 'follow=false' });
    await within(w2.closed, 10000, 'dashboard replay');
    assert.equal(w2.msgs[0].type, 'reset');
    execFileSync(rtlogBin(), ['verify', 'dashboard', '--data', s.dataDir]);
    assert.ok(alive(s.pid));
});
