/**
 * Entry of the self-contained demo bundle (relay/demo/static/inbox.js):
 * React + @bellhop/client in one ES module, cookie auth.
 *
 *   import { mount } from '/demo/static/inbox.js';
 *   mount(document.getElementById('inbox'), { baseUrl: '' });
 *
 * The element fires a `bellhop:event` CustomEvent (bubbling, `detail` =
 * the event) for each live event the widget's subscription delivers, so a
 * page or a test can watch the stream without a stream of its own.
 */
import { QueryClient } from '@tanstack/react-query';
import { createRoot } from 'react-dom/client';
import { createClient } from '../src';
import type { BellhopEvent } from '../src';
import { BellhopProvider, Inbox, injectDefaultStyles, useNotificationStream, type InboxProps } from '../src/react';

export interface MountOptions {
  /** Relay base URL; '' (default) for same origin. */
  baseUrl?: string;
  /** Optional bearer token; by default the `bellhop_token` cookie is used. */
  token?: string;
  /** Inject the default stylesheet (default true). Set false if you link the package's styles.css yourself. */
  injectStyles?: boolean;
  /** Extra props for <Inbox/>. */
  inbox?: InboxProps;
}

function Announce({ element }: { element: Element }) {
  useNotificationStream((detail: BellhopEvent) =>
    element.dispatchEvent(new CustomEvent('bellhop:event', { detail, bubbles: true })),
  );
  return null;
}

export function mount(element: Element, options: MountOptions = {}) {
  if (!element) throw new Error('bellhop mount: element not found');
  if (options.injectStyles !== false) injectDefaultStyles(element.ownerDocument);
  const client = createClient({ baseUrl: options.baseUrl ?? '', token: options.token, credentials: 'include' });
  const queryClient = new QueryClient({ defaultOptions: { queries: { staleTime: 30_000, retry: 1 } } });
  const root = createRoot(element);
  root.render(
    <BellhopProvider client={client} queryClient={queryClient}>
      <Inbox {...options.inbox} />
      <Announce element={element} />
    </BellhopProvider>,
  );
  return {
    client,
    queryClient,
    unmount() {
      root.unmount();
      queryClient.clear();
    },
  };
}
