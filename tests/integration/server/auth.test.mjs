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
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { start, sleep, waitUntil, within, nowS, b64u, mint, rawJwt, hs256Raw, post, post201,
    assertErrorShape, sseOpen, wsOpen, assertWsRefused, wsFrame, wsRaw, makeEvents, metricUpdate,
    alive, SignJWT, sans, present, HOWS, assertUnauthorized, checkNoTokenInOutput } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const ISS = 'rtlog-it-issuer';
const AUD = 'rtlog-it';
const LEEWAY = 5;
const used = new Set(); // every token handed to a server: none may appear in its output
const remember = (t) => { used.add(t); return t; };

function keyPair(type, opts) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync(type, opts);
    return { publicKey, privateKey, pubPem: publicKey.export({ type: 'spki', format: 'pem' }),
        pubDer: publicKey.export({ type: 'spki', format: 'der' }) };
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
        checkNoTokenInOutput(srv, 'HS256 server', used);
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
            assert.ok(dt < 12000, `${mode}: closed after ${dt} ms (deadline 2 s)`);
            assert.equal(cl.code, 4401, `${mode}: close ${cl.code} ${cl.reason}`);
            // Pongs are not an auth message: the first one gets the one bad_request hint
            // (rtlog_server.h), the rest nothing; no heartbeat, no event before auth.
            const hints = mode === 'pongs' ? 1 : 0;
            assert.equal(c.msgs.length, hints + 1, `${mode}: frames before auth: ${JSON.stringify(c.msgs)}`);
            if (hints) assertErrorShape(c.msgs[0], 'bad_request', `${mode} hint`);
            assertErrorShape(c.msgs[hints], 'unauthorized', `${mode} deadline`);
            assert.equal(c.msgs[hints].message, 'authentication timeout');
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

    test('a first message that is not an auth message gets one bad_request at once; the deadline stands', async () => {
        for (const first of ['hello', '{"type":"subscribe"}', '[1,2]']) {
            const c = wsRaw(srv, 'dashboard/stream');
            await c.upgraded;
            assert.equal(c.status, 101);
            await c.send(wsFrame(1, Buffer.from(first)));
            const hint = await waitUntil(() => c.json().find((m) => m.type === 'error'), 5000, `an answer to ${first}`);
            assertErrorShape(hint, 'bad_request', `first message ${first}`);
            assert.equal(hint.message, 'expected {"type":"auth","token":...}');
            // At once: the socket is open and the deadline's unauthorized has not come.
            assert.equal(c.json().length, 1, `${first}: ${JSON.stringify(c.json())}`);
            assert.ok(!c.ended && c.closeCode === null, `${first}: closed (${c.closeCode})`);
            // More of the same gets no more replies; a proper auth message still works.
            await c.send(wsFrame(1, Buffer.from(first)));
            await c.send(wsFrame(1, Buffer.from(JSON.stringify({ type: 'auth', token: good }))));
            await waitUntil(() => c.json().some((m) => m.type === 'heartbeat' || typeof m.seq === 'number'), 5000, `stream after ${first}`);
            assert.equal(c.json().filter((m) => m.type === 'error').length, 1, `${first}: ${JSON.stringify(c.json())}`);
            c.close();
        }
        // Without an auth message the deadline still ends it: the hint, then unauthorized 4401.
        const d = wsRaw(srv, 'dashboard/stream');
        await d.upgraded;
        await d.send(wsFrame(1, Buffer.from('not json')));
        await within(d.closed, 15000, 'auth deadline after a hint');
        assert.equal(d.closeCode, 4401, `close ${d.closeCode} ${d.closeReason}`);
        assert.deepEqual(d.json().map((m) => m.code), ['bad_request', 'unauthorized']);
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
        checkNoTokenInOutput(srv, 'after C15 inputs', used);
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
        checkNoTokenInOutput(srv, 'RS256 server', used);
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
        checkNoTokenInOutput(srv, 'expiry server', used);
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
