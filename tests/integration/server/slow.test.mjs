// slow.test.mjs - slow and stalled consumers lose nothing and cost bounded memory (handed.md
// C08, CONTRACT "Errors and limits": slow consumers). While 20,000+ events of ~1 KB are posted,
// a WS subscriber that pauses its socket and a raw SSE subscriber that never reads sit next to
// fast WS and SSE followers. The fast ones get everything; the server's RSS stays within a
// generous bound over its baseline; each stalled socket is closed after --stall-timeout, and
// resuming from the last seq it really received delivers every remaining event exactly once.
import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import net from 'node:net';
import { start, sleep, waitUntil, within, mint, post201, SseParser, sseOpen, wsOpen,
    assertDelivered, rss } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const N = 40000;
const STALL_S = 20; // longer than posting N events takes, so the stalled sockets stay open meanwhile
const BATCH = 500;
const MiB = 1024 * 1024;

let srv, tok;
before(async () => {
    // ASan keeps freed memory in a quarantine (256 MiB by default), which would read as growth;
    // a small quarantine keeps RSS meaningful while still catching use-after-free.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
    srv = await start({ args: ['--heartbeat', '1', '--pong-timeout', '600', '--stall-timeout', String(STALL_S)],
        env: { ASAN_OPTIONS: asan } });
    tok = await mint(srv.key, { sub: 'slow' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** SSE + WS connections per the server's rtlog_connections gauge; null if it has none. */
async function streamConnections() {
    const t = await (await fetch(`${srv.base}/metrics`)).text();
    const m = [...t.matchAll(/^rtlog_connections\{transport="(sse|ws)"\} (\d+)$/gm)];
    return m.length ? m.reduce((a, x) => a + Number(x[2]), 0) : null;
}

/** ~1 KB step_log events, each distinct. */
function makeBatch(start, n) {
    const out = [];
    for (let i = start; i < start + n; i++) {
        out.push({ type: 'step_log', nodeId: `n${i % 7}`, line: `${i} `.padEnd(960, String.fromCharCode(97 + (i % 26))), level: 'info',
            timestamp: '2026-01-10T14:23:50Z' });
    }
    return out;
}

/** Raw SSE client that reads the response head and then stops reading from the socket. */
function stalledSse(path, cursor) {
    const sock = net.connect(srv.port, '127.0.0.1');
    const c = { sock, chunks: [], ended: false };
    c.closedP = new Promise((r) => { sock.on('close', () => { c.ended = true; r(); }); });
    sock.on('error', () => {});
    sock.on('connect', () => {
        sock.write(`GET /api/v1/${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n` +
            `Authorization: Bearer ${tok}\r\n${cursor !== undefined ? `Last-Event-ID: ${cursor}\r\n` : ''}\r\n`);
    });
    // Read until the first event arrived, then stop reading: the kernel buffers fill and stay full.
    const onData = (d) => {
        c.chunks.push(d);
        if (Buffer.concat(c.chunks).includes('\nid: ')) { sock.pause(); sock.removeListener('data', onData); }
    };
    sock.on('data', onData);
    /** Read everything that is left until the server's close; parse the SSE body. */
    c.drain = async () => {
        sock.on('data', (d) => c.chunks.push(d));
        sock.resume();
        await within(c.closedP, (STALL_S + 15) * 1000, 'stalled SSE socket closed by the server');
        const raw = Buffer.concat(c.chunks);
        const i = raw.indexOf('\r\n\r\n');
        assert.match(raw.subarray(0, i).toString(), /^HTTP\/1\.1 200/);
        const p = new SseParser();
        p.feed(raw.subarray(i + 4));
        return p;
    };
    return c;
}

test('a stalled WS and a stalled SSE subscriber: others keep up, memory stays bounded, nothing is lost', { timeout: 240000 }, async (t) => {
    const stream = `${RUN}/slow`;
    await post201(srv, stream, makeBatch(1, 1), { token: tok });
    const posted = makeBatch(1, 1);

    const fastWs = wsOpen(srv, `${stream}/stream`, { token: tok, onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
    const fastSse = sseOpen(srv, `${stream}/stream`, { token: tok });
    let holding = true;
    const slowWs = wsOpen(srv, `${stream}/stream`, { token: tok, onMessage: (m, c) => {
        if (holding && typeof m.seq === 'number') c.ws.pause();
    } });
    const slowSse = stalledSse(`${stream}/stream`);
    await fastWs.waitEvents(1);
    await fastSse.waitEvents(1);
    await slowWs.waitEvents(1);
    await waitUntil(() => slowSse.sock.isPaused(), 10000, 'stalled SSE got its first event');
    await sleep(500);
    const base = rss(srv.pid);
    let peak = base;
    const sampler = setInterval(() => {
        try { const r = rss(srv.pid); if (r.vm > peak.vm) peak = { ...r }; } catch {}
    }, 100);

    for (let i = 2; i <= N + 1; i += BATCH) {
        const b = makeBatch(i, Math.min(BATCH, N + 2 - i));
        const r = await post201(srv, stream, b, { token: tok });
        assert.equal(r.firstSeq, i);
        posted.push(...b);
        // Keep the fast followers within a few batches, as a real fast client would be.
        await fastWs.waitEvents(i - 1 - 4 * BATCH, 60000);
    }
    const total = posted.length;
    await fastWs.waitEvents(total, 120000);
    await fastSse.waitEvents(total, 120000);
    clearInterval(sampler);
    // The memory figures only mean something if the stalled sockets were still open (and
    // stalled) while everything was posted: 2 fast + 2 stalled stream connections.
    const open = await streamConnections();
    if (open !== null) assert.equal(open, 4, `stream connections open at the end of posting: ${open}`);
    // Nobody waiting on a socket pins an LMDB snapshot (CONTRACT "Errors and limits"): with
    // the stalled readers far behind, the reader table shows no open read transaction.
    for (let k = 0; k < 5; k++) {
        // (mdb_stat prints the reader table, then may exit 1 on rtlog's named databases.)
        const table = spawnSync('mdb_stat', ['-r', srv.dataDir]).stdout.toString();
        assert.match(table, /Reader Table Status/);
        const held = table.split('\n').filter((l) => /^\s*\d+\s+[0-9a-f]+\s+\d+\s*$/.test(l));
        assert.deepEqual(held, [], `read transactions held while subscribers are stalled:\n${table}`);
        await sleep(200);
    }
    const growth = peak.vm - base.vm;
    const info = `baseline VmRSS ${(base.vm / MiB).toFixed(1)} MiB (anon ${(base.anon / MiB).toFixed(1)}), ` +
        `peak ${(peak.vm / MiB).toFixed(1)} MiB (anon ${(peak.anon / MiB).toFixed(1)}), ${total} events of ~1 KB`;
    t.diagnostic(info);
    console.log(`# slow consumer memory: ${info}`);
    assert.ok(growth < 64 * MiB, `server RSS grew ${(growth / MiB).toFixed(1)} MiB: ${info}`);

    // Fast followers: everything, in order, once.
    const fw = fastWs.events();
    const fsEv = fastSse.json_events();
    assert.equal(fw.length, total);
    assert.equal(fsEv.length, total);
    for (let k = 0; k < total; k++) {
        assertDelivered(fw[k], posted[k], k + 1, 'fast WS');
        assert.deepStrictEqual(fsEv[k], fw[k], `fast SSE at seq ${k + 1}`);
    }

    // The stalled sockets are closed by the server once stall-timeout passes with no progress.
    // Their buffered bytes are still readable; the last complete event is where they resume.
    await waitUntil(async () => (await streamConnections() ?? 2) <= 2, (STALL_S + 15) * 1000, 'stall-timeout closes', 250);
    const sp = await slowSse.drain();
    const sseSeen = sp.events.map((e) => Number(e.idField));
    assert.deepEqual(sseSeen, Array.from({ length: sseSeen.length }, (_, i) => i + 1), 'stalled SSE: in order, no gap');
    assert.ok(sseSeen.length < total, `stalled SSE received all ${total} events: it was never stalled`);
    holding = false;
    slowWs.ws.resume();
    const wcl = await within(slowWs.closed, (STALL_S + 15) * 1000, 'stalled WS closed by the server');
    const wsSeen = slowWs.events().map((e) => e.seq);
    assert.deepEqual(wsSeen, Array.from({ length: wsSeen.length }, (_, i) => i + 1), 'stalled WS: in order, no gap');
    assert.ok(wsSeen.length < total, `stalled WS received all ${total} events: it was never stalled`);
    assert.notEqual(wcl.code, 1000, 'a stalled socket is not a normal end');
    console.log(`# stalled SSE got ${sseSeen.length}, stalled WS got ${wsSeen.length} (close ${wcl.code}) before the stall close`);

    // Resuming from the last seq really received gives every remaining event exactly once.
    const rs = sseOpen(srv, `${stream}/stream?follow=false`, { token: tok, lastEventId: sp.lastEventId });
    const rw = wsOpen(srv, `${stream}/stream?follow=false`, { token: tok, lastEventId: wsSeen.at(-1) });
    await within(rs.ended, 120000, 'SSE resume after stall');
    assert.equal((await within(rw.closed, 120000, 'WS resume after stall')).code, 1000);
    const restS = rs.json_events();
    const restW = rw.events();
    assert.deepEqual(restS.map((e) => e.seq), Array.from({ length: total - Number(sp.lastEventId) }, (_, i) => Number(sp.lastEventId) + 1 + i));
    assert.deepEqual(restW.map((e) => e.seq), Array.from({ length: total - wsSeen.at(-1) }, (_, i) => wsSeen.at(-1) + 1 + i));
    for (const e of restS) assert.deepStrictEqual(e, fw[e.seq - 1]);
    for (const e of restW) assert.deepStrictEqual(e, fw[e.seq - 1]);
    fastWs.close();
    fastSse.close();
});
