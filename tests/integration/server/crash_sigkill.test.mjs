// crash_sigkill.test.mjs - crash safety under load (issue 6; CONTRACT "Streams and event ids":
// an event is acknowledged only once durable; DESIGN invariants 1 and 2; handed.md C12 family
// "kill -9 during heavy appends").
//
// PRODUCERS HTTP producers append small batches to their own run stream with ?expectedSeq
// (so a retry after a crash can never write twice), while a WS and an SSE follower per stream
// record every event they receive. The server is SIGKILLed at random moments KILLS times
// (RTLOG_KILLS, default 20; the longer run in tools/bench/RESULTS.md uses 100) and restarted
// on the same data directory each time. After every restart:
//   - every acknowledged batch is stored at exactly the seqs its 201 named, with its content;
//   - every stream is gapless from seq 1 and holds each batch at most once;
//   - a batch whose answer was lost in the crash is retried with the same expectedSeq: it is
//     either stored whole already (409 naming expectedSeq + its length) or not at all (201);
// and every follower, reconnecting with the last seq it saw, receives each seq exactly once
// (seq == last + 1 for every event, across all reconnects), never a reset (it never saw an
// event that was not durable), and at the end exactly what the store holds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { start, sleep, waitUntil, within, mint, post201, sseOpen, wsOpen, storedEvents } from './lib/itest.mjs';

const KILLS = Number(process.env.RTLOG_KILLS || 20);
const PRODUCERS = Number(process.env.RTLOG_CRASH_PRODUCERS || 4);
const ARGS = ['--heartbeat', '1', '--pong-timeout', '30'];

process.setMaxListeners(KILLS + 50); // itest's start() adds an exit listener per server
let cur; // the running server (a new object, and a new port, after each restart)
let tok;
const dataDirs = [];
after(async () => { if (cur) { const r = await cur.stop(); assert.equal(r.code, 0, JSON.stringify(r)); } });

/** Deterministic per-event content, so any event can be checked against the model. */
const line = (p, b, k) => `p${p} batch ${b} event ${k}`;

class Producer {
    constructor(p) {
        this.p = p;
        this.stream = `workflow-runs/crash-${p}`;
        this.last = 0; // seq of the stream's last stored event, as far as this producer knows
        this.model = []; // model[seq - 1] = line, for every batch known to be stored
        this.acked = 0; // highest seq a 201 acknowledged
        this.batches = 0;
        this.unknown = 0; // batches whose answer a crash swallowed
        this.committedUnacked = 0; // ... of which the store already held
    }
    async run(stopped) {
        while (!stopped()) {
            const b = ++this.batches;
            const n = 1 + ((b * 7 + this.p) % 12);
            const evs = [];
            for (let k = 0; k < n; k++) evs.push({ type: 'step_log', nodeId: `p${this.p}`, line: line(this.p, b, k), level: 'info' });
            // Retry the same batch with the same expectedSeq until the answer is definite.
            for (let attempt = 0; ; attempt++) {
                let res;
                try {
                    res = await fetch(`${cur.base}/api/v1/${this.stream}/events?expectedSeq=${this.last}`, {
                        method: 'POST', body: JSON.stringify(evs),
                        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
                    });
                } catch {
                    if (attempt === 0) this.unknown++;
                    await sleep(20);
                    continue; // refused or reset: the server is down or was killed mid-request
                }
                const j = await res.json().catch(() => ({}));
                if (res.status === 201) {
                    assert.equal(j.firstSeq, this.last + 1, `${this.stream}: 201 ${JSON.stringify(j)} after ${this.last}`);
                    assert.equal(j.lastSeq, this.last + n, `${this.stream}: 201 ${JSON.stringify(j)}`);
                    this.acked = j.lastSeq;
                } else if (res.status === 409 && attempt > 0 && j.lastSeq === this.last + n) {
                    this.committedUnacked++; // the crash came after the commit, before the answer
                } else if (res.status === 503) {
                    await sleep(20); // draining or over the in-flight cap: not an answer yet
                    continue;
                } else {
                    assert.fail(`${this.stream}: batch ${b} (expectedSeq=${this.last}, attempt ${attempt}): ${res.status} ${JSON.stringify(j)}`);
                }
                for (const e of evs) this.model.push(e.line);
                this.last += n;
                break;
            }
        }
    }
}

/** A follower that reconnects with the last seq it saw whenever its connection ends. */
class Follower {
    constructor(stream, kind) {
        this.stream = stream;
        this.kind = kind;
        this.last = 0;
        this.lines = [];
        this.connects = 0;
        this.violations = [];
    }
    take(j, how) {
        if (typeof j.seq !== 'number') {
            if (j.type === 'reset' || j.type === 'error') this.violations.push(`${how}: ${JSON.stringify(j)}`);
            return;
        }
        if (j.seq !== this.last + 1) this.violations.push(`${how}: seq ${j.seq} after ${this.last}`);
        this.last = j.seq;
        this.lines[j.seq - 1] = j.line;
    }
    async run(done) {
        while (!done(this)) {
            const srv = cur;
            this.connects++;
            const path = `${this.stream}/stream`;
            if (this.kind === 'ws') {
                const c = wsOpen(srv, path, { token: tok, lastEventId: this.last,
                    onMessage: (m, cc) => { if (m.type === 'heartbeat') cc.send({ type: 'pong' }); else this.take(m, 'ws'); } });
                await waitUntil(() => c.code !== null || done(this), 600000, 'ws follower done', 50);
                c.close();
            } else {
                const c = sseOpen(srv, path, { token: tok, lastEventId: this.last });
                let seen = 0;
                const drain = () => { const ev = c.p.events; for (; seen < ev.length; seen++) this.take(JSON.parse(ev[seen].data), 'sse'); };
                await waitUntil(() => { drain(); return c.done || done(this); }, 600000, 'sse follower done', 50);
                drain();
                c.close();
                if (c.status !== 200 && c.status !== 0) this.violations.push(`sse: HTTP ${c.status} ${c.text.slice(0, 200)}`);
            }
            if (!done(this)) await sleep(30);
        }
    }
}

/** Every stream is gapless and matches its producer's model; every acked seq is there. */
async function checkStore(producers, when) {
    for (const pr of producers) {
        if (pr.last === 0) continue;
        const evs = await storedEvents(cur, tok, pr.stream, { ms: 120000 });
        assert.deepEqual(evs.map((e) => e.seq), Array.from({ length: evs.length }, (_, i) => i + 1), `${when}: ${pr.stream} not gapless`);
        assert.ok(evs.length >= pr.acked, `${when}: ${pr.stream} holds ${evs.length} < acknowledged ${pr.acked}`);
        // A batch in flight at the kill may be stored beyond the model (its retry then 409s).
        for (let s = 0; s < pr.last; s++) assert.equal(evs[s].line, pr.model[s], `${when}: ${pr.stream} seq ${s + 1}`);
        assert.ok(evs.length <= pr.last + 12, `${when}: ${pr.stream} holds ${evs.length}, model ${pr.last}`);
    }
}

test(`SIGKILL ${KILLS} times under load: acknowledged events survive, gapless; followers resume exactly once`, { timeout: 900000 }, async (t) => {
    cur = await start({ args: ARGS });
    const dataDir = cur.dataDir;
    dataDirs.push(dataDir);
    tok = await mint(cur.key, { sub: 'crash' });
    let stopping = false;
    const producers = Array.from({ length: PRODUCERS }, (_, p) => new Producer(p));
    for (const pr of producers) await post201(cur, pr.stream, [], { token: tok }); // followers need the stream
    const prodRuns = producers.map((pr) => pr.run(() => stopping));
    let finalHeads = null;
    const followers = [];
    for (const pr of producers) for (const kind of ['ws', 'sse']) followers.push(new Follower(pr.stream, kind));
    const folRuns = followers.map((f) => f.run((me) => finalHeads !== null && me.last >= finalHeads.get(me.stream)));

    let rnd = 0x9e3779b9 ^ Number(process.env.RTLOG_CRASH_SEED || 1);
    const random = () => { rnd ^= rnd << 13; rnd ^= rnd >>> 17; rnd ^= rnd << 5; return (rnd >>> 0) / 4294967296; };
    for (let k = 0; k < KILLS; k++) {
        // Let the load run a random while: 50 .. 650 ms, with at least one new ack first.
        const before = producers.reduce((a, p) => a + p.acked, 0);
        await waitUntil(() => producers.reduce((a, p) => a + p.acked, 0) > before, 60000, 'progress before a kill');
        await sleep(50 + Math.floor(random() * 600));
        await cur.kill();
        const snapshot = producers.map((p) => ({ stream: p.stream, acked: p.acked, model: p.model.slice(0, p.acked) }));
        cur = await start({ dataDir, args: ARGS });
        // Every event acknowledged before the kill is in the restarted store, at its seq.
        for (const s of snapshot) {
            if (!s.acked) continue;
            const evs = await storedEvents(cur, tok, s.stream, { ms: 120000 });
            assert.ok(evs.length >= s.acked, `kill ${k + 1}: ${s.stream} holds ${evs.length} < acknowledged ${s.acked}`);
            assert.deepEqual(evs.map((e) => e.seq), Array.from({ length: evs.length }, (_, i) => i + 1), `kill ${k + 1}: ${s.stream} not gapless`);
            for (let q = 0; q < s.acked; q++) assert.equal(evs[q].line, s.model[q], `kill ${k + 1}: ${s.stream} seq ${q + 1}`);
        }
    }
    await sleep(300);
    stopping = true;
    await within(Promise.all(prodRuns), 120000, 'producers finish');
    await checkStore(producers, 'end');
    finalHeads = new Map(producers.map((p) => [p.stream, p.last]));
    await within(Promise.all(folRuns), 120000, 'followers reach the heads');

    for (const f of followers) {
        assert.deepEqual(f.violations, [], `${f.kind} follower of ${f.stream}`);
        const pr = producers.find((p) => p.stream === f.stream);
        assert.equal(f.last, pr.last);
        assert.deepEqual(f.lines, pr.model, `${f.kind} follower of ${f.stream}: content`);
    }
    const sum = (fn) => producers.reduce((a, p) => a + fn(p), 0);
    const info = `${KILLS} SIGKILLs survived; ${sum((p) => p.last)} events in ${sum((p) => p.batches)} batches on ` +
        `${PRODUCERS} streams; ${sum((p) => p.unknown)} batches in flight at a kill, of which ${sum((p) => p.committedUnacked)} ` +
        `had been committed (409 on retry); follower connections ${followers.reduce((a, f) => a + f.connects, 0)}`;
    t.diagnostic(info);
    console.log(`# crash: ${info}`);
});
