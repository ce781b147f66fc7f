import type http from 'node:http';
import { json, notification, startServer, type TestServer } from './server';

type N = Omit<ReturnType<typeof notification>, "read_at"> & {
  read_at: string | null;
  seen_at?: string | null;
  archived_at?: string | null;
};

/** A tiny in-memory relay speaking the Bellhop HTTP/SSE contract. */
export async function startFakeRelay(initial: N[] = [], opts: { countOverride?: number; failList?: boolean } = {}) {
  const state = { items: [...initial], seq: 0, countOverride: opts.countOverride, failList: !!opts.failList, failSeen: false };
  const streams = new Set<http.ServerResponse>();
  const server: TestServer = await startServer((req, res, rec) => {
    const m = rec.method;
    const p = rec.path;
    if (m === 'GET' && p === '/notifications/stream') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('retry: 50\n: hello\n\n');
      streams.add(res);
      req.on('close', () => streams.delete(res));
      return;
    }
    if (m === 'GET' && p === '/notifications') {
      if (state.failList) return json(res, 500, { error: 'internal', message: 'database unavailable' });
      const unread = rec.query.get('unread') === 'true';
      const archived = rec.query.get('archived');
      const keep = (n: N) =>
        (!unread || !n.read_at) && (archived === 'true' || (archived === 'only' ? !!n.archived_at : !n.archived_at));
      return json(res, 200, { notifications: state.items.filter(keep), next_cursor: null });
    }
    if (m === 'GET' && p === '/notifications/unread/count') {
      const inbox = state.items.filter((n) => !n.archived_at);
      const count = state.countOverride ?? inbox.filter((n) => !n.read_at).length;
      const unseen = state.countOverride ?? inbox.filter((n) => !n.seen_at).length;
      return json(res, 200, { count, capped: false, unseen, unseen_capped: false });
    }
    if (m === 'POST' && p === '/notifications/seen') {
      if (state.failSeen) return json(res, 500, { error: 'internal', message: 'database unavailable' });
      const unseen = state.items.filter((n) => !n.seen_at);
      unseen.forEach((n) => (n.seen_at = new Date().toISOString()));
      state.countOverride = undefined;
      return json(res, 200, { updated: unseen.length });
    }
    if (m === 'POST' && p === '/notifications/read-all') {
      const unread = state.items.filter((n) => !n.read_at);
      unread.forEach((n) => (n.read_at = new Date().toISOString()));
      state.countOverride = undefined;
      return json(res, 200, { updated: unread.length });
    }
    const match = /^\/notifications\/([^/]+)(?:\/(read|unread|archive|unarchive))?$/.exec(p);
    const item = match && state.items.find((n) => n.id === decodeURIComponent(match[1]));
    if (!match || !item) return json(res, 404, { error: 'not_found', message: 'no such notification' });
    if (m === 'DELETE' && !match[2]) {
      state.items = state.items.filter((n) => n !== item);
      res.writeHead(204);
      return res.end();
    }
    if (m === 'POST' && (match[2] === 'archive' || match[2] === 'unarchive')) {
      item.archived_at = match[2] === 'archive' ? new Date().toISOString() : null;
      return json(res, 200, item);
    }
    if (m === 'POST' && match[2]) {
      item.read_at = match[2] === 'read' ? new Date().toISOString() : null;
      return json(res, 200, item);
    }
    json(res, 405, { error: 'method_not_allowed', message: 'nope' });
  });
  return {
    ...server,
    state,
    /** Push a `notification` event to every open stream. */
    push(op: string, fields: Record<string, unknown>) {
      state.seq++;
      const payload = { seq: state.seq, op, type: 'x', database_key: null, read_at: null, sse: null, ...fields };
      for (const s of streams) s.write(`id: ${state.seq}\nevent: notification\ndata: ${JSON.stringify(payload)}\n\n`);
    },
    streamCount: () => streams.size,
    /** End every open stream (the client reconnects after `retry:`). */
    dropStreams() {
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}
