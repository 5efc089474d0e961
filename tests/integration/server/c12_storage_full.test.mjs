// c12_storage_full.test.mjs - handed.md C12 (storage full during append), the case end to end
// over HTTP (the agents' WS producer path comes with the agents code): a server whose map may
// not grow past 2 MiB takes 4 KB events until an append fails, then 20 more attempts. Every
// failure is a 500 internal_error that says "storage full" and nothing about paths; nothing of
// a failed append is ever delivered (a WS subscriber tails the stream throughout) or exported;
// /health/ready and /metrics report it; the server does not spin (its CPU time stays low while
// idle after the failures). Restarted on the same directory with a 64 MiB map, appends
// continue at the last committed seq + 1, and `rtlog export` prints valid JSON holding exactly
// the committed events. smoke_ops.test.mjs and tests/unit/storage (map full, disk full)
// cover the rest of the family; crash_sigkill.test.mjs the kill -9 under load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { start, sleep, mint, post, post201, get, wsOpen, storedEvents } from './lib/itest.mjs';
import { rtlogBin } from './lib/harness.mjs';

const S = 'workflow-runs/run-0001';
const line = (i) => `${i} ${crypto.randomBytes(3000).toString('base64')}`; // ~4 KB, incompressible

function cpuTicks(pid) {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const p = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(p[11]) + Number(p[12]);
}

test('map full: 500 storage full, nothing phantom, no spin; after a restart with room, seqs continue and export is exact', { timeout: 180000 }, async () => {
    let srv = await start({ args: ['--map-bytes', '1MiB', '--map-max-bytes', '2MiB', '--heartbeat', '1'] });
    const dataDir = srv.dataDir;
    const tok = await mint(srv.key, { sub: 'c12' });
    await post201(srv, S, [], { token: tok });
    const sub = wsOpen(srv, `${S}/stream`, { token: tok, onMessage: (m, c) => { if (m.type === 'heartbeat') c.send({ type: 'pong' }); } });
    await sub.opened;
    const committed = [];
    let firstFail = null;
    for (let i = 1; i < 2000 && !firstFail; i++) {
        const ev = { type: 'step_log', nodeId: 'n', line: line(i), level: 'info' };
        const r = await post(srv, S, ev, { token: tok });
        if (r.status === 201) { committed.push(ev.line); assert.equal(r.json.lastSeq, committed.length); }
        else firstFail = r;
    }
    assert.ok(firstFail, 'the 2 MiB map never filled');
    const fails = [firstFail];
    for (let k = 0; k < 20; k++) fails.push(await post(srv, S, { type: 'step_log', nodeId: 'n', line: line(9000 + k), level: 'info' }, { token: tok }));
    for (const r of fails) {
        assert.equal(r.status, 500, r.text);
        assert.equal(r.json.code, 'internal_error');
        assert.match(r.json.message, /storage full/);
        assert.doesNotMatch(r.json.message, /\/|mdb|MDB_|data\.mdb/i, `internals in ${r.json.message}`);
    }
    assert.equal((await get(srv, '/health/ready')).status, 503);
    assert.match((await get(srv, '/metrics')).text, /^rtlog_storage_full 1$/m);
    // no spin: idle after the failures, the server uses well under a core
    const t0 = cpuTicks(srv.pid);
    await sleep(2000);
    const used = (cpuTicks(srv.pid) - t0) / 100;
    assert.ok(used < 1.0, `server used ${used} s of CPU in 2 s idle after storage full`);
    // the subscriber saw exactly the committed events, no phantom, and is still open
    await sub.waitEvents(committed.length, 30000);
    await sleep(300);
    assert.deepEqual(sub.events().map((e) => e.line), committed);
    assert.equal(sub.code, null, 'the subscriber was closed');
    assert.doesNotMatch(srv.output(), /MDB_BAD_TXN/);
    sub.close();
    assert.equal((await srv.stop()).code, 0);

    srv = await start({ dataDir, args: ['--map-max-bytes', '64MiB'] });
    try {
        for (let k = 0; k < 5; k++) {
            const ev = { type: 'step_log', nodeId: 'n', line: line(20000 + k), level: 'info' };
            const r = await post201(srv, S, ev, { token: tok });
            assert.equal(r.firstSeq, committed.length + 1, 'appends continue at last committed + 1');
            committed.push(ev.line);
        }
        const stored = await storedEvents(srv, tok, S);
        assert.deepEqual(stored.map((e) => e.seq), committed.map((_, i) => i + 1));
        assert.deepEqual(stored.map((e) => e.line), committed);
        const ex = spawnSync(rtlogBin(), ['export', S, '--data', dataDir], { maxBuffer: 64 * 1024 * 1024 });
        assert.equal(ex.status, 0, ex.stderr.toString());
        const doc = JSON.parse(ex.stdout.toString());
        assert.equal(doc.lastSeq, committed.length);
        assert.deepEqual(doc.events.map((e) => e.line), committed, 'export holds exactly the committed events');
    } finally {
        assert.equal((await srv.stop()).code, 0);
    }
});
