// c14_token_time.test.mjs - handed.md C14 (token validity over time: exp/nbf), the case's
// table (a)-(f) through all four entrances, with the server's leeway L = 60 s:
// (a) exp = now - L - 1 refused; (b) exp = now - 30 accepted (inside the leeway); (c) nbf =
// now + 3600 refused, nbf = now + 30 accepted (the leeway applies to nbf as well, documented);
// (d) exp as a string; (e) exp true, null, [], -1, 0, 1e400-like huge, and a fraction refused;
// (f) no exp refused. Refusals are the one unauthorized answer per entrance (C13).
// (g), expiry while streaming, is auth.test.mjs ("token expiry while streaming") and
// c06_control_no_resume_id.test.mjs; re-auth before expiry: auth.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { start, within, nowS, b64u, post201, mint, sseOpen, wsOpen, makeEvents, sans, present, HOWS,
    assertUnauthorized, checkNoTokenInOutput } from './lib/itest.mjs';

const RUN = 'workflow-runs';
const L = 60;
const used = new Set();
let srv;
before(async () => {
    srv = await start({ args: ['--heartbeat', '5', '--jwt-leeway', String(L)] });
    await post201(srv, `${RUN}/run-0001`, makeEvents(RUN, 2), { token: await mint(srv.key, { sub: 'producer' }) });
});
after(async () => {
    const r = await srv.stop();
    assert.equal(r.code, 0, JSON.stringify(r));
    checkNoTokenInOutput(srv, 'C14 server', used);
});

/** A correctly HS256-signed token with these raw claims (exp/nbf of any JSON type). */
function signed(claims) {
    const body = { sub: 'user-1', rtlog: { subscribe: ['workflow-runs/run-0001'], publish: [] }, ...claims };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(body)}`;
    const t = `${input}.${crypto.createHmac('sha256', srv.key).update(input).digest('base64url')}`;
    used.add(t);
    return t;
}
function rawExp(expText) { // exp spelled exactly as given (numbers JSON.stringify cannot write)
    const payload = `{"sub":"user-1","rtlog":{"subscribe":["workflow-runs/run-0001"],"publish":[]},"exp":${expText}}`;
    const input = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${Buffer.from(payload).toString('base64url')}`;
    const t = `${input}.${crypto.createHmac('sha256', srv.key).update(input).digest('base64url')}`;
    used.add(t);
    return t;
}

async function accepted(token, what) {
    const c = sseOpen(srv, `${RUN}/run-0001/stream?follow=false`, { token });
    await within(c.ended, 10000, what);
    assert.equal(c.status, 200, `${what}: SSE ${c.status} ${c.text}`);
    const w = wsOpen(srv, `${RUN}/run-0001/stream?follow=false`, { token });
    const cl = await within(w.closed, 10000, what);
    assert.equal(cl.code, 1000, `${what}: WS close ${cl.code}`);
    assert.equal(w.events().length, 2);
}

test('(b) exp inside the leeway and nbf inside the leeway are accepted', async () => {
    await accepted(signed({ exp: nowS() - 30 }), '(b) exp = now - 30');
    await accepted(signed({ exp: nowS() + 600, nbf: nowS() + 30 }), 'nbf = now + 30');
    await accepted(signed({ exp: nowS() + 600, iat: nowS() + 3600 }), 'iat in the future is not a validity claim');
});

test('(a) (c) (d) (e) (f): refused with the one unauthorized answer per entrance', async () => {
    const now = nowS();
    const cases = {
        '(a) exp = now - L - 1': signed({ exp: now - L - 1 }),
        '(c) nbf = now + 3600': signed({ exp: now + 7200, nbf: now + 3600 }),
        '(c) nbf as a string': signed({ exp: now + 600, nbf: String(now) }),
        '(d) exp "9999999999"': signed({ exp: '9999999999' }),
        '(e) exp true': signed({ exp: true }),
        '(e) exp null': signed({ exp: null }),
        '(e) exp []': signed({ exp: [] }),
        '(e) exp {}': signed({ exp: {} }),
        '(e) exp -1': signed({ exp: -1 }),
        '(e) exp 0': signed({ exp: 0 }),
        '(e) exp 1e400': rawExp('1e400'),
        '(e) exp -9223372036854775809': rawExp('-9223372036854775809'),
        '(f) no exp': signed({ exp: undefined }),
    };
    const answers = {};
    for (const [name, t] of Object.entries(cases)) {
        for (const how of HOWS) {
            const a = await present(srv, how, `${RUN}/run-0001`, t);
            assertUnauthorized(a, name);
            (answers[how] ??= new Set()).add(JSON.stringify(sans(a.body)));
        }
    }
    for (const how of HOWS) assert.equal(answers[how].size, 1, `${how}: answers differ: ${[...answers[how]].join(' | ')}`);
});
