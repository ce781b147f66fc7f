/** A button of a notification (`data.actions`). */
export interface NotificationAction {
  /** What `onAction` gets to tell the buttons apart, e.g. `"approve"`. */
  id: string;
  /** The button's text. */
  label: string;
  /**
   * Opened when the button is clicked (after `onAction`), if it is a safe
   * link: `http:`/`https:` or relative (see `safeUrl`).
   */
  url?: string;
}

/**
 * The `data` fields the widget renders (`<Inbox/>`, and `notificationTitle`,
 * `notificationBody`, `notificationProgress`, `notificationUrl`,
 * `notificationAvatar`, `notificationActions`). All optional: a field that
 * is absent, empty or of another type is ignored. Other fields pass through
 * untouched (the relay stores `data` as any JSON object), for your own
 * rendering. Documented for senders in README.md ("Writing a notification").
 */
export interface NotificationData {
  /** The item's heading. Absent or empty: the notification's `type`. */
  title?: string;
  /** A line of text under the title. */
  body?: string;
  /**
   * Where clicking the row goes (it is also marked read). Only `http:`,
   * `https:` and relative URLs are followed; anything else (`javascript:`,
   * `data:`) is ignored.
   */
  url?: string;
  /** An image URL shown beside the row (same rule as `url`). */
  avatar?: string;
  /** Buttons under the row; `<Inbox onAction>` is called with the one clicked. */
  actions?: NotificationAction[];
  /**
   * Percent done: a finite number shows a progress bar, clamped to 0..100.
   * Meant for progress notifications (sent with a `database_key`, updated in
   * place). A live `updated` event merges its `sse` payload into `data`, so
   * `sse: { progress: 60 }` moves the bar at once, before the refetch that
   * follows every `updated` event.
   */
  progress?: number;
  [field: string]: any;
}

/** A notification as returned by the relay. */
export interface Notification<TData extends Record<string, unknown> = NotificationData> {
  id: string;
  type: string;
  data: TData;
  /** Non-null for progress notifications (upserted under this key). */
  database_key: string | null;
  read_at: string | null;
  /** When the bell last cleared with it in the inbox (`markSeen`); null while unseen. */
  seen_at?: string | null;
  /** When it was archived; null unless archived. */
  archived_at?: string | null;
  /** When it leaves the inbox by itself; null for never. */
  expires_at?: string | null;
  created_at: string;
  updated_at: string;
  /** Critical notifications ignore the recipient's preferences. */
  critical?: boolean;
}

export interface NotificationPage {
  notifications: Notification[];
  next_cursor: string | null;
}

export interface ListFilters {
  /** Page size, 1..100 (server default 20). */
  limit?: number;
  /** Only unread notifications. */
  unread?: boolean;
  /** Only these notification types. */
  type?: string | string[];
  /** Archived notifications: left out (default, `false`), listed too (`true`) or the only ones (`'only'`). */
  archived?: boolean | 'only';
}

export interface ListOptions extends ListFilters {
  cursor?: string | null;
  signal?: AbortSignal;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface UnreadCount {
  count: number;
  /** When true, the real count is >= count. */
  capped: boolean;
  /**
   * Notifications not seen yet (what `<NotificationBell/>` shows by default);
   * archived and expired ones never count. Absent from an older relay.
   */
  unseen?: number;
  /** When true, the real unseen count is >= unseen. */
  unseen_capped?: boolean;
}

export interface MarkSeenOptions extends RequestOptions {
  /**
   * Mark only what the reader can have been shown by the event with this id
   * (a `seq`); by default everything up to now.
   */
  upTo?: number | null;
}

export type StreamOp =
  | 'created'
  | 'updated'
  | 'read'
  | 'unread'
  | 'deleted'
  | 'read_all'
  | 'seen'
  | 'archived'
  | 'unarchived'
  | 'expired'
  | 'refetch';

/** A live event received from `GET /notifications/stream` (event name `notification`). */
export interface BellhopEvent {
  /** Strictly increasing per stream; also the SSE `id:`. */
  seq: number;
  op: StreamOp | (string & {});
  /** Notification id (empty for `read_all`, `seen` and `refetch`: not a notification of the list). */
  id: string;
  type?: string;
  database_key?: string | null;
  read_at?: string | null;
  /** Live payload, e.g. `{ progress: 40 }` for `updated`; for `seen`, `{ until: seq }` when it was marked up to an event. */
  sse?: Record<string, unknown> | null;
}

export type StreamStatus = 'connecting' | 'open' | 'closed' | 'error';

export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export interface ClientOptions {
  /** e.g. `http://localhost:8080`, or `''` for same origin. */
  baseUrl: string;
  /** Static bearer token. */
  token?: string;
  /** Called before every request and every stream (re)connect. Wins over `token`. */
  getToken?: TokenSource;
  /** Use `'include'` for cookie auth (`bellhop_token`). */
  credentials?: RequestCredentials;
  /** Custom fetch implementation (defaults to global fetch). */
  fetch?: typeof fetch;
  /**
   * One stream per browser (default true): the tabs that subscribe to this
   * relay as the same recipient elect one leader tab (Web Locks), which
   * alone holds the stream and relays its events to the others
   * (BroadcastChannel); when it closes another tab takes over from the
   * last event id. Where either API is missing, and for a subscription
   * given a `lastEventId`, each subscription opens its own stream.
   */
  shareAcrossTabs?: boolean;
}

export interface SubscribeOptions {
  /** Batch events arriving within this window into one listener call. 0 = deliver each event right away. */
  debounceMs?: number;
  /** Connection status changes. */
  onStatus?: (status: StreamStatus, error?: unknown) => void;
  /** Start resuming from this event id. */
  lastEventId?: string | number | null;
  /** Initial reconnect delay in ms until the server sends `retry:` (default 1000). */
  retryMs?: number;
  /** Upper bound for the exponential backoff (default 30000). */
  maxRetryMs?: number;
  /**
   * Drop a stream that has received nothing at all for this long (not an
   * event, not a heartbeat, not a byte) and reconnect from its last event
   * id, as after any other drop: a half-open connection would otherwise stay
   * `open` and deliver nothing (default 60000; 0 never drops it). Must exceed
   * the relay's `BELLHOP_HEARTBEAT` (25 s by default), the longest an open
   * stream stays silent.
   */
  idleTimeoutMs?: number;
  /** Aborting this signal unsubscribes. */
  signal?: AbortSignal;
}

/** Called with one or more events (more than one only when `debounceMs` batches a burst). */
export type StreamListener = (events: BellhopEvent[]) => void;

export type Unsubscribe = () => void;

/** A channel a preference turns on or off. */
export type PreferenceChannel = 'database' | 'sse' | 'webhook';

/**
 * The recipient's preferences: per notification type, or `'*'` for every
 * type without an entry of its own, which channels are on. A channel not
 * mentioned is on. `database` off: not listed or counted; `sse` off: not
 * pushed live; `webhook` off: not posted. Critical notifications ignore them.
 */
export interface Preferences {
  types: Record<string, Partial<Record<PreferenceChannel, boolean>>>;
}

export interface BellhopClient {
  readonly baseUrl: string;
  list(opts?: ListOptions): Promise<NotificationPage>;
  unreadCount(opts?: RequestOptions): Promise<UnreadCount>;
  markRead(id: string, opts?: RequestOptions): Promise<Notification>;
  markUnread(id: string, opts?: RequestOptions): Promise<Notification>;
  markAllRead(opts?: RequestOptions): Promise<{ updated: number }>;
  /** Clear the unseen count (each notification stays unread): `POST /notifications/seen`. */
  markSeen(opts?: MarkSeenOptions): Promise<{ updated: number }>;
  archive(id: string, opts?: RequestOptions): Promise<Notification>;
  unarchive(id: string, opts?: RequestOptions): Promise<Notification>;
  remove(id: string, opts?: RequestOptions): Promise<void>;
  /** `GET /notifications/preferences`. */
  getPreferences(opts?: RequestOptions): Promise<Preferences>;
  /** `PUT /notifications/preferences`: replaces them all; resolves to what is stored. */
  setPreferences(preferences: Preferences, opts?: RequestOptions): Promise<Preferences>;
  subscribe(listener: StreamListener, opts?: SubscribeOptions): Unsubscribe;
}
