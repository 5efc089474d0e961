// import_live.test.mjs - appends made by another process reach live subscribers: `rtlog
// import` (the CLI binary, same data directory) appends to streams a running `rtlog serve`
// has WS and SSE subscribers on; they receive the imported events in order, exactly once,
// continuing after what they already had, and a sealing event imported that way ends their
// streams (WS 1000, SSE end). The server learns of such commits from the store's generation
// (rtlog_store_generation), not from its own commit hook.
// CONTRACT "Streams and event ids", "Completion and sealing", "Tools" (import).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rtlogBin } from './lib/harness.mjs';
import { start, within, mint, post201, sseOpen, wsOpen, makeEvents, sealEvent, assertDelivered,
    assertSseFrames } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '30'] });
    tok = await mint(srv.key, { sub: 'import-live' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** `rtlog import --data DIR STREAM -` with @events as NDJSON on stdin; resolves to its output. */
function rtlogImport(stream, events) {
    return new Promise((resolve, reject) => {
        const p = spawn(rtlogBin(), ['import', '--data', srv.dataDir, stream, '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '', err = '';
        p.stdout.on('data', (d) => { out += d; });
        p.stderr.on('data', (d) => { err += d; });
        p.on('error', reject);
        p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`rtlog import exit ${code}: ${err}`))));
        p.stdin.end(events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    });
}

test('WS and SSE followers receive events that rtlog import appends beside the server', async () => {
    const stream = `${RUN}/imported`;
    const posted = makeEvents(RUN, 3, { ts: true });
    await post201(srv, stream, posted, { token: tok });
    const w = wsOpen(srv, `${stream}/stream`, { token: tok });
    const s = sseOpen(srv, `${stream}/stream`, { token: tok });
    await w.waitEvents(3);
    await s.waitEvents(3);
    // Two imports, so the followers are at the head (idle) when each lands.
    const imported = makeEvents(RUN, 5, { startAt: 4, ts: true });
    await rtlogImport(stream, imported.slice(0, 2));
    await w.waitEvents(5);
    await s.waitEvents(5);
    await rtlogImport(stream, imported.slice(2));
    await w.waitEvents(8);
    await s.waitEvents(8);
    const all = [...posted, ...imported];
    w.events().forEach((e, i) => assertDelivered(e, all[i], i + 1, 'WS'));
    s.json_events().forEach((e, i) => assertDelivered(e, all[i], i + 1, 'SSE'));
    assertSseFrames(s, 'SSE frames');
    // Still live for the server's own appends afterwards.
    const more = makeEvents(RUN, 1, { startAt: 9, ts: true });
    await post201(srv, stream, more, { token: tok });
    await w.waitEvents(9);
    await s.waitEvents(9);
    assert.deepEqual(w.events().map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(s.json_events().map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // A sealing event imported from outside ends both streams.
    await rtlogImport(stream, [sealEvent(RUN)]);
    const cl = await within(w.closed, 10000, 'WS close after an imported seal');
    assert.equal(cl.code, 1000, `close ${cl.code} ${cl.reason}`);
    await within(s.ended, 10000, 'SSE end after an imported seal');
    assert.equal(w.events().at(-1).type, 'workflow_completed');
    assert.equal(s.json_events().at(-1).seq, 10);
});

test('a stream created by rtlog import, and the dashboard, follow imports live', async () => {
    const stream = 'deployment-jobs/import-only';
    const first = makeEvents('deployment-jobs', 2);
    await rtlogImport(stream, first);
    const w = wsOpen(srv, `${stream}/stream`, { token: tok });
    await w.waitEvents(2);
    const d = wsOpen(srv, 'dashboard/stream', { token: tok });
    const ds = sseOpen(srv, 'dashboard/stream', { token: tok });
    await within(ds.opened, 5000, 'dashboard SSE');
    assert.equal(ds.status, 200);
    await d.waitFor((m) => m.type === 'heartbeat', 10000, 'dashboard follower live');
    const next = makeEvents('deployment-jobs', 2, { startAt: 3 });
    const alerts = makeEvents('dashboard', 3);
    await Promise.all([rtlogImport(stream, next), rtlogImport('dashboard', alerts)]);
    await w.waitEvents(4);
    await d.waitEvents(3);
    await ds.waitEvents(3);
    [...first, ...next].forEach((e, i) => assertDelivered(w.events()[i], e, i + 1, 'job WS'));
    alerts.forEach((e, i) => assertDelivered(d.events()[i], e, d.events()[0].seq + i, 'dashboard WS'));
    assert.deepEqual(ds.json_events().map((e) => e.seq), d.events().map((e) => e.seq));
    w.close();
    d.close();
    ds.close();
});
