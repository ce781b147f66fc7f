import type { Notification } from './types';

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
