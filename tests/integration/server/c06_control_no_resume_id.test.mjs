// c06_control_no_resume_id.test.mjs - handed.md C06 (keep-alives and control events must not
// move the resume position), its family: every kind of control frame in one session. On SSE
// the retry hint, `: heartbeat` comments, the in-band `reset` (cursor beyond the head), the
// `error` event that ends a stream whose token expired, all around real events: a WHATWG
// parser fed the raw bytes derives the last real event's seq as Last-Event-ID, no `id:` line
// is empty or holds anything but digits, and a reconnect with that id resumes exactly after
// it. On WS the same control messages (heartbeat, reset, error) carry no `seq`.
// heartbeat.test.mjs covers heartbeats alone (the case's own input).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, within, mint, nowS, post201, sseOpen, wsOpen, makeEvents,
    assertSseFrames } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--jwt-leeway', '0'] });
    tok = await mint(srv.key, { sub: 'c06' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** Every SSE field line of a session: ids only on events, digits only; retry digits only. */
function assertIdsOnlyOnEvents(c, what) {
    const raw = Buffer.concat(c.raw).toString('utf8');
    for (const line of raw.split(/\r\n|\r|\n/)) {
        if (line.startsWith('id')) assert.match(line, /^id: [1-9][0-9]*$/, `${what}: ${JSON.stringify(line)}`);
        if (line.startsWith('retry')) assert.match(line, /^retry: [0-9]+$/, `${what}: ${JSON.stringify(line)}`);
    }
    assertSseFrames(c, what);
    for (const e of c.p.events) if (e.type === 'reset' || e.type === 'error') assert.equal(e.idField, undefined, `${what}: ${e.type} has an id`);
}

test('SSE: reset, heartbeats and the expiry error carry no id; the derived Last-Event-ID resumes exactly', { timeout: 60000 }, async () => {
    const stream = `${RUN}/c06-all`;
    await post201(srv, stream, makeEvents(RUN, 3), { token: tok });
    const exp = nowS() + 3;
    const short = await mint(srv.key, { sub: 'c06-short', exp });
    // cursor 50 is beyond the head: reset first, then 1..3, heartbeats, live 4, then expiry
    const c = sseOpen(srv, `${stream}/stream`, { token: short, lastEventId: 50 });
    await c.waitEvents(4);
    await waitUntil(() => c.p.comments.length >= 1, 10000, 'a heartbeat');
    await post201(srv, stream, makeEvents(RUN, 1, { startAt: 4 }), { token: tok });
    await within(c.ended, 15000, 'the stream ends at token expiry');
    const types = c.p.events.map((e) => e.type);
    assert.equal(types[0], 'reset', `first event ${types[0]}`);
    assert.equal(types.at(-1), 'error', `last event ${types.at(-1)}`);
    assert.equal(JSON.parse(c.p.events.at(-1).data).code, 'unauthorized');
    assert.deepEqual(c.json_events().map((e) => e.seq), [1, 2, 3, 4]);
    assertIdsOnlyOnEvents(c, 'session with every control kind');
    assert.ok(c.p.retry !== null, 'a retry hint');
    assert.equal(c.p.lastEventId, '4', 'the Last-Event-ID a browser would send');

    const r = sseOpen(srv, `${stream}/stream`, { token: tok, lastEventId: c.p.lastEventId });
    await r.opened;
    await post201(srv, stream, makeEvents(RUN, 1, { startAt: 5 }), { token: tok });
    await r.waitEvents(1);
    await sleep(1200);
    assert.deepEqual(r.json_events().map((e) => e.seq), [5], 'nothing replayed, nothing skipped');
    assertIdsOnlyOnEvents(r, 'reconnect');
    r.close();
});

test('WS: heartbeat, reset and error messages carry no seq; events carry theirs', { timeout: 60000 }, async () => {
    const stream = `${RUN}/c06-ws`;
    await post201(srv, stream, makeEvents(RUN, 3), { token: tok });
    const exp = nowS() + 3;
    const short = await mint(srv.key, { sub: 'c06-ws', exp });
    const w = wsOpen(srv, `${stream}/stream`, { token: short, lastEventId: 99, onMessage: (m, cc) => { if (m.type === 'heartbeat') cc.send({ type: 'pong' }); } });
    await w.waitEvents(3);
    await within(w.closed, 15000, 'WS ends at token expiry');
    const control = w.msgs.filter((m) => typeof m.seq !== 'number');
    assert.deepEqual([...new Set(control.map((m) => m.type))].sort(), ['error', 'heartbeat', 'reset']);
    for (const m of control) {
        assert.ok(!('seq' in m) && !('id' in m) && !('lastEventId' in m), `control message with a cursor: ${JSON.stringify(m)}`);
    }
    assert.deepEqual(w.events().map((e) => e.seq), [1, 2, 3]);
});
