// c13_jwt_alg_confusion.test.mjs - handed.md C13 (JWT algorithm and key confusion), its family
// on an HS256-configured server (auth.test.mjs runs the case's own RS256 inputs (a)-(h)):
// the token header never decides how a token is verified. Correctly signed with the server's
// own secret but under HS384 or HS512; alg none / None / NONE / "none " / "" / missing / null
// / an array; RS256 and ES256 headers over an HMAC signature; crit headers; a jwk header
// carrying an attacker's key; kid values that look like paths, SQL or 10 KB: all refused
// through all four entrances (SSE Bearer, SSE ?token=, WS ?token=, WS first message) with one
// identical answer per entrance (no oracle), and a control token streams.
// (JWKS key sets are not a feature of this build: --jwt-key takes one key, so the JWKS half
// of the case has nothing to confuse; see tests/HANDED.md.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { start, mint, nowS, b64u, rawJwt, post201, sseOpen, wsOpen, within, makeEvents, sans, present, HOWS, assertUnauthorized,
    checkNoTokenInOutput } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const used = new Set();
let srv, good;
before(async () => {
    srv = await start({ args: ['--heartbeat', '5', '--log-level', 'debug'] });
    good = await mint(srv.key, { sub: 'user-1', subscribe: ['workflow-runs/run-0001'] });
    used.add(good);
    await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 2), { token: await mint(srv.key, { sub: 'producer' }) });
});
after(async () => {
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
    checkNoTokenInOutput(srv, 'C13 server', used);
});

/** header.payload signed with HMAC-@hash keyed with @key (the server's own secret by default). */
function hmac(header, payload, hash = 'sha256', key = srv.key) {
    const input = `${b64u(header)}.${b64u(payload)}`;
    return `${input}.${crypto.createHmac(hash, key).update(input).digest('base64url')}`;
}

/** Does @token open run-0001 (follow=false) by SSE Bearer and by WS first message? */
async function streams(token) {
    const c = sseOpen(srv, `${RUN}/run-0001/stream?follow=false`, { token });
    await within(c.ended, 10000, 'SSE replay');
    const w = wsOpen(srv, `${RUN}/run-0001/stream?follow=false`);
    await within(w.opened, 5000, 'WS open');
    w.send({ type: 'auth', token });
    const cl = await within(w.closed, 10000, 'WS replay');
    return { sse: c.status === 200 && c.json_events().length === 2, ws: cl.code === 1000 && w.events().length === 2, status: c.status, close: cl.code };
}

test('control: the server secret under HS256 streams (SSE Bearer, WS first message)', async () => {
    const r = await streams(good);
    assert.ok(r.sse && r.ws, JSON.stringify(r));
});

test('the header never picks the algorithm or the key: every variant is the same 401 per entrance', async () => {
    const claims = { sub: 'user-1', exp: nowS() + 600, rtlog: { subscribe: ['workflow-runs/run-0001'], publish: [] } };
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const attacks = {
        'HS384 with the server secret': hmac({ alg: 'HS384', typ: 'JWT' }, claims, 'sha384'),
        'HS512 with the server secret': hmac({ alg: 'HS512', typ: 'JWT' }, claims, 'sha512'),
        'alg none': rawJwt({ alg: 'none', typ: 'JWT' }, claims, ''),
        'alg None': rawJwt({ alg: 'None' }, claims, ''),
        'alg NONE': rawJwt({ alg: 'NONE' }, claims, ''),
        'alg "none "': rawJwt({ alg: 'none ' }, claims, ''),
        'alg ""': rawJwt({ alg: '' }, claims, ''),
        'no alg': hmac({ typ: 'JWT' }, claims),
        'alg null': hmac({ alg: null }, claims),
        'alg ["HS256"]': hmac({ alg: ['HS256'] }, claims),
        'alg hs256 (case)': hmac({ alg: 'hs256' }, claims),
        'RS256 header, HMAC signature': hmac({ alg: 'RS256' }, claims),
        'ES256 header, HMAC signature': hmac({ alg: 'ES256' }, claims),
        'HS256 keyed with ""': hmac({ alg: 'HS256' }, claims, 'sha256', Buffer.alloc(0)),
        'HS256 keyed with the hex text of the secret': hmac({ alg: 'HS256' }, claims, 'sha256', Buffer.from(srv.key.toString('hex'))),
        'crit header': hmac({ alg: 'HS256', crit: ['exp'] }, claims),
        'jwk header with an attacker key (ES256)': (() => {
            const input = `${b64u({ alg: 'ES256', jwk })}.${b64u(claims)}`;
            const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
            return `${input}.${sig}`;
        })(),
        'signature stripped': hmac({ alg: 'HS256' }, claims).replace(/\.[^.]*$/, '.'),
        'signature AA': hmac({ alg: 'HS256' }, claims).replace(/\.[^.]*$/, '.AA'),
        'two dots only': '..',
        'four segments': `${hmac({ alg: 'HS256' }, claims)}.x`,
    };
    const answers = {};
    for (const [name, t] of Object.entries(attacks)) {
        used.add(t);
        for (const how of HOWS) {
            const a = await present(srv, how, `${RUN}/run-0001`, t);
            assertUnauthorized(a, name);
            (answers[how] ??= new Set()).add(JSON.stringify(sans(a.body)));
        }
    }
    for (const how of HOWS) assert.equal(answers[how].size, 1, `${how}: answers differ: ${[...answers[how]].join(' | ')}`);
});

test('kid is only a label: paths, SQL, 10 KB never change the answer', async () => {
    const claims = { sub: 'user-1', exp: nowS() + 600, rtlog: { subscribe: ['workflow-runs/run-0001'], publish: [] } };
    for (const kid of ['../../../../dev/null', "' OR '1'='1", 'k'.repeat(10240), '/etc/passwd', 'file:///dev/zero']) {
        // signed with the right secret: the kid changes nothing (one configured key)
        const okTok = hmac({ alg: 'HS256', typ: 'JWT', kid }, claims);
        // signed with another secret: refused like any bad signature
        const badTok = hmac({ alg: 'HS256', typ: 'JWT', kid }, claims, 'sha256', Buffer.from('not the secret'));
        used.add(okTok);
        used.add(badTok);
        const r = await streams(okTok);
        // a 10 KB kid is past the 8 KiB pre-auth budget of a WS first message (1009) and may be
        // refused as a Bearer (401): refusing is fine, a stream some other key allowed is not
        if (kid.length > 4096) assert.ok(!r.sse && !r.ws, `kid of 10 KB: ${JSON.stringify(r)}`);
        else assert.ok(r.sse && r.ws, `kid ${kid}: ${JSON.stringify(r)}`);
        if (kid.length <= 4096) assertUnauthorized(await present(srv, 'ws-message', `${RUN}/run-0001`, badTok), `kid ${kid} bad signature`);
        assertUnauthorized(await present(srv, 'ws-query', `${RUN}/run-0001`, badTok), `kid ${kid.slice(0, 20)} bad signature`);
    }
});
