// resume.test.mjs - resuming with a cursor (catch-up, then live, no gap, no duplicate):
// handed.md C02 (a)-(f) on the run, job and dashboard streams over SSE and WS; C03 the cursor
// values matrix (every value: 400 or its documented meaning; the server survives); a cursor
// beyond the head gives an in-band reset then a full replay; filters nodeId/types; follow=false.
// CONTRACT "Resuming (catch-up, then live)", "Streams and event ids".
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, within, mint, post201, get, rawHttp, dechunk, assertErrorShape, SseParser,
    sseOpen, assertSseFrames, wsOpen, assertWsRefused, makeEvents, metricUpdate, assertDelivered,
    alive } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1'] });
    tok = await mint(srv.key, { sub: 'resume' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** A stream under test with everything ever posted to it, so deliveries can be compared. */
function tracked(name, kind) {
    const s = { name, kind, posted: [] };
    s.append = async (events) => {
        const r = await post201(srv, name, events, { token: tok });
        assert.equal(r.firstSeq, s.posted.length + 1);
        s.posted.push(...events);
        return r;
    };
    s.head = () => s.posted.length;
    // Every event here carries its timestamp: the server-filled one is ingest.test.mjs's concern.
    s.next = () => kind === 'dashboard' ? makeEvents('dashboard', 1, { startAt: 2 * s.head() + 1, ts: true })
        : makeEvents(kind, 1, { startAt: s.head() + 1, ts: true });
    return s;
}

/**
 * Open a subscriber (@how 'sse' | 'ws'), wait for the replayed part (@expect seqs before the
 * append), append one event, wait for it, and assert the subscriber saw exactly @expect
 * followed by the new seq, each equal to what was posted.
 */
async function resumeCase(s, how, opts, expect, what) {
    const c = how === 'sse' ? sseOpen(srv, `${s.name}/stream${opts.query ?? ''}`, { token: tok, lastEventId: opts.header })
        : wsOpen(srv, `${s.name}/stream${opts.query ?? ''}`, { token: tok });
    await c.opened;
    if (how === 'sse') assert.equal(c.status, 200, `${what}: ${c.status} ${c.text}`);
    await c.waitEvents(expect.length);
    await sleep(200);
    const nextSeq = s.head() + 1;
    await s.append(s.next());
    await c.waitEvents(expect.length + 1);
    await sleep(300);
    const got = how === 'sse' ? c.json_events() : c.events();
    assert.deepEqual(got.map((e) => e.seq), [...expect, nextSeq], `${what}: seqs`);
    for (const e of got) assertDelivered(e, s.posted[e.seq - 1], e.seq, what);
    if (how === 'sse') assertSseFrames(c, what);
    else for (const m of c.msgs) assert.ok(typeof m.seq === 'number' || m.type === 'heartbeat', `${what}: ${JSON.stringify(m)}`);
    c.close();
}
const range = (a, b) => Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);

describe('C02 resume matrix', () => {
    for (const kind of [RUN, 'deployment-jobs', 'dashboard']) {
        test(`${kind}: (a) at head, (b) mid, (c) 0, (d) none, (e) WS mid, (f) header wins over query`, { timeout: 60000 }, async () => {
            const s = tracked(kind === 'dashboard' ? 'dashboard' : `${kind}/c02`, kind);
            if (kind === 'dashboard') {
                // metric_update at seq 1 and 6: a dashboard without cursor starts at seq 6.
                const ev = makeEvents('dashboard', 10, { ts: true });
                ev[0] = metricUpdate(1);
                ev[5] = metricUpdate(6);
                await s.append(ev);
            } else await s.append(makeEvents(kind, 10, { ts: true }));
            let H = s.head();
            await resumeCase(s, 'sse', { header: H }, [], '(a) Last-Event-ID = head');
            H = s.head();
            await resumeCase(s, 'sse', { header: H - 6 }, range(H - 5, H), '(b) Last-Event-ID = head-6');
            H = s.head();
            await resumeCase(s, 'sse', { header: 0 }, range(1, H), '(c) Last-Event-ID 0');
            H = s.head();
            // (d) documented default: run and job from seq 1; dashboard from its latest metric_update.
            await resumeCase(s, 'sse', {}, kind === 'dashboard' ? range(6, H) : range(1, H), '(d) no cursor');
            H = s.head();
            await resumeCase(s, 'ws', { query: `?lastEventId=${H - 6}` }, range(H - 5, H), '(e) WS lastEventId');
            H = s.head();
            await resumeCase(s, 'ws', {}, kind === 'dashboard' ? range(6, H) : range(1, H), '(d) WS no cursor');
            H = s.head();
            await resumeCase(s, 'sse', { header: H - 6, query: `?lastEventId=${H - 2}` }, range(H - 5, H), '(f) header wins');
            H = s.head();
            await resumeCase(s, 'sse', { query: `?lastEventId=${H - 3}` }, range(H - 2, H), 'SSE query cursor');
        });
    }

    test('dashboard with no metric_update yet: live only (fresh server)', async () => {
        const s2 = await start({ args: ['--heartbeat', '1'] });
        const t = await mint(s2.key, { sub: 'dash' });
        await post201(s2, 'dashboard', makeEvents('dashboard', 3), { token: t });
        const c = sseOpen(s2, 'dashboard/stream', { token: t });
        await c.opened;
        await sleep(500);
        await post201(s2, 'dashboard', makeEvents('dashboard', 1, { startAt: 9 }), { token: t });
        await c.waitEvents(1);
        await sleep(300);
        assert.deepEqual(c.json_events().map((e) => e.seq), [4]);
        c.close();
        assert.equal((await s2.stop()).code, 0);
    });
});

describe('C03 cursor values', () => {
    const stream = `${RUN}/c03`;
    before(async () => { await post201(srv, stream, makeEvents(RUN, 10), { token: tok }); });

    /** Raw SSE request with a literal Last-Event-ID header line (bytes as given). */
    async function sseRaw(headerLines) {
        const head = Buffer.concat([Buffer.from(`GET /api/v1/${stream}/stream?follow=false HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            `Accept: text/event-stream\r\nAuthorization: Bearer ${tok}\r\n`), ...headerLines.map((l) => Buffer.concat([Buffer.from('Last-Event-ID:'), l, Buffer.from('\r\n')])),
        Buffer.from('\r\n')]);
        const r = await rawHttp(srv, head, { ms: 8000 });
        let body = r.body;
        if (/chunked/i.test(r.headers['transfer-encoding'] ?? '')) body = dechunk(body);
        const p = new SseParser();
        if (r.status === 200) p.feed(Buffer.from(body));
        return { ...r, p, body };
    }
    const B = (s) => Buffer.from(s, 'utf8');
    const bad = ['1:', '+5', '-1', '0x0A', '1e3', '5.0', '18446744073709551615', '18446744073709551616',
        '9223372036854775808', '99999999999999999999999999', 'abc', '５', '9'.repeat(8192), '5,6', '5 6'];
    const good = [['', range(1, 10)], [' 5', range(6, 10)], ['5 ', range(6, 10)], ['\t5\t', range(6, 10)], ['007', range(8, 10)],
        ['0', range(1, 10)], ['10', []], ['9', [10]]];

    test('SSE Last-Event-ID: malformed values are 400 bad_request, never a stream', async () => {
        for (const v of bad) {
            const r = await sseRaw([B(` ${v}`)]);
            assert.equal(r.status, 400, `Last-Event-ID ${JSON.stringify(v.slice(0, 30))}: ${r.status} ${r.body.slice(0, 200)}`);
            assertErrorShape(JSON.parse(r.body), 'bad_request', `Last-Event-ID ${v.slice(0, 30)}`);
        }
        // A raw NUL after the digits must not be read as "5" (lws may also refuse the request).
        const nul = await sseRaw([Buffer.from([0x20, 0x35, 0x00])]);
        assert.ok(nul.status === 400 || nul.status === 0, `5\\0: ${nul.status}`);
        if (nul.status === 400) assertErrorShape(JSON.parse(nul.body), 'bad_request', '5\\0');
        assert.ok(alive(srv.pid));
    });

    test('SSE Last-Event-ID: OWS trimmed, empty = absent, leading zeros, in-range values', async () => {
        for (const [v, want] of good) {
            const r = await sseRaw([B(` ${v}`)]);
            assert.equal(r.status, 200, `Last-Event-ID ${JSON.stringify(v)}: ${r.status} ${r.body.slice(0, 200)}`);
            assert.deepEqual(r.p.events.map((e) => Number(e.idField)), want, `Last-Event-ID ${JSON.stringify(v)}`);
        }
        // In range but beyond the head: reset, then everything.
        for (const v of ['9223372036854775807', '11']) {
            const r = await sseRaw([B(` ${v}`)]);
            assert.equal(r.status, 200);
            assert.equal(r.p.events[0].type, 'reset', `${v}: first event ${r.p.events[0]?.type}`);
            assert.deepEqual(JSON.parse(r.p.events[0].data), { type: 'reset', earliestSeq: 1, lastSeq: 10 });
            assert.deepEqual(r.p.events.slice(1).map((e) => Number(e.idField)), range(1, 10));
        }
    });

    test('two Last-Event-ID headers (5 and 6): 400, or one of them honoured whole', async () => {
        const r = await sseRaw([B(' 5'), B(' 6')]);
        if (r.status === 400) assertErrorShape(JSON.parse(r.body), 'bad_request', 'duplicate header');
        else {
            assert.equal(r.status, 200);
            const ids = r.p.events.map((e) => Number(e.idField));
            assert.ok(JSON.stringify(ids) === JSON.stringify(range(6, 10)) || JSON.stringify(ids) === JSON.stringify(range(7, 10)),
                `duplicate Last-Event-ID gave ${ids}`);
        }
    });

    test('WS ?lastEventId=: malformed values close 4400, good ones resume; the server survives', async () => {
        for (const v of [...bad.filter((x) => x.length < 100), '5%']) {
            const c = wsOpen(srv, `${stream}/stream`, { token: tok, query: `follow=false&lastEventId=${encodeURIComponent(v)}` });
            await assertWsRefused(c, 400, 'bad_request', `WS lastEventId ${JSON.stringify(v)}`);
        }
        // %00 in the query: refused (400/4400), or dropped by lws before the upgrade; never "5".
        const nul = wsOpen(srv, `${stream}/stream`, { token: tok, query: 'follow=false&lastEventId=5%00' });
        const nc = await within(nul.closed, 10000, 'WS 5%00');
        assert.equal(nul.events().length, 0, 'lastEventId=5%00 was read as 5');
        if (nul.isOpen) await assertWsRefused(nul, 400, 'bad_request', 'WS lastEventId 5%00');
        else assert.ok(nc.http ? nc.http.status === 400 : true, `WS 5%00: ${JSON.stringify(nc)}`);
        for (const [v, want] of good) {
            const c = wsOpen(srv, `${stream}/stream`, { token: tok, query: `follow=false&lastEventId=${encodeURIComponent(v)}` });
            const cl = await within(c.closed, 10000, `WS ${v}`);
            assert.equal(cl.code, 1000, `WS lastEventId ${JSON.stringify(v)}: close ${cl.code} ${JSON.stringify(c.msgs).slice(0, 200)}`);
            assert.deepEqual(c.events().map((e) => e.seq), want, `WS lastEventId ${JSON.stringify(v)}`);
        }
        const big = wsOpen(srv, `${stream}/stream`, { token: tok, query: `lastEventId=${'9'.repeat(4000)}` });
        await assertWsRefused(big, 400, 'bad_request', 'WS 4000 nines');
        assert.ok(alive(srv.pid));
        assert.equal((await get(srv, '/health/live')).status, 200);
    });

    test('path ids and other numbers from the client: never a crash (C03 family)', async () => {
        for (const p of [`${RUN}/run-0001%00/stream`, `${RUN}/${'r'.repeat(4096)}/stream`, `${RUN}/../stream`, `${RUN}/%ff%fe/stream`]) {
            const c = sseOpen(srv, p, { token: tok });
            await within(c.ended, 5000, p.slice(0, 60));
            // lws drops a path that decodes to a NUL without an answer (status 0): no stream either.
            assert.ok((c.status >= 400 && c.status < 500) || (c.status === 0 && p.includes('%00')), `${p.slice(0, 60)}: ${c.status}`);
            assert.equal(c.p.events.length, 0);
        }
        for (const q of ['?follow=maybe', '?types=', '?nodeId=', `?types=${'a,'.repeat(3000)}`]) {
            const c = sseOpen(srv, `${stream}/stream${q}`, { token: tok });
            await c.opened;
            assert.ok(c.status === 200 || c.status === 400, `${q.slice(0, 40)}: ${c.status}`);
            c.close();
        }
        assert.ok(alive(srv.pid));
    });
});

describe('reset, filters, follow=false', () => {
    test('cursor beyond the head: in-band reset (SSE event without id; WS message without seq), then full replay and live', async () => {
        const s = tracked(`${RUN}/reset`, RUN);
        await s.append(makeEvents(RUN, 10));
        const c = sseOpen(srv, `${s.name}/stream`, { token: tok, lastEventId: 50 });
        const w = wsOpen(srv, `${s.name}/stream`, { token: tok, lastEventId: 50 });
        await c.waitEvents(11);
        await w.waitMsgs(11);
        await s.append(s.next());
        await c.waitEvents(12);
        await w.waitEvents(11);
        const first = c.p.events[0];
        assert.equal(first.type, 'reset');
        assert.equal(first.idField, undefined, 'reset carries no id');
        assert.deepEqual(JSON.parse(first.data), { type: 'reset', earliestSeq: 1, lastSeq: 10 });
        assert.deepEqual(c.json_events().map((e) => e.seq), range(1, 11));
        assertSseFrames(c, 'reset SSE');
        assert.deepEqual(w.msgs[0], { type: 'reset', earliestSeq: 1, lastSeq: 10 });
        assert.deepEqual(w.events().map((e) => e.seq), range(1, 11));
        c.close();
        w.close();
    });

    test('filters nodeId= and types= (replay and live), ids stay the stream seqs', async () => {
        const s = tracked(`${RUN}/filt`, RUN);
        const ev = [];
        for (let i = 0; i < 12; i++) {
            const node = i % 2 ? 'b' : 'a';
            ev.push(i % 3 === 0 ? { type: 'step_log', nodeId: node, line: `l${i}`, level: 'info' }
                : i % 3 === 1 ? { type: 'step_progress', nodeId: node, progress: i, message: `m${i}` }
                    : { type: 'step_completed', nodeId: node, status: 'succeeded', outputs: {}, duration: 1.5 });
        }
        await s.append(ev);
        const want = (pred) => s.posted.map((e, i) => [e, i + 1]).filter(([e]) => pred(e)).map(([, q]) => q);
        const cases = [
            ['?nodeId=b', (e) => e.nodeId === 'b'],
            ['?types=step_log,step_completed', (e) => e.type === 'step_log' || e.type === 'step_completed'],
            ['?nodeId=a&types=step_progress', (e) => e.nodeId === 'a' && e.type === 'step_progress'],
            ['?types=step_log', (e) => e.type === 'step_log'],
            ['?nodeId=zzz', () => false],
        ];
        for (const [q, pred] of cases) {
            const c = sseOpen(srv, `${s.name}/stream${q}&follow=false`, { token: tok });
            await within(c.ended, 10000, q);
            assert.deepEqual(c.json_events().map((e) => e.seq), want(pred), `SSE ${q}`);
            assertSseFrames(c, q);
            const w = wsOpen(srv, `${s.name}/stream${q}&follow=false`, { token: tok });
            const cl = await within(w.closed, 10000, q);
            assert.equal(cl.code, 1000);
            assert.deepEqual(w.events().map((e) => e.seq), want(pred), `WS ${q}`);
        }
        // Live: a types filter passes the step_log and skips the step_progress before it.
        const live = sseOpen(srv, `${s.name}/stream?types=step_log`, { token: tok, lastEventId: 12 });
        const wl = wsOpen(srv, `${s.name}/stream?nodeId=b`, { token: tok, lastEventId: 12 });
        await live.opened;
        await wl.opened;
        await sleep(300);
        await s.append([{ type: 'step_progress', nodeId: 'b', progress: 1, message: 'p' }, { type: 'step_log', nodeId: 'a', line: 'x', level: 'info' }]);
        await s.append([{ type: 'step_log', nodeId: 'b', line: 'y', level: 'info' }]);
        await live.waitEvents(2);
        await wl.waitEvents(2);
        await sleep(300);
        assert.deepEqual(live.json_events().map((e) => e.seq), [14, 15]);
        assert.deepEqual(wl.events().map((e) => e.seq), [13, 15]);
        live.close();
        wl.close();
    });

    test('follow=false: replay what is stored, then end (SSE end, WS 1000); empty stream ends at once', async () => {
        const s = tracked(`${RUN}/nofollow`, RUN);
        await s.append(makeEvents(RUN, 7));
        const c = sseOpen(srv, `${s.name}/stream?follow=false`, { token: tok });
        await within(c.ended, 10000, 'SSE follow=false end');
        assert.deepEqual(c.json_events().map((e) => e.seq), range(1, 7));
        const w = wsOpen(srv, `${s.name}/stream?follow=false`, { token: tok, lastEventId: 3 });
        const cl = await within(w.closed, 10000, 'WS follow=false close');
        assert.equal(cl.code, 1000);
        assert.deepEqual(w.events().map((e) => e.seq), range(4, 7));
        await post201(srv, `${RUN}/empty`, '[]', { token: tok });
        const e = sseOpen(srv, `${RUN}/empty/stream?follow=false`, { token: tok });
        await within(e.ended, 10000, 'empty stream end');
        assert.equal(e.status, 200);
        assert.equal(e.p.events.length, 0);
        const we = wsOpen(srv, `${RUN}/empty/stream?follow=false`, { token: tok });
        assert.equal((await within(we.closed, 10000, 'empty WS')).code, 1000);
        assert.equal(we.events().length, 0);
    });
});
