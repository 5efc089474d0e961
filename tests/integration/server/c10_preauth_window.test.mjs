// c10_preauth_window.test.mjs - handed.md C10 (pre-authentication window on WebSocket) at the
// case's own scale, on /api/v1/dashboard/stream while metric_update events are produced.
// auth.test.mjs covers (a) silence and (b) pongs until the deadline, (d) forbidden, (e) the
// good first message, and a 64 KiB first frame; preauth.test.mjs the caps with 4 sockets.
// Here: (c) a whole 16 MiB first frame starting {"type":"auth","token":" is closed 1009
// without being buffered (server RSS grows far less than 16 MiB); (f) 2,000 idle
// unauthenticated sockets from one IP: the per-IP cap admits its share, every other one is
// refused (rate_limited, 4429) with no data frame, and a legitimate client from another
// loopback address (127.0.0.2) authenticates by first message and streams; the gauge of
// pre-auth sockets returns to 0 once they are gone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { start, sleep, waitUntil, within, mint, post201, get, wsFrame, wsRaw, metricUpdate, rss,
    alive } from './lib/itest.mjs';

const MiB = 1024 * 1024;
let srv, tok, producing = true, producer;
before(async () => {
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
    srv = await start({ args: ['--heartbeat', '1', '--auth-timeout', '30', '--max-preauth-per-ip', '64',
        '--max-preauth-connections', '1024'], env: { ASAN_OPTIONS: asan } });
    tok = await mint(srv.key, { sub: 'c10', subscribe: ['dashboard'], publish: ['dashboard'] });
    producer = (async () => { for (let i = 0; producing; i++) { await post201(srv, 'dashboard', [metricUpdate(i)], { token: tok }); await sleep(100); } })();
});
after(async () => {
    producing = false;
    await producer;
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
});

async function preauthGauge() {
    const m = /^rtlog_ws_preauth (\d+)$/m.exec((await get(srv, '/metrics')).text);
    return m ? Number(m[1]) : -1;
}

test('(c) a 16 MiB first frame is closed 1009 without being buffered', async () => {
    const c = wsRaw(srv, 'dashboard/stream');
    await c.upgraded;
    assert.equal(c.status, 101);
    await sleep(300);
    const base = rss(srv.pid).vm;
    let peak = base;
    const sampler = setInterval(() => { try { peak = Math.max(peak, rss(srv.pid).vm); } catch {} }, 20);
    const head = Buffer.from('{"type":"auth","token":"');
    const frame = wsFrame(1, Buffer.concat([head, crypto.randomBytes(16 * MiB - head.length)]));
    c.sock.write(frame);
    await within(c.closed, 20000, '16 MiB pre-auth frame');
    clearInterval(sampler);
    // 1009, or no close frame at all: the server closes while the client is still writing,
    // and the kernel's RST (unread bytes) may overtake the close frame. Either way it is
    // closed long before the frame ends, which the RSS bound below proves.
    assert.ok(c.closeCode === 1009 || c.closeCode === null, `close ${c.closeCode}`);
    assert.equal(c.json().filter((m) => m.type === 'metric_update').length, 0, 'data before authentication');
    assert.ok(peak - base < 8 * MiB, `server RSS grew ${((peak - base) / MiB).toFixed(1)} MiB for a 16 MiB pre-auth frame`);
});

/** A raw WebSocket upgrade from @localAddress that sends nothing after it. */
function idleUpgrade(localAddress) {
    return new Promise((resolve) => {
        const sock = net.connect({ port: srv.port, host: '127.0.0.1', localAddress });
        const c = { sock, head: '', data: Buffer.alloc(0), closed: false };
        sock.on('error', () => {});
        sock.on('close', () => { c.closed = true; resolve(c); });
        sock.on('connect', () => sock.write(`GET /api/v1/dashboard/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
        sock.on('data', (d) => {
            c.data = Buffer.concat([c.data, d]);
            if (!c.head && c.data.includes('\r\n\r\n')) { c.head = c.data.toString('latin1', 0, c.data.indexOf('\r\n\r\n')); resolve(c); }
        });
    });
}
/** Text payloads and the close code in the server's frames after the 101. */
function frames(c) {
    let b = c.data.subarray(c.data.indexOf('\r\n\r\n') + 4);
    const out = { texts: [], close: null };
    while (b.length >= 2) {
        const op = b[0] & 15;
        let len = b[1] & 127, off = 2;
        if (len === 126) { len = b.readUInt16BE(2); off = 4; } else if (len === 127) { len = Number(b.readBigUInt64BE(2)); off = 10; }
        if (b.length < off + len) break;
        const pl = b.subarray(off, off + len);
        if (op === 1) out.texts.push(JSON.parse(pl.toString()));
        if (op === 8) out.close = pl.readUInt16BE(0);
        b = b.subarray(off + len);
    }
    return out;
}

test('(f) 2,000 idle pre-auth sockets from one IP: the cap admits 64, the rest get 4429; another IP authenticates', { timeout: 120000 }, async () => {
    const socks = [];
    for (let i = 0; i < 2000; i += 100) socks.push(...await Promise.all(Array.from({ length: 100 }, () => idleUpgrade('127.0.0.1'))));
    await sleep(500);
    const open = socks.filter((c) => !c.closed);
    const refused = socks.filter((c) => c.closed);
    assert.equal(open.length, 64, `pre-auth sockets left open from one IP: ${open.length}`);
    assert.equal(await preauthGauge(), 64);
    for (const c of refused) {
        assert.match(c.head, /^HTTP\/1\.1 (101|429)/, c.head);
        if (c.head.startsWith('HTTP/1.1 101')) {
            const f = frames(c);
            assert.equal(f.close, 4429, `refused socket closed ${f.close}`);
            assert.deepEqual(f.texts.map((m) => m.code), ['rate_limited']);
        }
    }
    for (const c of open) assert.equal(frames(c).texts.length, 0, 'data frames before authentication');
    // a legitimate client from another loopback address authenticates by first message
    const c = await idleUpgrade('127.0.0.2');
    assert.match(c.head, /^HTTP\/1\.1 101/);
    c.sock.write(wsFrame(1, JSON.stringify({ type: 'auth', token: tok })));
    await waitUntil(() => frames(c).texts.some((m) => m.type === 'metric_update'), 10000, 'stream from 127.0.0.2');
    c.sock.destroy();
    for (const c of open) c.sock.destroy();
    await waitUntil(async () => (await preauthGauge()) === 0, 10000, 'pre-auth gauge back to 0');
    assert.ok(alive(srv.pid));
});
