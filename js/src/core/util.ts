import type { Notification, NotificationAction } from './types';

/** Badge text: '' for 0, '99+' above 99. */
export function formatCount(count: number | null | undefined, capped = false, max = 99): string {
  if (!count || count <= 0) return '';
  if (count > max) return `${max}+`;
  return capped ? `${count}+` : String(count);
}

/** Progress notifications are the ones with a non-null `database_key`. */
export function isProgressNotification(n: Pick<Notification, 'database_key'>): boolean {
  return n.database_key !== null && n.database_key !== undefined;
}

/** `data.progress` clamped to 0..100 when it is a finite number, else null. */
export function notificationProgress(n: Pick<Notification, 'data'>): number | null {
  const p = n.data?.progress;
  if (typeof p !== 'number' || !Number.isFinite(p)) return null;
  return Math.min(100, Math.max(0, p));
}

export function notificationTitle(n: Pick<Notification, 'data' | 'type'>): string {
  const t = n.data?.title;
  return typeof t === 'string' && t ? t : n.type;
}

export function notificationBody(n: Pick<Notification, 'data'>): string | null {
  const b = n.data?.body;
  return typeof b === 'string' && b ? b : null;
}

/**
 * `url` if a page may follow it: `http:`/`https:`, or relative (resolved
 * against `base`, the page's URL by default); else null. `javascript:`,
 * `data:`, `vbscript:` and every other scheme are refused, whatever their
 * case, whitespace or control characters, because the URL is parsed the way
 * the browser will parse it.
 */
export function safeUrl(url: unknown, base?: string): string | null {
  if (typeof url !== 'string' || !url.trim()) return null;
  let parsed: URL;
  try {
    const origin = base ?? (typeof location !== 'undefined' ? location.href : 'http://localhost/');
    parsed = new URL(url, origin);
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  return parsed.href;
}

/** `data.url` when it is safe to follow (see `safeUrl`), else null. */
export function notificationUrl(n: Pick<Notification, 'data'>, base?: string): string | null {
  return safeUrl(n.data?.url, base);
}

/** `data.avatar` when it is a safe image URL (see `safeUrl`), else null. */
export function notificationAvatar(n: Pick<Notification, 'data'>, base?: string): string | null {
  return safeUrl(n.data?.avatar, base);
}

/**
 * `data.actions`, keeping only well-formed ones (a non-empty string `id`
 * and `label`); an action's `url` is dropped unless safe (see `safeUrl`).
 */
export function notificationActions(n: Pick<Notification, 'data'>, base?: string): NotificationAction[] {
  const raw = n.data?.actions;
  if (!Array.isArray(raw)) return [];
  const out: NotificationAction[] = [];
  for (const a of raw) {
    if (!a || typeof a !== 'object') continue;
    const { id, label, url } = a as unknown as Record<string, unknown>;
    if (typeof id !== 'string' || !id || typeof label !== 'string' || !label) continue;
    const safe = safeUrl(url, base);
    out.push(safe ? { id, label, url: safe } : { id, label });
  }
  return out;
}

/** Whether `expires_at` has passed (at `now`). */
export function isExpired(n: Pick<Notification, 'expires_at'>, now: number = Date.now()): boolean {
  if (!n.expires_at) return false;
  const at = Date.parse(n.expires_at);
  return Number.isFinite(at) && at <= now;
}
