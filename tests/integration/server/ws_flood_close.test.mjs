// ws_flood_close.test.mjs - the 1009 close frame reaches a client that floods past
// max-preauth-bytes or max-ws-message (CONTRACT "Errors and limits"; RFC 6455 7.1.1 / 7.1.7),
// whatever the flood's size and shape, before and after authentication; a message of exactly
// the limit still works. The server reads WebSocket input in rx_buffer_size pieces (server.c,
// smaller than the floods here, to keep idle connections small): it must send its close
// frame and keep reading and dropping the rest of the flood instead of closing the socket
// with the flood unread (the kernel's RST can overtake the close frame; the client then sees
// a reset and no close code). Each case writes its whole flood at once and is repeated, so a
// close that only sometimes loses the race is seen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, waitUntil, within, mint, post201, wsOpen, wsFrame, wsRaw, makeEvents, alive }
    from './lib/itest.mjs';

const RUN = 'workflow-runs';
const KiB = 1024, MiB = 1024 * KiB;
const PREAUTH = 8 * KiB, MAXMSG = 1 * MiB; // the defaults, given explicitly below
const REPEAT = 3;
let srv, tok, bystander;

before(async () => {
    srv = await start({ args: ['--max-preauth-bytes', String(PREAUTH),
        '--max-ws-message', String(MAXMSG), '--heartbeat', '1', '--pong-timeout', '600'] });
    tok = await mint(srv.key, { sub: 'flood' });
    await post201(srv, `${RUN}/flood`, makeEvents(RUN, 1), { token: tok });
    bystander = wsOpen(srv, `${RUN}/flood/stream`, { token: tok,
        onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
    await bystander.waitEvents(1);
});
after(async () => {
    // The bystander saw none of it: it is still open and still gets new events.
    const n = bystander.events().length;
    await post201(srv, `${RUN}/flood`, makeEvents(RUN, 1, { startAt: 50 }), { token: tok });
    await bystander.waitEvents(n + 1);
    assert.equal(bystander.code, null);
    bystander.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
});

/** @total bytes of text payload: one frame, or @frag-byte fragments (continuations). */
function flood(total, { frag = 0, prefix = '{"type":"auth","token":"' } = {}) {
    const body = Buffer.alloc(total, 0x41);
    Buffer.from(prefix).copy(body);
    if (!frag) return wsFrame(1, body);
    const out = [];
    for (let i = 0; i < total; i += frag) {
        out.push(wsFrame(i ? 0 : 1, body.subarray(i, i + frag), { fin: i + frag >= total }));
    }
    return Buffer.concat(out);
}

/** Open a raw WS (authenticated by ?token= when @authed), write @bytes in one go, wait. */
async function floodOnce(bytes, authed) {
    const c = wsRaw(srv, `${RUN}/flood/stream${authed ? `?token=${encodeURIComponent(tok)}` : ''}`);
    await c.upgraded;
    assert.equal(c.status, 101);
    if (authed) await waitUntil(() => c.json().some((m) => m.seq === 1), 5000, 'first event');
    c.sock.write(bytes, () => {}); // all at once: the server sees a flood, not a paced sender
    await within(c.closed, 20000, `close after a ${bytes.length}-byte flood`);
    return c;
}

const cases = [
    // [label, authed, bytes, fragment size]
    ['pre-auth: one frame of max-preauth-bytes + 1', false, PREAUTH + 1, 0],
    ['pre-auth: one 64 KiB frame', false, 64 * KiB, 0],
    ['pre-auth: one 1 MiB frame', false, MiB, 0],
    ['pre-auth: one 8 MiB frame', false, 8 * MiB, 0],
    ['pre-auth: 64 KiB in 1 KiB fragments', false, 64 * KiB, KiB],
    ['authed: one frame of max-ws-message + 1', true, MAXMSG + 1, 0],
    ['authed: one 4 MiB frame', true, 4 * MiB, 0],
    ['authed: one 16 MiB frame', true, 16 * MiB, 0],
    ['authed: 4 MiB in 64 KiB fragments', true, 4 * MiB, 64 * KiB],
    ['authed: 2 MiB in 3000-byte fragments', true, 2 * MiB, 3000],
];
for (const [label, authed, total, frag] of cases) {
    test(`${label}: close 1009 reaches the client (${REPEAT} times)`, { timeout: 120000 }, async () => {
        const bytes = flood(total, { frag, prefix: authed ? '{"type":"ping","pad":"' : undefined });
        for (let i = 0; i < REPEAT; i++) {
            const c = await floodOnce(bytes, authed);
            assert.equal(c.closeCode, 1009,
                `run ${i + 1}: close ${c.closeCode} (${c.error?.code ?? 'no socket error'})`);
            assert.match(c.closeReason, authed ? /message too big/ : /before auth/);
            if (!authed) {
                assert.equal(c.json().filter((m) => typeof m.seq === 'number').length, 0,
                    'events before authentication');
            }
        }
        assert.ok(alive(srv.pid));
    });
}

/** A JSON text of exactly @n bytes: @head, then "pad":"xxx...", closed. */
function exactly(n, head) {
    const open = `${head},"pad":"`, close = '"}';
    return Buffer.from(open + 'x'.repeat(n - open.length - close.length) + close);
}

test('a message of exactly max-ws-message bytes is answered, in one frame and in fragments', async () => {
    const c = wsRaw(srv, `${RUN}/flood/stream?token=${encodeURIComponent(tok)}`);
    await c.upgraded;
    await waitUntil(() => c.json().some((m) => m.seq === 1), 5000, 'first event');
    const msg = exactly(MAXMSG, '{"type":"ping"');
    assert.equal(msg.length, MAXMSG);
    await c.send(wsFrame(1, msg));
    await waitUntil(() => c.json().filter((m) => m.type === 'pong').length === 1, 10000, 'pong to one frame');
    const parts = [];
    for (let i = 0; i < msg.length; i += 5000) {
        parts.push(wsFrame(i ? 0 : 1, msg.subarray(i, i + 5000), { fin: i + 5000 >= msg.length }));
    }
    await c.send(Buffer.concat(parts));
    await waitUntil(() => c.json().filter((m) => m.type === 'pong').length === 2, 10000, 'pong to fragments');
    assert.equal(c.closeCode, null);
    assert.equal(c.ended, false);
    c.close();
});

test('an auth message of exactly max-preauth-bytes authenticates', async () => {
    const c = wsRaw(srv, `${RUN}/flood/stream`);
    await c.upgraded;
    const msg = exactly(PREAUTH, `{"type":"auth","token":"${tok}"`);
    assert.equal(msg.length, PREAUTH);
    await c.send(wsFrame(1, msg));
    await waitUntil(() => c.json().some((m) => m.seq === 1), 10000, 'stream after a max-size auth message');
    assert.equal(c.closeCode, null);
    c.close();
});
