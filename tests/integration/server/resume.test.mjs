// resume.test.mjs - resuming with a cursor (catch-up, then live, no gap, no duplicate):
// handed.md C02 (a)-(f) on the run, job and dashboard streams over SSE and WS; C03 the cursor
// values matrix (every value: 400 or its documented meaning; the server survives); a cursor
// beyond the head gives an in-band reset then a full replay; filters nodeId/types; follow=false.
// CONTRACT "Resuming (catch-up, then live)", "Streams and event ids".
import { test, describe, before, after } from 'node:test';

// ---- BEGIN shared itest helpers --------------------------------------------------------
// The same block is in every tests/integration/server/*.test.mjs written for the full
// CONTRACT matrix (see README.md there): it belongs in lib/ (e.g. lib/itest.mjs), which
// this file's owner does not own; until it moves, keep the copies identical.
// Real clients only: npm `ws` (through lib/harness.mjs, which loads tests/clients), raw
// node:http / node:net for SSE bytes and malformed input, jose for tokens. A WHATWG-
// conformant SSE parser is here so tests see exactly what a browser would (ids, retry,
// comments, the Last-Event-ID it would send).
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { WebSocket, jose, startServer } from './lib/harness.mjs';

const { SignJWT } = jose;

/**
 * Start `rtlog serve` through the harness, with the names these tests use: srv.base and
 * srv.wsBase (URLs), srv.key (the data directory's HS256 secret, raw bytes), srv.output()
 * (stdout + stderr so far). The temp data directory goes when the test process exits.
 */
async function start(opts = {}) {
    const s = await startServer(opts);
    s.base = s.url;
    s.wsBase = s.wsUrl;
    s.key = fs.existsSync(`${s.dataDir}/jwt-secret`) ? s.secret() : undefined;
    s.output = () => s.out + s.err;
    process.once('exit', () => { try { s.cleanup(); } catch {} });
    return s;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll @pred (sync or async) every @step ms until truthy or @ms elapse; throws naming @what. */
async function waitUntil(pred, ms, what, step = 25) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(step);
    }
}

/** Resolve @p or reject after @ms with a message naming @what. */
function within(p, ms, what) {
    let t;
    return Promise.race([
        p.finally(() => clearTimeout(t)),
        new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
    ]);
}

// ---- tokens -------------------------------------------------------------------------------
const nowS = () => Math.floor(Date.now() / 1000);
const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** HS256 (or @alg with @key) token with the `rtlog` access claim. */
async function mint(key, { sub = 'tester', subscribe = ['*'], publish = ['*'], ttl = 600,
    exp, nbf, iss, aud, alg = 'HS256', header = {}, claims = {} } = {}) {
    const body = { sub, rtlog: { subscribe, publish }, ...claims };
    let j = new SignJWT(body).setProtectedHeader({ alg, typ: 'JWT', ...header }).setIssuedAt();
    j = j.setExpirationTime(exp !== undefined ? exp : nowS() + ttl);
    if (nbf !== undefined) j = j.setNotBefore(nbf);
    if (iss !== undefined) j = j.setIssuer(iss);
    if (aud !== undefined) j = j.setAudience(aud);
    return j.sign(key);
}

/** A token assembled by hand: header and payload objects (or strings), signature given. */
function rawJwt(header, payload, sig = '') {
    return `${b64u(header)}.${b64u(payload)}.${sig}`;
}
/** HMAC-SHA256 a hand-built token with arbitrary key bytes (for alg-confusion tests). */
function hs256Raw(header, payload, keyBytes) {
    const input = `${b64u(header)}.${b64u(payload)}`;
    return `${input}.${crypto.createHmac('sha256', keyBytes).update(input).digest('base64url')}`;
}

// ---- plain HTTP ---------------------------------------------------------------------------
/** POST events to @stream ("workflow-runs/x", "dashboard", ...). @body: string or object. */
async function post(srv, stream, body, { token, ndjson = false, query = '', headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    h['content-type'] = ndjson ? 'application/x-ndjson' : 'application/json';
    const res = await fetch(`${srv.base}/api/v1/${stream}/events${query}`, {
        method: 'POST', headers: h, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, json, text, headers: res.headers };
}

/** POST and insist on 201; returns the parsed {stream, firstSeq, lastSeq}. */
async function post201(srv, stream, body, opts) {
    const r = await post(srv, stream, body, opts);
    assert.equal(r.status, 201, `POST ${stream}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
}

/** GET a path, body read in full. */
async function get(srv, path, headers = {}) {
    const res = await fetch(`${srv.base}${path}`, { headers });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
}

/**
 * Send raw bytes on a fresh TCP connection and collect the reply until the server closes or
 * @ms pass. Returns {status, head, headers, body, raw, closed}. status 0 = no HTTP response.
 */
function rawHttp(srv, bytes, { ms = 5000, until } = {}) {
    return new Promise((resolve) => {
        const s = net.connect(srv.port, '127.0.0.1');
        const chunks = [];
        let done = false;
        const finish = (closed) => {
            if (done) return;
            done = true;
            clearTimeout(t);
            s.destroy();
            const raw = Buffer.concat(chunks);
            const str = raw.toString('latin1');
            const i = str.indexOf('\r\n\r\n');
            const head = i >= 0 ? str.slice(0, i) : '';
            const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
            const headers = {};
            for (const line of head.split('\r\n').slice(1)) {
                const k = line.indexOf(':');
                if (k > 0) headers[line.slice(0, k).trim().toLowerCase()] = line.slice(k + 1).trim();
            }
            resolve({ status: m ? Number(m[1]) : 0, head, headers, raw,
                body: i >= 0 ? raw.subarray(i + 4).toString('utf8') : '', closed });
        };
        const t = setTimeout(() => finish(false), ms);
        s.on('data', (d) => {
            chunks.push(d);
            const all = Buffer.concat(chunks);
            if (until && until(all)) return finish(false);
            // A complete response with a Content-Length: no need to wait for the close.
            const i = all.indexOf('\r\n\r\n');
            if (i < 0) return;
            const m = /\r\ncontent-length:\s*(\d+)/i.exec(all.subarray(0, i).toString('latin1'));
            if (m && all.length - (i + 4) >= Number(m[1])) finish(false);
        });
        s.on('end', () => finish(true));
        s.on('error', () => finish(true));
        s.on('connect', () => s.write(bytes));
    });
}

/** Body of a chunked HTTP response as text (for raw replies). */
function dechunk(body) {
    let out = '', rest = body;
    for (;;) {
        const i = rest.indexOf('\r\n');
        if (i < 0) return out;
        const n = parseInt(rest.slice(0, i), 16);
        if (!n) return out;
        out += rest.slice(i + 2, i + 2 + n);
        rest = rest.slice(i + 2 + n + 2);
    }
}

// ---- errors -------------------------------------------------------------------------------
const CODES = ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'conflict',
    'rate_limited', 'internal_error'];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const isRfc3339 = (s) => typeof s === 'string' && RFC3339.test(s) && !Number.isNaN(Date.parse(s));

/** Assert @j is {"type":"error","code":@code,"message":str,"timestamp":RFC3339} (+ @extra keys). */
function assertErrorShape(j, code, what = '', extra = []) {
    assert.ok(j && typeof j === 'object', `${what}: error body is not JSON: ${JSON.stringify(j)}`);
    assert.equal(j.type, 'error', `${what}: type`);
    if (code) assert.equal(j.code, code, `${what}: code (message: ${j.message})`);
    else assert.ok(CODES.includes(j.code), `${what}: code ${j.code} is not a contract code`);
    assert.equal(typeof j.message, 'string', `${what}: message`);
    assert.ok(j.message.length > 0, `${what}: empty message`);
    assert.ok(isRfc3339(j.timestamp), `${what}: timestamp ${j.timestamp}`);
    assert.ok(!('seq' in j), `${what}: an error carries a seq`);
    const allowed = ['type', 'code', 'message', 'timestamp', ...extra];
    for (const k of Object.keys(j)) assert.ok(allowed.includes(k), `${what}: unexpected key ${k}`);
}

/** Assert an HTTP reply is status @status with the JSON error body of @code, not a stream. */
function assertHttpError(r, status, code, what = '') {
    assert.equal(r.status, status, `${what}: status ${r.status}, body ${String(r.text ?? r.body).slice(0, 300)}`);
    const ct = r.headers.get ? r.headers.get('content-type') : r.headers['content-type'];
    assert.match(ct || '', /^application\/json/, `${what}: content-type ${ct}`);
    assertErrorShape(r.json ?? JSON.parse(r.body), code, what);
}

// ---- SSE: a WHATWG "event stream interpretation" parser -------------------------------------
/** Incremental parser per html.spec.whatwg.org server-sent events; feed bytes, get events. */
class SseParser {
    constructor() {
        this.dec = new TextDecoder('utf-8'); // replacement on bad bytes, as browsers do
        this.buf = '';
        this.first = true;
        this.sawCr = false;
        this.data = '';
        this.type = '';
        this.lastIdBuf = '';
        this.lastEventId = ''; // the EventSource's "last event ID string"
        this.retry = null;
        this.events = []; // {type, data, lastEventId, idField}
        this.comments = [];
        this.fields = []; // every field line seen: {name, value}
        this.curId = undefined; // id field of the event being built (undefined = none)
    }
    feed(bytes) {
        let s = this.dec.decode(bytes, { stream: true });
        if (this.first && s.length) { if (s.charCodeAt(0) === 0xfeff) s = s.slice(1); this.first = false; }
        if (this.sawCr && s.startsWith('\n')) s = s.slice(1);
        this.sawCr = false;
        this.buf += s;
        for (;;) {
            const m = /\r\n|\r|\n/.exec(this.buf);
            if (!m) break;
            if (m[0] === '\r' && m.index === this.buf.length - 1) { // CR at the end: maybe CRLF
                this.line(this.buf.slice(0, m.index));
                this.buf = '';
                this.sawCr = true;
                break;
            }
            this.line(this.buf.slice(0, m.index));
            this.buf = this.buf.slice(m.index + m[0].length);
        }
    }
    line(l) {
        if (l === '') return this.dispatch();
        if (l[0] === ':') { this.comments.push(l.slice(1)); return; }
        const i = l.indexOf(':');
        let name = l, value = '';
        if (i >= 0) { name = l.slice(0, i); value = l.slice(i + 1); if (value[0] === ' ') value = value.slice(1); }
        this.fields.push({ name, value });
        if (name === 'event') this.type = value;
        else if (name === 'data') this.data += value + '\n';
        else if (name === 'id') { if (!value.includes('\0')) { this.lastIdBuf = value; this.curId = value; } }
        else if (name === 'retry') { if (/^[0-9]+$/.test(value)) this.retry = Number(value); }
    }
    dispatch() {
        this.lastEventId = this.lastIdBuf;
        if (this.data === '') { this.type = ''; this.curId = undefined; return; }
        const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
        this.events.push({ type: this.type || 'message', data, lastEventId: this.lastEventId, idField: this.curId });
        this.data = '';
        this.type = '';
        this.curId = undefined;
    }
}

/**
 * Open an SSE stream with node:http. @path is under /api/v1/ ("workflow-runs/x/stream?..").
 * Returns a client: {status, headers, json (error body), p (SseParser), raw [Buffer],
 * opened (Promise), ended (Promise), waitEvents(n, ms), close()}.
 */
function sseOpen(srv, path, { token, query = 'header', lastEventId, headers = {}, rawHeaders } = {}) {
    const h = { accept: 'text/event-stream', ...headers };
    let p = `/api/v1/${path}`;
    if (token && query === 'header') h.authorization = `Bearer ${token}`;
    if (token && query === 'query') p += (p.includes('?') ? '&' : '?') + `token=${encodeURIComponent(token)}`;
    if (lastEventId !== undefined) h['last-event-id'] = String(lastEventId);
    const c = { status: 0, headers: {}, p: new SseParser(), raw: [], text: '', json: undefined, done: false,
        bytes: 0, firstByteAt: 0 };
    let resOpen, resEnd;
    c.opened = new Promise((r) => { resOpen = r; });
    c.ended = new Promise((r) => { resEnd = r; });
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: p, method: 'GET',
        headers: rawHeaders ?? h, agent: false });
    c.req = req;
    req.on('response', (res) => {
        c.res = res;
        c.status = res.statusCode;
        c.headers = res.headers;
        resOpen(c);
        res.on('data', (d) => {
            if (!c.firstByteAt) c.firstByteAt = Date.now();
            c.bytes += d.length;
            c.raw.push(d);
            if (c.status === 200) c.p.feed(d);
            else c.text += d.toString('utf8');
        });
        res.on('end', () => { c.done = true; if (c.status !== 200) { try { c.json = JSON.parse(c.text); } catch {} } resEnd(c); });
        res.on('error', () => { c.done = true; resEnd(c); });
        res.on('close', () => { c.done = true; resEnd(c); });
    });
    req.on('error', (e) => { c.error = e; c.done = true; resOpen(c); resEnd(c); });
    req.end();
    c.events = () => c.p.events;
    c.json_events = () => c.p.events.filter((e) => e.type !== 'error' && e.type !== 'reset').map((e) => JSON.parse(e.data));
    c.waitEvents = (n, ms = 10000) => waitUntil(() => c.p.events.length >= n || (c.done && c.p.events.length < n && Promise.reject(new Error(`SSE ended with ${c.p.events.length} < ${n} events`))), ms, `${n} SSE events on ${path} (have ${c.p.events.length})`);
    c.close = () => { req.destroy(); c.res?.destroy(); };
    return c;
}

/** Check an SSE client's stored events: id == seq in the JSON, strictly increasing, event == type. */
function assertSseFrames(c, what = '') {
    let prev = 0;
    for (const e of c.p.events) {
        const j = JSON.parse(e.data);
        if (e.type === 'reset' || e.type === 'error') {
            assert.equal(e.idField, undefined, `${what}: ${e.type} event carries an id`);
            assert.ok(!('seq' in j), `${what}: ${e.type} carries a seq`);
            continue;
        }
        assert.equal(e.type, j.type, `${what}: event: line ${e.type} vs type ${j.type}`);
        assert.match(e.idField ?? '', /^[1-9][0-9]*$/, `${what}: id line`);
        assert.equal(Number(e.idField), j.seq, `${what}: id ${e.idField} != seq ${j.seq}`);
        assert.ok(j.seq > prev, `${what}: seq ${j.seq} after ${prev}`);
        prev = j.seq;
    }
    for (const f of c.p.fields) {
        if (f.name === 'id') assert.match(f.value, /^[0-9]+$/, `${what}: id field ${JSON.stringify(f.value)}`);
        if (f.name === 'retry') assert.match(f.value, /^[0-9]+$/, `${what}: retry field ${JSON.stringify(f.value)}`);
    }
}

// ---- WebSocket ----------------------------------------------------------------------------
/**
 * Open a WebSocket with npm `ws`. Returns {ws, msgs (parsed JSON), raw, http (status/body if the
 * upgrade was refused), opened, closed (Promise {code, reason}), waitMsgs(n, ms), waitFor(pred)}.
 */
function wsOpen(srv, path, { token, lastEventId, query = '', headers = {}, autoPong = true,
    onMessage, maxPayload = 256 * 1024 * 1024 } = {}) {
    const qs = [];
    if (token) qs.push(`token=${encodeURIComponent(token)}`);
    if (lastEventId !== undefined) qs.push(`lastEventId=${encodeURIComponent(lastEventId)}`);
    if (query) qs.push(query);
    const url = `${srv.wsBase}/api/v1/${path}${qs.length ? (path.includes('?') ? '&' : '?') + qs.join('&') : ''}`;
    const ws = new WebSocket(url, { headers, autoPong, maxPayload, perMessageDeflate: false });
    const c = { ws, msgs: [], raw: [], http: null, code: null, reason: '', pings: 0, isOpen: false };
    let resOpen, resClose;
    c.opened = new Promise((r) => { resOpen = r; });
    c.closed = new Promise((r) => { resClose = r; });
    ws.on('open', () => { c.isOpen = true; resOpen(c); });
    ws.on('ping', () => { c.pings++; });
    ws.on('message', (data, isBinary) => {
        const s = data.toString('utf8');
        c.raw.push({ s, isBinary });
        let j;
        try { j = JSON.parse(s); } catch { j = { unparsable: s }; }
        c.msgs.push(j);
        if (onMessage) onMessage(j, c);
    });
    ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
            let json;
            try { json = JSON.parse(body); } catch {}
            c.http = { status: res.statusCode, headers: res.headers, body, json };
            resOpen(c);
            resClose({ code: null, reason: '', http: c.http });
        });
        req.destroy();
    });
    ws.on('error', (e) => { c.error = e; });
    ws.on('close', (code, reason) => {
        c.code = code;
        c.reason = reason.toString();
        resOpen(c);
        resClose({ code, reason: c.reason });
    });
    c.events = () => c.msgs.filter((m) => typeof m.seq === 'number');
    c.waitMsgs = (n, ms = 10000) => waitUntil(() => c.msgs.length >= n, ms, `${n} WS messages on ${path} (have ${c.msgs.length})`);
    c.waitEvents = (n, ms = 10000) => waitUntil(() => c.events().length >= n, ms, `${n} WS events on ${path} (have ${c.events().length})`);
    c.waitFor = (pred, ms = 10000, what = 'a WS message') => waitUntil(() => c.msgs.find(pred), ms, what);
    c.send = (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o));
    c.close = () => { try { ws.terminate(); } catch {} };
    return c;
}

/**
 * The server's refusal of a WS request: either an HTTP error before the upgrade or, on an open
 * socket, the error JSON followed by close 4000+status (CONTRACT "Errors and limits"). Asserts
 * one of those with @status/@code and that no event was delivered. Returns the error JSON.
 */
async function assertWsRefused(c, status, code, what = '', ms = 10000) {
    const cl = await within(c.closed, ms, `${what}: WS refusal`);
    if (cl.http) {
        assert.equal(cl.http.status, status, `${what}: HTTP ${cl.http.status} ${cl.http.body.slice(0, 200)}`);
        assertErrorShape(cl.http.json, code, what);
        return cl.http.json;
    }
    const errs = c.msgs.filter((m) => m.type === 'error');
    assert.equal(c.events().length, 0, `${what}: events delivered before the refusal`);
    assert.equal(errs.length, 1, `${what}: expected one error message, got ${JSON.stringify(c.msgs).slice(0, 300)}`);
    assertErrorShape(errs[0], code, what);
    assert.equal(cl.code, status === 500 ? 1011 : 4000 + status, `${what}: close code ${cl.code} (${cl.reason})`);
    return errs[0];
}

// ---- raw WebSocket frames (what ws cannot be made to send) ----------------------------------
/** Build one client frame (masked). @opcode 1 text, 2 binary, 0 continuation, 8 close, 9 ping, 10 pong. */
function wsFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, lenOverride } = {}) {
    const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const len = lenOverride ?? BigInt(p.length);
    let hdr;
    const b0 = (fin ? 0x80 : 0) | opcode;
    const m = mask ? 0x80 : 0;
    if (len < 126n) hdr = Buffer.from([b0, m | Number(len)]);
    else if (len < 65536n) { hdr = Buffer.alloc(4); hdr[0] = b0; hdr[1] = m | 126; hdr.writeUInt16BE(Number(len), 2); }
    else { hdr = Buffer.alloc(10); hdr[0] = b0; hdr[1] = m | 127; hdr.writeBigUInt64BE(len, 2); }
    if (!mask) return Buffer.concat([hdr, p]);
    const key = crypto.randomBytes(4);
    const body = Buffer.alloc(p.length);
    for (let i = 0; i < p.length; i++) body[i] = p[i] ^ key[i & 3];
    return Buffer.concat([hdr, key, body]);
}

/**
 * A raw WS client over node:net: handshake, then parse server frames. Returns
 * {sock, status, msgs (text payloads as strings), closeCode, closed (Promise), send(buf)}.
 */
function wsRaw(srv, path, { headers = {} } = {}) {
    const key = crypto.randomBytes(16).toString('base64');
    const sock = net.connect(srv.port, '127.0.0.1');
    const c = { sock, status: 0, msgs: [], closeCode: null, closeReason: '', pings: 0, ended: false, headBuf: '' };
    let buf = Buffer.alloc(0), upgraded = false, frag = [];
    let resUp, resClose;
    c.upgraded = new Promise((r) => { resUp = r; });
    c.closed = new Promise((r) => { resClose = r; });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    sock.on('connect', () => sock.write(`GET /api/v1/${path} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`));
    sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (!upgraded) {
            const i = buf.indexOf('\r\n\r\n');
            if (i < 0) return;
            c.headBuf = buf.subarray(0, i).toString('latin1');
            c.status = Number(/^HTTP\/1\.1 (\d+)/.exec(c.headBuf)?.[1] ?? 0);
            buf = buf.subarray(i + 4);
            upgraded = true;
            resUp(c);
            if (c.status !== 101) { c.httpBody = buf.toString(); return; }
        }
        if (c.status !== 101) { c.httpBody += d.toString(); return; }
        for (;;) {
            if (buf.length < 2) return;
            const op = buf[0] & 0x0f, fin = !!(buf[0] & 0x80);
            let len = buf[1] & 0x7f, off = 2;
            if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
            else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
            if (buf.length < off + len) return;
            const pl = buf.subarray(off, off + len);
            buf = buf.subarray(off + len);
            if (op === 8) {
                c.closeCode = pl.length >= 2 ? pl.readUInt16BE(0) : 1005;
                c.closeReason = pl.subarray(2).toString();
                try { sock.write(wsFrame(8, pl.subarray(0, 2))); } catch {}
                sock.end();
            } else if (op === 9) { c.pings++; try { sock.write(wsFrame(10, pl)); } catch {} }
            else if (op === 10) { /* pong */ }
            else {
                frag.push(Buffer.from(pl));
                if (fin) { c.msgs.push(Buffer.concat(frag).toString('utf8')); frag = []; }
            }
        }
    });
    const end = () => { if (c.ended) return; c.ended = true; resUp(c); resClose(c); };
    sock.on('close', end);
    sock.on('error', (e) => { c.error = e; end(); });
    c.send = (b) => new Promise((r) => { if (sock.destroyed) return r(false); sock.write(b, (e) => r(!e)); });
    c.json = () => c.msgs.map((s) => { try { return JSON.parse(s); } catch { return { unparsable: s }; } });
    c.close = () => sock.destroy();
    return c;
}

// ---- events for tests -----------------------------------------------------------------------
/**
 * @n valid events of a stream kind; the i-th is distinguishable by its content. Types whose
 * seed shape has no timestamp (step_progress, task_*, promotion_update) get none unless @ts.
 */
function makeEvents(kind, n, { startAt = 1, node = 'build', pad = 0, ts = false } = {}) {
    if (ts) {
        return makeEvents(kind, n, { startAt, node, pad })
            .map((e) => ('timestamp' in e ? e : { ...e, timestamp: '2026-01-10T14:23:46Z' }));
    }
    const out = [];
    for (let k = 0; k < n; k++) {
        const i = startAt + k;
        const fill = pad ? 'x'.repeat(pad) : '';
        if (kind === 'workflow-runs') {
            if (i % 3 === 1) out.push({ type: 'step_log', nodeId: node, line: `line ${i} ${fill}`, level: 'info', timestamp: '2026-01-10T14:23:50Z' });
            else if (i % 3 === 2) out.push({ type: 'step_progress', nodeId: node, progress: i % 101, message: `p ${i}` });
            else out.push({ type: 'step_started', nodeId: `${node}-${i}`, stepType: 'script', timestamp: '2026-01-10T14:23:45Z' });
        } else if (kind === 'deployment-jobs') {
            if (i % 2) out.push({ type: 'task_log', taskId: 't1', line: `job line ${i} ${fill}`, level: 'info' });
            else out.push({ type: 'task_progress', taskId: 't1', progress: i % 101, message: `jp ${i}` });
        } else if (kind === 'dashboard') {
            if (i % 2) out.push({ type: 'alert', alert: { id: `a${i}`, severity: 'warning', title: `t${i}`, message: `m ${i} ${fill}`, resourceType: 'deployment', resourceId: 'r', timestamp: '2026-01-10T14:23:45Z' } });
            else out.push({ type: 'promotion_update', promotion: { id: `p${i}`, releaseName: 'app-v1', targetEnvironment: 'Production', status: 'awaiting_approval', requestedBy: 'J D' } });
        } else throw new Error(`kind ${kind}`);
    }
    return out;
}
const metricUpdate = (i) => ({ type: 'metric_update', metrics: { pipelineStatus: [], pendingApprovals: i,
    activeDeployments: 1, recentReleases: 12, systemHealth: { agentsOnline: 8, agentsTotal: 10, queueDepth: 5 } },
timestamp: '2026-01-10T14:23:45Z' });
const sealEvent = (kind) => kind === 'workflow-runs'
    ? { type: 'workflow_completed', status: 'succeeded', duration: 125.5, outputs: { deploymentId: 'd' }, timestamp: '2026-01-10T14:25:50Z' }
    : { type: 'job_completed', status: 'succeeded', targetsDeployed: 4, targetsFailed: 0, duration: 180.5, timestamp: '2026-01-10T14:26:45Z' };

/**
 * Assert a delivered event equals what was posted: same fields in the same order, a
 * server-filled RFC 3339 `timestamp` appended when the producer sent none, `seq` last.
 */
function assertDelivered(got, posted, seq, what = '') {
    const keys = Object.keys(posted);
    const want = { ...posted };
    if (!('timestamp' in posted)) {
        assert.ok(isRfc3339(got.timestamp), `${what}: server-filled timestamp ${got.timestamp}`);
        want.timestamp = got.timestamp;
        keys.push('timestamp');
    }
    want.seq = seq;
    keys.push('seq');
    assert.deepStrictEqual(got, want, `${what}: seq ${seq}`);
    assert.deepStrictEqual(Object.keys(got), keys, `${what}: key order at seq ${seq}`);
}

/** VmRSS and RssAnon of a process in bytes. */
function rss(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { vm: kb('VmRSS'), anon: kb('RssAnon') };
}

/** Is process @pid alive? */
function alive(pid) {
    try { process.kill(pid, 0); return true; } catch { return false; }
}
// ---- END shared itest helpers ----------------------------------------------------------

const RUN = 'workflow-runs';
let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '1'] });
    tok = await mint(srv.key, { sub: 'resume' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

/** A stream under test with everything ever posted to it, so deliveries can be compared. */
function tracked(name, kind) {
    const s = { name, kind, posted: [] };
    s.append = async (events) => {
        const r = await post201(srv, name, events, { token: tok });
        assert.equal(r.firstSeq, s.posted.length + 1);
        s.posted.push(...events);
        return r;
    };
    s.head = () => s.posted.length;
    // Every event here carries its timestamp: the server-filled one is ingest.test.mjs's concern.
    s.next = () => kind === 'dashboard' ? makeEvents('dashboard', 1, { startAt: 2 * s.head() + 1, ts: true })
        : makeEvents(kind, 1, { startAt: s.head() + 1, ts: true });
    return s;
}

/**
 * Open a subscriber (@how 'sse' | 'ws'), wait for the replayed part (@expect seqs before the
 * append), append one event, wait for it, and assert the subscriber saw exactly @expect
 * followed by the new seq, each equal to what was posted.
 */
async function resumeCase(s, how, opts, expect, what) {
    const c = how === 'sse' ? sseOpen(srv, `${s.name}/stream${opts.query ?? ''}`, { token: tok, lastEventId: opts.header })
        : wsOpen(srv, `${s.name}/stream${opts.query ?? ''}`, { token: tok });
    await c.opened;
    if (how === 'sse') assert.equal(c.status, 200, `${what}: ${c.status} ${c.text}`);
    await c.waitEvents(expect.length);
    await sleep(200);
    const nextSeq = s.head() + 1;
    await s.append(s.next());
    await c.waitEvents(expect.length + 1);
    await sleep(300);
    const got = how === 'sse' ? c.json_events() : c.events();
    assert.deepEqual(got.map((e) => e.seq), [...expect, nextSeq], `${what}: seqs`);
    for (const e of got) assertDelivered(e, s.posted[e.seq - 1], e.seq, what);
    if (how === 'sse') assertSseFrames(c, what);
    else for (const m of c.msgs) assert.ok(typeof m.seq === 'number' || m.type === 'heartbeat', `${what}: ${JSON.stringify(m)}`);
    c.close();
}
const range = (a, b) => Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);

describe('C02 resume matrix', () => {
    for (const kind of [RUN, 'deployment-jobs', 'dashboard']) {
        test(`${kind}: (a) at head, (b) mid, (c) 0, (d) none, (e) WS mid, (f) header wins over query`, { timeout: 60000 }, async () => {
            const s = tracked(kind === 'dashboard' ? 'dashboard' : `${kind}/c02`, kind);
            if (kind === 'dashboard') {
                // metric_update at seq 1 and 6: a dashboard without cursor starts at seq 6.
                const ev = makeEvents('dashboard', 10, { ts: true });
                ev[0] = metricUpdate(1);
                ev[5] = metricUpdate(6);
                await s.append(ev);
            } else await s.append(makeEvents(kind, 10, { ts: true }));
            let H = s.head();
            await resumeCase(s, 'sse', { header: H }, [], '(a) Last-Event-ID = head');
            H = s.head();
            await resumeCase(s, 'sse', { header: H - 6 }, range(H - 5, H), '(b) Last-Event-ID = head-6');
            H = s.head();
            await resumeCase(s, 'sse', { header: 0 }, range(1, H), '(c) Last-Event-ID 0');
            H = s.head();
            // (d) documented default: run and job from seq 1; dashboard from its latest metric_update.
            await resumeCase(s, 'sse', {}, kind === 'dashboard' ? range(6, H) : range(1, H), '(d) no cursor');
            H = s.head();
            await resumeCase(s, 'ws', { query: `?lastEventId=${H - 6}` }, range(H - 5, H), '(e) WS lastEventId');
            H = s.head();
            await resumeCase(s, 'ws', {}, kind === 'dashboard' ? range(6, H) : range(1, H), '(d) WS no cursor');
            H = s.head();
            await resumeCase(s, 'sse', { header: H - 6, query: `?lastEventId=${H - 2}` }, range(H - 5, H), '(f) header wins');
            H = s.head();
            await resumeCase(s, 'sse', { query: `?lastEventId=${H - 3}` }, range(H - 2, H), 'SSE query cursor');
        });
    }

    test('dashboard with no metric_update yet: live only (fresh server)', async () => {
        const s2 = await start({ args: ['--heartbeat', '1'] });
        const t = await mint(s2.key, { sub: 'dash' });
        await post201(s2, 'dashboard', makeEvents('dashboard', 3), { token: t });
        const c = sseOpen(s2, 'dashboard/stream', { token: t });
        await c.opened;
        await sleep(500);
        await post201(s2, 'dashboard', makeEvents('dashboard', 1, { startAt: 9 }), { token: t });
        await c.waitEvents(1);
        await sleep(300);
        assert.deepEqual(c.json_events().map((e) => e.seq), [4]);
        c.close();
        assert.equal((await s2.stop()).code, 0);
    });
});

describe('C03 cursor values', () => {
    const stream = `${RUN}/c03`;
    before(async () => { await post201(srv, stream, makeEvents(RUN, 10), { token: tok }); });

    /** Raw SSE request with a literal Last-Event-ID header line (bytes as given). */
    async function sseRaw(headerLines) {
        const head = Buffer.concat([Buffer.from(`GET /api/v1/${stream}/stream?follow=false HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            `Accept: text/event-stream\r\nAuthorization: Bearer ${tok}\r\n`), ...headerLines.map((l) => Buffer.concat([Buffer.from('Last-Event-ID:'), l, Buffer.from('\r\n')])),
        Buffer.from('\r\n')]);
        const r = await rawHttp(srv, head, { ms: 8000 });
        let body = r.body;
        if (/chunked/i.test(r.headers['transfer-encoding'] ?? '')) body = dechunk(body);
        const p = new SseParser();
        if (r.status === 200) p.feed(Buffer.from(body));
        return { ...r, p, body };
    }
    const B = (s) => Buffer.from(s, 'utf8');
    const bad = ['1:', '+5', '-1', '0x0A', '1e3', '5.0', '18446744073709551615', '18446744073709551616',
        '9223372036854775808', '99999999999999999999999999', 'abc', '５', '9'.repeat(8192), '5,6', '5 6'];
    const good = [['', range(1, 10)], [' 5', range(6, 10)], ['5 ', range(6, 10)], ['\t5\t', range(6, 10)], ['007', range(8, 10)],
        ['0', range(1, 10)], ['10', []], ['9', [10]]];

    test('SSE Last-Event-ID: malformed values are 400 bad_request, never a stream', async () => {
        for (const v of bad) {
            const r = await sseRaw([B(` ${v}`)]);
            assert.equal(r.status, 400, `Last-Event-ID ${JSON.stringify(v.slice(0, 30))}: ${r.status} ${r.body.slice(0, 200)}`);
            assertErrorShape(JSON.parse(r.body), 'bad_request', `Last-Event-ID ${v.slice(0, 30)}`);
        }
        // A raw NUL after the digits must not be read as "5" (lws may also refuse the request).
        const nul = await sseRaw([Buffer.from([0x20, 0x35, 0x00])]);
        assert.ok(nul.status === 400 || nul.status === 0, `5\\0: ${nul.status}`);
        if (nul.status === 400) assertErrorShape(JSON.parse(nul.body), 'bad_request', '5\\0');
        assert.ok(alive(srv.pid));
    });

    test('SSE Last-Event-ID: OWS trimmed, empty = absent, leading zeros, in-range values', async () => {
        for (const [v, want] of good) {
            const r = await sseRaw([B(` ${v}`)]);
            assert.equal(r.status, 200, `Last-Event-ID ${JSON.stringify(v)}: ${r.status} ${r.body.slice(0, 200)}`);
            assert.deepEqual(r.p.events.map((e) => Number(e.idField)), want, `Last-Event-ID ${JSON.stringify(v)}`);
        }
        // In range but beyond the head: reset, then everything.
        for (const v of ['9223372036854775807', '11']) {
            const r = await sseRaw([B(` ${v}`)]);
            assert.equal(r.status, 200);
            assert.equal(r.p.events[0].type, 'reset', `${v}: first event ${r.p.events[0]?.type}`);
            assert.deepEqual(JSON.parse(r.p.events[0].data), { type: 'reset', earliestSeq: 1, lastSeq: 10 });
            assert.deepEqual(r.p.events.slice(1).map((e) => Number(e.idField)), range(1, 10));
        }
    });

    test('two Last-Event-ID headers (5 and 6): 400, or one of them honoured whole', async () => {
        const r = await sseRaw([B(' 5'), B(' 6')]);
        if (r.status === 400) assertErrorShape(JSON.parse(r.body), 'bad_request', 'duplicate header');
        else {
            assert.equal(r.status, 200);
            const ids = r.p.events.map((e) => Number(e.idField));
            assert.ok(JSON.stringify(ids) === JSON.stringify(range(6, 10)) || JSON.stringify(ids) === JSON.stringify(range(7, 10)),
                `duplicate Last-Event-ID gave ${ids}`);
        }
    });

    test('WS ?lastEventId=: malformed values close 4400, good ones resume; the server survives', async () => {
        for (const v of [...bad.filter((x) => x.length < 100), '5%']) {
            const c = wsOpen(srv, `${stream}/stream`, { token: tok, query: `follow=false&lastEventId=${encodeURIComponent(v)}` });
            await assertWsRefused(c, 400, 'bad_request', `WS lastEventId ${JSON.stringify(v)}`);
        }
        // %00 in the query: refused (400/4400), or dropped by lws before the upgrade; never "5".
        const nul = wsOpen(srv, `${stream}/stream`, { token: tok, query: 'follow=false&lastEventId=5%00' });
        const nc = await within(nul.closed, 10000, 'WS 5%00');
        assert.equal(nul.events().length, 0, 'lastEventId=5%00 was read as 5');
        if (nul.isOpen) await assertWsRefused(nul, 400, 'bad_request', 'WS lastEventId 5%00');
        else assert.ok(nc.http ? nc.http.status === 400 : true, `WS 5%00: ${JSON.stringify(nc)}`);
        for (const [v, want] of good) {
            const c = wsOpen(srv, `${stream}/stream`, { token: tok, query: `follow=false&lastEventId=${encodeURIComponent(v)}` });
            const cl = await within(c.closed, 10000, `WS ${v}`);
            assert.equal(cl.code, 1000, `WS lastEventId ${JSON.stringify(v)}: close ${cl.code} ${JSON.stringify(c.msgs).slice(0, 200)}`);
            assert.deepEqual(c.events().map((e) => e.seq), want, `WS lastEventId ${JSON.stringify(v)}`);
        }
        const big = wsOpen(srv, `${stream}/stream`, { token: tok, query: `lastEventId=${'9'.repeat(4000)}` });
        await assertWsRefused(big, 400, 'bad_request', 'WS 4000 nines');
        assert.ok(alive(srv.pid));
        assert.equal((await get(srv, '/health/live')).status, 200);
    });

    test('path ids and other numbers from the client: never a crash (C03 family)', async () => {
        for (const p of [`${RUN}/run-0001%00/stream`, `${RUN}/${'r'.repeat(4096)}/stream`, `${RUN}/../stream`, `${RUN}/%ff%fe/stream`]) {
            const c = sseOpen(srv, p, { token: tok });
            await within(c.ended, 5000, p.slice(0, 60));
            // lws drops a path that decodes to a NUL without an answer (status 0): no stream either.
            assert.ok((c.status >= 400 && c.status < 500) || (c.status === 0 && p.includes('%00')), `${p.slice(0, 60)}: ${c.status}`);
            assert.equal(c.p.events.length, 0);
        }
        for (const q of ['?follow=maybe', '?types=', '?nodeId=', `?types=${'a,'.repeat(3000)}`]) {
            const c = sseOpen(srv, `${stream}/stream${q}`, { token: tok });
            await c.opened;
            assert.ok(c.status === 200 || c.status === 400, `${q.slice(0, 40)}: ${c.status}`);
            c.close();
        }
        assert.ok(alive(srv.pid));
    });
});

describe('reset, filters, follow=false', () => {
    test('cursor beyond the head: in-band reset (SSE event without id; WS message without seq), then full replay and live', async () => {
        const s = tracked(`${RUN}/reset`, RUN);
        await s.append(makeEvents(RUN, 10));
        const c = sseOpen(srv, `${s.name}/stream`, { token: tok, lastEventId: 50 });
        const w = wsOpen(srv, `${s.name}/stream`, { token: tok, lastEventId: 50 });
        await c.waitEvents(11);
        await w.waitMsgs(11);
        await s.append(s.next());
        await c.waitEvents(12);
        await w.waitEvents(11);
        const first = c.p.events[0];
        assert.equal(first.type, 'reset');
        assert.equal(first.idField, undefined, 'reset carries no id');
        assert.deepEqual(JSON.parse(first.data), { type: 'reset', earliestSeq: 1, lastSeq: 10 });
        assert.deepEqual(c.json_events().map((e) => e.seq), range(1, 11));
        assertSseFrames(c, 'reset SSE');
        assert.deepEqual(w.msgs[0], { type: 'reset', earliestSeq: 1, lastSeq: 10 });
        assert.deepEqual(w.events().map((e) => e.seq), range(1, 11));
        c.close();
        w.close();
    });

    test('filters nodeId= and types= (replay and live), ids stay the stream seqs', async () => {
        const s = tracked(`${RUN}/filt`, RUN);
        const ev = [];
        for (let i = 0; i < 12; i++) {
            const node = i % 2 ? 'b' : 'a';
            ev.push(i % 3 === 0 ? { type: 'step_log', nodeId: node, line: `l${i}`, level: 'info' }
                : i % 3 === 1 ? { type: 'step_progress', nodeId: node, progress: i, message: `m${i}` }
                    : { type: 'step_completed', nodeId: node, status: 'succeeded', outputs: {}, duration: 1.5 });
        }
        await s.append(ev);
        const want = (pred) => s.posted.map((e, i) => [e, i + 1]).filter(([e]) => pred(e)).map(([, q]) => q);
        const cases = [
            ['?nodeId=b', (e) => e.nodeId === 'b'],
            ['?types=step_log,step_completed', (e) => e.type === 'step_log' || e.type === 'step_completed'],
            ['?nodeId=a&types=step_progress', (e) => e.nodeId === 'a' && e.type === 'step_progress'],
            ['?types=step_log', (e) => e.type === 'step_log'],
            ['?nodeId=zzz', () => false],
        ];
        for (const [q, pred] of cases) {
            const c = sseOpen(srv, `${s.name}/stream${q}&follow=false`, { token: tok });
            await within(c.ended, 10000, q);
            assert.deepEqual(c.json_events().map((e) => e.seq), want(pred), `SSE ${q}`);
            assertSseFrames(c, q);
            const w = wsOpen(srv, `${s.name}/stream${q}&follow=false`, { token: tok });
            const cl = await within(w.closed, 10000, q);
            assert.equal(cl.code, 1000);
            assert.deepEqual(w.events().map((e) => e.seq), want(pred), `WS ${q}`);
        }
        // Live: a types filter passes the step_log and skips the step_progress before it.
        const live = sseOpen(srv, `${s.name}/stream?types=step_log`, { token: tok, lastEventId: 12 });
        const wl = wsOpen(srv, `${s.name}/stream?nodeId=b`, { token: tok, lastEventId: 12 });
        await live.opened;
        await wl.opened;
        await sleep(300);
        await s.append([{ type: 'step_progress', nodeId: 'b', progress: 1, message: 'p' }, { type: 'step_log', nodeId: 'a', line: 'x', level: 'info' }]);
        await s.append([{ type: 'step_log', nodeId: 'b', line: 'y', level: 'info' }]);
        await live.waitEvents(2);
        await wl.waitEvents(2);
        await sleep(300);
        assert.deepEqual(live.json_events().map((e) => e.seq), [14, 15]);
        assert.deepEqual(wl.events().map((e) => e.seq), [13, 15]);
        live.close();
        wl.close();
    });

    test('follow=false: replay what is stored, then end (SSE end, WS 1000); empty stream ends at once', async () => {
        const s = tracked(`${RUN}/nofollow`, RUN);
        await s.append(makeEvents(RUN, 7));
        const c = sseOpen(srv, `${s.name}/stream?follow=false`, { token: tok });
        await within(c.ended, 10000, 'SSE follow=false end');
        assert.deepEqual(c.json_events().map((e) => e.seq), range(1, 7));
        const w = wsOpen(srv, `${s.name}/stream?follow=false`, { token: tok, lastEventId: 3 });
        const cl = await within(w.closed, 10000, 'WS follow=false close');
        assert.equal(cl.code, 1000);
        assert.deepEqual(w.events().map((e) => e.seq), range(4, 7));
        await post201(srv, `${RUN}/empty`, '[]', { token: tok });
        const e = sseOpen(srv, `${RUN}/empty/stream?follow=false`, { token: tok });
        await within(e.ended, 10000, 'empty stream end');
        assert.equal(e.status, 200);
        assert.equal(e.p.events.length, 0);
        const we = wsOpen(srv, `${RUN}/empty/stream?follow=false`, { token: tok });
        assert.equal((await within(we.closed, 10000, 'empty WS')).code, 1000);
        assert.equal(we.events().length, 0);
    });
});
