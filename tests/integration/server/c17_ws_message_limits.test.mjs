// c17_ws_message_limits.test.mjs - handed.md C17 (WebSocket message-level limits: fragments,
// UTF-8, size, deflate, control frames), the parts wsframes.test.mjs and errors.test.mjs do not
// already cover: (f) compression: permessage-deflate is never negotiated, and a frame that
// claims compression anyway (RSV1) is a protocol error; (g) control frames: a ping with a
// 126-byte payload, a fragmented ping (FIN=0), close frames with codes 1005, 999, 5000 and a
// 1-byte close payload are protocol errors (1002), a valid close is echoed; (h) a binary
// frame carrying a valid event is refused with 1003 and stores nothing; interleaving a text
// frame inside a fragmented message and a continuation with nothing to continue are 1002.
// The kind: limits and validity checked on the reassembled, decompressed message, on every
// frame type. In every case the server and a bystander connection are unaffected.
// (a)-(e), (i), (j): wsframes.test.mjs; agents' task-stream inputs: the agents' own tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, within, mint, post201, wsOpen, wsFrame, wsRaw, makeEvents, alive,
    storedEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok, bystander, path;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '600'] });
    tok = await mint(srv.key, { sub: 'c17' });
    await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 1), { token: tok });
    bystander = wsOpen(srv, `${RUN}/run-0001/stream`, { token: tok, onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
    await bystander.waitEvents(1);
    path = `${RUN}/run-0001/stream?token=${encodeURIComponent(tok)}`;
});
after(async () => {
    const n = bystander.events().length;
    await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 1, { startAt: 50 }), { token: tok });
    await bystander.waitEvents(n + 1);
    assert.equal(bystander.code, null, 'the bystander was disturbed');
    bystander.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
});

async function authed(headers = {}) {
    const c = wsRaw(srv, path, { headers });
    await c.upgraded;
    assert.equal(c.status, 101, c.headBuf);
    await waitUntil(() => c.json().some((m) => m.seq === 1), 5000, 'first event');
    return c;
}
async function closedWith(c, codes, what) {
    await within(c.closed, 10000, what);
    assert.ok(codes.includes(c.closeCode), `${what}: close ${c.closeCode} (${c.closeReason}), want ${codes.join(' or ')}`);
    assert.ok(alive(srv.pid), `${what}: server died`);
}

test('(f) permessage-deflate is never negotiated; a compressed (RSV1) frame is a protocol error', async () => {
    const c = await authed({ 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' });
    assert.doesNotMatch(c.headBuf, /sec-websocket-extensions/i, 'the server agreed to an extension');
    // ~100 KB of deflate data that would inflate to 1 GiB of spaces, marked compressed (RSV1)
    const zlib = await import('node:zlib');
    const bomb = zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024, 0x20)); // 64 KiB: the shape is what matters
    const f = wsFrame(1, bomb);
    f[0] |= 0x40; // RSV1
    await c.send(f);
    // lws fails the connection at the frame header (TCP closed, no close frame): allowed by
    // RFC 6455 7.1.7; nothing of the payload is inflated or buffered
    await closedWith(c, [1002, 1009, null], 'RSV1 frame without the extension');
});

test('(g) control frames: long ping, fragmented ping, bad close codes and payloads are 1002', async () => {
    // want: 1002 close, or (null) the connection failed without a close frame, which RFC
    // 6455 7.1.7 allows and lws 4.1.6 does at the frame header for an over-long control
    // frame, for a close payload too short to hold a code and for a reason that is not UTF-8
    const cases = [
        ['ping with a 126-byte payload', wsFrame(9, Buffer.alloc(126, 0x61)), [1002, null]],
        ['ping with FIN=0', wsFrame(9, Buffer.from('x'), { fin: false }), [1002]],
        ['close 1005 on the wire', wsFrame(8, Buffer.from([0x03, 0xed])), [1002]],
        ['close 999', wsFrame(8, Buffer.from([0x03, 0xe7])), [1002]],
        ['close 5000', wsFrame(8, Buffer.from([0x13, 0x88])), [1002]],
        ['close 2999 (reserved)', wsFrame(8, Buffer.from([0x0b, 0xb7])), [1002]],
        ['close with a 1-byte payload', wsFrame(8, Buffer.from([0x03])), [1002, null]],
        ['close reason that is not UTF-8', wsFrame(8, Buffer.from([0x03, 0xe8, 0xff, 0xfe])), [1002, 1007, null]],
    ];
    for (const [what, frame, want] of cases) {
        const c = await authed();
        await c.send(frame);
        await closedWith(c, want, what);
    }
});

test('(g) a valid close (1000, 4000 + reason) is answered with a close, not an error', async () => {
    for (const code of [1000, 4000]) {
        const c = await authed();
        const pl = Buffer.alloc(2 + 3);
        pl.writeUInt16BE(code, 0);
        pl.write('bye', 2);
        await c.send(wsFrame(8, pl));
        await within(c.closed, 10000, `close ${code}`);
        assert.ok(c.closeCode === code || c.closeCode === 1000, `close ${code} answered with ${c.closeCode}`);
    }
});

test('(h) a binary frame carrying a valid event: 1003, nothing stored', async () => {
    const before = (await storedEvents(srv, tok, `${RUN}/run-0001`)).length;
    const c = await authed();
    await c.send(wsFrame(2, Buffer.from(JSON.stringify(makeEvents(RUN, 1, { startAt: 7 })[0]))));
    await closedWith(c, [1003], 'binary frame');
    await sleep(200);
    assert.equal((await storedEvents(srv, tok, `${RUN}/run-0001`)).length, before, 'the binary frame was stored');
});

test('fragment order: a text frame inside a fragmented message, or a lone continuation, is 1002', async () => {
    let c = await authed();
    await c.send(wsFrame(1, Buffer.from('{"type":'), { fin: false }));
    await c.send(wsFrame(1, Buffer.from('"pong"}'), { fin: true }));
    await closedWith(c, [1002], 'new text frame before the fragmented message ended');
    c = await authed();
    await c.send(wsFrame(0, Buffer.from('{"type":"pong"}'), { fin: true }));
    await closedWith(c, [1002], 'continuation with nothing to continue');
    // a ping between fragments is allowed (RFC 6455 5.4) and answered
    c = await authed();
    await c.send(wsFrame(1, Buffer.from('{"type":'), { fin: false }));
    await c.send(wsFrame(9, Buffer.from('p')));
    await c.send(wsFrame(0, Buffer.from('"pong"}'), { fin: true }));
    await sleep(500);
    assert.equal(c.closeCode, null, `ping between fragments closed ${c.closeCode}`);
    c.close();
});
