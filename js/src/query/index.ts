import type { InfiniteData, QueryClient, QueryKey } from '@tanstack/query-core';
import type {
  BellhopClient,
  BellhopEvent,
  ListFilters,
  Notification,
  NotificationPage,
  Preferences,
  StreamStatus,
  UnreadCount,
} from '../core/types';

export type NotificationFilters = ListFilters;

/** Cache shape of a list query: infinite (pages) or a single page. */
export type NotificationListData = InfiniteData<NotificationPage, string | null> | NotificationPage;

function normalizeFilters(filters: NotificationFilters = {}): NotificationFilters {
  const out: NotificationFilters = {};
  if (filters.unread) out.unread = true;
  if (filters.type !== undefined) {
    const types = Array.isArray(filters.type) ? [...filters.type] : [filters.type];
    out.type = types.sort();
  }
  if (filters.limit !== undefined) out.limit = filters.limit;
  if (filters.archived) out.archived = filters.archived;
  return out;
}

/** Query-key factory. `lists()` is a prefix of every `list(filters)`; `all` of everything. */
export const bellhopKeys = {
  all: ['bellhop'] as const,
  count: () => ['bellhop', 'count'] as const,
  lists: () => ['bellhop', 'list'] as const,
  list: (filters?: NotificationFilters) => ['bellhop', 'list', normalizeFilters(filters)] as const,
  preferences: () => ['bellhop', 'preferences'] as const,
};

export function unreadCountQueryOptions(client: BellhopClient) {
  return {
    queryKey: bellhopKeys.count(),
    queryFn: ({ signal }: { signal?: AbortSignal }): Promise<UnreadCount> => client.unreadCount({ signal }),
  };
}

export function notificationsInfiniteQueryOptions(client: BellhopClient, filters: NotificationFilters = {}) {
  return {
    queryKey: bellhopKeys.list(filters),
    queryFn: ({ pageParam, signal }: { pageParam: string | null; signal?: AbortSignal }): Promise<NotificationPage> =>
      client.list({ ...filters, cursor: pageParam, signal }),
    initialPageParam: null as string | null,
    getNextPageParam: (lastPage: NotificationPage): string | undefined => lastPage.next_cursor ?? undefined,
  };
}

// ---------------------------------------------------------------------------
// Cache patching

function isInfinite(d: NotificationListData): d is InfiniteData<NotificationPage, string | null> {
  return Array.isArray((d as InfiniteData<NotificationPage>).pages);
}

function mapListData(
  data: NotificationListData | undefined,
  fn: (items: Notification[]) => Notification[],
): NotificationListData | undefined {
  if (!data) return data;
  if (isInfinite(data)) {
    return { ...data, pages: data.pages.map((p) => ({ ...p, notifications: fn(p.notifications ?? []) })) };
  }
  if (Array.isArray((data as NotificationPage).notifications)) {
    return { ...data, notifications: fn(data.notifications) };
  }
  return data;
}

/** Apply `fn` to the notification arrays of every cached list. */
export function updateCachedNotifications(queryClient: QueryClient, fn: (items: Notification[]) => Notification[]): void {
  queryClient.setQueriesData<NotificationListData>({ queryKey: bellhopKeys.lists() }, (old) => mapListData(old, fn));
}

/** Patch one notification in every cached list. Returns true if it was found anywhere. */
export function patchCachedNotification(
  queryClient: QueryClient,
  id: string,
  patch: (n: Notification) => Notification,
): boolean {
  let found = false;
  updateCachedNotifications(queryClient, (items) =>
    items.some((n) => n.id === id)
      ? items.map((n) => {
          if (n.id !== id) return n;
          found = true;
          return patch(n);
        })
      : items,
  );
  return found;
}

/** Find a notification in any cached list. */
export function findCachedNotification(queryClient: QueryClient, id: string): Notification | undefined {
  for (const [, data] of queryClient.getQueriesData<NotificationListData>({ queryKey: bellhopKeys.lists() })) {
    if (!data) continue;
    const pages = isInfinite(data) ? data.pages : [data];
    for (const p of pages) {
      const hit = p.notifications?.find((n) => n.id === id);
      if (hit) return hit;
    }
  }
  return undefined;
}

function adjustCount(queryClient: QueryClient, delta: number): void {
  queryClient.setQueryData<UnreadCount>(bellhopKeys.count(), (old) =>
    old ? { ...old, count: Math.max(0, old.count + delta) } : old,
  );
}

/** The archived filter of a cached list's key. */
function archivedFilter(key: QueryKey): boolean | 'only' {
  return (key[2] as NotificationFilters | undefined)?.archived ?? false;
}

/** Apply `fn` to the cached lists whose archived filter `which` accepts. */
function updateListsWhere(
  queryClient: QueryClient,
  which: (archived: boolean | 'only') => boolean,
  fn: (items: Notification[]) => Notification[],
): void {
  queryClient.setQueriesData<NotificationListData>(
    { queryKey: bellhopKeys.lists(), predicate: (q) => which(archivedFilter(q.queryKey)) },
    (old) => mapListData(old, fn),
  );
}

/**
 * Archive state in the cache: the row leaves the lists that must not show
 * it (the inbox when archived, the archive tab when not) and is patched in
 * the others. Lists that must now show it are refetched by the caller.
 */
function applyArchived(queryClient: QueryClient, id: string, archivedAt: string | null): void {
  const drop = (items: Notification[]) => items.filter((n) => n.id !== id);
  const patch = (items: Notification[]) => items.map((n) => (n.id === id ? { ...n, archived_at: archivedAt } : n));
  if (archivedAt) {
    updateListsWhere(queryClient, (a) => a === false, drop);
    updateListsWhere(queryClient, (a) => a !== false, patch);
  } else {
    updateListsWhere(queryClient, (a) => a === 'only', drop);
    updateListsWhere(queryClient, (a) => a !== 'only', patch);
  }
}

// ---------------------------------------------------------------------------
// Optimistic mutations

/** What `onMutate` returns, used to roll back on error. */
export interface BellhopSnapshot {
  lists: Array<[QueryKey, NotificationListData | undefined]>;
  count: UnreadCount | undefined;
}

async function takeSnapshot(queryClient: QueryClient): Promise<BellhopSnapshot> {
  await queryClient.cancelQueries({ queryKey: bellhopKeys.all });
  return {
    lists: queryClient.getQueriesData<NotificationListData>({ queryKey: bellhopKeys.lists() }),
    count: queryClient.getQueryData<UnreadCount>(bellhopKeys.count()),
  };
}

function rollback(queryClient: QueryClient, snapshot: BellhopSnapshot | undefined): void {
  if (!snapshot) return;
  for (const [key, data] of snapshot.lists) queryClient.setQueryData(key, data);
  queryClient.setQueryData(bellhopKeys.count(), snapshot.count);
}

function settle(queryClient: QueryClient): Promise<unknown> {
  return Promise.all([
    queryClient.invalidateQueries({ queryKey: bellhopKeys.count() }),
    queryClient.invalidateQueries({ queryKey: bellhopKeys.lists() }),
  ]);
}

const nowIso = () => new Date().toISOString();

export function markReadMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return {
    mutationKey: [...bellhopKeys.all, 'markRead'] as const,
    mutationFn: (id: string) => client.markRead(id),
    onMutate: async (id: string): Promise<BellhopSnapshot> => {
      const snapshot = await takeSnapshot(queryClient);
      const before = findCachedNotification(queryClient, id);
      const at = nowIso();
      patchCachedNotification(queryClient, id, (n) => (n.read_at ? n : { ...n, read_at: at }));
      if (before && !before.read_at) adjustCount(queryClient, -1);
      return snapshot;
    },
    onSuccess: (updated: Notification) => {
      if (updated?.id) patchCachedNotification(queryClient, updated.id, () => updated);
    },
    onError: (_err: unknown, _id: string, snapshot: BellhopSnapshot | undefined) => rollback(queryClient, snapshot),
    onSettled: () => settle(queryClient),
  };
}

export function markUnreadMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return {
    mutationKey: [...bellhopKeys.all, 'markUnread'] as const,
    mutationFn: (id: string) => client.markUnread(id),
    onMutate: async (id: string): Promise<BellhopSnapshot> => {
      const snapshot = await takeSnapshot(queryClient);
      const before = findCachedNotification(queryClient, id);
      patchCachedNotification(queryClient, id, (n) => ({ ...n, read_at: null }));
      if (before && before.read_at) adjustCount(queryClient, +1);
      return snapshot;
    },
    onSuccess: (updated: Notification) => {
      if (updated?.id) patchCachedNotification(queryClient, updated.id, () => updated);
    },
    onError: (_err: unknown, _id: string, snapshot: BellhopSnapshot | undefined) => rollback(queryClient, snapshot),
    onSettled: () => settle(queryClient),
  };
}

export function markAllReadMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return {
    mutationKey: [...bellhopKeys.all, 'markAllRead'] as const,
    mutationFn: (_vars: void) => client.markAllRead(),
    onMutate: async (): Promise<BellhopSnapshot> => {
      const snapshot = await takeSnapshot(queryClient);
      const at = nowIso();
      updateCachedNotifications(queryClient, (items) => items.map((n) => (n.read_at ? n : { ...n, read_at: at })));
      queryClient.setQueryData<UnreadCount>(bellhopKeys.count(), (old) => (old ? { ...old, count: 0, capped: false } : old));
      return snapshot;
    },
    onError: (_err: unknown, _vars: void, snapshot: BellhopSnapshot | undefined) => rollback(queryClient, snapshot),
    onSettled: () => settle(queryClient),
  };
}

/**
 * Clear the unseen count (`client.markSeen`): optimistic, the count's
 * `unseen` goes to 0 and cached rows get `seen_at`. Pass `{ upTo }` to mark
 * only what the reader was shown by that event.
 */
export function markSeenMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return {
    mutationKey: [...bellhopKeys.all, 'markSeen'] as const,
    mutationFn: (vars: { upTo?: number | null } | void) => client.markSeen(vars ?? {}),
    onMutate: async (vars: { upTo?: number | null } | void): Promise<BellhopSnapshot> => {
      // Only the count: an inbox marks seen as it opens, while its list
      // loads, and cancelling that fetch would leave the list pending.
      await queryClient.cancelQueries({ queryKey: bellhopKeys.count() });
      const snapshot: BellhopSnapshot = {
        lists: queryClient.getQueriesData<NotificationListData>({ queryKey: bellhopKeys.lists() }),
        count: queryClient.getQueryData<UnreadCount>(bellhopKeys.count()),
      };
      if (!vars?.upTo) {
        const at = nowIso();
        updateCachedNotifications(queryClient, (items) => items.map((n) => (n.seen_at ? n : { ...n, seen_at: at })));
        queryClient.setQueryData<UnreadCount>(bellhopKeys.count(), (old) =>
          old ? { ...old, unseen: 0, unseen_capped: false } : old,
        );
      }
      return snapshot;
    },
    onError: (_err: unknown, _vars: unknown, snapshot: BellhopSnapshot | undefined) => rollback(queryClient, snapshot),
    onSettled: () => queryClient.invalidateQueries({ queryKey: bellhopKeys.count() }),
  };
}

function archiveOptions(client: BellhopClient, queryClient: QueryClient, archive: boolean) {
  return {
    mutationKey: [...bellhopKeys.all, archive ? 'archive' : 'unarchive'] as const,
    mutationFn: (id: string) => (archive ? client.archive(id) : client.unarchive(id)),
    onMutate: async (id: string): Promise<BellhopSnapshot> => {
      const snapshot = await takeSnapshot(queryClient);
      applyArchived(queryClient, id, archive ? nowIso() : null);
      return snapshot;
    },
    onError: (_err: unknown, _id: string, snapshot: BellhopSnapshot | undefined) => rollback(queryClient, snapshot),
    onSettled: () => settle(queryClient),
  };
}

/** Archive one notification: it leaves the inbox's lists for the archived ones (`archived: 'only'`). */
export function archiveMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return archiveOptions(client, queryClient, true);
}

/** Bring one archived notification back into the inbox. */
export function unarchiveMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return archiveOptions(client, queryClient, false);
}

export function removeMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return {
    mutationKey: [...bellhopKeys.all, 'remove'] as const,
    mutationFn: (id: string) => client.remove(id),
    onMutate: async (id: string): Promise<BellhopSnapshot> => {
      const snapshot = await takeSnapshot(queryClient);
      const before = findCachedNotification(queryClient, id);
      updateCachedNotifications(queryClient, (items) => items.filter((n) => n.id !== id));
      if (before && !before.read_at) adjustCount(queryClient, -1);
      return snapshot;
    },
    onError: (_err: unknown, _id: string, snapshot: BellhopSnapshot | undefined) => rollback(queryClient, snapshot),
    onSettled: () => settle(queryClient),
  };
}

/** The recipient's preferences (`GET /notifications/preferences`). */
export function preferencesQueryOptions(client: BellhopClient) {
  return {
    queryKey: bellhopKeys.preferences(),
    queryFn: ({ signal }: { signal?: AbortSignal }): Promise<Preferences> => client.getPreferences({ signal }),
  };
}

/**
 * Replace the preferences (`PUT`): the cache shows the new ones at once and
 * rolls back on error. Once settled, the count and lists are refetched too:
 * a type turned off (or on) for `database` leaves (or rejoins) them.
 */
export function setPreferencesMutationOptions(client: BellhopClient, queryClient: QueryClient) {
  return {
    mutationKey: [...bellhopKeys.all, 'setPreferences'] as const,
    mutationFn: (preferences: Preferences) => client.setPreferences(preferences),
    onMutate: async (preferences: Preferences): Promise<{ before: Preferences | undefined }> => {
      await queryClient.cancelQueries({ queryKey: bellhopKeys.preferences() });
      const before = queryClient.getQueryData<Preferences>(bellhopKeys.preferences());
      queryClient.setQueryData(bellhopKeys.preferences(), preferences);
      return { before };
    },
    onSuccess: (stored: Preferences) => {
      queryClient.setQueryData(bellhopKeys.preferences(), stored);
    },
    onError: (_err: unknown, _vars: Preferences, snapshot: { before: Preferences | undefined } | undefined) => {
      queryClient.setQueryData(bellhopKeys.preferences(), snapshot?.before);
    },
    onSettled: () =>
      Promise.all([
        queryClient.invalidateQueries({ queryKey: bellhopKeys.preferences() }),
        settle(queryClient),
      ]),
  };
}

// ---------------------------------------------------------------------------
// Live events

/**
 * Bring the cache up to date for one or more live events:
 * - `refetch`: drop every bellhop query and refetch the active ones;
 * - `created`: invalidate count + lists;
 * - `updated`: merge the `sse` payload into `data` of the cached row at
 *   once (a progress bar moves), then invalidate count + lists: the event
 *   carries only `sse`, `read_at` and `database_key`, and the change behind
 *   it may be a progress upsert (which replaces `data` and makes the row
 *   unread, unseen, unarchived and undeleted again) or a plain UPDATE of its
 *   data, type or archive state;
 * - `read` / `unread`: patch `read_at` of the row, invalidate count and unread-only lists;
 * - `deleted`: remove the row, invalidate count;
 * - `read_all`: mark every cached row read, invalidate count and lists;
 * - `seen`: mark cached rows seen (all of them, or refetch when only up to an event), invalidate count and lists;
 * - `archived` / `unarchived`: move the row between the inbox's lists and the archived ones, invalidate count and lists;
 * - `expired`: remove the row, invalidate count.
 */
export async function invalidateOnEvent(queryClient: QueryClient, events: BellhopEvent | BellhopEvent[]): Promise<void> {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return;
  if (list.some((e) => e.op === 'refetch')) {
    await queryClient.resetQueries({ queryKey: bellhopKeys.all });
    return;
  }
  let count = false;
  let lists = false;
  let unreadLists = false;
  for (const e of list) {
    switch (e.op) {
      case 'created':
        count = true;
        lists = true;
        break;
      case 'updated': {
        if (e.sse && typeof e.sse === 'object') {
          const sse = e.sse;
          patchCachedNotification(queryClient, e.id, (n) => ({
            ...n,
            data: { ...n.data, ...sse },
            read_at: e.read_at !== undefined ? e.read_at : n.read_at,
            database_key: e.database_key !== undefined ? e.database_key : n.database_key,
            updated_at: nowIso(),
          }));
        }
        count = true;
        lists = true;
        break;
      }
      case 'read':
      case 'unread': {
        const readAt = e.op === 'read' ? (e.read_at ?? nowIso()) : null;
        patchCachedNotification(queryClient, e.id, (n) => ({ ...n, read_at: readAt }));
        count = true;
        unreadLists = true;
        break;
      }
      case 'deleted':
        updateCachedNotifications(queryClient, (items) => items.filter((n) => n.id !== e.id));
        count = true;
        break;
      // A marker covers the rows its transaction saw, and a row whose
      // transaction committed just after the marker's, before the relay's
      // next stamp, may come before it on the stream (a stamp orders what
      // it logs by transaction id): the rows are marked at once, and the
      // lists refetched to undo a mark on such a row.
      case 'read_all': {
        const at = e.read_at ?? nowIso();
        updateCachedNotifications(queryClient, (items) => items.map((n) => (n.read_at ? n : { ...n, read_at: at })));
        count = true;
        lists = true;
        break;
      }
      case 'seen': {
        // Up to an event, the server knows which rows that covered.
        if (!(e.sse && typeof e.sse === 'object' && 'until' in e.sse)) {
          const at = nowIso();
          updateCachedNotifications(queryClient, (items) => items.map((n) => (n.seen_at ? n : { ...n, seen_at: at })));
        }
        count = true;
        lists = true;
        break;
      }
      case 'archived':
      case 'unarchived':
        applyArchived(queryClient, e.id, e.op === 'archived' ? nowIso() : null);
        count = true;
        lists = true;
        break;
      case 'expired':
        updateCachedNotifications(queryClient, (items) => items.filter((n) => n.id !== e.id));
        count = true;
        break;
      default:
        count = true;
        lists = true;
    }
  }
  const work: Promise<unknown>[] = [];
  if (count) work.push(queryClient.invalidateQueries({ queryKey: bellhopKeys.count() }));
  if (lists) work.push(queryClient.invalidateQueries({ queryKey: bellhopKeys.lists() }));
  else if (unreadLists)
    work.push(
      queryClient.invalidateQueries({
        queryKey: bellhopKeys.lists(),
        predicate: (q) => (q.queryKey[2] as NotificationFilters | undefined)?.unread === true,
      }),
    );
  await Promise.all(work);
}

/**
 * The stream opened: events may have been missed (a new stream starts at the
 * relay's head, and after a drop the relay may not have replayed them, or the
 * client had no resume point), so refetch the unread count and every list.
 * Inactive queries are only marked stale.
 */
export async function invalidateOnReconnect(queryClient: QueryClient): Promise<void> {
  // invalidateQueries restarts a fetch in flight only when the query has
  // data (cancelRefetch); a first fetch in flight is reused, and its answer
  // can predate a change the new stream will never send. Fetch those again
  // once they are done.
  const cache = queryClient.getQueryCache();
  const firstFetches = [bellhopKeys.count(), bellhopKeys.lists()]
    .flatMap((queryKey) => cache.findAll({ queryKey }))
    .filter((q) => q.state.fetchStatus !== 'idle' && q.state.data === undefined);
  await Promise.all([
    queryClient.invalidateQueries({ queryKey: bellhopKeys.count() }),
    queryClient.invalidateQueries({ queryKey: bellhopKeys.lists() }),
  ]);
  if (firstFetches.length > 0) {
    await queryClient.refetchQueries({ type: 'active', predicate: (q) => firstFetches.includes(q) });
  }
}

/**
 * An `onStatus` handler for `subscribe` that calls `invalidateOnReconnect`
 * each time the stream goes `open`, the first time included, then forwards
 * the status to `next`. A new stream starts at the relay's head, with no
 * replay: what was committed after the count and lists were fetched, and
 * before the stream opened, is in neither. One per subscription:
 *
 *   client.subscribe((ev) => invalidateOnEvent(qc, ev), { onStatus: invalidateOnReopen(qc) })
 */
export function invalidateOnReopen(
  queryClient: QueryClient,
  next?: (status: StreamStatus, error?: unknown) => void,
): (status: StreamStatus, error?: unknown) => void {
  return (status, error) => {
    if (status === 'open') void invalidateOnReconnect(queryClient);
    next?.(status, error);
  };
}
