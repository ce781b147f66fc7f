import {
  forwardRef,
  useCallback,
  useEffect,
  useId,
  useRef,
  useState,
  type ButtonHTMLAttributes,
  type KeyboardEvent as ReactKeyboardEvent,
  type ReactNode,
} from 'react';
import { isBellhopError } from '../core/errors';
import type { Notification } from '../core/types';
import { formatCount, notificationBody, notificationProgress, notificationTitle } from '../core/util';
import type { NotificationFilters } from '../query';
import { useNotificationStream, useNotifications, useUnreadCount } from './hooks';
import { formatRelativeTime } from './time';

const cx = (...c: Array<string | false | null | undefined>) => c.filter(Boolean).join(' ');

function BellIcon() {
  return (
    <svg viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true" focusable="false">
      <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
      <path d="M13.73 21a2 2 0 0 1-3.46 0" />
    </svg>
  );
}

export interface NotificationBellProps extends ButtonHTMLAttributes<HTMLButtonElement> {
  /** Accessible name; the unread count is appended. */
  label?: string;
  /** Counts above this show as `${max}+` (default 99). */
  max?: number;
  badgeClassName?: string;
  /** Replaces the bell icon. */
  icon?: ReactNode;
}

/** A button with the unread count badge. */
export const NotificationBell = forwardRef<HTMLButtonElement, NotificationBellProps>(function NotificationBell(
  { label = 'Notifications', max = 99, className, badgeClassName, icon, type, ...rest },
  ref,
) {
  const { data } = useUnreadCount();
  const text = formatCount(data?.count, data?.capped, max);
  return (
    <button
      ref={ref}
      type={type ?? 'button'}
      className={cx('bellhop-bell', className)}
      data-testid="bellhop-bell"
      aria-label={text ? `${label}, ${text} unread` : label}
      {...rest}
    >
      {icon ?? <BellIcon />}
      <span className={cx('bellhop-badge', badgeClassName)} data-testid="bellhop-badge" aria-live="polite" aria-atomic="true">
        {text}
      </span>
    </button>
  );
});

export interface InboxLabels {
  title: string;
  bell: string;
  markAll: string;
  markRead: string;
  markUnread: string;
  remove: string;
  loadMore: string;
  loading: string;
  empty: string;
  error: string;
  retry: string;
  unread: string;
}

const DEFAULT_LABELS: InboxLabels = {
  title: 'Notifications',
  bell: 'Notifications',
  markAll: 'Mark all as read',
  markRead: 'Mark read',
  markUnread: 'Mark unread',
  remove: 'Delete',
  loadMore: 'Load more',
  loading: 'Loading…',
  empty: "You're all caught up.",
  error: "Couldn't load notifications.",
  retry: 'Try again',
  unread: 'Unread',
};

export interface InboxProps {
  className?: string;
  bellClassName?: string;
  panelClassName?: string;
  itemClassName?: string;
  /** List filters (page size, unread only, types). */
  filters?: NotificationFilters;
  /** Subscribe to the live stream (default true). */
  live?: boolean;
  /** Start opened. */
  defaultOpen?: boolean;
  /** Locale for relative times. */
  locale?: string;
  labels?: Partial<InboxLabels>;
  /** Custom empty state. */
  emptyState?: ReactNode;
  /** Custom time formatting. */
  formatTime?: (iso: string, now: Date) => string;
  onOpenChange?: (open: boolean) => void;
}

function useNow(active: boolean, intervalMs = 30000): Date {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    if (!active) return;
    setNow(new Date());
    const t = setInterval(() => setNow(new Date()), intervalMs);
    return () => clearInterval(t);
  }, [active, intervalMs]);
  return now;
}

interface ItemProps {
  n: Notification;
  now: Date;
  labels: InboxLabels;
  className?: string;
  locale?: string;
  formatTime?: (iso: string, now: Date) => string;
  onRead: (id: string) => void;
  onUnread: (id: string) => void;
  onRemove: (id: string) => void;
}

function InboxItem({ n, now, labels, className, locale, formatTime, onRead, onUnread, onRemove }: ItemProps) {
  const unread = !n.read_at;
  const title = notificationTitle(n);
  const body = notificationBody(n);
  const progress = notificationProgress(n);
  const when = formatTime ? formatTime(n.created_at, now) : formatRelativeTime(n.created_at, now, locale);
  const absolute = Number.isNaN(Date.parse(n.created_at)) ? undefined : new Date(n.created_at).toLocaleString(locale);
  return (
    <li className={cx('bellhop-item', className)} data-testid="bellhop-item" data-id={n.id} data-unread={unread ? 'true' : 'false'}>
      <div className="bellhop-item-main">
        <p className="bellhop-item-title">
          {unread && <span className="bellhop-dot" aria-hidden="true" />}
          {unread && <span className="bellhop-sr-only">{labels.unread}: </span>}
          {title}
        </p>
        {body && <p className="bellhop-item-body">{body}</p>}
        {progress !== null && (
          <div className="bellhop-progress-row">
            <progress
              className="bellhop-progress"
              data-testid="bellhop-progress"
              max={100}
              value={progress}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={progress}
              aria-label={`${title}: ${Math.round(progress)}%`}
            >
              {Math.round(progress)}%
            </progress>
            <span aria-hidden="true">{Math.round(progress)}%</span>
          </div>
        )}
        <time className="bellhop-time" dateTime={n.created_at} title={absolute}>
          {when}
        </time>
      </div>
      <div className="bellhop-item-actions">
        {unread ? (
          <button type="button" className="bellhop-link" data-testid="bellhop-mark-read" aria-label={`${labels.markRead}: ${title}`} onClick={() => onRead(n.id)}>
            {labels.markRead}
          </button>
        ) : (
          <button type="button" className="bellhop-link" data-testid="bellhop-mark-unread" aria-label={`${labels.markUnread}: ${title}`} onClick={() => onUnread(n.id)}>
            {labels.markUnread}
          </button>
        )}
        <button type="button" className="bellhop-link bellhop-danger" data-testid="bellhop-delete" aria-label={`${labels.remove}: ${title}`} onClick={() => onRemove(n.id)}>
          {labels.remove}
        </button>
      </div>
    </li>
  );
}

/** Bell + dropdown inbox. Must be inside <BellhopProvider>. */
export function Inbox({
  className,
  bellClassName,
  panelClassName,
  itemClassName,
  filters,
  live = true,
  defaultOpen = false,
  locale,
  labels: labelOverrides,
  emptyState,
  formatTime,
  onOpenChange,
}: InboxProps) {
  const labels = { ...DEFAULT_LABELS, ...labelOverrides };
  const [open, setOpenState] = useState(defaultOpen);
  const rootRef = useRef<HTMLDivElement>(null);
  const bellRef = useRef<HTMLButtonElement>(null);
  const panelRef = useRef<HTMLDivElement>(null);
  const panelId = useId();
  const titleId = useId();
  const now = useNow(open);

  useNotificationStream(undefined, { enabled: live });
  const count = useUnreadCount();
  const list = useNotifications(filters, { enabled: open });

  const setOpen = useCallback(
    (next: boolean) => {
      setOpenState(next);
      onOpenChange?.(next);
    },
    [onOpenChange],
  );

  const close = useCallback(
    (restoreFocus: boolean) => {
      setOpen(false);
      if (restoreFocus) bellRef.current?.focus();
    },
    [setOpen],
  );

  // Move focus into the panel when it opens.
  useEffect(() => {
    if (open) panelRef.current?.focus();
  }, [open]);

  // Click outside closes.
  useEffect(() => {
    if (!open) return;
    const onPointerDown = (e: PointerEvent | MouseEvent) => {
      if (rootRef.current && e.target instanceof Node && !rootRef.current.contains(e.target)) close(false);
    };
    document.addEventListener('mousedown', onPointerDown);
    return () => document.removeEventListener('mousedown', onPointerDown);
  }, [open, close]);

  const onKeyDown = (e: ReactKeyboardEvent) => {
    if (e.key === 'Escape' && open) {
      e.stopPropagation();
      close(true);
    }
  };

  const onRemove = (id: string) => {
    // The focused button disappears with its row: keep focus inside the panel.
    panelRef.current?.focus();
    list.remove(id);
  };

  const hasUnread = (count.data?.count ?? 0) > 0 || list.notifications.some((n) => !n.read_at);
  const errorMessage = list.error ? (isBellhopError(list.error) ? list.error.message : String((list.error as Error).message ?? list.error)) : '';

  let content: ReactNode;
  if (list.isPending) {
    content = (
      <p className="bellhop-state" role="status">
        {labels.loading}
      </p>
    );
  } else if (list.isError && list.notifications.length === 0) {
    content = (
      <div className="bellhop-state bellhop-error" role="alert" data-testid="bellhop-error">
        <p>
          {labels.error} {errorMessage}
        </p>
        <button type="button" className="bellhop-link" onClick={() => void list.refetch()}>
          {labels.retry}
        </button>
      </div>
    );
  } else if (list.notifications.length === 0) {
    content = (
      <div className="bellhop-state" data-testid="bellhop-empty">
        {emptyState ?? labels.empty}
      </div>
    );
  } else {
    content = (
      <ul className="bellhop-list" aria-labelledby={titleId}>
        {list.notifications.map((n) => (
          <InboxItem
            key={n.id}
            n={n}
            now={now}
            labels={labels}
            className={itemClassName}
            locale={locale}
            formatTime={formatTime}
            onRead={list.markRead}
            onUnread={list.markUnread}
            onRemove={onRemove}
          />
        ))}
      </ul>
    );
  }

  return (
    <div ref={rootRef} className={cx('bellhop-inbox', className)} onKeyDown={onKeyDown}>
      <NotificationBell
        ref={bellRef}
        className={bellClassName}
        label={labels.bell}
        aria-expanded={open}
        aria-controls={open ? panelId : undefined}
        aria-haspopup="dialog"
        onClick={() => setOpen(!open)}
      />
      {open && (
        <div
          ref={panelRef}
          id={panelId}
          className={cx('bellhop-panel', panelClassName)}
          data-testid="bellhop-inbox"
          role="dialog"
          aria-labelledby={titleId}
          tabIndex={-1}
        >
          <div className="bellhop-header">
            <h2 className="bellhop-title" id={titleId}>
              {labels.title}
            </h2>
            <button
              type="button"
              className="bellhop-link"
              data-testid="bellhop-mark-all"
              disabled={!hasUnread || list.mutations.all.isPending}
              onClick={() => list.markAllRead()}
            >
              {labels.markAll}
            </button>
          </div>
          {content}
          {list.hasNextPage && (
            <div className="bellhop-footer">
              <button type="button" className="bellhop-link" disabled={list.isFetchingNextPage} onClick={() => void list.fetchNextPage()}>
                {list.isFetchingNextPage ? labels.loading : labels.loadMore}
              </button>
            </div>
          )}
        </div>
      )}
    </div>
  );
}
