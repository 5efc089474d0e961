// ingest_offload.test.mjs - bodies of 8 KiB or more are parsed on the parse thread
// (server/parse_pool.c), smaller ones on the lws thread: both must answer the same. Large
// valid batches (JSON array and NDJSON) are 201 with the right seqs and stored in order;
// a large body with a bad event is the same 400 (event index and field) and stores
// nothing; several JSON values sent as application/json get the NDJSON hint; clients
// that vanish while their body is being parsed leave the server serving, and many large
// POSTs in flight at once on different connections all get their own answer.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { start, mint, post, post201, makeEvents, assertHttpError, storedEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const big = (n, startAt = 1) => makeEvents(RUN, n, { startAt, pad: 150 }); // ~230 B each

describe('ingest parsed off the lws thread', () => {
    let srv, tok;
    before(async () => {
        srv = await start();
        tok = await mint(srv.key, { sub: 'offload' });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('large array and NDJSON batches are 201 and stored in order', async () => {
        const s = `${RUN}/big-ok`;
        const a = big(200);
        assert.ok(JSON.stringify(a).length > 8192, 'the body is over the offload size');
        const r1 = await post201(srv, s, a, { token: tok });
        assert.deepEqual([r1.firstSeq, r1.lastSeq], [1, 200]);
        const nd = big(300, 201).map((e) => JSON.stringify(e)).join('\n');
        const r2 = await post201(srv, s, nd, { token: tok, ndjson: true });
        assert.deepEqual([r2.firstSeq, r2.lastSeq], [201, 500]);
        const got = await storedEvents(srv, tok, s);
        assert.equal(got.length, 500);
        got.forEach((e, i) => assert.equal(e.seq, i + 1));
        const want = [...a, ...big(300, 201)];
        got.forEach((e, i) => assert.deepEqual({ ...e, seq: undefined }, { ...want[i], seq: undefined }));
    });

    test('a bad event in a large body is the same 400 as in a small one; nothing stored', async () => {
        for (const n of [3, 200]) {
            const s = `${RUN}/big-bad-${n}`;
            const evs = big(n);
            delete evs[n - 2].nodeId; // index n-2 misses a required field
            const r = await post(srv, s, evs, { token: tok });
            assertHttpError(r, 400, 'bad_request', `n=${n}`);
            assert.match(r.json.message, new RegExp(`${n - 2}`), r.json.message);
            assert.match(r.json.message, /nodeId/, r.json.message);
            const ok = await post201(srv, s, big(1), { token: tok });
            assert.equal(ok.firstSeq, 1, 'the refused batch stored nothing');
        }
    });

    test('several JSON values sent as application/json get the NDJSON hint, large or small', async () => {
        for (const n of [2, 100]) {
            const body = big(n).map((e) => JSON.stringify(e)).join('\n');
            const r = await post(srv, `${RUN}/big-hint-${n}`, body, { token: tok });
            assertHttpError(r, 400, 'bad_request', `n=${n}`);
            assert.match(r.json.message, /application\/x-ndjson/, r.json.message);
        }
    });

    test('clients gone while their body is parsed; many large POSTs at once', async () => {
        const body = JSON.stringify(big(400));
        const req = (s) => `POST /api/v1/${RUN}/${s}/events HTTP/1.1\r\nHost: x\r\n` +
            `Authorization: Bearer ${tok}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
        await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise((res) => {
            const c = net.connect(srv.port, '127.0.0.1', () => { c.write(req(`gone-${i}`)); c.destroy(); res(); });
            c.on('error', res);
        })));
        const rs = await Promise.all(Array.from({ length: 16 }, (_, i) =>
            post(srv, `${RUN}/many-${i % 4}`, big(100, 1), { token: tok })));
        for (const r of rs)
            assert.equal(r.status, 201, r.text);
        const per = [0, 1, 2, 3].map((k) => rs.filter((r) => r.json.stream === `${RUN}/many-${k}`)
            .map((r) => r.json.firstSeq).sort((x, y) => x - y));
        for (const seqs of per)
            assert.deepEqual(seqs, [1, 101, 201, 301], 'each append got its own seqs');
        const ok = await post201(srv, `${RUN}/after`, big(1), { token: tok });
        assert.equal(ok.firstSeq, 1, 'the server still serves');
    });
});
