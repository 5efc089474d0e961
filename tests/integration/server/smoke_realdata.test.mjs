// smoke_realdata.test.mjs - real CI runs (ANSI escapes, CR, 450 KB lines) through the
// whole server: NDJSON ingest in batches, then a WebSocket and an SSE subscriber that
// join mid-way (catch-up, then live) and a follow=false replay must each see every event
// exactly once, in order, with its fields carried byte for byte and "seq" added.
// Also C02's matrix on every stream kind this server serves (runs, jobs, dashboard).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, sharedDir } from './lib/harness.mjs';

let srv, tok;

before(async () => {
  srv = await startServer({ args: ['--heartbeat', '1', '--nosync'] });
  tok = await srv.token({ sub: 'ci' });
});

after(async () => {
  if (!srv) return;
  const r = await srv.stop();
  srv.cleanup();
  assert.deepEqual(r, { code: 0, signal: null }, srv.err);
});

function without(obj, key) {
  const o = { ...obj };
  delete o[key];
  return o;
}

const runs = readdirSync(join(sharedDir(), 'data/real-runs')).filter((f) => f.endsWith('.ndjson')).sort();

test('real runs: catch-up + live over WS and SSE, byte-exact, no gap or duplicate', async () => {
  assert.ok(runs.length > 0, 'real runs present in RTLOG_SHARED_DIR');
  for (const file of runs.slice(0, 3).concat(runs.filter((f) => /longline/.test(f)))) {
    const S = 'workflow-runs/' + file.replace(/\.ndjson$/, '').replace(/[^A-Za-z0-9._:-]/g, '_');
    const lines = readFileSync(join(sharedDir(), 'data/real-runs', file), 'utf8').split('\n').filter((l) => l);
    const events = lines.map((l) => JSON.parse(l));
    const sealIdx = events.findIndex((e) => e.type === 'workflow_completed');
    const n = sealIdx >= 0 ? sealIdx + 1 : events.length;
    const half = Math.floor(n / 2);
    // first half before anyone subscribes
    for (let i = 0; i < half; i += 200) {
      const part = lines.slice(i, Math.min(i + 200, half)).join('\n') + '\n';
      const r = await srv.post(S, part, { token: tok, contentType: 'application/x-ndjson' });
      assert.equal(r.status, 201, r.text);
    }
    const ws = await srv.ws(S, { token: tok, answerHeartbeats: true });
    const sse = await srv.sse(S, { token: tok, lastEventId: 0 });
    for (let i = half; i < n; i += 150) {
      const part = lines.slice(i, Math.min(i + 150, n)).join('\n') + '\n';
      const r = await srv.post(S, part, { token: tok, contentType: 'application/x-ndjson' });
      assert.equal(r.status, 201, r.text);
    }
    if (sealIdx < 0)
      await srv.post(S, { type: 'workflow_completed', status: 'succeeded' }, { token: tok });
    const total = sealIdx >= 0 ? n : n + 1;
    await ws.waitData(total, 60000);
    assert.equal((await ws.waitClose(20000)).code, 1000);
    await sse.waitEnd(60000);
    const audit = await srv.sse(S, { token: tok, query: { follow: 'false' } });
    await audit.waitEnd(60000);
    for (const [name, got] of [['ws', ws.data], ['sse', sse.events.map((e) => e.json)], ['audit', audit.events.map((e) => e.json)]]) {
      assert.equal(got.length, total, `${file} ${name}: count`);
      for (let i = 0; i < n; i++) {
        assert.equal(got[i].seq, i + 1, `${file} ${name}: seq`);
        assert.deepEqual(without(got[i], 'seq'), events[i], `${file} ${name}: event ${i + 1}`);
      }
    }
    for (const e of sse.events)
      assert.equal(Number(e.id), e.json.seq);
  }
});

test('C02 resume matrix on run, job and dashboard streams', async () => {
  const kinds = [
    ['workflow-runs/c02-', (i) => ({ type: 'step_progress', nodeId: 'n', progress: i })],
    ['deployment-jobs/c02-', (i) => ({ type: 'task_progress', taskId: 't', progress: i })],
    ['dashboard', (i) => ({ type: 'metric_update', metrics: { i } })],
  ];
  for (const [prefix, mk] of kinds) {
    for (const cursor of [10, 4, 0]) {
      // a fresh stream holding seq 1..10 (the dashboard is one stream: offset by its head)
      const S = prefix === 'dashboard' ? prefix : prefix + cursor;
      const r = await srv.post(S, Array.from({ length: 10 }, (_, i) => mk(i + 1)), { token: tok });
      const base = r.json.firstSeq - 1;
      const s = await srv.sse(S, { token: tok, lastEventId: base + cursor });
      const w = await srv.ws(S, { token: tok, query: { lastEventId: String(base + cursor) }, answerHeartbeats: true });
      await s.waitEvents(10 - cursor);
      await w.waitData(10 - cursor);
      await srv.post(S, mk(99), { token: tok }); // live: seq base + 11
      await s.waitEvents(11 - cursor);
      await w.waitData(11 - cursor);
      const want = Array.from({ length: 11 - cursor }, (_, i) => base + cursor + 1 + i);
      assert.deepEqual(s.events.map((e) => Number(e.id)), want, `${S} sse cursor ${cursor}`);
      assert.deepEqual(w.data.map((m) => m.seq), want, `${S} ws cursor ${cursor}`);
      s.close();
      w.close();
    }
  }
  // no cursor: runs and jobs from seq 1; the dashboard from its latest metric_update
  const r = await srv.sse('workflow-runs/c02-4', { token: tok, query: { follow: 'false' } });
  await r.waitEnd();
  assert.equal(r.events[0].id, '1');
  assert.equal(r.events.length, 11);
  const d = await srv.sse('dashboard', { token: tok, query: { follow: 'false' } });
  await d.waitEnd();
  assert.equal(d.events.length, 1);
  assert.equal(d.events[0].event, 'metric_update');
  assert.equal(d.events[0].json.metrics.i, 99);
});
