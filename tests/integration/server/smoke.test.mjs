// smoke.test.mjs - the server's main promises end to end, with real clients:
// ingest answers 201 {stream, firstSeq, lastSeq} after the commit; SSE and WebSocket
// subscribers catch up from a cursor and continue live with no gap or duplicate; the
// sealing event ends both (SSE response end, WS close 1000); a 400 names the event
// index and field; 404 for a never-created stream; 401/403 (access before existence);
// and SIGTERM drains with exit code 0. The integration-test teammate covers the full
// matrix; this file guards the harness and the basics.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, EventSource, sleep } from './lib/harness.mjs';

let srv, admin;

before(async () => {
  srv = await startServer({ args: ['--heartbeat', '1', '--pong-timeout', '5', '--log-level', 'debug'] });
  admin = await srv.token({ sub: 'admin', subscribe: ['*'], publish: ['*'] });
});

after(async () => {
  if (!srv) return;
  const r = await srv.stop();
  srv.cleanup();
  assert.deepEqual(r, { code: 0, signal: null }, 'clean drain on SIGTERM:\n' + srv.err);
  // handed.md C15: no token, payload or signature segment anywhere in the output, even at
  // debug level, and every log line is one line
  const [h, p, sig] = admin.split('.');
  for (const part of [admin, p, sig])
    assert.ok(!srv.out.includes(part) && !srv.err.includes(part), 'token material in the logs');
  assert.ok(srv.err.includes('rtlog[http] DEBUG'), 'debug logging was on');
  for (const line of srv.err.split('\n').filter((l) => l))
    assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z rtlog\[\w+\] (ERROR|WARN|INFO|DEBUG) /);
});

const step = (i, extra = {}) => ({ type: 'step_log', nodeId: 'n' + (i % 2), line: 'line ' + i, level: 'info', ...extra });

test('ingest answers 201 with the seq range; NDJSON and arrays are batches', async () => {
  let r = await srv.post('workflow-runs/smoke-1', step(1), { token: admin });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json, { stream: 'workflow-runs/smoke-1', firstSeq: 1, lastSeq: 1 });
  r = await srv.post('workflow-runs/smoke-1', [step(2), step(3)], { token: admin });
  assert.deepEqual(r.json, { stream: 'workflow-runs/smoke-1', firstSeq: 2, lastSeq: 3 });
  const nd = [step(4), step(5)].map((e) => JSON.stringify(e)).join('\n') + '\n';
  r = await srv.post('workflow-runs/smoke-1', nd, { token: admin, contentType: 'application/x-ndjson' });
  assert.deepEqual(r.json, { stream: 'workflow-runs/smoke-1', firstSeq: 4, lastSeq: 5 });
  // empty batch creates a stream
  r = await srv.post('deployment-jobs/smoke-job', [], { token: admin });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json, { stream: 'deployment-jobs/smoke-job', firstSeq: 1, lastSeq: 0 });
});

test('a bad event is a precise 400 and nothing of the batch is stored', async () => {
  const r = await srv.post('workflow-runs/smoke-1', [step(6), { type: 'step_log', nodeId: 'x', level: 'info' }], { token: admin });
  assert.equal(r.status, 400);
  assert.equal(r.json.type, 'error');
  assert.equal(r.json.code, 'bad_request');
  assert.match(r.json.message, /event 1/);
  assert.match(r.json.message, /line/);
  assert.ok(r.json.timestamp);
  const ok = await srv.post('workflow-runs/smoke-1', step(6), { token: admin });
  assert.deepEqual(ok.json.firstSeq, 6, 'the failed batch took no seq');
});

test('401 without or with a bad token, 403 without access, access before existence', async () => {
  let r = await srv.post('workflow-runs/smoke-1', step(0), {});
  assert.equal(r.status, 401);
  assert.equal(r.json.code, 'unauthorized');
  r = await srv.post('workflow-runs/smoke-1', step(0), { token: admin.slice(0, -3) + 'AAA' });
  assert.equal(r.status, 401);
  const reader = await srv.token({ sub: 'reader', subscribe: ['workflow-runs/smoke-1'], publish: [] });
  r = await srv.post('workflow-runs/smoke-1', step(0), { token: reader });
  assert.equal(r.status, 403);
  assert.equal(r.json.code, 'forbidden');
  // no access to a stream that does not exist: 403, not 404
  let s = await srv.sse('workflow-runs/does-not-exist', { token: reader });
  assert.equal(s.status, 403);
  assert.equal(s.json.code, 'forbidden');
  s = await srv.sse('workflow-runs/does-not-exist', { token: admin });
  assert.equal(s.status, 404);
  assert.equal(s.json.code, 'not_found');
  s = await srv.sse('workflow-runs/smoke-1', {});
  assert.equal(s.status, 401);
  s = await srv.sse('workflow-runs/bad%20id', { token: admin });
  assert.equal(s.status, 400);
  assert.equal(s.json.code, 'bad_request');
  const ws = await srv.ws('workflow-runs/does-not-exist', { token: admin });
  const c = await ws.waitClose();
  assert.equal(c.code, 4404);
  assert.equal(ws.messages[0].type, 'error');
  assert.equal(ws.messages[0].code, 'not_found');
});

test('SSE: resume from Last-Event-ID, then live, no gap or duplicate; seal ends it', async () => {
  const S = 'workflow-runs/smoke-sse';
  await srv.post(S, [step(1), step(2), step(3), step(4)], { token: admin });
  const s = await srv.sse(S, { token: admin, lastEventId: 2 });
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  assert.equal(s.headers['cache-control'], 'no-cache');
  assert.equal(s.headers['x-accel-buffering'], 'no');
  assert.equal(s.headers['content-length'], undefined);
  await s.waitEvents(2);
  assert.ok(s.raw.startsWith('retry: '), 'retry hint first');
  for (let i = 5; i <= 8; i++)
    await srv.post(S, step(i), { token: admin });
  await s.waitEvents(6);
  assert.deepEqual(s.events.map((e) => Number(e.id)), [3, 4, 5, 6, 7, 8]);
  for (const e of s.events) {
    assert.equal(e.json.seq, Number(e.id));
    assert.equal(e.event, 'step_log');
  }
  const done = await srv.post(S, { type: 'workflow_completed', status: 'succeeded', duration: 2.5 }, { token: admin });
  assert.equal(done.status, 201);
  await s.waitEnd();
  assert.equal(s.events.at(-1).event, 'workflow_completed');
  assert.equal(s.lastEventId, '9');
  // sealed: further appends are refused with 409
  const late = await srv.post(S, step(10), { token: admin });
  assert.equal(late.status, 409);
  assert.equal(late.json.code, 'conflict');
});

test('WebSocket: ?token and cursor, catch-up then live, close 1000 after the seal', async () => {
  const S = 'deployment-jobs/smoke-ws';
  const ev = (i) => ({ type: 'task_log', taskId: 't' + i, line: 'l' + i, level: 'info' });
  await srv.post(S, [ev(1), ev(2), ev(3)], { token: admin });
  const ws = await srv.ws(S, { token: admin, query: { lastEventId: '1' }, answerHeartbeats: true });
  await ws.waitData(2);
  await srv.post(S, [ev(4), ev(5)], { token: admin });
  await ws.waitData(4);
  assert.deepEqual(ws.data.map((m) => m.seq), [2, 3, 4, 5]);
  await srv.post(S, { type: 'job_completed', status: 'succeeded', targetsDeployed: 1, targetsFailed: 0 }, { token: admin });
  const c = await ws.waitClose();
  assert.equal(c.code, 1000);
  assert.deepEqual(ws.data.map((m) => m.seq), [2, 3, 4, 5, 6]);
});

test('WebSocket first-message auth, heartbeats without seq, EventSource client', async () => {
  const S = 'workflow-runs/smoke-auth';
  await srv.post(S, [step(1)], { token: admin });
  const ws = await srv.ws(S, {});
  await sleep(200);
  assert.equal(ws.messages.length, 0, 'nothing before auth');
  ws.send({ type: 'auth', token: admin });
  await ws.waitData(1);
  await ws.until((c) => c.messages.some((m) => m.type === 'heartbeat'), 5000, 'a heartbeat');
  const hb = ws.messages.find((m) => m.type === 'heartbeat');
  assert.equal(hb.seq, undefined);
  assert.ok(hb.timestamp);
  ws.send({ type: 'pong' });
  ws.send({ type: 'nonsense' });
  await ws.until((c) => c.messages.some((m) => m.type === 'error'), 5000, 'an error reply');
  assert.equal(ws.messages.find((m) => m.type === 'error').code, 'bad_request');
  assert.equal(ws.closeInfo, undefined, 'unknown message type keeps the connection');
  ws.close();

  // a real WHATWG EventSource with ?token= (browsers cannot set headers)
  const es = new EventSource(`${srv.url}/api/v1/${S}/stream?token=${admin}`);
  const got = [];
  es.addEventListener('step_log', (e) => got.push({ id: e.lastEventId, data: JSON.parse(e.data) }));
  for (let i = 0; i < 50 && got.length < 1; i++) await sleep(100);
  await srv.post(S, step(2), { token: admin });
  for (let i = 0; i < 50 && got.length < 2; i++) await sleep(100);
  es.close();
  assert.deepEqual(got.map((g) => g.id), ['1', '2']);
  assert.equal(got[1].data.seq, 2);
});

test('a path with CR/LF or a token in the query is logged escaped and redacted', async () => {
  const s = await srv.sse('workflow-runs/run%0d%0aFAKE-LOG-LINE', { token: admin, query: { token: admin } });
  assert.ok(s.status >= 400 && s.status < 500);
  const w = await srv.ws('workflow-runs/x%0d%0aFAKE', { query: { token: admin.split('.').reverse().join('.') } });
  await w.waitClose();
  const m = await srv.ws('workflow-runs/smoke-1', {});
  m.send('{"type":"auth","token":"' + admin + '"'); // malformed JSON holding a token
  m.send({ type: 'auth', token: admin.replace(/.$/, '') });
  await m.waitClose();
  assert.doesNotMatch(srv.err, /^FAKE/m);
});

test('operations endpoints', async () => {
  let r = await srv.get('/health/live');
  assert.equal(r.status, 200);
  r = await srv.get('/health/ready');
  assert.equal(r.status, 200);
  r = await srv.get('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain/);
  assert.match(r.text, /^rtlog_events_appended_total \d+$/m);
  assert.match(r.text, /^rtlog_connections\{transport="sse"\} \d+$/m);
  r = await srv.get('/nope');
  assert.equal(r.status, 404);
  assert.equal(r.json.code, 'not_found');
});
