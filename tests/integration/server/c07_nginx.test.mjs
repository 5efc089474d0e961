// c07_nginx.test.mjs - handed.md C07 (reverse proxies buffering or compressing the stream)
// through a real nginx, as the case asks: a plain `proxy_pass` with the defaults that hurt
// streams (proxy_buffering on, gzip on for the text types a site usually lists).
// c07_stream_not_buffered.test.mjs checks the same headers directly. An operator who adds
// text/event-stream to gzip_types gets the stream gzipped (nginx 1.22 ignores no-transform;
// measured): rtlog does not answer that with a non-standard `Content-Encoding: identity`
// (RFC 9110 reserves "identity" for Accept-Encoding); README "Behind a reverse proxy".
//   - SSE through nginx: 200, text/event-stream, not compressed, no Content-Length; the first
//     bytes (retry:) arrive while the job has no event; each appended event arrives through
//     nginx before the next one is appended (a buffering or compressing proxy holds it back
//     and the bounded wait runs out);
//   - errors on the SSE endpoint (401, 404) come through as plain JSON with a length;
//   - a WebSocket subscription through nginx (Upgrade/Connection passed on, the usual WS
//     proxy block) gets its catch-up and then each live event.
// nginx runs from a temp prefix (its own conf, pid, logs and temp paths), in the foreground
// (daemon off, one process), on a free loopback port, and is ended by its pid. Debian's
// nginx-light (tools/deps.sh); without nginx the test is reported skipped with the reason,
// and with RTLOG_REQUIRE_NGINX=1 (CI) that is a failure instead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { start, sleep, waitUntil, within, mint, post201, sseOpen, wsOpen, makeEvents, assertSseFrames } from './lib/itest.mjs';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) => fs.existsSync(p));
const required = process.env.RTLOG_REQUIRE_NGINX === '1';
const skip = NGINX || required ? false : 'nginx not installed (apt-get install nginx-light; tools/deps.sh)';
const JOB = 'deployment-jobs/job-0001';

/** A loopback port nobody listens on right now. */
function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    });
}

const conf = (dir, port, upstream) => `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    # nginx's defaults written out (proxy_buffering on; proxy_http_version 1.0) and gzip on for
    # the text types a site lists (what the case names): what buffers or compresses a stream
    proxy_buffering on;
    gzip on;
    gzip_types text/plain text/css text/xml text/javascript;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:${port};
        location / {
            proxy_pass http://127.0.0.1:${upstream};
        }
        # the usual WebSocket block: /ws/api/v1/... goes to /api/v1/...
        location /ws/ {
            proxy_pass http://127.0.0.1:${upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
    }
}
`;

/** Start nginx in front of @upstream; resolves to {port, pid, dir, stop()}. */
async function startNginx(upstream) {
    let lastErr = '';
    for (let attempt = 0; attempt < 3; attempt++) { // a free port can be taken before nginx binds it
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtlog-c07-nginx-'));
        fs.mkdirSync(path.join(dir, 'tmp'));
        const port = await freePort();
        fs.writeFileSync(path.join(dir, 'nginx.conf'), conf(dir, port, upstream));
        const proc = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')],
            { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        proc.stdout.on('data', (d) => { out += d; });
        proc.stderr.on('data', (d) => { out += d; });
        const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
        const ng = { port, pid: proc.pid, dir, proc };
        ng.stop = async () => {
            if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGTERM');
            if (!(await within(exited, 10000, 'nginx exit').catch(() => null))) process.kill(proc.pid, 'SIGKILL');
            await exited;
            fs.rmSync(dir, { recursive: true, force: true });
        };
        process.once('exit', () => { try { process.kill(proc.pid, 'SIGKILL'); } catch {} });
        const up = await waitUntil(async () => {
            if (proc.exitCode !== null || proc.signalCode !== null) return 'exited';
            return new Promise((r) => {
                const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r('up'); });
                s.on('error', () => r(false));
            });
        }, 10000, 'nginx listening', 50).catch((e) => e.message);
        if (up === 'up') return ng;
        const log = fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
        lastErr = `${up}: ${out}${log}`;
        await ng.stop();
    }
    throw new Error(`nginx did not start: ${lastErr}`);
}

let srv, ngx, tok, px;
before(async () => {
    if (skip) return;
    assert.ok(NGINX, 'RTLOG_REQUIRE_NGINX=1 but nginx is not installed (tools/deps.sh installs nginx-light)');
    srv = await start({ args: ['--heartbeat', '5'] });
    tok = await mint(srv.key, { sub: 'c07-nginx', subscribe: ['deployment-jobs/*'], publish: ['deployment-jobs/*'] });
    ngx = await startNginx(srv.port);
    // what sseOpen / wsOpen need to talk to nginx instead of the server
    px = { port: ngx.port, wsBase: `ws://127.0.0.1:${ngx.port}/ws` };
});
after(async () => {
    if (ngx) await ngx.stop();
    if (srv) { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); }
});

const uncompressed = (ce) => ce === undefined;

test('SSE through nginx: headers, first bytes before any event, each event before the next is appended', { skip }, async () => {
    await post201(srv, JOB, [], { token: tok }); // the job exists and has no event yet
    const c = sseOpen(px, `${JOB}/stream`, { token: tok,
        headers: { 'accept-encoding': 'gzip, br', 'cache-control': 'no-cache', host: 'localhost' } });
    await within(c.opened, 10000, 'response head through nginx');
    assert.equal(c.status, 200, c.text);
    assert.match(c.headers['content-type'] ?? '', /^text\/event-stream(;\s*charset=utf-8)?$/i);
    assert.ok(uncompressed(c.headers['content-encoding']), `compressed by nginx: Content-Encoding ${c.headers['content-encoding']}`);
    assert.equal(c.headers['content-length'], undefined);
    await waitUntil(() => c.p.retry !== null, 5000, 'the retry: line through nginx while the job has no event');
    assert.equal(c.p.events.length, 0);
    for (let k = 1; k <= 5; k++) {
        // append k+1 only once k arrived: a proxy holding bytes back makes this wait run out
        await post201(srv, JOB, makeEvents('deployment-jobs', 1, { startAt: k }), { token: tok });
        await waitUntil(() => c.p.events.length >= k || c.done, 5000, `event ${k} through nginx before event ${k + 1} is appended`);
        assert.equal(c.p.events.length, k, `stream ended or events missing (${c.p.events.length})`);
    }
    assertSseFrames(c, 'through nginx');
    assert.deepEqual(c.json_events().map((e) => e.seq), [1, 2, 3, 4, 5]);
    c.close();
});

test('errors on the SSE endpoint come through nginx as plain JSON with a length', { skip }, async () => {
    const cases = [
        [401, `${JOB}/stream`, {}],
        [401, `${JOB}/stream`, { token: 'not.a.token' }],
        [404, 'deployment-jobs/never/stream', { token: tok }],
    ];
    for (const [status, p, opts] of cases) {
        const c = sseOpen(px, p, { ...opts, headers: { 'accept-encoding': 'gzip, br' } });
        await within(c.ended, 10000, `${status} ${p} ends through nginx`);
        assert.equal(c.status, status, `${p}: ${c.status} ${c.text}`);
        assert.match(c.headers['content-type'] ?? '', /^application\/json/, `${status}: content-type`);
        assert.equal(c.headers['content-encoding'], undefined, `${status}: content-encoding`);
        assert.ok(Number(c.headers['content-length']) > 0, `${status}: no Content-Length`);
        assert.equal(Buffer.byteLength(c.text), Number(c.headers['content-length']));
        assert.equal(c.json?.type, 'error', `${status}: ${c.text}`);
    }
});

test('a WebSocket subscription through nginx gets catch-up, then each live event', { skip }, async () => {
    const S = 'deployment-jobs/job-ws';
    await post201(srv, S, makeEvents('deployment-jobs', 3), { token: tok });
    const c = wsOpen(px, `${S}/stream`, { token: tok, lastEventId: 0,
        onMessage: (m, w) => { if (m.type === 'heartbeat') w.send({ type: 'pong' }); } });
    await within(c.opened, 10000, 'WS upgrade through nginx');
    assert.ok(c.isOpen, `WS through nginx not open: ${JSON.stringify(c.http ?? c.code)}`);
    await c.waitEvents(3);
    for (let k = 4; k <= 7; k++) {
        await post201(srv, S, makeEvents('deployment-jobs', 1, { startAt: k }), { token: tok });
        await c.waitEvents(k, 5000);
    }
    await sleep(200); // a duplicate would be here by now
    assert.deepEqual(c.events().map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
    c.close();
});
