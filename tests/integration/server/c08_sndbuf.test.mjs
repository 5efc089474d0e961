// c08_sndbuf.test.mjs - handed.md C08 family, kernel side: a subscriber that stops reading
// must not hold unbounded kernel memory in the server. Linux autotuning grows a stream
// socket's send buffer up to tcp_wmem[2] (4 MiB here), so every stalled subscriber held
// ~2.7 MiB of kernel memory and a few hundred of them put the machine's TCP under memory
// pressure (tools/bench/RESULTS.md "Slow and stalled consumers"). rtlog sets SO_SNDBUF on
// stream sockets (--stream-sndbuf, default 256 KiB; the kernel doubles it).
// A raw SSE and a raw WS subscriber ask for a 6 MiB backlog and never read; once the
// server's socket has stopped taking bytes, `ss -tm` on the server's side of each
// connection must show a send buffer (skmem tb) and a send queue within twice the option.
// The same with --stream-sndbuf 0 (kernel autotuning) shows the buffer growing past that
// bound on this kernel, which is what makes the first assertion mean something.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { start, waitUntil, mint, post201 } from './lib/itest.mjs';

const KiB = 1024;
const STREAM = 'workflow-runs/sndbuf';
const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

/** The server-side sockets of established connections on @port: [{sendQ, tb}]. */
function serverSockets(port) {
    const r = spawnSync('ss', ['-tmnH', 'state', 'established', `( sport = :${port} )`]);
    assert.equal(r.status, 0, `ss: ${r.stderr}`);
    const lines = r.stdout.toString().split('\n');
    const out = [];
    for (let i = 0; i < lines.length; i++) {
        const m = lines[i].match(/^\s*(\d+)\s+(\d+)\s+\S+:(\d+)\s/);
        if (!m || Number(m[3]) !== port) continue;
        const sk = (lines[i] + ' ' + (lines[i + 1] ?? '')).match(/skmem:\([^)]*\btb(\d+)/);
        out.push({ sendQ: Number(m[2]), tb: sk ? Number(sk[1]) : NaN });
    }
    return out;
}

/** A subscriber that sends its request and never reads a byte. */
function stalled(srv, request) {
    const sock = net.connect(Number(new URL(srv.base).port), '127.0.0.1');
    sock.on('error', () => {});
    sock.write(request);
    sock.pause();
    return sock;
}

async function stalledBuffers(args) {
    const srv = await start({ args: ['--log-level', 'warn', '--heartbeat', '60', '--stall-timeout', '600', ...args] });
    servers.push(srv);
    const tok = await mint(srv.key, { sub: 'sndbuf' });
    // 6 MiB backlog: more than the client's receive buffer plus any send buffer we allow
    const pad = 'x'.repeat(8 * KiB);
    for (let b = 0; b < 8; b++)
        await post201(srv, STREAM, Array.from({ length: 96 }, () => ({ type: 'step_log', nodeId: 'n', line: pad, level: 'info' })), { token: tok });
    const port = Number(new URL(srv.base).port);
    const host = `127.0.0.1:${port}`;
    const socks = [
        stalled(srv, `GET /api/v1/${STREAM}/stream?follow=true HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${tok}\r\nAccept: text/event-stream\r\n\r\n`),
        stalled(srv, `GET /api/v1/${STREAM}/stream?token=${tok} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`),
    ];
    // the server has written all it can: both send queues non-empty and steady for a while
    let last = '', steady = 0;
    await waitUntil(() => {
        const s = serverSockets(port);
        const key = JSON.stringify(s);
        steady = s.length === 2 && s.every((x) => x.sendQ > 0) && key === last ? steady + 1 : 0;
        last = key;
        return steady >= 8;
    }, 30000, 'both stalled subscribers with a steady, non-empty send queue on the server', 100);
    const s = serverSockets(port);
    for (const x of socks) x.destroy();
    return s;
}

test('stream sockets of subscribers that do not read hold at most 2 x --stream-sndbuf in the kernel', { timeout: 120000 }, async () => {
    for (const [args, cap] of [[[], 256 * KiB], [['--stream-sndbuf', '64KiB'], 64 * KiB]]) {
        const socks = await stalledBuffers(args);
        for (const x of socks) {
            assert.ok(x.tb <= 2 * cap, `${args.join(' ') || 'default'}: send buffer ${x.tb} B > 2 x ${cap}`);
            assert.ok(x.sendQ <= 2 * cap, `${args.join(' ') || 'default'}: send queue ${x.sendQ} B > 2 x ${cap}`);
        }
    }
});

test('without the cap (--stream-sndbuf 0) the kernel grows the buffer past it (the bound above is real)', { timeout: 120000 }, async () => {
    const socks = await stalledBuffers(['--stream-sndbuf', '0']);
    assert.ok(socks.some((x) => x.tb > 2 * 256 * KiB), `autotuned buffers stayed small: ${JSON.stringify(socks)}`);
});
