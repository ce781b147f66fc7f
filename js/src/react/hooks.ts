import { useInfiniteQuery, useMutation, useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import type { BellhopEvent, Notification, StreamStatus } from '../core/types';
import {
  archiveMutationOptions,
  markAllReadMutationOptions,
  markReadMutationOptions,
  markSeenMutationOptions,
  markUnreadMutationOptions,
  notificationsInfiniteQueryOptions,
  removeMutationOptions,
  unarchiveMutationOptions,
  unreadCountQueryOptions,
  type NotificationFilters,
} from '../query';
import { useBellhop } from './context';

/**
 * The unread count query (`data`: `{ count, capped, unseen?, unseen_capped? }`),
 * plus `count`: `data.count`, 0 until it has loaded. Live by default: it
 * joins the provider's shared stream (`useNotificationStream`), which
 * refetches the count on every change; `live: false` leaves it to you, and
 * `enabled: false` neither fetches nor joins.
 */
export function useUnreadCount(options: { enabled?: boolean; live?: boolean } = {}) {
  const { client } = useBellhop();
  const enabled = options.enabled ?? true;
  useNotificationStream(undefined, { enabled: enabled && (options.live ?? true) });
  const query = useQuery({ ...unreadCountQueryOptions(client), enabled });
  return { ...query, count: query.data?.count ?? 0 };
}

export function useNotifications(filters: NotificationFilters = {}, options: { enabled?: boolean } = {}) {
  const { client, queryClient } = useBellhop();
  const query = useInfiniteQuery({
    ...notificationsInfiniteQueryOptions(client, filters),
    enabled: options.enabled ?? true,
  });
  const read = useMutation(markReadMutationOptions(client, queryClient));
  const unread = useMutation(markUnreadMutationOptions(client, queryClient));
  const all = useMutation(markAllReadMutationOptions(client, queryClient));
  const remove = useMutation(removeMutationOptions(client, queryClient));
  const archive = useMutation(archiveMutationOptions(client, queryClient));
  const unarchive = useMutation(unarchiveMutationOptions(client, queryClient));
  const notifications = useMemo<Notification[]>(
    () => query.data?.pages.flatMap((p) => p.notifications) ?? [],
    [query.data],
  );
  return {
    ...query,
    notifications,
    markRead: read.mutate,
    markUnread: unread.mutate,
    markAllRead: () => all.mutate(),
    archive: archive.mutate,
    unarchive: unarchive.mutate,
    remove: remove.mutate,
    mutations: { read, unread, all, archive, unarchive, remove },
  };
}

/** Clear the unseen count: `markSeen()`, or `markSeen({ upTo: seq })`. */
export function useMarkSeen() {
  const { client, queryClient } = useBellhop();
  const m = useMutation(markSeenMutationOptions(client, queryClient));
  return { ...m, markSeen: (vars?: { upTo?: number | null }) => m.mutate(vars) };
}

/**
 * Joins the provider's single live subscription (opened on first use, closed
 * when the last user unmounts). Every batch is applied to the query cache via
 * `invalidateOnEvent`, and each open of the stream (the first included: a new
 * stream starts at the relay's head, with no replay) refetches the count and
 * lists via `invalidateOnReconnect`; `onEvent` additionally receives each
 * event.
 */
export function useNotificationStream(
  onEvent?: (event: BellhopEvent) => void,
  options: { enabled?: boolean } = {},
): StreamStatus {
  const { hub } = useBellhop();
  const enabled = options.enabled ?? true;
  const cb = useRef(onEvent);
  cb.current = onEvent;
  useEffect(() => {
    if (!enabled) return;
    return hub.addListener((events) => events.forEach((e) => cb.current?.(e)));
  }, [hub, enabled]);
  return useSyncExternalStore(hub.onStatusChange, hub.getStatus, hub.getStatus);
}
