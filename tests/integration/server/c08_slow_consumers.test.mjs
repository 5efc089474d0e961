// c08_slow_consumers.test.mjs - slow and stalled consumers at scale (issue 6; handed.md C08; CONTRACT
// "Errors and limits": slow consumers lose nothing, bounded memory, no pinned snapshot).
// N SSE subscribers of one run (RTLOG_SLOW_N, 200 in CI; the 1,000 run is in
// tools/bench/RESULTS.md): a tenth read at 1 KB/s, a hundredth (at least 2) stop reading
// after their first event, the rest read everything, while a producer appends RATE events/s
// (RTLOG_SLOW_RATE, 200 in CI) for SECS seconds. The stalled ones start from seq 0 of a
// 16 MiB backlog so their socket buffers fill at once; the others start at the backlog's end.
// Every second the test samples server RSS, data.mdb size, the LMDB reader table and the fast
// subscribers' append-to-delivery latency (reported, not asserted).
// Asserted: server RSS stays within a bound over its baseline; no read transaction is held
// across three consecutive samples (a snapshot pinned by a waiting subscriber); data.mdb grows
// no more than a small multiple of what was appended; the stalled sockets are closed by the
// server (--stall-timeout); and every subscriber, fast, slow or stalled, once it reads again
// and reconnects with its last id, receives every seq exactly once up to the head.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { start, sleep, waitUntil, mint, post201, rss } from './lib/itest.mjs';
import { Fleet } from './lib/fleet.mjs';

const N = Number(process.env.RTLOG_SLOW_N || 200);
const RATE = Number(process.env.RTLOG_SLOW_RATE || 200);
const SECS = Number(process.env.RTLOG_SLOW_SECS || 12);
const STALL = Number(process.env.RTLOG_SLOW_STALL || 4);
const SLOW = Math.floor(N / 10);
const STALLED = Math.max(2, Math.floor(N / 100));
const STREAM = 'workflow-runs/fleet-slow';
const MiB = 1024 * 1024;

let srv;
after(async () => { if (srv) { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); } });

async function streamConnections() {
    const t = await (await fetch(`${srv.base}/metrics`)).text();
    const m = [...t.matchAll(/^rtlog_connections\{transport="(sse|ws)"\} (\d+)$/gm)];
    return m.reduce((a, x) => a + Number(x[2]), 0);
}

/** Active read transactions: "pid thread txnid" rows of `mdb_stat -r` with a txnid. */
function readers(dir) {
    const out = spawnSync('mdb_stat', ['-r', dir]).stdout.toString();
    return out.split('\n').filter((l) => /^\s*\d+\s+[0-9a-f]+\s+\d+\s*$/.test(l)).map((l) => l.trim().replace(/\s+/g, ' '));
}

/** utime + stime of @pid in clock ticks (1/100 s). */
function cpuTicks(pid) {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const p = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(p[11]) + Number(p[12]);
}

const q = (v, p) => (v.length ? v[Math.min(v.length - 1, Math.floor(v.length * p))] : 0);

test(`${N} subscribers (${SLOW} at 1 KB/s, ${STALLED} stalled) at ${RATE} events/s: bounded memory, no pinned snapshot, nothing lost`, { timeout: 900000 }, async (t) => {
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
    srv = await start({ args: ['--heartbeat', '1', '--stall-timeout', String(STALL), '--log-level', 'warn',
        '--max-connections', String(N + 100), '--max-connections-per-subject', String(N + 100)], env: { ASAN_OPTIONS: asan } });
    const tok = await mint(srv.key, { sub: 'fleet' });
    // 16 MiB backlog of 8 KiB events: what the stalled subscribers are sent first
    const big = 'b'.repeat(8000);
    let head = 0;
    for (let i = 0; i < 16; i++) {
        const evs = Array.from({ length: 128 }, (_, j) => ({ type: 'step_log', nodeId: 'backlog', line: `${i}.${j} ${big}`, level: 'info' }));
        head = (await post201(srv, STREAM, evs, { token: tok })).lastSeq;
    }
    const backlog = head;
    const specs = [];
    for (let i = 0; i < N; i++) {
        if (i % 10 === 5 && specs.filter((s) => s.mode === 'slow').length < SLOW) specs.push({ mode: 'slow', rate: 1024, last: backlog });
        else if (i % 100 === 7 || (i === N - 1 && specs.filter((s) => s.mode === 'stalled').length < STALLED)) specs.push({ mode: 'stalled', last: 0 });
        else specs.push({ mode: 'fast', last: backlog });
    }
    while (specs.filter((s) => s.mode === 'stalled').length < STALLED) specs[specs.findIndex((s) => s.mode === 'fast')] = { mode: 'stalled', last: 0 };
    const nStalled = specs.filter((s) => s.mode === 'stalled').length;
    const fleet = new Fleet({ port: srv.port, path: `${STREAM}/stream`, tokens: [tok], specs, workers: 2 });
    const samples = [];
    try {
        await fleet.connect();
        await waitUntil(async () => (await streamConnections()) === N, 60000, `${N} stream connections`, 100);
        await sleep(1000);
        const base = rss(srv.pid);
        const cpu0 = { srv: cpuTicks(srv.pid), me: process.cpuUsage(), t: Date.now() };
        const mdbBase = fs.statSync(`${srv.dataDir}/data.mdb`).size;
        let appended = 0;
        let k = 0;
        let producing = true;
        const per = Math.max(1, Math.round(RATE / 20));
        // paced by the clock, up to 4 POSTs in flight (an ack waits for its fsync)
        const inflight = new Set();
        const producer = (async () => {
            const t0 = Date.now();
            let sent = 0;
            while (producing) {
                const evs = [];
                for (let j = 0; j < per; j++) {
                    const line = `t=${Date.now()} k=${k++} `.padEnd(160, 'x');
                    evs.push({ type: 'step_log', nodeId: 'live', line, level: 'info' });
                    appended += line.length + 60;
                }
                const p = post201(srv, STREAM, evs, { token: tok }).then((r) => { head = Math.max(head, r.lastSeq); });
                inflight.add(p);
                p.finally(() => inflight.delete(p));
                if (inflight.size >= 4) await Promise.race(inflight);
                sent += per;
                const ahead = sent / RATE * 1000 - (Date.now() - t0);
                if (ahead > 0) await sleep(ahead);
            }
            await Promise.all(inflight);
        })();
        const held = new Map(); // reader row -> consecutive samples seen
        let pinned = [];
        // one sample a second for SECS seconds of wall time (a sample may take longer than its
        // second when the client is busy: the loop goes by the clock, not by the count)
        const tRun = Date.now();
        for (let s = 0; Date.now() - tRun < SECS * 1000; s++) {
            await sleep(Math.max(0, tRun + (s + 1) * 1000 - Date.now()));
            const st = await fleet.stats({ lat: true });
            const lat = st.lat.sort((a, b) => a - b);
            const r = rss(srv.pid);
            const rows = readers(srv.dataDir);
            for (const key of [...held.keys()]) if (!rows.includes(key)) held.delete(key);
            for (const row of rows) { held.set(row, (held.get(row) || 0) + 1); if (held.get(row) >= 3) pinned.push(row); }
            samples.push({ t: Math.round((Date.now() - tRun) / 100) / 10, rssMiB: +(r.vm / MiB).toFixed(1), mdbMiB: +(fs.statSync(`${srv.dataDir}/data.mdb`).size / MiB).toFixed(2),
                readers: rows.length, conns: await streamConnections(), head, p50: q(lat, 0.5), p99: q(lat, 0.99), max: lat.at(-1) ?? 0 });
        }
        const wall = (Date.now() - cpu0.t) / 1000;
        const me = process.cpuUsage(cpu0.me);
        const cpu = { srv: Math.round((cpuTicks(srv.pid) - cpu0.srv) / wall), me: Math.round((me.user + me.system) / 1e4 / wall) };
        producing = false;
        await producer;
        const final = head;
        console.log('# t(s) rss(MiB) data.mdb(MiB) readers conns head fast-lat-p50/p99/max(ms)');
        for (const x of samples) console.log(`# ${x.t} ${x.rssMiB} ${x.mdbMiB} ${x.readers} ${x.conns} ${x.head} ${x.p50}/${x.p99}/${x.max}`);

        const peak = Math.max(...samples.map((x) => x.rssMiB));
        const growth = peak - base.vm / MiB;
        assert.ok(growth < 64 + N * 0.05, `server RSS grew ${growth.toFixed(1)} MiB over ${(base.vm / MiB).toFixed(1)} MiB`);
        assert.deepEqual(pinned, [], 'read transactions held for 3+ s while subscribers were slow or stalled');
        const mdbGrowth = fs.statSync(`${srv.dataDir}/data.mdb`).size - mdbBase;
        assert.ok(mdbGrowth <= 3 * appended + 8 * MiB, `data.mdb grew ${(mdbGrowth / MiB).toFixed(1)} MiB for ${(appended / MiB).toFixed(1)} MiB appended`);

        // The stalled sockets are closed by the server once --stall-timeout passes.
        await waitUntil(async () => (await streamConnections()) <= N - nStalled, (STALL + 30) * 1000, 'stalled sockets closed', 250);
        const mid = await fleet.stats();
        for (const s of mid.subs.filter((x) => x.mode === 'stalled'))
            assert.ok(s.last < backlog, `stalled subscriber ${s.idx} received ${s.last} of ${backlog}: it never stalled`);
        // Everyone reads again (reconnecting with its last id when closed): all reach the head.
        await fleet.resumeAll();
        await waitUntil(async () => (await fleet.stats()).subs.every((s) => s.last >= final), 600000, `all ${N} at the head ${final}`, 250);
        const st = await fleet.stats();
        const bad = st.subs.filter((s) => s.violations.length);
        assert.deepEqual(bad.slice(0, 5).map((s) => `${s.idx} (${s.mode}): ${s.violations.join('; ')}`), [], `${bad.length} subscribers saw a gap or duplicate`);
        for (const s of st.subs) assert.equal(s.last, final, `subscriber ${s.idx} (${s.mode})`);
        const byMode = (m) => st.subs.filter((s) => s.mode === m);
        const info = `${N} subscribers (${byMode('fast').length} fast, ${byMode('slow').length} at 1 KB/s, ${nStalled} stalled), ` +
            `${RATE} events/s asked for ${SECS} s (${Math.round((final - backlog) / wall)}/s appended over ${wall.toFixed(1)} s), head ${final}; RSS ${(base.vm / MiB).toFixed(1)} -> peak ${peak} MiB; ` +
            `data.mdb +${(mdbGrowth / MiB).toFixed(1)} MiB for ${(appended / MiB).toFixed(1)} MiB of events; ` +
            `CPU (% of one core) server ${cpu.srv}, this client ${cpu.me}; reconnects after stall/slow closes: ${st.subs.reduce((a, s) => a + s.connects - 1, 0)}; every seq exactly once`;
        t.diagnostic(info);
        console.log(`# c08_slow_consumers: ${info}`);
    } finally {
        await fleet.close();
    }
});
