export { createClient } from './core/client';
export { BellhopError, isBellhopError } from './core/errors';
export { SSEParser, parseSSE } from './core/sse';
export type { SSEMessage, SSEParserCallbacks } from './core/sse';
export { backoffDelay, decodeEvent } from './core/subscribe';
export type * from './core/types';
export { formatCount, isProgressNotification, notificationProgress, notificationTitle, notificationBody } from './core/util';
