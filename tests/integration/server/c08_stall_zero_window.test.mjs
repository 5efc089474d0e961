// c08_stall_zero_window.test.mjs - a live SSE reader that stops reading for a while is closed
// by --stall-timeout, not earlier by TCP_USER_TIMEOUT (--tcp-user-timeout, for dead peers:
// C09 d). The two differ: a paused reader's kernel is alive and acknowledges every
// zero-window probe, a dead peer's acknowledges nothing. Linux applies TCP_USER_TIMEOUT to
// zero-window probing too (tcp_probe_timer: the connection is aborted once probing has gone
// on for the user timeout), so with the socket option alone a reader that pauses for longer
// than --tcp-user-timeout (default: --pong-timeout, 30 s, below the 60 s stall timeout) is
// aborted by the kernel: no stall close logged or counted, and the reader gets a reset
// instead of the events it would have read on resuming within --stall-timeout. The server
// raises TCP_USER_TIMEOUT while the peer's window is zero (server/tcp_window.h).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, mint, post201, get, sseOpen, makeEvents, assertSseFrames } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const N = 4000;
let srv;
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

test('a paused SSE reader outlives --tcp-user-timeout while within --stall-timeout, then reads on exactly',
    { timeout: 120000 },
    async () => {
        srv = await start({ args: ['--heartbeat', '1', '--tcp-user-timeout', '1', '--stall-timeout', '600'] });
        const tok = await mint(srv.key, { sub: 'zw' });
        const S = `${RUN}/zero-window`;
        for (let i = 1; i <= N; i += 100) await post201(srv, S, makeEvents(RUN, 100, { startAt: i, pad: 4000 }), { token: tok });
        const c = sseOpen(srv, `${S}/stream`, { token: tok, lastEventId: 0 });
        await c.opened;
        assert.equal(c.status, 200);
        await c.waitEvents(1, 30000);
        c.res.pause(); // ~16 MB behind: the server's socket fills, the client's window closes
        const sse = async () => Number(/^rtlog_connections\{transport="sse"\} (\d+)$/m.exec((await get(srv, '/metrics')).text)?.[1]);
        // five user timeouts of zero-window probing (the kernel aborted after about one)
        for (let i = 0; i < 10; i++) {
            await sleep(500);
            assert.equal(await sse(), 1, `the paused reader was closed after ${(i + 1) * 0.5} s`);
        }
        c.res.resume();
        await waitUntil(() => c.json_events().length >= N || c.done, 60000, 'the rest after resuming');
        assertSseFrames(c, 'resumed');
        assert.deepEqual(c.json_events().map((j) => j.seq), Array.from({ length: N }, (_, k) => k + 1));
        assert.equal(c.events().filter((e) => e.type === 'reset').length, 0);
        c.close();
    });

test('a paused SSE reader is still closed by --stall-timeout, and counted', { timeout: 120000 }, async () => {
    const s2 = await start({ args: ['--heartbeat', '1', '--tcp-user-timeout', '1', '--stall-timeout', '3'] });
    try {
        const tok = await mint(s2.key, { sub: 'zw2' });
        const S = `${RUN}/zero-window-2`;
        for (let i = 1; i <= N; i += 100) await post201(s2, S, makeEvents(RUN, 100, { startAt: i, pad: 4000 }), { token: tok });
        const c = sseOpen(s2, `${S}/stream`, { token: tok, lastEventId: 0 });
        await c.opened;
        await c.waitEvents(1, 30000);
        c.res.pause();
        const m = async () => (await get(s2, '/metrics')).text;
        await waitUntil(async () => /^rtlog_connections\{transport="sse"\} 0$/m.test(await m()), 30000, 'closed');
        assert.match(await m(), /^rtlog_stalled_closed_total 1$/m);
        assert.match(s2.output(), /closed: stalled \(no bytes accepted/);
        c.close();
    } finally {
        const r = await s2.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
    }
});
