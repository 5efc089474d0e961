// ui_client.test.mjs - the browser client's logic, run in Node: the modules the pages serve
// (server/ui/rtlog-client.js, server/ui/ansi.js) have no browser-only imports, so their
// pure parts are tested here directly, and RtlogStream's SSE-over-fetch transport (Node has
// fetch) against the real `rtlog serve`: the backoff sequence 1 s doubling to 30 s, its reset
// once a connection is accepted, and the resume after the server went away. The browser
// tests (tests/integration/browser) cover the pages and all three transports in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, restartServer } from './lib/harness.mjs';
import { backoffDelay, SseParser, RtlogStream, SEALING } from '../../../server/ui/rtlog-client.js';
import { parseAnsi, visibleText, xterm256 } from '../../../server/ui/ansi.js';
import { waitUntil } from './lib/itest.mjs';

test('backoff: 1 s doubling, capped at 30 s (realtime-api.md "Reconnection")', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50, 5000].map((a) => backoffDelay(a)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  assert.deepEqual([0, 1, 2, 3].map((a) => backoffDelay(a, 10, 50)), [10, 20, 40, 50]);
});

test('SSE parser: WHATWG line endings, chunks split anywhere, comments, multi-line data', () => {
  const frames = [];
  const p = new SseParser((f) => frames.push(f));
  const text = 'retry: 3000\n\n: heartbeat\n\nid: 1\nevent: step_log\ndata: {"a":1}\n\n' +
    'id: 2\r\nevent: x\r\ndata: l1\r\ndata: l2\r\n\r\nid: 3\revent: reset\rdata:{"b":2}\r\rdata: no id\n\n';
  for (let i = 0; i < text.length; i += 3) p.feed(text.slice(i, i + 3));
  assert.deepEqual(frames, [
    { event: 'step_log', data: '{"a":1}', id: '1' },
    { event: 'x', data: 'l1\nl2', id: '2' },
    { event: 'reset', data: '{"b":2}', id: '3' },
    { event: 'message', data: 'no id', id: undefined },
  ]);
});

test('ANSI: SGR runs, CR segments, escapes dropped', () => {
  assert.equal(visibleText('a\x1b[31mb\x1b[0mc'), 'abc');
  assert.equal(visibleText('10%\r50%\r100%'), '100%');
  assert.equal(visibleText('done\r'), 'done');
  assert.equal(visibleText('\x1b_bk;t=1\x07~~~ x\r'), '~~~ x');
  assert.equal(visibleText('\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\'), 'link');
  assert.equal(visibleText('a\x00b\x08c\td'), 'abc\td');
  assert.equal(visibleText('cut \x1b['), 'cut ');
  const [seg] = parseAnsi('\x1b[1;38;5;196mR\x1b[22;48;2;1;2;3mS\x1b[39;49mT');
  assert.deepEqual(seg.map((r) => [r.text, r.style.bold, r.style.fg, r.style.bg]), [
    ['R', true, { rgb: [255, 0, 0] }, null],
    ['S', false, { rgb: [255, 0, 0] }, { rgb: [1, 2, 3] }],
    ['T', false, null, null],
  ]);
  assert.deepEqual(xterm256(244), [128, 128, 128]);
  assert.deepEqual(xterm256(9), [255, 0, 0]);
});

test('RtlogStream (SSE over fetch): backoff while the server is down, reset once accepted, resume', async () => {
  let srv = await startServer({ args: ['--heartbeat', '0.5'] });
  const token = await srv.token();
  const post = async (body) => {
    const r = await fetch(`${srv.url}/api/v1/workflow-runs/c1/events`, { method: 'POST',
      headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 201, await r.text());
  };
  const log = (i) => ({ type: 'step_log', nodeId: 'n', line: 'l' + i, level: 'info' });
  await post([log(1), log(2)]);
  const seqs = [], states = [];
  const s = new RtlogStream({ stream: 'workflow-runs/c1', token, baseUrl: srv.url, transport: 'sse',
    backoffBaseMs: 50, backoffMaxMs: 400, idleTimeoutMs: 3000,
    onEvent: (e) => seqs.push(e.seq), onState: (st, info) => states.push([st, info.delayMs]) });
  try {
    s.start();
    await waitUntil(() => seqs.length === 2, 10000, 'the first two events');
    // the server goes away for a while: attempts back off 50, 100, 200, 400, 400 ...
    const stopped = srv.stop();
    await stopped;
    await waitUntil(() => states.filter(([st, d]) => st === 'reconnecting' && d).length >= 6, 20000, '6 attempts');
    const delays = states.filter(([st, d]) => st === 'reconnecting' && d).map(([, d]) => d);
    assert.deepEqual(delays.slice(0, 6), [50, 100, 200, 400, 400, 400]);
    // back on the same port: the client resumes after seq 2 and its backoff starts again
    const again = await restartServer(srv, 0);
    srv = again.server;
    await waitUntil(() => s.state === 'live' || s.state === 'catching-up', 20000, 'reconnected');
    await post([log(3), { type: 'workflow_completed', status: 'succeeded' }]);
    await waitUntil(() => s.state === 'ended', 10000, 'ended');
    assert.deepEqual(seqs, [1, 2, 3, 4]);
    assert.equal(s.stats.duplicates, 0);
    assert.equal(s.stats.gaps, 0);
    assert.equal(s.attempt, 0, 'backoff reset after the accepted connection');
    assert.ok(SEALING.has('workflow_completed'));
  } finally {
    s.stop();
    await srv.stop();
    srv.cleanup();
  }
});

test('RtlogStream: refusals a retry cannot fix stop it (401, 404), with the server\'s message', async () => {
  const srv = await startServer();
  try {
    const errs = [];
    const bad = new RtlogStream({ stream: 'workflow-runs/nope', token: 'x.y.z', baseUrl: srv.url,
      onError: (e) => errs.push(e) });
    bad.start();
    await waitUntil(() => bad.state === 'error', 10000, 'unauthorized');
    const missing = new RtlogStream({ stream: 'workflow-runs/nope', token: await srv.token(), baseUrl: srv.url,
      onError: (e) => errs.push(e) });
    missing.start();
    await waitUntil(() => missing.state === 'error', 10000, 'not found');
    assert.deepEqual(errs.map((e) => [e.status, e.code]), [[401, 'unauthorized'], [404, 'not_found']]);
    assert.equal(bad.stats.reconnects + missing.stats.reconnects, 0);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
