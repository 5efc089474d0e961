// wsframes.test.mjs - WebSocket message-level limits on the stream endpoints, with raw frames
// (handed.md C17 a-e, i, j; CONTRACT "Errors and limits"): fragmented messages are reassembled
// (UTF-8 split mid code point is valid), invalid UTF-8 closes 1007, a message past
// max-ws-message closes 1009 while it is still arriving, an announced length past the limit
// closes 1009 before any payload arrives (a frame that never completes falls to the pong
// rule), deep JSON and duplicate keys in a control message get an error; the server and a
// bystander connection are unaffected in every case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, within, mint, post201, assertErrorShape, wsOpen, wsFrame, wsRaw,
    makeEvents, rss, alive } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const MiB = 1024 * 1024;
let srv, tok, bystander, path;
before(async () => {
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '600', '--auth-timeout', '2'], env: { ASAN_OPTIONS: asan } });
    tok = await mint(srv.key, { sub: 'frames' });
    await post201(srv, `${RUN}/frames`, makeEvents(RUN, 1), { token: tok });
    bystander = wsOpen(srv, `${RUN}/frames/stream`, { token: tok, onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
    await bystander.waitEvents(1);
    path = `${RUN}/frames/stream?token=${encodeURIComponent(tok)}`;
});
after(async () => {
    // The bystander saw none of it: it still gets new events.
    const n = bystander.events().length;
    await post201(srv, `${RUN}/frames`, makeEvents(RUN, 1, { startAt: 50 }), { token: tok });
    await bystander.waitEvents(n + 1);
    assert.equal(bystander.code, null);
    bystander.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
});

/** Split @buf into text frame + continuation frames of @size bytes. */
function fragments(buf, size = 1) {
    const out = [];
    for (let i = 0; i < buf.length; i += size) {
        out.push(wsFrame(i === 0 ? 1 : 0, buf.subarray(i, i + size), { fin: i + size >= buf.length }));
    }
    return Buffer.concat(out);
}
async function authed() {
    const c = wsRaw(srv, path);
    await c.upgraded;
    assert.equal(c.status, 101);
    await waitUntil(() => c.json().some((m) => m.seq === 1), 5000, 'first event');
    return c;
}

test('(a) one-byte fragments are reassembled: first-message auth works; UTF-8 split mid code point is valid', async () => {
    const c = wsRaw(srv, `${RUN}/frames/stream`);
    await c.upgraded;
    await c.send(fragments(Buffer.from(JSON.stringify({ type: 'auth', token: tok }))));
    await waitUntil(() => c.json().some((m) => m.seq === 1), 10000, 'stream after fragmented auth');
    // "κόσμε" as one-byte fragments: an unknown type, so an error reply, but not a 1007 close.
    await c.send(fragments(Buffer.from('{"type":"κόσμε"}')));
    const err = await waitUntil(() => c.json().find((m) => m.type === 'error'), 5000, 'error for unknown type');
    assertErrorShape(err, 'bad_request', 'fragmented unknown type');
    await sleep(300);
    assert.equal(c.closeCode, null, `closed with ${c.closeCode}`);
    c.close();
});

test('(b) an encoded surrogate in one text frame closes 1007', async () => {
    const c = await authed();
    await c.send(wsFrame(1, Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex')));
    await within(c.closed, 5000, '1007');
    assert.equal(c.closeCode, 1007);
});

test('(c) a code point above U+10FFFF in the middle fragment closes 1007', async () => {
    const c = await authed();
    await c.send(wsFrame(1, Buffer.from('{"type":"'), { fin: false }));
    await c.send(wsFrame(0, Buffer.from([0xf4, 0x90, 0x80, 0x80]), { fin: false }));
    await c.send(wsFrame(0, Buffer.from('"}'), { fin: true }));
    await within(c.closed, 5000, '1007');
    assert.equal(c.closeCode, 1007);
});

test('(d) 64 MiB in 64 KiB continuation frames closes 1009 while arriving; memory stays bounded', { timeout: 60000 }, async () => {
    const c = await authed();
    const before = rss(srv.pid).vm;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0, sentAtClose = null;
    await c.send(wsFrame(1, Buffer.concat([Buffer.from('{"type":"pong","pad":"'), chunk]), { fin: false }));
    for (let i = 1; i < 1024; i++) {
        if (c.closeCode !== null || c.ended) { sentAtClose = sent; break; }
        if (!(await c.send(wsFrame(0, chunk, { fin: i === 1023 })))) break;
        sent += chunk.length;
        if (i % 16 === 0) await sleep(1); // let the reader see a close frame
    }
    await within(c.closed, 10000, '1009');
    assert.equal(c.closeCode, 1009, `close ${c.closeCode}`);
    // The limit is 1 MiB; loopback socket buffers hold a few MiB more before the close is seen.
    assert.ok(sentAtClose !== null && sentAtClose < 16 * MiB,
        `close frame seen after ${sentAtClose ?? sent} bytes of a 64 MiB message`);
    const growth = rss(srv.pid).vm - before;
    assert.ok(growth < 32 * MiB, `RSS grew ${(growth / MiB).toFixed(1)} MiB for a 1 MiB limit`);
});

/** A masked text-frame header (no payload) announcing @len bytes: 64-bit length form. */
function bigHeader(len, { opcode = 1, fin = true } = {}) {
    const hdr = Buffer.alloc(14);
    hdr[0] = (fin ? 0x80 : 0) | opcode;
    hdr[1] = 0xff;
    hdr.writeBigUInt64BE(BigInt(len), 2);
    hdr.writeUInt32BE(0x01020304, 10);
    return hdr;
}

test('(e) a frame announcing 2^63-1 bytes is refused at once with 1009; nothing is allocated for it', async () => {
    // lws 4.1.6 gives no callback until payload arrives; the housekeeping tick reads the
    // announced length (lws_remaining_packet_payload) and closes 1009 without any payload.
    const before = rss(srv.pid).vm;
    const c = await authed();
    await c.send(bigHeader(0x7fffffffffffffffn));
    await within(c.closed, 5000, 'refusal of a 2^63-1 frame');
    assert.equal(c.closeCode, 1009, `close ${c.closeCode} ${c.closeReason}`);
    // Before authentication the pre-auth budget (8 KiB) is what an announcement is held to.
    const p = wsRaw(srv, `${RUN}/frames/stream`);
    await p.upgraded;
    await p.send(bigHeader(64 * 1024));
    await within(p.closed, 5000, 'refusal of a 64 KiB frame before auth');
    assert.equal(p.closeCode, 1009, `pre-auth close ${p.closeCode} ${p.closeReason}`);
    assert.equal(p.json().length, 0, 'frames sent before authentication');
    // The announcement counts with what is already reassembled: 600 KiB in a first fragment,
    // then a continuation announcing 600 KiB more (1 MiB limit), then nothing.
    const f = await authed();
    await f.send(wsFrame(1, Buffer.alloc(600 * 1024, 0x20), { fin: false }));
    await f.send(bigHeader(600 * 1024, { opcode: 0 }));
    await within(f.closed, 5000, 'refusal of a continuation past the limit');
    assert.equal(f.closeCode, 1009, `continuation close ${f.closeCode} ${f.closeReason}`);
    const growth = rss(srv.pid).vm - before;
    assert.ok(growth < 32 * MiB, `RSS grew ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(alive(srv.pid));
});

test('(e) a frame within the limit whose payload never completes is dropped by the pong rule', async () => {
    // A client in the middle of a frame cannot answer a heartbeat (whatever it sends is
    // payload), and trickled payload is not an answer: heartbeat + pong-timeout after its
    // last answer the socket is dropped without a close frame (rtlog_server.h).
    const HB = 1, PONG = 2;
    const s2 = await start({ args: ['--heartbeat', String(HB), '--pong-timeout', String(PONG)] });
    try {
        const t2 = await mint(s2.key, { sub: 'trickle' });
        await post201(s2, `${RUN}/t`, makeEvents(RUN, 1), { token: t2 });
        const c = wsRaw(s2, `${RUN}/t/stream?token=${encodeURIComponent(t2)}`);
        await c.upgraded;
        await waitUntil(() => c.json().some((m) => m.seq === 1), 5000, 'first event');
        await c.send(wsFrame(1, Buffer.from('{"type":"pong"}')));
        const payload = Buffer.from('{"type":"pong","pad":"' + 'x'.repeat(80) + '"}');
        const frame = wsFrame(1, payload);
        const head = frame.subarray(0, 6 + 2); // header + mask + the first 2 payload bytes
        await c.send(head);
        let off = head.length;
        const trickle = setInterval(() => { if (off < frame.length - 1) c.send(frame.subarray(off, ++off)); }, 300);
        try {
            await within(c.closed, (HB + PONG + 1) * 1000 + 8000, 'drop of a never-finished frame');
        } finally {
            clearInterval(trickle);
        }
        assert.equal(c.closeCode, null, `expected a drop without a close frame, got ${c.closeCode}`);
        assert.ok(off > head.length, 'payload was trickling when the socket was dropped');
        assert.ok(alive(s2.pid));
    } finally {
        const r = await s2.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
    }
});

test('(i) 100,000 nested [ in a control message: an error, no crash', async () => {
    const c = await authed();
    await c.send(wsFrame(1, Buffer.from('{"type":"pong","data":' + '['.repeat(100000))));
    const err = await waitUntil(() => c.json().find((m) => m.type === 'error') || (c.ended && { ended: true }), 5000, 'error for deep JSON');
    if (!err.ended) assertErrorShape(err, 'bad_request', 'deep JSON');
    else assert.ok([4400, 1007, 1008].includes(c.closeCode), `deep JSON: close ${c.closeCode}`);
    assert.ok(alive(srv.pid));
    c.close();
});

test('(j) duplicate keys in a control message are rejected, never "last key wins"', async () => {
    // Before auth: {"type":"auth","token":good,"type":"pong"} must not authenticate.
    const c = wsRaw(srv, `${RUN}/frames/stream`);
    await c.upgraded;
    await c.send(wsFrame(1, Buffer.from(`{"type":"pong","type":"auth","token":"${tok}"}`)));
    await sleep(500);
    await c.send(wsFrame(1, Buffer.from(`{"type":"auth","token":"${tok}","type":"pong"}`)));
    await within(c.closed, 10000, 'close of a connection that never authenticated properly');
    assert.equal(c.json().filter((m) => typeof m.seq === 'number').length, 0, 'a duplicate-key auth started the stream');
    for (const e of c.json().filter((m) => m.type === 'error')) assertErrorShape(e, null, 'duplicate keys pre-auth');
    // After auth: an error reply.
    const d = await authed();
    await d.send(wsFrame(1, Buffer.from('{"type":"pong","type":"bogus"}')));
    const err = await waitUntil(() => d.json().find((m) => m.type === 'error'), 5000, 'error for duplicate keys');
    assertErrorShape(err, 'bad_request', 'duplicate keys');
    d.close();
});
