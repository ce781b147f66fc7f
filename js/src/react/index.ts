export { BellhopProvider, useBellhop, useBellhopClient, createStreamHub } from './context';
export type { BellhopProviderProps, BellhopContextValue, StreamHub } from './context';
export { useUnreadCount, useNotifications, useNotificationStream, useMarkSeen } from './hooks';
export { Inbox, NotificationBell } from './components';
export type { BellCount, InboxItemHelpers, InboxProps, InboxLabels, NotificationBellProps } from './components';
export { defaultStyles, injectDefaultStyles } from './styles';
export { formatRelativeTime } from './time';
