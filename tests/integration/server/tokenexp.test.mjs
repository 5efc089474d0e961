// tokenexp.test.mjs - token exp at the top of the int64 range (attack report 02): a validly
// signed token with exp = 2^63-1 made `exp + leeway` a signed overflow (UBSan abort; in
// Release the deadline wrapped negative and the stream ended at once as "token expired").
// The deadline saturates: such a stream stays open and delivers live events, on SSE, on a
// WS authenticated in the URL and on a WS re-authenticated by an auth message.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, mint, hs256Raw, sleep, post201, sseOpen, wsOpen, makeEvents, alive } from './lib/itest.mjs';

const RUN = 'workflow-runs';
/** An HS256 token whose exp is 2^63-1 (written as JSON text: JS numbers cannot hold it). */
const hugeExp = (key, sub) => hs256Raw({ alg: 'HS256', typ: 'JWT' },
    `{"sub":"${sub}","exp":9223372036854775807,"rtlog":{"subscribe":["*"],"publish":["*"]}}`, key);

describe('exp near INT64_MAX', () => {
    let srv, tok;
    before(async () => {
        // leeway 60 s (the default) is what overflowed; a short heartbeat runs the tick often
        srv = await start({ args: ['--heartbeat', '0.5', '--jwt-leeway', '60'] });
        tok = await mint(srv.key, { sub: 'exp-writer' });
        await post201(srv, `${RUN}/huge`, makeEvents(RUN, 2), { token: tok });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('SSE, WS (URL token) and WS re-auth with exp = 2^63-1 stay open and get live events', async () => {
        const big = hugeExp(srv.key, 'huge');
        const s = sseOpen(srv, `${RUN}/huge/stream`, { token: big });
        const w = wsOpen(srv, `${RUN}/huge/stream`, { token: big });
        const r = wsOpen(srv, `${RUN}/huge/stream`, { token: tok });
        await s.waitEvents(2);
        await w.waitEvents(2);
        await r.waitEvents(2);
        r.send({ type: 'auth', token: big }); // re-authentication moves the deadline
        await sleep(1500);                      // several housekeeping ticks
        assert.ok(alive(srv.pid), 'server died (signed overflow)');
        await post201(srv, `${RUN}/huge`, makeEvents(RUN, 1, { startAt: 3 }), { token: tok });
        await s.waitEvents(3);
        await w.waitEvents(3);
        await r.waitEvents(3);
        assert.equal(s.done, false, 'SSE ended');
        for (const c of [w, r]) {
            assert.equal(c.code, null, `WS closed ${c.code} ${c.reason}`);
            assert.ok(!c.msgs.some((m) => m.type === 'error'), JSON.stringify(c.msgs.filter((m) => m.type === 'error')));
        }
        assert.ok(!s.events().some((e) => e.type === 'error'), 'SSE got an error event');
        s.close(); w.close(); r.close();
    });
});
