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

/** Exponential backoff with "equal jitter": a delay in [d/2, d], d = min(max, base * 2^attempt). */
export function backoffDelay(baseMs: number, attempt: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * Math.pow(2, Math.max(0, attempt)));
  return Math.round(d / 2 + random() * (d / 2));
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
 * Fetch-based SSE subscription (so it can send `Authorization`), with
 * reconnect + exponential backoff + jitter (base = server `retry:`),
 * `Last-Event-ID` resume, dedupe by event id, `refetch` handling and
 * optional debounced batching.
 */
export function subscribeStream(conn: StreamConnection, listener: StreamListener, opts: SubscribeOptions = {}): Unsubscribe {
  const debounceMs = Math.max(0, opts.debounceMs ?? 0);
  const maxRetryMs = opts.maxRetryMs ?? DEFAULT_MAX_RETRY_MS;
  let retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
  let lastId = opts.lastEventId != null ? String(opts.lastEventId) : '';
  let lastSeq = lastId !== '' && Number.isFinite(Number(lastId)) ? Number(lastId) : -Infinity;
  let attempt = 0;
  let stopped = false;
  let controller: AbortController | null = null;
  let sleepTimer: ReturnType<typeof setTimeout> | undefined;
  let wakeSleep: (() => void) | undefined;
  let pending: BellhopEvent[] = [];
  let flushTimer: ReturnType<typeof setTimeout> | undefined;

  const status: NonNullable<SubscribeOptions['onStatus']> = (s, err) => {
    if (stopped && s !== 'closed') return;
    try {
      opts.onStatus?.(s, err);
    } catch (e) {
      console.error('[bellhop] onStatus threw', e);
    }
  };

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

  const deliver = (ev: BellhopEvent) => {
    if (debounceMs === 0) {
      emit([ev]);
      return;
    }
    pending.push(ev);
    if (flushTimer === undefined) flushTimer = setTimeout(flush, debounceMs);
  };

  const onMessage = (msg: SSEMessage) => {
    if (msg.event !== 'notification') return;
    const ev = decodeEvent(msg);
    if (!ev) return;
    const hasSeq = Number.isFinite(ev.seq);
    if (ev.op === 'refetch') {
      // The server could not replay: its id is the new resume position, even if lower.
      if (hasSeq) lastSeq = ev.seq;
      lastId = msg.id || (hasSeq ? String(ev.seq) : lastId);
      deliver(ev);
      return;
    }
    if (hasSeq) {
      if (ev.seq <= lastSeq) return; // duplicate (e.g. replayed after resume)
      lastSeq = ev.seq;
      lastId = msg.id || String(ev.seq);
    }
    deliver(ev);
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wakeSleep = resolve;
      sleepTimer = setTimeout(resolve, ms);
    });

  const connectOnce = async (): Promise<'closed' | 'stop'> => {
    controller = new AbortController();
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    const token = await conn.resolveToken();
    if (stopped) return 'stop';
    if (token) headers.Authorization = `Bearer ${token}`;
    if (lastId !== '') headers['Last-Event-ID'] = lastId;
    const res = await conn.fetch(conn.url, {
      method: 'GET',
      headers,
      credentials: conn.credentials,
      signal: controller.signal,
      cache: 'no-store',
    });
    if (res.status === 204) {
      // Per spec, 204 No Content means "stop reconnecting".
      return 'stop';
    }
    if (!res.ok) throw await errorFromResponse(res);
    const ct = res.headers.get('content-type') ?? '';
    if (!ct.toLowerCase().includes('text/event-stream')) {
      throw new BellhopError(res.status, 'bad_content_type', `expected text/event-stream, got ${ct || 'nothing'}`);
    }
    if (!res.body) throw new BellhopError(res.status, 'no_body', 'streaming response bodies are not supported');
    status('open');
    attempt = 0;
    const parser = new SSEParser(
      {
        onMessage,
        onRetry: (ms) => {
          retryMs = ms;
        },
        // `id: N` with no data (the relay sends its head on connect): resume
        // from N next time, as EventSource does, though no event was seen.
        onLastEventId: (id) => {
          lastId = id;
        },
      },
      lastId,
    );
    const reader = res.body.getReader();
    const decoder = new TextDecoder('utf-8');
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        if (stopped) return 'stop';
      }
      parser.feed(decoder.decode());
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
            status('closed');
          }
          return;
        }
        status('closed');
      } catch (err) {
        if (stopped) return;
        status('error', err);
        attempt++;
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
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    pending = [];
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
