// preauth.test.mjs - unauthenticated WebSockets have their own caps (attack report 05,
// handed.md C10 f): before, every pre-auth socket counted toward --max-connections, so a
// few idle unauthenticated sockets locked out every client holding a token. Now pre-auth
// sockets are capped by max-preauth-connections (total) and max-preauth-per-ip; the excess
// gets rate_limited + close 4429, and a client with a token still connects.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, mint, sleep, post201, wsOpen, assertWsRefused, makeEvents, get } from './lib/itest.mjs';

const RUN = 'workflow-runs';

async function fill(srv, n) {
    const idle = [];
    for (let i = 0; i < n; i++) {
        const w = wsOpen(srv, `${RUN}/pa/stream`);
        await w.opened;
        idle.push(w);
    }
    await sleep(200);
    for (const w of idle) assert.equal(w.code, null, `pre-auth socket closed early: ${w.code}`);
    return idle;
}

async function gauge(srv) {
    const m = /^rtlog_ws_preauth (\d+)$/m.exec((await get(srv, '/metrics')).text);
    return m ? Number(m[1]) : -1;
}

for (const [name, args] of [
    ['total cap', ['--max-preauth-connections', '4', '--max-preauth-per-ip', '64']],
    ['per-IP cap', ['--max-preauth-connections', '1024', '--max-preauth-per-ip', '4']],
]) {
    describe(`pre-auth WebSockets: ${name}`, () => {
        let srv;
        after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

        test('the pre-auth cap is filled, the next is 4429, a client with a token still streams', async () => {
            srv = await start({ args: ['--heartbeat', '1', '--auth-timeout', '30', '--max-connections', '2', ...args] });
            const tok = await mint(srv.key, { sub: 'legit' });
            await post201(srv, `${RUN}/pa`, makeEvents(RUN, 2), { token: tok });
            const idle = await fill(srv, 4);
            assert.equal(await gauge(srv), 4);
            const extra = wsOpen(srv, `${RUN}/pa/stream`);
            await assertWsRefused(extra, 429, 'rate_limited', 'over the pre-auth cap');
            // a token in the URL, and a pre-auth socket that authenticates: both count toward
            // max-connections (2), not the pre-auth cap
            const good = wsOpen(srv, `${RUN}/pa/stream`, { token: tok });
            await good.waitEvents(2);
            idle[0].send({ type: 'auth', token: tok });
            await idle[0].waitEvents(2);
            assert.equal(await gauge(srv), 3);
            // the authenticated ones are at max-connections: a third is refused
            const third = wsOpen(srv, `${RUN}/pa/stream`, { token: tok });
            await assertWsRefused(third, 429, 'rate_limited', 'over max-connections');
            // a freed pre-auth slot is usable again
            idle[1].close();
            await sleep(300);
            const again = wsOpen(srv, `${RUN}/pa/stream`);
            await again.opened;
            await sleep(300);
            assert.equal(again.code, null, 'a pre-auth slot freed by a close is reused');
            for (const w of [...idle, good, again]) w.close();
        });
    });
}
