// ingest_edges.test.mjs - small ingest and accounting fixes from the attack report:
// `[]` to a sealed stream is 409 conflict like any append (was 201 {"firstSeq":2,
// "lastSeq":1}); a bare `?expectedSeq` or `expectedSeq=` is 400; a body with a
// Content-Encoding other than identity is 415; the rtlog_connections{transport="http"}
// gauge returns to its value after WebSocket upgrades whose socket is reset at once (09).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { start, mint, sleep, post, post201, get, makeEvents, sealEvent, assertHttpError, waitUntil } from './lib/itest.mjs';

const RUN = 'workflow-runs';

describe('ingest edges', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1'] });
        tok = await mint(srv.key, { sub: 'edges' });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('an empty batch to a sealed stream is 409 conflict; to an open one 201', async () => {
        const s = `${RUN}/sealed-empty`;
        await post201(srv, s, makeEvents(RUN, 1), { token: tok });
        const open = await post201(srv, s, '[]', { token: tok });
        assert.equal(open.lastSeq, 1);
        await post201(srv, s, [sealEvent(RUN)], { token: tok });
        assertHttpError(await post(srv, s, '[]', { token: tok }), 409, 'conflict', 'empty batch, sealed');
        assertHttpError(await post(srv, s, '', { token: tok, ndjson: true }), 409, 'conflict', 'empty NDJSON, sealed');
    });

    test('expectedSeq without a value is 400; nothing stored', async () => {
        const s = `${RUN}/bare-expected`;
        for (const q of ['?expectedSeq', '?expectedSeq=', '?a=1&expectedSeq', '?expectedSeq&a=1'])
            assertHttpError(await post(srv, s, makeEvents(RUN, 1), { token: tok, query: q }), 400, 'bad_request', q);
        const ok = await post201(srv, s, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=0' });
        assert.equal(ok.firstSeq, 1, 'nothing was stored by the refused requests');
    });

    test('Content-Encoding other than identity is 415; identity is accepted', async () => {
        const s = `${RUN}/encoded`;
        for (const enc of ['gzip', 'br', 'deflate', 'x-custom'])
            assertHttpError(await post(srv, s, makeEvents(RUN, 1), { token: tok, headers: { 'content-encoding': enc } }),
                415, 'bad_request', enc);
        const ok = await post201(srv, s, makeEvents(RUN, 1), { token: tok, headers: { 'content-encoding': 'identity' } });
        assert.equal(ok.firstSeq, 1);
    });

    test('the http connections gauge does not leak on WS upgrades reset at once', async () => {
        await post201(srv, `${RUN}/gauge`, '[]', { token: tok });
        const gauge = async () => Number(/rtlog_connections\{transport="http"\} (\d+)/.exec((await get(srv, '/metrics')).text)[1]);
        const before = await gauge();
        for (const path of [`/api/v1/${RUN}/gauge/stream?token=${tok}`, `/api/v1/${RUN}/gauge/stream`]) {
            await Promise.all(Array.from({ length: 10 }, () => new Promise((res) => {
                const s = net.connect(srv.port, '127.0.0.1', () => {
                    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
                    s.resetAndDestroy();
                });
                s.on('error', () => {});
                s.on('close', res);
            })));
        }
        await sleep(500);
        await waitUntil(async () => (await gauge()) === before, 5000, `http gauge back at ${before}`);
    });
});
