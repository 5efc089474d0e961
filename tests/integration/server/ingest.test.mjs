// ingest.test.mjs - CONTRACT "Ingest" and "Streams and event ids" from the producer's side:
// one object, a JSON array or NDJSON; 201 {"stream","firstSeq","lastSeq"}; gapless seqs under
// concurrent producers; unknown extra fields kept in order; a missing timestamp filled in (UTC,
// RFC 3339); strings carried exactly; each stream kind accepts only its own event types; an
// empty batch creates the stream; an acknowledged event survives kill -9 (durable before 201).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, within, mint, post, post201, assertHttpError, sseOpen, wsOpen, makeEvents,
    metricUpdate, sealEvent, assertDelivered, storedEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1'] });
    tok = await mint(srv.key, { sub: 'ingest' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** The events stored in @stream (a follow=false replay), with this file's token by default. */
const stored = (s, stream, t = tok) => storedEvents(s, t, stream);

describe('body forms and the 201 answer', () => {
    test('one object, a JSON array, NDJSON (blank lines skipped); seqs continue', async () => {
        const stream = `${RUN}/forms`;
        const ev = makeEvents(RUN, 6, { ts: true });
        assert.deepEqual((await post(srv, stream, ev[0], { token: tok })).json, { stream, firstSeq: 1, lastSeq: 1 });
        assert.deepEqual(await post201(srv, stream, [ev[1], ev[2]], { token: tok }), { stream, firstSeq: 2, lastSeq: 3 });
        const nd = `${JSON.stringify(ev[3])}\n\n${JSON.stringify(ev[4])}\n${JSON.stringify(ev[5])}`;
        assert.deepEqual(await post201(srv, stream, nd, { token: tok, ndjson: true }), { stream, firstSeq: 4, lastSeq: 6 });
        const got = await stored(srv, stream);
        got.forEach((e, i) => assertDelivered(e, ev[i], i + 1, 'forms'));
    });

    test('several JSON values without the NDJSON Content-Type: 400 that says how to send NDJSON', async () => {
        const stream = `${RUN}/nd-hint`;
        const ev = makeEvents(RUN, 2, { ts: true });
        const nd = `${JSON.stringify(ev[0])}\n${JSON.stringify(ev[1])}\n`;
        const HINT = '; for NDJSON send Content-Type: application/x-ndjson';
        // As JSON, and as `curl --data-binary @file` sends it (form-urlencoded), and with none.
        for (const ctype of ['application/json', 'application/x-www-form-urlencoded', null]) {
            const headers = { authorization: `Bearer ${tok}` };
            if (ctype) headers['content-type'] = ctype;
            const res = await fetch(`${srv.base}/api/v1/${stream}/events`, { method: 'POST', headers, body: nd });
            const r = { status: res.status, headers: res.headers, text: await res.text() };
            r.json = JSON.parse(r.text);
            assertHttpError(r, 400, 'bad_request', `NDJSON as ${ctype}`);
            assert.ok(r.json.message.endsWith(HINT), `${ctype}: ${r.json.message}`);
        }
        // One bad JSON value is not NDJSON: no hint there, nor for a bad second line of real NDJSON.
        const bad = await post(srv, stream, '{"type":"step_log",', { token: tok });
        assertHttpError(bad, 400, 'bad_request', 'truncated JSON');
        assert.ok(!bad.json.message.includes('NDJSON'), bad.json.message);
        const badNd = await post(srv, stream, `${JSON.stringify(ev[0])}\n{"type":`, { token: tok, ndjson: true });
        assertHttpError(badNd, 400, 'bad_request', 'bad NDJSON line');
        assert.ok(!badNd.json.message.includes('Content-Type'), badNd.json.message);
        // Nothing was stored by any of them; the same body as NDJSON is accepted.
        assert.deepEqual(await post201(srv, stream, nd, { token: tok, ndjson: true }), { stream, firstSeq: 1, lastSeq: 2 });
    });

    test('an empty batch creates the stream; subscribing to a never-created one is not_found', async () => {
        const s0 = sseOpen(srv, `${RUN}/later/stream`, { token: tok });
        await within(s0.ended, 5000, '404');
        assert.equal(s0.status, 404);
        const r = await post(srv, `${RUN}/later`, '[]', { token: tok });
        assert.equal(r.status, 201, r.text);
        assert.equal(r.json.stream, `${RUN}/later`);
        const w = wsOpen(srv, `${RUN}/later/stream`, { token: tok });
        await w.opened;
        await sleep(300);
        assert.equal(w.code, null, 'WS on an empty created stream stays open');
        const nd = await post(srv, `${RUN}/later2`, '', { token: tok, ndjson: true });
        assert.equal(nd.status, 201, `empty NDJSON body: ${nd.text}`);
        await post201(srv, `${RUN}/later`, makeEvents(RUN, 1), { token: tok });
        await w.waitEvents(1);
        assert.equal(w.events()[0].seq, 1);
        w.close();
    });

    test('concurrent producers get disjoint, gapless seq ranges', async () => {
        const stream = `${RUN}/concurrent`;
        await post201(srv, stream, '[]', { token: tok });
        const ranges = [];
        const batches = new Map();
        await Promise.all(Array.from({ length: 8 }, async (_, p) => {
            for (let k = 0; k < 15; k++) {
                const b = makeEvents(RUN, 5, { startAt: p * 1000 + k * 5, node: `p${p}`, ts: true });
                const r = await post201(srv, stream, b, { token: tok });
                assert.equal(r.lastSeq - r.firstSeq, 4);
                ranges.push([r.firstSeq, r.lastSeq]);
                batches.set(r.firstSeq, b);
            }
        }));
        ranges.sort((a, b) => a[0] - b[0]);
        ranges.forEach(([f], i) => assert.equal(f, i * 5 + 1, 'ranges are contiguous and disjoint'));
        const got = await stored(srv, stream);
        assert.equal(got.length, 600);
        for (const [first, b] of batches) b.forEach((e, i) => assertDelivered(got[first - 1 + i], e, first + i, 'concurrent'));
    });
});

describe('what is kept', () => {
    test('unknown extra fields are kept, in order', async () => {
        const stream = `${RUN}/extra`;
        const ev = [
            { type: 'step_progress', nodeId: 'n', progress: 50, message: 'm', zExtra: { deep: [1, 'two', null, true] }, aFirst: 1.5,
                timestamp: '2026-01-10T14:23:50Z' },
            { extraBefore: 'x', type: 'step_log', nodeId: 'n', line: 'l', level: 'info', timestamp: '2026-01-10T14:23:50Z', after: [] },
        ];
        await post201(srv, stream, ev, { token: tok });
        const got = await stored(srv, stream);
        assertDelivered(got[0], ev[0], 1, 'extra fields after the known ones');
        assertDelivered(got[1], ev[1], 2, 'extra fields around the known ones');
    });

    test('a missing timestamp is filled in by the server (UTC, RFC 3339, now) where the type has one', async () => {
        const stream = `${RUN}/filled`;
        // step_log, step_started, task_started... carry a timestamp in realtime-api.md: filled.
        // step_progress and task_progress have none there: delivered exactly as posted.
        const ev = [{ type: 'step_log', nodeId: 'n', line: 'l', level: 'info' },
            { type: 'step_progress', nodeId: 'n', progress: 50, message: 'm' },
            { type: 'step_started', nodeId: 'n', stepType: 'script' },
            { type: 'step_completed', nodeId: 'n', status: 'succeeded' }];
        const before = Date.now();
        await post201(srv, stream, ev, { token: tok });
        const after = Date.now();
        const got = await stored(srv, stream);
        ev.forEach((e, i) => assertDelivered(got[i], e, i + 1, 'filled timestamp'));
        assert.ok(!('timestamp' in got[1]), 'step_progress gained a timestamp');
        for (const g of [got[0], got[2], got[3]]) {
            const ts = Date.parse(g.timestamp);
            assert.ok(ts >= before - 2000 && ts <= after + 2000, `filled timestamp ${g.timestamp} is now`);
        }
        // One batch, one clock reading.
        assert.equal(got[0].timestamp, got[2].timestamp);
        const job = [{ type: 'task_started', taskId: 't', targetId: 'g', taskType: 'docker.pull' },
            { type: 'task_log', taskId: 't', line: 'x' }];
        await post201(srv, 'deployment-jobs/filled', job, { token: tok });
        const gj = await stored(srv, 'deployment-jobs/filled');
        job.forEach((e, i) => assertDelivered(gj[i], e, i + 1, 'job filled timestamp'));
    });

    test('strings are carried exactly: ANSI, CR, U+2028, astral, escapes, NUL', async () => {
        const stream = `${RUN}/strings`;
        const lines = ['\u001b[31mred\u001b[0m', 'progress\r', 'a\r\nb', 'sep\u2028para\u2029', '😀 𝄞 ü', '"quoted" \\ back/slash',
            '\t tab \b\f', '\u007f\u0080\u00ff', 'x'.repeat(450 * 1024), 'nul \u0000 inside'];
        const ev = lines.map((line, i) => ({ type: 'step_log', nodeId: `s${i}`, line, level: 'info', timestamp: '2026-01-10T14:23:50Z' }));
        // Raw escapes as a producer may write them (\u escapes, \/).
        const raw = '{"type":"step_log","nodeId":"esc","line":"\\u00e9\\/\\ud83d\\ude00","level":"info","timestamp":"2026-01-10T14:23:50Z"}';
        await post201(srv, stream, ev.slice(0, -1), { token: tok });
        await post201(srv, stream, raw, { token: tok });
        const got = await stored(srv, stream);
        ev.slice(0, -1).forEach((e, i) => assertDelivered(got[i], e, i + 1, `string ${i}`));
        assert.equal(got[ev.length - 1].line, 'é/😀');
        // U+0000 is Unicode too ("any Unicode"); asserted separately so a refusal is named.
        const nul = await post(srv, stream, [ev.at(-1)], { token: tok });
        assert.equal(nul.status, 201, `an event with \\u0000 in a string: ${nul.status} ${nul.text}`);
        const got2 = await stored(srv, stream);
        assert.equal(got2.at(-1).line, 'nul \u0000 inside');
    });

    test('each stream kind accepts its own event types only', async () => {
        await post201(srv, 'dashboard', [metricUpdate(1), ...makeEvents('dashboard', 2)], { token: tok });
        await post201(srv, 'deployment-jobs/kinds', [...makeEvents('deployment-jobs', 2),
            { type: 'task_started', taskId: 't', targetId: 'g', targetName: 'prod-1', taskType: 'docker.pull', timestamp: '2026-01-10T14:23:45Z' },
            { type: 'task_completed', taskId: 't', targetId: 'g', status: 'succeeded', duration: 45.2, result: { a: 1 }, timestamp: '2026-01-10T14:24:30Z' },
            sealEvent('deployment-jobs')], { token: tok });
        const wrong = [
            ['deployment-jobs/kinds2', makeEvents(RUN, 1)[0]],
            ['dashboard', makeEvents('deployment-jobs', 1)[0]],
            [`${RUN}/kinds`, metricUpdate(1)],
            [`${RUN}/kinds`, sealEvent('deployment-jobs')],
            ['deployment-jobs/kinds2', sealEvent(RUN)],
        ];
        for (const [stream, ev] of wrong) {
            const r = await post(srv, stream, [ev], { token: tok });
            assertHttpError(r, 400, 'bad_request', `${ev.type} on ${stream}`);
            assert.ok(r.json.message.includes('type'), `names the field: ${r.json.message}`);
        }
        // Numbers a client controls (C03 family): out of range or of the wrong JSON type.
        for (const v of ['1e400', '"50"', '-1e999']) {
            const body = `[{"type":"step_progress","nodeId":"n","progress":${v},"message":"m"}]`;
            assertHttpError(await post(srv, `${RUN}/numbers`, body, { token: tok }), 400, 'bad_request', `progress ${v}`);
        }
    });
});

describe('durability', () => {
    test('every acknowledged event survives kill -9; seqs continue without gap', { timeout: 60000 }, async () => {
        const s = await start({ args: ['--heartbeat', '1'] });
        const t = await mint(s.key, { sub: 'durable' });
        const stream = `${RUN}/durable`;
        const acked = [];
        let stop = false;
        const producer = (async () => {
            for (let k = 0; !stop; k++) {
                const b = makeEvents(RUN, 10, { startAt: k * 10 + 1, ts: true });
                let r;
                try { r = await post(s, stream, b, { token: t }); } catch { break; }
                if (r.status !== 201) break;
                acked.push([r.json.firstSeq, b]);
            }
        })();
        while (acked.length < 20) await sleep(20);
        await s.kill();
        stop = true;
        await producer;
        const s2 = await start({ args: ['--heartbeat', '1'], dataDir: s.dataDir });
        const got = await stored(s2, stream, t);
        for (const [first, b] of acked) b.forEach((e, i) => assertDelivered(got[first - 1 + i], e, first + i, 'after kill -9'));
        got.forEach((e, i) => assert.equal(e.seq, i + 1, 'gapless after restart'));
        const r = await post201(s2, stream, makeEvents(RUN, 1), { token: t });
        assert.equal(r.firstSeq, got.length + 1);
        assert.equal((await s2.stop()).code, 0);
    });
});
