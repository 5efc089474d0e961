// run_view.test.mjs - the run view in a real browser (issue 7): a real CI run is posted
// while /ui/runs/{id} is open, and the page ends up showing every log line exactly once,
// in order, as a terminal would (ANSI, CR progress lines), with each step's final state.
// Also: the token is pasted into the page (and kept out of its URL), log text cannot
// inject markup, the ANSI colours become classes/styles, and a screenshot is saved.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, sharedDir, sleep } from '../server/lib/harness.mjs';
import { launch, artifact, readNdjson, expectedRun, readRunView, watchStates, tokenPage,
  until } from './lib/browser.mjs';

let srv, browser, token;

before(async () => {
  srv = await startServer({ args: ['--heartbeat', '1'] });
  token = await srv.token({ sub: 'browser-test' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  const r = await srv?.stop();
  srv?.cleanup();
  assert.deepEqual(r, { code: 0, signal: null });
});

async function post(stream, body) {
  const ndjson = Array.isArray(body) && body.length > 0;
  const r = await fetch(`${srv.url}/api/v1/${stream}/events`, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + token,
      'content-type': ndjson ? 'application/x-ndjson' : 'application/json' },
    body: ndjson ? body.map((e) => JSON.stringify(e)).join('\n') + '\n' : JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  return JSON.parse(text);
}

test('a real run posted while the page is open: every line once, in order, final states', async () => {
  const events = readNdjson(join(sharedDir(), 'data/real-runs/buildkite-buildah-build.ndjson'));
  const want = expectedRun(events);
  const id = 'live-' + Date.now();
  await post('workflow-runs/' + id, []);

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await watchStates(page);
  await page.goto(`${srv.url}/ui/runs/${id}`);
  // no token yet: the page says so and loads nothing
  await until(() => page.evaluate(() => document.body.dataset.conn === undefined &&
    document.getElementById('conn').dataset.state === 'no-token'), 10000, 'no-token state');
  // a person pastes the token once; it stays in sessionStorage, never in the URL
  await page.fill('#token-input', token);
  await page.click('#token-form button[type=submit]');
  await until(() => page.evaluate(() => document.body.dataset.conn === 'live'), 15000, 'live');
  assert.ok(!page.url().includes(token.slice(-20)), 'token in the page URL');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('rtlog.token')), token);
  assert.equal(await page.inputValue('#token-input'), '', 'the token stays in the form field');

  // post the run in chunks while the page follows it live
  for (let i = 0; i < events.length; i += 40) {
    await post('workflow-runs/' + id, events.slice(i, i + 40));
    await sleep(50);
  }
  await until(() => page.evaluate(() => document.body.dataset.conn === 'ended'), 60000, 'ended');

  const got = await readRunView(page);
  assert.deepEqual(got.lines.map((l) => l.seq), want.lines.map((l) => l.seq), 'seqs of the lines');
  assert.deepEqual(got.lines, want.lines);
  assert.deepEqual(got.steps, want.steps);
  assert.equal(got.status, want.status);
  assert.equal(got.stats.duplicates, 0);
  assert.equal(got.stats.gaps, 0);
  assert.equal(got.stats.events, events.length);
  assert.ok(page.states.includes('live') && page.states.at(-1) === 'ended', page.states.join(','));
  assert.deepEqual(page.errors, []);
  // the indicator says it in words, not only in colour
  assert.equal(await page.textContent('#conn .label'), 'Complete');

  // follow-the-tail was on: the page is scrolled to its last line
  const atBottom = () => page.evaluate(() =>
    window.scrollY > 0 && window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2);
  await until(atBottom, 5000, 'the page scrolled to the tail');
  // scrolling up turns it off (a person reading back is not pulled down again)
  await page.mouse.wheel(0, -2000);
  await until(() => page.evaluate(() => !document.getElementById('follow').checked), 5000, 'follow off after scrolling up');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.check('#follow');
  await until(atBottom, 5000, 'follow on again: back at the tail');

  // the screenshot artifact: the top of the run (steps with their state, progress, log)
  await page.uncheck('#follow');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: artifact('run-view.png') });
  await page.screenshot({ path: artifact('run-view-full.png'), fullPage: true });
  await ctx.close();
});

test('a large ANSI run over WebSocket: lines rendered like a terminal', async () => {
  const events = readNdjson(join(sharedDir(), 'data/real-runs/npm-install-verbose-ansi.ndjson'));
  const want = expectedRun(events);
  const id = 'ansi-' + Date.now();
  await post('workflow-runs/' + id, []);
  const { ctx, page } = await tokenPage(browser, token);
  await page.goto(`${srv.url}/ui/runs/${id}?transport=ws`);
  await until(() => page.evaluate(() => document.body.dataset.conn === 'live'), 15000, 'live');
  const half = Math.floor(events.length / 2);
  await post('workflow-runs/' + id, events.slice(0, half));
  await post('workflow-runs/' + id, events.slice(half));
  await until(() => page.evaluate(() => document.body.dataset.conn === 'ended'), 120000, 'ended');
  const got = await readRunView(page);
  assert.equal(got.lines.length, want.lines.length);
  assert.deepEqual(got.lines, want.lines);
  assert.deepEqual(got.steps, want.steps);
  assert.equal(got.stats.duplicates, 0);
  assert.equal(got.stats.gaps, 0);
  // SGR colours became classes (no raw escape reached the DOM)
  const coloured = await page.evaluate(() => document.querySelectorAll('#steps .line span[class*="fg-"]').length);
  assert.ok(coloured > 100, `coloured spans: ${coloured}`);
  assert.equal(await page.evaluate(() => document.body.textContent.includes('\x1b')), false);
  await ctx.close();
});

test('log text is shown, never run; 16, 256 and truecolor SGR; CR progress', async () => {
  const id = 'xss-' + Date.now();
  const lines = [
    '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>',
    '\x1b[1;31mbold red\x1b[0m plain \x1b[42mgreen bg\x1b[0m',
    '\x1b[38;5;208morange256\x1b[0m \x1b[38;2;10;20;30mtrue\x1b[0m \x1b[94mbright\x1b[0m',
    '10%\r\x1b[32m50%\r100%\x1b[0m\r',
    '\x1b]0;title\x07\x1b[2Kcleared\x1b[K',
  ];
  await post('workflow-runs/' + id, [
    { type: 'step_started', nodeId: 'n', stepType: 'script' },
    ...lines.map((line) => ({ type: 'step_log', nodeId: 'n', line, level: 'info' })),
    { type: 'step_completed', nodeId: 'n', status: 'succeeded', duration: 1.5 },
    { type: 'workflow_completed', status: 'succeeded', duration: 2 },
  ]);
  const { ctx, page } = await tokenPage(browser, token);
  await page.goto(`${srv.url}/ui/runs/${id}`);
  await until(() => page.evaluate(() => document.body.dataset.conn === 'ended'), 15000, 'ended');
  const r = await page.evaluate(() => {
    const tx = [...document.querySelectorAll('#steps .line .tx')];
    const span = (i, text) => [...tx[i].querySelectorAll('span')].find((s) => s.textContent === text);
    return {
      texts: tx.map((t) => t.textContent),
      xss: window.__xss, imgs: document.querySelectorAll('#steps img, #steps script').length,
      boldRed: span(1, 'bold red')?.className, greenBg: span(1, 'green bg')?.className,
      orange: span(2, 'orange256') && getComputedStyle(span(2, 'orange256')).color,
      truec: span(2, 'true') && getComputedStyle(span(2, 'true')).color,
      bright: span(2, 'bright')?.className,
      progress: span(3, '100%')?.className,
      duration: document.querySelector('.step .duration').textContent,
      bar: document.querySelector('.step .bar-fill').style.width,
    };
  });
  assert.deepEqual(r.texts, [lines[0], 'bold red plain green bg', 'orange256 true bright', '100%', 'cleared']);
  assert.equal(r.xss, undefined);
  assert.equal(r.imgs, 0);
  assert.equal(r.boldRed, 'fg-1 b');
  assert.equal(r.greenBg, 'bg-2');
  assert.equal(r.orange, 'rgb(255, 135, 0)');
  assert.equal(r.truec, 'rgb(10, 20, 30)');
  assert.equal(r.bright, 'fg-12');
  assert.equal(r.progress, 'fg-2', 'SGR state carries across CR segments');
  assert.equal(r.duration, '1.5 s');
  assert.equal(r.bar, '100%');
  assert.deepEqual(page.errors, []);
  await ctx.close();
});
