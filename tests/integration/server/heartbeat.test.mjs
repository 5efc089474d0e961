// heartbeat.test.mjs - liveness on WS and SSE with --heartbeat 1 --pong-timeout 2:
// WS {"type":"heartbeat"} messages carry no seq; a {"type":"pong"} message or an RFC 6455 pong
// frame answers them; no answer (or a wrong-case "PONG") closes the socket after the pong
// timeout; unsolicited pongs are harmless. SSE idle streams get `: heartbeat` comments that
// never carry an id, so the Last-Event-ID a WHATWG parser derives after heartbeats is the
// last event's seq and a reconnect resumes exactly there (handed.md C06, C09 a b c e).
// CONTRACT "Streams and event ids", "Errors and limits" (heartbeat, pong).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, within, mint, post201, isRfc3339, sseOpen, assertSseFrames,
    wsOpen, makeEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '2'] });
    tok = await mint(srv.key, { sub: 'hb' });
    await post201(srv, `${RUN}/hb`, makeEvents(RUN, 3), { token: tok });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** A WS follower of run hb that answers each heartbeat per @answer ('json'|'frame'|'PONG'|null). */
function follower(answer, { autoPong = false } = {}) {
    const c = wsOpen(srv, `${RUN}/hb/stream`, { token: tok, autoPong, onMessage: (m, cc) => {
        if (m.type !== 'heartbeat') return;
        if (answer === 'json') cc.send({ type: 'pong' });
        else if (answer === 'frame') cc.ws.pong(); // what ws sends by default: no payload
        else if (answer === 'frame-payload') cc.ws.pong('hb');
        else if (answer === 'PONG') cc.send({ type: 'PONG' });
    } });
    return c;
}
const heartbeats = (c) => c.msgs.filter((m) => m.type === 'heartbeat');

describe('WebSocket heartbeat', () => {
    test('heartbeat messages are {"type":"heartbeat","timestamp"} without seq; what the server pings', async () => {
        const c = follower('json');
        await c.waitEvents(3);
        await waitUntil(() => heartbeats(c).length >= 3, 10000, '3 heartbeats');
        for (const h of heartbeats(c)) {
            assert.deepEqual(Object.keys(h).sort(), ['timestamp', 'type'], JSON.stringify(h));
            assert.ok(isRfc3339(h.timestamp), h.timestamp);
            assert.ok(!('seq' in h));
        }
        // Every message is either an event with a seq or a control message without one.
        for (const m of c.msgs) assert.ok(typeof m.seq === 'number' || !('seq' in m), JSON.stringify(m));
        // rtlog_server.h documents that the server sends no RFC 6455 pings (JSON heartbeats only).
        assert.equal(c.pings, 0, `server sent ${c.pings} protocol pings`);
        c.close();
    });

    for (const [answer, label] of [['json', 'a {"type":"pong"} message'], ['frame', 'an empty RFC 6455 pong frame'],
        ['frame-payload', 'an RFC 6455 pong frame with a payload']]) {
        test(`answering with ${label} keeps the connection past 3x pong-timeout`, async () => {
            const c = follower(answer);
            await c.waitEvents(3);
            await sleep(7000);
            assert.equal(c.code, null, `closed with ${c.code} ${c.reason}`);
            assert.ok(heartbeats(c).length >= 4, `only ${heartbeats(c).length} heartbeats in 7 s`);
            assert.equal(c.msgs.filter((m) => m.type === 'error').length, 0, JSON.stringify(c.msgs.filter((m) => m.type === 'error')));
            await post201(srv, `${RUN}/hb`, makeEvents(RUN, 1, { startAt: 100 }), { token: tok });
            await c.waitEvents(4);
            c.close();
        });
    }

    test('unsolicited {"type":"pong"} every 500 ms is harmless and keeps it alive (C09 c)', async () => {
        const c = follower(null);
        await c.waitEvents(1);
        const t = setInterval(() => c.send({ type: 'pong' }), 500);
        await sleep(6000);
        clearInterval(t);
        assert.equal(c.code, null, `closed with ${c.code}`);
        assert.equal(c.msgs.filter((m) => m.type === 'error').length, 0);
        c.close();
    });

    for (const [answer, label] of [[null, 'no answer (C09 a)'], ['PONG', 'a wrong-case {"type":"PONG"} (C09 e)']]) {
        test(`${label}: closed after the pong timeout`, async () => {
            const c = follower(answer);
            await c.waitEvents(3);
            const t0 = Date.now();
            const cl = await within(c.closed, 15000, 'close for missing pong');
            assert.ok(Date.now() - t0 < 15000);
            // rtlog_server.h: a WebSocket that answers nothing for heartbeat + pong-timeout is
            // dropped without a close frame (the peer is not listening): clients see 1006.
            assert.equal(cl.code, 1006, `close ${cl.code} ${cl.reason}`);
            assert.ok(heartbeats(c).length >= 1);
            for (const e of c.msgs.filter((m) => m.type === 'error')) assert.ok(!('seq' in e));
        });
    }

    test('ws autoPong alone (no JSON pong) is closed as well, since the server sends no pings', async () => {
        const c = follower(null, { autoPong: true });
        await c.waitEvents(3);
        const cl = await within(c.closed, 15000, 'close');
        assert.equal(c.pings, 0);
        assert.equal(cl.code, 1006);
    });
});

describe('SSE heartbeat comments and the resume position (C06)', () => {
    test('idle SSE streams get `: heartbeat` comments; heartbeats never carry an id', async () => {
        const c = sseOpen(srv, `${RUN}/hb/stream`, { token: tok, lastEventId: 0 });
        await c.waitEvents(3);
        await waitUntil(() => c.p.comments.filter((x) => x.trim() === 'heartbeat').length >= 3, 10000, '3 SSE heartbeats');
        const ids = c.p.fields.filter((f) => f.name === 'id');
        assert.equal(ids.length, c.p.events.length, 'an id field outside the events');
        assertSseFrames(c, 'heartbeat stream');
        c.close();
    });

    test('Last-Event-ID derived after heartbeats is the last event; reconnect resumes there exactly', async () => {
        const stream = `${RUN}/c06`;
        await post201(srv, stream, makeEvents(RUN, 3), { token: tok });
        const c = sseOpen(srv, `${stream}/stream`, { token: tok, lastEventId: 0 });
        await c.waitEvents(3);
        await waitUntil(() => c.p.comments.length >= 3, 10000, 'three heartbeat intervals');
        await sleep(500);
        c.close();
        assert.deepEqual(c.json_events().map((e) => e.seq), [1, 2, 3]);
        assertSseFrames(c, 'C06 first connection');
        // What a conformant client would send on reconnect.
        assert.equal(c.p.lastEventId, '3');
        const r = sseOpen(srv, `${stream}/stream`, { token: tok, lastEventId: c.p.lastEventId });
        await r.opened;
        await sleep(300);
        await post201(srv, stream, makeEvents(RUN, 1, { startAt: 4 }), { token: tok });
        await r.waitEvents(1);
        await sleep(1500); // a heartbeat or two more, and any stray replay would have arrived
        assert.deepEqual(r.json_events().map((e) => e.seq), [4]);
        assert.equal(r.p.lastEventId, '4');
        assertSseFrames(r, 'C06 reconnect');
        r.close();
    });
});
