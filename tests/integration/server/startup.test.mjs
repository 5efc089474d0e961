// startup.test.mjs - what a fresh `rtlog serve` guarantees before anyone posts, and that a
// data directory has one server: the dashboard stream exists from the first start (WS and
// SSE subscribers follow it live instead of getting not_found); a second `rtlog serve` on
// the same directory is refused with the first one's pid while the first keeps serving,
// and the directory is free again once the first has stopped or was killed.
// CONTRACT "Ingest" (empty batch creates a stream), "Tools"; rtlog_server.h.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rtlogBin } from './lib/harness.mjs';
import { start, within, mint, post201, get, sseOpen, wsOpen, makeEvents, storedEvents, alive } from './lib/itest.mjs';

/** Every stored dashboard event: a cursor of 0 replays from seq 1 (without one, the dashboard
 *  starts at its latest metric_update, or live). */
const dashboardEvents = (srv, tok) => storedEvents(srv, tok, 'dashboard', { lastEventId: 0 });

test('the dashboard exists from the first start: subscribers follow it live before anything is posted', async () => {
    const srv = await start({ args: ['--heartbeat', '1'] });
    try {
        const tok = await mint(srv.key, { sub: 'dash-viewer' });
        assert.deepEqual(await dashboardEvents(srv, tok), [], 'a fresh dashboard is empty');
        const w = wsOpen(srv, 'dashboard/stream', { token: tok });
        const s = sseOpen(srv, 'dashboard/stream', { token: tok });
        await within(s.opened, 5000, 'SSE open');
        assert.equal(s.status, 200, `SSE dashboard before any post: ${s.status} ${s.text}`);
        // Heartbeats show both are live and were never refused.
        await w.waitFor((m) => m.type === 'heartbeat', 10000, 'a WS heartbeat');
        assert.deepEqual(w.msgs.filter((m) => m.type !== 'heartbeat'), [], 'WS got something before any post');
        const posted = makeEvents('dashboard', 2);
        await post201(srv, 'dashboard', posted, { token: tok });
        await w.waitEvents(2);
        await s.waitEvents(2);
        assert.deepEqual(w.events().map((e) => e.seq), [1, 2]);
        assert.deepEqual(s.json_events().map((e) => e.seq), [1, 2]);
        assert.equal(w.events()[0].alert.id, posted[0].alert.id);
        w.close();
        s.close();
    } finally {
        const r = await srv.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
    }
    // A restart keeps the dashboard as it was (the startup empty batch adds nothing).
    const again = await start({ dataDir: srv.dataDir, args: ['--heartbeat', '1'] });
    try {
        const tok = await mint(again.key, { sub: 'dash-viewer' });
        assert.deepEqual((await dashboardEvents(again, tok)).map((e) => e.seq), [1, 2]);
    } finally {
        const r = await again.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
        again.cleanup();
        srv.cleanup();
    }
});

test('one rtlog serve per data directory: a second is refused with the first one\'s pid', async () => {
    const first = await start({ args: ['--heartbeat', '1'] });
    const dir = first.dataDir;
    /** Run a second server on @dir; it must exit by itself (killed after 15 s otherwise). */
    const second = () => spawnSync(rtlogBin(), ['serve', '--listen', '127.0.0.1:0', '--data', dir],
        { encoding: 'utf8', timeout: 15000, killSignal: 'SIGKILL' });
    let next;
    try {
        const r = second();
        assert.equal(r.signal, null, `the second server kept running: ${r.stdout} ${r.stderr}`);
        assert.equal(r.status, 1, `second server exit ${r.status}: ${r.stderr}`);
        assert.ok(r.stderr.includes(`rtlog serve: another rtlog serve (pid ${first.pid}) is using ${dir}\n`), r.stderr);
        assert.ok(!/listening on/.test(r.stdout), r.stdout);
        // The first one is untouched: it still takes appends and answers.
        const tok = await mint(first.key, { sub: 'lock' });
        await post201(first, 'workflow-runs/lock', makeEvents('workflow-runs', 2), { token: tok });
        assert.equal((await get(first, '/health/ready')).status, 200);
        assert.ok(alive(first.pid));
    } finally {
        const r = await first.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
    }
    try {
        // Stopped: the directory is free. Killed (no cleanup at all): free as well.
        next = await start({ dataDir: dir });
        await next.kill();
        next = await start({ dataDir: dir });
        const tok = await mint(next.key, { sub: 'lock' });
        assert.equal((await storedEvents(next, tok, 'workflow-runs/lock')).length, 2);
    } finally {
        if (next) {
            const r = await next.stop();
            assert.equal(r.code, 0, JSON.stringify(r));
        }
        first.cleanup();
    }
});
