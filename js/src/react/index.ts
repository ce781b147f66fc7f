export { BellhopProvider, useBellhop, useBellhopClient, createStreamHub } from './context';
export type { BellhopProviderProps, BellhopContextValue, StreamHub } from './context';
export { useUnreadCount, useNotifications, useNotificationStream } from './hooks';
export { Inbox, NotificationBell } from './components';
export type { InboxProps, InboxLabels, NotificationBellProps } from './components';
export { defaultStyles, injectDefaultStyles } from './styles';
export { formatRelativeTime } from './time';
