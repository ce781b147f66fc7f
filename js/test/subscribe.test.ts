import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay, createClient, type BellhopEvent, type StreamStatus } from '../src';
import { jitterUp, retryAfterMs } from '../src/core/subscribe';
import { json, sleep, sseEvent, startServer, waitUntil, type TestServer } from './helpers/server';

let server: TestServer | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  while (cleanups.length) cleanups.pop()!();
  await server?.close();
  server = undefined;
});

function sseHead(res: http.ServerResponse, retry = 20) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.write(`retry: ${retry}\n: connected\n\n`);
}

function collect(client: ReturnType<typeof createClient>, opts: Parameters<ReturnType<typeof createClient>['subscribe']>[1] = {}) {
  const calls: BellhopEvent[][] = [];
  const statuses: StreamStatus[] = [];
  const unsubscribe = client.subscribe((events) => calls.push(events), {
    retryMs: 20,
    ...opts,
    onStatus: (s) => statuses.push(s),
  });
  cleanups.push(unsubscribe);
  const seqs = () => calls.flat().map((e) => e.seq);
  return { calls, statuses, unsubscribe, seqs };
}

describe('subscribe (fetch + SSE against a real server)', () => {
  it('sends Authorization and Accept, parses notification events and ignores heartbeats/other events', async () => {
    server = await startServer((_req, res) => {
      sseHead(res);
      res.write(': ping\n\n');
      res.write('event: other\ndata: {"seq":100,"op":"created"}\n\n');
      res.write(sseEvent(1, 'created', { type: 'invoice.paid' }));
      res.write(sseEvent(2, 'updated', { sse: { progress: 40 }, database_key: 'export-1' }));
    });
    const client = createClient({ baseUrl: server.url, token: 'secret' });
    const s = collect(client);
    await waitUntil(() => s.seqs().length === 2, 3000, 'two events');
    expect(s.calls.flat()).toMatchObject([
      { seq: 1, op: 'created', id: 'n-1', type: 'invoice.paid' },
      { seq: 2, op: 'updated', sse: { progress: 40 }, database_key: 'export-1' },
    ]);
    const r = server.requests[0];
    expect(r.path).toBe('/notifications/stream');
    expect(r.headers.authorization).toBe('Bearer secret');
    expect(r.headers.accept).toBe('text/event-stream');
    expect(r.headers['last-event-id']).toBeUndefined();
    expect(s.statuses.slice(0, 2)).toEqual(['connecting', 'open']);
  });

  it('reconnects after the server closes, resumes with Last-Event-ID and dedupes replayed ids', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn === 1) {
        res.write(sseEvent(1, 'created') + sseEvent(2, 'created'));
        res.end(); // graceful shutdown
      } else {
        // replays 1 and 2 (already seen) and then 3
        res.write(sseEvent(1, 'created') + sseEvent(2, 'created') + sseEvent(3, 'read'));
      }
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.seqs().includes(3), 3000, 'event 3');
    await sleep(30);
    expect(s.seqs()).toEqual([1, 2, 3]);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1].headers['last-event-id']).toBe('2');
    expect(s.statuses).toEqual(['connecting', 'open', 'closed', 'connecting', 'open']);
  });

  it('starts from the lastEventId option', async () => {
    server = await startServer((_req, res) => {
      sseHead(res);
      res.write(sseEvent(7, 'created') + sseEvent(8, 'created'));
    });
    const s = collect(createClient({ baseUrl: server.url }), { lastEventId: 7 });
    await waitUntil(() => s.seqs().length > 0);
    await sleep(20);
    expect(s.seqs()).toEqual([8]);
    expect(server.requests[0].headers['last-event-id']).toBe('7');
  });

  it('delivers refetch and takes its id as the new resume position, even when lower', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn === 1) {
        res.write(sseEvent(10, 'created'));
        res.end();
      } else if (conn === 2) {
        // server lost its buffer (e.g. restarted): cannot replay from 10
        res.write(sseEvent(3, 'refetch', { id: '' }) + sseEvent(4, 'created'));
        res.end();
      } else {
        res.write(sseEvent(5, 'created'));
      }
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.seqs().includes(5), 3000, 'event 5');
    expect(s.calls.flat().map((e) => `${e.seq}:${e.op}`)).toEqual(['10:created', '3:refetch', '4:created', '5:created']);
    expect(server.requests.map((r) => r.headers['last-event-id'])).toEqual([undefined, '10', '4']);
  });

  it('an id-only frame (no data) sets the resume position: a stream that sent no event resumes with Last-Event-ID', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn === 1) {
        res.write('id: 7\n\n'); // what the relay sends on connect: its head, no event
        res.end(); // then drops
      }
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => server!.requests.length === 2, 3000, 'the reconnect');
    expect(server.requests[0].headers['last-event-id']).toBeUndefined();
    expect(server.requests[1].headers['last-event-id']).toBe('7');
    expect(s.calls).toEqual([]); // no event for an id-only frame
  });

  it('after a replay, a trailing id-only frame moves the resume position past what the replay held', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn === 1) {
        res.write(sseEvent(3, 'created') + 'id: 5\n\n');
        res.end();
      } else if (conn === 2) {
        // replay of (5, 9] held nothing for this recipient; head is 9
        res.write('id: 9\n\n');
        res.end();
      } else {
        res.write('id: 9\n\n' + sseEvent(10, 'created'));
      }
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.seqs().includes(10), 3000, 'event 10');
    expect(s.seqs()).toEqual([3, 10]);
    expect(server.requests.map((r) => r.headers['last-event-id'])).toEqual([undefined, '5', '9']);
  });

  it('ignores an id-only frame whose id contains NUL, and the id of an unterminated block', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn === 1) {
        res.write('id: 7\n\nid: 8\u00009\n\nid: 11\n'); // NUL id ignored; id: 11 never dispatched
        res.end();
      }
    });
    collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => server!.requests.length === 2, 3000, 'the reconnect');
    expect(server.requests[1].headers['last-event-id']).toBe('7');
  });

  it('calls getToken on every (re)connect', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn < 3) res.end();
    });
    let n = 0;
    const s = collect(createClient({ baseUrl: server.url, getToken: () => `tok${++n}` }));
    await waitUntil(() => s.statuses.filter((x) => x === 'open').length === 3, 3000, 'third open');
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer tok1', 'Bearer tok2', 'Bearer tok3']);
  });

  it('reports errors and retries with backoff after non-2xx responses', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      if (conn === 1) {
        res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer' });
        res.end(JSON.stringify({ error: 'unauthorized', message: 'expired' }));
      } else if (conn === 2) {
        res.writeHead(500);
        res.end();
      } else {
        sseHead(res);
        res.write(sseEvent(1, 'created'));
      }
    });
    const errors: unknown[] = [];
    const statuses: StreamStatus[] = [];
    const seen: number[] = [];
    const unsub = createClient({ baseUrl: server.url }).subscribe((ev) => seen.push(...ev.map((e) => e.seq)), {
      retryMs: 10,
      onStatus: (st, err) => {
        statuses.push(st);
        if (err) errors.push(err);
      },
    });
    cleanups.push(unsub);
    await waitUntil(() => seen.length === 1, 3000, 'event after errors');
    expect(statuses).toEqual(['connecting', 'error', 'connecting', 'error', 'connecting', 'open']);
    expect(errors).toMatchObject([{ status: 401, code: 'unauthorized' }, { status: 500 }]);
  });

  it('a refused event stream (what the relay sends at a limit): reports the error, waits its retry and resumes', async () => {
    let conn = 0;
    const at: number[] = [];
    server = await startServer((_req, res) => {
      conn++;
      at.push(Date.now());
      if (conn === 1) {
        sseHead(res);
        res.write(sseEvent(5, 'created'));
        res.end();
      } else if (conn === 2) {
        // As the relay answers a stream over a limit to a client that asks
        // for text/event-stream: 200, a retry, one refused event, the end.
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Retry-After': '1', Connection: 'close' });
        res.end('retry: 300\nevent: refused\ndata: {"reason":"too_many_streams","message":"this recipient already has 16 open streams","status":429,"retry_ms":300}\n\n');
      } else {
        sseHead(res);
        res.write(sseEvent(6, 'created'));
      }
    });
    const errors: unknown[] = [];
    const statuses: StreamStatus[] = [];
    const seen: number[] = [];
    const unsub = createClient({ baseUrl: server.url }).subscribe((ev) => seen.push(...ev.map((e) => e.seq)), {
      retryMs: 10,
      onStatus: (st, err) => {
        statuses.push(st);
        if (err) errors.push(err);
      },
    });
    cleanups.push(unsub);
    await waitUntil(() => seen.length === 2, 3000, 'the event after the refusal');
    expect(seen).toEqual([5, 6]);
    expect(errors).toMatchObject([{ status: 429, code: 'too_many_streams', message: 'this recipient already has 16 open streams' }]);
    expect(statuses).toEqual(['connecting', 'open', 'closed', 'connecting', 'error', 'connecting', 'open']);
    expect(server.requests[2].headers['last-event-id']).toBe('5');
    const waited = at[2] - at[1];
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(300 * 1.25 + 200);
  });

  it('429 or 503 with Retry-After: waits what the server asked, not the backoff', async () => {
    let conn = 0;
    const at: number[] = [];
    server = await startServer((_req, res) => {
      conn++;
      at.push(Date.now());
      if (conn === 1) {
        json(res, 503, { error: 'shutting_down', message: 'the relay is shutting down' }, { 'Retry-After': '1' });
      } else {
        sseHead(res);
        res.write(sseEvent(1, 'created'));
      }
    });
    const errors: unknown[] = [];
    const seen: number[] = [];
    const unsub = createClient({ baseUrl: server.url }).subscribe((ev) => seen.push(...ev.map((e) => e.seq)), {
      retryMs: 10,
      onStatus: (_st, err) => {
        if (err) errors.push(err);
      },
    });
    cleanups.push(unsub);
    await waitUntil(() => seen.length === 1, 4000, 'the event after the 503');
    expect(errors).toMatchObject([{ status: 503, code: 'shutting_down' }]);
    expect(at[1] - at[0]).toBeGreaterThanOrEqual(1000);
    expect(at[1] - at[0]).toBeLessThan(1250 + 300);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(jitterUp(1000, () => 0)).toBe(1000);
    expect(jitterUp(1000, () => 0.999)).toBeLessThanOrEqual(1250);
  });

  it('batches a burst into one call with debounceMs', async () => {
    server = await startServer((_req, res) => {
      sseHead(res);
      res.write([1, 2, 3, 4, 5].map((i) => sseEvent(i, 'created')).join(''));
    });
    const s = collect(createClient({ baseUrl: server.url }), { debounceMs: 40 });
    await waitUntil(() => s.calls.length > 0);
    await sleep(60);
    expect(s.calls).toHaveLength(1);
    expect(s.calls[0].map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('without debounce calls the listener once per event', async () => {
    server = await startServer((_req, res) => {
      sseHead(res);
      res.write([1, 2, 3].map((i) => sseEvent(i, 'created')).join(''));
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.seqs().length === 3);
    expect(s.calls.map((c) => c.length)).toEqual([1, 1, 1]);
  });

  it('unsubscribe closes the connection and stops reconnecting', async () => {
    let closed = 0;
    server = await startServer((req, res) => {
      req.on('close', () => closed++);
      sseHead(res);
      res.write(sseEvent(1, 'created'));
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.seqs().length === 1);
    s.unsubscribe();
    await waitUntil(() => closed === 1, 3000, 'server to see the close');
    await sleep(80);
    expect(server.requests).toHaveLength(1);
    expect(s.statuses.at(-1)).toBe('closed');
  });

  it('a stream silent for idleTimeoutMs (no byte, no ping) is dropped and resumed with Last-Event-ID', async () => {
    let conn = 0;
    server = await startServer((_req, res) => {
      conn++;
      sseHead(res);
      if (conn === 1) res.write(sseEvent(1, 'created')); // then nothing: a half-open connection
      else res.write(sseEvent(2, 'created'));
    });
    const errors: unknown[] = [];
    const statuses: StreamStatus[] = [];
    const seen: number[] = [];
    const unsub = createClient({ baseUrl: server.url }).subscribe((ev) => seen.push(...ev.map((e) => e.seq)), {
      retryMs: 10,
      idleTimeoutMs: 150,
      onStatus: (st, err) => {
        statuses.push(st);
        if (err) errors.push(err);
      },
    });
    cleanups.push(unsub);
    await waitUntil(() => seen.length === 2, 3000, 'the event after the reconnect');
    expect(seen).toEqual([1, 2]);
    expect(server.requests[1].headers['last-event-id']).toBe('1');
    expect(statuses.slice(0, 5)).toEqual(['connecting', 'open', 'error', 'connecting', 'open']);
    expect(errors[0]).toMatchObject({ status: 0, code: 'idle_timeout' });
  });

  it('heartbeats keep a stream with no events open; idleTimeoutMs: 0 never drops it', async () => {
    server = await startServer((_req, res) => {
      sseHead(res);
      const timer = setInterval(() => res.write(': ping\n\n'), 40);
      res.on('close', () => clearInterval(timer));
    });
    const pinged = collect(createClient({ baseUrl: server.url }), { idleTimeoutMs: 150 });
    await sleep(500);
    expect(server.requests).toHaveLength(1);
    expect(pinged.statuses).toEqual(['connecting', 'open']);
    pinged.unsubscribe();
    await server.close();

    server = await startServer((_req, res) => sseHead(res)); // silent after its first line
    const silent = collect(createClient({ baseUrl: server.url }), { idleTimeoutMs: 0 });
    await sleep(300);
    expect(server.requests).toHaveLength(1);
    expect(silent.statuses).toEqual(['connecting', 'open']);
  });

  it('stops when the server answers 204', async () => {
    server = await startServer((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.statuses.includes('closed'));
    await sleep(80);
    expect(server.requests).toHaveLength(1);
  });

  it('handles events split across network chunks', async () => {
    server = await startServer((_req, res) => {
      sseHead(res);
      const text = sseEvent(1, 'created').replace(/\n/g, '\r\n');
      let i = 0;
      const timer = setInterval(() => {
        if (i >= text.length) return clearInterval(timer);
        res.write(text.slice(i, i + 7));
        i += 7;
      }, 1);
      res.on('close', () => clearInterval(timer));
    });
    const s = collect(createClient({ baseUrl: server.url }));
    await waitUntil(() => s.seqs().length === 1);
    expect(s.calls[0][0]).toMatchObject({ seq: 1, op: 'created' });
  });
});

describe('backoffDelay', () => {
  it('grows exponentially, is capped and jittered within [d/2, d]', () => {
    expect(backoffDelay(1000, 0, 30000, () => 1)).toBe(1000);
    expect(backoffDelay(1000, 0, 30000, () => 0)).toBe(500);
    expect(backoffDelay(1000, 3, 30000, () => 1)).toBe(8000);
    expect(backoffDelay(1000, 10, 30000, () => 1)).toBe(30000);
    expect(backoffDelay(2000, 1, 30000, () => 0.5)).toBe(3000);
  });
});
