// @vitest-environment jsdom
import { QueryClient } from '@tanstack/react-query';
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { StrictMode, useState } from 'react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClient } from '../src';
import {
  BellhopProvider,
  Inbox,
  NotificationBell,
  formatRelativeTime,
  useNotificationStream,
  useUnreadCount,
} from '../src/react';
import { startFakeRelay } from './helpers/relay';
import { notification, waitUntil } from './helpers/server';

type Relay = Awaited<ReturnType<typeof startFakeRelay>>;
let relay: Relay | undefined;

afterEach(async () => {
  cleanup();
  await relay?.close();
  relay = undefined;
});

function setup(ui: React.ReactNode, r: Relay, queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } })) {
  const client = createClient({ baseUrl: r.url, token: 'jwt' });
  return render(
    <BellhopProvider client={client} queryClient={queryClient} debounceMs={0}>
      {ui}
    </BellhopProvider>,
  );
}

const minutesAgo = (m: number) => new Date(Date.now() - m * 60000).toISOString();

function sample() {
  return [
    notification('n1', { data: { title: 'Invoice paid', body: '$42' }, created_at: minutesAgo(5) }),
    notification('n2', {
      type: 'export.progress',
      database_key: 'export-1',
      data: { title: 'Exporting', progress: 40 },
      created_at: minutesAgo(90),
    }),
    notification('n3', { type: 'comment.created', data: {}, read_at: minutesAgo(1), created_at: minutesAgo(60 * 24 * 3) }),
  ];
}

async function openInbox() {
  fireEvent.click(screen.getByTestId('bellhop-bell'));
  const inbox = await screen.findByTestId('bellhop-inbox');
  await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item').length).toBeGreaterThan(0));
  return inbox;
}

describe('<NotificationBell/>', () => {
  it('shows 99+ for counts above 99, with an accessible label and a live region saying the same', async () => {
    relay = await startFakeRelay([], { countOverride: 150 });
    setup(<NotificationBell />, relay);
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('99+'));
    // The badge is for the eye: announced alone, it would be a bare number.
    const badge = screen.getByTestId('bellhop-badge');
    expect(badge.getAttribute('aria-hidden')).toBe('true');
    expect(badge.hasAttribute('aria-live')).toBe(false);
    const status = screen.getByTestId('bellhop-bell-status');
    expect(status.getAttribute('aria-live')).toBe('polite');
    expect(status.getAttribute('aria-atomic')).toBe('true');
    expect(status.className).toBe('bellhop-sr-only');
    expect(status.textContent).toBe('99+ new');
    expect(screen.getByTestId('bellhop-bell').contains(status)).toBe(false);
    expect(screen.getByTestId('bellhop-bell').getAttribute('aria-label')).toBe('Notifications, 99+ new');
    expect(screen.getByTestId('bellhop-bell').tagName).toBe('BUTTON');
    expect(relay.requests.find((r) => r.path === '/notifications/unread/count')?.headers.authorization).toBe('Bearer jwt');
  });

  it('shows the exact count and an empty badge for 0', async () => {
    relay = await startFakeRelay([], { countOverride: 7 });
    setup(<NotificationBell live={false} />, relay);
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('7'));
    relay.state.countOverride = 0;
    cleanup();
    setup(<NotificationBell live={false} />, relay);
    await waitUntil(() => relay!.requests.filter((r) => r.path === '/notifications/unread/count').length === 2);
    await act(() => new Promise((r) => setTimeout(r, 20)));
    expect(screen.getByTestId('bellhop-badge').textContent).toBe('');
    expect(screen.getByTestId('bellhop-bell').getAttribute('aria-label')).toBe('Notifications');
    expect(screen.getByTestId('bellhop-bell-status').textContent).toBe('');
  });

  it('on its own, joins the live stream: the badge follows new notifications', async () => {
    relay = await startFakeRelay([notification('n1')]);
    setup(<NotificationBell count="unread" />, relay);
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('1'));
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'the stream');
    relay.state.items.unshift(notification('n2'));
    relay.push('created', { id: 'n2' });
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('2'));
    expect(screen.getByTestId('bellhop-bell-status').textContent).toBe('2 unread');
    expect(relay.requests.filter((r) => r.path === '/notifications/stream')).toHaveLength(1);
  });

  it('live={false} opens no stream', async () => {
    relay = await startFakeRelay([notification('n1')]);
    setup(<NotificationBell count="unread" live={false} />, relay);
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('1'));
    await act(() => new Promise((r) => setTimeout(r, 50)));
    expect(relay.requests.some((r) => r.path === '/notifications/stream')).toBe(false);
    expect(screen.getByTestId('bellhop-bell').hasAttribute('live')).toBe(false);
  });
});

describe('useUnreadCount()', () => {
  it('is live by default and gives the unread count as count', async () => {
    relay = await startFakeRelay([notification('n1')]);
    function Badge() {
      const { count, data } = useUnreadCount();
      return <span data-testid="count">{data ? count : 'loading'}</span>;
    }
    setup(<Badge />, relay);
    await waitFor(() => expect(screen.getByTestId('count').textContent).toBe('1'));
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'the stream');
    relay.state.items.unshift(notification('n2'));
    relay.push('created', { id: 'n2' });
    await waitFor(() => expect(screen.getByTestId('count').textContent).toBe('2'));
  });

  it('opens no stream with live: false or enabled: false', async () => {
    relay = await startFakeRelay([notification('n1')]);
    function Counts() {
      const still = useUnreadCount({ live: false });
      useUnreadCount({ enabled: false });
      return <span data-testid="count">{still.count}</span>;
    }
    setup(<Counts />, relay);
    await waitFor(() => expect(screen.getByTestId('count').textContent).toBe('1'));
    await act(() => new Promise((r) => setTimeout(r, 50)));
    expect(relay.requests.some((r) => r.path === '/notifications/stream')).toBe(false);
  });
});

describe('<Inbox/>', () => {
  it('opens on click and renders items with unread state, progress and relative times', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} bellCount="unread" />, relay);
    const bell = screen.getByTestId('bellhop-bell');
    expect(bell.getAttribute('aria-expanded')).toBe('false');
    expect(screen.queryByTestId('bellhop-inbox')).toBeNull();
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('2'));

    const inbox = await openInbox();
    expect(bell.getAttribute('aria-expanded')).toBe('true');
    expect(bell.getAttribute('aria-controls')).toBe(inbox.id);
    expect(document.activeElement).toBe(inbox);

    const items = within(inbox).getAllByTestId('bellhop-item');
    expect(items.map((i) => [i.dataset.id, i.dataset.unread])).toEqual([
      ['n1', 'true'],
      ['n2', 'true'],
      ['n3', 'false'],
    ]);
    expect(items[0].textContent).toContain('Invoice paid');
    expect(items[0].textContent).toContain('$42');
    expect(items[0].textContent).toContain('5 minutes ago');
    expect(items[2].textContent).toContain('comment.created'); // title falls back to type
    expect(items[2].textContent).toContain('3 days ago');

    const progress = within(inbox).getAllByTestId('bellhop-progress');
    expect(progress).toHaveLength(1);
    expect(items[1].contains(progress[0])).toBe(true);
    expect(progress[0].getAttribute('aria-valuenow')).toBe('40');
    expect(within(items[0]).queryByTestId('bellhop-progress')).toBeNull();
    expect(relay.requests.some((r) => r.path === '/notifications/stream')).toBe(false); // live={false}
  });

  it('shows the empty state', async () => {
    relay = await startFakeRelay([]);
    setup(<Inbox live={false} bellCount="unread" />, relay);
    fireEvent.click(screen.getByTestId('bellhop-bell'));
    expect((await screen.findByTestId('bellhop-empty')).textContent).toBe("You're all caught up.");
    expect(screen.queryAllByTestId('bellhop-item')).toHaveLength(0);
    expect((screen.getByTestId('bellhop-mark-all') as HTMLButtonElement).disabled).toBe(true);
  });

  it('shows the error state with the server message and can retry', async () => {
    relay = await startFakeRelay(sample(), { failList: true });
    setup(<Inbox live={false} bellCount="unread" />, relay);
    fireEvent.click(screen.getByTestId('bellhop-bell'));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('database unavailable');
    relay.state.failList = false;
    fireEvent.click(within(alert).getByRole('button', { name: 'Try again' }));
    await waitFor(() => expect(screen.getAllByTestId('bellhop-item')).toHaveLength(3));
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('mark all read calls the API and updates items and badge', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} bellCount="unread" />, relay);
    const inbox = await openInbox();
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('2'));
    fireEvent.click(within(inbox).getByTestId('bellhop-mark-all'));
    await waitFor(() =>
      expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.unread)).toEqual(['false', 'false', 'false']),
    );
    expect(screen.getByTestId('bellhop-badge').textContent).toBe('');
    await waitUntil(() => relay!.requests.some((r) => r.method === 'POST' && r.path === '/notifications/read-all'));
    expect(relay.state.items.every((n) => n.read_at)).toBe(true);
  });

  it('marks one read and deletes one through the API', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} bellCount="unread" />, relay);
    const inbox = await openInbox();
    const first = within(inbox).getAllByTestId('bellhop-item')[0];
    const markRead = within(first).getByTestId('bellhop-mark-read');
    expect(markRead.tagName).toBe('BUTTON');
    expect(markRead.getAttribute('aria-label')).toBe('Mark read: Invoice paid');
    fireEvent.click(markRead);
    await waitFor(() => expect(first.dataset.unread).toBe('false'));
    await waitUntil(() => relay!.requests.some((r) => r.method === 'POST' && r.path === '/notifications/n1/read'));

    fireEvent.click(within(within(inbox).getAllByTestId('bellhop-item')[2]).getByTestId('bellhop-delete'));
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.id)).toEqual(['n1', 'n2']));
    await waitUntil(() => relay!.requests.some((r) => r.method === 'DELETE' && r.path === '/notifications/n3'));
  });

  it('Escape closes the panel and returns focus to the bell', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} bellCount="unread" />, relay);
    const inbox = await openInbox();
    fireEvent.keyDown(inbox, { key: 'Escape' });
    expect(screen.queryByTestId('bellhop-inbox')).toBeNull();
    const bell = screen.getByTestId('bellhop-bell');
    expect(bell.getAttribute('aria-expanded')).toBe('false');
    expect(document.activeElement).toBe(bell);
  });

  it('applies live events: progress moves, updated and created refresh the count and the list', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox bellCount="unread" />, relay);
    const inbox = await openInbox();
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'stream');
    expect(relay.requests.find((r) => r.path === '/notifications/stream')?.headers.authorization).toBe('Bearer jwt');
    await act(() => new Promise((r) => setTimeout(r, 50))); // the refetch of the open
    const listFetches = () => relay!.requests.filter((r) => r.path === '/notifications').length;
    const countFetches = () => relay!.requests.filter((r) => r.path === '/notifications/unread/count').length;
    const [l0, c0] = [listFetches(), countFetches()];

    // A progress upsert of a read row: the database copy changes with it,
    // and the row is unread again.
    const n3 = relay.state.items.find((n) => n.id === 'n3')!;
    Object.assign(n3, { database_key: 'job-3', read_at: null, data: { title: 'Job', progress: 75 } });
    relay.push('updated', { id: 'n3', database_key: 'job-3', sse: { progress: 75 } });
    const item = (id: string) => within(inbox).getAllByTestId('bellhop-item').find((i) => i.dataset.id === id)!;
    await waitFor(() => expect(within(item('n3')).getByTestId('bellhop-progress').getAttribute('aria-valuenow')).toBe('75'));
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('3'));
    await waitFor(() => expect(item('n3').textContent).toContain('Job'));
    expect(item('n3').dataset.unread).toBe('true');
    expect(listFetches()).toBe(l0 + 1);
    expect(countFetches()).toBe(c0 + 1);

    relay.state.items.unshift(notification('n0', { data: { title: 'Fresh' }, created_at: new Date().toISOString() }));
    relay.push('created', { id: 'n0' });
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('4'));
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item')[0].dataset.id).toBe('n0'));
  });

  it('refetches the count and the lists when the stream reopens, though no event came', async () => {
    relay = await startFakeRelay(sample());
    const statuses: string[] = [];
    function Status() {
      statuses.push(useNotificationStream());
      return null;
    }
    setup(
      <>
        <Inbox bellCount="unread" markSeenOnOpen={false} />
        <Status />
      </>,
      relay,
    );
    const inbox = await openInbox();
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'stream');
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('2'));
    await act(() => new Promise((r) => setTimeout(r, 50)));
    const counts = () => relay!.requests.filter((r) => r.path === '/notifications/unread/count').length;
    const lists = () => relay!.requests.filter((r) => r.path === '/notifications').length;
    const [c0, l0] = [counts(), lists()];
    expect(c0).toBe(2); // the first fetch, and the refetch at the first open

    // Committed while the stream is down, and never replayed to this client.
    relay.dropStreams();
    relay.state.items.unshift(notification('n0', { data: { title: 'Missed' }, created_at: new Date().toISOString() }));
    await waitUntil(() => relay!.requests.filter((r) => r.path === '/notifications/stream').length === 2, 3000, 'reconnect');
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('3'));
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item')[0].dataset.id).toBe('n0'));
    expect(counts()).toBe(c0 + 1);
    expect(lists()).toBe(l0 + 1);
    expect(statuses).toContain('closed');
    expect(statuses.at(-1)).toBe('open');
  });

  it('a new stream after the last consumer left refetches what changed meanwhile, however fresh the cache', async () => {
    relay = await startFakeRelay([notification('n1')]);
    function Badge() {
      useNotificationStream();
      const { data } = useUnreadCount({ live: false });
      return <span data-testid="count">{data?.count}</span>;
    }
    function Routes() {
      const [shown, setShown] = useState(true);
      return (
        <>
          <button type="button" data-testid="toggle" onClick={() => setShown(!shown)} />
          {shown && <Badge />}
        </>
      );
    }
    setup(<Routes />, relay, new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: 30_000 } } }));
    await waitFor(() => expect(screen.getByTestId('count').textContent).toBe('1'));
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'the stream');

    // A route change unmounts the badge: the provider closes the stream.
    fireEvent.click(screen.getByTestId('toggle'));
    await waitUntil(() => relay!.streamCount() === 0, 3000, 'the stream closed');
    relay.state.items.unshift(notification('n2')); // never sent to this client
    fireEvent.click(screen.getByTestId('toggle'));
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'a new stream');
    await waitFor(() => expect(screen.getByTestId('count').textContent).toBe('2'));
  });

  it('a consumer whose callback throws does not cut off the others', async () => {
    relay = await startFakeRelay(sample());
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const seen: string[] = [];
    function Thrower() {
      useNotificationStream(() => {
        throw new Error('consumer bug');
      });
      return null;
    }
    function Listener() {
      useNotificationStream((e) => seen.push(e.op));
      return null;
    }
    setup(
      <>
        <Thrower />
        <Listener />
      </>,
      relay,
    );
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'the stream');
    relay.push('read', { id: 'n1', read_at: new Date().toISOString() });
    relay.push('created', { id: 'n9' });
    await waitFor(() => expect(seen).toEqual(['read', 'created']));
    expect(logged).toHaveBeenCalledWith(expect.stringContaining('[bellhop]'), expect.objectContaining({ message: 'consumer bug' }));
  });

  it('shares one stream per provider, even in StrictMode with several consumers', async () => {
    relay = await startFakeRelay(sample());
    const seen: string[] = [];
    function Listener() {
      useNotificationStream((e) => seen.push(e.op));
      return null;
    }
    const client = createClient({ baseUrl: relay.url });
    render(
      <StrictMode>
        <BellhopProvider client={client} queryClient={new QueryClient()} debounceMs={0}>
          <Inbox bellCount="unread" />
          <Listener />
        </BellhopProvider>
      </StrictMode>,
    );
    await waitUntil(() => relay!.streamCount() === 1, 3000, 'stream');
    await act(() => new Promise((r) => setTimeout(r, 50)));
    expect(relay.requests.filter((r) => r.path === '/notifications/stream')).toHaveLength(1);
    relay.push('read', { id: 'n1', read_at: new Date().toISOString() });
    await waitFor(() => expect(seen).toEqual(['read']));
    cleanup();
    await waitUntil(() => relay!.streamCount() === 0, 3000, 'stream closed on unmount');
  });
});

describe('formatRelativeTime', () => {
  it('uses Intl.RelativeTimeFormat units', () => {
    const now = new Date('2024-06-01T12:00:00Z');
    expect(formatRelativeTime('2024-06-01T11:59:50Z', now, 'en')).toBe('now');
    expect(formatRelativeTime('2024-06-01T11:55:00Z', now, 'en')).toBe('5 minutes ago');
    expect(formatRelativeTime('2024-06-01T09:00:00Z', now, 'en')).toBe('3 hours ago');
    expect(formatRelativeTime('2024-05-31T12:00:00Z', now, 'en')).toBe('yesterday');
    expect(formatRelativeTime('2024-05-18T12:00:00Z', now, 'en')).toBe('2 weeks ago');
    expect(formatRelativeTime('2022-06-01T12:00:00Z', now, 'en')).toBe('2 years ago');
    expect(formatRelativeTime('not a date', now, 'en')).toBe('');
  });
});

describe('<Inbox/> seen, archive, actions', () => {
  it('the bell counts unseen by default and clears when the inbox opens; items stay unread', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} />, relay);
    // n3 is read but not seen: the bell counts it.
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('3'));
    expect(screen.getByTestId('bellhop-bell').getAttribute('aria-label')).toBe('Notifications, 3 new');
    const inbox = await openInbox();
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe(''));
    expect(relay.requests.filter((r) => r.method === 'POST' && r.path === '/notifications/seen')).toHaveLength(1);
    expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.unread)).toEqual(['true', 'true', 'false']);
  });

  it('markSeenOnOpen={false} leaves the bell as it is', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} markSeenOnOpen={false} />, relay);
    await openInbox();
    await act(() => new Promise((r) => setTimeout(r, 50)));
    expect(screen.getByTestId('bellhop-badge').textContent).toBe('3');
    expect(relay.requests.some((r) => r.path === '/notifications/seen')).toBe(false);
  });

  it('archive moves a row to the Archived tab, and back', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} />, relay);
    const inbox = await openInbox();
    const first = within(inbox).getAllByTestId('bellhop-item')[0];
    expect(first.dataset.id).toBe('n1');
    fireEvent.click(within(first).getByTestId('bellhop-archive'));
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.id)).toEqual(['n2', 'n3']));
    expect(relay.requests.some((r) => r.method === 'POST' && r.path === '/notifications/n1/archive')).toBe(true);

    fireEvent.click(within(inbox).getByTestId('bellhop-tab-archived'));
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.id)).toEqual(['n1']));
    expect(relay.requests.some((r) => r.path === '/notifications' && r.query.get('archived') === 'only')).toBe(true);
    const archived = within(inbox).getByTestId('bellhop-item');
    expect(archived.dataset.archived).toBe('true');
    fireEvent.click(within(archived).getByTestId('bellhop-unarchive'));
    await waitFor(() => expect(within(inbox).queryAllByTestId('bellhop-item')).toHaveLength(0));
    expect(within(inbox).getByTestId('bellhop-empty').textContent).toBe('Nothing archived.');
    fireEvent.click(within(inbox).getByTestId('bellhop-tab-inbox'));
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.id)).toEqual(['n1', 'n2', 'n3']));
  });

  it('the tabs follow the WAI-ARIA tabs pattern: ids, aria-controls, one tab stop, a labelled panel', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} />, relay);
    const inbox = await openInbox();
    const tablist = within(inbox).getByRole('tablist');
    const title = within(inbox).getByRole('heading');
    expect(tablist.getAttribute('aria-labelledby')).toBe(title.id);
    const tabs = within(tablist).getAllByRole('tab');
    expect(tabs.map((t) => t.dataset.testid)).toEqual(['bellhop-tab-inbox', 'bellhop-tab-archived']);
    const [inboxTab, archivedTab] = tabs;
    const panel = within(inbox).getByRole('tabpanel');
    expect(panel.dataset.testid).toBe('bellhop-tabpanel');
    expect(inboxTab.id).not.toBe('');
    expect(archivedTab.id).not.toBe(inboxTab.id);
    expect(panel.id).not.toBe('');
    for (const t of tabs) expect(t.getAttribute('aria-controls')).toBe(panel.id);
    expect(panel.getAttribute('aria-labelledby')).toBe(inboxTab.id);
    expect(panel.tabIndex).toBe(0);
    expect(tabs.map((t) => [t.getAttribute('aria-selected'), t.tabIndex])).toEqual([
      ['true', 0],
      ['false', -1],
    ]);
    // The list and the paging are in the panel.
    expect(within(panel).getAllByTestId('bellhop-item')).toHaveLength(3);

    fireEvent.click(archivedTab);
    await waitFor(() => expect(panel.getAttribute('aria-labelledby')).toBe(archivedTab.id));
    expect(tabs.map((t) => [t.getAttribute('aria-selected'), t.tabIndex])).toEqual([
      ['false', -1],
      ['true', 0],
    ]);
  });

  it('the arrows (wrapping), Home and End move selection and focus between the tabs', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} />, relay);
    const inbox = await openInbox();
    const [inboxTab, archivedTab] = within(inbox).getAllByRole('tab');
    const panel = within(inbox).getByRole('tabpanel');
    const selected = () => within(inbox).getAllByRole('tab').filter((t) => t.getAttribute('aria-selected') === 'true');
    const press = (key: string) => fireEvent.keyDown(document.activeElement!, { key });

    inboxTab.focus();
    press('ArrowRight');
    expect(selected()).toEqual([archivedTab]);
    expect(document.activeElement).toBe(archivedTab);
    expect(panel.getAttribute('aria-labelledby')).toBe(archivedTab.id);
    await waitFor(() => expect(relay!.requests.some((r) => r.path === '/notifications' && r.query.get('archived') === 'only')).toBe(true));

    press('ArrowRight'); // wraps to the first
    expect(selected()).toEqual([inboxTab]);
    expect(document.activeElement).toBe(inboxTab);

    press('ArrowLeft'); // wraps to the last
    expect(selected()).toEqual([archivedTab]);
    expect(document.activeElement).toBe(archivedTab);

    press('Home');
    expect(selected()).toEqual([inboxTab]);
    expect(document.activeElement).toBe(inboxTab);

    press('End');
    expect(selected()).toEqual([archivedTab]);
    expect(document.activeElement).toBe(archivedTab);

    // Other keys are left alone; Escape still closes the inbox.
    press('ArrowDown');
    expect(selected()).toEqual([archivedTab]);
    press('Escape');
    expect(screen.queryByTestId('bellhop-inbox')).toBeNull();
    expect(document.activeElement).toBe(screen.getByTestId('bellhop-bell'));
  });

  it('archive={false}: no tabs and no tab panel', async () => {
    relay = await startFakeRelay(sample());
    setup(<Inbox live={false} archive={false} />, relay);
    const inbox = await openInbox();
    expect(within(inbox).queryByRole('tablist')).toBeNull();
    expect(within(inbox).queryByRole('tabpanel')).toBeNull();
    expect(within(inbox).getAllByTestId('bellhop-item')).toHaveLength(3);
  });

  it('renders url, avatar and actions; refuses javascript: URLs; clicks mark read and call back', async () => {
    relay = await startFakeRelay([
      notification('safe', {
        data: {
          title: 'Review requested',
          url: '/reviews/7',
          avatar: 'https://cdn.example/a.png',
          actions: [
            { id: 'approve', label: 'Approve' },
            { id: 'open', label: 'Open', url: 'https://app.example/reviews/7' },
            { id: 'evil', label: 'Evil', url: ' JaVaScRiPt:alert(1)' },
            { id: '', label: 'no id' },
            { label: 'no id either' },
          ],
        },
      }),
      notification('evil', { data: { title: 'Evil', url: 'javascript:alert(document.cookie)', avatar: 'javascript:alert(1)' } }),
      notification('data', { data: { title: 'Data', url: 'data:text/html,<script>alert(1)</script>' } }),
      notification('tab', { data: { title: 'Tab', url: 'java\tscript:alert(1)' } }),
    ]);
    const actions: string[] = [];
    const opened: string[] = [];
    setup(
      <Inbox
        live={false}
        onAction={(n, a, e) => {
          e.preventDefault();
          actions.push(`${n.id}:${a.id}:${a.url ?? ''}`);
        }}
        onOpen={(n, url, e) => {
          e.preventDefault();
          opened.push(`${n.id}:${url}`);
        }}
      />,
      relay,
    );
    const inbox = await openInbox();
    const [safe, evil, data, tab] = within(inbox).getAllByTestId('bellhop-item');
    const link = within(safe).getByTestId('bellhop-item-link') as HTMLAnchorElement;
    expect(link.getAttribute('href')).toBe(new URL('/reviews/7', location.href).href);
    expect(safe.querySelector('img')?.getAttribute('src')).toBe('https://cdn.example/a.png');
    for (const row of [evil, data, tab]) {
      expect(within(row).queryByTestId('bellhop-item-link')).toBeNull();
      expect(row.querySelector('a')).toBeNull();
      expect(row.querySelector('img')).toBeNull();
    }
    const buttons = within(safe).getAllByTestId('bellhop-action');
    expect(buttons.map((b) => [b.dataset.action, b.tagName, b.getAttribute('href')])).toEqual([
      ['approve', 'BUTTON', null],
      ['open', 'A', 'https://app.example/reviews/7'],
      ['evil', 'BUTTON', null],
    ]);

    fireEvent.click(buttons[0]);
    expect(actions).toEqual(['safe:approve:']);
    await waitFor(() => expect(relay!.requests.some((r) => r.method === 'POST' && r.path === '/notifications/safe/read')).toBe(true));
    fireEvent.click(buttons[2]);
    expect(actions.at(-1)).toBe('safe:evil:');

    fireEvent.click(link);
    expect(opened).toEqual([`safe:${new URL('/reviews/7', location.href).href}`]);
  });

  it('renderItem draws the row; the helpers act on it', async () => {
    relay = await startFakeRelay(sample());
    setup(
      <Inbox
        live={false}
        renderItem={(n, h) => (
          <button type="button" data-testid="custom" onClick={h.archive}>
            custom {n.id}
          </button>
        )}
      />,
      relay,
    );
    const inbox = await openInbox();
    const custom = within(inbox).getAllByTestId('custom');
    expect(custom.map((c) => c.textContent)).toEqual(['custom n1', 'custom n2', 'custom n3']);
    expect(within(inbox).getAllByTestId('bellhop-item')[0].dataset.id).toBe('n1');
    fireEvent.click(custom[1]);
    await waitFor(() => expect(within(inbox).getAllByTestId('custom').map((c) => c.textContent)).toEqual(['custom n1', 'custom n3']));
  });

  it('a row leaves at its expires_at, before any event', async () => {
    relay = await startFakeRelay([
      notification('brief', { data: { title: 'Brief' }, expires_at: new Date(Date.now() + 400).toISOString() }),
      notification('gone', { data: { title: 'Gone' }, expires_at: new Date(Date.now() - 1000).toISOString() }),
      notification('stays', { data: { title: 'Stays' } }),
    ]);
    setup(<Inbox live={false} />, relay);
    const inbox = await openInbox();
    expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.id)).toEqual(['brief', 'stays']);
    await waitFor(() => expect(within(inbox).getAllByTestId('bellhop-item').map((i) => i.dataset.id)).toEqual(['stays']), {
      timeout: 2000,
    });
  });
});

describe('<Inbox/> mark seen failing', () => {
  it('does not retry a failed mark-seen while the inbox stays open', async () => {
    relay = await startFakeRelay(sample());
    relay.state.failSeen = true;
    setup(<Inbox live={false} />, relay);
    await waitFor(() => expect(screen.getByTestId('bellhop-badge').textContent).toBe('3'));
    await openInbox();
    await waitUntil(() => relay!.requests.some((r) => r.path === '/notifications/seen'));
    await act(() => new Promise((r) => setTimeout(r, 300)));
    expect(relay.requests.filter((r) => r.path === '/notifications/seen')).toHaveLength(1);
    expect(screen.getByTestId('bellhop-badge').textContent).toBe('3');
  });
});
