// errors.test.mjs - every error answer and close code of CONTRACT "Errors and limits" and
// "Ingest": 400 (bad id, bad cursor, bad JSON naming event index and field), 401, 403, 404,
// 409 (sealed, expectedSeq mismatch with lastSeq), 411 (chunked), 413 (body, event), 429
// (per subject, in total); on WS 4400/4401/4403/4404/4429, 1009, 1007, 1003 (binary), 1000
// on seal, 1001 on SIGTERM drain; the error JSON shape {"type","code","message","timestamp"}
// and no seq on control messages. A batch that fails changes nothing (atomic).
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

/** Replay a stream with follow=false over SSE and return its parsed events. */
async function stored(srv, tok, stream) {
    const c = sseOpen(srv, `${stream}/stream?follow=false`, { token: tok });
    await within(c.ended, 10000, `follow=false replay of ${stream}`);
    assert.equal(c.status, 200, c.text);
    return c.json_events();
}

describe('ingest and stream errors (HTTP)', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--max-body-bytes', '2097152'] });
        tok = await mint(srv.key, { sub: 'errors' });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('400 bad stream id on ingest and on subscribe (SSE and WS); never a stray stream', async () => {
        // Percent-decoded, each of these is an id outside [A-Za-z0-9._:-]{1,128}.
        const bad = ['a'.repeat(129), 'run%20x', 'run!x', 'r%C3%A9n', 'run%2fx', 'run%0d%0ax', '%2e%2e%2fdashboard',
            '%2e%2e%2f%2e%2e%2fdashboard', 'x%2f%2e%2e%2f%2e%2e%2fdeployment-jobs%2fj', 'run%00x'];
        const status = async (fn) => { try { return await fn(); } catch (e) { return { status: 0, error: e.cause?.message ?? e.message }; } };
        for (const id of bad) {
            // lws itself drops a request whose path decodes to a NUL before rtlog sees it;
            // that is no answer rather than a 400, but never a stream.
            const okStatuses = id.includes('%00') ? [400, 404, 0] : [400, 404];
            const r = await status(() => post(srv, `${RUN}/${id}`, '[]', { token: tok }));
            assert.ok(okStatuses.includes(r.status), `POST id ${id.slice(0, 40)}: ${r.status} ${r.text ?? r.error}`);
            if (r.status) assertErrorShape(r.json, r.status === 400 ? 'bad_request' : 'not_found', `POST id ${id.slice(0, 40)}`);
            const s = sseOpen(srv, `${RUN}/${id}/stream`, { token: tok });
            await within(s.ended, 5000, `SSE bad id ${id}`);
            assert.ok(okStatuses.includes(s.status), `SSE id ${id.slice(0, 40)}: ${s.status}`);
            if (s.status) assertErrorShape(s.json, s.status === 400 ? 'bad_request' : 'not_found', `SSE id ${id.slice(0, 40)}`);
        }
        // The canonical bad ids (a char out of the alphabet, 129 bytes) are 400, not 404.
        for (const id of ['a'.repeat(129), 'run!x', 'run%20x']) {
            assertHttpError(await post(srv, `${RUN}/${id}`, '[]', { token: tok }), 400, 'bad_request', `POST ${id.slice(0, 40)}`);
            const w = wsOpen(srv, `${RUN}/${id}/stream`, { token: tok });
            await assertWsRefused(w, 400, 'bad_request', `WS id ${id.slice(0, 40)}`);
        }
        // No stray stream was made from a bad id: the dashboard and job j were never created.
        const d = sseOpen(srv, 'dashboard/stream?follow=false', { token: tok });
        await within(d.ended, 5000, 'dashboard');
        assert.equal(d.status, 404, 'a bad run id created or wrote to the dashboard');
        // 128 bytes of the alphabet is a good id.
        const ok = `${RUN}/${'A-z.0:_'.repeat(19).slice(0, 128)}`;
        assert.equal((await post(srv, ok, '[]', { token: tok })).status, 201);
        assert.ok(alive(srv.pid));
    });

    test('400 bad cursor: SSE header and query, WS query (close 4400)', async () => {
        await post201(srv, `${RUN}/cur`, makeEvents(RUN, 3), { token: tok });
        const s1 = sseOpen(srv, `${RUN}/cur/stream`, { token: tok, lastEventId: 'abc' });
        await within(s1.ended, 5000, 'SSE bad header cursor');
        assertHttpError({ status: s1.status, headers: s1.headers, json: s1.json, text: s1.text }, 400, 'bad_request', 'SSE Last-Event-ID abc');
        const s2 = sseOpen(srv, `${RUN}/cur/stream?lastEventId=-1`, { token: tok });
        await within(s2.ended, 5000, 'SSE bad query cursor');
        assert.equal(s2.status, 400);
        assertErrorShape(s2.json, 'bad_request', 'SSE ?lastEventId=-1');
        const w = wsOpen(srv, `${RUN}/cur/stream`, { token: tok, lastEventId: '1.5' });
        await assertWsRefused(w, 400, 'bad_request', 'WS lastEventId=1.5');
    });

    test('400 bad JSON names the event index and the field; the batch is atomic', async () => {
        const stream = `${RUN}/badjson`;
        await post201(srv, stream, makeEvents(RUN, 2), { token: tok });
        const good = makeEvents(RUN, 3, { startAt: 3 });
        const cases = [
            { what: 'missing nodeId', ev: { type: 'step_log', line: 'x', level: 'info' }, field: 'nodeId' },
            { what: 'mistyped progress', ev: { type: 'step_progress', nodeId: 'a', progress: '50', message: 'm' }, field: 'progress' },
            { what: 'mistyped nodeId', ev: { type: 'step_started', nodeId: 7, stepType: 's' }, field: 'nodeId' },
            { what: 'unknown type', ev: { type: 'task_log', taskId: 't', line: 'x', level: 'info' }, field: 'type' },
            { what: 'missing type', ev: { nodeId: 'a', line: 'x' }, field: 'type' },
            { what: 'timestamp not a string', ev: { type: 'step_log', nodeId: 'a', line: 'x', level: 'info', timestamp: 5 }, field: 'timestamp' },
        ];
        for (const { what, ev, field } of cases) {
            // As a JSON array: event index 2.
            const r = await post(srv, stream, [good[0], good[1], ev], { token: tok });
            assertHttpError(r, 400, 'bad_request', `array, ${what}`);
            assert.match(r.json.message, /\b2\b/, `${what}: message names index 2: ${r.json.message}`);
            assert.ok(r.json.message.includes(field), `${what}: message names ${field}: ${r.json.message}`);
            // As NDJSON: event index 1.
            const nd = [good[0], ev, good[2]].map((e) => JSON.stringify(e)).join('\n') + '\n';
            const r2 = await post(srv, stream, nd, { token: tok, ndjson: true });
            assertHttpError(r2, 400, 'bad_request', `ndjson, ${what}`);
            assert.match(r2.json.message, /\b1\b/, `${what}: NDJSON message names index 1: ${r2.json.message}`);
            assert.ok(r2.json.message.includes(field), `${what}: NDJSON message names ${field}: ${r2.json.message}`);
        }
        for (const body of ['{"type":"step_log",', 'not json', '[1,2]', '"str"', '{"type":"step_log","nodeId":"a","line":"x","level":"info","line":"y"}',
            Buffer.from([0x7b, 0x22, 0x74, 0xff, 0x22, 0x3a, 0x31, 0x7d])]) {
            const r = await post(srv, stream, body, { token: tok });
            assertHttpError(r, 400, 'bad_request', `body ${String(body).slice(0, 40)}`);
        }
        const nd = JSON.stringify(good[0]) + '\n{"type":"step_log"\n';
        const r3 = await post(srv, stream, nd, { token: tok, ndjson: true });
        assertHttpError(r3, 400, 'bad_request', 'NDJSON bad line');
        assert.match(r3.json.message, /\b1\b/, `NDJSON syntax error names line/index 1: ${r3.json.message}`);
        // Nothing of the refused batches was stored: still seq 1..2.
        const ev = await stored(srv, tok, stream);
        assert.deepEqual(ev.map((e) => e.seq), [1, 2]);
        assert.equal((await post201(srv, stream, good, { token: tok })).firstSeq, 3);
    });

    test('401 without or with a bad token, 403 without publish access, before anything else', async () => {
        const stream = `${RUN}/authz`;
        await post201(srv, stream, '[]', { token: tok });
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1)), 401, 'unauthorized', 'no token');
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: 'garbage' }), 401, 'unauthorized', 'garbage token');
        // Even a malformed body is answered 401 first: auth comes before parsing.
        assertHttpError(await post(srv, stream, '{oops'), 401, 'unauthorized', 'no token, bad body');
        const ro = await mint(srv.key, { sub: 'reader', subscribe: ['*'], publish: [] });
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: ro }), 403, 'forbidden', 'no publish');
        assertHttpError(await post(srv, stream, '{oops', { token: ro }), 403, 'forbidden', 'no publish, bad body');
        const other = await mint(srv.key, { sub: 'other', publish: ['workflow-runs/other'] });
        assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: other }), 403, 'forbidden', 'publish on another run');
        assertHttpError(await post(srv, 'dashboard', [], { token: other }), 403, 'forbidden', 'publish dashboard');
        // SSE 401 is an ordinary JSON response with a length, not an open stream (C07).
        const s = sseOpen(srv, `${stream}/stream`);
        await within(s.ended, 5000, 'SSE 401');
        assert.equal(s.status, 401);
        assert.ok(s.headers['content-length'], 'SSE 401 has Content-Length');
        assert.match(s.headers['content-type'], /^application\/json/);
        assertErrorShape(s.json, 'unauthorized', 'SSE without token');
        assert.equal((await stored(srv, tok, stream)).length, 0);
    });

    test('404 for a never-created stream; 403 before 404 for a caller without access', async () => {
        const s = sseOpen(srv, `${RUN}/never-made/stream`, { token: tok });
        await within(s.ended, 5000, 'SSE 404');
        assert.equal(s.status, 404);
        assertErrorShape(s.json, 'not_found', 'SSE never-created');
        assert.ok(s.headers['content-length'], 'SSE 404 has Content-Length');
        await assertWsRefused(wsOpen(srv, `${RUN}/never-made/stream`, { token: tok }), 404, 'not_found', 'WS never-created');
        await assertWsRefused(wsOpen(srv, 'deployment-jobs/never-made/stream', { token: tok }), 404, 'not_found', 'WS job never-created');
        const narrow = await mint(srv.key, { sub: 'narrow', subscribe: ['workflow-runs/mine'] });
        const s2 = sseOpen(srv, `${RUN}/never-made/stream`, { token: narrow });
        await within(s2.ended, 5000, 'SSE 403');
        assert.equal(s2.status, 403);
        assertErrorShape(s2.json, 'forbidden', 'SSE no access to a missing stream');
        await assertWsRefused(wsOpen(srv, `${RUN}/never-made/stream`, { token: narrow }), 403, 'forbidden', 'WS no access to a missing stream');
        // Unknown API paths are a 404 too (and never a stray stream).
        const u = await get(srv, '/api/v1/nothing-here/x/stream', { authorization: `Bearer ${tok}` });
        assert.equal(u.status, 404);
    });

    test('409 on a sealed stream; 409 with lastSeq on an expectedSeq mismatch; 201 on a match', async () => {
        const stream = `${RUN}/seal409`;
        const a = await post201(srv, stream, makeEvents(RUN, 3), { token: tok });
        assert.deepEqual(a, { stream, firstSeq: 1, lastSeq: 3 });
        const m = await post(srv, stream, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=2' });
        assert.equal(m.status, 409, m.text);
        assertErrorShape(m.json, 'conflict', 'expectedSeq=2 at 3', ['lastSeq']);
        assert.equal(m.json.lastSeq, 3, `409 names the current last seq: ${m.text}`);
        assert.equal((await post201(srv, stream, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=3' })).lastSeq, 4);
        // A retry of the same append (same expectedSeq) is refused: no double write.
        const again = await post(srv, stream, makeEvents(RUN, 1), { token: tok, query: '?expectedSeq=3' });
        assert.equal(again.status, 409);
        assert.equal(again.json.lastSeq, 4);
        for (const q of ['?expectedSeq=abc', '?expectedSeq=-1', '?expectedSeq=1e2']) {
            assertHttpError(await post(srv, stream, makeEvents(RUN, 1), { token: tok, query: q }), 400, 'bad_request', q);
        }
        await post201(srv, stream, [sealEvent(RUN)], { token: tok });
        const r = await post(srv, stream, makeEvents(RUN, 1), { token: tok });
        assert.equal(r.status, 409, r.text);
        assertErrorShape(r.json, 'conflict', 'sealed', ['lastSeq']);
        const r2 = await post(srv, stream, [], { token: tok });
        assert.ok(r2.status === 409 || r2.status === 201, `empty batch on sealed: ${r2.status}`);
        const ev = await stored(srv, tok, stream);
        assert.deepEqual(ev.map((e) => e.seq), [1, 2, 3, 4, 5]);
        // Same for a deployment job sealed by job_completed.
        await post201(srv, 'deployment-jobs/j409', [...makeEvents('deployment-jobs', 2), sealEvent('deployment-jobs')], { token: tok });
        assert.equal((await post(srv, 'deployment-jobs/j409', makeEvents('deployment-jobs', 1), { token: tok })).status, 409);
    });

    test('411 for a chunked request body', async () => {
        const body = JSON.stringify(makeEvents(RUN, 1));
        const req = `POST /api/v1/${RUN}/chunked/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tok}\r\n` +
            `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
        const r = await rawHttp(srv, req, { until: (b) => b.includes('}') });
        assert.equal(r.status, 411, r.head);
        assertErrorShape(JSON.parse(r.body.slice(r.body.indexOf('{'))), null, '411 body');
        const s = sseOpen(srv, `${RUN}/chunked/stream`, { token: tok });
        await within(s.ended, 5000, 'nothing created');
        assert.equal(s.status, 404);
    });

    test('413 for a body over max-body-bytes and for one event over 1 MiB', async () => {
        const stream = `${RUN}/big`;
        await post201(srv, stream, '[]', { token: tok });
        // Body over --max-body-bytes 2 MiB, made of small valid events.
        const many = Array.from({ length: 10000 }, (_, i) => ({ type: 'step_log', nodeId: 'a', line: `${i}`.padEnd(250, '.'), level: 'info' }));
        const nd = many.map((e) => JSON.stringify(e)).join('\n');
        assert.ok(nd.length > 2 * 1024 * 1024);
        const r = await post(srv, stream, nd, { token: tok, ndjson: true });
        assert.equal(r.status, 413, r.text.slice(0, 200));
        assertErrorShape(r.json, null, '413 body');
        // One event of 1 MiB + 1 KiB (the 450 KB lines of real logs pass; see realruns).
        const huge = { type: 'step_log', nodeId: 'a', line: 'y'.repeat(1024 * 1024 + 1024), level: 'info' };
        const r2 = await post(srv, stream, [huge], { token: tok });
        assert.equal(r2.status, 413, r2.text.slice(0, 200));
        assertErrorShape(r2.json, null, '413 event');
        const fine = { type: 'step_log', nodeId: 'a', line: 'z'.repeat(900 * 1024), level: 'info' };
        assert.equal((await post201(srv, stream, [fine], { token: tok })).firstSeq, 1);
        const ev = await stored(srv, tok, stream);
        assert.equal(ev.length, 1);
        assert.equal(ev[0].line.length, 900 * 1024);
    });

    test('WS: 4401 bad token, 4403 no access, 4404 missing, 1000 on seal, no seq on control messages', async () => {
        await assertWsRefused(wsOpen(srv, `${RUN}/cur/stream`, { token: 'x.y.z' }), 401, 'unauthorized', 'WS bad token');
        const narrow = await mint(srv.key, { sub: 'narrow', subscribe: ['dashboard'] });
        await assertWsRefused(wsOpen(srv, `${RUN}/cur/stream`, { token: narrow }), 403, 'forbidden', 'WS forbidden');
        await assertWsRefused(wsOpen(srv, `${RUN}/nope/stream`, { token: tok }), 404, 'not_found', 'WS not found');
        const stream = `${RUN}/wsseal`;
        await post201(srv, stream, makeEvents(RUN, 2), { token: tok });
        const w = wsOpen(srv, `${stream}/stream`, { token: tok });
        await w.waitEvents(2);
        await post201(srv, stream, [sealEvent(RUN)], { token: tok });
        const cl = await within(w.closed, 10000, 'close after seal');
        assert.equal(cl.code, 1000, `close ${cl.code} ${cl.reason}`);
        assert.deepEqual(w.events().map((e) => e.seq), [1, 2, 3]);
        for (const m of w.msgs) if (m.type !== 'step_log' && m.type !== 'step_progress' && m.type !== 'workflow_completed') assert.ok(!('seq' in m), JSON.stringify(m));
        // Unknown message types get a bad_request error and the connection stays.
        await post201(srv, `${RUN}/wsctl`, makeEvents(RUN, 1), { token: tok });
        const w2 = wsOpen(srv, `${RUN}/wsctl/stream`, { token: tok });
        await w2.waitEvents(1);
        w2.send({ type: 'bogus' });
        const e = await w2.waitFor((m) => m.type === 'error', 5000, 'error for unknown type');
        assertErrorShape(e, 'bad_request', 'unknown WS message type');
        await post201(srv, `${RUN}/wsctl`, makeEvents(RUN, 1, { startAt: 2 }), { token: tok });
        await w2.waitEvents(2);
        assert.ok(w2.isOpen && w2.code === null, 'connection stays open after a bad message');
        w2.close();
    });

    test('WS: 1009 over max-ws-message, 1007 invalid UTF-8, 1003 binary frame; server unaffected', async () => {
        await post201(srv, `${RUN}/frames`, makeEvents(RUN, 1), { token: tok });
        const path = `${RUN}/frames/stream?token=${encodeURIComponent(tok)}`;
        const bystander = wsOpen(srv, `${RUN}/frames/stream`, { token: tok });
        await bystander.waitEvents(1);

        const big = wsOpen(srv, `${RUN}/frames/stream`, { token: tok });
        await big.waitEvents(1);
        big.send(JSON.stringify({ type: 'pong', pad: 'p'.repeat(1024 * 1024 + 10) }));
        assert.equal((await within(big.closed, 10000, '1009')).code, 1009);

        const u = wsRaw(srv, path);
        await u.upgraded;
        assert.equal(u.status, 101);
        await u.send(wsFrame(1, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])));
        await within(u.closed, 10000, '1007');
        assert.equal(u.closeCode, 1007);

        const b = wsOpen(srv, `${RUN}/frames/stream`, { token: tok });
        await b.waitEvents(1);
        b.ws.send(Buffer.from(JSON.stringify({ type: 'pong' })), { binary: true });
        const cb = await within(b.closed, 10000, '1003');
        assert.equal(cb.code, 1003, `binary frame: close ${cb.code}`);
        const be = b.msgs.filter((m) => m.type === 'error');
        assert.equal(be.length, 1, 'one error message before 1003');
        assertErrorShape(be[0], 'bad_request', 'binary frame');

        await post201(srv, `${RUN}/frames`, makeEvents(RUN, 1, { startAt: 2 }), { token: tok });
        await bystander.waitEvents(2);
        assert.equal(bystander.code, null);
        bystander.close();
        assert.ok(alive(srv.pid));
    });
});

/** Open SSE + WS connections according to the server's /metrics gauge rtlog_connections. */
async function streamsOpen(srv) {
    const t = (await get(srv, '/metrics')).text;
    let n = 0;
    for (const m of t.matchAll(/^rtlog_connections\{transport="(sse|ws)"\} (\d+)$/gm)) n += Number(m[2]);
    return n;
}

describe('connection limits (429 rate_limited)', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--max-connections-per-subject', '2', '--max-connections', '4'] });
        tok = await mint(srv.key, { sub: 'limits' });
        await post201(srv, `${RUN}/lim`, makeEvents(RUN, 1), { token: tok });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('per subject: the third stream of one subject is 429 (SSE) / 4429 (WS); freed slots are reusable', async () => {
        const a = sseOpen(srv, `${RUN}/lim/stream`, { token: tok });
        const b = wsOpen(srv, `${RUN}/lim/stream`, { token: tok });
        await a.waitEvents(1);
        await b.waitEvents(1);
        const c = sseOpen(srv, `${RUN}/lim/stream`, { token: tok });
        await within(c.ended, 5000, 'third SSE');
        assert.equal(c.status, 429);
        assertErrorShape(c.json, 'rate_limited', 'SSE per-subject limit');
        await assertWsRefused(wsOpen(srv, `${RUN}/lim/stream`, { token: tok }), 429, 'rate_limited', 'WS per-subject limit');
        // Another subject is not affected.
        const other = await mint(srv.key, { sub: 'limits-2' });
        const d = sseOpen(srv, `${RUN}/lim/stream`, { token: other });
        await d.waitEvents(1);
        // A freed slot can be used again.
        a.close();
        await waitUntil(async () => {
            const e = sseOpen(srv, `${RUN}/lim/stream`, { token: tok });
            await e.opened;
            if (e.status === 200) { await e.waitEvents(1); e.close(); return true; }
            await e.ended;
            return false;
        }, 10000, 'slot freed after close', 200);
        b.close();
        d.close();
    });

    test('in total: past --max-connections streams are refused with 429', async () => {
        await waitUntil(async () => (await streamsOpen(srv)) === 0, 10000, 'earlier streams closed');
        const subs = await Promise.all([1, 2, 3, 4, 5].map((i) => mint(srv.key, { sub: `tot-${i}` })));
        const open = [];
        for (const t of subs.slice(0, 4)) {
            const c = sseOpen(srv, `${RUN}/lim/stream`, { token: t });
            await c.waitEvents(1);
            open.push(c);
        }
        const x = sseOpen(srv, `${RUN}/lim/stream`, { token: subs[4] });
        await within(x.ended, 5000, 'fifth');
        assert.equal(x.status, 429);
        assertErrorShape(x.json, 'rate_limited', 'total limit');
        await assertWsRefused(wsOpen(srv, `${RUN}/lim/stream`, { token: subs[4] }), 429, 'rate_limited', 'WS total limit');
        for (const c of open) c.close();
    });
});

describe('drain on SIGTERM', () => {
    test('WS clients get 1001, SSE responses end, the server exits 0', async () => {
        const srv = await start({ args: ['--heartbeat', '1'] });
        const tok = await mint(srv.key, { sub: 'drain' });
        await post201(srv, `${RUN}/drain`, makeEvents(RUN, 2), { token: tok });
        const ws = [wsOpen(srv, `${RUN}/drain/stream`, { token: tok }), wsOpen(srv, `${RUN}/drain/stream`, { token: tok })];
        const sse = sseOpen(srv, `${RUN}/drain/stream`, { token: tok });
        for (const w of ws) await w.waitEvents(2);
        await sse.waitEvents(2);
        const exit = srv.stop();
        for (const w of ws) {
            const cl = await within(w.closed, 10000, 'WS close on drain');
            assert.equal(cl.code, 1001, `drain close ${cl.code} ${cl.reason}`);
        }
        await within(sse.ended, 10000, 'SSE end on drain');
        const r = await within(exit, 15000, 'server exit');
        assert.equal(r.code, 0, `exit ${JSON.stringify(r)}`);
        // Acknowledged events survived: a new server on the same data replays them.
        const srv2 = await start({ args: ['--heartbeat', '1'], dataDir: srv.dataDir });
        const c = sseOpen(srv2, `${RUN}/drain/stream?follow=false`, { token: tok });
        await within(c.ended, 10000, 'replay after restart');
        assert.deepEqual(c.json_events().map((e) => e.seq), [1, 2]);
        assert.equal((await srv2.stop()).code, 0);
    });
});

await sleep(0);
