// fleet.mjs - many raw SSE subscribers of one stream, spread over worker threads, for the
// load tests (storm.test.mjs: reconnect storm; c08_slow_consumers.test.mjs: slow and stalled
// consumers). A browser-like client costs too much per frame for 10,000 subscribers, so each
// subscriber is a bare TCP socket: one GET with Last-Event-ID, then SSE frames split on the
// blank line; only the `id:` line is parsed (and, for latency, the `t=<ms>` the producer puts
// at the start of each event's line).
//
// Every subscriber checks, for every event it receives over all its connections, that the
// id is exactly its last id + 1 (no gap, no duplicate, no reorder); a violation is recorded,
// never thrown. Modes: 'fast' reads everything at once; 'slow' reads at most `rate` bytes/s
// (its socket is paused and read in 100 ms steps, so the kernel buffers fill and the server
// sees a slow reader); 'stalled' reads the response head and its first event, then nothing.
//
// Fleet (main thread) API: new Fleet({port, path, tokens, specs, workers, lastEventId}) where
// specs is one {mode, rate, last} per subscriber (last: its first Last-Event-ID); await connect(); await stats(); await drop() (every socket
// reset at once, client side); await reconnect() (each with its own last id as
// Last-Event-ID); await resumeAll() (slow/stalled become fast readers that reconnect with their last id
// whenever the server closes them); await close().
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const CONNECT_AT_ONCE = 200; // connects in flight per worker (the listen backlog is finite)

if (!isMainThread && workerData?.fleet) runWorker(workerData);

export class Fleet {
    constructor({ port, path, tokens, specs, workers = 2, lastEventId = 0 }) {
        this.n = specs.length;
        this.workers = [];
        this.seq = 0;
        this.pending = new Map();
        for (let w = 0; w < workers; w++) {
            const mine = [];
            for (let i = w; i < specs.length; i += workers) mine.push({ ...specs[i], idx: i, token: tokens[i % tokens.length] });
            const wk = new Worker(fileURLToPath(import.meta.url), {
                workerData: { fleet: true, port, path, subs: mine, lastEventId },
            });
            wk.on('message', (m) => { const p = this.pending.get(m.id); if (p) { this.pending.delete(m.id); p(m.result); } });
            wk.on('error', (e) => { for (const p of this.pending.values()) p({ error: String(e) }); });
            this.workers.push(wk);
        }
    }
    call(cmd, arg) {
        return Promise.all(this.workers.map((wk) => new Promise((res) => {
            const id = ++this.seq;
            this.pending.set(id, res);
            wk.postMessage({ id, cmd, arg });
        })));
    }
    async connect() { await this.call('connect'); }
    async drop() { await this.call('drop'); }
    async reconnect() { await this.call('reconnect'); }
    async resumeAll() { await this.call('resume'); }
    /** Merged stats: {subs:[{idx, mode, last, connects, open, closedByServer, violations}], lat:[ms...] } */
    async stats({ lat = false } = {}) {
        const parts = await this.call('stats', { lat });
        const subs = [];
        let latv = [];
        for (const p of parts) { subs.push(...p.subs); if (p.lat) latv = latv.concat(p.lat); }
        subs.sort((a, b) => a.idx - b.idx);
        return { subs, lat: latv };
    }
    async close() { await this.call('close'); await Promise.all(this.workers.map((w) => w.terminate())); }
}

function runWorker({ port, path, subs: specs, lastEventId }) {
    const subs = specs.map((s) => ({ ...s, last: s.last ?? lastEventId, connects: 0, open: false, sock: null, tail: '',
        head: true, closedByServer: 0, violations: [], lat: [], timer: null, gotFirst: false, failures: 0 }));
    let queue = [];
    let inflight = 0;
    const pump = () => {
        while (inflight < CONNECT_AT_ONCE && queue.length) {
            const s = queue.shift();
            inflight++;
            open(s, () => { inflight--; pump(); });
        }
    };
    const enqueue = (list) => { queue = queue.concat(list); pump(); };

    function frame(s, f) {
        if (!f.startsWith('id: ')) return; // retry:, comments, heartbeats, control events
        const nl = f.indexOf('\n');
        const id = Number(f.slice(4, nl));
        if (id !== s.last + 1 && s.violations.length < 5) s.violations.push(`id ${id} after ${s.last}`);
        s.last = id;
        s.gotFirst = true;
        if (s.mode === 'fast') {
            const t = f.indexOf('"line":"t=');
            if (t > 0) s.lat.push(Date.now() - Number(f.slice(t + 10, f.indexOf(' ', t + 10))));
        }
    }
    function feed(s, buf) {
        let str = s.tail + buf.toString('latin1');
        if (s.head) {
            const h = str.indexOf('\r\n\r\n');
            if (h < 0) { s.tail = str; return; }
            s.status = Number(str.slice(9, 12));
            s.head = false;
            if (s.status !== 200) {
                // 429/503 while the old connections are still being reaped, or the server
                // draining: a real client retries (see the close handler); anything else is wrong
                if (s.status !== 429 && s.status !== 503 && s.violations.length < 5)
                    s.violations.push(str.slice(0, 300));
                s.tail = '';
                s.sock.destroy();
                return;
            }
            str = str.slice(h + 4); // SSE responses are close-delimited (no chunking)
        }
        let i, at = 0;
        while ((i = str.indexOf('\n\n', at)) >= 0) {
            frame(s, str.slice(at, i));
            at = i + 2;
        }
        s.tail = str.slice(at);
    }
    function open(s, connected) {
        s.connects++;
        s.head = true; s.tail = ''; s.status = 0; s.gotFirst = false;
        const sock = net.connect({ port, host: '127.0.0.1' });
        s.sock = sock;
        let done = false;
        const fin = () => { if (!done) { done = true; connected(); } };
        sock.on('connect', () => {
            s.open = true;
            sock.write(`GET /api/v1/${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n` +
                `Authorization: Bearer ${s.token}\r\nLast-Event-ID: ${s.last}\r\n\r\n`);
            fin();
        });
        sock.on('error', () => { fin(); });
        sock.on('close', () => {
            fin();
            if (s.sock !== sock) return;
            s.open = false;
            if (!s.dropping) s.closedByServer++;
            // refused while old sockets are reaped or the server drains; or, once resumed, any
            // close (e.g. the stall timeout's): a real client reconnects with its last id
            if (s.status === 429 || s.status === 503 || (s.resumed && !s.dropping)) {
                s.failures++;
                setTimeout(() => enqueue([s]), 50);
            }
        });
        if (s.mode === 'fast' || s.resumed) {
            sock.on('data', (d) => feed(s, d));
        } else if (s.mode === 'stalled') {
            const onData = (d) => { feed(s, d); if (s.gotFirst) { sock.pause(); sock.removeListener('data', onData); } };
            sock.on('data', onData);
        } else { // slow: `rate` bytes per second in 100 ms steps
            sock.pause();
            const step = Math.max(1, Math.floor(s.rate / 10));
            s.timer = setInterval(() => {
                let got = 0;
                for (;;) {
                    const d = sock.read(Math.min(step - got, sock.readableLength || step - got));
                    if (!d) break;
                    feed(s, d);
                    got += d.length;
                    if (got >= step) break;
                }
            }, 100);
        }
    }

    parentPort.on('message', ({ id, cmd, arg }) => {
        const reply = (result) => parentPort.postMessage({ id, result });
        if (cmd === 'connect') {
            enqueue(subs.filter((s) => !s.open));
            const wait = () => (queue.length || inflight ? setTimeout(wait, 10) : reply(true));
            wait();
        } else if (cmd === 'drop') {
            for (const s of subs) {
                s.dropping = true;
                clearInterval(s.timer);
                if (s.sock) s.sock.resetAndDestroy();
                s.sock = null; // its close event belongs to no connection any more
                s.open = false;
            }
            reply(true);
        } else if (cmd === 'reconnect') {
            for (const s of subs) s.dropping = false;
            enqueue(subs);
            const wait = () => (queue.length || inflight ? setTimeout(wait, 10) : reply(true));
            wait();
        } else if (cmd === 'resume') {
            for (const s of subs) {
                if (s.mode === 'fast') continue;
                s.resumed = true;
                clearInterval(s.timer);
                if (s.sock && !s.sock.destroyed) {
                    s.sock.removeAllListeners('data');
                    // flowing again: what node buffered while paused comes first, in order
                    // (read() would also emit 'data': never both)
                    s.sock.on('data', (d) => feed(s, d));
                    s.sock.resume();
                } else if (!s.open) {
                    enqueue([s]);
                }
            }
            reply(true);
        } else if (cmd === 'stats') {
            const out = { subs: subs.map((s) => ({ idx: s.idx, mode: s.mode, last: s.last, connects: s.connects,
                open: s.open, closedByServer: s.closedByServer, violations: s.violations, failures: s.failures })) };
            if (arg?.lat) { out.lat = []; for (const s of subs) { out.lat.push(...s.lat); s.lat = []; } }
            reply(out);
        } else if (cmd === 'close') {
            for (const s of subs) { s.dropping = true; clearInterval(s.timer); s.sock?.destroy(); }
            reply(true);
        }
    });
}
