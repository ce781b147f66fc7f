import { afterEach, describe, expect, it } from 'vitest';
import { BellhopError, createClient, notificationActions, safeUrl } from '../src';
import { json, notification, startServer, type TestServer } from './helpers/server';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('createClient requests', () => {
  it('seen, archive, unarchive, the archived filter and the unseen count', async () => {
    server = await startServer((_req, res, rec) => {
      if (rec.path === '/notifications/seen') json(res, 200, { updated: 2 });
      else if (rec.path === '/notifications/unread/count') json(res, 200, { count: 4, capped: false, unseen: 2, unseen_capped: true });
      else if (rec.path === '/notifications') json(res, 200, { notifications: [], next_cursor: null });
      else json(res, 200, notification('x/1', { archived_at: rec.path.endsWith('/archive') ? '2024-01-02T00:00:00Z' : null }));
    });
    const client = createClient({ baseUrl: server.url, token: 't' });
    expect(await client.markSeen()).toEqual({ updated: 2 });
    await client.markSeen({ upTo: 1700000000000123 });
    expect((await client.archive('x/1')).archived_at).toBe('2024-01-02T00:00:00Z');
    expect((await client.unarchive('x/1')).archived_at).toBeNull();
    expect(await client.unreadCount()).toEqual({ count: 4, capped: false, unseen: 2, unseen_capped: true });
    await client.list({ archived: 'only' });
    await client.list({ archived: true });
    await client.list({ archived: false });
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /notifications/seen',
      'POST /notifications/seen?up_to=1700000000000123',
      'POST /notifications/x%2F1/archive',
      'POST /notifications/x%2F1/unarchive',
      'GET /notifications/unread/count',
      'GET /notifications?archived=only',
      'GET /notifications?archived=true',
      'GET /notifications',
    ]);
  });

  it('list sends limit, cursor, unread and repeated type, with the bearer token', async () => {
    server = await startServer((_req, res) => json(res, 200, { notifications: [notification('a')], next_cursor: 'c2' }));
    const client = createClient({ baseUrl: server.url + '/', token: 'tok-1' });
    const page = await client.list({ limit: 5, cursor: 'c1', unread: true, type: ['a.b', 'c.d'] });
    expect(page.next_cursor).toBe('c2');
    expect(page.notifications[0].id).toBe('a');
    const r = server.requests[0];
    expect(r.method).toBe('GET');
    expect(r.path).toBe('/notifications');
    expect(r.query.get('limit')).toBe('5');
    expect(r.query.get('cursor')).toBe('c1');
    expect(r.query.get('unread')).toBe('true');
    expect(r.query.getAll('type')).toEqual(['a.b', 'c.d']);
    expect(r.headers.authorization).toBe('Bearer tok-1');
    expect(r.headers.accept).toBe('application/json');
  });

  it('list without options sends no query and no Authorization when there is no token', async () => {
    server = await startServer((_req, res) => json(res, 200, { notifications: [], next_cursor: null }));
    const client = createClient({ baseUrl: server.url, credentials: 'include' });
    const page = await client.list();
    expect(page).toEqual({ notifications: [], next_cursor: null });
    expect(server.requests[0].url).toBe('/notifications');
    expect(server.requests[0].headers.authorization).toBeUndefined();
  });

  it('calls getToken for every request', async () => {
    server = await startServer((_req, res) => json(res, 200, { count: 3, capped: false }));
    let n = 0;
    const client = createClient({ baseUrl: server.url, token: 'ignored', getToken: async () => `t${++n}` });
    expect(await client.unreadCount()).toEqual({ count: 3, capped: false });
    await client.unreadCount();
    expect(server.requests.map((r) => r.path)).toEqual(['/notifications/unread/count', '/notifications/unread/count']);
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer t1', 'Bearer t2']);
  });

  it('uses the right method and path for read, unread, read-all and delete', async () => {
    server = await startServer((req, res, rec) => {
      if (req.method === 'DELETE') {
        res.writeHead(204);
        res.end();
      } else if (rec.path === '/notifications/read-all') json(res, 200, { updated: 5 });
      else json(res, 200, notification('x/1', { read_at: rec.path.endsWith('/read') ? '2024-01-02T00:00:00Z' : null }));
    });
    const client = createClient({ baseUrl: server.url, token: 't' });
    expect((await client.markRead('x/1')).read_at).toBe('2024-01-02T00:00:00Z');
    expect((await client.markUnread('x/1')).read_at).toBeNull();
    expect(await client.markAllRead()).toEqual({ updated: 5 });
    expect(await client.remove('x/1')).toBeUndefined();
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /notifications/x%2F1/read',
      'POST /notifications/x%2F1/unread',
      'POST /notifications/read-all',
      'DELETE /notifications/x%2F1',
    ]);
  });

  it('getPreferences and setPreferences GET and PUT /notifications/preferences with a JSON body', async () => {
    const bodies: string[] = [];
    let stored: unknown = { types: {} };
    server = await startServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push(`${req.headers['content-type'] ?? ''} ${body}`);
        if (req.method === 'PUT') stored = JSON.parse(body);
        json(res, 200, stored);
      });
    });
    const client = createClient({ baseUrl: server.url, token: 't' });
    expect(await client.getPreferences()).toEqual({ types: {} });
    const prefs = { types: { '*': { sse: false }, 'invoice.paid': { sse: true, webhook: false } } };
    expect(await client.setPreferences(prefs)).toEqual(prefs);
    expect(await client.getPreferences()).toEqual(prefs);
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /notifications/preferences',
      'PUT /notifications/preferences',
      'GET /notifications/preferences',
    ]);
    expect(bodies[0]).toBe(' ');
    expect(bodies[1]).toBe(`application/json ${JSON.stringify(prefs)}`);
    expect(server.requests[1].headers.authorization).toBe('Bearer t');
  });

  it('setPreferences surfaces the relay\'s 400 as a BellhopError', async () => {
    server = await startServer((_req, res) =>
      json(res, 400, { error: 'bad_preferences', message: 'type "a" has unknown channel "email"' }),
    );
    const client = createClient({ baseUrl: server.url });
    const err = await client.setPreferences({ types: { a: { email: false } as never } }).catch((e) => e);
    expect(err).toMatchObject({ status: 400, code: 'bad_preferences' });
  });

  it('maps error bodies to BellhopError with status, code and message', async () => {
    server = await startServer((_req, res) => json(res, 404, { error: 'not_found', message: 'notification not found' }));
    const client = createClient({ baseUrl: server.url });
    const err = await client.markRead('nope').catch((e) => e);
    expect(err).toBeInstanceOf(BellhopError);
    expect(err).toMatchObject({ status: 404, code: 'not_found', message: 'notification not found', name: 'BellhopError' });
  });

  it('keeps the WWW-Authenticate header of a 401', async () => {
    server = await startServer((_req, res) =>
      json(res, 401, { error: 'unauthorized', message: 'token expired' }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' }),
    );
    const err = await createClient({ baseUrl: server.url, token: 'old' }).unreadCount().catch((e) => e);
    expect(err).toMatchObject({ status: 401, code: 'unauthorized', message: 'token expired' });
    expect(err.wwwAuthenticate).toBe('Bearer error="invalid_token"');
  });

  it('falls back to a status-derived code for non-JSON error bodies', async () => {
    server = await startServer((_req, res) => {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end('bad gateway');
    });
    const err = await createClient({ baseUrl: server.url }).list().catch((e) => e);
    expect(err).toMatchObject({ status: 502, code: 'server_error', message: 'bad gateway' });
  });

  it('maps network failures to status 0 / network_error', async () => {
    server = await startServer((_req, res) => json(res, 200, {}));
    const url = server.url;
    await server.close();
    server = undefined;
    const err = await createClient({ baseUrl: url }).unreadCount().catch((e) => e);
    expect(err).toBeInstanceOf(BellhopError);
    expect(err).toMatchObject({ status: 0, code: 'network_error' });
  });

  it('uses a custom fetch and relative paths when baseUrl is empty', async () => {
    const seen: string[] = [];
    const client = createClient({
      baseUrl: '',
      credentials: 'include',
      fetch: async (input, init) => {
        seen.push(`${init?.method} ${String(input)} ${init?.credentials}`);
        return new Response(JSON.stringify({ count: 1, capped: true }), { status: 200 });
      },
    });
    expect(await client.unreadCount()).toEqual({ count: 1, capped: true });
    expect(seen).toEqual(['GET /notifications/unread/count include']);
  });
});

describe('safeUrl', () => {
  const base = 'https://app.example/inbox';
  it('follows http(s) and relative URLs', () => {
    expect(safeUrl('https://x.example/a?b#c', base)).toBe('https://x.example/a?b#c');
    expect(safeUrl('http://x.example/', base)).toBe('http://x.example/');
    expect(safeUrl('/orders/7', base)).toBe('https://app.example/orders/7');
    expect(safeUrl('orders/7', base)).toBe('https://app.example/orders/7');
    expect(safeUrl('//cdn.example/a.png', base)).toBe('https://cdn.example/a.png');
  });
  it('refuses every other scheme, however it is spelled', () => {
    for (const bad of [
      'javascript:alert(1)',
      'JavaScript:alert(1)',
      '  javascript:alert(1)',
      'java\tscript:alert(1)',
      'java\nscript:alert(1)',
      '\u0000javascript:alert(1)',
      'javascript&colon;alert(1)x:',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:msgbox(1)',
      'file:///etc/passwd',
      'blob:https://app.example/1',
      '',
      '   ',
    ]) {
      const got = safeUrl(bad, base);
      expect(got === null || got.startsWith('https://app.example/'), `${JSON.stringify(bad)} -> ${got}`).toBe(true);
    }
    expect(safeUrl('javascript:alert(1)', base)).toBeNull();
    expect(safeUrl('java\tscript:alert(1)', base)).toBeNull();
    expect(safeUrl(42, base)).toBeNull();
    expect(safeUrl({ toString: () => 'https://x.example' }, base)).toBeNull();
  });
  it('notificationActions keeps well-formed actions and drops unsafe urls', () => {
    const actions = notificationActions(
      { data: { actions: [{ id: 'a', label: 'A', url: 'javascript:x' }, { id: 'b', label: 'B', url: '/b' }, { id: 1, label: 'C' }, null, 'x'] as never } },
      base,
    );
    expect(actions).toEqual([{ id: 'a', label: 'A' }, { id: 'b', label: 'B', url: 'https://app.example/b' }]);
  });
});
