// h2c.test.mjs - HTTP/1.1 only (attack report 03): lws 4.1.6 accepted "Upgrade: h2c" and
// switched the connection to HTTP/2, where SSE got no live events and Last-Event-ID was
// lost. An h2c upgrade is refused with 400 bad_request and Connection: close, never 101;
// a POST carrying it is refused and stores nothing; the server keeps serving HTTP/1.1.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { start, mint, get, post201, makeEvents, assertErrorShape } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const UPGRADE = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';

/** Write @bytes on a fresh connection, read until the server closes it or @ms pass. */
const rawUntilClose = (srv, bytes, ms) => new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write(bytes));
    const chunks = [];
    const finish = (closed) => { clearTimeout(t); s.destroy(); resolve({ text: Buffer.concat(chunks).toString('latin1'), closed }); };
    const t = setTimeout(() => finish(false), ms);
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => finish(true));
    s.on('error', () => {});
});

function check400(r, what) {
    assert.match(r.text, /^HTTP\/1\.[01] 400 /, `${what}: ${r.text.slice(0, 80)}`);
    assert.doesNotMatch(r.text, /101 Switching/i);
    assert.match(r.text, /\r\nconnection: close\r\n/i);
    assertErrorShape(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)), 'bad_request', what);
    assert.equal(r.closed, true, `${what}: connection closed`);
}

describe('h2c upgrade', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1'] });
        tok = await mint(srv.key, { sub: 'h2c' });
        await post201(srv, `${RUN}/h2`, makeEvents(RUN, 1), { token: tok });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('GET (health, SSE) with Upgrade: h2c is a 400, not a switch to HTTP/2', async () => {
        check400(await rawUntilClose(srv, `GET /health/live HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`, 4000), 'health');
        check400(await rawUntilClose(srv, `GET /api/v1/${RUN}/h2/stream HTTP/1.1\r\nHost: x\r\n` +
            `Authorization: Bearer ${tok}\r\nAccept: text/event-stream\r\n${UPGRADE}\r\n`, 4000), 'sse');
    });

    test('POST with Upgrade: h2c and a body is refused and stores nothing', async () => {
        const body = JSON.stringify(makeEvents(RUN, 1, { startAt: 2 }));
        check400(await rawUntilClose(srv, `POST /api/v1/${RUN}/h2/events HTTP/1.1\r\nHost: x\r\n` +
            `Authorization: Bearer ${tok}\r\nContent-Type: application/json\r\n${UPGRADE}` +
            `Content-Length: ${body.length}\r\n\r\n${body}`, 4000), 'post');
        const a = await post201(srv, `${RUN}/h2`, makeEvents(RUN, 1, { startAt: 2 }), { token: tok });
        assert.equal(a.firstSeq, 2, 'the refused POST stored nothing');
        assert.equal((await get(srv, '/health/live')).status, 200);
    });
});
