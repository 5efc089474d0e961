// browser.mjs - what the real-browser tests share: Debian's chromium through npm
// playwright-core, a TCP proxy that really drops the network, and the oracle a run view is
// compared with.
//
// Why a proxy: playwright's context.setOffline(true) (Chromium 14x, playwright-core 1.65)
// does not cut connections that are already open - an SSE response and a fetch stream kept
// delivering events "offline", and a WebSocket was only paused and got everything when
// back online - so it proves nothing about resuming. The page is therefore loaded through
// TcpProxy, which can cut every connection (RST) and refuse new ones for a while (the
// network is down), or black-hole them (Wi-Fi gone: no FIN, no RST, bytes vanish), while
// the server itself keeps running; server restarts use harness.restartServer().
import net from 'node:net';
import fs from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = process.env.RTLOG_CHROMIUM || '/usr/bin/chromium';

/** playwright-core's chromium launcher (throws if the package is missing). */
export async function playwright() {
  const clients = process.env.RTLOG_CLIENTS_DIR;
  const req = createRequire(join(clients, 'package.json'));
  const mod = await import(pathToFileURL(req.resolve('playwright-core')).href);
  return mod.chromium ? mod : mod.default; // CommonJS: the exports are the default
}

/** Launch headless Debian chromium. */
export async function launch() {
  const { chromium } = await playwright();
  // root needs --no-sandbox; a small /dev/shm (containers) must not crash the renderer
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Where screenshots go (RTLOG_ARTIFACTS_DIR, set by CMake to BUILD/artifacts/ui). */
export function artifact(name) {
  const dir = process.env.RTLOG_ARTIFACTS_DIR || join(process.cwd(), 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

/**
 * A loopback TCP proxy to 127.0.0.1:@targetPort. Modes: normal (bytes flow), cut (every
 * socket is reset, new ones are reset at once), stall (every socket, old and new, is kept
 * open but nothing flows; at the end of the stall they are destroyed).
 */
export class TcpProxy {
  static start(targetPort) {
    const p = new TcpProxy(targetPort);
    return new Promise((res, rej) => {
      p.server.once('error', rej);
      p.server.listen(0, '127.0.0.1', () => {
        p.port = p.server.address().port;
        p.url = `http://127.0.0.1:${p.port}`;
        res(p);
      });
    });
  }

  constructor(targetPort) {
    this.targetPort = targetPort;
    this.mode = 'normal';
    this.pairs = new Set();
    this.accepted = 0;
    this.server = net.createServer((c) => this._accept(c));
  }

  _accept(client) {
    this.accepted++;
    if (this.mode === 'cut') { client.resetAndDestroy(); return; }
    const up = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, up };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      up.destroy();
    };
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    // bytes are forwarded only while the pair is not stalled (stalled bytes are lost)
    client.on('data', (d) => { if (!pair.stalled) up.write(d); });
    up.on('data', (d) => { if (!pair.stalled) client.write(d); });
    if (this.mode === 'stall') pair.stalled = true;
  }

  /** Reset every connection now and refuse new ones for @ms. Resolves when it is over. */
  async cut(ms) {
    this.mode = 'cut';
    for (const { client, up } of [...this.pairs]) {
      client.resetAndDestroy();
      up.destroy();
    }
    this.pairs.clear();
    await new Promise((r) => setTimeout(r, ms));
    this.mode = 'normal';
  }

  /** Black-hole every connection for @ms (nothing is closed, nothing flows), then destroy
   *  the black-holed ones. Resolves when it is over. */
  async stall(ms) {
    this.mode = 'stall';
    for (const pair of this.pairs) pair.stalled = true;
    await new Promise((r) => setTimeout(r, ms));
    this.mode = 'normal';
    for (const pair of [...this.pairs]) {
      if (!pair.stalled) continue;
      this.pairs.delete(pair);
      pair.client.destroy();
      pair.up.destroy();
    }
  }

  close() {
    for (const { client, up } of this.pairs) { client.destroy(); up.destroy(); }
    return new Promise((r) => this.server.close(() => r()));
  }
}

/**
 * What a terminal leaves of a log line, computed independently of the page's ansi.js
 * (regular expressions instead of its state machine): escape sequences removed (CSI; OSC,
 * APC, DCS, PM, SOS strings ended by BEL or ESC \; two-byte escapes), other C0 controls
 * except TAB and LF removed, then the last CR-separated segment that has text.
 */
export function visibleText(line) {
  const segs = line.split('\r').map((s) => s
    .replace(/\x1b[\]_P^X][\s\S]*?(?:\x07|\x1b\\)/g, '')
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[ -/]*[0-~]/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, ''));
  for (let i = segs.length - 1; i >= 0; i--) if (segs[i].length) return segs[i];
  return '';
}

/** Events of an NDJSON file (its lines parsed), as posted. */
export function readNdjson(path) {
  return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** What the run view must show for @events (posted in this order, seqs 1..n). */
export function expectedRun(events) {
  const lines = [];
  const steps = {};
  let status = 'running';
  events.forEach((ev, i) => {
    const seq = i + 1;
    if (ev.type === 'step_log') lines.push({ seq, text: visibleText(ev.line), node: ev.nodeId });
    if (ev.type === 'step_started') steps[ev.nodeId] ??= 'running';
    if (ev.type === 'step_completed') steps[ev.nodeId] = ev.status;
    if (ev.type === 'workflow_completed') status = ev.status;
  });
  return { lines, steps, status };
}

/** What the run view in @page shows now. */
export function readRunView(page) {
  return page.evaluate(() => ({
    lines: [...document.querySelectorAll('#steps .line')].map((l) => ({
      seq: Number(l.dataset.seq), text: l.querySelector('.tx').textContent,
      node: l.closest('.step').dataset.node })),
    steps: Object.fromEntries([...document.querySelectorAll('#steps .step')].map((s) => [s.dataset.node, s.dataset.state])),
    status: document.getElementById('run-status')?.textContent,
    conn: document.body.dataset.conn,
    stats: window.rtlogPage && window.rtlogPage.client ? { ...window.rtlogPage.client.stats } : null,
  }));
}

/** Number of log lines the page shows now. */
export function lineCount(page) {
  return page.evaluate(() => document.querySelectorAll('#steps .line').length);
}

/**
 * A new browser context whose pages already hold @token in sessionStorage (as if pasted
 * once), and record every connection state the page reports in page.states.
 */
export async function tokenPage(browser, token) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.addInitScript((t) => { sessionStorage.setItem('rtlog.token', t); }, token);
  const page = await ctx.newPage();
  await watchStates(page);
  return { ctx, page };
}

/** Collect the page's connection states (body[data-conn]) in page.states, and its errors. */
export async function watchStates(page) {
  page.states = [];
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.exposeFunction('__rtlogState', (s) => { page.states.push(s); });
  await page.addInitScript(() => {
    addEventListener('DOMContentLoaded', () => {
      // several changes in one task arrive as one batch: each record's oldValue is the
      // state before it, so the batch yields every state in order
      new MutationObserver((recs) => {
        for (let i = 1; i < recs.length; i++) window.__rtlogState(recs[i].oldValue);
        window.__rtlogState(document.body.dataset.conn);
      }).observe(document.body, { attributes: true, attributeFilter: ['data-conn'],
        attributeOldValue: true });
    });
  });
}

/** Poll @fn in the test until it returns truthy (bounded: throws after @ms naming @what). */
export async function until(fn, ms, what, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, step));
  }
}
