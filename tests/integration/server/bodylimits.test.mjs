// bodylimits.test.mjs - bodies being received are bounded across connections and in time
// (attack report 04): max-inflight-body-bytes caps the announced bytes of all ingest
// bodies in progress (over it: 503 + Retry-After, code internal_error, nothing stored) and
// body-timeout bounds how long one body may take (a body not complete in time: 408 and
// the connection closes). Both give their share back, so the next request is served.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { start, mint, sleep, post, post201, within, makeEvents, assertHttpError } from './lib/itest.mjs';

const RUN = 'workflow-runs';

describe('in-flight body bytes and body timeout', () => {
    let srv, tok;
    before(async () => {
        srv = await start({ args: ['--heartbeat', '1', '--max-inflight-body-bytes', '1KiB', '--body-timeout', '2'] });
        tok = await mint(srv.key, { sub: 'bodies' });
    });
    after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

    test('a slow body holds its share: others over the cap get 503 + Retry-After; it gets 408 at body-timeout', async () => {
        const events = JSON.stringify(makeEvents(RUN, 1));
        // A: announces 1000 bytes, sends 10, then nothing
        const a = net.connect(srv.port, '127.0.0.1');
        let aText = '';
        const aClosed = new Promise((r) => a.on('close', r));
        a.on('data', (d) => { aText += d.toString('latin1'); });
        a.on('error', () => {});
        await new Promise((r) => a.on('connect', r));
        a.write(`POST /api/v1/${RUN}/slow/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\n` +
            `Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[${' '.repeat(9)}`);
        await sleep(300);
        // B: 1000 + its bytes > 1 KiB
        const b = await post(srv, `${RUN}/fast`, events, { token: tok });
        assertHttpError(b, 503, 'internal_error', 'over max-inflight-body-bytes');
        assert.equal(b.headers.get('retry-after'), '1');
        // A gets 408 and is closed once body-timeout passed
        await within(aClosed, 8000, 'slow body closed at body-timeout');
        assert.match(aText, /^HTTP\/1\.[01] 408 /, aText.slice(0, 100));
        assert.match(aText, /"code":"bad_request"/);
        // the share is back: B is served now, and nothing of A or the refused B was stored
        const ok = await post201(srv, `${RUN}/fast`, events, { token: tok });
        assert.equal(ok.firstSeq, 1);
        const small = await post201(srv, `${RUN}/slow`, events, { token: tok });
        assert.equal(small.firstSeq, 1);
    });
});
