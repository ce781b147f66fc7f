import { BellhopError, errorFromResponse } from './errors';
import { subscribeShared, tabEnv } from './share';
import { subscribeStream } from './subscribe';
import type {
  BellhopClient,
  ClientOptions,
  ListOptions,
  MarkSeenOptions,
  Notification,
  NotificationPage,
  Preferences,
  RequestOptions,
  UnreadCount,
} from './types';

type Query = Record<string, string | number | boolean | string[] | null | undefined>;

function buildQuery(q: Query): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === false) continue;
    if (Array.isArray(v)) for (const item of v) sp.append(k, item);
    else sp.append(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : '';
}

function isAbort(e: unknown): boolean {
  return !!e && typeof e === 'object' && (e as { name?: string }).name === 'AbortError';
}

/** Create a headless Bellhop client. */
export function createClient(options: ClientOptions): BellhopClient {
  const baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '');
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const credentials = options.credentials;

  const resolveToken = async (): Promise<string | null | undefined> => {
    if (options.getToken) return options.getToken();
    return options.token;
  };

  async function request<T>(
    method: string,
    path: string,
    query: Query = {},
    opts: RequestOptions = {},
    body?: unknown,
  ): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = await resolveToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await doFetch(baseUrl + path + buildQuery(query), {
        method,
        headers,
        credentials,
        signal: opts.signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (isAbort(e)) throw e;
      throw new BellhopError(0, 'network_error', e instanceof Error ? e.message : 'network error', { cause: e });
    }
    if (!res.ok) throw await errorFromResponse(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new BellhopError(res.status, 'bad_response', 'response is not valid JSON', { cause: e });
    }
  }

  const idPath = (id: string) => `/notifications/${encodeURIComponent(id)}`;

  return {
    baseUrl,
    list(opts: ListOptions = {}) {
      const { limit, cursor, unread, type, archived, signal } = opts;
      return request<NotificationPage>(
        'GET',
        '/notifications',
        {
          limit,
          cursor: cursor ?? undefined,
          unread: unread ? 'true' : undefined,
          type: type === undefined ? undefined : Array.isArray(type) ? type : [type],
          archived: archived === 'only' ? 'only' : archived ? 'true' : undefined,
        },
        { signal },
      ).then((page) => ({
        notifications: page?.notifications ?? [],
        next_cursor: page?.next_cursor ?? null,
      }));
    },
    unreadCount(opts) {
      return request<UnreadCount>('GET', '/notifications/unread/count', {}, opts).then((r) => ({
        count: r?.count ?? 0,
        capped: !!r?.capped,
        // Absent from an older relay: the bell then counts unread.
        ...(typeof r?.unseen === 'number' ? { unseen: r.unseen, unseen_capped: !!r.unseen_capped } : {}),
      }));
    },
    markRead(id, opts) {
      return request<Notification>('POST', `${idPath(id)}/read`, {}, opts);
    },
    markUnread(id, opts) {
      return request<Notification>('POST', `${idPath(id)}/unread`, {}, opts);
    },
    markAllRead(opts) {
      return request<{ updated: number }>('POST', '/notifications/read-all', {}, opts).then((r) => ({
        updated: r?.updated ?? 0,
      }));
    },
    markSeen(opts: MarkSeenOptions = {}) {
      const { upTo, ...rest } = opts;
      return request<{ updated: number }>('POST', '/notifications/seen', { up_to: upTo ?? undefined }, rest).then((r) => ({
        updated: r?.updated ?? 0,
      }));
    },
    archive(id, opts) {
      return request<Notification>('POST', `${idPath(id)}/archive`, {}, opts);
    },
    unarchive(id, opts) {
      return request<Notification>('POST', `${idPath(id)}/unarchive`, {}, opts);
    },
    async remove(id, opts) {
      await request<void>('DELETE', idPath(id), {}, opts);
    },
    getPreferences(opts) {
      return request<Preferences>('GET', '/notifications/preferences', {}, opts).then((p) => ({ types: p?.types ?? {} }));
    },
    setPreferences(preferences, opts) {
      return request<Preferences>('PUT', '/notifications/preferences', {}, opts, {
        types: preferences.types ?? {},
      }).then((p) => ({ types: p?.types ?? {} }));
    },
    subscribe(listener, opts = {}) {
      const conn = { url: `${baseUrl}/notifications/stream`, fetch: doFetch, credentials, resolveToken };
      // A subscription with a start position of its own cannot join a
      // stream that is already further on.
      const env = options.shareAcrossTabs === false || opts.lastEventId != null ? null : tabEnv();
      return env ? subscribeShared(conn, listener, opts, env) : subscribeStream(conn, listener, opts);
    },
  };
}
