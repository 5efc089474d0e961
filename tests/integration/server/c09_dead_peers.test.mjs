// c09_dead_peers.test.mjs - handed.md C09 (dead peers and the pong rule), the parts
// heartbeat.test.mjs does not cover ((a) silence, (b) RFC 6455 pongs, (c) unsolicited pongs
// and (e) "PONG" are there): (d) a peer that goes silent after the handshake, reading and
// writing nothing, as if every packet were dropped, is ended by the pong rule and the
// server's connection gauge returns to its baseline; a WS peer that keeps answering
// heartbeats with {"type":"pong"} but has stopped reading its socket is ended by the stall
// timeout instead (the pong rule alone would keep it); SSE has no upstream channel: a client
// that vanishes (connection reset) is noticed at the next heartbeat write and its
// subscription is gone.
// (Dropping packets on the machine's loopback would disturb every other test, so here the
// silent peer is a socket that neither reads nor writes; the kernel still ACKs, which is why
// the stall timeout, not TCP, is what ends a non-reading peer. A real outage, packets dropped
// on a loopback of its own, is c09_netns_dead_peers.test.mjs: see tests/HANDED.md C09.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { start, sleep, waitUntil, within, mint, post201, get, sseOpen, wsFrame, makeEvents } from './lib/itest.mjs';

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '2', '--stall-timeout', '3'] });
    tok = await mint(srv.key, { sub: 'c09' });
    await post201(srv, `${RUN}/c09`, makeEvents(RUN, 2), { token: tok });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

async function conns() {
    const t = (await get(srv, '/metrics')).text;
    return [...t.matchAll(/^rtlog_connections\{transport="(sse|ws)"\} (\d+)$/gm)].reduce((a, m) => a + Number(m[2]), 0);
}

/** A raw WS upgrade; the socket is then left alone (paused: nothing read, nothing written). */
function upgrade(path) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(srv.port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        const c = { sock, closed: false };
        c.closedP = new Promise((r) => sock.on('close', () => { c.closed = true; r(); }));
        sock.on('error', () => {});
        sock.on('connect', () => sock.write(`GET /api/v1/${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
        const onData = (d) => {
            buf = Buffer.concat([buf, d]);
            if (buf.includes('\r\n\r\n')) {
                sock.removeListener('data', onData);
                if (!buf.toString('latin1').startsWith('HTTP/1.1 101')) reject(new Error(buf.toString('latin1', 0, 200)));
                resolve(c);
            }
        };
        sock.on('data', onData);
    });
}

test('(d) a WS peer silent after the handshake is ended by the pong rule; the gauge returns to baseline', async () => {
    const base = await conns();
    const c = await upgrade(`${RUN}/c09/stream?token=${encodeURIComponent(tok)}`);
    c.sock.pause(); // reads nothing, writes nothing from now on
    await waitUntil(async () => (await conns()) === base + 1, 5000, 'the WS counted');
    // pong rule: heartbeat (1 s) + pong timeout (2 s); the socket is closed by the server
    await waitUntil(async () => (await conns()) === base, 15000, 'the silent peer dropped');
    c.sock.resume();
    await within(c.closedP, 10000, 'the server closed the TCP connection');
});

test('a WS peer that answers heartbeats but reads nothing else is ended by the stall timeout', { timeout: 60000 }, async () => {
    const base = await conns();
    const c = await upgrade(`${RUN}/c09/stream?token=${encodeURIComponent(tok)}`);
    c.sock.pause();
    // it sends a {"type":"pong"} every 500 ms without ever reading what the server writes
    const timer = setInterval(() => { if (!c.closed) c.sock.write(wsFrame(1, '{"type":"pong"}')); }, 500);
    // and the server has a lot to write: 8 MiB of events fill the socket buffers
    for (let i = 0; i < 8; i++)
        await post201(srv, `${RUN}/c09`, Array.from({ length: 64 }, (_, j) => ({ type: 'step_log', nodeId: 'n', line: `${i}.${j} ${'z'.repeat(16000)}`, level: 'info' })), { token: tok });
    await waitUntil(async () => (await conns()) === base, 30000, 'the non-reading peer dropped by the stall timeout');
    clearInterval(timer);
    c.sock.destroy();
});

test('SSE: a client that vanishes (reset) is noticed at the next heartbeat write; its subscription is gone', async () => {
    const base = await conns();
    const s = sseOpen(srv, `${RUN}/c09/stream`, { token: tok, lastEventId: 2 });
    await s.opened;
    await waitUntil(async () => (await conns()) === base + 1, 5000, 'the SSE counted');
    s.req.socket.resetAndDestroy();
    await waitUntil(async () => (await conns()) === base, 10000, 'the vanished SSE client released');
    await sleep(100);
});
