// c07_stream_not_buffered.test.mjs - handed.md C07 (reverse proxies buffering or compressing
// the stream), its family, direct against the server (headers.test.mjs checks the case's own
// job stream request; no nginx runs in CI, see tests/HANDED.md):
//   - every stream kind (run, job, dashboard), live or follow=false, answers with the headers
//     that keep proxies from buffering (text/event-stream, no-cache, X-Accel-Buffering: no),
//     no Content-Length and no Content-Encoding whatever Accept-Encoding asks for;
//   - error answers on SSE endpoints (400, 401, 403, 404) are ordinary JSON responses with a
//     Content-Length that end, never an open event stream;
//   - an HTTP/1.0 client following live gets a close-delimited stream (no chunking) whose
//     events arrive one by one as they are appended;
//   - a small event right behind a 500 KB one arrives without waiting for more data.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { start, waitUntil, within, mint, post201, sseOpen, makeEvents, metricUpdate, SseParser,
    assertSseFrames } from './lib/itest.mjs';

let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '5'] });
    tok = await mint(srv.key, { sub: 'c07', subscribe: ['workflow-runs/*', 'deployment-jobs/*', 'dashboard'] });
    await post201(srv, 'workflow-runs/run-0001', makeEvents('workflow-runs', 2), { token: tok });
    await post201(srv, 'deployment-jobs/job-0001', makeEvents('deployment-jobs', 2), { token: tok });
    await post201(srv, 'dashboard', [metricUpdate(1)], { token: tok });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

test('stream headers on every kind, live and follow=false, whatever Accept-Encoding says', async () => {
    for (const s of ['workflow-runs/run-0001', 'deployment-jobs/job-0001', 'dashboard']) {
        for (const q of ['', '?follow=false']) {
            for (const enc of ['gzip, br', 'deflate', '*', 'identity;q=0, gzip']) {
                const c = sseOpen(srv, `${s}/stream${q}`, { token: tok, headers: { 'accept-encoding': enc } });
                await c.opened;
                const what = `${s}${q} Accept-Encoding ${enc}`;
                assert.equal(c.status, 200, what);
                assert.match(c.headers['content-type'], /^text\/event-stream(;\s*charset=utf-8)?$/i, what);
                assert.match(c.headers['cache-control'] ?? '', /no-cache|no-store/, what);
                assert.equal(c.headers['x-accel-buffering'], 'no', what);
                assert.equal(c.headers['content-length'], undefined, what);
                assert.equal(c.headers['content-encoding'], undefined, what);
                await c.waitEvents(1);
                c.close();
            }
        }
    }
});

test('errors on SSE endpoints are plain JSON answers with a length that end', async () => {
    const noAccess = await mint(srv.key, { sub: 'c07-none', subscribe: ['workflow-runs/other'] });
    const cases = [
        [400, 'workflow-runs/run-0001/stream', { token: tok, lastEventId: 'abc' }],
        [401, 'workflow-runs/run-0001/stream', { token: 'not.a.token' }],
        [401, 'workflow-runs/run-0001/stream', {}],
        [403, 'workflow-runs/run-0001/stream', { token: noAccess }],
        [404, 'workflow-runs/never/stream', { token: tok }],
    ];
    for (const [status, path, opts] of cases) {
        const c = sseOpen(srv, path, { ...opts, headers: { 'accept-encoding': 'gzip, br' } });
        await within(c.ended, 5000, `${status} ${path} ends`);
        assert.equal(c.status, status, `${path}: ${c.status}`);
        assert.match(c.headers['content-type'] ?? '', /^application\/json/, `${status}: content-type`);
        assert.ok(Number(c.headers['content-length']) > 0, `${status}: no Content-Length`);
        assert.equal(c.headers['content-encoding'], undefined);
        assert.equal(c.json?.type, 'error', `${status}: ${c.text}`);
        assert.equal(Buffer.byteLength(c.text), Number(c.headers['content-length']));
    }
});

test('HTTP/1.0 live follower: close-delimited, each event as it is appended', async () => {
    const s = 'workflow-runs/c07-h10';
    await post201(srv, s, [], { token: tok });
    const sock = net.connect(srv.port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    sock.on('data', (d) => { raw = Buffer.concat([raw, d]); });
    sock.write(`GET /api/v1/${s}/stream HTTP/1.0\r\nAuthorization: Bearer ${tok}\r\nAccept: text/event-stream\r\n\r\n`);
    await waitUntil(() => raw.includes('\r\n\r\n'), 5000, 'response head');
    const head = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString();
    assert.match(head, /^HTTP\/1\.[01] 200/);
    assert.doesNotMatch(head, /transfer-encoding/i, 'chunked to an HTTP/1.0 client');
    assert.doesNotMatch(head, /content-length/i);
    for (let i = 1; i <= 3; i++) {
        await post201(srv, s, makeEvents('workflow-runs', 1, { startAt: i }), { token: tok });
        await waitUntil(() => raw.includes(`\nid: ${i}\n`), 5000, `event ${i} on the HTTP/1.0 stream`);
    }
    const p = new SseParser();
    p.feed(raw.subarray(raw.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(p.events.map((e) => e.idField), ['1', '2', '3']);
    sock.destroy();
});

test('a small event right behind a 500 KB one is delivered without waiting for more data', async () => {
    const s = 'workflow-runs/c07-big';
    await post201(srv, s, [], { token: tok });
    const c = sseOpen(srv, `${s}/stream`, { token: tok });
    await c.opened;
    for (let i = 1; i <= 3; i++) {
        await post201(srv, s, [{ type: 'step_log', nodeId: 'n', line: 'x'.repeat(500000), level: 'info' }], { token: tok });
        await post201(srv, s, [{ type: 'step_log', nodeId: 'n', line: `small ${i}`, level: 'info' }], { token: tok });
        await c.waitEvents(2 * i, 5000);
    }
    assertSseFrames(c, 'big then small');
    c.close();
});
