// headers.test.mjs - what proxies and operators see (handed.md C07 direct, CONTRACT "Streams and
// event ids" SSE headers, "Errors and limits" Origin allowlist and operations): SSE response
// headers (text/event-stream, Cache-Control no-cache, X-Accel-Buffering no, no Content-Length,
// never compressed even when gzip is offered), the first bytes with a retry: hint arrive before
// any event exists, each appended event arrives promptly; Origin allowlist with --origins;
// /metrics parses as Prometheus text; /health/live and /health/ready; SIGTERM drain.
import { test, describe, before, after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { rtlogBin } from './lib/harness.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { start, sleep, waitUntil, within, mint, post, post201, get, rawHttp, assertErrorShape,
    assertHttpError, sseOpen, assertSseFrames, wsOpen, assertWsRefused,
    makeEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const GOOD = 'http://good.example';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--origins', `${GOOD},https://also.example:8443`] });
    tok = await mint(srv.key, { sub: 'headers' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

describe('SSE response (C07, direct)', () => {
    test('headers: event-stream, no-cache, X-Accel-Buffering no, no length, no compression', async () => {
        await post201(srv, 'deployment-jobs/job-0001', '[]', { token: tok });
        const c = sseOpen(srv, 'deployment-jobs/job-0001/stream', { token: tok,
            headers: { 'accept-encoding': 'gzip, br, deflate', 'cache-control': 'no-cache' } });
        await c.opened;
        assert.equal(c.status, 200);
        assert.match(c.headers['content-type'], /^text\/event-stream(;\s*charset=utf-8)?$/i);
        assert.match(c.headers['cache-control'] ?? '', /no-cache|no-store/);
        assert.equal(c.headers['x-accel-buffering'], 'no');
        assert.equal(c.headers['content-length'], undefined);
        assert.equal(c.headers['content-encoding'], undefined);
        // First bytes, with a retry: hint, before any event exists.
        await waitUntil(() => c.bytes > 0, 5000, 'first bytes of an empty stream');
        await sleep(200);
        assert.equal(c.p.events.length, 0);
        assert.ok(Number.isInteger(c.p.retry) && c.p.retry > 0, `retry hint ${c.p.retry}`);
        const firstLine = Buffer.concat(c.raw).toString('utf8').split('\n')[0];
        assert.match(firstLine, /^(retry: ?\d+|:.*)$/, `first line ${JSON.stringify(firstLine)}`);
        // Each appended event reaches the client promptly (generous bound: no proxy-style batching).
        for (let i = 1; i <= 3; i++) {
            await post201(srv, 'deployment-jobs/job-0001', makeEvents('deployment-jobs', 1, { startAt: i }), { token: tok });
            await c.waitEvents(i, 5000);
        }
        assertSseFrames(c, 'job stream');
        c.close();
    });

    test('SSE frame layout: id, event, one data line, blank line', async () => {
        await post201(srv, `${RUN}/layout`, [{ type: 'step_log', nodeId: 'a', line: 'multi\nline\r\nwith \u2028 and é', level: 'info' }], { token: tok });
        const c = sseOpen(srv, `${RUN}/layout/stream?follow=false`, { token: tok });
        await within(c.ended, 5000, 'layout');
        const text = Buffer.concat(c.raw).toString('utf8');
        const m = /(^|\n)id: 1\nevent: step_log\ndata: (\{[^\n]*\})\n\n/.exec(text);
        assert.ok(m, `frame layout: ${JSON.stringify(text.slice(0, 400))}`);
        assert.equal(JSON.parse(m[2]).line, 'multi\nline\r\nwith \u2028 and é');
    });

    test('HTTP/1.0 subscriber: no chunked encoding (close-delimited) or a refusal', async () => {
        await post201(srv, `${RUN}/h10`, makeEvents(RUN, 2), { token: tok });
        const r = await rawHttp(srv, `GET /api/v1/${RUN}/h10/stream?follow=false HTTP/1.0\r\nAuthorization: Bearer ${tok}\r\nAccept: text/event-stream\r\n\r\n`);
        if (r.status === 200) {
            assert.ok(!/chunked/i.test(r.headers['transfer-encoding'] ?? ''), 'chunked to an HTTP/1.0 client');
            assert.match(r.body, /id: 2\n/);
        } else assert.ok(r.status >= 400 && r.status < 500, `HTTP/1.0: ${r.status}`);
    });
});

describe('Origin allowlist (--origins)', () => {
    before(async () => { await post201(srv, `${RUN}/origin`, makeEvents(RUN, 1), { token: tok }); });
    test('SSE: listed origin and no origin pass; others are 403 forbidden', async () => {
        for (const o of [GOOD, 'https://also.example:8443', undefined]) {
            const c = sseOpen(srv, `${RUN}/origin/stream`, { token: tok, headers: o ? { origin: o } : {} });
            await c.waitEvents(1);
            c.close();
        }
        for (const o of ['http://evil.example', 'null', `${GOOD}.evil.example`, 'http://good.example:81', 'https://good.example']) {
            const c = sseOpen(srv, `${RUN}/origin/stream`, { token: tok, headers: { origin: o } });
            await within(c.ended, 5000, o);
            assert.equal(c.status, 403, `Origin ${o}: ${c.status}`);
            assertErrorShape(c.json, 'forbidden', `Origin ${o}`);
        }
    });
    test('WS: listed origin and no origin pass; others are refused with forbidden', async () => {
        for (const o of [GOOD, undefined]) {
            const c = wsOpen(srv, `${RUN}/origin/stream`, { token: tok, headers: o ? { origin: o } : {} });
            await c.waitEvents(1);
            c.close();
        }
        for (const o of ['http://evil.example', 'null']) {
            await assertWsRefused(wsOpen(srv, `${RUN}/origin/stream`, { token: tok, headers: { origin: o } }), 403, 'forbidden', `WS Origin ${o}`);
        }
    });
});

/** Parse Prometheus text exposition format 0.0.4; throws on any malformed line. */
function parseProm(text) {
    const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
    const types = {};
    const samples = [];
    for (const [i, line] of text.split('\n').entries()) {
        if (line === '') continue;
        if (line.startsWith('#')) {
            const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
            if (!m) { assert.match(line, /^#/, `line ${i + 1}`); continue; }
            assert.match(m[2], NAME, `line ${i + 1}: metric name ${m[2]}`);
            if (m[1] === 'TYPE') {
                assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]), `line ${i + 1}: type ${m[3]}`);
                assert.ok(!(m[2] in types), `line ${i + 1}: second TYPE for ${m[2]}`);
                types[m[2]] = m[3];
            }
            continue;
        }
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
        assert.ok(m, `line ${i + 1} is not a sample: ${JSON.stringify(line)}`);
        const labels = {};
        if (m[3]) {
            const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"\s*(,|$)/gy;
            let consumed = 0, lm;
            while ((lm = re.exec(m[3]))) { labels[lm[1]] = lm[2]; consumed = re.lastIndex; if (lm[3] === '') break; }
            assert.equal(consumed, m[3].length, `line ${i + 1}: labels ${m[3]}`);
        }
        const v = m[4];
        assert.ok(/^[+-]?(Inf|NaN)$/.test(v) || !Number.isNaN(Number(v)), `line ${i + 1}: value ${v}`);
        samples.push({ name: m[1], labels, value: Number(v.replace('Inf', 'Infinity')) });
    }
    return { types, samples };
}
const sampleValue = (p, name) => p.samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);

describe('operations', () => {
    test('/metrics is Prometheus text and counts appends', async () => {
        const r1 = await get(srv, '/metrics');
        assert.equal(r1.status, 200);
        assert.match(r1.headers.get('content-type') ?? '', /^text\/plain/);
        const p1 = parseProm(r1.text);
        assert.ok(p1.samples.some((s) => s.name.startsWith('rtlog_')), 'no rtlog_ metric');
        await post201(srv, `${RUN}/metrics`, makeEvents(RUN, 7), { token: tok });
        const p2 = parseProm((await get(srv, '/metrics')).text);
        if (p1.samples.some((s) => s.name === 'rtlog_events_appended_total')) {
            assert.equal(sampleValue(p2, 'rtlog_events_appended_total') - sampleValue(p1, 'rtlog_events_appended_total'), 7);
        }
        for (const [n, t] of Object.entries(p2.types)) if (n.endsWith('_total')) assert.equal(t, 'counter', `${n} is a ${t}`);
    });

    test('/health/live and /health/ready answer 200', async () => {
        assert.equal((await get(srv, '/health/live')).status, 200);
        assert.equal((await get(srv, '/health/ready')).status, 200);
    });
});

describe('embedded default (CONTRACT "Tools": rtlog serve, rtlog token)', () => {
    test('no key configured: a 0600 secret in the data directory, a printed hint, and `rtlog token` tokens work', async () => {
        const s = await start({ args: ['--heartbeat', '1'] });
        const mode = fs.statSync(`${s.dataDir}/jwt-secret`).mode & 0o777;
        assert.equal(mode, 0o600, `jwt-secret mode ${mode.toString(8)}`);
        assert.match(s.output(), /rtlog token/, 'the server prints how to mint a token');
        const cli = (args) => execFileSync(rtlogBin(), ['token', '--data', s.dataDir, ...args]).toString();
        const t = cli(['--sub', 'cli', '--subscribe', `${RUN}/cli`, '--publish', `${RUN}/cli`, '--ttl', '60']);
        assert.match(t, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'one token and a newline on stdout');
        const tok1 = t.trim();
        await post201(s, `${RUN}/cli`, makeEvents(RUN, 2, { ts: true }), { token: tok1 });
        const c = sseOpen(s, `${RUN}/cli/stream?follow=false`, { token: tok1 });
        await within(c.ended, 5000, 'cli token stream');
        assert.deepEqual(c.json_events().map((e) => e.seq), [1, 2]);
        assertHttpError(await post(s, `${RUN}/other`, '[]', { token: tok1 }), 403, 'forbidden', 'cli token, other run');
        assert.ok(!s.output().includes(tok1), 'the token appears in the server output');
        assert.equal((await s.stop()).code, 0);
    });
});

describe('SIGTERM drain', () => {
    test('WS clients get 1001, SSE ends, new connections are refused, exit 0', async () => {
        const s = await start({ args: ['--heartbeat', '1'] });
        const t = await mint(s.key, { sub: 'drain' });
        await post201(s, `${RUN}/d`, makeEvents(RUN, 3), { token: t });
        await post201(s, 'dashboard', '[]', { token: t });
        const ws = wsOpen(s, `${RUN}/d/stream`, { token: t });
        const sse = sseOpen(s, `${RUN}/d/stream`, { token: t });
        const dash = wsOpen(s, 'dashboard/stream', { token: t });
        await ws.waitEvents(3);
        await sse.waitEvents(3);
        await post201(s, 'dashboard', makeEvents('dashboard', 1), { token: t });
        await dash.waitEvents(1);
        const exit = s.stop();
        for (const w of [ws, dash]) {
            const cl = await within(w.closed, 10000, 'WS close on drain');
            assert.equal(cl.code, 1001, `drain close ${cl.code} ${cl.reason}`);
        }
        await within(sse.ended, 10000, 'SSE end on drain');
        const r = await within(exit, 20000, 'exit after drain');
        assert.equal(r.code, 0, JSON.stringify(r));
        const after = await rawHttp(s, 'GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n', { ms: 2000 });
        assert.equal(after.status, 0, 'still accepting after exit');
    });
});
