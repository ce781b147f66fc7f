// One stream per browser: the leader election (a fake of navigator.locks,
// which Node lacks), the relay over Node's own BroadcastChannel, and the
// hand-over, against a real HTTP server that replays from Last-Event-ID.
import type http from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BellhopError, createClient, type BellhopEvent, type StreamStatus } from '../src';
import { identity, shareName, subscribeShared, type TabEnv } from '../src/core/share';
import type { StreamConnection } from '../src/core/subscribe';
import { json, sleep, sseEvent, startServer, waitUntil, type TestServer } from './helpers/server';

let server: TestServer | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  while (cleanups.length) cleanups.pop()!();
  vi.unstubAllGlobals();
  await server?.close();
  server = undefined;
});

/**
 * An exclusive-only LockManager: requests queue per name, a holder keeps
 * the lock until its callback's promise settles, a waiter's signal
 * withdraws it, and crash(tab) releases what a tab holds, as a browser
 * does for a closed tab.
 */
class FakeLocks {
  private state = new Map<string, { held: { tab: string; release: () => void } | null; queue: Array<{ tab: string; grant: () => void }> }>();

  forTab(tab: string): TabEnv['locks'] {
    return { request: ((name: string, options: LockOptions, cb: LockGrantedCallback<unknown>) => this.request(tab, name, options, cb)) as LockManager['request'] };
  }

  private slot(name: string) {
    let s = this.state.get(name);
    if (!s) this.state.set(name, (s = { held: null, queue: [] }));
    return s;
  }

  private async request(tab: string, name: string, options: LockOptions, cb: LockGrantedCallback<unknown>): Promise<unknown> {
    const s = this.slot(name);
    let release!: () => void;
    const gone = new Promise<void>((r) => (release = r));
    await new Promise<void>((resolve, reject) => {
      if (!s.held) {
        s.held = { tab, release };
        resolve();
        return;
      }
      const w = { tab, grant: () => ((s.held = { tab, release }), resolve()) };
      s.queue.push(w);
      options.signal?.addEventListener('abort', () => {
        const i = s.queue.indexOf(w);
        if (i >= 0) s.queue.splice(i, 1);
        reject(new DOMException('the request was aborted', 'AbortError'));
      });
    });
    try {
      return await Promise.race([cb({ name, mode: 'exclusive' } as Lock), gone]);
    } finally {
      s.held = null;
      s.queue.shift()?.grant();
    }
  }

  holder(name: string): string | undefined {
    return this.state.get(name)?.held?.tab;
  }

  crash(tab: string) {
    for (const s of this.state.values()) {
      s.queue = s.queue.filter((w) => w.tab !== tab);
      if (s.held?.tab === tab) s.held.release();
    }
  }
}

/**
 * A browser tab: its own fetch and BroadcastChannels. crash() cuts them
 * and drops its locks, as closing the tab does; its code (still running
 * here) can reach nothing any more. While deaf, its channels drop what
 * they receive (messages not yet handled when the lock changed hands).
 */
function makeTab(locks: FakeLocks, name: string) {
  const channels = new Set<BroadcastChannel>();
  const requests = new Set<AbortController>();
  let crashed = false;
  const tab = { deaf: false };
  class TabChannel extends BroadcastChannel {
    constructor(n: string) {
      super(n);
      channels.add(this);
    }
    override set onmessage(fn: ((ev: MessageEvent) => void) | null) {
      super.onmessage = fn && ((ev: MessageEvent) => (tab.deaf ? undefined : fn.call(this, ev)));
    }
    override get onmessage() {
      return super.onmessage;
    }
  }
  const tabFetch: typeof fetch = (input, init) => {
    if (crashed) return new Promise<Response>(() => {});
    const c = new AbortController();
    init?.signal?.addEventListener('abort', () => c.abort());
    requests.add(c);
    return fetch(input, { ...init, signal: c.signal });
  };
  const env: TabEnv = { locks: locks.forTab(name), BroadcastChannel: TabChannel };
  return Object.assign(tab, {
    name,
    env,
    fetch: tabFetch,
    crash() {
      crashed = true;
      channels.forEach((c) => c.close());
      requests.forEach((c) => c.abort());
      locks.crash(name);
    },
  });
}

/**
 * A relay with an event log per token (the recipient, '' without one):
 * replays after Last-Event-ID (less `overlap`), then sends its head as
 * `id:`. An event's id names its recipient and seq (`alice-2`, `n-2`).
 */
async function startLogRelay(opts: { overlap?: number; failFirst?: number } = {}) {
  const logs = new Map<string, number[]>();
  const logOf = (who: string) => logs.get(who) ?? (logs.set(who, []), logs.get(who)!);
  const streams = new Map<http.ServerResponse, string>();
  const event = (who: string, seq: number) => sseEvent(seq, 'created', { id: `${who || 'n'}-${seq}` });
  let failures = opts.failFirst ?? 0;
  server = await startServer((req, res, rec) => {
    if (rec.path !== '/notifications/stream') return json(res, 404, { error: 'not_found', message: 'no' });
    if (failures > 0) {
      failures--;
      return json(res, 500, { error: 'boom', message: 'the relay broke' });
    }
    const who = (rec.headers.authorization ?? '').replace(/^Bearer /, '');
    const log = logOf(who);
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('retry: 20\n: connected\n\n');
    const raw = rec.headers['last-event-id'];
    if (typeof raw === 'string') {
      const from = Number(raw) - (opts.overlap ?? 0);
      for (const seq of log) if (seq > from) res.write(event(who, seq));
    }
    res.write(`id: ${log.length ? log[log.length - 1] : 0}\n\n`);
    streams.set(res, who);
    req.on('close', () => streams.delete(res));
  });
  const s = server;
  return {
    url: s.url,
    push(who = '') {
      const log = logOf(who);
      const seq = log.length + 1;
      log.push(seq);
      for (const [r, w] of streams) if (w === who) r.write(event(who, seq));
      return seq;
    },
    /** Open streams, of one recipient if given. */
    open: (who?: string) => [...streams.values()].filter((w) => who === undefined || w === who).length,
    /** Ends every open stream, as a relay restart does: each is reconnected. */
    drop: () => streams.forEach((_, r) => r.end()),
    streamRequests: () => s.requests.filter((r) => r.path === '/notifications/stream'),
  };
}

/** A token, or what getToken returns at each call. */
type Token = string | (() => string);

function conn(url: string, fetchImpl: typeof fetch = fetch, token: Token = ''): StreamConnection {
  return { url: `${url}/notifications/stream`, fetch: fetchImpl, resolveToken: async () => (typeof token === 'function' ? token() : token) };
}

/** One subscription in tab, recording what it delivers and reports. */
function join(url: string, tab: ReturnType<typeof makeTab>, token: Token = '', opts: { idleTimeoutMs?: number } = {}) {
  const calls: BellhopEvent[][] = [];
  const statuses: StreamStatus[] = [];
  const errors: unknown[] = [];
  const unsubscribe = subscribeShared(conn(url, tab.fetch, token), (events) => calls.push(events), {
    retryMs: 20,
    ...opts,
    onStatus: (s, err) => {
      statuses.push(s);
      if (err) errors.push(err);
    },
  }, tab.env);
  cleanups.push(unsubscribe);
  return {
    tab,
    calls,
    statuses,
    errors,
    unsubscribe,
    seqs: () => calls.flat().map((e) => e.seq),
    ids: () => calls.flat().map((e) => e.id),
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('shared stream (leader tab + BroadcastChannel)', () => {
  it('tabs of one recipient share one stream; each gets every event once, and the open status', async () => {
    const relay = await startLogRelay();
    const locks = new FakeLocks();
    const subs = ['a', 'b', 'c'].map((n) => join(relay.url, makeTab(locks, n)));
    await waitUntil(() => subs.every((s) => s.statuses.includes('open')), 3000, 'every tab open');
    expect(relay.streamRequests()).toHaveLength(1);
    for (let i = 0; i < 5; i++) relay.push();
    await waitUntil(() => subs.every((s) => s.seqs().length === 5), 3000, 'five events in every tab');
    await sleep(30);
    for (const s of subs) {
      expect(s.seqs()).toEqual(range(1, 5));
      expect(s.statuses).toEqual(['connecting', 'open']);
    }
    expect(relay.open()).toBe(1);
  });

  it('the leader unsubscribes: a follower takes over from the last id it saw, with no gap', async () => {
    const relay = await startLogRelay();
    const locks = new FakeLocks();
    const a = join(relay.url, makeTab(locks, 'a'));
    await waitUntil(() => a.statuses.includes('open'), 3000, 'a open');
    const b = join(relay.url, makeTab(locks, 'b'));
    const c = join(relay.url, makeTab(locks, 'c'));
    await waitUntil(() => b.statuses.includes('open') && c.statuses.includes('open'), 3000, 'b and c open');
    for (let i = 0; i < 3; i++) relay.push();
    await waitUntil(() => b.seqs().length === 3 && c.seqs().length === 3, 3000, 'three events');

    a.unsubscribe();
    // Committed while no tab holds a stream: the new leader's resume replays them.
    relay.push();
    relay.push();
    await waitUntil(() => relay.streamRequests().length === 2 && relay.open() === 1, 3000, 'a second stream');
    for (let i = 0; i < 2; i++) relay.push();
    await waitUntil(() => b.seqs().length === 7 && c.seqs().length === 7, 3000, 'seven events');
    await sleep(30);
    expect(b.seqs()).toEqual(range(1, 7));
    expect(c.seqs()).toEqual(range(1, 7));
    expect(a.seqs()).toEqual(range(1, 3));
    expect(relay.streamRequests()[1].headers['last-event-id']).toBe('3');
    expect(relay.open()).toBe(1);
  });

  it('the leader tab crashes: the next tab resumes from what it saw; tabs that saw more drop the repeats', async () => {
    // The relay replays two ids before Last-Event-ID: followers must drop what they saw.
    const relay = await startLogRelay({ overlap: 2 });
    const locks = new FakeLocks();
    const tabs = ['a', 'b', 'c'].map((n) => makeTab(locks, n));
    const [a, b, c] = tabs.map((t) => join(relay.url, t));
    await waitUntil(() => [a, b, c].every((s) => s.statuses.includes('open')), 3000, 'every tab open');
    const name = shareName(`${relay.url}/notifications/stream`, '');
    expect(locks.holder(name)).toBe('a');
    for (let i = 0; i < 4; i++) relay.push();
    await waitUntil(() => b.seqs().length === 4 && c.seqs().length === 4, 3000, 'four events');
    // Event 5 reaches c but not b before a goes away.
    tabs[1].deaf = true;
    relay.push();
    await waitUntil(() => c.seqs().length === 5, 3000, 'event 5 in c');

    tabs[0].crash();
    await waitUntil(() => locks.holder(name) === 'b', 3000, 'b leads');
    tabs[1].deaf = false;
    relay.push();
    await waitUntil(() => relay.open() === 1, 3000, 'one stream again');
    relay.push();
    await waitUntil(() => b.seqs().length === 7 && c.seqs().length === 7, 3000, 'seven events');
    await sleep(50);
    expect(b.seqs()).toEqual(range(1, 7));
    expect(c.seqs()).toEqual(range(1, 7));
    // b resumed from the last id it saw: a later id would skip 5 in b.
    const resumes = relay.streamRequests().map((r) => r.headers['last-event-id']);
    expect(resumes).toEqual([undefined, '4']);
  });

  it('a tab that joins later starts where the leader is: open, and only new events', async () => {
    const relay = await startLogRelay();
    const locks = new FakeLocks();
    const a = join(relay.url, makeTab(locks, 'a'));
    await waitUntil(() => a.statuses.includes('open'), 3000, 'a open');
    relay.push();
    relay.push();
    await waitUntil(() => a.seqs().length === 2, 3000, 'two events');
    const late = join(relay.url, makeTab(locks, 'late'));
    await waitUntil(() => late.statuses.includes('open'), 3000, 'the late tab reports open');
    relay.push();
    await waitUntil(() => late.seqs().length === 1, 3000, 'event 3 in the late tab');
    // a leaves: the late tab resumes from 3 (the leader's position), not from nothing.
    a.unsubscribe();
    await waitUntil(() => relay.streamRequests().length === 2, 3000, 'a second stream');
    expect(relay.streamRequests()[1].headers['last-event-id']).toBe('3');
    await sleep(30);
    expect(late.seqs()).toEqual([3]);
    expect(a.statuses).toEqual(['connecting', 'open', 'closed']);
  });

  it('relays the leader\'s errors as BellhopErrors', async () => {
    const relay = await startLogRelay({ failFirst: 1 });
    const locks = new FakeLocks();
    const a = join(relay.url, makeTab(locks, 'a'));
    const b = join(relay.url, makeTab(locks, 'b'));
    await waitUntil(() => a.statuses.includes('open') && b.statuses.includes('open'), 3000, 'both open');
    expect(b.statuses).toEqual(['connecting', 'error', 'connecting', 'open']);
    expect(b.errors).toHaveLength(1);
    expect(b.errors[0]).toBeInstanceOf(BellhopError);
    expect(b.errors[0]).toMatchObject({ status: 500, code: 'boom', message: 'the relay broke' });
    expect(relay.streamRequests()).toHaveLength(2);
  });

  it('the leader drops a silent stream after its idleTimeoutMs; the followers see the drop', async () => {
    const relay = await startLogRelay(); // no heartbeats: silent after its head
    const locks = new FakeLocks();
    const a = join(relay.url, makeTab(locks, 'a'), '', { idleTimeoutMs: 150 });
    const b = join(relay.url, makeTab(locks, 'b'));
    await waitUntil(() => relay.streamRequests().length === 2, 3000, 'a second stream');
    await waitUntil(() => b.statuses.filter((s) => s === 'open').length === 2, 3000, 'open again');
    expect(b.statuses.slice(0, 5)).toEqual(['connecting', 'open', 'error', 'connecting', 'open']);
    expect(b.errors[0]).toMatchObject({ code: 'idle_timeout' });
    expect(a.errors[0]).toMatchObject({ code: 'idle_timeout' });
    expect(relay.streamRequests()[1].headers['last-event-id']).toBe('0');
  });

  it('subscriptions of one tab share too, and different recipients do not', async () => {
    const relay = await startLogRelay();
    const locks = new FakeLocks();
    const tab = makeTab(locks, 'a');
    const other = makeTab(locks, 'b');
    const subs = [join(relay.url, tab, 'alice'), join(relay.url, tab, 'alice'), join(relay.url, other, 'bob')];
    await waitUntil(() => subs.every((s) => s.statuses.includes('open')), 3000, 'all open');
    expect(relay.open()).toBe(2);
    expect(relay.streamRequests().map((r) => r.headers.authorization).sort()).toEqual(['Bearer alice', 'Bearer bob']);
  });

  it('a leader whose token is now another recipient\'s moves to that recipient\'s stream; the others keep theirs', async () => {
    const relay = await startLogRelay();
    const locks = new FakeLocks();
    let aToken = 'alice';
    const a = join(relay.url, makeTab(locks, 'a'), () => aToken);
    const b = join(relay.url, makeTab(locks, 'b'), 'alice');
    await waitUntil(() => a.statuses.includes('open') && b.statuses.includes('open'), 3000, 'both open');
    relay.push('alice');
    await waitUntil(() => a.ids().length === 1 && b.ids().length === 1, 3000, 'alice-1 in both');

    // a signs in as bob in place: the leader's next connect has bob's token.
    aToken = 'bob';
    relay.drop();
    await waitUntil(() => relay.open('bob') === 1, 3000, 'a stream for bob');
    relay.push('bob');
    relay.push('bob');
    await waitUntil(() => a.ids().includes('bob-2'), 3000, 'bob-2 in a');
    await sleep(50);
    expect(b.ids()).toEqual(['alice-1']);

    // b, still alice, leads alice's stream now.
    await waitUntil(() => relay.open('alice') === 1, 3000, 'a stream for alice again');
    relay.push('alice');
    await waitUntil(() => b.ids().length === 2, 3000, 'alice-2 in b');
    await sleep(50);
    expect(b.ids()).toEqual(['alice-1', 'alice-2']);
    expect(a.ids()).toEqual(['alice-1', 'bob-1', 'bob-2']);
    expect(b.statuses.slice(-2)).toEqual(['connecting', 'open']);
    expect(a.statuses.slice(-2)).toEqual(['connecting', 'open']);
    // bob's stream starts from bob's head, not from alice's position.
    const bob = relay.streamRequests().filter((r) => r.headers.authorization === 'Bearer bob');
    expect(bob.map((r) => r.headers['last-event-id'])).toEqual([undefined]);
    expect(relay.open()).toBe(2);
  });

  it('a token whose identity changes at every call gets a stream of its own, and no endless moves', async () => {
    const relay = await startLogRelay();
    const locks = new FakeLocks();
    let calls = 0;
    // Moving on and on never yields to a timer: a throw ends it, and the test fails.
    const token = () => {
      if (++calls > 20) throw new Error('getToken called 20 times');
      return `opaque-${calls}`;
    };
    const a = join(relay.url, makeTab(locks, 'a'), token);
    await waitUntil(() => a.statuses.includes('open'), 3000, 'open');
    await sleep(50);
    expect(relay.open()).toBe(1);
    expect(calls).toBeLessThan(10);
  });

  it('a refused lock (an opaque origin) means a stream of its own', async () => {
    const relay = await startLogRelay();
    const env: TabEnv = {
      locks: { request: (() => Promise.reject(new DOMException('no locks here', 'SecurityError'))) as LockManager['request'] },
      BroadcastChannel,
    };
    const calls: BellhopEvent[][] = [];
    cleanups.push(subscribeShared(conn(relay.url), (e) => calls.push(e), { retryMs: 20 }, env));
    cleanups.push(subscribeShared(conn(relay.url), (e) => calls.push(e), { retryMs: 20 }, env));
    await waitUntil(() => relay.open() === 2, 3000, 'two streams');
  });
});

describe('createClient shareAcrossTabs', () => {
  const fakeJWT = (claims: Record<string, unknown>) =>
    `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

  async function streamsFor(options: Parameters<typeof createClient>[0] extends infer O ? Partial<O> : never, subOpts = {}) {
    const relay = await startLogRelay();
    const clients = [0, 1, 2].map(() => createClient({ baseUrl: relay.url, ...options }));
    for (const c of clients) cleanups.push(c.subscribe(() => {}, { retryMs: 20, ...subOpts }));
    await waitUntil(() => relay.open() >= 1, 3000, 'a stream');
    await sleep(100);
    return relay.open();
  }

  it('shares by default where navigator.locks and BroadcastChannel exist', async () => {
    vi.stubGlobal('navigator', { locks: new FakeLocks().forTab('t') });
    expect(await streamsFor({})).toBe(1);
  });

  it('one stream per subscription with shareAcrossTabs: false', async () => {
    vi.stubGlobal('navigator', { locks: new FakeLocks().forTab('t') });
    expect(await streamsFor({ shareAcrossTabs: false })).toBe(3);
  });

  it('one stream per subscription given a lastEventId', async () => {
    vi.stubGlobal('navigator', { locks: new FakeLocks().forTab('t') });
    expect(await streamsFor({}, { lastEventId: 0 })).toBe(3);
  });

  it('one stream per subscription without navigator.locks', async () => {
    vi.stubGlobal('navigator', {});
    expect(await streamsFor({})).toBe(3);
  });

  it('identity: a JWT by its recipient claims, other tokens as they are, cookies as one', () => {
    const t1 = fakeJWT({ sub: '42', exp: 1 });
    const t2 = fakeJWT({ sub: '42', exp: 2, iat: 1 });
    expect(identity(t1)).toBe(identity(t2));
    expect(identity(fakeJWT({ sub: '42', tenant: 'acme' }))).not.toBe(identity(t1));
    expect(identity(fakeJWT({ sub: '42', notifiable_type: 'Team' }))).not.toBe(identity(t1));
    expect(identity(fakeJWT({ sub: '43' }))).not.toBe(identity(t1));
    expect(identity('opaque-1')).not.toBe(identity('opaque-2'));
    expect(identity('')).toBe(identity(undefined));
    const url = 'http://relay.test/notifications/stream';
    expect(shareName(url, t1)).toBe(shareName(url, t2));
    expect(shareName(url, t1)).not.toBe(shareName('http://other.test/notifications/stream', t1));
    expect(shareName(url, t1)).not.toContain('42');
  });

  it('a refreshed token of the same recipient shares the stream', async () => {
    vi.stubGlobal('navigator', { locks: new FakeLocks().forTab('t') });
    let n = 0;
    expect(await streamsFor({ getToken: () => fakeJWT({ sub: 'demo', exp: ++n }) })).toBe(1);
  });
});
