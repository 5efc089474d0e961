// drops.test.mjs - the network drops while a run streams into the browser (issue 7).
//
// For each transport the page offers - SSE over fetch (token in the Authorization header),
// WebSocket (token in the first message) and the browser's native EventSource (?token=) -
// and each way a connection can die:
//   cut:     every connection is reset and new ones are refused for several seconds
//            (TcpProxy: the server keeps running; events are posted during the outage),
//   restart: the server drains (WS 1001, SSE ends) and is down for several seconds, then
//            starts again on the same port and data directory,
//   stall:   the network black-holes (no FIN, no RST: Wi-Fi gone) for several seconds; only
//            the client's silence timeout notices (not for EventSource, whose heartbeat
//            comments are invisible to scripts),
// the page must resume from the last seq it rendered and end with exactly the posted lines:
// none missing, none twice (the DOM is compared, and the client's duplicate/gap counters
// must be 0), after having shown the "reconnecting" indicator.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, restartServer, sharedDir, sleep } from '../server/lib/harness.mjs';
import { launch, readNdjson, expectedRun, readRunView, lineCount, tokenPage, until,
  TcpProxy } from './lib/browser.mjs';

let srv, browser, token, proxy;
const events = readNdjson(join(sharedDir(), 'data/real-runs/buildkite-buildah-build.ndjson'));
const want = expectedRun(events);
const DOWN_MS = 4000;

before(async () => {
  srv = await startServer({ args: ['--heartbeat', '0.5'] });
  token = await srv.token({ sub: 'browser-drops' });
  proxy = await TcpProxy.start(srv.port);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  const r = await srv?.stop();
  srv?.cleanup();
  assert.deepEqual(r, { code: 0, signal: null });
});

async function post(stream, evs) {
  const r = await fetch(`${srv.url}/api/v1/${stream}/events`, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + token,
      'content-type': evs.length ? 'application/x-ndjson' : 'application/json' },
    body: evs.length ? evs.map((e) => JSON.stringify(e)).join('\n') + '\n' : '[]',
  });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  return JSON.parse(text);
}

/** Lines (step_log events) among the first @n events. */
const linesIn = (n) => events.slice(0, n).filter((e) => e.type === 'step_log').length;

async function scenario(t, transport, kind) {
  const id = `drop-${transport}-${kind}-${Date.now()}`;
  const stream = 'workflow-runs/' + id;
  await post(stream, []);
  const { ctx, page } = await tokenPage(browser, token);
  // through the proxy: what the proxy does to the network, the page lives through
  await page.goto(`${proxy.url}/ui/runs/${id}?transport=${transport}&idleTimeout=2000`);
  await until(() => page.evaluate(() => document.body.dataset.conn === 'live'), 15000, 'live');

  const a = 120, b = 240;
  for (let i = 0; i < a; i += 30) await post(stream, events.slice(i, Math.min(a, i + 30)));
  await until(async () => (await lineCount(page)) === linesIn(a), 20000, `${linesIn(a)} lines before the drop`);

  const reconnectsBefore = (await readRunView(page)).stats.reconnects;
  if (kind === 'cut' || kind === 'stall') {
    const outage = kind === 'cut' ? proxy.cut(DOWN_MS) : proxy.stall(DOWN_MS);
    // events keep coming while the browser is cut off
    for (let i = a; i < b; i += 30) { await post(stream, events.slice(i, Math.min(b, i + 30))); await sleep(200); }
    await outage;
  } else {
    const { server, exit } = await restartServer(srv, DOWN_MS);
    assert.deepEqual(exit, { code: 0, signal: null });
    srv = server;
    for (let i = a; i < b; i += 30) await post(stream, events.slice(i, Math.min(b, i + 30)));
  }
  for (let i = b; i < events.length; i += 30) await post(stream, events.slice(i, i + 30));
  await until(() => page.evaluate(() => document.body.dataset.conn === 'ended'), 90000,
    `${transport}/${kind}: the end of the run`);

  const got = await readRunView(page);
  assert.deepEqual(got.lines.map((l) => l.seq), want.lines.map((l) => l.seq), 'seqs: none missing, none twice');
  assert.deepEqual(got.lines, want.lines);
  assert.deepEqual(got.steps, want.steps);
  assert.equal(got.status, want.status);
  assert.equal(got.stats.duplicates, 0, 'the server sent an event twice');
  assert.equal(got.stats.gaps, 0, 'the server skipped an event');
  assert.ok(got.stats.reconnects > reconnectsBefore, `no reconnect recorded: ${JSON.stringify(got.stats)}`);
  assert.ok(page.states.includes('reconnecting'), `states: ${page.states.join(',')}`);
  assert.equal(page.states.at(-1), 'ended');
  assert.deepEqual(page.errors, []);
  t.diagnostic(`states ${page.states.join(' > ')}; client ${JSON.stringify(got.stats)}; ` +
    `proxy accepted ${proxy.accepted} connections so far`);
  await ctx.close();
}

for (const transport of ['sse', 'ws', 'eventsource']) {
  for (const kind of ['cut', 'restart', 'stall']) {
    if (transport === 'eventsource' && kind === 'stall') continue;
    test(`${transport}: ${kind} for ${DOWN_MS / 1000} s while the run streams`, (t) => scenario(t, transport, kind));
  }
}
