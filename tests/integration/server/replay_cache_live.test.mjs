// replay_cache_live.test.mjs - the replay block cache (--replay-cache-bytes) against a real
// server: many catch-up readers at once, SSE and WebSocket, with and without filters, at
// cursors on every side of the aligned block edges (256 events), get exactly the stored
// events after their cursor - no gap, no duplicate, no filtered-out event, the right id -
// whatever the cache size: off, 1 byte (nothing fits), 64 KiB (segments cut by their byte
// limit of 16 KiB, padded events make that happen inside blocks) and the default.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, get, mint, post201, sseOpen, wsOpen, waitUntil, makeEvents, alive,
    assertSseFrames } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const N = 3000; // the ring keeps the newest 1,024: the cache serves the rest
const servers = [];
after(async () => {
    for (const s of servers) {
        const r = await s.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
    }
});

/** The posted events: three nodes, three types, every 7th one padded to ~3 KB. */
function events() {
    const out = [];
    for (let i = 1; i <= N; i++) {
        const e = makeEvents(RUN, 1, { startAt: i, node: `n${i % 3}`, pad: i % 7 === 0 ? 3000 : 0 })[0];
        if (e.type === 'step_started') e.nodeId = `n${i % 3}`;
        out.push(e);
    }
    return out;
}

const wanted = (posted, cursor, { node, types }) => posted
    .map((e, k) => ({ ...e, seq: k + 1 }))
    .filter((e) => e.seq > cursor && (!node || e.nodeId === node) && (!types || types.includes(e.type)))
    .map((e) => e.seq);

const CURSORS = [0, 1, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 1535, 1536, 1537, 1791, 1792, 1793,
    1975, 1976, 1977, 2999, 3000];
const FILTERS = [{}, { node: 'n1' }, { types: ['step_log', 'step_started'] }, { node: 'n2', types: ['step_progress'] }];

for (const cache of ['0', '1', '65536', '32MiB']) {
    test(`--replay-cache-bytes ${cache}: ${CURSORS.length * FILTERS.length * 2} readers at once get exactly the events after their cursor`,
        { timeout: 240000 }, async () => {
            const srv = await start({ args: ['--replay-cache-bytes', cache] });
            servers.push(srv);
            const tok = await mint(srv.key, { sub: 'cache' });
            const stream = `${RUN}/cache-${cache}`;
            const posted = events();
            for (let i = 0; i < N; i += 100) await post201(srv, stream, posted.slice(i, i + 100), { token: tok });
            const readers = [];
            for (const cursor of CURSORS) {
                for (const f of FILTERS) {
                    const q = [];
                    if (f.node) q.push(`nodeId=${f.node}`);
                    if (f.types) q.push(`types=${f.types.join(',')}`);
                    const want = wanted(posted, cursor, f);
                    const qs = q.join('&');
                    const sse = sseOpen(srv, `${stream}/stream${qs ? `?${qs}` : ''}`, { token: tok, lastEventId: cursor });
                    const ws = wsOpen(srv, `${stream}/stream`, { token: tok, lastEventId: cursor, query: qs });
                    readers.push({ what: `cursor ${cursor} ${JSON.stringify(f)}`, sse, ws, want });
                }
            }
            for (const r of readers) {
                await waitUntil(() => r.sse.json_events().length >= r.want.length, 60000, `SSE ${r.what}`);
                await waitUntil(() => r.ws.events().length >= r.want.length, 60000, `WS ${r.what}`);
            }
            for (const r of readers) {
                assertSseFrames(r.sse, `SSE ${r.what}`);
                assert.deepEqual(r.sse.json_events().map((j) => j.seq), r.want, `SSE ${r.what}`);
                assert.deepEqual(r.ws.events().map((j) => j.seq), r.want, `WS ${r.what}`);
                for (const j of [...r.sse.json_events(), ...r.ws.events()]) {
                    const p = posted[j.seq - 1];
                    assert.equal(j.type, p.type, `${r.what}: type at ${j.seq}`);
                    assert.equal(j.nodeId, p.nodeId, `${r.what}: nodeId at ${j.seq}`);
                    if (p.line) assert.equal(j.line, p.line, `${r.what}: line at ${j.seq}`);
                }
                assert.equal(r.sse.p.events.filter((e) => e.type === 'reset').length, 0);
                r.sse.close();
                r.ws.close();
            }
            const m = await get(srv, '/metrics');
            const frames = Number(/^rtlog_replay_cache_frames_total (\d+)/m.exec(m.text)?.[1]);
            if (cache === '0' || cache === '1') assert.equal(frames, 0, 'frames from the cache');
            else assert.ok(frames > 10000, `frames from the cache: ${frames}`);
            assert.ok(alive(srv.pid));
        });
}
