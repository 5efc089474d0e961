// replay_cache_retention.test.mjs - dashboard retention trims events that sit in the replay
// block cache while readers are paused in the middle of them (server/retention.c with
// --replay-cache-bytes): when they read again, each gets the events after its position
// without a gap or duplicate, or an in-band reset (earliestSeq = the next event it gets)
// where retention removed what it had not read; a reader opened after the trim at a trimmed
// cursor gets the reset first, never a trimmed event out of the cache.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, mint, post201, sseOpen, waitUntil, sleep, get, alive } from './lib/itest.mjs';

let srv;
after(async () => {
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
});

const alert = (i) => ({ type: 'alert', alert: { id: `a${i}`, severity: 'warning', title: `t${i}`,
    message: `m ${i} ${'x'.repeat(4000)}`, resourceType: 'deployment', resourceId: 'r',
    timestamp: '2026-01-10T14:23:45Z' } });

async function firstSeq() {
    const m = /^rtlog_dashboard_first_seq (\d+)$/m.exec((await get(srv, '/metrics')).text);
    return Number(m?.[1] ?? 0);
}

/** What a reader got is exact: ids strictly consecutive from @from + 1, except that a reset
 * may come before a jump, to exactly its earliestSeq. */
function assertExact(c, from, what) {
    let next = from + 1;
    let resets = 0;
    for (const e of c.events()) {
        const j = JSON.parse(e.data);
        if (e.type === 'reset') {
            assert.ok(j.earliestSeq >= next, `${what}: reset back to ${j.earliestSeq} at ${next}`);
            next = j.earliestSeq;
            resets++;
            continue;
        }
        assert.equal(j.seq, next, `${what}: got ${j.seq}, expected ${next}`);
        assert.equal(Number(e.idField), j.seq, `${what}: id`);
        assert.equal(j.alert.id, `a${j.seq}`, `${what}: content at ${j.seq}`);
        next++;
    }
    return { next, resets };
}

test('retention trims cached events under paused readers: exact resume or an in-band reset', { timeout: 240000 }, async () => {
    srv = await start({ args: ['--dashboard-retain-events', '3000', '--dashboard-retain-interval', '100ms',
        '--replay-cache-bytes', '4MiB'] });
    const tok = await mint(srv.key, { sub: 'ret' });
    const post = async (from, n) => {
        for (let i = from; i < from + n; i += 100) {
            await post201(srv, 'dashboard', Array.from({ length: 100 }, (_, k) => alert(i + k)), { token: tok });
        }
    };
    await post(1, 3000);
    assert.equal(await firstSeq(), 1);
    const cursors = [0, 1, 255, 256, 700, 1200, 1800];
    const readers = cursors.map((cursor) => {
        const c = sseOpen(srv, 'dashboard/stream', { token: tok, lastEventId: cursor });
        c.cursor = cursor;
        return c;
    });
    // each reads a little, then stops reading (the server's writes back up into the socket)
    for (const c of readers) {
        await c.opened;
        assert.equal(c.status, 200);
        await c.waitEvents(5, 30000);
        c.res.pause();
    }
    await sleep(300);
    await post(3001, 3000); // retention keeps ~3,000: the first half goes
    // until retention is done: it trims once the count is over 3,000 by 1/16 (3,187)
    await waitUntil(async () => 6000 - (await firstSeq()) + 1 <= 3187, 30000, 'retention trimmed');
    const first = await firstSeq();
    const late = [0, 100, 256, first - 1, first].map((cursor) => {
        const c = sseOpen(srv, 'dashboard/stream', { token: tok, lastEventId: cursor });
        c.cursor = cursor;
        return c;
    });
    for (const c of readers) c.res.resume();
    for (const c of [...readers, ...late]) {
        await waitUntil(() => {
            const ev = c.events();
            const last = ev.length ? JSON.parse(ev[ev.length - 1].data) : null;
            return last?.seq === 6000;
        }, 60000, `reader at ${c.cursor} reaches 6000`);
        const { resets } = assertExact(c, c.cursor, `cursor ${c.cursor}${late.includes(c) ? ' (opened after the trim)' : ''}`);
        if (late.includes(c) && c.cursor + 1 < first) assert.equal(resets, 1, `late reader at ${c.cursor}: one reset`);
        if (late.includes(c) && c.cursor + 1 >= first) assert.equal(resets, 0, `late reader at ${c.cursor}: no reset`);
        // paused early on, far below the cut: the trim removed what they had not read
        if (!late.includes(c) && c.cursor <= 700) assert.equal(resets, 1, `paused reader at ${c.cursor}: one reset`);
        c.close();
    }
    const m = await get(srv, '/metrics');
    const frames = Number(/^rtlog_replay_cache_frames_total (\d+)/m.exec(m.text)?.[1]);
    assert.ok(frames > 0, 'the cache served some of it');
    assert.ok(alive(srv.pid));
});
