import {
  forwardRef,
  useCallback,
  useEffect,
  useId,
  useRef,
  useState,
  type ButtonHTMLAttributes,
  type KeyboardEvent as ReactKeyboardEvent,
  type MouseEvent as ReactMouseEvent,
  type ReactNode,
} from 'react';
import { isBellhopError } from '../core/errors';
import type { Notification, NotificationAction } from '../core/types';
import {
  formatCount,
  isExpired,
  notificationActions,
  notificationAvatar,
  notificationBody,
  notificationProgress,
  notificationTitle,
  notificationUrl,
} from '../core/util';
import type { NotificationFilters } from '../query';
import { useMarkSeen, useNotifications, useUnreadCount } from './hooks';
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

/** What the bell counts: notifications not seen yet (default) or not read yet. */
export type BellCount = 'unseen' | 'unread';

export interface NotificationBellProps extends ButtonHTMLAttributes<HTMLButtonElement> {
  /** Accessible name; the count is appended. */
  label?: string;
  /**
   * `'unseen'` (default): what arrived since the inbox was last opened
   * (`markSeen`), so the bell clears when it opens; `'unread'`: what is
   * not read yet.
   */
  count?: BellCount;
  /** Counts above this show as `${max}+` (default 99). */
  max?: number;
  badgeClassName?: string;
  /** Replaces the bell icon. */
  icon?: ReactNode;
  /** Join the provider's live stream, so the badge follows every change (default true). */
  live?: boolean;
}

/** A button with a count badge: unseen notifications by default, or unread ones. */
export const NotificationBell = forwardRef<HTMLButtonElement, NotificationBellProps>(function NotificationBell(
  { label = 'Notifications', count = 'unseen', max = 99, className, badgeClassName, icon, type, live = true, ...rest },
  ref,
) {
  const { data } = useUnreadCount({ live });
  // A relay without seen support answers no unseen: count unread then.
  const unseen = count === 'unseen' && data?.unseen !== undefined;
  const text = unseen ? formatCount(data?.unseen, data?.unseen_capped, max) : formatCount(data?.count, data?.capped, max);
  const phrase = text ? `${text} ${unseen ? 'new' : 'unread'}` : '';
  // The badge alone would be announced as a bare number ("3"): it is hidden
  // from assistive technology, and a visually hidden live region says the
  // label's phrase ("3 new"). The region is outside the button: ARIA makes
  // a button's children presentational, so one inside may go unheard.
  return (
    <>
      <button
        ref={ref}
        type={type ?? 'button'}
        className={cx('bellhop-bell', className)}
        data-testid="bellhop-bell"
        data-count={count}
        aria-label={phrase ? `${label}, ${phrase}` : label}
        {...rest}
      >
        {icon ?? <BellIcon />}
        <span className={cx('bellhop-badge', badgeClassName)} data-testid="bellhop-badge" aria-hidden="true">
          {text}
        </span>
      </button>
      <span className="bellhop-sr-only" data-testid="bellhop-bell-status" aria-live="polite" aria-atomic="true">
        {phrase}
      </span>
    </>
  );
});

export interface InboxLabels {
  title: string;
  bell: string;
  markAll: string;
  markRead: string;
  markUnread: string;
  remove: string;
  archive: string;
  unarchive: string;
  inboxTab: string;
  archivedTab: string;
  archivedEmpty: string;
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
  archive: 'Archive',
  unarchive: 'Move to inbox',
  inboxTab: 'Inbox',
  archivedTab: 'Archived',
  archivedEmpty: 'Nothing archived.',
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
  /** What the bell counts (default `'unseen'`: it clears when the inbox opens). */
  bellCount?: BellCount;
  /** Mark everything seen when the inbox opens, and while it is open (default true). */
  markSeenOnOpen?: boolean;
  /** Show the Inbox / Archived tabs and the archive buttons (default true). */
  archive?: boolean;
  /**
   * A button of `data.actions` was clicked (the notification is marked
   * read). An action with a safe `url` is a link the browser then follows
   * unless you call `event.preventDefault()`.
   */
  onAction?: (notification: Notification, action: NotificationAction, event: ReactMouseEvent) => void;
  /**
   * A row with a safe `data.url` was clicked (it is marked read); the
   * browser follows the link unless you call `event.preventDefault()`,
   * e.g. to route inside a single-page app.
   */
  onOpen?: (notification: Notification, url: string, event: ReactMouseEvent) => void;
  /** Draw a row yourself: what it returns goes inside the row's `<li>`. */
  renderItem?: (notification: Notification, helpers: InboxItemHelpers) => ReactNode;
}

/** What `renderItem` gets besides the notification. */
export interface InboxItemHelpers {
  /** `data.url` if safe to follow (http(s) or relative), else null. */
  url: string | null;
  /** `data.actions`, well-formed ones only, unsafe urls dropped. */
  actions: NotificationAction[];
  markRead: () => void;
  markUnread: () => void;
  archive: () => void;
  unarchive: () => void;
  remove: () => void;
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

/**
 * The time rows are checked against for expiry, moved to the next
 * `expires_at` in the list when it comes, so a row leaves at its time even
 * before the relay's expired event.
 */
function useNextExpiry(items: Notification[]): { now: number } {
  const [now, setNow] = useState(() => Date.now());
  let next = Infinity;
  for (const n of items) {
    const at = n.expires_at ? Date.parse(n.expires_at) : NaN;
    if (Number.isFinite(at) && at > now && at < next) next = at;
  }
  useEffect(() => {
    if (!Number.isFinite(next)) return;
    // setTimeout takes at most 2^31-1 ms; a later expiry is looked at again then.
    const t = setTimeout(() => setNow(Date.now()), Math.min(next - Date.now() + 10, 2 ** 31 - 1));
    return () => clearTimeout(t);
  }, [next]);
  return { now };
}

interface ItemProps {
  n: Notification;
  now: Date;
  labels: InboxLabels;
  className?: string;
  locale?: string;
  formatTime?: (iso: string, now: Date) => string;
  archive: boolean;
  helpers: InboxItemHelpers;
  onAction?: InboxProps['onAction'];
  onOpen?: InboxProps['onOpen'];
  renderItem?: InboxProps['renderItem'];
}

function InboxItem({ n, now, labels, className, locale, formatTime, archive, helpers, onAction, onOpen, renderItem }: ItemProps) {
  const unread = !n.read_at;
  const archived = !!n.archived_at;
  const rowProps = {
    className: cx('bellhop-item', className),
    'data-testid': 'bellhop-item',
    'data-id': n.id,
    'data-unread': unread ? 'true' : 'false',
    'data-archived': archived ? 'true' : 'false',
  };
  if (renderItem) return <li {...rowProps}>{renderItem(n, helpers)}</li>;
  const title = notificationTitle(n);
  const body = notificationBody(n);
  const progress = notificationProgress(n);
  const avatar = notificationAvatar(n);
  const { url, actions } = helpers;
  const when = formatTime ? formatTime(n.created_at, now) : formatRelativeTime(n.created_at, now, locale);
  const absolute = Number.isNaN(Date.parse(n.created_at)) ? undefined : new Date(n.created_at).toLocaleString(locale);
  const main = (
    <>
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
    </>
  );
  return (
    <li {...rowProps}>
      {avatar && <img className="bellhop-item-avatar" src={avatar} alt="" loading="lazy" referrerPolicy="no-referrer" />}
      <div className="bellhop-item-main">
        {url ? (
          <a
            className="bellhop-item-link"
            data-testid="bellhop-item-link"
            href={url}
            onClick={(e) => {
              if (unread) helpers.markRead();
              onOpen?.(n, url, e);
            }}
          >
            {main}
          </a>
        ) : (
          main
        )}
        {actions.length > 0 && (
          <div className="bellhop-item-buttons">
            {actions.map((a) => {
              const click = (e: ReactMouseEvent) => {
                if (unread) helpers.markRead();
                onAction?.(n, a, e);
              };
              return a.url ? (
                <a key={a.id} className="bellhop-action" data-testid="bellhop-action" data-action={a.id} href={a.url} onClick={click}>
                  {a.label}
                </a>
              ) : (
                <button key={a.id} type="button" className="bellhop-action" data-testid="bellhop-action" data-action={a.id} onClick={click}>
                  {a.label}
                </button>
              );
            })}
          </div>
        )}
      </div>
      <div className="bellhop-item-actions">
        {unread ? (
          <button type="button" className="bellhop-link" data-testid="bellhop-mark-read" aria-label={`${labels.markRead}: ${title}`} onClick={helpers.markRead}>
            {labels.markRead}
          </button>
        ) : (
          <button type="button" className="bellhop-link" data-testid="bellhop-mark-unread" aria-label={`${labels.markUnread}: ${title}`} onClick={helpers.markUnread}>
            {labels.markUnread}
          </button>
        )}
        {archive &&
          (archived ? (
            <button type="button" className="bellhop-link" data-testid="bellhop-unarchive" aria-label={`${labels.unarchive}: ${title}`} onClick={helpers.unarchive}>
              {labels.unarchive}
            </button>
          ) : (
            <button type="button" className="bellhop-link" data-testid="bellhop-archive" aria-label={`${labels.archive}: ${title}`} onClick={helpers.archive}>
              {labels.archive}
            </button>
          ))}
        <button type="button" className="bellhop-link bellhop-danger" data-testid="bellhop-delete" aria-label={`${labels.remove}: ${title}`} onClick={helpers.remove}>
          {labels.remove}
        </button>
      </div>
    </li>
  );
}

type InboxTab = 'inbox' | 'archived';
const TABS: readonly InboxTab[] = ['inbox', 'archived'];

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
  bellCount = 'unseen',
  markSeenOnOpen = true,
  archive = true,
  onAction,
  onOpen,
  renderItem,
}: InboxProps) {
  const labels = { ...DEFAULT_LABELS, ...labelOverrides };
  const [open, setOpenState] = useState(defaultOpen);
  const [tab, setTab] = useState<InboxTab>('inbox');
  const rootRef = useRef<HTMLDivElement>(null);
  const bellRef = useRef<HTMLButtonElement>(null);
  const panelRef = useRef<HTMLDivElement>(null);
  const panelId = useId();
  const titleId = useId();
  const tabsId = useId();
  const tabRefs = useRef<Record<InboxTab, HTMLButtonElement | null>>({ inbox: null, archived: null });
  const now = useNow(open);

  const count = useUnreadCount({ live });
  const showArchived = archive && tab === 'archived';
  const list = useNotifications(showArchived ? { ...filters, archived: 'only' } : { ...filters, archived: undefined }, { enabled: open });
  const seen = useMarkSeen();
  const nextExpiry = useNextExpiry(list.notifications);
  const visible = list.notifications.filter((n) => !isExpired(n, nextExpiry.now));

  // The bell clears when the inbox opens, and stays clear while it is open:
  // what arrives meanwhile is in view.
  // A failed mark-seen is not retried until the inbox opens again.
  const unseen = count.data?.unseen ?? 0;
  const { isPending: seenPending, isError: seenFailed, mutate: markSeen, reset: resetSeen } = seen;
  useEffect(() => {
    if (open && markSeenOnOpen && unseen > 0 && !seenPending && !seenFailed) markSeen();
  }, [open, markSeenOnOpen, unseen, seenPending, seenFailed, markSeen]);
  useEffect(() => {
    if (!open) resetSeen();
  }, [open, resetSeen]);

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

  // The WAI-ARIA tabs pattern: the tab list is one stop of the Tab key (the
  // selected tab), the panel the next; the arrows (wrapping), Home and End
  // select a tab and focus it.
  const tabId = (t: InboxTab) => `${tabsId}-${t}`;
  const tabPanelId = `${tabsId}-panel`;
  const onTabKeyDown = (e: ReactKeyboardEvent) => {
    const i = TABS.indexOf(tab);
    const to: Partial<Record<string, number>> = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: TABS.length - 1 };
    const next = to[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const t = TABS[(next + TABS.length) % TABS.length];
    setTab(t);
    tabRefs.current[t]?.focus();
  };

  // A button that disappears with its row: keep focus inside the panel.
  const keepFocus = (f: (id: string) => void) => (id: string) => {
    panelRef.current?.focus();
    f(id);
  };
  const onRemove = keepFocus(list.remove);
  const onArchive = keepFocus(list.archive);
  const onUnarchive = keepFocus(list.unarchive);
  const helpersFor = (n: Notification): InboxItemHelpers => ({
    url: notificationUrl(n),
    actions: notificationActions(n),
    markRead: () => list.markRead(n.id),
    markUnread: () => list.markUnread(n.id),
    archive: () => onArchive(n.id),
    unarchive: () => onUnarchive(n.id),
    remove: () => onRemove(n.id),
  });

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
  } else if (visible.length === 0) {
    content = (
      <div className="bellhop-state" data-testid="bellhop-empty">
        {showArchived ? labels.archivedEmpty : (emptyState ?? labels.empty)}
      </div>
    );
  } else {
    content = (
      <ul className="bellhop-list" aria-labelledby={titleId}>
        {visible.map((n) => (
          <InboxItem
            key={n.id}
            n={n}
            now={now}
            labels={labels}
            className={itemClassName}
            locale={locale}
            formatTime={formatTime}
            archive={archive}
            helpers={helpersFor(n)}
            onAction={onAction}
            onOpen={onOpen}
            renderItem={renderItem}
          />
        ))}
      </ul>
    );
  }

  const body = (
    <>
      {content}
      {list.hasNextPage && (
        <div className="bellhop-footer">
          <button type="button" className="bellhop-link" disabled={list.isFetchingNextPage} onClick={() => void list.fetchNextPage()}>
            {list.isFetchingNextPage ? labels.loading : labels.loadMore}
          </button>
        </div>
      )}
    </>
  );

  return (
    <div ref={rootRef} className={cx('bellhop-inbox', className)} onKeyDown={onKeyDown}>
      <NotificationBell
        ref={bellRef}
        className={bellClassName}
        label={labels.bell}
        count={bellCount}
        live={live}
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
          {archive && (
            <div className="bellhop-tabs" role="tablist" aria-labelledby={titleId} onKeyDown={onTabKeyDown}>
              {TABS.map((t) => (
                <button
                  key={t}
                  ref={(el) => {
                    tabRefs.current[t] = el;
                  }}
                  id={tabId(t)}
                  type="button"
                  role="tab"
                  className="bellhop-tab"
                  data-testid={`bellhop-tab-${t}`}
                  aria-selected={tab === t}
                  aria-controls={tabPanelId}
                  tabIndex={tab === t ? 0 : -1}
                  onClick={() => setTab(t)}
                >
                  {t === 'inbox' ? labels.inboxTab : labels.archivedTab}
                </button>
              ))}
            </div>
          )}
          {archive ? (
            <div className="bellhop-tabpanel" role="tabpanel" id={tabPanelId} aria-labelledby={tabId(tab)} tabIndex={0} data-testid="bellhop-tabpanel">
              {body}
            </div>
          ) : (
            body
          )}
        </div>
      )}
    </div>
  );
}
