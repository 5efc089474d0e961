// c02_resume_boundary.test.mjs - handed.md C02 (the cursor means "last event seen"), its
// family under concurrency. resume.test.mjs runs the case's matrix (a)-(f) on run, job and
// dashboard streams with a quiet producer; the off-by-one of the kind most often hides in the
// hand-over from catch-up to live while appends land. Here, on a run, a job and the
// dashboard, a producer appends continuously while 24 subscribers join at cursors spread over
// [0, head] and beyond (SSE with Last-Event-ID, SSE with ?lastEventId=, WS with
// ?lastEventId=, and SSE with a header that wins over a conflicting query): each one must
// receive exactly the seqs after its cursor, once, in order, with the SSE id equal to the
// JSON seq, up to the final head. (Agents' task-streams: the agents' own tests.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, mint, post201, sseOpen, wsOpen, makeEvents, metricUpdate,
    assertSseFrames } from './lib/itest.mjs';

let srv, tok;
before(async () => {
    srv = await start({ args: ['--heartbeat', '5'] });
    tok = await mint(srv.key, { sub: 'c02' });
});
after(async () => { const r = await srv.stop(); assert.equal(r.code, 0, JSON.stringify(r)); });

for (const [kind, stream] of [['workflow-runs', 'workflow-runs/run-0001'], ['deployment-jobs', 'deployment-jobs/job-0001'], ['dashboard', 'dashboard']]) {
    test(`${stream}: subscribers joining at any cursor while appends land get exactly the rest`, { timeout: 120000 }, async () => {
        const gen = (i, n) => (kind === 'dashboard'
            ? Array.from({ length: n }, (_, j) => (j % 5 === 0 ? metricUpdate(i + j) : makeEvents(kind, 1, { startAt: i + j })[0]))
            : makeEvents(kind, n, { startAt: i }));
        let head = (await post201(srv, stream, gen(1, 40), { token: tok })).lastSeq;
        const base = head - 40; // the dashboard holds its startup history too
        let producing = true;
        const producer = (async () => {
            for (let i = 41; producing; i += 3) {
                head = (await post201(srv, stream, gen(i, 3), { token: tok })).lastSeq;
                await sleep(15);
            }
        })();
        const subs = [];
        for (let k = 0; k < 24; k++) {
            // cursors from 0 to just past the head at join time (beyond the head: reset + replay)
            const cursor = k === 23 ? head : base + Math.floor((k * (head - base)) / 22);
            const how = ['sse-header', 'sse-query', 'ws', 'sse-header-wins'][k % 4];
            let c;
            if (how === 'sse-header') c = sseOpen(srv, `${stream}/stream`, { token: tok, lastEventId: cursor });
            else if (how === 'sse-query') c = sseOpen(srv, `${stream}/stream?lastEventId=${cursor}`, { token: tok });
            else if (how === 'sse-header-wins') c = sseOpen(srv, `${stream}/stream?lastEventId=${cursor + 7}`, { token: tok, lastEventId: cursor });
            else c = wsOpen(srv, `${stream}/stream`, { token: tok, lastEventId: cursor, onMessage: (m, cc) => { if (m.type === 'heartbeat') cc.send({ type: 'pong' }); } });
            subs.push({ c, cursor, how, seqs: () => (how === 'ws' ? c.events().map((e) => e.seq) : c.json_events().map((e) => e.seq)) });
            await sleep(10 + (k % 3) * 7);
        }
        await sleep(300);
        producing = false;
        await producer;
        const final = head;
        for (const s of subs) {
            await waitUntil(() => s.seqs().at(-1) === final, 30000, `${s.how} from ${s.cursor} reaches ${final}`);
            const want = Array.from({ length: final - s.cursor }, (_, i) => s.cursor + 1 + i);
            assert.deepEqual(s.seqs(), want, `${stream} ${s.how} cursor ${s.cursor}`);
            if (s.how !== 'ws') assertSseFrames(s.c, `${stream} ${s.how} cursor ${s.cursor}`);
            s.c.close();
        }
    });
}
