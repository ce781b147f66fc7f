export { createClient } from './core/client';
export { BellhopError, isBellhopError } from './core/errors';
export { SSEParser, parseSSE } from './core/sse';
export type { SSEMessage, SSEParserCallbacks } from './core/sse';
export { backoffDelay, decodeEvent } from './core/subscribe';
export type * from './core/types';
export {
  formatCount,
  isExpired,
  isProgressNotification,
  notificationActions,
  notificationAvatar,
  notificationBody,
  notificationProgress,
  notificationTitle,
  notificationUrl,
  safeUrl,
} from './core/util';
