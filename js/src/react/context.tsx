import { QueryClient, QueryClientContext, QueryClientProvider } from '@tanstack/react-query';
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import type { BellhopClient, BellhopEvent, StreamStatus, Unsubscribe } from '../core/types';
import { invalidateOnEvent, invalidateOnReopen } from '../query';

type EventListener = (events: BellhopEvent[]) => void;

/** One shared stream subscription per provider, opened while at least one consumer listens. */
export interface StreamHub {
  addListener(listener: EventListener): Unsubscribe;
  getStatus(): StreamStatus;
  onStatusChange(cb: () => void): Unsubscribe;
  close(): void;
}

export function createStreamHub(client: BellhopClient, queryClient: QueryClient, debounceMs: number): StreamHub {
  const listeners = new Set<EventListener>();
  const statusListeners = new Set<() => void>();
  let status: StreamStatus = 'closed';
  let unsubscribe: Unsubscribe | null = null;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;

  const setStatus = (s: StreamStatus) => {
    if (s === status) return;
    status = s;
    statusListeners.forEach((cb) => cb());
  };

  const stop = () => {
    unsubscribe?.();
    unsubscribe = null;
    setStatus('closed');
  };

  return {
    addListener(listener) {
      listeners.add(listener);
      if (stopTimer !== undefined) {
        clearTimeout(stopTimer);
        stopTimer = undefined;
      }
      if (!unsubscribe) {
        unsubscribe = client.subscribe(
          (events) => {
            void invalidateOnEvent(queryClient, events);
            // One consumer's bug must not cost the others their events.
            listeners.forEach((l) => {
              try {
                l(events);
              } catch (e) {
                console.error('[bellhop] stream listener threw', e);
              }
            });
          },
          // Every open refetches the count and lists: a new stream starts at
          // the relay's head, and a reopened one may not have replayed all
          // that happened while it was down.
          { debounceMs, onStatus: invalidateOnReopen(queryClient, setStatus) },
        );
      }
      return () => {
        listeners.delete(listener);
        // Deferred so that StrictMode's unmount/remount does not reconnect.
        if (listeners.size === 0 && stopTimer === undefined) {
          stopTimer = setTimeout(() => {
            stopTimer = undefined;
            if (listeners.size === 0) stop();
          }, 0);
        }
      };
    },
    getStatus: () => status,
    onStatusChange(cb) {
      statusListeners.add(cb);
      return () => statusListeners.delete(cb);
    },
    close() {
      if (stopTimer !== undefined) clearTimeout(stopTimer);
      stopTimer = undefined;
      listeners.clear();
      stop();
    },
  };
}

export interface BellhopContextValue {
  client: BellhopClient;
  queryClient: QueryClient;
  hub: StreamHub;
}

const BellhopContext = createContext<BellhopContextValue | null>(null);

export interface BellhopProviderProps {
  client: BellhopClient;
  /** Defaults to the surrounding QueryClientProvider's client, else a private one. */
  queryClient?: QueryClient;
  /** Batch window for live events (default 50 ms). */
  debounceMs?: number;
  children?: ReactNode;
}

export function BellhopProvider({ client, queryClient, debounceMs = 50, children }: BellhopProviderProps) {
  const ambient = useContext(QueryClientContext);
  const [own] = useState(() => (queryClient || ambient ? null : new QueryClient()));
  const qc = queryClient ?? ambient ?? own ?? new QueryClient();
  const hub = useMemo(() => createStreamHub(client, qc, debounceMs), [client, qc, debounceMs]);
  useEffect(() => () => hub.close(), [hub]);
  const value = useMemo(() => ({ client, queryClient: qc, hub }), [client, qc, hub]);
  return (
    <QueryClientProvider client={qc}>
      <BellhopContext.Provider value={value}>{children}</BellhopContext.Provider>
    </QueryClientProvider>
  );
}

export function useBellhop(): BellhopContextValue {
  const v = useContext(BellhopContext);
  if (!v) throw new Error('Bellhop hooks must be used inside <BellhopProvider>');
  return v;
}

export function useBellhopClient(): BellhopClient {
  return useBellhop().client;
}
