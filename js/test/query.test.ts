import { InfiniteQueryObserver, MutationObserver, QueryClient, QueryObserver } from '@tanstack/query-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BellhopClient, Notification, NotificationPage, Preferences, UnreadCount } from '../src';
import { BellhopError } from '../src';
import {
  bellhopKeys,
  invalidateOnEvent,
  invalidateOnReconnect,
  invalidateOnReopen,
  archiveMutationOptions,
  markAllReadMutationOptions,
  markReadMutationOptions,
  markSeenMutationOptions,
  markUnreadMutationOptions,
  notificationsInfiniteQueryOptions,
  preferencesQueryOptions,
  removeMutationOptions,
  setPreferencesMutationOptions,
  unreadCountQueryOptions,
  type NotificationListData,
} from '../src/query';
import { notification, waitUntil } from './helpers/server';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** In-memory fake whose mutations wait on a deferred we control. */
function fakeClient() {
  const calls: string[] = [];
  let pending = deferred<unknown>();
  const client: BellhopClient = {
    baseUrl: '',
    list: async (opts = {}) => {
      calls.push(`list cursor=${opts.cursor ?? ''} unread=${!!opts.unread}`);
      return opts.cursor
        ? { notifications: [notification('c')], next_cursor: null }
        : { notifications: [notification('a'), notification('b', { read_at: '2024-01-01T00:00:00Z' })], next_cursor: 'p2' };
    },
    unreadCount: async () => {
      calls.push('count');
      return { count: 4, capped: false };
    },
    markRead: (id) => (calls.push(`read ${id}`), pending.promise as Promise<Notification>),
    markUnread: (id) => (calls.push(`unread ${id}`), pending.promise as Promise<Notification>),
    markAllRead: () => (calls.push('readAll'), pending.promise as Promise<{ updated: number }>),
    markSeen: (opts) => (calls.push(`seen ${opts?.upTo ?? ''}`), pending.promise as Promise<{ updated: number }>),
    archive: (id) => (calls.push(`archive ${id}`), pending.promise as Promise<Notification>),
    unarchive: (id) => (calls.push(`unarchive ${id}`), pending.promise as Promise<Notification>),
    remove: (id) => (calls.push(`remove ${id}`), pending.promise as Promise<void>),
    getPreferences: async () => (calls.push('prefs'), { types: { '*': { sse: false } } }),
    setPreferences: (p) => (calls.push(`setPrefs ${JSON.stringify(p)}`), pending.promise as Promise<Preferences>),
    subscribe: () => () => {},
  };
  return {
    client,
    calls,
    settle: () => pending,
    reset: () => {
      pending = deferred<unknown>();
    },
  };
}

let qc: QueryClient;
beforeEach(() => {
  qc = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
});
afterEach(() => qc.clear());

const listKey = bellhopKeys.list({});
function seed() {
  const page: NotificationPage = {
    notifications: [notification('a'), notification('b', { read_at: '2024-01-01T00:00:00Z' })],
    next_cursor: null,
  };
  qc.setQueryData(listKey, { pages: [page], pageParams: [null] });
  qc.setQueryData<UnreadCount>(bellhopKeys.count(), { count: 3, capped: false });
}
const rows = () => (qc.getQueryData<NotificationListData>(listKey) as { pages: NotificationPage[] }).pages.flatMap((p) => p.notifications);
const row = (id: string) => rows().find((n) => n.id === id);
const count = () => qc.getQueryData<UnreadCount>(bellhopKeys.count())?.count;

describe('bellhopKeys', () => {
  it('builds hierarchical keys with normalized filters', () => {
    expect(bellhopKeys.all).toEqual(['bellhop']);
    expect(bellhopKeys.count()).toEqual(['bellhop', 'count']);
    expect(bellhopKeys.lists()).toEqual(['bellhop', 'list']);
    expect(bellhopKeys.list({ type: ['b', 'a'], unread: false })).toEqual(['bellhop', 'list', { type: ['a', 'b'] }]);
    expect(bellhopKeys.list({ type: 'a', unread: true })).toEqual(['bellhop', 'list', { unread: true, type: ['a'] }]);
  });
});

describe('query options', () => {
  it('unreadCountQueryOptions fetches the count', async () => {
    const f = fakeClient();
    expect(await qc.fetchQuery(unreadCountQueryOptions(f.client))).toEqual({ count: 4, capped: false });
  });

  it('notificationsInfiniteQueryOptions pages with the cursor and stops when next_cursor is null', async () => {
    const f = fakeClient();
    const obs = new InfiniteQueryObserver(qc, notificationsInfiniteQueryOptions(f.client, { unread: true }));
    const unsub = obs.subscribe(() => {});
    await waitUntil(() => obs.getCurrentResult().isSuccess);
    expect(obs.getCurrentResult().hasNextPage).toBe(true);
    await obs.fetchNextPage();
    const r = obs.getCurrentResult();
    expect(r.data!.pages.flatMap((p) => p.notifications.map((n) => n.id))).toEqual(['a', 'b', 'c']);
    expect(r.hasNextPage).toBe(false);
    expect(f.calls).toEqual(['list cursor= unread=true', 'list cursor=p2 unread=true']);
    unsub();
  });
});

describe('optimistic mutations', () => {
  it('markRead patches the row and count at once, then rolls back on error', async () => {
    seed();
    const f = fakeClient();
    const m = new MutationObserver(qc, markReadMutationOptions(f.client, qc));
    const done = m.mutate('a').catch((e) => e);
    await waitUntil(() => row('a')?.read_at);
    expect(count()).toBe(2);
    f.settle().reject(new BellhopError(500, 'server_error', 'boom'));
    const err = await done;
    expect(err).toMatchObject({ status: 500 });
    expect(row('a')?.read_at).toBeNull();
    expect(count()).toBe(3);
  });

  it('markRead keeps the server row on success and invalidates count + lists', async () => {
    seed();
    const f = fakeClient();
    const m = new MutationObserver(qc, markReadMutationOptions(f.client, qc));
    const done = m.mutate('a');
    await waitUntil(() => row('a')?.read_at);
    f.settle().resolve(notification('a', { read_at: '2030-01-01T00:00:00Z' }));
    await done;
    expect(row('a')?.read_at).toBe('2030-01-01T00:00:00Z');
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
  });

  it('markRead of an already read row does not change the count', async () => {
    seed();
    const f = fakeClient();
    const done = new MutationObserver(qc, markReadMutationOptions(f.client, qc)).mutate('b');
    await waitUntil(() => f.calls.length > 0);
    expect(count()).toBe(3);
    f.settle().resolve(notification('b', { read_at: '2024-01-01T00:00:00Z' }));
    await done;
  });

  it('markUnread increments the count and rolls back', async () => {
    seed();
    const f = fakeClient();
    const done = new MutationObserver(qc, markUnreadMutationOptions(f.client, qc)).mutate('b').catch(() => {});
    await waitUntil(() => row('b')?.read_at === null);
    expect(count()).toBe(4);
    f.settle().reject(new Error('x'));
    await done;
    expect(row('b')?.read_at).toBe('2024-01-01T00:00:00Z');
    expect(count()).toBe(3);
  });

  it('markAllRead zeroes the count, marks every row read, and rolls back', async () => {
    seed();
    const f = fakeClient();
    const done = new MutationObserver(qc, markAllReadMutationOptions(f.client, qc)).mutate().catch(() => {});
    await waitUntil(() => count() === 0);
    expect(rows().every((n) => n.read_at)).toBe(true);
    f.settle().reject(new Error('x'));
    await done;
    expect(count()).toBe(3);
    expect(row('a')?.read_at).toBeNull();
  });

  it('remove drops the row and decrements the count for an unread row; rollback restores it', async () => {
    seed();
    const f = fakeClient();
    const done = new MutationObserver(qc, removeMutationOptions(f.client, qc)).mutate('a').catch(() => {});
    await waitUntil(() => !row('a'));
    expect(count()).toBe(2);
    expect(f.calls).toEqual(['remove a']);
    f.settle().reject(new Error('x'));
    await done;
    expect(rows().map((n) => n.id)).toEqual(['a', 'b']);
    expect(count()).toBe(3);
  });
});

describe('invalidateOnEvent', () => {
  const ev = (op: string, extra: Record<string, unknown> = {}) => ({ seq: 1, op, id: 'a', ...extra });

  it('updated + sse merges the payload into the cached row at once, then refetches the count and every list', async () => {
    seed();
    const unreadKey = bellhopKeys.list({ unread: true });
    const archivedKey = bellhopKeys.list({ archived: 'only' });
    qc.setQueryData(unreadKey, { pages: [{ notifications: [], next_cursor: null }], pageParams: [null] });
    qc.setQueryData(archivedKey, {
      pages: [{ notifications: [notification('a', { archived_at: '2024-01-01T00:00:00Z' })], next_cursor: null }],
      pageParams: [null],
    });
    const done = invalidateOnEvent(qc, ev('updated', { sse: { progress: 40 }, database_key: 'export-1' }));
    // Before any refetch: the progress bar moves at once.
    expect(row('a')?.data).toMatchObject({ progress: 40, title: 'Title a' });
    expect(row('a')?.database_key).toBe('export-1');
    await done;
    // A progress upsert makes the row unread, unseen and unarchived again, and
    // replaces fields only the database copy carries: no list can be patched
    // from the event alone.
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
    expect(qc.getQueryState(unreadKey)?.isInvalidated).toBe(true);
    expect(qc.getQueryState(archivedKey)?.isInvalidated).toBe(true);
  });

  it('updated of a cached, seen row refetches an active count (the unseen badge comes back)', async () => {
    seed();
    qc.setQueryData<UnreadCount>(bellhopKeys.count(), { count: 1, capped: false, unseen: 0, unseen_capped: false });
    const f = fakeClient();
    const obs = new QueryObserver(qc, { ...unreadCountQueryOptions(f.client), staleTime: Infinity });
    const unsub = obs.subscribe(() => {});
    await invalidateOnEvent(qc, ev('updated', { sse: { progress: 60 }, database_key: 'export-1' }));
    await waitUntil(() => count() === 4, 1000, 'the count refetched');
    expect(f.calls).toEqual(['count']);
    unsub();
  });

  it('invalidates lists when an updated row is not cached', async () => {
    seed();
    await invalidateOnEvent(qc, ev('updated', { id: 'zzz', sse: { progress: 1 } }));
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
  });

  it('created invalidates count and lists', async () => {
    seed();
    await invalidateOnEvent(qc, [ev('created', { id: 'new' })]);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
  });

  it('read/deleted/read_all patch rows and invalidate the count only', async () => {
    seed();
    const unreadKey = bellhopKeys.list({ unread: true });
    qc.setQueryData(unreadKey, { pages: [{ notifications: [notification('a')], next_cursor: null }], pageParams: [null] });
    await invalidateOnEvent(qc, ev('read', { read_at: '2025-05-05T00:00:00Z' }));
    expect(row('a')?.read_at).toBe('2025-05-05T00:00:00Z');
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(false);
    expect(qc.getQueryState(unreadKey)?.isInvalidated).toBe(true);

    await invalidateOnEvent(qc, ev('unread'));
    expect(row('a')?.read_at).toBeNull();
    await invalidateOnEvent(qc, ev('deleted', { id: 'b' }));
    expect(rows().map((n) => n.id)).toEqual(['a']);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(false);
  });

  it('read_all and seen mark the cached rows at once, then refetch the lists', async () => {
    // A row whose transaction committed just after the marker's can come
    // first on the stream: the server's list undoes the mark on it.
    seed();
    await invalidateOnEvent(qc, ev('read_all', { id: 'batch-1' }));
    expect(rows().every((n) => n.read_at)).toBe(true);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
    seed();
    await invalidateOnEvent(qc, { seq: 3, op: 'seen', id: '' });
    expect(rows().every((n) => !!n.seen_at)).toBe(true);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
  });

  it('refetch drops cached data and refetches active queries', async () => {
    seed();
    const f = fakeClient();
    const obs = new QueryObserver(qc, { ...unreadCountQueryOptions(f.client), staleTime: Infinity });
    const unsub = obs.subscribe(() => {});
    expect(f.calls).toEqual([]); // seeded + fresh: no fetch yet
    await invalidateOnEvent(qc, [ev('created'), ev('refetch', { id: '' })]);
    expect(qc.getQueryData(listKey)).toBeUndefined();
    await waitUntil(() => count() === 4);
    expect(f.calls).toEqual(['count']);
    unsub();
  });
});

describe('invalidateOnReopen / invalidateOnReconnect', () => {
  const stale = () => [qc.getQueryState(bellhopKeys.count())?.isInvalidated, qc.getQueryState(listKey)?.isInvalidated];

  it('invalidateOnReconnect invalidates the count and every list', async () => {
    seed();
    const unreadKey = bellhopKeys.list({ unread: true });
    qc.setQueryData(unreadKey, { pages: [], pageParams: [] });
    await invalidateOnReconnect(qc);
    expect(stale()).toEqual([true, true]);
    expect(qc.getQueryState(unreadKey)?.isInvalidated).toBe(true);
  });

  it('invalidates on every open, the first included, and forwards each status', async () => {
    seed();
    const seen: string[] = [];
    const onStatus = invalidateOnReopen(qc, (s) => seen.push(s));
    onStatus('connecting');
    expect(stale()).toEqual([false, false]);
    onStatus('open');
    // A new stream starts at the relay's head: what was committed between
    // the queries' fetch and the open is neither counted nor sent.
    await waitUntil(() => stale().every(Boolean), 1000, 'invalidated at the first open');
    seed(); // fresh again
    onStatus('closed');
    onStatus('connecting');
    onStatus('error', new Error('down'));
    expect(stale()).toEqual([false, false]);
    onStatus('connecting');
    onStatus('open');
    await waitUntil(() => stale().every(Boolean), 1000, 'invalidated after the reopen');
    seed(); // fresh again
    onStatus('closed');
    onStatus('open');
    await waitUntil(() => stale().every(Boolean), 1000, 'invalidated after the second reopen');
    expect(seen).toEqual(['connecting', 'open', 'closed', 'connecting', 'error', 'connecting', 'open', 'closed', 'open']);
  });

  it('refetches a first fetch that was still in flight at the open', async () => {
    const f = fakeClient();
    const answers = [deferred<UnreadCount>(), deferred<UnreadCount>()];
    let n = 0;
    f.client.unreadCount = () => (f.calls.push('count'), answers[n++].promise);
    const obs = new QueryObserver(qc, unreadCountQueryOptions(f.client));
    const unsub = obs.subscribe(() => {});
    await waitUntil(() => f.calls.length === 1, 1000, 'the first fetch');
    invalidateOnReopen(qc)('open');
    // The server answered the first fetch from before a change the new
    // stream will never send.
    answers[0].resolve({ count: 1, capped: false });
    await waitUntil(() => f.calls.length === 2, 1000, 'a second fetch');
    answers[1].resolve({ count: 2, capped: false });
    await waitUntil(() => count() === 2, 1000, 'the second answer');
    unsub();
  });

  it('refetches an active count query on the first open and on a reopen', async () => {
    const f = fakeClient();
    const obs = new QueryObserver(qc, unreadCountQueryOptions(f.client));
    const unsub = obs.subscribe(() => {});
    await waitUntil(() => count() === 4, 1000, 'the first fetch');
    const onStatus = invalidateOnReopen(qc);
    onStatus('open');
    await waitUntil(() => f.calls.length === 2 && !qc.isFetching(), 1000, 'a refetch at the first open');
    onStatus('closed');
    onStatus('open');
    await waitUntil(() => f.calls.length === 3, 1000, 'a refetch at the reopen');
    expect(f.calls).toEqual(['count', 'count', 'count']);
    unsub();
  });
});

describe('preferences', () => {
  const prefs = () => qc.getQueryData<Preferences>(bellhopKeys.preferences());

  it('preferencesQueryOptions fetches them under their own key', async () => {
    const f = fakeClient();
    expect(bellhopKeys.preferences()).toEqual(['bellhop', 'preferences']);
    const data = await qc.fetchQuery(preferencesQueryOptions(f.client));
    expect(data).toEqual({ types: { '*': { sse: false } } });
    expect(f.calls).toEqual(['prefs']);
  });

  it('setPreferences shows the new ones at once, keeps the stored ones, and refetches count and lists', async () => {
    seed();
    qc.setQueryData<Preferences>(bellhopKeys.preferences(), { types: {} });
    const f = fakeClient();
    const m = new MutationObserver(qc, setPreferencesMutationOptions(f.client, qc));
    const next: Preferences = { types: { promo: { database: false } } };
    const done = m.mutate(next);
    await waitUntil(() => prefs()?.types.promo);
    expect(prefs()).toEqual(next);
    f.settle().resolve({ types: { promo: { database: false }, '*': {} } });
    await done;
    expect(prefs()).toEqual({ types: { promo: { database: false }, '*': {} } });
    expect(f.calls[0]).toBe(`setPrefs ${JSON.stringify(next)}`);
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
    expect(qc.getQueryState(listKey)?.isInvalidated).toBe(true);
  });

  it('setPreferences rolls back on error', async () => {
    const before: Preferences = { types: { chat: { sse: false } } };
    qc.setQueryData<Preferences>(bellhopKeys.preferences(), before);
    const f = fakeClient();
    const m = new MutationObserver(qc, setPreferencesMutationOptions(f.client, qc));
    const done = m.mutate({ types: {} }).catch((e) => e);
    await waitUntil(() => Object.keys(prefs()?.types ?? {}).length === 0);
    f.settle().reject(new BellhopError(400, 'bad_preferences', 'no'));
    expect(await done).toMatchObject({ status: 400 });
    expect(prefs()).toEqual(before);
  });
});

describe('seen, archive, expiry in the cache', () => {
  const archivedKey = bellhopKeys.list({ archived: 'only' });
  function seedBoth() {
    seed();
    qc.setQueryData(archivedKey, { pages: [{ notifications: [notification('z', { archived_at: '2024-01-01T00:00:00Z' })], next_cursor: null }], pageParams: [null] });
    qc.setQueryData<UnreadCount>(bellhopKeys.count(), { count: 3, capped: false, unseen: 2, unseen_capped: false });
  }
  const archivedRows = () => (qc.getQueryData<NotificationListData>(archivedKey) as { pages: NotificationPage[] }).pages.flatMap((p) => p.notifications);

  it('the archived filter is part of the key', () => {
    expect(bellhopKeys.list({ archived: 'only' })).not.toEqual(bellhopKeys.list({}));
    expect(bellhopKeys.list({ archived: false })).toEqual(bellhopKeys.list({}));
  });

  it('archived / unarchived events move the row between the inbox and the archive', async () => {
    seedBoth();
    await invalidateOnEvent(qc, { seq: 1, op: 'archived', id: 'a' });
    expect(rows().map((n) => n.id)).toEqual(['b']);
    await invalidateOnEvent(qc, { seq: 2, op: 'unarchived', id: 'z' });
    expect(archivedRows()).toEqual([]);
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
  });

  it('expired removes the row; seen marks rows seen', async () => {
    seedBoth();
    await invalidateOnEvent(qc, { seq: 1, op: 'seen', id: '' });
    expect(rows().every((n) => !!n.seen_at)).toBe(true);
    await invalidateOnEvent(qc, { seq: 2, op: 'expired', id: 'b' });
    expect(rows().map((n) => n.id)).toEqual(['a']);
    expect(qc.getQueryState(bellhopKeys.count())?.isInvalidated).toBe(true);
  });

  it('markSeen clears unseen at once and keeps the unread count', async () => {
    const f = fakeClient();
    seedBoth();
    const m = new MutationObserver(qc, markSeenMutationOptions(f.client, qc));
    const done = m.mutate();
    await waitUntil(() => f.calls.includes('seen '));
    expect(qc.getQueryData<UnreadCount>(bellhopKeys.count())).toEqual({ count: 3, capped: false, unseen: 0, unseen_capped: false });
    f.settle().resolve({ updated: 2 });
    await done;
  });

  it('archive is optimistic and rolls back on error', async () => {
    const f = fakeClient();
    seedBoth();
    const m = new MutationObserver(qc, archiveMutationOptions(f.client, qc));
    const done = m.mutate('a').catch(() => {});
    await waitUntil(() => f.calls.includes('archive a'));
    expect(rows().map((n) => n.id)).toEqual(['b']);
    f.settle().reject(new BellhopError(500, 'internal', 'boom'));
    await done;
    expect(rows().map((n) => n.id)).toEqual(['a', 'b']);
  });
});
