// harness.mjs - start a real `rtlog serve` for an integration test and talk to it.
//
// Every server integration test uses this: it starts the binary from RTLOG_BIN (or
// argv[2]) on 127.0.0.1 with port 0 (the server picks a free port and prints it in its
// "rtlog: listening on http://HOST:PORT" line, so there is no port race), in a fresh temp
// data directory, with the test's own short heartbeat/pong/auth settings. Tokens are
// minted with npm `jose` from the data directory's jwt-secret (64 hex digits = 32 raw
// bytes, the format server/auth.c writes). stop() sends SIGTERM to the pid it started
// and reports the exit code (tests assert 0: a clean drain); cleanup() removes the
// directory. Clients: ws, eventsource and jose come from tests/clients/node_modules
// (installed by `npm ci` there); a raw SSE reader and a queued WS wrapper are included
// because exact bytes and close codes are what the contract is about.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import http from 'node:http';
import net from 'node:net';

const here = dirname(fileURLToPath(import.meta.url));
const clientsDir = process.env.RTLOG_CLIENTS_DIR || resolve(here, '../../../clients');
const req = createRequire(join(clientsDir, 'package.json'));

/** npm `ws` (the WebSocket class). */
export const WebSocket = req('ws');
/** npm `eventsource` (a WHATWG EventSource). */
export const { EventSource } = await import(pathToFileURL(req.resolve('eventsource')).href);
/** npm `jose`. */
export const jose = await import(pathToFileURL(req.resolve('jose')).href);

/** Path of the rtlog binary under test. */
export function rtlogBin() {
  const bin = process.env.RTLOG_BIN || process.argv[2];
  if (!bin || !existsSync(bin))
    throw new Error('set RTLOG_BIN to the rtlog binary (got ' + bin + ')');
  return bin;
}

/** The project's shared/ folder (real data), from RTLOG_SHARED_DIR. */
export function sharedDir() {
  return process.env.RTLOG_SHARED_DIR || resolve(here, '../../../../../shared');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolve with p's value, or null after ms (the timer never keeps the process alive). */
export function within(p, ms) {
  let t;
  const timer = new Promise((r) => { t = setTimeout(() => r(null), ms); });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

/**
 * Start `rtlog serve`. opts.args: extra flags (e.g. ['--heartbeat', '0.5']);
 * opts.env: extra environment; opts.dataDir: reuse a directory (restart tests);
 * opts.listen: HOST:PORT instead of 127.0.0.1:0 (restart on the port a client knows);
 * opts.timeoutMs: how long to wait for the listening line (default 15000).
 * Resolves to a Server (see below) once the server listens.
 */
export async function startServer(opts = {}) {
  const dataDir = opts.dataDir || mkdtempSync(join(tmpdir(), 'rtlog-it-'));
  const ownsDir = !opts.dataDir;
  const args = ['serve', '--listen', opts.listen || '127.0.0.1:0', '--data', dataDir,
    ...(opts.args || [])];
  const proc = spawn(rtlogBin(), args, {
    env: { ...process.env, ...(opts.env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = new Server(proc, dataDir, ownsDir);
  srv.opts = opts;
  await srv._waitListening(opts.timeoutMs || 15000);
  return srv;
}

/**
 * Stop @srv (SIGTERM, clean drain: its WS get 1001, its SSE end), wait @downMs with nothing
 * listening, and start a new `rtlog serve` on the same data directory and the same
 * HOST:PORT, so clients that know the address reconnect to it. Resolves to the new Server
 * (which owns the directory if @srv did) and the old one's exit {code, signal}.
 */
export async function restartServer(srv, downMs = 0, opts = {}) {
  const exit = await srv.stop();
  if (downMs > 0) await sleep(downMs);
  const again = await startServer({ ...srv.opts, ...opts, dataDir: srv.dataDir,
    listen: `${srv.host}:${srv.port}` });
  again.ownsDir = srv.ownsDir;
  srv.ownsDir = false;
  return { server: again, exit };
}

export class Server {
  constructor(proc, dataDir, ownsDir) {
    this.proc = proc;
    this.pid = proc.pid;
    this.dataDir = dataDir;
    this.ownsDir = ownsDir;
    this.out = '';
    this.err = '';
    this.exited = new Promise((res) => {
      proc.on('exit', (code, signal) => res({ code, signal }));
    });
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { this.out += d; });
    proc.stderr.on('data', (d) => { this.err += d; });
  }

  async _waitListening(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /rtlog: listening on http:\/\/([^\s:]+):(\d+)/.exec(this.out);
      if (m) {
        this.host = m[1];
        this.port = Number(m[2]);
        this.url = `http://${m[1]}:${m[2]}`;
        this.wsUrl = `ws://${m[1]}:${m[2]}`;
        return;
      }
      const done = await within(this.exited, 20);
      if (done)
        throw new Error(`rtlog serve exited (${JSON.stringify(done)}) before listening:\n${this.err}`);
      if (Date.now() > deadline) {
        this.proc.kill('SIGKILL');
        throw new Error('rtlog serve did not print its listening line:\n' + this.out + this.err);
      }
    }
  }

  /** The HS256 secret of the data directory (raw bytes). */
  secret() {
    const hex = readFileSync(join(this.dataDir, 'jwt-secret'), 'utf8').trim();
    return Buffer.from(hex, 'hex');
  }

  /** Mint a token; see mintToken(). */
  token(claims = {}) {
    return mintToken(this.secret(), claims);
  }

  /** SIGTERM the server (its pid only) and wait; resolves to {code, signal}. */
  async stop(timeoutMs = 15000) {
    if (this.proc.exitCode === null && this.proc.signalCode === null)
      this.proc.kill('SIGTERM');
    const r = await within(this.exited, timeoutMs);
    if (!r) {
      this.proc.kill('SIGKILL');
      throw new Error('rtlog serve did not exit after SIGTERM:\n' + this.err);
    }
    // The leak check of the whole integration suite: a sanitizer build reports leaks
    // (LeakSanitizer runs at exit), memory errors and UB on stderr; any of them fails the
    // test that stopped the server, whatever exit code it asserts.
    const san = /^(==\d+==ERROR: (LeakSanitizer|AddressSanitizer)|.*runtime error: )/m.exec(this.err);
    if (san)
      throw new Error(`rtlog serve (pid ${this.pid}) reported a sanitizer error:\n` +
                      this.err.slice(Math.max(0, san.index - 200), san.index + 4000));
    return r;
  }

  /** SIGKILL the server (crash tests). */
  async kill() {
    this.proc.kill('SIGKILL');
    return this.exited;
  }

  /** Remove the temp data directory (only if the harness made it). */
  cleanup() {
    if (this.ownsDir)
      rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** POST events. body: object/array (JSON) or string; opts: {token, contentType, query}. */
  post(stream, body, opts = {}) {
    const q = opts.query ? '?' + new URLSearchParams(opts.query) : '';
    const headers = { 'content-type': opts.contentType || 'application/json' };
    if (opts.token !== undefined && opts.token !== null)
      headers.authorization = 'Bearer ' + opts.token;
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    return request(this.url + `/api/v1/${stream}/events${q}`, { method: 'POST', headers, body: data });
  }

  /** Send raw bytes on a fresh TCP connection; resolves to everything read back until the
   *  server closes or waitMs passes (for requests no HTTP client would send). */
  raw(bytes, waitMs = 1500) {
    return new Promise((res) => {
      const c = net.connect(this.port, this.host, () => c.write(bytes));
      let d = '';
      let done = false;
      const finish = () => { if (!done) { done = true; clearTimeout(t); c.destroy(); res(d); } };
      const t = setTimeout(finish, waitMs);
      c.setEncoding('latin1');
      c.on('data', (x) => { d += x; });
      c.on('close', finish);
      c.on('error', finish);
    });
  }

  /** GET any path; resolves to {status, headers, text, json}. */
  get(path, headers = {}) {
    return request(this.url + path, { method: 'GET', headers });
  }

  /** Open a raw SSE stream; see SseClient. */
  sse(stream, opts = {}) {
    return SseClient.open(this, stream, opts);
  }

  /** Open a WebSocket; see WsClient. */
  ws(stream, opts = {}) {
    return WsClient.open(this, stream, opts);
  }
}

/**
 * Sign an HS256 token. claims: {sub, subscribe, publish, ttl (s, default 300), exp, nbf,
 * iss, aud, extra (merged claims), header (extra protected header fields)}.
 */
export async function mintToken(secret, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    sub: claims.sub ?? 'test-user',
    rtlog: { subscribe: claims.subscribe ?? ['*'], publish: claims.publish ?? ['*'] },
    ...(claims.extra || {}),
  };
  const jwt = new jose.SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...(claims.header || {}) })
    .setIssuedAt(now)
    .setExpirationTime(claims.exp ?? now + (claims.ttl ?? 300));
  if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
  if (claims.iss) jwt.setIssuer(claims.iss);
  if (claims.aud) jwt.setAudience(claims.aud);
  return jwt.sign(secret);
}

/** A plain HTTP request; resolves to {status, headers, text, json (or undefined)}. */
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((res, rej) => {
    const r = http.request(url, { method, headers, agent: false }, (resp) => {
      let text = '';
      resp.setEncoding('utf8');
      resp.on('data', (d) => { text += d; });
      resp.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        res({ status: resp.statusCode, headers: resp.headers, text, json });
      });
      resp.on('error', rej);
    });
    r.on('error', rej);
    if (body !== undefined) r.end(body); else r.end();
  });
}

/**
 * Raw SSE client over node:http: the exact bytes, parsed per the WHATWG rules into
 * events {id, event, data, json}; comments are counted. opts: {token (Bearer header),
 * queryToken, lastEventId (header), query (object), headers}.
 * If the server refuses (non-200), open() resolves with .status/.body set and no events.
 */
export class SseClient {
  static open(srv, stream, opts = {}) {
    return new Promise((res, rej) => {
      const q = new URLSearchParams(opts.query || {});
      if (opts.queryToken) q.set('token', opts.queryToken);
      const qs = q.toString() ? '?' + q : '';
      const headers = { accept: 'text/event-stream', ...(opts.headers || {}) };
      if (opts.token) headers.authorization = 'Bearer ' + opts.token;
      if (opts.lastEventId !== undefined) headers['last-event-id'] = String(opts.lastEventId);
      const c = new SseClient();
      const r = http.request(srv.url + `/api/v1/${stream}/stream${qs}`,
        { method: 'GET', headers, agent: false }, (resp) => {
          c.status = resp.statusCode;
          c.headers = resp.headers;
          c.resp = resp;
          resp.setEncoding('utf8');
          if (resp.statusCode !== 200) {
            let body = '';
            resp.on('data', (d) => { body += d; });
            resp.on('end', () => {
              c.body = body;
              try { c.json = JSON.parse(body); } catch { c.json = undefined; }
              c.ended = true;
              res(c);
            });
            return;
          }
          resp.on('data', (d) => c._feed(d));
          resp.on('end', () => { c.ended = true; c._wake(); });
          resp.on('error', () => { c.ended = true; c._wake(); });
          res(c);
        });
      c.req = r;
      r.on('error', (e) => { if (c.status === undefined) rej(e); c.ended = true; c._wake(); });
      r.end();
    });
  }

  constructor() {
    this.raw = '';
    this.events = [];
    this.comments = [];
    this.retry = undefined;
    this.lastEventId = '';
    this.ended = false;
    this._buf = '';
    this._waiters = [];
    this._ev = { data: [], event: '', id: undefined };
  }

  _feed(chunk) {
    this.raw += chunk;
    this._buf += chunk;
    let i;
    while ((i = this._buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = this._buf.slice(0, i);
      const nl = this._buf.startsWith('\r\n', i) ? 2 : 1;
      this._buf = this._buf.slice(i + nl);
      this._line(line);
    }
    this._wake();
  }

  _line(line) {
    const ev = this._ev;
    if (line === '') {
      if (ev.id !== undefined) this.lastEventId = ev.id; // WHATWG: set on dispatch
      if (ev.data.length) {
        const data = ev.data.join('\n');
        let json;
        try { json = JSON.parse(data); } catch { json = undefined; }
        this.events.push({ id: ev.id, event: ev.event || 'message', data, json });
      }
      this._ev = { data: [], event: '', id: undefined };
      return;
    }
    if (line.startsWith(':')) { this.comments.push(line.slice(1).trim()); return; }
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') ev.data.push(value);
    else if (field === 'event') ev.event = value;
    else if (field === 'id' && !value.includes('\0')) ev.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }

  _wake() {
    const w = this._waiters;
    this._waiters = [];
    for (const f of w) f();
  }

  /** Wait until pred(this) is true (or the stream ends, or timeoutMs passes: throws). */
  async until(pred, timeoutMs = 10000, what = 'condition') {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      if (this.ended) throw new Error(`SSE ended before ${what}; got:\n${this.raw.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}; got:\n${this.raw.slice(-2000)}`);
      await within(new Promise((r) => { this._waiters.push(r); }), Math.min(left, 200));
    }
    return this;
  }

  /** Wait for at least n events. */
  waitEvents(n, timeoutMs) {
    return this.until((c) => c.events.length >= n, timeoutMs, `${n} events`);
  }

  /** Wait for the server to end the response. */
  async waitEnd(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('SSE did not end; got:\n' + this.raw.slice(-2000));
      await within(new Promise((r) => { this._waiters.push(r); }), 200);
    }
    return this;
  }

  close() {
    this.req.destroy();
    this.ended = true;
  }
}

/**
 * WebSocket wrapper with a message queue. opts: {token (?token=), query, origin,
 * autoPong (RFC 6455, default true), answerHeartbeats (send {"type":"pong"}, default
 * false)}. next() resolves with the next parsed message; closed resolves {code, reason}.
 */
export class WsClient {
  static open(srv, stream, opts = {}) {
    const q = new URLSearchParams(opts.query || {});
    if (opts.token) q.set('token', opts.token);
    const qs = q.toString() ? '?' + q : '';
    const c = new WsClient();
    const wsOpts = { autoPong: opts.autoPong ?? true, maxPayload: 256 * 1024 * 1024 };
    if (opts.origin) wsOpts.origin = opts.origin;
    c.ws = new WebSocket(srv.wsUrl + `/api/v1/${stream}/stream${qs}`, wsOpts);
    c.messages = [];
    c.raw = [];
    c._waiters = [];
    c.closed = new Promise((res) => {
      c.ws.on('close', (code, reason) => {
        c.closeInfo = { code, reason: reason.toString() };
        c._wake();
        res(c.closeInfo);
      });
    });
    c.ws.on('message', (data, isBinary) => {
      const text = data.toString();
      c.raw.push(text);
      let m;
      try { m = JSON.parse(text); } catch { m = { unparsed: text }; }
      if (m.type === 'heartbeat' && opts.answerHeartbeats)
        c.ws.send('{"type":"pong"}');
      c.messages.push(m);
      c._wake();
    });
    c.ws.on('error', (e) => { c.error = e; c._wake(); });
    c.opened = new Promise((res, rej) => {
      c.ws.on('open', () => res(c));
      c.ws.on('unexpected-response', (req, resp) => {
        c.httpStatus = resp.statusCode;
        rej(new Error('unexpected response ' + resp.statusCode));
      });
      c.ws.on('error', rej);
    });
    return c.opened;
  }

  _wake() {
    const w = this._waiters;
    this._waiters = [];
    for (const f of w) f();
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Messages other than heartbeats. */
  get data() {
    return this.messages.filter((m) => m.type !== 'heartbeat');
  }

  /** Wait until pred(this) holds; throws on timeout, or if closed first. */
  async until(pred, timeoutMs = 10000, what = 'condition') {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      if (this.closeInfo) throw new Error(`WS closed (${JSON.stringify(this.closeInfo)}) before ${what}; got ${JSON.stringify(this.messages).slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}; got ${JSON.stringify(this.messages).slice(-2000)}`);
      await within(new Promise((r) => { this._waiters.push(r); }), Math.min(left, 200));
    }
    return this;
  }

  /** Wait for at least n non-heartbeat messages. */
  waitData(n, timeoutMs) {
    return this.until((c) => c.data.length >= n, timeoutMs, `${n} messages`);
  }

  /** Wait for the close; resolves {code, reason}. */
  async waitClose(timeoutMs = 10000) {
    const r = await within(this.closed, timeoutMs);
    if (!r) throw new Error('WS not closed; got ' + JSON.stringify(this.messages).slice(-2000));
    return r;
  }

  close() {
    this.ws.close();
  }
}
