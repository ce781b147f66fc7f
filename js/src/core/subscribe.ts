import { BellhopError, errorFromResponse } from './errors';
import { SSEParser, type SSEMessage } from './sse';
import type { BellhopEvent, StreamListener, SubscribeOptions, Unsubscribe } from './types';

export interface StreamConnection {
  url: string;
  fetch: typeof fetch;
  credentials?: RequestCredentials;
  /** Resolves the Authorization token for each (re)connect. */
  resolveToken: () => Promise<string | null | undefined>;
}

const DEFAULT_RETRY_MS = 1000;
const DEFAULT_MAX_RETRY_MS = 30000;
/** Two heartbeats and a half at the relay's default `BELLHOP_HEARTBEAT` (25 s). */
const DEFAULT_IDLE_TIMEOUT_MS = 60000;

/** Exponential backoff with "equal jitter": a delay in [d/2, d], d = min(max, base * 2^attempt). */
export function backoffDelay(baseMs: number, attempt: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * Math.pow(2, Math.max(0, attempt)));
  return Math.round(d / 2 + random() * (d / 2));
}

/**
 * How long the server asked to be left alone, from `Retry-After` (seconds
 * or an HTTP date); undefined when absent or unusable.
 */
export function retryAfterMs(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return parseInt(v, 10) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** A delay the server asked for, with up to a quarter more of jitter, so refused clients spread out. */
export function jitterUp(ms: number, random: () => number = Math.random): number {
  return Math.round(ms + random() * (ms / 4));
}

/**
 * The relay refused the stream for now (a limit, a shutdown): as a 200
 * event stream holding one `refused` event (what `EventSource` can
 * survive), or as 429/503 with `Retry-After`.
 */
interface Refusal {
  reason: string;
  message: string;
  status: number;
  retryMs: number;
}

function decodeRefusal(msg: SSEMessage): Refusal {
  let p: { reason?: unknown; message?: unknown; status?: unknown; retry_ms?: unknown } = {};
  try {
    const v = JSON.parse(msg.data) as unknown;
    if (v && typeof v === 'object') p = v as typeof p;
  } catch {
    /* keep the defaults */
  }
  return {
    reason: typeof p.reason === 'string' && p.reason ? p.reason : 'refused',
    message: typeof p.message === 'string' && p.message ? p.message : 'the relay refused the stream; retrying later',
    status: typeof p.status === 'number' ? p.status : 503,
    retryMs: typeof p.retry_ms === 'number' && Number.isFinite(p.retry_ms) && p.retry_ms >= 0 ? p.retry_ms : NaN,
  };
}

/** Decode the JSON payload of a `notification` SSE message. Returns null for anything unusable. */
export function decodeEvent(msg: SSEMessage): BellhopEvent | null {
  let payload: unknown;
  try {
    payload = JSON.parse(msg.data);
  } catch {
    return null;
  }
  if (!payload || typeof payload !== 'object') return null;
  const p = payload as Partial<BellhopEvent> & { seq?: unknown };
  let seq = typeof p.seq === 'number' ? p.seq : Number(msg.id);
  if (!Number.isFinite(seq)) seq = NaN;
  if (typeof p.op !== 'string') return null;
  return { ...(p as BellhopEvent), seq, id: typeof p.id === 'string' ? p.id : '' };
}

/**
 * A subscription's place in the stream: the id to resume from
 * (`Last-Event-ID`) and the highest event seq delivered (for dedupe).
 */
export class StreamCursor {
  lastId: string;
  lastSeq: number;

  constructor(lastEventId?: string | number | null) {
    this.lastId = lastEventId != null ? String(lastEventId) : '';
    this.lastSeq = this.lastId !== '' && Number.isFinite(Number(this.lastId)) ? Number(this.lastId) : -Infinity;
  }

  /**
   * Moves past ev, received under the SSE id msgId (its seq when ''):
   * false when ev is a duplicate, not to be delivered.
   */
  advance(ev: BellhopEvent, msgId = ''): boolean {
    const hasSeq = Number.isFinite(ev.seq);
    if (ev.op === 'refetch') {
      // The server could not replay: its id is the new resume position, even if lower.
      if (hasSeq) this.lastSeq = ev.seq;
      this.lastId = msgId || (hasSeq ? String(ev.seq) : this.lastId);
      return true;
    }
    if (hasSeq) {
      if (ev.seq <= this.lastSeq) return false; // e.g. replayed after a resume
      this.lastSeq = ev.seq;
      this.lastId = msgId || String(ev.seq);
    }
    return true;
  }
}

/**
 * Hands events to a listener, each at once or batched over debounceMs; a
 * listener that throws is logged.
 */
export function createDelivery(listener: StreamListener, debounceMs: number) {
  let pending: BellhopEvent[] = [];
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const emit = (events: BellhopEvent[]) => {
    if (stopped || events.length === 0) return;
    try {
      listener(events);
    } catch (e) {
      console.error('[bellhop] subscriber threw', e);
    }
  };
  const flush = () => {
    flushTimer = undefined;
    const batch = pending;
    pending = [];
    emit(batch);
  };
  return {
    deliver(ev: BellhopEvent) {
      if (debounceMs <= 0) {
        emit([ev]);
        return;
      }
      pending.push(ev);
      if (flushTimer === undefined) flushTimer = setTimeout(flush, debounceMs);
    },
    stop() {
      stopped = true;
      if (flushTimer !== undefined) clearTimeout(flushTimer);
      pending = [];
    },
  };
}

/** Internal hooks into a stream, for the tab that relays it to the others. */
export interface StreamTap {
  /** An `id:` with no data moved the resume position to id. */
  onPosition?: (id: string) => void;
}

/**
 * Fetch-based SSE subscription (so it can send `Authorization`), with
 * reconnect + exponential backoff + jitter (base = server `retry:`),
 * `Last-Event-ID` resume, dedupe by event id, `refetch` handling and
 * optional debounced batching. A refusal (a `refused` event, or 429/503
 * with `Retry-After`) is reported as an `error` status and retried after
 * the delay the server asked for, with jitter, from the same position. A
 * stream silent for `idleTimeoutMs` is dropped as an `error`
 * (`idle_timeout`) and resumed like any other.
 */
export function subscribeStream(
  conn: StreamConnection,
  listener: StreamListener,
  opts: SubscribeOptions = {},
  tap: StreamTap = {},
): Unsubscribe {
  const maxRetryMs = opts.maxRetryMs ?? DEFAULT_MAX_RETRY_MS;
  const idleTimeoutMs = Math.max(0, opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  let retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
  const cursor = new StreamCursor(opts.lastEventId);
  let attempt = 0;
  let stopped = false;
  let controller: AbortController | null = null;
  let sleepTimer: ReturnType<typeof setTimeout> | undefined;
  let wakeSleep: (() => void) | undefined;
  /** Set by a `refused` event on the current connection. */
  let refusal: Refusal | undefined;
  /** The current connection was reported open. */
  let opened = false;
  /** The delay the last failed attempt's server asked for, if any. */
  let serverDelayMs: number | undefined;
  const delivery = createDelivery(listener, Math.max(0, opts.debounceMs ?? 0));

  const status: NonNullable<SubscribeOptions['onStatus']> = (s, err) => {
    if (stopped && s !== 'closed') return;
    try {
      opts.onStatus?.(s, err);
    } catch (e) {
      console.error('[bellhop] onStatus threw', e);
    }
  };

  // A connection is reported open at its first comment, id or event, not
  // at its headers: a refused stream (200, then only a retry and its
  // refused event) is an error, not an open stream that closed.
  const markOpen = () => {
    if (opened || refusal) return;
    opened = true;
    status('open');
    attempt = 0;
  };

  const onMessage = (msg: SSEMessage) => {
    if (msg.event === 'refused') {
      refusal = decodeRefusal(msg);
      return;
    }
    markOpen();
    if (msg.event !== 'notification') return;
    const ev = decodeEvent(msg);
    if (ev && cursor.advance(ev, msg.id)) delivery.deliver(ev);
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wakeSleep = resolve;
      sleepTimer = setTimeout(resolve, ms);
    });

  const connectOnce = async (): Promise<'closed' | 'stop' | 'refused'> => {
    const ctl = (controller = new AbortController());
    refusal = undefined;
    serverDelayMs = undefined;
    opened = false;
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    const token = await conn.resolveToken();
    if (stopped) return 'stop';
    if (token) headers.Authorization = `Bearer ${token}`;
    if (cursor.lastId !== '') headers['Last-Event-ID'] = cursor.lastId;
    // A connection lost without a FIN or RST (a sleeping laptop, a NAT that
    // forgot it) never ends its read: only the missing heartbeats tell.
    // Armed before the request, so headers that never come count too.
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    let idle = false;
    const armIdle = () => {
      if (idleTimeoutMs === 0) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = true;
        ctl.abort();
      }, idleTimeoutMs);
    };
    armIdle();
    try {
      return await readStream(ctl, headers, armIdle);
    } catch (err) {
      if (idle && !stopped) {
        throw new BellhopError(0, 'idle_timeout', `the stream sent nothing for ${idleTimeoutMs} ms`, { cause: err });
      }
      throw err;
    } finally {
      clearTimeout(idleTimer);
    }
  };

  /** One request, read until it ends; received() is called at every chunk. */
  const readStream = async (
    ctl: AbortController,
    headers: Record<string, string>,
    received: () => void,
  ): Promise<'closed' | 'stop' | 'refused'> => {
    const res = await conn.fetch(conn.url, {
      method: 'GET',
      headers,
      credentials: conn.credentials,
      signal: ctl.signal,
      cache: 'no-store',
    });
    if (res.status === 204) {
      // Per spec, 204 No Content means "stop reconnecting".
      return 'stop';
    }
    if (!res.ok) {
      if (res.status === 429 || res.status === 503) serverDelayMs = retryAfterMs(res.headers.get('retry-after'));
      throw await errorFromResponse(res);
    }
    const ct = res.headers.get('content-type') ?? '';
    if (!ct.toLowerCase().includes('text/event-stream')) {
      throw new BellhopError(res.status, 'bad_content_type', `expected text/event-stream, got ${ct || 'nothing'}`);
    }
    if (!res.body) throw new BellhopError(res.status, 'no_body', 'streaming response bodies are not supported');
    const parser = new SSEParser(
      {
        onMessage,
        onComment: markOpen,
        onRetry: (ms) => {
          retryMs = ms;
        },
        // `id: N` with no data (the relay sends its head on connect): resume
        // from N next time, as EventSource does, though no event was seen.
        onLastEventId: (id) => {
          markOpen();
          cursor.lastId = id;
          if (!stopped) tap.onPosition?.(id);
        },
      },
      cursor.lastId,
    );
    const reader = res.body.getReader();
    const decoder = new TextDecoder('utf-8');
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received();
        parser.feed(decoder.decode(value, { stream: true }));
        if (stopped) return 'stop';
      }
      parser.feed(decoder.decode());
      if (refusal) return 'refused';
    } finally {
      try {
        reader.releaseLock();
      } catch {
        /* ignore */
      }
    }
    return 'closed';
  };

  const run = async () => {
    while (!stopped) {
      status('connecting');
      try {
        const result = await connectOnce();
        if (result === 'stop') {
          if (!stopped) {
            stopped = true;
            delivery.stop();
            status('closed');
          }
          return;
        }
        if (result === 'refused' && refusal) {
          const r = refusal;
          status('error', new BellhopError(r.status, r.reason, r.message));
          if (stopped) return;
          await sleep(jitterUp(Number.isFinite(r.retryMs) ? r.retryMs : backoffDelay(retryMs, ++attempt, maxRetryMs)));
          continue;
        }
        status('closed');
      } catch (err) {
        if (stopped) return;
        status('error', err);
        attempt++;
        if (serverDelayMs !== undefined) {
          // 429/503 with Retry-After: the server's delay, never less than the backoff's.
          await sleep(jitterUp(Math.max(serverDelayMs, backoffDelay(retryMs, attempt, maxRetryMs))));
          continue;
        }
      }
      if (stopped) return;
      await sleep(backoffDelay(retryMs, attempt, maxRetryMs));
    }
  };

  const unsubscribe: Unsubscribe = () => {
    if (stopped) return;
    stopped = true;
    controller?.abort();
    if (sleepTimer !== undefined) clearTimeout(sleepTimer);
    wakeSleep?.();
    delivery.stop();
    opts.signal?.removeEventListener('abort', unsubscribe);
    status('closed');
  };

  if (opts.signal) {
    if (opts.signal.aborted) {
      stopped = true;
      return () => {};
    }
    opts.signal.addEventListener('abort', unsubscribe);
  }

  void run();
  return unsubscribe;
}
