// itest.mjs - the helpers every tests/integration/server/*.test.mjs of the CONTRACT matrix
// shares (the smoke files use lib/harness.mjs directly).
//
// Starting the server goes through harness.mjs (127.0.0.1, port 0, a temp data directory);
// this file adds what the matrix asserts with: plain HTTP (fetch, raw bytes on node:net),
// the error-body shape of every refusal, a WHATWG-conformant SSE parser (so tests see
// exactly what a browser would: ids, retry, comments, the Last-Event-ID it would send), an
// npm `ws` client with a message queue, raw WebSocket frames (what `ws` cannot be made to
// send), tokens (npm jose, a second JWT implementation, or assembled by hand for the
// attacks), event generators and process probes (RSS, liveness). Everything is exported;
// each test file imports what it uses.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { WebSocket, jose, startServer } from './harness.mjs';

export const { SignJWT } = jose;

/**
 * Start `rtlog serve` through the harness, with the names these tests use: srv.base and
 * srv.wsBase (URLs), srv.key (the data directory's HS256 secret, raw bytes), srv.output()
 * (stdout + stderr so far). The temp data directory goes when the test process exits.
 */
export async function start(opts = {}) {
    const s = await startServer(opts);
    s.base = s.url;
    s.wsBase = s.wsUrl;
    s.key = fs.existsSync(`${s.dataDir}/jwt-secret`) ? s.secret() : undefined;
    s.output = () => s.out + s.err;
    process.once('exit', () => { try { s.cleanup(); } catch {} });
    return s;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll @pred (sync or async) every @step ms until truthy or @ms elapse; throws naming @what. */
export async function waitUntil(pred, ms, what, step = 25) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(step);
    }
}

/** Resolve @p or reject after @ms with a message naming @what. */
export function within(p, ms, what) {
    let t;
    return Promise.race([
        p.finally(() => clearTimeout(t)),
        new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
    ]);
}

// ---- tokens -------------------------------------------------------------------------------
export const nowS = () => Math.floor(Date.now() / 1000);
export const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** HS256 (or @alg with @key) token with the `rtlog` access claim. */
export async function mint(key, { sub = 'tester', subscribe = ['*'], publish = ['*'], ttl = 600,
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
export function rawJwt(header, payload, sig = '') {
    return `${b64u(header)}.${b64u(payload)}.${sig}`;
}
/** HMAC-SHA256 a hand-built token with arbitrary key bytes (for alg-confusion tests). */
export function hs256Raw(header, payload, keyBytes) {
    const input = `${b64u(header)}.${b64u(payload)}`;
    return `${input}.${crypto.createHmac('sha256', keyBytes).update(input).digest('base64url')}`;
}

// ---- plain HTTP ---------------------------------------------------------------------------
/** POST events to @stream ("workflow-runs/x", "dashboard", ...). @body: string or object. */
export async function post(srv, stream, body, { token, ndjson = false, query = '', headers = {} } = {}) {
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
export async function post201(srv, stream, body, opts) {
    const r = await post(srv, stream, body, opts);
    assert.equal(r.status, 201, `POST ${stream}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
}

/** GET a path, body read in full. */
export async function get(srv, path, headers = {}) {
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
export function rawHttp(srv, bytes, { ms = 5000, until } = {}) {
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
export function dechunk(body) {
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
export const CODES = ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'conflict',
    'rate_limited', 'internal_error'];
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
export const isRfc3339 = (s) => typeof s === 'string' && RFC3339.test(s) && !Number.isNaN(Date.parse(s));

/** Assert @j is {"type":"error","code":@code,"message":str,"timestamp":RFC3339} (+ @extra keys). */
export function assertErrorShape(j, code, what = '', extra = []) {
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
export function assertHttpError(r, status, code, what = '') {
    assert.equal(r.status, status, `${what}: status ${r.status}, body ${String(r.text ?? r.body).slice(0, 300)}`);
    const ct = r.headers.get ? r.headers.get('content-type') : r.headers['content-type'];
    assert.match(ct || '', /^application\/json/, `${what}: content-type ${ct}`);
    assertErrorShape(r.json ?? JSON.parse(r.body), code, what);
}

// ---- SSE: a WHATWG "event stream interpretation" parser -------------------------------------
/** Incremental parser per html.spec.whatwg.org server-sent events; feed bytes, get events. */
export class SseParser {
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
export function sseOpen(srv, path, { token, query = 'header', lastEventId, headers = {}, rawHeaders } = {}) {
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

/**
 * Replay @stream with follow=false over SSE (Bearer @token) and return its events as parsed
 * JSON (reset/error control events left out); asserts the replay was a 200 and ended.
 * @lastEventId: a cursor (Last-Event-ID); the dashboard needs 0 to replay from seq 1.
 */
export async function storedEvents(srv, token, stream, { ms = 30000, lastEventId } = {}) {
    const c = sseOpen(srv, `${stream}/stream?follow=false`, { token, lastEventId });
    await within(c.ended, ms, `follow=false replay of ${stream}`);
    assert.equal(c.status, 200, c.text);
    return c.json_events();
}

/** Check an SSE client's stored events: id == seq in the JSON, strictly increasing, event == type. */
export function assertSseFrames(c, what = '') {
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
export function wsOpen(srv, path, { token, lastEventId, query = '', headers = {}, autoPong = true,
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
export async function assertWsRefused(c, status, code, what = '', ms = 10000) {
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
export function wsFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, lenOverride } = {}) {
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
export function wsRaw(srv, path, { headers = {} } = {}) {
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
export function makeEvents(kind, n, { startAt = 1, node = 'build', pad = 0, ts = false } = {}) {
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
export const metricUpdate = (i) => ({ type: 'metric_update', metrics: { pipelineStatus: [], pendingApprovals: i,
    activeDeployments: 1, recentReleases: 12, systemHealth: { agentsOnline: 8, agentsTotal: 10, queueDepth: 5 } },
timestamp: '2026-01-10T14:23:45Z' });
export const sealEvent = (kind) => kind === 'workflow-runs'
    ? { type: 'workflow_completed', status: 'succeeded', duration: 125.5, outputs: { deploymentId: 'd' }, timestamp: '2026-01-10T14:25:50Z' }
    : { type: 'job_completed', status: 'succeeded', targetsDeployed: 4, targetsFailed: 0, duration: 180.5, timestamp: '2026-01-10T14:26:45Z' };

/**
 * Types whose message in realtime-api.md carries a top-level `timestamp`: for these a
 * missing timestamp is filled in by the server (CONTRACT "Ingest"); the others
 * (step_progress, task_progress, task_log, alert, promotion_update) are delivered exactly
 * as posted. This is the reading schema/parse.c implements; see README.md.
 */
export const TS_FILLED = new Set(['step_started', 'step_log', 'step_completed', 'workflow_completed', 'task_started',
    'task_completed', 'job_completed', 'metric_update']);

/**
 * Assert a delivered event equals what was posted: same fields in the same order, a
 * server-filled RFC 3339 UTC `timestamp` appended when the producer sent none and the type
 * has one (TS_FILLED), `seq` last.
 */
export function assertDelivered(got, posted, seq, what = '') {
    const keys = Object.keys(posted);
    const want = { ...posted };
    if (!('timestamp' in posted) && TS_FILLED.has(posted.type)) {
        assert.ok(isRfc3339(got.timestamp) && got.timestamp.endsWith('Z'), `${what}: server-filled timestamp ${got.timestamp} at seq ${seq}`);
        want.timestamp = got.timestamp;
        keys.push('timestamp');
    }
    want.seq = seq;
    keys.push('seq');
    assert.deepStrictEqual(got, want, `${what}: seq ${seq}`);
    assert.deepStrictEqual(Object.keys(got), keys, `${what}: key order at seq ${seq}`);
}

/** VmRSS and RssAnon of a process in bytes. */
export function rss(pid) {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { vm: kb('VmRSS'), anon: kb('RssAnon') };
}

/** Is process @pid alive? */
export function alive(pid) {
    try { process.kill(pid, 0); return true; } catch { return false; }
}

// ---- the four token entrances (auth.test.mjs, c13-c16) --------------------------------------
/** Strip the timestamp so two answers can be compared for "identical". */
export const sans = (j) => { const { timestamp, ...rest } = j ?? {}; return rest; };

/**
 * Present @token on @stream through one of the four entrances; returns a comparable answer:
 * {how, status|close, body} and asserts no event was delivered.
 */
export async function present(srv, how, stream, token) {
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
export const HOWS = ['sse-bearer', 'sse-query', 'ws-query', 'ws-message'];

/** Assert @a is the unauthorized refusal for its entrance. */
export function assertUnauthorized(a, what) {
    assert.equal(a.events, 0, `${what} ${a.how}: events delivered`);
    if (a.how.startsWith('sse') || a.status) {
        assert.equal(a.status, 401, `${what} ${a.how}: status ${a.status} ${JSON.stringify(a.body)}`);
    } else {
        assert.equal(a.nerr, 1, `${what} ${a.how}: one error message`);
        assert.equal(a.close, 4401, `${what} ${a.how}: close ${a.close}`);
    }
    assertErrorShape(a.body, 'unauthorized', `${what} ${a.how}`);
}

/** Assert no token of @used (a Set), nor its payload or signature segment, is in the server's output. */
export function checkNoTokenInOutput(srv, what, used) {
    const out = srv.output();
    for (const t of used) {
        if (t.length >= 16) assert.ok(!out.includes(t), `${what}: a whole token appears in the server output`);
        const [, payload, sig] = t.split('.');
        if (payload && payload.length >= 16) assert.ok(!out.includes(payload), `${what}: a token payload appears in the output`);
        if (sig && sig.length >= 16) assert.ok(!out.includes(sig), `${what}: a token signature appears in the output`);
    }
}
