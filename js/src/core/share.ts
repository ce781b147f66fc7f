/**
 * One stream per browser, shared by its tabs.
 *
 * Every subscription of one relay URL and one recipient in the tabs of an
 * origin asks for the same Web Lock; the one that holds it (the leader)
 * alone opens the stream and relays each event, resume position and status
 * to the others (followers) over a `BroadcastChannel` of the same name.
 * The browser releases a closed or crashed tab's locks, so the next
 * follower in the lock's queue becomes the leader at once and resumes from
 * the last id it saw (`Last-Event-ID`); every subscription dedupes by id,
 * so an event seen before the hand-over is not delivered twice.
 *
 * The lock and the channel are named for the identity of the token a
 * subscription joined with, and the leader checks the token of each
 * (re)connect against it. A token of another recipient (the user switched
 * account in place) must not bring that recipient's events to the tabs
 * that joined as the first: the leader leaves the lock and the channel and
 * joins the new identity's, without the old position (positions are per
 * recipient). The old channel's next leader checks its own token the same
 * way. A token whose identity changes again before a stream opens (an
 * opaque token refreshed at every call: its identity is the token) gets a
 * stream of its own instead of moving endlessly.
 *
 * HTTP/1.1 allows six connections per origin for the whole browser: one
 * stream per tab starves the seventh tab's requests. See js/README.md
 * ("One stream per browser").
 */
import { BellhopError } from './errors';
import { StreamCursor, createDelivery, subscribeStream, type StreamConnection } from './subscribe';
import type { BellhopEvent, StreamListener, StreamStatus, SubscribeOptions, Unsubscribe } from './types';

/** The browser APIs a shared stream needs. */
export interface TabEnv {
  locks: Pick<LockManager, 'request'>;
  BroadcastChannel: { new (name: string): Pick<BroadcastChannel, 'postMessage' | 'close' | 'onmessage'> };
}

/** The browser's Web Locks and BroadcastChannel, or null where either is missing. */
export function tabEnv(): TabEnv | null {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  const BC = (globalThis as { BroadcastChannel?: TabEnv['BroadcastChannel'] }).BroadcastChannel;
  if (!locks || typeof locks.request !== 'function' || typeof BC !== 'function') return null;
  return { locks, BroadcastChannel: BC };
}

/** An error as it crosses the channel (structured clone keeps only an Error's name and message). */
interface WireError {
  name: string;
  message: string;
  status?: number;
  code?: string;
}

/** What tabs say on the channel. */
type Message =
  /** A follower joined: the leader answers with its status. */
  | { t: 'hello' }
  /** The leader's stream status, and its resume position. */
  | { t: 'status'; status: StreamStatus; error?: WireError; lastId: string }
  /** Events the leader's stream delivered. */
  | { t: 'events'; events: BellhopEvent[] }
  /** The leader's resume position moved without an event (`id:` with no data). */
  | { t: 'position'; id: string };

function toWire(err: unknown): WireError | undefined {
  if (err === undefined || err === null) return undefined;
  if (err instanceof BellhopError) return { name: err.name, message: err.message, status: err.status, code: err.code };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

function fromWire(w: WireError | undefined): unknown {
  if (!w) return undefined;
  if (typeof w.status === 'number' && typeof w.code === 'string') return new BellhopError(w.status, w.code, w.message);
  const e = new Error(w.message);
  e.name = w.name;
  return e;
}

/**
 * Who the stream is for, as far as the browser can tell: a JWT's
 * recipient claims (a refreshed token of the same recipient shares), any
 * other token as is, and '' for cookie auth (one cookie jar per browser).
 */
export function identity(token: string | null | undefined): string {
  if (!token) return '';
  const parts = token.split('.');
  if (parts.length === 3) {
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const c = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))) as Record<string, unknown>;
      if (c && typeof c.sub === 'string') {
        return JSON.stringify(['jwt', c.tenant ?? '', c.notifiable_type ?? 'User', c.sub]);
      }
    } catch {
      /* not a JWT: the token itself */
    }
  }
  return 'token:' + token;
}

/**
 * cyrb53, a small non-cryptographic string hash: it keeps tokens out of lock
 * and channel names and the names short. Only same-origin scripts see
 * those names, and they can read the token anyway.
 */
function hash(s: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

/** The lock's and the channel's name for a stream URL and a token. */
export function shareName(url: string, token: string | null | undefined): string {
  let abs = url;
  try {
    abs = new URL(url, (globalThis as { location?: { href: string } }).location?.href).href;
  } catch {
    /* keep it as given */
  }
  return `bellhop-stream:${hash(abs + '\n' + identity(token))}`;
}

/**
 * `subscribeStream`, shared with every other subscription of the same
 * stream in this browser (this tab's included): see the file comment. Falls
 * back to a stream of its own when the lock or the channel is refused (an
 * opaque origin, a sandboxed frame).
 */
export function subscribeShared(
  conn: StreamConnection,
  listener: StreamListener,
  opts: SubscribeOptions,
  env: TabEnv,
): Unsubscribe {
  let cursor = new StreamCursor();
  const delivery = createDelivery(listener, Math.max(0, opts.debounceMs ?? 0));
  let role: 'follower' | 'leader' | 'alone' = 'follower';
  let stopped = false;
  let status: StreamStatus | undefined;
  let lastError: unknown;
  let channel: InstanceType<TabEnv['BroadcastChannel']> | undefined;
  let stopStream: Unsubscribe | undefined;
  let release: (() => void) | undefined;
  const lockAbort = new AbortController();
  /** The identity the lock and the channel are named for. */
  let joined = '';
  /** Moved to another identity since a stream last opened. */
  let moved = false;
  /** Bumped when this subscription leaves a stream, whose callbacks then do nothing. */
  let generation = 0;

  // Reports changes only: a status repeated to every follower when
  // another one joins must not look like a reconnect.
  const report = (s: StreamStatus, err?: unknown) => {
    if (s === 'open') moved = false;
    if (stopped || s === status) return;
    status = s;
    lastError = err;
    try {
      opts.onStatus?.(s, err);
    } catch (e) {
      console.error('[bellhop] onStatus threw', e);
    }
  };

  const post = (m: Message) => {
    try {
      channel?.postMessage(m);
    } catch {
      /* the channel is closed */
    }
  };

  const accept = (ev: BellhopEvent) => {
    if (cursor.advance(ev)) delivery.deliver(ev);
  };

  // The stream itself, from this subscription's position: relayed to the
  // other tabs when leading, kept to itself when alone.
  const open = (as: 'leader' | 'alone') => {
    role = as;
    const relay = as === 'leader';
    const g = generation;
    const current = () => !stopped && g === generation;
    const leaderConn: StreamConnection = {
      ...conn,
      resolveToken: async () => {
        const token = await conn.resolveToken();
        // Leaving stops this stream before it sends a request with token.
        if (current() && identity(token) !== joined) leave();
        return token;
      },
    };
    stopStream = subscribeStream(
      relay ? leaderConn : conn,
      (events) => {
        if (!current()) return;
        if (relay) post({ t: 'events', events });
        events.forEach(accept);
      },
      {
        retryMs: opts.retryMs,
        maxRetryMs: opts.maxRetryMs,
        idleTimeoutMs: opts.idleTimeoutMs,
        lastEventId: cursor.lastId,
        onStatus: (s, err) => {
          if (!current()) return;
          if (relay) post({ t: 'status', status: s, error: toWire(err), lastId: cursor.lastId });
          report(s, err);
        },
      },
      {
        onPosition: (id) => {
          if (!current()) return;
          cursor.lastId = id;
          if (relay) post({ t: 'position', id });
        },
      },
    );
  };

  const onMessage = (e: MessageEvent) => {
    const m = e.data as Message;
    if (stopped || !m || typeof m !== 'object') return;
    if (role === 'leader') {
      if (m.t === 'hello') post({ t: 'status', status: status ?? 'connecting', error: toWire(lastError), lastId: cursor.lastId });
      // Anything else is a previous leader's, arriving late: this tab's
      // stream resumed from its own position, and replays it.
      return;
    }
    if (role !== 'follower') return;
    switch (m.t) {
      case 'events':
        if (Array.isArray(m.events)) m.events.forEach(accept);
        break;
      case 'position':
        if (typeof m.id === 'string') cursor.lastId = m.id;
        break;
      case 'status':
        // A follower that joined mid-stream starts where the leader is.
        if (cursor.lastId === '' && typeof m.lastId === 'string' && m.lastId !== '') cursor = new StreamCursor(m.lastId);
        report(m.status, fromWire(m.error));
        break;
    }
  };

  const alone = () => {
    if (stopped || role !== 'follower') return;
    channel?.close();
    channel = undefined;
    open('alone');
  };

  const join = async () => {
    let name: string;
    try {
      const token = await conn.resolveToken();
      if (stopped) return;
      joined = identity(token);
      name = shareName(conn.url, token);
      channel = new env.BroadcastChannel(name);
    } catch {
      alone();
      return;
    }
    channel.onmessage = onMessage;
    post({ t: 'hello' });
    try {
      await env.locks.request(name, { mode: 'exclusive', signal: lockAbort.signal }, () => {
        if (stopped) return undefined;
        open('leader');
        // Held for the leader's life: released by unsubscribe, or by the
        // browser when the tab goes away.
        return new Promise<void>((resolve) => (release = resolve));
      });
    } catch {
      // Aborted by unsubscribe, or locks are refused here.
      alone();
    }
  };

  // The leader's token is another identity's now: gives up the lock and
  // the channel, and joins the new identity's, whose positions are not the
  // old one's. Its status stays `connecting` until that stream opens.
  const leave = () => {
    generation++;
    stopStream?.();
    release?.();
    release = undefined;
    channel?.close();
    channel = undefined;
    cursor = new StreamCursor();
    role = 'follower';
    if (moved) {
      alone();
      return;
    }
    moved = true;
    void join();
  };

  const unsubscribe: Unsubscribe = () => {
    if (stopped) return;
    stopped = true;
    stopStream?.();
    lockAbort.abort();
    release?.();
    channel?.close();
    delivery.stop();
    opts.signal?.removeEventListener('abort', unsubscribe);
    try {
      opts.onStatus?.('closed');
    } catch (e) {
      console.error('[bellhop] onStatus threw', e);
    }
  };

  if (opts.signal) {
    if (opts.signal.aborted) return () => {};
    opts.signal.addEventListener('abort', unsubscribe);
  }
  report('connecting');
  void join();
  return unsubscribe;
}
