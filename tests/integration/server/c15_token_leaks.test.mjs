// c15_token_leaks.test.mjs - handed.md C15 (tokens leaking into logs and error messages), its
// family: besides the server's stdout/stderr at --log-level debug (auth.test.mjs runs the
// case's inputs (a)-(f) there too), no token, payload segment or signature segment may appear
// in anything the server gives back: /metrics (labels built from URLs), /health, the bodies
// of every error answer (HTTP and WS), reset/heartbeat messages, nor in what `rtlog` prints
// (`rtlog ls`, `stat`, `export`); and no `rtlog` subcommand takes a token as an argument (so
// none sits in `ps`). A rejected token is logged with a reason, never its bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { start, sleep, within, mint, nowS, post, post201, get, sseOpen, wsOpen, makeEvents,
    checkNoTokenInOutput } from './lib/itest.mjs';
import { rtlogBin } from './lib/harness.mjs';

const RUN = 'workflow-runs';
const used = new Set();
let srv, good;
const seen = []; // every byte the server sent back to a client
before(async () => {
    srv = await start({ args: ['--heartbeat', '1', '--log-level', 'debug'] });
    good = await mint(srv.key, { sub: 'user-1', subscribe: ['workflow-runs/run-0001'], publish: ['workflow-runs/run-0001'] });
    used.add(good);
    await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 3), { token: good });
});
after(async () => {
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
    checkNoTokenInOutput(srv, 'C15 server output', used);
});

function assertClean(text, what) {
    for (const t of used) {
        const [h, p, s] = t.split('.');
        for (const [seg, name] of [[t, 'token'], [p, 'payload'], [s, 'signature'], [h + '.' + p, 'header.payload']])
            if (seg && seg.length >= 16) assert.ok(!text.includes(seg), `${what}: the ${name} segment appears`);
    }
}

test('error bodies, WS messages, metrics and health never carry a token', async () => {
    const expired = await mint(srv.key, { sub: 'user-1', exp: nowS() - 3600 });
    const foreign = await mint(Buffer.from('another-secret-another-secret-00'), { sub: 'user-1' });
    const noAccess = await mint(srv.key, { sub: 'user-2', subscribe: ['workflow-runs/run-0002'] });
    for (const t of [expired, foreign, noAccess]) used.add(t);
    for (const t of [good, expired, foreign, noAccess]) {
        for (const path of [`${RUN}/run-0001/stream?token=${t}`, `${RUN}/does-not-exist/stream?token=${t}`,
            `${RUN}/run-0001/stream?token=${t}&lastEventId=abc`, `${RUN}/run-0001%0d%0aFAKE/stream?token=${t}`]) {
            const c = sseOpen(srv, path, {});
            await within(c.ended.then(() => c), 3000, path.slice(0, 40)).catch(() => c);
            c.close();
            seen.push(JSON.stringify(c.headers), c.text, Buffer.concat(c.raw).toString('latin1'));
            const w = wsOpen(srv, path.replace(/\?.*$/, ''), { token: t });
            await within(w.closed, 3000, 'ws').catch(() => {});
            w.close();
            seen.push(JSON.stringify(w.msgs), w.reason, JSON.stringify(w.http ?? {}));
        }
        // malformed Authorization headers and a first message followed by broken JSON
        const r = await get(srv, `/api/v1/${RUN}/run-0001/stream`, { authorization: `Bearer  ${t} extra`, accept: 'text/event-stream' });
        seen.push(r.text, JSON.stringify([...r.headers]));
        const p = await post(srv, `${RUN}/run-0001`, '{"type":"step_log"', { token: t });
        seen.push(p.text);
        const w = wsOpen(srv, `${RUN}/run-0001/stream`);
        await w.opened;
        w.send({ type: 'auth', token: t });
        await sleep(150);
        w.send(`{"type":"auth","token":"${t}"`);
        w.send(`{"type":"nonsense","token":"${t}"}`);
        await sleep(300);
        w.close();
        seen.push(JSON.stringify(w.msgs));
    }
    await sleep(1200); // a heartbeat or two on whatever stayed open
    seen.push((await get(srv, '/metrics')).text, (await get(srv, '/health/live')).text, (await get(srv, '/health/ready')).text);
    assertClean(seen.join('\n'), 'answers to clients');
    assert.ok(!/^FAKE/m.test(srv.output()), 'a forged log line');
    assert.match(srv.output(), /expired|signature|unauthori/i, 'rejections are logged with a reason');
});

test('rtlog CLI: no token in what it prints, and no subcommand takes one as an argument', async () => {
    for (const args of [['ls'], ['stat', `${RUN}/run-0001`], ['export', `${RUN}/run-0001`], ['export', `${RUN}/run-0001`, '--ndjson']]) {
        const r = spawnSync(rtlogBin(), [...args, '--data', srv.dataDir]);
        assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
        assertClean(r.stdout.toString() + r.stderr.toString(), `rtlog ${args[0]}`);
    }
    for (const cmd of ['serve', 'token', 'import', 'export', 'ls', 'stat', 'verify']) {
        const h = spawnSync(rtlogBin(), [cmd, '--help']);
        const text = h.stdout.toString() + h.stderr.toString();
        assert.doesNotMatch(text, /--(token|bearer|jwt)\b(?!-)/, `rtlog ${cmd} takes a token argument:\n${text}`);
    }
});
