// fdlimit.test.mjs - the server's RLIMIT_NOFILE soft limit and lws' socket table agree
// (benchmark finding: lws 4.1.6 scans its table on every socket event when
// fd_limit_per_thread < ulimit -n, 14% CPU at 3,000 subscribers). --fd-limit sets the soft
// limit (up or down, bounded by the hard limit) before lws starts, and the effective value
// is logged. Read from /proc/PID/limits of the server under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { start, get } from './lib/itest.mjs';

const softHard = (pid) => {
    const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/);
    return { soft, hard };
};

test('--fd-limit becomes the soft RLIMIT_NOFILE (bounded by the hard limit) and is logged', async () => {
    const mine = softHard(process.pid);
    const hard = mine.hard === 'unlimited' ? Infinity : Number(mine.hard);
    for (const want of [1000, 777]) {
        const srv = await start({ args: ['--fd-limit', String(want)] });
        try {
            const eff = Math.min(want, hard);
            assert.equal(softHard(srv.pid).soft, String(eff));
            assert.match(srv.output(), new RegExp(`fd limit ${eff} \\(`));
            assert.equal((await get(srv, '/health/live')).status, 200);
        } finally {
            const r = await srv.stop();
            assert.equal(r.code, 0);
        }
    }
    if (Number.isFinite(hard)) {
        // above the hard limit: capped at it, still serving
        const srv = await start({ args: ['--fd-limit', String(Math.min(hard + 1000, 1048576))] });
        try {
            if (hard + 1000 <= 1048576) assert.equal(softHard(srv.pid).soft, String(hard));
            assert.equal((await get(srv, '/health/live')).status, 200);
        } finally {
            assert.equal((await srv.stop()).code, 0);
        }
    }
});
