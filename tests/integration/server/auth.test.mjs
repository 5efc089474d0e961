// auth.test.mjs - JWT on every stream entrance (SSE Bearer, SSE ?token=, WS ?token=, WS first
// message): each verification failure (alg none in all spellings, wrong key, HS256 keyed with
// the RSA public key PEM, expired, not yet valid, wrong aud/iss, exp of the wrong type or
// missing, garbage) gets the identical 401/unauthorized answer; access patterns, forbidden
// before not_found; first-message auth and its deadline; expiry while streaming; WS re-auth;
// tokens never in the server's output. Tokens are minted with npm jose (a second JWT
// implementation) or built by hand for the attacks.
// CONTRACT "Authentication and authorization (JWT)"; handed.md C10, C13, C14, C15, C16.
import { test, describe, before, after } from 'node:test';
import os from 'node:os';
import path from 'node:path';

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
const ISS = 'rtlog-it-issuer';
const AUD = 'rtlog-it';
const LEEWAY = 5;
const used = new Set(); // every token handed to a server: none may appear in its output
const remember = (t) => { used.add(t); return t; };

/** Strip the timestamp so two answers can be compared for "identical". */
const sans = (j) => { const { timestamp, ...rest } = j ?? {}; return rest; };

/**
 * Present @token on @stream through one of the four entrances; returns a comparable answer:
 * {how, status|close, body} and asserts no event was delivered.
 */
async function present(srv, how, stream, token) {
    if (how === 'sse-bearer' || how === 'sse-query') {
        const c = sseOpen(srv, `${stream}/stream`, { token, query: how === 'sse-bearer' ? 'header' : 'query' });
        await within(c.ended, 10000, `${how} answer`);
        if (c.status === 200) c.close();
        return { how, status: c.status, body: c.json, events: c.p.events.length };
    }
    const c = how === 'ws-query' ? wsOpen(srv, `${stream}/stream`, { token }) : wsOpen(srv, `${stream}/stream`);
    if (how === 'ws-message') {
        await within(c.opened, 5000, 'ws open');
        if (c.isOpen) c.send({ type: 'auth', token });
    }
    const cl = await within(c.closed, 10000, `${how} answer`);
    if (cl.http) return { how, status: cl.http.status, body: cl.http.json, events: 0 };
    const errs = c.msgs.filter((m) => m.type === 'error');
    return { how, close: cl.code, body: errs[0], nerr: errs.length, events: c.events().length };
}
const HOWS = ['sse-bearer', 'sse-query', 'ws-query', 'ws-message'];

/** Assert @a is the unauthorized refusal for its entrance. */
function assertUnauthorized(a, what) {
    assert.equal(a.events, 0, `${what} ${a.how}: events delivered`);
    if (a.how.startsWith('sse') || a.status) {
        assert.equal(a.status, 401, `${what} ${a.how}: status ${a.status} ${JSON.stringify(a.body)}`);
    } else {
        assert.equal(a.nerr, 1, `${what} ${a.how}: one error message`);
        assert.equal(a.close, 4401, `${what} ${a.how}: close ${a.close}`);
    }
    assertErrorShape(a.body, 'unauthorized', `${what} ${a.how}`);
}

function keyPair(type, opts) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync(type, opts);
    return { publicKey, privateKey, pubPem: publicKey.export({ type: 'spki', format: 'pem' }),
        pubDer: publicKey.export({ type: 'spki', format: 'der' }) };
}

function checkNoTokenInOutput(srv, what) {
    const out = srv.output();
    for (const t of used) {
        if (t.length >= 16) assert.ok(!out.includes(t), `${what}: a whole token appears in the server output`);
        const [, payload, sig] = t.split('.');
        if (payload && payload.length >= 16) assert.ok(!out.includes(payload), `${what}: a token payload appears in the output`);
        if (sig && sig.length >= 16) assert.ok(!out.includes(sig), `${what}: a token signature appears in the output`);
    }
}

describe('HS256 server with iss, aud and a 5 s leeway', () => {
    let srv, good, claims;
    const tokFor = (o = {}) => mint(srv.key, { iss: ISS, aud: AUD, ...o }).then(remember);
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--auth-timeout', '2', '--jwt-iss', ISS, '--jwt-aud', AUD,
            '--jwt-leeway', String(LEEWAY), '--log-level', 'debug'] });
        good = await tokFor({ sub: 'publisher' });
        for (const id of ['run-0001', 'run-0002']) await post201(srv, `${RUN}/${id}`, makeEvents(RUN, 3), { token: good });
        await post201(srv, 'deployment-jobs/job-0001', makeEvents('deployment-jobs', 2), { token: good });
        await post201(srv, 'dashboard', [metricUpdate(1), ...makeEvents('dashboard', 2)], { token: good });
        claims = () => ({ sub: 'user-1', iss: ISS, aud: AUD, exp: nowS() + 600, rtlog: { subscribe: ['*'], publish: [] } });
    });
    after(async () => {
        const r = await srv.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
        checkNoTokenInOutput(srv, 'HS256 server');
    });

    test('control: a good token opens the stream through all four entrances', async () => {
        const t = await tokFor({ sub: 'user-1' });
        const s1 = sseOpen(srv, `${RUN}/run-0001/stream`, { token: t });
        const s2 = sseOpen(srv, `${RUN}/run-0001/stream`, { token: t, query: 'query' });
        const w1 = wsOpen(srv, `${RUN}/run-0001/stream`, { token: t });
        const w2 = wsOpen(srv, `${RUN}/run-0001/stream`);
        await w2.opened;
        w2.send({ type: 'auth', token: t });
        for (const c of [s1, s2, w1, w2]) await c.waitEvents(3);
        for (const c of [s1, s2, w1, w2]) c.close();
    });

    test('every verification failure gets the same 401/unauthorized answer on all entrances', async () => {
        const H = { alg: 'HS256', typ: 'JWT' };
        const wrong = crypto.randomBytes(32);
        const c = claims();
        const bad = {
            'alg none': rawJwt({ alg: 'none', typ: 'JWT' }, c, ''),
            'alg None': rawJwt({ alg: 'None', typ: 'JWT' }, c, ''),
            'alg NONE': rawJwt({ alg: 'NONE', typ: 'JWT' }, c, ''),
            'alg "none "': rawJwt({ alg: 'none ', typ: 'JWT' }, c, ''),
            'alg ""': rawJwt({ alg: '', typ: 'JWT' }, c, ''),
            'no alg': hs256Raw({ typ: 'JWT' }, c, srv.key),
            'alg none with a signature': `${rawJwt({ alg: 'none' }, c, '')}${hs256Raw(H, c, srv.key).split('.')[2]}`,
            'HS384 with the right secret': await mint(srv.key, { iss: ISS, aud: AUD, alg: 'HS384' }),
            'wrong key': await mint(wrong, { iss: ISS, aud: AUD }),
            'HS256 keyed with ""': hs256Raw(H, c, Buffer.alloc(0)),
            'signature removed': hs256Raw(H, c, srv.key).replace(/\.[^.]*$/, '.'),
            'signature AA': hs256Raw(H, c, srv.key).replace(/\.[^.]*$/, '.AA'),
            'payload altered': (() => { const [h, , s] = hs256Raw(H, c, srv.key).split('.'); return `${h}.${b64u({ ...c, sub: 'admin' })}.${s}`; })(),
            expired: await mint(srv.key, { iss: ISS, aud: AUD, exp: nowS() - LEEWAY - 60 }),
            'not yet valid': await mint(srv.key, { iss: ISS, aud: AUD, nbf: nowS() + 3600 }),
            'wrong aud': await mint(srv.key, { iss: ISS, aud: 'someone-else' }),
            'no aud': await mint(srv.key, { iss: ISS }),
            'wrong iss': await mint(srv.key, { iss: 'evil', aud: AUD }),
            'no iss': await mint(srv.key, { aud: AUD }),
            'exp as a string': hs256Raw(H, { ...c, exp: '9999999999' }, srv.key),
            'exp true': hs256Raw(H, { ...c, exp: true }, srv.key),
            'exp null': hs256Raw(H, { ...c, exp: null }, srv.key),
            'exp []': hs256Raw(H, { ...c, exp: [] }, srv.key),
            'exp -1': hs256Raw(H, { ...c, exp: -1 }, srv.key),
            'no exp': hs256Raw(H, (({ exp, ...r }) => r)(c), srv.key),
            'rtlog claim not an object': hs256Raw(H, { ...c, rtlog: 'everything' }, srv.key),
            'kid ../../../../dev/null, HMAC with ""': hs256Raw({ ...H, kid: '../../../../dev/null' }, c, Buffer.alloc(0)),
            'kid of 10 KB': hs256Raw({ ...H, kid: 'k'.repeat(10240) }, c, wrong),
            garbage: 'garbage',
            'three dots': 'a.b.c',
            'JSON header array': `${b64u([1])}.${b64u(c)}.sig`,
            'huge token': `${b64u(H)}.${b64u({ ...c, pad: 'p'.repeat(12000) })}.sig`,
        };
        const answers = {};
        for (const [name, t] of Object.entries(bad)) {
            remember(t);
            for (const how of HOWS) {
                // Tokens past the pre-auth budget (8 KiB) or a sane request line are only tried
                // as a header: there a size refusal is not a token check.
                if (t.length > 7000 && how !== 'sse-bearer') continue;
                const a = await present(srv, how, `${RUN}/run-0001`, t);
                assertUnauthorized(a, name);
                (answers[how] ??= []).push([name, JSON.stringify(sans(a.body))]);
            }
        }
        // An Authorization value that is not token68 syntax may be named as a malformed
        // header (it says nothing about keys or claims), but it is still a plain 401.
        for (const how of HOWS) assertUnauthorized(await present(srv, how, `${RUN}/run-0001`, '!!!.###.$$$'), 'not base64');
        // No oracle: per entrance, one and the same answer whatever the reason.
        for (const how of HOWS) {
            const distinct = new Set(answers[how].map(([, b]) => b));
            assert.equal(distinct.size, 1, `${how}: answers differ by reason: ${JSON.stringify(answers[how])}`);
        }
        assert.ok(alive(srv.pid));
    });

    test('exp/nbf inside the leeway are accepted (C14 b), beyond it refused', async () => {
        const inside = await tokFor({ sub: 'user-1', exp: nowS() - 2 });
        const nbfInside = await tokFor({ sub: 'user-1', nbf: nowS() + 2 });
        for (const t of [inside, nbfInside]) {
            const c = sseOpen(srv, `${RUN}/run-0001/stream`, { token: t });
            await c.waitEvents(3);
            c.close();
        }
        const beyond = await tokFor({ sub: 'user-1', exp: nowS() - LEEWAY - 2 });
        assertUnauthorized(await present(srv, 'sse-bearer', `${RUN}/run-0001`, beyond), 'exp beyond leeway');
    });

    test('a kid, jku, x5u or jwk header never makes the server read a file or fetch a URL', async () => {
        let hits = 0;
        const trap = http.createServer((req, res) => { hits++; res.end('{}'); });
        await new Promise((r) => trap.listen(0, '127.0.0.1', r));
        const url = `http://127.0.0.1:${trap.address().port}/keys`;
        const attacker = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const jwk = attacker.publicKey.export({ format: 'jwk' });
        const c = claims();
        const es = (h) => { const input = `${b64u(h)}.${b64u(c)}`; const sig = crypto.sign('sha256', Buffer.from(input), { key: attacker.privateKey, dsaEncoding: 'ieee-p1363' }); return `${input}.${sig.toString('base64url')}`; };
        const attacks = [
            hs256Raw({ alg: 'HS256', typ: 'JWT', jku: url }, c, Buffer.from('attacker')),
            hs256Raw({ alg: 'HS256', typ: 'JWT', x5u: url }, c, Buffer.from('attacker')),
            es({ alg: 'ES256', typ: 'JWT', jwk }),
            es({ alg: 'ES256', typ: 'JWT', jku: url }),
        ];
        for (const t of attacks) assertUnauthorized(await present(srv, 'sse-bearer', `${RUN}/run-0001`, remember(t)), 'key-in-header');
        // A correctly signed token is accepted whatever its kid/jku say: they are ignored.
        const ok = remember(await mint(srv.key, { iss: ISS, aud: AUD, sub: 'user-1', header: { kid: '../../../../etc/passwd', jku: url } }));
        const s = sseOpen(srv, `${RUN}/run-0001/stream`, { token: ok });
        await s.waitEvents(3);
        s.close();
        await sleep(200);
        trap.close();
        assert.equal(hits, 0, 'the server fetched a URL named in a token header');
    });

    test('access patterns; forbidden before not_found; SSE and WS agree (C16 a, b, h)', async () => {
        const pats = {
            one: ['workflow-runs/run-0001'], runs: ['workflow-runs/*'], dash: ['dashboard'], all: ['*'], none: [],
            jobs: ['deployment-jobs/*'],
        };
        const tk = {};
        for (const [k, v] of Object.entries(pats)) tk[k] = await tokFor({ sub: `pat-${k}`, subscribe: v, publish: [] });
        tk.noclaim = remember(await new SignJWT({ sub: 'noclaim' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
            .setIssuer(ISS).setAudience(AUD).setExpirationTime(nowS() + 600).sign(srv.key));
        const expect = [
            ['one', `${RUN}/run-0001`, 200], ['one', `${RUN}/run-0002`, 403], ['one', `${RUN}/run-9999`, 403],
            ['one', 'dashboard', 403], ['one', 'deployment-jobs/job-0001', 403], ['one', `${RUN}/RUN-0001`, 403],
            ['runs', `${RUN}/run-0002`, 200], ['runs', `${RUN}/run-9999`, 404], ['runs', 'dashboard', 403],
            ['runs', 'deployment-jobs/job-0001', 403],
            ['jobs', 'deployment-jobs/job-0001', 200], ['jobs', 'deployment-jobs/nope', 404], ['jobs', `${RUN}/run-0001`, 403],
            ['dash', 'dashboard', 200], ['dash', `${RUN}/run-0001`, 403],
            ['all', `${RUN}/run-0002`, 200], ['all', 'dashboard', 200], ['all', `${RUN}/run-9999`, 404],
            ['none', `${RUN}/run-0001`, 403], ['none', `${RUN}/run-9999`, 403], ['noclaim', `${RUN}/run-0001`, 403],
        ];
        const code = { 403: 'forbidden', 404: 'not_found' };
        for (const [k, stream, want] of expect) {
            const what = `${k} -> ${stream}`;
            const s = sseOpen(srv, `${stream}/stream`, { token: tk[k] });
            await s.opened;
            assert.equal(s.status, want, `SSE ${what}: ${s.status}`);
            if (want === 200) { await s.waitEvents(1); s.close(); } else {
                await within(s.ended, 5000, what);
                assertErrorShape(s.json, code[want], `SSE ${what}`);
            }
            const w = wsOpen(srv, `${stream}/stream`, { token: tk[k] });
            if (want === 200) { await w.waitEvents(1); w.close(); } else await assertWsRefused(w, want, code[want], `WS ${what}`);
        }
        // Path variants never reach run-0002 for a user of run-0001 only (C16 h).
        for (const p of [`${RUN}/run-0002/stream/`, `${RUN}/run-0001%2f..%2frun-0002/stream`, `${RUN}/run-0001/../run-0002/stream`,
            `${RUN}/./run-0002/stream`, `${RUN}//run-0002/stream`, `${RUN}/run-0002%00/stream`]) {
            const s = sseOpen(srv, p, { token: tk.one });
            await within(s.ended.then(() => 0), 5000, p).catch(() => {});
            // (lws drops a path that decodes to a NUL with no answer at all: status 0.)
            assert.ok([400, 403, 404].includes(s.status) || (s.status === 0 && p.includes('%00')), `SSE ${p}: ${s.status}`);
            assert.equal(s.p.events.length, 0, `SSE ${p} delivered events`);
            s.close();
        }
    });

    test('first-message auth: accepted; bad token 4401; forbidden 4403; deadline 4401 with nothing before (C10)', async () => {
        const t = await tokFor({ sub: 'user-1', subscribe: ['workflow-runs/run-0001'] });
        // (e) a valid first message starts the stream.
        const ok = wsOpen(srv, 'dashboard/stream');
        await ok.opened;
        ok.send({ type: 'auth', token: await tokFor({ sub: 'dash', subscribe: ['dashboard'] }) });
        await ok.waitEvents(1);
        ok.close();
        // (d) forbidden.
        const f = wsOpen(srv, 'dashboard/stream');
        await f.opened;
        f.send({ type: 'auth', token: t });
        await assertWsRefused(f, 403, 'forbidden', 'first message without dashboard access');
        // (a) nothing sent: closed at the auth deadline (2 s) with unauthorized, no frames before.
        for (const mode of ['silent', 'pongs']) {
            const c = wsOpen(srv, 'dashboard/stream');
            await c.opened;
            const t0 = Date.now();
            const timer = mode === 'pongs' ? setInterval(() => { try { c.send({ type: 'pong' }); } catch {} }, 400) : null;
            await post201(srv, 'dashboard', makeEvents('dashboard', 1), { token: good });
            const cl = await within(c.closed, 15000, `auth deadline (${mode})`);
            clearInterval(timer);
            const dt = Date.now() - t0;
            assert.ok(dt >= 1500, `${mode}: closed after ${dt} ms, before the 2 s deadline`);
            assert.ok(dt < 12000, `${mode}: closed after ${dt} ms`);
            assert.equal(cl.code, 4401, `${mode}: close ${cl.code} ${cl.reason}`);
            assert.equal(c.msgs.length, 1, `${mode}: frames before auth: ${JSON.stringify(c.msgs)}`);
            assertErrorShape(c.msgs[0], 'unauthorized', `${mode} deadline`);
        }
        // (c) a first frame beyond the pre-auth limit (8 KiB) is closed with 1009 without buffering it.
        const big = wsRaw(srv, `${RUN}/run-0001/stream`);
        await big.upgraded;
        assert.equal(big.status, 101);
        const head = Buffer.from('{"type":"auth","token":"');
        const junk = Buffer.alloc(64 * 1024 - head.length, 0x41);
        await big.send(wsFrame(1, Buffer.concat([head, junk])));
        await within(big.closed, 10000, 'pre-auth oversize');
        assert.equal(big.closeCode, 1009, `pre-auth oversize close ${big.closeCode}`);
        // Many small pre-auth messages add up to the same limit.
        const chatty = wsRaw(srv, `${RUN}/run-0001/stream`);
        await chatty.upgraded;
        // Paced, so the server has read everything when it closes (no RST eating the close frame).
        for (let i = 0; i < 40 && !chatty.ended && chatty.closeCode === null; i++) {
            await chatty.send(wsFrame(1, JSON.stringify({ type: 'pong', pad: 'x'.repeat(500) })));
            await sleep(20);
        }
        await within(chatty.closed, 10000, 'pre-auth total bytes');
        assert.equal(chatty.closeCode, 1009, `pre-auth byte budget close ${chatty.closeCode}`);
        assert.equal(chatty.json().filter((m) => typeof m.seq === 'number').length, 0);
    });

    test('tokens and CR/LF never reach the log (C15)', async () => {
        const t = await tokFor({ sub: 'user-1', subscribe: ['workflow-runs/run-0001'] });
        // (c) a missing stream, (d) a malformed Authorization, (e) auth then malformed JSON, (f) CRLF id.
        const a = wsOpen(srv, `${RUN}/does-not-exist/stream`, { token: t });
        await within(a.closed, 5000, 'c');
        const s = sseOpen(srv, `${RUN}/run-0001/stream`, { headers: { authorization: `Bearer  ${t} extra` } });
        await within(s.ended, 5000, 'd');
        assert.equal(s.status, 401);
        const e = wsOpen(srv, `${RUN}/run-0001/stream`);
        await e.opened;
        e.send({ type: 'auth', token: t });
        await e.waitEvents(3);
        e.send('{"type":"auth","token":"' + t + '"');
        await sleep(300);
        e.close();
        const f = sseOpen(srv, `${RUN}/run-0001%0d%0aFAKE-LOG-LINE/stream`, { token: t });
        await within(f.ended, 5000, 'f');
        assert.ok(f.status >= 400 && f.status < 500);
        const f2 = await post(srv, `${RUN}/x%0d%0aFAKE-LOG-LINE`, '[]', { token: good });
        assert.ok(f2.status >= 400 && f2.status < 500);
        await sleep(200);
        assert.ok(!/^FAKE-LOG-LINE/m.test(srv.output()), 'a forged log line made it into the output');
        checkNoTokenInOutput(srv, 'after C15 inputs');
    });
});

describe('RS256 server: key confusion (C13)', () => {
    let srv, rsa, dir;
    before(async () => {
        rsa = keyPair('rsa', { modulusLength: 2048 });
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtlog-keys-'));
        fs.writeFileSync(path.join(dir, 'pub.pem'), rsa.pubPem);
        srv = await start({ args: ['--heartbeat', '1', '--jwt-alg', 'RS256', '--jwt-key', path.join(dir, 'pub.pem'), '--log-level', 'debug'] });
        const t = remember(await mint(rsa.privateKey, { alg: 'RS256', sub: 'pub' }));
        await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 3), { token: t });
    });
    after(async () => {
        const r = await srv.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
        checkNoTokenInOutput(srv, 'RS256 server');
        fs.rmSync(dir, { recursive: true, force: true });
    });

    test('(h) a correctly RS256-signed token streams on all entrances', async () => {
        const t = remember(await mint(rsa.privateKey, { alg: 'RS256', sub: 'user-1', subscribe: ['workflow-runs/run-0001'] }));
        const cs = [sseOpen(srv, `${RUN}/run-0001/stream`, { token: t }), sseOpen(srv, `${RUN}/run-0001/stream`, { token: t, query: 'query' }),
            wsOpen(srv, `${RUN}/run-0001/stream`, { token: t })];
        const w = wsOpen(srv, `${RUN}/run-0001/stream`);
        await w.opened;
        w.send({ type: 'auth', token: t });
        for (const c of [...cs, w]) { await c.waitEvents(3); c.close(); }
    });

    test('(a)-(g) none, HS256 keyed with the public key (PEM, PEM w/o newline, DER, ""), bad signatures, ES256, other RSA key', async () => {
        const c = { sub: 'user-1', exp: nowS() + 600, rtlog: { subscribe: ['*'], publish: [] } };
        const other = keyPair('rsa', { modulusLength: 2048 });
        const ec = keyPair('ec', { namedCurve: 'P-256' });
        const good = await mint(rsa.privateKey, { alg: 'RS256', sub: 'user-1' });
        const bad = {
            'alg none': rawJwt({ alg: 'none', typ: 'JWT' }, c, ''),
            'HS256 keyed with the PEM': hs256Raw({ alg: 'HS256', typ: 'JWT' }, c, Buffer.from(rsa.pubPem)),
            'HS256 keyed with the PEM without newline': hs256Raw({ alg: 'HS256', typ: 'JWT' }, c, Buffer.from(rsa.pubPem.trimEnd())),
            'HS256 keyed with the DER': hs256Raw({ alg: 'HS256', typ: 'JWT' }, c, rsa.pubDer),
            'HS256 keyed with ""': hs256Raw({ alg: 'HS256', typ: 'JWT' }, c, Buffer.alloc(0)),
            'RS256 signature removed': good.replace(/\.[^.]*$/, '.'),
            'RS256 signature AA': good.replace(/\.[^.]*$/, '.AA'),
            'ES256 (not configured)': await mint(ec.privateKey, { alg: 'ES256', sub: 'user-1' }),
            'RS256 by another key': await mint(other.privateKey, { alg: 'RS256', sub: 'user-1' }),
            'RS384 by the right key': await mint(rsa.privateKey, { alg: 'RS384', sub: 'user-1' }),
            'PS256 by the right key': await mint(rsa.privateKey, { alg: 'PS256', sub: 'user-1' }),
            'kid ../../../../dev/null, HMAC ""': hs256Raw({ alg: 'HS256', kid: '../../../../dev/null' }, c, Buffer.alloc(0)),
            "kid ' OR '1'='1": hs256Raw({ alg: 'HS256', kid: "' OR '1'='1" }, c, Buffer.from(rsa.pubPem)),
        };
        const answers = {};
        for (const [name, t] of Object.entries(bad)) {
            remember(t);
            for (const how of HOWS) {
                const a = await present(srv, how, `${RUN}/run-0001`, t);
                assertUnauthorized(a, name);
                (answers[how] ??= new Set()).add(JSON.stringify(sans(a.body)));
            }
        }
        for (const how of HOWS) assert.equal(answers[how].size, 1, `${how}: answers differ: ${[...answers[how]].join(' | ')}`);
        assert.ok(alive(srv.pid));
    });
});

describe('token expiry while streaming (leeway 0) and WS re-auth', () => {
    let srv, pub;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--jwt-leeway', '0', '--log-level', 'debug'] });
        pub = remember(await mint(srv.key, { sub: 'producer', ttl: 3600 }));
    });
    after(async () => {
        const r = await srv.stop();
        assert.equal(r.code, 0, JSON.stringify(r));
        checkNoTokenInOutput(srv, 'expiry server');
    });

    /** Post one event every 200 ms until stop(); returns the send time of every seq. */
    function producer(stream) {
        const sent = new Map();
        let on = true;
        const done = (async () => {
            while (on) {
                const t = Date.now();
                const r = await post(srv, stream, makeEvents(RUN, 1), { token: pub });
                if (r.status === 201) sent.set(r.json.firstSeq, t);
                await sleep(200);
            }
        })();
        return { sent, stop: async () => { on = false; await done; } };
    }

    test('a token expiring mid-stream ends WS (error unauthorized, 4401) and SSE (error event, end); nothing after exp is delivered', { timeout: 60000 }, async () => {
        const stream = `${RUN}/expiring`;
        await post201(srv, stream, makeEvents(RUN, 2), { token: pub });
        const exp = nowS() + 3;
        const t = remember(await mint(srv.key, { sub: 'short', exp }));
        const w = wsOpen(srv, `${stream}/stream`, { token: t });
        const s = sseOpen(srv, `${stream}/stream`, { token: t });
        await w.waitEvents(2);
        await s.waitEvents(2);
        const p = producer(stream);
        const cl = await within(w.closed, 15000, 'WS closed after exp');
        await within(s.ended, 15000, 'SSE ended after exp');
        // Keep appending a little past exp so "nothing after exp" is really put to the test.
        await sleep((exp + 2) * 1000 - Date.now());
        await p.stop();
        const closedAt = Date.now();
        assert.ok(closedAt < (exp + 10) * 1000, 'closed within 10 s after exp');
        assert.equal(cl.code, 4401, `WS close ${cl.code} ${cl.reason}`);
        const last = w.msgs[w.msgs.length - 1];
        assertErrorShape(last, 'unauthorized', 'WS expiry');
        const se = s.p.events[s.p.events.length - 1];
        assert.equal(se.type, 'error', `SSE last event ${se.type}`);
        assert.equal(se.idField, undefined, 'SSE error event carries no id');
        assertErrorShape(JSON.parse(se.data), 'unauthorized', 'SSE expiry');
        // Nothing appended after exp (send started a full second past it) is delivered.
        const late = (seq) => (p.sent.get(seq) ?? 0) >= (exp + 1) * 1000;
        for (const e of w.events()) assert.ok(!late(e.seq), `WS delivered seq ${e.seq} appended after exp`);
        for (const e of s.json_events()) assert.ok(!late(e.seq), `SSE delivered seq ${e.seq} appended after exp`);
        assert.ok([...p.sent.keys()].some(late), 'the producer appended after exp (test precondition)');
        // Resuming with a fresh token and the last id received loses nothing.
        const lastSeq = w.events().at(-1).seq;
        const fresh = remember(await mint(srv.key, { sub: 'short' }));
        const r = sseOpen(srv, `${stream}/stream?follow=false`, { token: fresh, lastEventId: lastSeq });
        await within(r.ended, 10000, 'resume');
        const head = Math.max(...p.sent.keys());
        assert.deepEqual(r.json_events().map((e) => e.seq), Array.from({ length: head - lastSeq }, (_, i) => lastSeq + 1 + i));
    });

    test('WS re-auth with a fresh token before expiry keeps the connection', { timeout: 60000 }, async () => {
        const stream = `${RUN}/reauth`;
        await post201(srv, stream, makeEvents(RUN, 1), { token: pub });
        const exp = nowS() + 3;
        const w = wsOpen(srv, `${stream}/stream`, { token: remember(await mint(srv.key, { sub: 'renew', exp })) });
        await w.waitEvents(1);
        w.send({ type: 'auth', token: remember(await mint(srv.key, { sub: 'renew', ttl: 120 })) });
        await sleep((exp + 3) * 1000 - Date.now());
        assert.equal(w.code, null, `closed at ${w.code} ${JSON.stringify(w.msgs.filter((m) => m.type === 'error'))}`);
        await post201(srv, stream, makeEvents(RUN, 1, { startAt: 2 }), { token: pub });
        await w.waitEvents(2);
        assert.equal(w.msgs.filter((m) => m.type === 'error').length, 0);
        w.close();
    });
});
