// rtlog-client.js - a small, dependency-free browser client for rtlog streams (ES module).
//
// Served by `rtlog serve` at the stable path /ui/rtlog-client.js; the run, job and
// dashboard pages use it and so can any other page of the same origin:
//
//   import { RtlogStream } from '/ui/rtlog-client.js';
//   const s = new RtlogStream({
//     stream: 'workflow-runs/demo-1',          // or 'deployment-jobs/<id>', 'dashboard'
//     token: () => sessionStorage.getItem('rtlog.token'),
//     transport: 'sse',                        // 'sse' (fetch), 'ws', or 'eventsource'
//     onEvent: (ev) => render(ev),             // each stored event once, in seq order
//     onState: (state, info) => showIndicator(state, info),
//     onReset: (info) => clearView(),          // the server could not honour our cursor
//   });
//   s.start();  ...  s.stop();
//
// What it does (realtime-api.md "Connection Management", CONTRACT.md "Resuming"):
// - resumes from the last seq it delivered: SSE sends `Last-Event-ID`, WebSocket and a
//   recreated EventSource send `?lastEventId=`; nothing is lost or shown twice across a
//   reconnect (an event at or below the last seq would be dropped and counted in
//   stats.duplicates; a seq that skips one is counted in stats.gaps - both stay 0 against
//   a correct server, and the tests assert it);
// - reconnects with exponential backoff: 1 s, 2 s, 4 s ... capped at 30 s, reset to 1 s
//   once a connection is accepted; the browser's `online` event retries at once;
// - answers WebSocket heartbeats with {"type":"pong"} and treats a connection that has
//   carried nothing (not even a heartbeat) for idleTimeoutMs as dead (a laptop that lost
//   Wi-Fi keeps a TCP connection that never closes by itself);
// - handles `reset` ({"type":"reset","earliestSeq","lastSeq"}): onReset, then the replay
//   from earliestSeq that the server sends;
// - stops for good after the sealing event (workflow_completed / job_completed) and on
//   refusals that a retry cannot fix (400, 401, 403, 404 and their WS close codes).
//
// Tokens: SSE (fetch) sends `Authorization: Bearer`, WebSocket sends a first message
// {"type":"auth","token"} (so the token is in no URL), EventSource puts `?token=` in the
// stream URL because it cannot set headers (the server never logs query strings).

/** Event types that seal a stream: nothing follows them. */
export const SEALING = new Set(['workflow_completed', 'job_completed']);

/** Every event type a stream can carry (native EventSource needs one listener per name). */
export const EVENT_TYPES = [
  'step_started', 'step_progress', 'step_log', 'step_completed', 'workflow_completed',
  'task_started', 'task_progress', 'task_log', 'task_completed', 'job_completed',
  'metric_update', 'alert', 'promotion_update', 'task_assigned', 'task_cancelled',
];

/** Delay before reconnect attempt @attempt (0-based): base * 2^attempt, at most max (ms). */
export function backoffDelay(attempt, baseMs = 1000, maxMs = 30000) {
  return Math.min(baseMs * 2 ** Math.min(attempt, 30), maxMs);
}

// HTTP statuses and WS close codes a retry can fix: busy, limits, draining, server errors.
const RETRY_HTTP = new Set([408, 425, 429, 500, 502, 503, 504]);
const FATAL_WS = new Set([4400, 4401, 4403, 4404, 4409]);

/** Connection states reported to onState (the page's indicator). */
export const STATES = ['connecting', 'catching-up', 'live', 'reconnecting', 'reset', 'ended',
  'error', 'stopped'];

export class RtlogStream {
  /**
   * opts.stream: 'workflow-runs/<id>' | 'deployment-jobs/<id>' | 'dashboard' | 'agents/<id>'
   * opts.token: string, or a function returning one (read at every connect)
   * opts.transport: 'sse' (default) | 'ws' | 'eventsource'
   * opts.after: resume after this seq (default: none, i.e. the server's default start)
   * opts.nodeId, opts.types (array): server-side filters (CONTRACT "filters")
   * opts.baseUrl: default location.origin
   * opts.idleTimeoutMs: a connection attempt unanswered, or a connection silent, this
   *   long is dropped and resumed (default 45000 = 3 heartbeats of 15 s; not for
   *   'eventsource', which hides heartbeats and reconnects by its own rules)
   * opts.quietMs: 'catching-up' turns 'live' after this long without a new event (250)
   * opts.backoffBaseMs / opts.backoffMaxMs: 1000 / 30000
   * opts.onEvent(ev), opts.onState(state, info), opts.onReset(info), opts.onError(err)
   */
  constructor(opts) {
    if (!opts || typeof opts.stream !== 'string' || !opts.stream)
      throw new TypeError('RtlogStream: opts.stream is required');
    this.opts = opts;
    this.transport = opts.transport || 'sse';
    if (!['sse', 'ws', 'eventsource'].includes(this.transport))
      throw new TypeError('RtlogStream: transport must be sse, ws or eventsource');
    this.baseUrl = opts.baseUrl || (typeof location !== 'undefined' ? location.origin : '');
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 45000;
    this.quietMs = opts.quietMs ?? 250;
    this.lastSeq = opts.after ?? 0;
    this._hasCursor = opts.after !== undefined;
    this.state = 'stopped';
    this.sealed = false;
    this.attempt = 0;
    this.stats = { connects: 0, reconnects: 0, events: 0, duplicates: 0, gaps: 0, resets: 0,
      heartbeats: 0 };
    this._gen = 0;          // connection generation: callbacks of an old one are ignored
    this._timers = new Set();
    this._close = null;     // closes the current connection
    this._retryTimer = null;
    this._onOnline = () => { if (this._retryTimer) this._retryNow(); };
  }

  /** Open the stream (idempotent while running). */
  start() {
    if (this._running) return this;
    this._running = true;
    if (typeof window !== 'undefined') window.addEventListener('online', this._onOnline);
    this._connect();
    return this;
  }

  /** Close the stream and stop reconnecting. */
  stop() {
    this._running = false;
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onOnline);
    this._teardown();
    this._setState('stopped');
  }

  // ---- shared machinery -----------------------------------------------------------------

  _setState(state, info = {}) {
    if (this.state === state && state !== 'reconnecting') return;
    this.state = state;
    this.opts.onState?.(state, info);
  }

  _token() {
    const t = typeof this.opts.token === 'function' ? this.opts.token() : this.opts.token;
    return t || '';
  }

  _filtered() {
    return Boolean(this.opts.nodeId || (this.opts.types && this.opts.types.length));
  }

  _query(extra) {
    const q = new URLSearchParams();
    if (this.opts.nodeId) q.set('nodeId', this.opts.nodeId);
    if (this.opts.types && this.opts.types.length) {
      // the sealing types always come, so the end of a sealed stream is always recognised
      const t = new Set(this.opts.types);
      for (const s of SEALING) t.add(s);
      q.set('types', [...t].join(','));
    }
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  _path() {
    return '/api/v1/' + this.opts.stream + '/stream';
  }

  _timer(fn, ms) {
    const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms);
    this._timers.add(t);
    return t;
  }

  _clearTimer(t) {
    if (t) { clearTimeout(t); this._timers.delete(t); }
  }

  _teardown() {
    this._gen++;
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    this._retryTimer = null;
    this._idle = null;
    this._quiet = null;
    const close = this._close;
    this._close = null;
    if (close) close();
  }

  _connect() {
    if (!this._running) return;
    this._teardown();
    const gen = this._gen;
    this._setState(this.stats.connects === 0 && this.stats.reconnects === 0
      ? 'connecting' : 'reconnecting', { attempt: this.attempt, connecting: true });
    // a connection attempt that gets no answer (a black-holed network) times out too
    this._armIdle(gen);
    if (this.transport === 'ws') this._openWs(gen);
    else if (this.transport === 'eventsource') this._openEventSource(gen);
    else this._openSse(gen);
  }

  /** The connection was accepted: backoff starts again at 1 s (realtime-api.md). */
  _opened(gen) {
    if (gen !== this._gen) return;
    this.attempt = 0;
    this.stats.connects++;
    this._setState('catching-up', { lastSeq: this.lastSeq });
    this._armQuiet(gen);
    this._armIdle(gen);
  }

  /** Bytes arrived (an event, a heartbeat, a comment): the connection is alive. */
  _alive(gen) {
    if (gen !== this._gen) return;
    this._aliveAt = Date.now();
    if (!this._idle) this._armIdle(gen);
  }

  // One timer per deadline, not one per message: each fires, and re-arms itself for the
  // rest of the period when something happened meanwhile (thousands of events a second
  // would otherwise each clear and set a timer).
  _armIdle(gen) {
    if (this.transport === 'eventsource' || !(this.idleTimeoutMs > 0)) return;
    this._clearTimer(this._idle);
    this._aliveAt = Date.now();
    const check = () => {
      this._idle = null;
      if (gen !== this._gen) return;
      const left = this._aliveAt + this.idleTimeoutMs - Date.now();
      if (left > 0) { this._idle = this._timer(check, left); return; }
      this._retry(gen, 'no data or heartbeat for ' + this.idleTimeoutMs + ' ms');
    };
    this._idle = this._timer(check, this.idleTimeoutMs);
  }

  _armQuiet(gen) {
    this._eventAt = Date.now();
    if (this._quiet) return;
    const check = () => {
      this._quiet = null;
      if (gen !== this._gen || this.state !== 'catching-up') return;
      const left = this._eventAt + this.quietMs - Date.now();
      if (left > 0) { this._quiet = this._timer(check, left); return; }
      this._setState('live');
    };
    this._quiet = this._timer(check, this.quietMs);
  }

  /** Schedule the next attempt (1 s doubling to 30 s). */
  _retry(gen, why) {
    if (gen !== this._gen || !this._running) return;
    this._teardown();
    const delay = backoffDelay(this.attempt, this.opts.backoffBaseMs, this.opts.backoffMaxMs);
    this.attempt++;
    this.stats.reconnects++;
    this._setState('reconnecting', { attempt: this.attempt, delayMs: delay, why,
      at: Date.now() + delay });
    this._retryTimer = this._timer(() => { this._retryTimer = null; this._connect(); }, delay);
  }

  _retryNow() {
    this._clearTimer(this._retryTimer);
    this._retryTimer = null;
    this._connect();
  }

  _fatal(gen, err) {
    if (gen !== this._gen) return;
    this._running = false;
    this._teardown();
    this._setState('error', err);
    this.opts.onError?.(err);
  }

  _ended(gen) {
    if (gen !== this._gen) return;
    this._running = false;
    this._teardown();
    this._setState('ended', { lastSeq: this.lastSeq });
  }

  /** A stored event (it carries seq): deliver it once, in order. */
  _event(gen, ev) {
    if (gen !== this._gen) return;
    const seq = ev.seq;
    if (typeof seq !== 'number') return;
    if (this._hasCursor && seq <= this.lastSeq) { this.stats.duplicates++; return; }
    if (this._hasCursor && !this._filtered() && seq !== this.lastSeq + 1) this.stats.gaps++;
    this.lastSeq = seq;
    this._hasCursor = true;
    this.stats.events++;
    if (this.state === 'catching-up') this._armQuiet(gen);
    if (SEALING.has(ev.type)) this.sealed = true;
    const wanted = !this.opts.types || !this.opts.types.length || this.opts.types.includes(ev.type);
    if (wanted) this.opts.onEvent?.(ev);
    if (this.sealed) this._ended(gen);
  }

  /** In-band {"type":"reset","earliestSeq","lastSeq"}: the replay restarts at earliestSeq. */
  _reset(gen, info) {
    if (gen !== this._gen) return;
    this.stats.resets++;
    const earliest = Number(info.earliestSeq) || 1;
    this.lastSeq = earliest - 1;
    this._hasCursor = true;
    this._setState('reset', info);
    this.opts.onReset?.(info);
    this._setState('catching-up', { lastSeq: this.lastSeq });
    this._armQuiet(gen);
  }

  /** In-band {"type":"error",...}: the server ends the connection after it. */
  _serverError(gen, msg) {
    if (gen !== this._gen) return;
    this._lastError = msg;
  }

  _refusal(status, body) {
    return { status, code: body?.code || 'http_' + status,
      message: body?.message || 'HTTP ' + status };
  }

  // ---- SSE over fetch -------------------------------------------------------------------

  async _openSse(gen) {
    const ctrl = new AbortController();
    this._close = () => ctrl.abort();
    const headers = { Accept: 'text/event-stream', Authorization: 'Bearer ' + this._token() };
    if (this._hasCursor) headers['Last-Event-ID'] = String(this.lastSeq);
    let resp;
    try {
      resp = await fetch(this.baseUrl + this._path() + this._query({}),
        { headers, signal: ctrl.signal, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      return this._retry(gen, 'network error: ' + (e && e.message));
    }
    if (gen !== this._gen) { ctrl.abort(); return; }
    if (!resp.ok) {
      let body;
      try { body = await resp.json(); } catch { body = undefined; }
      const err = this._refusal(resp.status, body);
      return RETRY_HTTP.has(resp.status) ? this._retry(gen, err.message) : this._fatal(gen, err);
    }
    this._opened(gen);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    const p = new SseParser((f) => this._sseFrame(gen, f));
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (gen !== this._gen) return;
        if (done) break;
        this._alive(gen);
        p.feed(dec.decode(value, { stream: true }));
        if (gen !== this._gen) return; // sealed, fatal or reset inside the frames
      }
    } catch (e) {
      return this._retry(gen, 'connection lost: ' + (e && e.message));
    }
    this._streamClosed(gen);
  }

  _sseFrame(gen, f) {
    if (gen !== this._gen) return;
    let msg;
    try { msg = JSON.parse(f.data); } catch { return; }
    if (f.event === 'reset') this._reset(gen, msg);
    else if (f.event === 'error') this._serverError(gen, msg);
    else this._event(gen, msg);
  }

  /** The server ended the response or closed the socket without a sealing event. */
  _streamClosed(gen) {
    if (gen !== this._gen) return;
    const e = this._lastError;
    this._lastError = null;
    if (e && ['unauthorized', 'forbidden', 'not_found', 'bad_request'].includes(e.code))
      return this._fatal(gen, { status: 0, code: e.code, message: e.message });
    this._retry(gen, e ? e.message : 'stream closed by the server');
  }

  // ---- WebSocket ------------------------------------------------------------------------

  _openWs(gen) {
    const base = this.baseUrl.replace(/^http/, 'ws');
    const q = this._hasCursor ? { lastEventId: String(this.lastSeq) } : {};
    let ws;
    try {
      ws = new WebSocket(base + this._path() + this._query(q));
    } catch (e) {
      return this._retry(gen, 'cannot open WebSocket: ' + (e && e.message));
    }
    this._close = () => {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* already closed */ }
    };
    ws.onopen = () => {
      if (gen !== this._gen) return;
      ws.send(JSON.stringify({ type: 'auth', token: this._token() }));
      this._opened(gen);
    };
    ws.onmessage = (m) => {
      if (gen !== this._gen) return;
      this._alive(gen);
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.type === 'heartbeat') {
        this.stats.heartbeats++;
        ws.send('{"type":"pong"}');
      } else if (msg.type === 'reset' && msg.seq === undefined) {
        this._reset(gen, msg);
      } else if (msg.type === 'error' && msg.seq === undefined) {
        this._serverError(gen, msg);
      } else {
        this._event(gen, msg);
      }
    };
    ws.onclose = (c) => {
      if (gen !== this._gen) return;
      const e = this._lastError;
      this._lastError = null;
      if (FATAL_WS.has(c.code))
        return this._fatal(gen, { status: c.code - 4000, code: e?.code || 'closed_' + c.code,
          message: e?.message || c.reason || 'closed ' + c.code });
      this._retry(gen, 'WebSocket closed ' + c.code + (e ? ': ' + e.message : ''));
    };
  }

  // ---- native EventSource (?token=) ---------------------------------------------------------

  _openEventSource(gen) {
    // The browser reconnects an EventSource by itself after a network error, sending
    // Last-Event-ID; only when it gives up (readyState CLOSED: an HTTP error status) does
    // this client take over with its backoff and ?lastEventId=.
    const q = { token: this._token() };
    if (this._hasCursor) q.lastEventId = String(this.lastSeq);
    const es = new EventSource(this.baseUrl + this._path() + this._query(q));
    this._close = () => es.close();
    let everOpen = false;
    es.onopen = () => {
      if (gen !== this._gen) return;
      if (everOpen) this.stats.reconnects++; // the browser's own reconnect succeeded
      everOpen = true;
      this._opened(gen);
    };
    const onData = (name) => (e) => {
      if (gen !== this._gen) return;
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (name === 'reset') this._reset(gen, msg);
      else this._event(gen, msg);
    };
    for (const t of [...EVENT_TYPES, 'message']) es.addEventListener(t, onData(t));
    es.addEventListener('reset', onData('reset'));
    es.addEventListener('error', (e) => {
      if (gen !== this._gen) return;
      if (typeof e.data === 'string' && e.data) { // the server's `event: error`
        try { this._serverError(gen, JSON.parse(e.data)); } catch { /* not JSON */ }
        return;
      }
      if (es.readyState === EventSource.CONNECTING) {
        this._setState('reconnecting', { attempt: this.attempt, why: 'browser reconnecting',
          native: true });
        return;
      }
      es.close();
      const err = this._lastError;
      this._lastError = null;
      if (err && ['unauthorized', 'forbidden', 'not_found', 'bad_request'].includes(err.code))
        return this._fatal(gen, { status: 0, code: err.code, message: err.message });
      this._retry(gen, 'EventSource failed' + (err ? ': ' + err.message : ''));
    });
  }
}

/**
 * WHATWG Server-Sent Events parser (https://html.spec.whatwg.org/#event-stream-interpretation):
 * lines end with CRLF, LF or CR; `field: value`; a blank line dispatches. Comments (the
 * server's `: heartbeat`) are skipped. onFrame({event, data, id}) for each event with data.
 */
export class SseParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buf = '';
    this.data = [];
    this.event = '';
    this.id = undefined;
  }

  feed(text) {
    this.buf += text;
    let start = 0;
    for (;;) {
      const m = /\r\n|\r|\n/g;
      m.lastIndex = start;
      const hit = m.exec(this.buf);
      if (!hit) break;
      // a CR at the very end may be the first half of CRLF: wait for the next chunk
      if (hit[0] === '\r' && hit.index === this.buf.length - 1) break;
      this._line(this.buf.slice(start, hit.index));
      start = hit.index + hit[0].length;
    }
    this.buf = this.buf.slice(start);
  }

  _line(line) {
    if (line === '') {
      if (this.data.length)
        this.onFrame({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.data = [];
      this.event = '';
      this.id = undefined;
      return;
    }
    if (line[0] === ':') return;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}
