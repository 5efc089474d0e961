// dashboard.test.mjs - issue 4, dashboard part: the dashboard stream over the real server
// with real clients (npm ws, npm eventsource). A new subscriber without a cursor gets the
// latest metric_update first, then what followed it, then live events; with a cursor it
// resumes like any stream; retention (--dashboard-retain-events / -seconds) trims old events
// without ever removing the latest metric_update, a cursor older than what is retained gets
// an in-band reset, and the trimmed stream still verifies (rtlog verify, export). Age is
// time since append (README "Dashboard retention").
// CONTRACT "Resuming (catch-up, then live)"; README "Dashboard retention".
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventSource, rtlogBin } from './lib/harness.mjs';
import { start, mint, post201, get, within, waitUntil, sseOpen, assertSseFrames, wsOpen,
    storedEvents, metricUpdate } from './lib/itest.mjs';

const servers = [];
after(async () => {
    for (const s of servers) {
        const r = await s.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
    }
});

async function server(args) {
    const s = await start({ args: ['--heartbeat', '1', '--dashboard-retain-interval', '100ms', ...args] });
    servers.push(s);
    return { s, tok: await mint(s.key, { sub: 'dash' }) };
}

const alert = (i, timestamp = '2026-01-10T14:23:45Z') => ({ type: 'alert',
    alert: { id: `a${i}`, severity: 'warning', title: `t${i}`, message: `m${i}`, resourceType: 'deployment',
        resourceId: 'r', timestamp } });
const promotion = (i) => ({ type: 'promotion_update', promotion: { id: `p${i}`, releaseName: 'app-v1',
    targetEnvironment: 'Production', status: 'awaiting_approval', requestedBy: 'J D' } });

/** rtlog_dashboard_first_seq from /metrics. */
async function firstSeqMetric(s) {
    const r = await get(s, '/metrics');
    const m = /^rtlog_dashboard_first_seq (\d+)$/m.exec(r.text);
    return m ? Number(m[1]) : 0;
}

/** Post events one request each (so each is stored alone, as live dashboard events are). */
async function postEach(s, tok, events) {
    const seqs = [];
    for (const e of events) seqs.push((await post201(s, 'dashboard', e, { token: tok })).firstSeq);
    return seqs;
}

const rtlog = (...args) => execFileSync(rtlogBin(), args, { encoding: 'utf8' });
/** Run rtlog expecting exit 1; returns its stderr. */
function rtlogFails(...args) {
    try {
        execFileSync(rtlogBin(), args, { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
        assert.equal(e.status, 1, e.stderr);
        return e.stderr;
    }
    throw new Error(`rtlog ${args.join(' ')} succeeded`);
}

/** Exports of the trimmed dashboard verify from their base (document: its own baseHash;
 * NDJSON: --base, or the store), with tools/verify_chain.py too; a changed event does not. */
function checkExports(s, st) {
    const dir = mkdtempSync(join(tmpdir(), 'rtlog-dash-'));
    try {
        const doc = join(dir, 'd.json'), nd = join(dir, 'd.ndjson');
        rtlog('export', '--data', s.dataDir, 'dashboard', '-o', doc);
        rtlog('export', '--data', s.dataDir, 'dashboard', '--ndjson', '-o', nd);
        assert.match(rtlog('verify', '--file', doc, '--head', st.headHash),
            new RegExp(`^ok: .*: ${st.events} events, head ${st.headHash}; document hashes and headHash match; matches --head; seq ${st.firstSeq}\\.\\.${st.lastSeq} chained from base ${st.baseHash}`));
        assert.match(rtlog('verify', '--data', s.dataDir, '--file', doc), /; matches the store's dashboard \(seq 7\.\.12\)/);
        assert.match(rtlog('verify', '--file', nd, '--base', st.baseHash, '--head', st.headHash), /^ok: /);
        assert.match(rtlog('verify', '--data', s.dataDir, '--file', nd, 'dashboard'), /matches the store's dashboard/);
        assert.match(rtlogFails('verify', '--file', nd), /starts at seq 7 .*--base/);
        const py = fileURLToPath(new URL('../../../tools/verify_chain.py', import.meta.url));
        assert.equal(execFileSync('python3', [py, '--base', st.baseHash, nd], { encoding: 'utf8' }).trim(), st.headHash);
        // One byte changed in an event: the document no longer verifies, and names it.
        writeFileSync(doc, readFileSync(doc, 'utf8').replace('"pendingApprovals":7', '"pendingApprovals":8'));
        assert.match(rtlogFails('verify', '--file', doc), /event seq 7 .*does not match/);
        // A wrong base gives another chain: the published head no longer matches.
        assert.match(rtlogFails('verify', '--file', nd, '--base', '0'.repeat(64), '--head', st.headHash),
            /head does not match --head/);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

describe('dashboard: latest metric first, then live', () => {
    test('three metric_updates, an alert, a promotion_update; new WS and EventSource subscribers', async () => {
        // Default retention (10000 events, 7 days since append): nothing goes here.
        const { s, tok } = await server([]);
        const now = new Date().toISOString();
        const metric = (i) => ({ ...metricUpdate(i), timestamp: now });
        const posted = [metric(1), metric(2), metric(3), alert(4, now), promotion(5)];
        assert.deepEqual(await postEach(s, tok, posted), [1, 2, 3, 4, 5]);

        // WS without a cursor: the latest metric_update (seq 3), then 4 and 5.
        const ws = wsOpen(s, 'dashboard/stream', { token: tok });
        await ws.waitEvents(3);
        // npm eventsource (a WHATWG EventSource), no Last-Event-ID: the same start.
        const es = new EventSource(`${s.base}/api/v1/dashboard/stream?token=${tok}`);
        const got = [];
        for (const t of ['metric_update', 'alert', 'promotion_update', 'reset'])
            es.addEventListener(t, (e) => got.push({ type: t, id: e.lastEventId, data: JSON.parse(e.data) }));
        await waitUntil(() => got.length >= 3, 10000, 'three EventSource events');

        for (const [what, evs] of [['ws', ws.events()], ['eventsource', got.map((g) => g.data)]]) {
            assert.deepEqual(evs.map((e) => e.seq), [3, 4, 5], `${what}: starts at the latest metric_update`);
            assert.equal(evs[0].type, 'metric_update', what);
            assert.equal(evs[0].metrics.pendingApprovals, 3, `${what}: the latest one, not an older one`);
            assert.deepEqual(evs.map((e) => e.type), ['metric_update', 'alert', 'promotion_update'], what);
        }
        assert.deepEqual(got.map((g) => g.id), ['3', '4', '5'], 'SSE ids are the seqs');

        // Live: both get the next events as they are committed, nothing twice.
        await postEach(s, tok, [alert(6, now), metric(7)]);
        await ws.waitEvents(5);
        await waitUntil(() => got.length >= 5, 10000, 'live EventSource events');
        es.close();
        ws.close();
        assert.deepEqual(ws.events().map((e) => e.seq), [3, 4, 5, 6, 7]);
        assert.deepEqual(got.map((g) => g.data.seq), [3, 4, 5, 6, 7]);
        assert.equal(got[4].data.metrics.pendingApprovals, 7);

        // With a cursor the dashboard resumes like any stream: everything after it.
        const c = sseOpen(s, 'dashboard/stream?follow=false', { token: tok, lastEventId: 1 });
        await within(c.ended, 10000, 'follow=false replay');
        assertSseFrames(c, 'cursor 1');
        assert.deepEqual(c.json_events().map((e) => e.seq), [2, 3, 4, 5, 6, 7]);
        const w = wsOpen(s, 'dashboard/stream', { token: tok, lastEventId: 4, query: 'follow=false' });
        await within(w.closed, 10000, 'WS follow=false');
        assert.deepEqual(w.events().map((e) => e.seq), [5, 6, 7]);
    });
});

describe('dashboard retention', () => {
    test('count: old events go, the latest metric_update stays, old cursors get a reset', async () => {
        const { s, tok } = await server(['--dashboard-retain-events', '4', '--dashboard-retain-seconds', '0']);
        // A live subscriber that has seen everything up to seq 2 keeps its connection.
        const posted = [metricUpdate(1), alert(2), promotion(3), metricUpdate(4), alert(5), promotion(6),
            metricUpdate(7), alert(8), promotion(9)];
        await postEach(s, tok, posted);
        // 9 events, keep 4: seqs 1..5 go (6..9 stay; the latest metric_update, 7, is among them).
        await waitUntil(async () => (await firstSeqMetric(s)) === 6, 15000, 'retention to trim to seq 6');

        // A replay from the beginning: reset (earliest retained 6, head 9), then 6..9.
        const c = sseOpen(s, 'dashboard/stream?follow=false', { token: tok, lastEventId: 0 });
        await within(c.ended, 10000, 'replay after trim');
        assertSseFrames(c, 'after trim');
        const evs = c.events();
        assert.equal(evs[0].type, 'reset');
        assert.deepEqual(JSON.parse(evs[0].data), { type: 'reset', earliestSeq: 6, lastSeq: 9 });
        assert.deepEqual(c.json_events().map((e) => e.seq), [6, 7, 8, 9]);
        // A cursor inside the retained history: no reset.
        assert.deepEqual((await storedEvents(s, tok, 'dashboard', { lastEventId: 5 })).map((e) => e.seq), [6, 7, 8, 9]);
        // A new subscriber without a cursor still starts at the latest metric_update.
        const ws = wsOpen(s, 'dashboard/stream', { token: tok });
        await ws.waitEvents(3);
        assert.deepEqual(ws.events().map((e) => [e.seq, e.type]), [[7, 'metric_update'], [8, 'alert'], [9, 'promotion_update']]);
        assert.equal(ws.msgs.filter((m) => m.type === 'reset').length, 0);

        // Seqs are never reused: appends go on at 10; retention keeps trimming.
        assert.deepEqual(await postEach(s, tok, [alert(10), alert(11), alert(12)]), [10, 11, 12]);
        await ws.waitEvents(6);
        ws.close();
        // 7 events (6..12) > 4: the cut would be 9, but the latest metric_update (7) stays.
        await waitUntil(async () => (await firstSeqMetric(s)) === 7, 15000, 'retention to stop at the metric_update');
        const m = await get(s, '/metrics');
        assert.match(m.text, /^rtlog_dashboard_trimmed_events_total 6$/m);
        assert.match(m.text, /^rtlog_dashboard_trim_failures_total 0$/m);

        // The store agrees, and the trimmed stream still verifies (read-only beside the server).
        const st = JSON.parse(rtlog('stat', '--data', s.dataDir, '--json', 'dashboard'));
        assert.equal(st.firstSeq, 7);
        assert.equal(st.lastSeq, 12);
        assert.equal(st.events, 6);
        assert.match(st.baseHash, /^[0-9a-f]{64}$/);
        assert.match(rtlog('verify', '--data', s.dataDir, 'dashboard'), /^ok: dashboard 6 events, head [0-9a-f]{64}/);
        const doc = rtlog('export', '--data', s.dataDir, 'dashboard');
        const head = JSON.parse(doc.slice(0, doc.indexOf('"events":[')) + '"events":[]}');
        assert.equal(head.firstSeq, 7);
        assert.equal(head.baseHash, st.baseHash);
        assert.equal(head.headHash, st.headHash);
        checkExports(s, st);
    });

    test('age: events appended longer ago than the limit go, the latest metric_update stays', async () => {
        const { s, tok } = await server(['--dashboard-retain-events', '0', '--dashboard-retain-seconds', '1']);
        // Age is time since append, not the producer's timestamp: these old-looking
        // timestamps do not matter, and a promotion_update (no time at all) ages the same.
        const ws = wsOpen(s, 'dashboard/stream', { token: tok, lastEventId: 0 });
        await postEach(s, tok, [alert(1), promotion(2), metricUpdate(3), alert(4)]);
        await ws.waitEvents(4);
        await waitUntil(async () => (await firstSeqMetric(s)) === 3, 15000, 'age retention to trim to seq 3');
        await postEach(s, tok, [promotion(5), metricUpdate(6), alert(7)]);
        await ws.waitEvents(7);
        await waitUntil(async () => (await firstSeqMetric(s)) === 6, 15000, 'age retention to trim to seq 6');
        // The connected subscriber had seen everything: no reset, no gap, nothing twice.
        ws.close();
        assert.deepEqual(ws.events().map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
        assert.equal(ws.msgs.filter((m) => m.type === 'reset').length, 0);
        const evs = await storedEvents(s, tok, 'dashboard', { lastEventId: 5 });
        assert.deepEqual(evs.map((e) => [e.seq, e.type]), [[6, 'metric_update'], [7, 'alert']]);
        assert.match(rtlog('verify', '--data', s.dataDir, 'dashboard'), /^ok: dashboard 2 events/);
    });
});
