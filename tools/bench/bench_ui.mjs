// bench_ui.mjs - how fast the run view shows a run in headless chromium (issue 7).
//
//   RTLOG_BIN=build-rel/tools/rtlog node tools/bench/bench_ui.mjs [--runs N] [FILE.ndjson...]
//
// For each real run (default: the two largest of ../shared/data/real-runs/ by line count)
// and each transport (sse = fetch, ws, eventsource): "replay" opens /ui/runs/{id} on the
// stored, sealed run and times from navigation to the page's Complete state; "live" opens
// the page on the empty stream, then POSTs the whole run in one request and times from the
// POST to Complete. Median of N (default 3) runs, with the events and log lines per second
// the page rendered. Needs tests/clients/node_modules (npm ci) and /usr/bin/chromium.
// Loopback only; bounded (every wait times out after 120 s).
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

const here = dirname(fileURLToPath(import.meta.url));
process.env.RTLOG_CLIENTS_DIR ||= resolve(here, '../../tests/clients');
const { startServer, sharedDir } = await import('../../tests/integration/server/lib/harness.mjs');
const { launch, tokenPage, until, readNdjson } = await import('../../tests/integration/browser/lib/browser.mjs');

const args = process.argv.slice(2);
let runs = 3;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--runs') runs = Number(args[++i]);
  else files.push(args[i]);
}
if (!files.length)
  files.push(join(sharedDir(), 'data/real-runs/npm-install-verbose-ansi.ndjson'),
    join(sharedDir(), 'data/real-runs/gha-pytorch-linux-job-error.ndjson'));

const srv = await startServer({ args: ['--heartbeat', '5'] });
const token = await srv.token({ ttl: 3600 });
const browser = await launch();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function post(stream, body, ndjson) {
  const r = await fetch(`${srv.url}/api/v1/${stream}/events`, { method: 'POST',
    headers: { authorization: 'Bearer ' + token, 'content-type': ndjson ? 'application/x-ndjson' : 'application/json' },
    body });
  if (r.status !== 201) throw new Error(`POST ${stream}: ${r.status} ${await r.text()}`);
}

async function once(mode, transport, name, body) {
  const id = `bench-${mode}-${transport}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const stream = 'workflow-runs/' + id;
  const { ctx, page } = await tokenPage(browser, token);
  let t0;
  if (mode === 'replay') {
    await post(stream, body, true);
    t0 = performance.now();
    await page.goto(`${srv.url}/ui/runs/${id}?transport=${transport}`);
  } else {
    await post(stream, '[]', false);
    await page.goto(`${srv.url}/ui/runs/${id}?transport=${transport}`);
    await until(() => page.evaluate(() => document.body.dataset.conn === 'live'), 120000, 'live');
    t0 = performance.now();
    await post(stream, body, true);
  }
  await until(() => page.evaluate(() => document.body.dataset.conn === 'ended'), 120000, 'ended', 10);
  const ms = performance.now() - t0;
  const lines = await page.evaluate(() => document.querySelectorAll('#steps .line').length);
  await ctx.close();
  return { ms, lines };
}

console.log(`machine: ${(await import('node:os')).cpus().length} cores, ${(await import('node:os')).cpus()[0].model}; runs: ${runs} (median)`);
console.log('| run | events | lines | mode | transport | ms to Complete | events/s | lines/s |');
console.log('|---|---|---|---|---|---|---|---|');
try {
  for (const f of files) {
    const events = readNdjson(f);
    const body = fs.readFileSync(f);
    const name = f.split('/').pop().replace(/\.ndjson$/, '');
    for (const mode of ['replay', 'live']) {
      for (const transport of ['sse', 'ws', 'eventsource']) {
        const res = [];
        for (let i = 0; i < runs; i++) res.push(await once(mode, transport, name, body));
        const ms = median(res.map((r) => r.ms));
        const lines = res[0].lines;
        console.log(`| ${name} | ${events.length} | ${lines} | ${mode} | ${transport} | ${Math.round(ms)} | ` +
          `${Math.round(events.length / ms * 1000)} | ${Math.round(lines / ms * 1000)} |`);
      }
    }
  }
} finally {
  await browser.close();
  await srv.stop();
  srv.cleanup();
}
