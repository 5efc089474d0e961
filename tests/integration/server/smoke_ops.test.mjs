// smoke_ops.test.mjs - operations: storage full (C12: a 500 that stores nothing, ready
// 503, metric, subscribers unharmed), the total connection limit, and the SIGTERM drain
// (WS 1001, SSE end, appends in flight answered, exit 0; after a restart the log holds
// exactly the acknowledged events and continues at the next seq).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep } from './lib/harness.mjs';

const rnd = () => Array.from({ length: 60 }, () => Math.random().toString(36).slice(2)).join('');

test('storage full: 500 internal_error, nothing stored, ready 503, subscriber stays', async () => {
  const srv = await startServer({ args: ['--map-bytes', '1MiB', '--map-max-bytes', '2MiB', '--heartbeat', '0.5'] });
  try {
    const tok = await srv.token();
    const S = 'workflow-runs/full';
    await srv.post(S, [], { token: tok });
    const sub = await srv.ws(S, { token: tok, answerHeartbeats: true });
    let acked = 0, fail;
    for (let i = 0; i < 1000 && !fail; i++) {
      const r = await srv.post(S, Array.from({ length: 10 }, () => ({ type: 'step_log', nodeId: 'n', line: rnd(), level: 'info' })), { token: tok });
      if (r.status === 201) acked = r.json.lastSeq; else fail = r;
    }
    assert.ok(fail, 'the map filled up');
    assert.equal(fail.status, 500);
    assert.equal(fail.json.code, 'internal_error');
    assert.match(fail.json.message, /storage full/);
    assert.doesNotMatch(fail.json.message, /\//, 'no paths in the message');
    assert.equal((await srv.get('/health/ready')).status, 503);
    assert.match((await srv.get('/metrics')).text, /^rtlog_storage_full 1$/m);
    await sub.waitData(acked, 20000);
    await sleep(300);
    assert.equal(sub.data.length, acked, 'no phantom events');
    assert.equal(sub.closeInfo, undefined, 'the subscriber stays open');
    assert.equal((await srv.get('/health/live')).status, 200);
  } finally {
    const r = await srv.stop();
    srv.cleanup();
    assert.deepEqual(r, { code: 0, signal: null }, srv.err);
  }
});

test('total connection limit: 429 rate_limited', async () => {
  const srv = await startServer({ args: ['--max-connections', '2'] });
  try {
    const tok = await srv.token();
    const S = 'workflow-runs/cap';
    await srv.post(S, [], { token: tok });
    const a = await srv.sse(S, { token: tok });
    const b = await srv.ws(S, { token: tok });
    const c = await srv.sse(S, { token: await srv.token({ sub: 'someone-else' }) });
    assert.equal(a.status, 200);
    assert.equal(c.status, 429);
    assert.equal(c.json.code, 'rate_limited');
    const d = await srv.ws(S, { token: tok });
    assert.equal((await d.waitClose()).code, 4429);
    a.close();
    b.close();
  } finally {
    const r = await srv.stop();
    srv.cleanup();
    assert.deepEqual(r, { code: 0, signal: null }, srv.err);
  }
});

test('SIGTERM drains: 1001, SSE end, appends answered, exit 0; restart continues', async () => {
  const srv = await startServer({ args: ['--heartbeat', '5'] });
  const tok = await srv.token();
  const S = 'workflow-runs/drain';
  await srv.post(S, [], { token: tok });
  const ws = await srv.ws(S, { token: tok, answerHeartbeats: true });
  const sse = await srv.sse(S, { token: tok });
  const batch = Array.from({ length: 2000 }, (_, i) => ({ type: 'step_log', nodeId: 'n', line: 'l' + i, level: 'info' }));
  const posts = [];
  for (let i = 0; i < 12; i++)
    posts.push(srv.post(S, batch, { token: tok }).catch((e) => ({ status: 'error ' + e.code })));
  await sleep(20);
  const stopped = srv.stop();
  const res = await Promise.all(posts);
  for (const r of res)
    assert.ok(r.status === 201 || r.status === 503, 'answered: ' + r.status);
  const acked = res.filter((r) => r.status === 201);
  for (const r of res.filter((x) => x.status === 503))
    assert.equal(r.json.type, 'error');
  assert.equal((await ws.waitClose()).code, 1001);
  await sse.waitEnd();
  assert.deepEqual(await stopped, { code: 0, signal: null }, srv.err);

  const again = await startServer({ dataDir: srv.dataDir });
  try {
    const t2 = await again.token();
    const r = await again.post(S, [], { token: t2 });
    assert.equal(r.json.lastSeq, acked.length * 2000, 'exactly the acknowledged events');
    const more = await again.post(S, batch.slice(0, 1), { token: t2 });
    assert.equal(more.json.firstSeq, acked.length * 2000 + 1);
  } finally {
    await again.stop();
    srv.cleanup();
  }
});
