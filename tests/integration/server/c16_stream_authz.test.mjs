// c16_stream_authz.test.mjs - handed.md C16 (authorization per stream) items (a), (b), (h) and
// their family; (c)-(g), agent identity and task reports, come with the agents code.
// auth.test.mjs runs the read matrix (patterns x streams, SSE and WS, 403 before 404, SSE path
// variants). Here:
//   - writes: a token that may publish run-0001 only is refused (403 forbidden, nothing
//     stored, no stream created) on run-0002, a run that does not exist, a job, the dashboard
//     and every path variant of (h), whatever the body says about streams or users;
//   - (a)/(b)/(h) over WS as well as SSE, with one decision for both: an inaccessible and a
//     nonexistent run look the same (forbidden), and no variant reaches run-0002;
//   - a WS re-auth ({"type":"auth"} on an open stream) with a token that does not grant the
//     stream (another subject, or the same subject without the pattern) ends the connection
//     with forbidden and delivers nothing after it: access is bound to the token in force.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, within, mint, post, post201, sseOpen, wsOpen, assertErrorShape, assertWsRefused,
    storedEvents, makeEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, admin, user1;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1'] });
    admin = await mint(srv.key, { sub: 'admin' });
    user1 = await mint(srv.key, { sub: 'user-1', subscribe: ['workflow-runs/run-0001'], publish: ['workflow-runs/run-0001'] });
    await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 2), { token: admin });
    await post201(srv, `${RUN}/run-0002`, makeEvents(RUN, 2, { startAt: 50 }), { token: admin });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

test('publish: only the token\'s own streams; refusals store nothing and create nothing', async () => {
    const targets = [`${RUN}/run-0002`, `${RUN}/run-9999`, 'deployment-jobs/job-0001', 'dashboard', `${RUN}/RUN-0001`,
        `${RUN}/run-0001%2f..%2frun-0002`, `${RUN}/run-0001/../run-0002`];
    for (const s of targets) {
        const r = await post(srv, s, [{ ...makeEvents(RUN, 1)[0], user: 'user-2', stream: `${RUN}/run-0001` }], { token: user1 });
        assert.equal(r.status, 403, `POST ${s}: ${r.status} ${r.text.slice(0, 200)}`);
        assertErrorShape(r.json, 'forbidden', `POST ${s}`);
    }
    assert.equal((await storedEvents(srv, admin, `${RUN}/run-0002`)).length, 2, 'run-0002 was written');
    const missing = sseOpen(srv, `${RUN}/run-9999/stream`, { token: admin });
    await within(missing.ended, 5000, 'run-9999');
    assert.equal(missing.status, 404, 'a refused POST created run-9999');
    // its own stream works, and a body naming other streams or users changes nothing
    const ok = await post201(srv, `${RUN}/run-0001`, [{ ...makeEvents(RUN, 1, { startAt: 3 })[0], stream: `${RUN}/run-0002` }], { token: user1 });
    assert.equal(ok.stream, `${RUN}/run-0001`);
});

test('(a) (b) (h) over SSE and WS agree: forbidden for run-0002, run-9999 and every variant', async () => {
    for (const p of [`${RUN}/run-0002`, `${RUN}/run-9999`, `${RUN}/RUN-0002`]) {
        const s = sseOpen(srv, `${p}/stream`, { token: user1 });
        await within(s.ended, 5000, p);
        assert.equal(s.status, 403, `SSE ${p}: ${s.status}`);
        assertErrorShape(s.json, 'forbidden', `SSE ${p}`);
        await assertWsRefused(wsOpen(srv, `${p}/stream`, { token: user1 }), 403, 'forbidden', `WS ${p}`);
        // first-message auth takes the same decision
        const m = wsOpen(srv, `${p}/stream`);
        await m.opened;
        m.send({ type: 'auth', token: user1 });
        await assertWsRefused(m, 403, 'forbidden', `WS first message ${p}`);
    }
    for (const p of [`${RUN}/run-0002/stream/`, `${RUN}/run-0001%2f..%2frun-0002/stream`, `${RUN}/run-0001/../run-0002/stream`,
        `${RUN}/./run-0002/stream`, `${RUN}//run-0002/stream`]) {
        const w = wsOpen(srv, p, { token: user1 });
        const cl = await within(w.closed, 10000, `WS ${p}`);
        assert.equal(w.events().length, 0, `WS ${p} delivered events`);
        const code = cl.http ? cl.http.status : cl.code - 4000;
        assert.ok([400, 403, 404].includes(code), `WS ${p}: ${JSON.stringify(cl)}`);
    }
});

test('WS re-auth with a token that does not grant the stream: forbidden, nothing after it', async () => {
    for (const other of [
        await mint(srv.key, { sub: 'user-2', subscribe: ['workflow-runs/run-0002'] }),
        await mint(srv.key, { sub: 'user-1', subscribe: ['workflow-runs/run-0002'] }),
    ]) {
        const w = wsOpen(srv, `${RUN}/run-0002/stream`, { token: admin, onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
        await w.waitEvents(2);
        const w1 = wsOpen(srv, `${RUN}/run-0001/stream`, { token: user1, onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
        await w1.waitEvents(3);
        w1.send({ type: 'auth', token: other }); // run-0001 is not in its patterns
        const cl = await within(w1.closed, 10000, 're-auth without access');
        assert.equal(cl.code, 4403, `re-auth without access: close ${cl.code} ${JSON.stringify(w1.msgs.slice(-2))}`);
        assertErrorShape(w1.msgs.at(-1), 'forbidden', 're-auth');
        const n = w1.events().length;
        await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 1, { startAt: 80 }), { token: admin });
        await sleep(300);
        assert.equal(w1.events().length, n, 'events after the refused re-auth');
        w.close();
    }
});
