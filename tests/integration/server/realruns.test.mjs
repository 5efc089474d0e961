// realruns.test.mjs - every real CI run in $RTLOG_SHARED_DIR/data/real-runs, posted in NDJSON
// chunks of ~50 events while real clients follow it: SSE (npm eventsource) and WS (npm ws) from
// the start, a WS client that joins halfway, an SSE and a WS client that drop their connection
// every ~500 events and resume from their last seq (Last-Event-ID header / ?lastEventId=), and
// late SSE and WS subscribers that replay the sealed run. Every client must receive exactly the
// posted events, in order, once each, field for field and in key order, plus `seq` 1..n; after
// workflow_completed every stream ends (WS close 1000, SSE response end).
// CONTRACT: "Streams and event ids", "Resuming", "Completion and sealing", "Ingest".
import { test, before, after } from 'node:test';
import path from 'node:path';
import { EventSource, sharedDir } from './lib/harness.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { start, within, mint, post, post201, assertErrorShape, wsOpen,
    assertDelivered } from './lib/itest.mjs';

const SHARED = sharedDir();
const RUNS = path.join(SHARED, 'data', 'real-runs');
const RUN_TYPES = ['step_started', 'step_progress', 'step_log', 'step_completed', 'workflow_completed'];
const CHUNK = 50;

let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '30'] });
    tok = await mint(srv.key, { sub: 'realruns', subscribe: ['workflow-runs/*'], publish: ['workflow-runs/*'] });
});
after(async () => {
    const r = await srv.stop();
    assert.equal(r.code, 0, `server exit ${JSON.stringify(r)}`);
});

/**
 * A follower: one logical subscriber that may span several connections. It records every
 * event it is handed (parsed JSON) and resolves `done` when the server ends the stream after
 * workflow_completed. `dropEvery` > 0 makes it drop and resume every that many events.
 */
function follower(kind, stream, { dropEvery = 0, label }) {
    const f = { label, kind, got: [], conns: 0, drops: 0, problems: [] };
    let resolveDone;
    f.done = new Promise((r) => { resolveDone = r; });
    const last = () => (f.got.length ? f.got[f.got.length - 1].seq : undefined);
    const sealed = () => f.got.length && f.got[f.got.length - 1].type === 'workflow_completed';

    const connect = (cursor) => {
        f.conns++;
        let active = true, sinceConnect = 0;
        const onEvent = (j, stop) => {
            if (!active) return;
            f.got.push(j);
            sinceConnect++;
            if (dropEvery && sinceConnect >= dropEvery && !sealed()) {
                active = false;
                f.drops++;
                stop();
                connect(last());
            }
        };
        if (kind === 'sse' || kind === 'sse-browser') {
            // 'sse': Bearer header through the fetch option; 'sse-browser': what a browser's
            // EventSource can do, the token in the URL (?token=) and no custom headers.
            const headers = kind === 'sse' ? { Authorization: `Bearer ${tok}` } : {};
            if (cursor !== undefined) headers['Last-Event-ID'] = String(cursor);
            const url = `${srv.base}/api/v1/${stream}/stream${kind === 'sse' ? '' : `?token=${encodeURIComponent(tok)}`}`;
            const es = kind === 'sse' || cursor !== undefined
                ? new EventSource(url, { fetch: (u, init) => fetch(u, { ...init, headers: { ...init.headers, ...headers } }) })
                : new EventSource(url);
            const stop = () => es.close();
            for (const t of RUN_TYPES) {
                es.addEventListener(t, (ev) => {
                    const j = JSON.parse(ev.data);
                    if (String(j.seq) !== ev.lastEventId) f.problems.push(`lastEventId ${ev.lastEventId} != seq ${j.seq}`);
                    onEvent(j, stop);
                });
            }
            es.addEventListener('reset', (ev) => { f.problems.push(`unexpected reset ${ev.data}`); });
            es.addEventListener('error', (ev) => {
                if (!active) return;
                if (ev.data !== undefined) f.problems.push(`server error event ${ev.data}`);
                // The response ended: the stream is over. Native EventSource would reconnect;
                // we stop it so a sealed run is not re-requested forever.
                active = false;
                es.close();
                if (!sealed()) f.problems.push(`SSE ended before workflow_completed (code ${ev.code}, ${ev.message})`);
                resolveDone(f);
            });
        } else {
            let c;
            const stop = () => c.close();
            c = wsOpen(srv, `${stream}/stream`, { token: tok, lastEventId: cursor, onMessage: (j) => {
                if (!active) return;
                if (typeof j.seq === 'number') return onEvent(j, stop);
                if (j.type !== 'heartbeat') f.problems.push(`unexpected control message ${JSON.stringify(j)}`);
            } });
            c.closed.then((cl) => {
                if (!active) return;
                active = false;
                if (cl.code !== 1000) f.problems.push(`WS closed with ${cl.code} ${cl.reason} ${JSON.stringify(cl.http ?? '')}`);
                if (!sealed()) f.problems.push('WS closed before workflow_completed');
                resolveDone(f);
            });
        }
    };
    f.start = (cursor) => { connect(cursor); return f; };
    return f;
}

function check(f, posted, what) {
    assert.deepEqual(f.problems, [], `${what} ${f.label}: problems`);
    assert.equal(f.got.length, posted.length, `${what} ${f.label}: received ${f.got.length} of ${posted.length} events`);
    const seqs = f.got.map((e) => e.seq);
    const bad = seqs.findIndex((q, i) => q !== i + 1);
    assert.equal(bad, -1, `${what} ${f.label}: seq ${seqs[bad]} at position ${bad + 1} (duplicate, gap or reorder)`);
    for (let i = 0; i < posted.length; i++) assertDelivered(f.got[i], posted[i], i + 1, `${what} ${f.label}`);
}

const files = fs.readdirSync(RUNS).filter((f) => f.endsWith('.ndjson')).sort();
test('real-runs directory has the six runs', () => assert.ok(files.length >= 6, `found ${files.join(', ')}`));

for (const file of files) {
    test(`real run ${file}: posted in chunks while followed, resumed and replayed`, { timeout: 180000 }, async () => {
        const lines = fs.readFileSync(path.join(RUNS, file), 'utf8').split('\n').filter((l) => l.length);
        const posted = lines.map((l) => JSON.parse(l));
        const n = posted.length;
        assert.equal(posted[n - 1].type, 'workflow_completed');
        const stream = `workflow-runs/${path.basename(file, '.ndjson')}`;

        // An empty batch creates the stream so subscribers can attach before the first event.
        const created = await post(srv, stream, '[]', { token: tok });
        assert.equal(created.status, 201, created.text);

        const dropEvery = Math.min(500, Math.max(20, Math.floor(n / 5)));
        const fs0 = [
            follower('sse', stream, { label: 'SSE from start' }).start(),
            follower('ws', stream, { label: 'WS from start' }).start(),
            follower('sse', stream, { label: `SSE dropping every ${dropEvery}`, dropEvery }).start(),
            follower('ws', stream, { label: `WS dropping every ${dropEvery}`, dropEvery }).start(),
        ];
        const all = [...fs0];
        const half = Math.floor(lines.length / CHUNK / 2) * CHUNK;
        for (let i = 0; i < lines.length; i += CHUNK) {
            if (i === half) {
                all.push(follower('ws', stream, { label: 'WS joining halfway' }).start());
                all.push(follower('sse', stream, { label: 'SSE joining halfway' }).start());
            }
            const chunk = lines.slice(i, i + CHUNK);
            const r = await post201(srv, stream, chunk.join('\n') + '\n', { token: tok, ndjson: true });
            assert.deepEqual(r, { stream, firstSeq: i + 1, lastSeq: i + chunk.length }, `201 body for chunk at ${i}`);
        }
        if (half >= lines.length) {
            all.push(follower('ws', stream, { label: 'WS joining after the end' }).start());
        }
        await within(Promise.all(all.map((f) => f.done)), 90000,
            `every follower ends: ${all.map((f) => `${f.label}=${f.got.length}`).join(', ')}`);
        for (const f of all) check(f, posted, file);
        for (const f of all.filter((x) => x.label.includes('dropping'))) {
            if (n > dropEvery) assert.ok(f.drops >= 1, `${f.label} never dropped (n=${n})`);
        }
        // All clients saw the same server-filled timestamps.
        for (const f of all.slice(1)) assert.deepStrictEqual(f.got, all[0].got, `${f.label} vs ${all[0].label}`);

        // Sealed: further appends are refused, and a late subscriber replays all, then ends.
        const refused = await post(srv, stream, lines[0], { token: tok, ndjson: true });
        assert.equal(refused.status, 409, refused.text);
        assertErrorShape(refused.json, 'conflict', 'append to sealed run', ['lastSeq']);
        const late = [follower('sse-browser', stream, { label: 'late SSE (?token=, browser-style)' }).start(),
            follower('ws', stream, { label: 'late WS' }).start()];
        await within(Promise.all(late.map((f) => f.done)), 60000, 'late subscribers end');
        for (const f of late) {
            check(f, posted, file);
            assert.deepStrictEqual(f.got, all[0].got, `${f.label} vs live followers`);
        }
    });
}
