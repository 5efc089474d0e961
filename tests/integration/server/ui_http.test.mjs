// ui_http.test.mjs - the browser UI's HTTP side without a browser: the embedded pages
// (byte-exact copies of server/ui/, whatever the server's working directory), their
// headers (Content-Type, strict CSP, nosniff, ETag + 304), redirects, 404 for every path
// outside the table (no filesystem access from a URL), 405, and GET /api/v1/streams
// (Bearer, kind/limit validation, newest first, only streams the token may subscribe to).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, get, post201, rawHttp, mint } from './lib/itest.mjs';

const uiDir = join(dirname(fileURLToPath(import.meta.url)), '../../../server/ui');
let srv, tok;

before(async () => {
  srv = await start();
  tok = await mint(srv.key);
});
after(async () => {
  const r = await srv.stop();
  assert.deepEqual(r, { code: 0, signal: null }, srv.output().slice(-4000));
});

test('every embedded file is served byte for byte with its type and security headers', async () => {
  const files = { 'index.html': 'text/html; charset=utf-8', 'run.html': 'text/html; charset=utf-8',
    'app.css': 'text/css; charset=utf-8', 'rtlog-client.js': 'text/javascript; charset=utf-8',
    'ansi.js': 'text/javascript; charset=utf-8', 'dashboard.js': 'text/javascript; charset=utf-8' };
  for (const [name, type] of Object.entries(files)) {
    const r = await fetch(`${srv.base}/ui/${name}`);
    const body = Buffer.from(await r.arrayBuffer());
    assert.equal(r.status, 200, name);
    assert.equal(r.headers.get('content-type'), type, name);
    assert.ok(body.equals(fs.readFileSync(join(uiDir, name))), `${name} differs from server/ui/`);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'no unsafe-inline, no other origin');
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.match(r.headers.get('etag'), /^"[0-9a-f]{16}"$/);
  }
});

test('pages by path; ETag revalidation; redirects', async () => {
  const run = await get(srv, '/ui/runs/demo-1');
  assert.equal(run.status, 200);
  assert.equal(run.text, fs.readFileSync(join(uiDir, 'run.html'), 'utf8'));
  assert.equal((await get(srv, '/ui/jobs/j.1:x')).text, fs.readFileSync(join(uiDir, 'job.html'), 'utf8'));
  assert.equal((await get(srv, '/ui/dashboard')).text, fs.readFileSync(join(uiDir, 'dashboard.html'), 'utf8'));
  assert.equal((await get(srv, '/ui/')).text, fs.readFileSync(join(uiDir, 'index.html'), 'utf8'));

  const etag = run.headers.get('etag');
  const again = await get(srv, '/ui/runs/other', { 'if-none-match': etag });
  assert.equal(again.status, 304);
  assert.equal(again.text, '');
  assert.equal((await get(srv, '/ui/runs/other', { 'if-none-match': '"0000000000000000"' })).status, 200);
  assert.equal((await get(srv, '/ui/app.css', { 'if-none-match': etag })).status, 200, 'another file');

  for (const p of ['/', '/ui']) {
    const r = await fetch(srv.base + p, { redirect: 'manual' });
    assert.equal(r.status, 302, p);
    assert.equal(r.headers.get('location'), '/ui/');
  }
});

test('paths outside the embedded set are 404, whatever they try', async () => {
  for (const p of ['/ui/embed.cmake', '/ui/../server/ui.c', '/ui/%2e%2e/CMakeLists.txt',
    '/ui/runs/a%20b', '/ui/runs/a/b', '/ui/runs/', '/ui/dashboard/x', '/ui//etc/passwd',
    '/ui/%2fetc%2fpasswd', '/uix', '/ui/index.html/', '/favicon.ico']) {
    const r = await get(srv, p);
    assert.equal(r.status, 404, p);
    assert.equal(r.json?.code, 'not_found', p);
  }
  const raw = await rawHttp(srv, 'GET /ui/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(raw.status, 404);
  assert.ok(!raw.body.includes('root:'), 'no file from the disk');
});

test('other methods on UI paths are 405', async () => {
  for (const p of ['/ui/', '/ui/runs/x', '/api/v1/streams']) {
    const r = await fetch(srv.base + p, { method: 'POST', body: 'x' });
    assert.equal(r.status, 405, p);
  }
});

test('GET /api/v1/streams: auth, validation, newest first, access filter', async () => {
  assert.equal((await get(srv, '/api/v1/streams')).status, 401);
  assert.equal((await get(srv, '/api/v1/streams', { authorization: 'Bearer nope' })).status, 401);
  assert.equal((await get(srv, '/api/v1/streams?token=' + tok)).status, 401, 'Bearer only');
  const auth = { authorization: 'Bearer ' + tok };
  for (const q of ['kind=runs', 'kind=', 'limit=0', 'limit=1001', 'limit=x', 'limit=' + '9'.repeat(40)]) {
    const r = await get(srv, '/api/v1/streams?' + q, auth);
    assert.equal(r.status, 400, q);
    assert.equal(r.json.code, 'bad_request', q);
  }
  const t = Date.now();
  for (const id of ['a', 'b', 'c']) {
    await post201(srv, `workflow-runs/l${t}-${id}`, [], { token: tok });
    await new Promise((r) => setTimeout(r, 5));
  }
  await post201(srv, `workflow-runs/l${t}-c`, { type: 'workflow_completed', status: 'succeeded' }, { token: tok });
  await post201(srv, `deployment-jobs/l${t}`, [], { token: tok });

  const r = await get(srv, '/api/v1/streams?kind=workflow-runs&limit=2', auth);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.deepEqual(r.json.streams.map((s) => s.id), [`l${t}-c`, `l${t}-b`]);
  assert.equal(r.json.truncated, true);
  const c = r.json.streams[0];
  assert.deepEqual({ ...c, createdAt: undefined }, { stream: `workflow-runs/l${t}-c`, kind: 'workflow-runs',
    id: `l${t}-c`, createdAt: undefined, lastSeq: 1, events: 1, sealed: true, status: 'succeeded' });
  assert.match(c.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  const all = await get(srv, '/api/v1/streams', auth);
  assert.ok(all.json.streams.some((s) => s.stream === 'dashboard'));
  assert.ok(all.json.streams.some((s) => s.stream === `deployment-jobs/l${t}`));

  const one = await mint(srv.key, { subscribe: [`workflow-runs/l${t}-a`], publish: [] });
  const mine = await get(srv, '/api/v1/streams', { authorization: 'Bearer ' + one });
  assert.deepEqual(mine.json.streams.map((s) => s.stream), [`workflow-runs/l${t}-a`]);
  const none = await mint(srv.key, { subscribe: [], publish: ['*'] });
  assert.deepEqual((await get(srv, '/api/v1/streams', { authorization: 'Bearer ' + none })).json,
    { streams: [], truncated: false });
});
