// errors.test.mjs - every error answer and close code of CONTRACT "Errors and limits" and
// "Ingest": 400 (bad id, bad cursor, bad JSON naming event index and field), 401, 403, 404,
// 409 (sealed, expectedSeq mismatch with lastSeq), 411 (chunked), 413 (body, event), 429
// (per subject, in total); on WS 4400/4401/4403/4404/4429, 1009, 1007, 1003 (binary), 1000
// on seal, 1001 on SIGTERM drain; the error JSON shape {"type","code","message","timestamp"}
// and no seq on control messages. A batch that fails changes nothing (atomic).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rtlogBin } from './lib/harness.mjs';
import { start, sleep, waitUntil, within, mint, post, post201, get, rawHttp, assertErrorShape,
    assertHttpError, sseOpen, wsOpen, assertWsRefused, wsFrame, wsRaw, makeEvents, sealEvent,
    alive, storedEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
/** A canonical stream name (CONTRACT "Streams and event ids"). */
const STREAM_NAME = /^(?:(?:workflow-runs|deployment-jobs|agents)\/[A-Za-z0-9._:-]{1,128}|dashboard)$/;

/** Names of every stream in @srv's store (`rtlog ls --json`, read beside the running server). */
function storeNames(srv) {
    return JSON.parse(execFileSync(rtlogBin(), ['ls', '--json', '--data', srv.dataDir], { encoding: 'utf8' }))
        .map((x) => x.stream);
}

/**
 * The stream an ingest path is served as after lws 4.1.6 has percent-decoded it and removed
 * dot segments and empty segments (RFC 3986 5.2.4, as lws' parser does it), or null when
 * the result names no stream (then rtlog answers 400 or 404).
 */
function servedStream(rawPath) {
    let decoded;
    try { decoded = decodeURIComponent(rawPath); } catch { return null; }
    const out = [];
    for (const seg of decoded.split('/')) {
        if (seg === '..') out.pop();
        else if (seg !== '.' && seg !== '') out.push(seg);
    }
    const m = /^\/api\/v1\/(.+)\/events$/.exec('/' + out.join('/'));
    return m && STREAM_NAME.test(m[1]) ? m[1] : null;
}

describe('ingest and stream errors (HTTP)', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--max-body-bytes', '2097152'] });
        tok = await mint(srv.key, { sub: 'errors' });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('bad stream ids: 400/404, or the path lws normalised to (access checked on it); never a stray name', async () => {
        // Percent-decoded, each of these is an id outside [A-Za-z0-9._:-]{1,128}. lws 4.1.6
        // decodes %XX and collapses dot segments before rtlog sees the path, and keeps no
        // copy of the raw request target (rtlog_server.h, README "Known limits"): an id like
        // "%2e%2e%2fdashboard" is served as the path it normalises to. What must hold: the
        // answer is for the served name (400/404 when that is not a stream), the access
        // check runs on the served name, and no stream outside the alphabet ever exists.
        const bad = ['a'.repeat(129), 'run%20x', 'run!x', 'r%C3%A9n', 'run%2fx', 'run%0d%0ax', '%2e%2e%2fdashboard',
            '%2e%2e%2f%2e%2e%2fdashboard', 'x%2f%2e%2e%2f%2e%2e%2fdeployment-jobs%2fj', 'run%00x'];
        const status = async (fn) => { try { return await fn(); } catch (e) { return { status: 0, error: e.cause?.message ?? e.message }; } };
        // Only workflow runs: the normalised names below are outside this token's grants.
        const narrow = await mint(srv.key, { sub: 'narrow-ids', subscribe: [`${RUN}/*`], publish: [`${RUN}/*`] });
        const before = storeNames(srv);
        const problems = [];
        const served = [];
        for (const id of bad) {
            const short = id.slice(0, 40);
            const target = servedStream(`/api/v1/${RUN}/${id}/events`);
            if (target) {
                // A normalised path naming a real stream: answered as that stream.
                served.push(target);
                const r = await post(srv, `${RUN}/${id}`, '[]', { token: tok });
                if (r.status !== 201 || r.json?.stream !== target) problems.push(`POST id ${short}: ${r.status} ${r.text} (served as ${target})`);
                const rn = await post(srv, `${RUN}/${id}`, '[]', { token: narrow });
                if (rn.status !== 403) problems.push(`POST id ${short} without access to ${target}: ${rn.status}`);
                else assertErrorShape(rn.json, 'forbidden', `POST id ${short} (narrow)`);
                const sn = sseOpen(srv, `${RUN}/${id}/stream`, { token: narrow });
                await within(sn.ended, 5000, `SSE ${id} (narrow)`);
                if (sn.status !== 403) problems.push(`SSE id ${short} without access to ${target}: ${sn.status}`);
                else assertErrorShape(sn.json, 'forbidden', `SSE id ${short} (narrow)`);
                await assertWsRefused(wsOpen(srv, `${RUN}/${id}/stream`, { token: narrow }), 403, 'forbidden', `WS id ${short} (narrow)`);
                continue;
            }
            // lws itself drops a request whose path decodes to a NUL before rtlog sees it;
            // that is no answer rather than a 400, but never a stream.
            const okStatuses = id.includes('%00') ? [400, 404, 0] : [400, 404];
            const r = await status(() => post(srv, `${RUN}/${id}`, '[]', { token: tok }));
            if (!okStatuses.includes(r.status)) problems.push(`POST id ${short}: ${r.status} ${r.text ?? r.error}`);
            else if (r.status) assertErrorShape(r.json, r.status === 400 ? 'bad_request' : 'not_found', `POST id ${short}`);
            const s = sseOpen(srv, `${RUN}/${id}/stream`, { token: tok });
            await within(s.opened, 5000, `SSE bad id ${id}`);
            if (s.status === 200) s.close(); // a stream was opened: reported below
            else await within(s.ended, 5000, `SSE bad id ${id}`);
            if (!okStatuses.includes(s.status)) problems.push(`SSE id ${short}: ${s.status}`);
            else if (s.status) assertErrorShape(s.json, s.status === 400 ? 'bad_request' : 'not_found', `SSE id ${short}`);
        }
        assert.deepEqual(problems, [], 'bad ids answered other than documented');
        assert.deepEqual(served.sort(), ['dashboard', 'deployment-jobs/j'], 'the ids lws normalises to another stream');
        // The canonical bad ids (a char out of the alphabet, 129 bytes) are 400, not 404.
        for (const id of ['a'.repeat(129), 'run!x', 'run%20x']) {
            assertHttpError(await post(srv, `${RUN}/${id}`, '[]', { token: tok }), 400, 'bad_request', `POST ${id.slice(0, 40)}`);
            const w = wsOpen(srv, `${RUN}/${id}/stream`, { token: tok });
            await assertWsRefused(w, 400, 'bad_request', `WS id ${id.slice(0, 40)}`);
        }
        // No stray stream: every stream in the store (read beside the running server) has a
        // name of the alphabet, and the bad ids created none but the served names above.
        const after = storeNames(srv);
        for (const n of after) assert.match(n, STREAM_NAME, `stored stream name ${JSON.stringify(n)}`);
        assert.deepEqual(after.filter((n) => !before.includes(n) && !served.includes(n)), [], 'streams made from bad ids');
        // 128 bytes of the alphabet is a good id.
        const ok = `${RUN}/${'A-z.0:_'.repeat(19).slice(0, 128)}`;
        assert.equal((await post(srv, ok, '[]', { token: tok })).status, 201);
        assert.ok(alive(srv.pid));
    });

    test('400 bad cursor: SSE header and query, WS query (close 4400)', async () => {
        await post201(srv, `${RUN}/cur`, makeEvents(RUN, 3), { token: tok });
        const s1 = sseOpen(srv, `${RUN}/cur/stream`, { token: tok, lastEventId: 'abc' });
        await within(s1.ended, 5000, 'SSE bad header cursor');
        assertHttpError({ status: s1.status, headers: s1.headers, json: s1.json, text: s1.text }, 400, 'bad_request', 'SSE Last-Event-ID abc');
        const s2 = sseOpen(srv, `${RUN}/cur/stream?lastEventId=-1`, { token: tok });
        await within(s2.ended, 5000, 'SSE bad query cursor');
        assert.equal(s2.status, 400);
        assertErrorShape(s2.json, 'bad_request', 'SSE ?lastEventId=-1');
        const w = wsOpen(srv, `${RUN}/cur/stream`, { token: tok, lastEventId: '1.5' });
        await assertWsRefused(w, 400, 'bad_request', 'WS lastEventId=1.5');
    });

    test('400 bad JSON names the event index and the field; the batch is atomic', async () => {
        const stream = `${RUN}/badjson`;
        await post201(srv, stream, makeEvents(RUN, 2), { token: tok });
        const good = makeEvents(RUN, 3, { startAt: 3 });
        const cases = [
            { what: 'missing nodeId', ev: { type: 'step_log', line: 'x', level: 'info' }, field: 'nodeId' },
            { what: 'mistyped progress', ev: { type: 'step_progress', nodeId: 'a', progress: '50', message: 'm' }, field: 'progress' },
            { what: 'mistyped nodeId', ev: { type: 'step_started', nodeId: 7, stepType: 's' }, field: 'nodeId' },
            { what: 'unknown type', ev: { type: 'task_log', taskId: 't', line: 'x', level: 'info' }, field: 'type' },
            { what: 'missing type', ev: { nodeId: 'a', line: 'x' }, field: 'type' },
            { what: 'timestamp not a string', ev: { type: 'step_log', nodeId: 'a', line: 'x', level: 'info', timestamp: 5 }, field: 'timestamp' },
        ];
        for (const { what, ev, field } of cases) {
            // As a JSON array: event index 2.
            const r = await post(srv, stream, [good[0], good[1], ev], { token: tok });
            assertHttpError(r, 400, 'bad_request', `array, ${what}`);
            assert.match(r.json.message, /\b2\b/, `${what}: message names index 2: ${r.json.message}`);
            assert.ok(r.json.message.includes(field), `${what}: message names ${field}: ${r.json.message}`);
            // As NDJSON: event index 1.
            const nd = [good[0], ev, good[2]].map((e) => JSON.stringify(e)).join('\n') + '\n';
            const r2 = await post(srv, stream, nd, { token: tok, ndjson: true });
            assertHttpError(r2, 400, 'bad_request', `ndjson, ${what}`);
            assert.match(r2.json.message, /\b1\b/, `${what}: NDJSON message names index 1: ${r2.json.message}`);
            assert.ok(r2.json.message.includes(field), `${what}: NDJSON message names ${field}: ${r2.json.message}`);
        }
        for (const body of ['{"type":"step_log",', 'not json', '[1,2]', '"str"', '{"type":"step_log","nodeId":"a","line":"x","level":"info","line":"y"}',
            Buffer.from([0x7b, 0x22, 0x74, 0xff, 0x22, 0x3a, 0x31, 0x7d])]) {
            const r = await post(srv, stream, body, { token: tok });
            assertHttpError(r, 400, 'bad_request', `body ${String(body).slice(0, 40)}`);
        }
        const nd = JSON.stringify(good[0]) + '\n{"type":"step_log"\n';
        const r3 = await post(srv, stream, nd, { token: tok, ndjson: true });
        assertHttpError(r3, 400, 'bad_request', 'NDJSON bad line');
        assert.match(r3.json.message, /\b1\b/, `NDJSON syntax error names line/index 1: ${r3.json.message}`);
        // Nothing of the refused batches was stored: still seq 1..2.
        const ev = await storedEvents(srv, tok, stream);
        assert.deepEqual(ev.map((e) => e.seq), [1, 2]);
        assert.equal((await post201(srv, stream, good, { token: tok })).firstSeq, 3);
    });

    test('401 without or with a bad token, 403 without publish access, before anything else', async () => {
        const stream = `${RUN}/authz`;
        await post201(srv, stream, '[]', { token: tok });
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1)), 401, 'unauthorized', 'no token');
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: 'garbage' }), 401, 'unauthorized', 'garbage token');
        // Even a malformed body is answered 401 first: auth comes before parsing.
        assertHttpError(await post(srv, stream, '{oops'), 401, 'unauthorized', 'no token, bad body');
        const ro = await mint(srv.key, { sub: 'reader', subscribe: ['*'], publish: [] });
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: ro }), 403, 'forbidden', 'no publish');
        assertHttpError(await post(srv, stream, '{oops', { token: ro }), 403, 'forbidden', 'no publish, bad body');
        const other = await mint(srv.key, { sub: 'other', publish: ['workflow-runs/other'] });
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: other }), 403, 'forbidden', 'publish on another run');
        assertHttpError(await post(srv, 'dashboard', [], { token: other }), 403, 'forbidden', 'publish dashboard');
        // SSE 401 is an ordinary JSON response with a length, not an open stream (C07).
        const s = sseOpen(srv, `${stream}/stream`);
        await within(s.ended, 5000, 'SSE 401');
        assert.equal(s.status, 401);
        assert.ok(s.headers['content-length'], 'SSE 401 has Content-Length');
        assert.match(s.headers['content-type'], /^application\/json/);
        assertErrorShape(s.json, 'unauthorized', 'SSE without token');
        assert.equal((await storedEvents(srv, tok, stream)).length, 0);
    });

    test('404 for a never-created stream; 403 before 404 for a caller without access', async () => {
        const s = sseOpen(srv, `${RUN}/never-made/stream`, { token: tok });
        await within(s.ended, 5000, 'SSE 404');
        assert.equal(s.status, 404);
        assertErrorShape(s.json, 'not_found', 'SSE never-created');
        assert.ok(s.headers['content-length'], 'SSE 404 has Content-Length');
        await assertWsRefused(wsOpen(srv, `${RUN}/never-made/stream`, { token: tok }), 404, 'not_found', 'WS never-created');
        await assertWsRefused(wsOpen(srv, 'deployment-jobs/never-made/stream', { token: tok }), 404, 'not_found', 'WS job never-created');
        const narrow = await mint(srv.key, { sub: 'narrow', subscribe: ['workflow-runs/mine'] });
        const s2 = sseOpen(srv, `${RUN}/never-made/stream`, { token: narrow });
        await within(s2.ended, 5000, 'SSE 403');
        assert.equal(s2.status, 403);
        assertErrorShape(s2.json, 'forbidden', 'SSE no access to a missing stream');
        assert.ok(s2.headers['content-length'], 'SSE 403 has Content-Length');
        await assertWsRefused(wsOpen(srv, `${RUN}/never-made/stream`, { token: narrow }), 403, 'forbidden', 'WS no access to a missing stream');
        // Unknown API paths are a 404 too (and never a stray stream).
        const u = await get(srv, '/api/v1/nothing-here/x/stream', { authorization: `Bearer ${tok}` });
        assert.equal(u.status, 404);
    });

    test('409 on a sealed stream; 409 with lastSeq on an expectedSeq mismatch; 201 on a match', async () => {
        const stream = `${RUN}/seal409`;
        const a = await post201(srv, stream, makeEvents(RUN, 3), { token: tok });
        assert.deepEqual(a, { stream, firstSeq: 1, lastSeq: 3 });
        const m = await post(srv, stream, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=2' });
        assert.equal(m.status, 409, m.text);
        assertErrorShape(m.json, 'conflict', 'expectedSeq=2 at 3', ['lastSeq']);
        assert.equal(m.json.lastSeq, 3, `409 names the current last seq: ${m.text}`);
        assert.equal((await post201(srv, stream, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=3' })).lastSeq, 4);
        // A retry of the same append (same expectedSeq) is refused: no double write.
        const again = await post(srv, stream, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=3' });
        assert.equal(again.status, 409);
        assert.equal(again.json.lastSeq, 4);
        for (const q of ['?expectedSeq=abc', '?expectedSeq=-1', '?expectedSeq=1e2']) {
            assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: tok, query: q }), 400, 'bad_request', q);
        }
        await post201(srv, stream, [sealEvent(RUN)], { token: tok });
        const r = await post(srv, stream, makeEvents(RUN, 1), { token: tok });
        assert.equal(r.status, 409, r.text);
        assertErrorShape(r.json, 'conflict', 'sealed', ['lastSeq']);
        const r2 = await post(srv, stream, [], { token: tok });
        assert.ok(r2.status === 409 || r2.status === 201, `empty batch on sealed: ${r2.status}`);
        const ev = await storedEvents(srv, tok, stream);
        assert.deepEqual(ev.map((e) => e.seq), [1, 2, 3, 4, 5]);
        // Same for a deployment job sealed by job_completed.
        await post201(srv, 'deployment-jobs/j409', [...makeEvents('deployment-jobs', 2), sealEvent('deployment-jobs')], { token: tok });
        assert.equal((await post(srv, 'deployment-jobs/j409', makeEvents('deployment-jobs', 1), { token: tok })).status, 409);
    });

    test('411 for a chunked request body', async () => {
        const body = JSON.stringify(makeEvents(RUN, 1));
        const req = `POST /api/v1/${RUN}/chunked/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tok}\r\n` +
            `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
        const r = await rawHttp(srv, req, { until: (b) => b.includes('}') });
        assert.equal(r.status, 411, r.head);
        assertErrorShape(JSON.parse(r.body.slice(r.body.indexOf('{'))), null, '411 body');
        const s = sseOpen(srv, `${RUN}/chunked/stream`, { token: tok });
        await within(s.ended, 5000, 'nothing created');
        assert.equal(s.status, 404);
    });

    test('413 for a body over max-body-bytes and for one event over 1 MiB', async () => {
        const stream = `${RUN}/big`;
        await post201(srv, stream, '[]', { token: tok });
        // Body over --max-body-bytes 2 MiB, made of small valid events.
        const many = Array.from({ length: 10000 }, (_, i) => ({ type: 'step_log', nodeId: 'a', line: `${i}`.padEnd(250, '.'), level: 'info' }));
        const nd = many.map((e) => JSON.stringify(e)).join('\n');
        assert.ok(nd.length > 2 * 1024 * 1024);
        const r = await post(srv, stream, nd, { token: tok, ndjson: true });
        assert.equal(r.status, 413, r.text.slice(0, 200));
        assertErrorShape(r.json, null, '413 body');
        // One event of 1 MiB + 1 KiB (the 450 KB lines of real logs pass; see realruns).
        const huge = { type: 'step_log', nodeId: 'a', line: 'y'.repeat(1024 * 1024 + 1024), level: 'info' };
        const r2 = await post(srv, stream, [huge], { token: tok });
        assert.equal(r2.status, 413, r2.text.slice(0, 200));
        assertErrorShape(r2.json, null, '413 event');
        const fine = { type: 'step_log', nodeId: 'a', line: 'z'.repeat(900 * 1024), level: 'info' };
        assert.equal((await post201(srv, stream, [fine], { token: tok })).firstSeq, 1);
        const ev = await storedEvents(srv, tok, stream);
        assert.equal(ev.length, 1);
        assert.equal(ev[0].line.length, 900 * 1024);
    });

    test('WS: 4401 bad token, 4403 no access, 4404 missing, 1000 on seal, no seq on control messages', async () => {
        await assertWsRefused(wsOpen(srv, `${RUN}/cur/stream`, { token: 'x.y.z' }), 401, 'unauthorized', 'WS bad token');
        const narrow = await mint(srv.key, { sub: 'narrow', subscribe: ['dashboard'] });
        await assertWsRefused(wsOpen(srv, `${RUN}/cur/stream`, { token: narrow }), 403, 'forbidden', 'WS forbidden');
        await assertWsRefused(wsOpen(srv, `${RUN}/nope/stream`, { token: tok }), 404, 'not_found', 'WS not found');
        const stream = `${RUN}/wsseal`;
        await post201(srv, stream, makeEvents(RUN, 2), { token: tok });
        const w = wsOpen(srv, `${stream}/stream`, { token: tok });
        await w.waitEvents(2);
        await post201(srv, stream, [sealEvent(RUN)], { token: tok });
        const cl = await within(w.closed, 10000, 'close after seal');
        assert.equal(cl.code, 1000, `close ${cl.code} ${cl.reason}`);
        assert.deepEqual(w.events().map((e) => e.seq), [1, 2, 3]);
        for (const m of w.msgs) if (m.type !== 'step_log' && m.type !== 'step_progress' && m.type !== 'workflow_completed') assert.ok(!('seq' in m), JSON.stringify(m));
        // A deployment job is sealed by job_completed: WS closes 1000, SSE ends.
        await post201(srv, 'deployment-jobs/jseal', makeEvents('deployment-jobs', 2), { token: tok });
        const jw = wsOpen(srv, 'deployment-jobs/jseal/stream', { token: tok });
        const js = sseOpen(srv, 'deployment-jobs/jseal/stream', { token: tok });
        await jw.waitEvents(2);
        await js.waitEvents(2);
        await post201(srv, 'deployment-jobs/jseal', [sealEvent('deployment-jobs')], { token: tok });
        assert.equal((await within(jw.closed, 10000, 'job WS close after seal')).code, 1000);
        await within(js.ended, 10000, 'job SSE end after seal');
        assert.deepEqual(jw.events().map((e) => e.seq), [1, 2, 3]);
        assert.deepEqual(js.json_events().map((e) => e.seq), [1, 2, 3]);
        // Unknown message types get a bad_request error and the connection stays.
        await post201(srv, `${RUN}/wsctl`, makeEvents(RUN, 1), { token: tok });
        const w2 = wsOpen(srv, `${RUN}/wsctl/stream`, { token: tok });
        await w2.waitEvents(1);
        w2.send({ type: 'bogus' });
        const e = await w2.waitFor((m) => m.type === 'error', 5000, 'error for unknown type');
        assertErrorShape(e, 'bad_request', 'unknown WS message type');
        await post201(srv, `${RUN}/wsctl`, makeEvents(RUN, 1, { startAt: 2 }), { token: tok });
        await w2.waitEvents(2);
        assert.ok(w2.isOpen && w2.code === null, 'connection stays open after a bad message');
        w2.close();
    });

    test('WS: 1009 over max-ws-message, 1007 invalid UTF-8, 1003 binary frame; server unaffected', async () => {
        await post201(srv, `${RUN}/frames`, makeEvents(RUN, 1), { token: tok });
        const path = `${RUN}/frames/stream?token=${encodeURIComponent(tok)}`;
        const bystander = wsOpen(srv, `${RUN}/frames/stream`, { token: tok });
        await bystander.waitEvents(1);

        const big = wsOpen(srv, `${RUN}/frames/stream`, { token: tok });
        await big.waitEvents(1);
        big.send(JSON.stringify({ type: 'pong', pad: 'p'.repeat(1024 * 1024 + 10) }));
        assert.equal((await within(big.closed, 10000, '1009')).code, 1009);

        const u = wsRaw(srv, path);
        await u.upgraded;
        assert.equal(u.status, 101);
        await u.send(wsFrame(1, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])));
        await within(u.closed, 10000, '1007');
        assert.equal(u.closeCode, 1007);

        const b = wsOpen(srv, `${RUN}/frames/stream`, { token: tok });
        await b.waitEvents(1);
        b.ws.send(Buffer.from(JSON.stringify({ type: 'pong' })), { binary: true });
        const cb = await within(b.closed, 10000, '1003');
        assert.equal(cb.code, 1003, `binary frame: close ${cb.code}`);
        const be = b.msgs.filter((m) => m.type === 'error');
        assert.equal(be.length, 1, 'one error message before 1003');
        assertErrorShape(be[0], 'bad_request', 'binary frame');

        await post201(srv, `${RUN}/frames`, makeEvents(RUN, 1, { startAt: 2 }), { token: tok });
        await bystander.waitEvents(2);
        assert.equal(bystander.code, null);
        bystander.close();
        assert.ok(alive(srv.pid));
    });
});

/** Open SSE + WS connections according to the server's /metrics gauge rtlog_connections. */
async function streamsOpen(srv) {
    const t = (await get(srv, '/metrics')).text;
    let n = 0;
    for (const m of t.matchAll(/^rtlog_connections\{transport="(sse|ws)"\} (\d+)$/gm)) n += Number(m[2]);
    return n;
}

describe('connection limits (429 rate_limited)', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--max-connections-per-subject', '2', '--max-connections', '4'] });
        tok = await mint(srv.key, { sub: 'limits' });
        await post201(srv, `${RUN}/lim`, makeEvents(RUN, 1), { token: tok });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('per subject: the third stream of one subject is 429 (SSE) / 4429 (WS); freed slots are reusable', async () => {
        const a = sseOpen(srv, `${RUN}/lim/stream`, { token: tok });
        const b = wsOpen(srv, `${RUN}/lim/stream`, { token: tok });
        await a.waitEvents(1);
        await b.waitEvents(1);
        const c = sseOpen(srv, `${RUN}/lim/stream`, { token: tok });
        await within(c.ended, 5000, 'third SSE');
        assert.equal(c.status, 429);
        assertErrorShape(c.json, 'rate_limited', 'SSE per-subject limit');
        await assertWsRefused(wsOpen(srv, `${RUN}/lim/stream`, { token: tok }), 429, 'rate_limited', 'WS per-subject limit');
        // Another subject is not affected.
        const other = await mint(srv.key, { sub: 'limits-2' });
        const d = sseOpen(srv, `${RUN}/lim/stream`, { token: other });
        await d.waitEvents(1);
        // A freed slot can be used again.
        a.close();
        await waitUntil(async () => {
            const e = sseOpen(srv, `${RUN}/lim/stream`, { token: tok });
            await e.opened;
            if (e.status === 200) { await e.waitEvents(1); e.close(); return true; }
            await e.ended;
            return false;
        }, 10000, 'slot freed after close', 200);
        b.close();
        d.close();
    });

    test('in total: past --max-connections streams are refused with 429', async () => {
        await waitUntil(async () => (await streamsOpen(srv)) === 0, 10000, 'earlier streams closed');
        const subs = await Promise.all([1, 2, 3, 4, 5].map((i) => mint(srv.key, { sub: `tot-${i}` })));
        const open = [];
        for (const t of subs.slice(0, 4)) {
            const c = sseOpen(srv, `${RUN}/lim/stream`, { token: t });
            await c.waitEvents(1);
            open.push(c);
        }
        const x = sseOpen(srv, `${RUN}/lim/stream`, { token: subs[4] });
        await within(x.ended, 5000, 'fifth');
        assert.equal(x.status, 429);
        assertErrorShape(x.json, 'rate_limited', 'total limit');
        await assertWsRefused(wsOpen(srv, `${RUN}/lim/stream`, { token: subs[4] }), 429, 'rate_limited', 'WS total limit');
        for (const c of open) c.close();
    });
});

describe('drain on SIGTERM', () => {
    test('WS clients get 1001, SSE responses end, the server exits 0', async () => {
        const srv = await start({ args: ['--heartbeat', '1'] });
        const tok = await mint(srv.key, { sub: 'drain' });
        await post201(srv, `${RUN}/drain`, makeEvents(RUN, 2), { token: tok });
        const ws = [wsOpen(srv, `${RUN}/drain/stream`, { token: tok }), wsOpen(srv, `${RUN}/drain/stream`, { token: tok })];
        const sse = sseOpen(srv, `${RUN}/drain/stream`, { token: tok });
        for (const w of ws) await w.waitEvents(2);
        await sse.waitEvents(2);
        const exit = srv.stop();
        for (const w of ws) {
            const cl = await within(w.closed, 10000, 'WS close on drain');
            assert.equal(cl.code, 1001, `drain close ${cl.code} ${cl.reason}`);
        }
        await within(sse.ended, 10000, 'SSE end on drain');
        const r = await within(exit, 15000, 'server exit');
        assert.equal(r.code, 0, `exit ${JSON.stringify(r)}`);
        // Acknowledged events survived: a new server on the same data replays them.
        const srv2 = await start({ args: ['--heartbeat', '1'], dataDir: srv.dataDir });
        const c = sseOpen(srv2, `${RUN}/drain/stream?follow=false`, { token: tok });
        await within(c.ended, 10000, 'replay after restart');
        assert.deepEqual(c.json_events().map((e) => e.seq), [1, 2]);
        assert.equal((await srv2.stop()).code, 0);
    });
});

await sleep(0);
