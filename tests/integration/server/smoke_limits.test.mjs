// smoke_limits.test.mjs - limits, timeouts and hostile input against a real server
// (CONTRACT "Errors and limits", "Authentication"; handed.md C03, C09, C10, C14, C17):
// every case gets its documented answer and the server process survives all of them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, sleep, request } from './lib/harness.mjs';

let srv, tok;
const S = 'workflow-runs/limits';

before(async () => {
  srv = await startServer({
    args: ['--heartbeat', '0.5', '--pong-timeout', '1.5', '--auth-timeout', '1',
      '--stall-timeout', '1.5', '--jwt-leeway', '0', '--max-body-bytes', '1MiB',
      '--max-ws-message', '4KiB', '--max-preauth-bytes', '1KiB',
      '--max-connections-per-subject', '3', '--origins', 'https://app.example'],
  });
  tok = await srv.token({ sub: 'limits' });
  const r = await srv.post(S, [1, 2, 3].map((i) => ({ type: 'step_log', nodeId: 'n', line: 'l' + i, level: 'info' })), { token: tok });
  assert.equal(r.status, 201);
});

after(async () => {
  if (!srv) return;
  const pid = srv.pid;
  const r = await srv.stop();
  srv.cleanup();
  assert.deepEqual(r, { code: 0, signal: null }, `server ${pid} did not drain cleanly:\n${srv.err}`);
});

const raw = (text, wait) => srv.raw(text, wait);

test('hostile cursors: 400 bad_request, in-range values honoured, never a crash (C03)', async () => {
  const bad = ['1:', '+5', '-1', '0x0A', '1e3', '5.0', '18446744073709551615', '9223372036854775808',
    '99999999999999999999999999', 'abc', '\uff15', '9'.repeat(8000)];
  for (const v of bad) {
    const s = await srv.sse(S, { token: tok, headers: { 'last-event-id': encodeURIComponent(v) === v ? v : Buffer.from(v).toString('latin1') } });
    assert.equal(s.status, 400, `Last-Event-ID ${v.slice(0, 30)}`);
    assert.equal(s.json.code, 'bad_request');
    const w = await srv.ws(S, { token: tok, query: { lastEventId: v } });
    assert.equal((await w.waitClose()).code, 4400, `ws lastEventId ${v.slice(0, 30)}`);
  }
  for (const [v, first] of [[' 2', 3], ['2 ', 3], ['002', 3], ['', 1]]) {
    const s = await srv.sse(S, { token: tok, lastEventId: v, query: { follow: 'false' } });
    assert.equal(s.status, 200);
    await s.waitEnd();
    assert.equal(Number(s.events[0].id), first, `cursor "${v}"`);
  }
  // NUL after the digit, sent raw
  const r = await raw(`GET /api/v1/${S}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nLast-Event-ID: 5\0\r\n\r\n`);
  assert.doesNotMatch(r, /^HTTP\/1\.1 200/);
  // header wins over the query parameter
  const s = await srv.sse(S, { token: tok, lastEventId: 2, query: { lastEventId: '0', follow: 'false' } });
  await s.waitEnd();
  assert.deepEqual(s.events.map((e) => e.id), ['3']);
  // beyond the head: reset first (no id), then everything
  const z = await srv.sse(S, { token: tok, lastEventId: 99, query: { follow: 'false' } });
  await z.waitEnd();
  assert.equal(z.events[0].event, 'reset');
  assert.equal(z.events[0].id, undefined);
  assert.deepEqual(z.events[0].json, { type: 'reset', earliestSeq: 1, lastSeq: 3 });
  assert.deepEqual(z.events.slice(1).map((e) => e.id), ['1', '2', '3']);
  assert.match((await srv.get('/health/live')).text, /live/);
});

test('filters and follow=false', async () => {
  const F = 'workflow-runs/limits-filter';
  await srv.post(F, [
    { type: 'step_started', nodeId: 'a', stepType: 'x' },
    { type: 'step_log', nodeId: 'b', line: '1', level: 'info' },
    { type: 'step_log', nodeId: 'a', line: '2', level: 'info' },
    { type: 'step_completed', nodeId: 'a', status: 'succeeded' },
  ], { token: tok });
  const s = await srv.sse(F, { token: tok, query: { nodeId: 'a', types: 'step_log,step_completed', follow: 'false' } });
  await s.waitEnd();
  assert.deepEqual(s.events.map((e) => [e.id, e.event]), [['3', 'step_log'], ['4', 'step_completed']]);
  const bad = await srv.sse(F, { token: tok, query: { follow: 'maybe' } });
  assert.equal(bad.status, 400);
});

test('ingest framing and size: 411 chunked, 413 body and event, expectedSeq 409', async () => {
  const r411 = await raw(`POST /api/v1/${S}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n`);
  assert.match(r411, /^HTTP\/1\.1 411/);
  assert.match(r411, /"code":"bad_request"/);
  let r = await srv.post(S, 'x'.repeat(2 * 1024 * 1024), { token: tok });
  assert.equal(r.status, 413);
  assert.equal(r.json.type, 'error');
  r = await srv.post(S, [], { token: tok, query: { expectedSeq: '1' } });
  assert.equal(r.status, 409);
  assert.equal(r.json.code, 'conflict');
  assert.equal(r.json.lastSeq, 3);
  r = await srv.post(S, [], { token: tok, query: { expectedSeq: '3' } });
  assert.equal(r.status, 201);
  r = await srv.post(S, [], { token: tok, query: { expectedSeq: '-1' } });
  assert.equal(r.status, 400);
});

test('WebSocket message limits: 1009, 1007, 1003, pre-auth cap (C10, C17)', async () => {
  let w = await srv.ws(S, { token: tok, answerHeartbeats: true });
  w.send('{"type":"pong","pad":"' + 'y'.repeat(5000) + '"}');
  assert.equal((await w.waitClose()).code, 1009);
  // the cap holds across fragments too
  w = await srv.ws(S, { token: tok, answerHeartbeats: true });
  for (let i = 0; i < 5; i++) w.ws.send('x'.repeat(1000), { fin: false });
  assert.equal((await w.waitClose()).code, 1009);
  w = await srv.ws(S, { token: tok, answerHeartbeats: true });
  w.ws.send(Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]), { binary: false });
  assert.equal((await w.waitClose()).code, 1007);
  w = await srv.ws(S, { token: tok, answerHeartbeats: true });
  w.ws.send(Buffer.from('{"type":"pong"}'), { binary: true });
  assert.equal((await w.waitClose()).code, 1003);
  assert.equal(w.messages.find((m) => m.type === 'error').code, 'bad_request');
  w = await srv.ws(S, {});
  w.send('{"type":"pong","pad":"' + 'y'.repeat(1100) + '"}');
  assert.equal((await w.waitClose()).code, 1009);
  assert.equal(w.data.length, 0);
});

test('authentication window and token expiry (C10, C14)', async () => {
  // no auth: nothing delivered, pongs do not help, closed at the deadline with 4401; the
  // first pong (not an auth message) gets the one bad_request hint, the others nothing
  const w = await srv.ws(S, {});
  const iv = setInterval(() => w.send({ type: 'pong' }), 200);
  const c = await w.waitClose(5000);
  clearInterval(iv);
  assert.equal(c.code, 4401);
  assert.deepEqual(w.messages.map((m) => [m.type, m.code]), [['error', 'bad_request'], ['error', 'unauthorized']]);
  // forbidden first-message token
  const other = await srv.token({ sub: 'other', subscribe: ['dashboard'] });
  const f = await srv.ws(S, {});
  f.send({ type: 'auth', token: other });
  assert.equal((await f.waitClose()).code, 4403);
  // a token that expires mid-stream ends WS (4401) and SSE (error event, then end)
  const short = await srv.token({ sub: 'short', ttl: 2 });
  const ws = await srv.ws(S, { token: short, answerHeartbeats: true });
  const s = await srv.sse(S, { token: short });
  await ws.waitData(3);
  assert.equal((await ws.waitClose(6000)).code, 4401);
  assert.equal(ws.data.at(-1).code, 'unauthorized');
  await s.waitEnd(6000);
  const last = s.events.at(-1);
  assert.equal(last.event, 'error');
  assert.equal(last.id, undefined);
  assert.equal(last.json.code, 'unauthorized');
  assert.equal(s.lastEventId, '3');
  // re-auth before expiry extends the connection
  const r = await srv.ws(S, { token: await srv.token({ sub: 'reauth', ttl: 2 }), answerHeartbeats: true });
  r.send({ type: 'auth', token: await srv.token({ sub: 'reauth', ttl: 60 }) });
  await sleep(3500);
  assert.equal(r.closeInfo, undefined);
  r.close();
});

test('heartbeat answers: JSON pong and RFC 6455 pong keep a socket, silence drops it (C09)', async () => {
  const silent = await srv.ws(S, { token: tok, autoPong: false });
  const rfc = await srv.ws(S, { token: tok, autoPong: false });
  rfc.ws.on('message', (d) => { if (JSON.parse(d).type === 'heartbeat') rfc.ws.pong(); });
  const json = await srv.ws(S, { token: tok, autoPong: false, answerHeartbeats: true });
  await sleep(4500);
  assert.ok(silent.closeInfo, 'silent client dropped');
  assert.equal(rfc.closeInfo, undefined, 'RFC pong answers');
  assert.equal(json.closeInfo, undefined, 'JSON pong answers');
  assert.ok(silent.messages.some((m) => m.type === 'heartbeat'));
  rfc.close();
  json.close();
  await sleep(200);
});

test('connection limits, Origin allowlist', async () => {
  const t = await srv.token({ sub: 'capped' });
  const a = await srv.sse(S, { token: t });
  const b = await srv.ws(S, { token: t, answerHeartbeats: true });
  const c = await srv.sse(S, { token: t });
  const d = await srv.sse(S, { token: t });
  assert.equal(d.status, 429);
  assert.equal(d.json.code, 'rate_limited');
  const e = await srv.ws(S, { token: t });
  assert.equal((await e.waitClose()).code, 4429);
  a.close();
  await sleep(1200); // the slot is released once the server sees the client left
  const f = await srv.sse(S, { token: t });
  assert.equal(f.status, 200);
  b.close(); c.close(); f.close();

  const o = await srv.sse(S, { token: tok, headers: { origin: 'https://evil.example' } });
  assert.equal(o.status, 403);
  const ok = await srv.sse(S, { token: tok, headers: { origin: 'https://app.example' } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
  ok.close();
  const w = await srv.ws(S, { token: tok, origin: 'https://evil.example' });
  assert.equal((await w.waitClose()).code, 4403);
});

test('a socket that accepts no bytes is closed after stall-timeout (C08)', async () => {
  const B = 'workflow-runs/limits-big';
  const line = 'x'.repeat(60000);
  for (let i = 0; i < 20; i++)
    await srv.post(B, Array.from({ length: 10 }, () => ({ type: 'step_log', nodeId: 'n', line, level: 'info' })), { token: tok });
  const before = Number((await srv.get('/metrics')).text.match(/^rtlog_stalled_closed_total (\d+)$/m)[1]);
  const sock = net.connect(srv.port, '127.0.0.1', () =>
    sock.write(`GET /api/v1/${B}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\n\r\n`));
  sock.on('error', () => {});
  sock.pause(); // never read: the window fills, the server can write nothing more
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await sleep(200);
    after = Number((await srv.get('/metrics')).text.match(/^rtlog_stalled_closed_total (\d+)$/m)[1]);
  }
  assert.equal(after, before + 1);
  // a reader that keeps up meanwhile got everything
  const s = await srv.sse(B, { token: tok, query: { follow: 'false' } });
  await s.waitEnd(20000);
  assert.equal(s.events.length, 200);
  sock.destroy();
});

test('big tokens fit in the 16 KiB header budget', async () => {
  const t = await srv.token({ sub: 'big', extra: { pad: 'p'.repeat(5000) } });
  assert.ok(t.length > 6000);
  const s = await srv.sse(S, { token: t });
  assert.equal(s.status, 200);
  s.close();
});
