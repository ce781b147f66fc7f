// Ten tabs of one recipient, over plain HTTP/1.1 (six connections per origin
// for the whole browser): the SDK's tabs elect one leader that alone holds
// the stream, so the relay sees one stream, every tab shows live events and
// every tab's count fetch answers. Closing the leader tab hands the stream
// to another tab, which resumes from the last id it saw: every remaining tab
// receives every event once, in order; marking all read in one tab clears
// every tab's badge.
//
// The page's vanilla-recipe panel opens an EventSource of its own in every
// tab, by design (it teaches the recipe, not the SDK): ten of those would
// take the six connections themselves. This test measures the SDK, so an
// init script leaves that panel dark (EventSource does nothing: its badge
// keeps its first count in the screenshots), and records
// what the widget's subscription delivers (mount's bellhop:event) in each tab.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { env, insertNotification, launch, screenshot, sleep, sql, streamsConnected, waitFor } from './lib.js';

const TABS = 10;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The React badge's count ('' is 0). */
async function reactBadge(page) {
  const t = (await page.locator('[data-testid=bellhop-badge]').textContent()).trim();
  return t === '' ? 0 : Number(t);
}

/** The events the widget's subscription delivered in page: [{seq, id, op, at}]. */
function received(page) {
  return page.evaluate(() => window.__bellhopEvents);
}

/** Inserts one notification for the demo user in its own transaction; returns its id. */
function send(title) {
  return sql(insertNotification(title, 'e2e.tabs').replace(/;\s*$/, ' RETURNING id;'));
}

/** The event ids (seq) the relay logged for these notification ids, in order. */
function loggedSeqs(ids) {
  const list = ids.map((id) => `'${id}'`).join(',');
  return sql(`SELECT seq FROM ${env.schema}.relay_log WHERE id IN (${list}) ORDER BY seq`).split('\n').map(Number);
}

/**
 * Count fetches from every page at once, each bounded by timeoutMs: the
 * unseen count, which the widget's bell shows (an earlier test's progress
 * notification, updated while its inbox was open, is seen but unread).
 */
function countsFromEveryTab(pages, timeoutMs) {
  return Promise.all(
    pages.map((p) =>
      p.evaluate(async (ms) => {
        const t0 = performance.now();
        try {
          const res = await fetch('/notifications/unread/count', { credentials: 'include', signal: AbortSignal.timeout(ms) });
          const body = await res.json();
          return { count: body.unseen ?? body.count, ms: Math.round(performance.now() - t0) };
        } catch (err) {
          return { error: String(err), ms: Math.round(performance.now() - t0) };
        }
      }, timeoutMs),
    ),
  );
}

test(`${TABS} tabs share one stream; closing the leader tab loses and doubles nothing`, async () => {
  const { context } = browser;
  await context.addInitScript(() => {
    window.EventSource = class {
      addEventListener() {}
      removeEventListener() {}
      close() {}
    };
    window.__bellhopEvents = [];
    document.addEventListener('bellhop:event', (e) => {
      const { seq, id, op } = e.detail;
      window.__bellhopEvents.push({ seq, id, op, at: Date.now() });
    });
  });
  // Which tab opens a stream, and from where (the SDK streams over fetch).
  const streamRequests = [];
  context.on('request', (req) => {
    if (new URL(req.url()).pathname !== '/notifications/stream') return;
    streamRequests.push({ page: req.frame().page(), type: req.resourceType(), lastEventId: req.headers()['last-event-id'] });
  });

  sql(insertNotification('Ten tabs: waiting'));
  const pages = [];
  try {
    for (let i = 0; i < TABS; i++) {
      const page = await context.newPage();
      page.on('pageerror', (err) => console.error(`[tab ${i} error]`, err.message));
      pages.push(page);
      await page.goto('/');
      await page.locator('[data-testid=bellhop-bell]').waitFor({ timeout: 10_000 });
    }

    // One stream for all of them, and it stays one.
    await waitFor('the relay holds one stream', streamsConnected, (n) => n === 1, 10_000, 50);
    await sleep(1000);
    assert.equal(await streamsConnected(), 1, 'the relay holds more than one stream for the tabs');
    assert.equal(streamRequests.length, 1, `expected one stream request, saw ${streamRequests.length}`);
    assert.equal(streamRequests[0].type, 'fetch');
    const leader = streamRequests[0].page;

    // Every tab's count fetch answers, all at once, and every badge shows it.
    const counts = await countsFromEveryTab(pages, 5000);
    const failed = counts.filter((c) => c.error);
    assert.deepEqual(failed, [], 'a tab\'s unread-count fetch did not answer');
    const c0 = counts[0].count;
    assert.ok(counts.every((c) => c.count === c0), `tabs disagree on the count: ${JSON.stringify(counts)}`);
    console.log(`count fetches from ${TABS} tabs at once: slowest ${Math.max(...counts.map((c) => c.ms))} ms`);
    for (const p of pages) await waitFor('every badge shows the count', () => reactBadge(p), (n) => n === c0, 10_000);

    // A live event reaches every tab within 1 s of COMMIT.
    const ids = [send('Ten tabs: live')];
    const t0 = Date.now(); // as 01-live-badge measures: from when psql returned
    for (const p of pages) {
      await waitFor('the event reaches every tab', () => received(p), (evs) => evs.some((e) => e.id === ids[0]), 5000);
    }
    const lat = await Promise.all(pages.map(async (p) => (await received(p)).find((e) => e.id === ids[0]).at - t0));
    console.log(`event latency per tab (ms after psql returned): ${lat.join(' ')}`);
    assert.ok(Math.max(...lat) < 1000, `an event took ${Math.max(...lat)} ms to reach a tab`);
    for (const p of pages) await waitFor('every badge shows +1', () => reactBadge(p), (n) => n === c0 + 1, 5000);
    await screenshot(pages[0], '05-tab-1-live');
    await screenshot(pages[TABS - 1], `05-tab-${TABS}-live`);

    // Close the leader tab; commit while nobody holds the stream, and after.
    const seenBefore = Math.max(...(await received(leader)).map((e) => e.seq));
    await screenshot(leader, '05-leader-before-close');
    await leader.close();
    const rest = pages.filter((p) => p !== leader);
    for (let i = 1; i <= 3; i++) ids.push(send(`Ten tabs: during the hand-over #${i}`));
    await waitFor('another tab opens the stream', () => streamRequests.length, (n) => n === 2, 5000, 20);
    const next = streamRequests[1];
    assert.ok(rest.includes(next.page), 'the new stream is not from a remaining tab');
    assert.equal(next.lastEventId, String(seenBefore), 'the new leader did not resume from the last id the tabs saw');
    for (let i = 1; i <= 2; i++) ids.push(send(`Ten tabs: after the hand-over #${i}`));

    const want = loggedSeqs(ids);
    assert.equal(want.length, ids.length, 'relay_log misses a notification');
    for (const [i, p] of rest.entries()) {
      await waitFor(`tab ${i} gets every event`, () => received(p), (evs) => ids.every((id) => evs.some((e) => e.id === id)), 5000);
    }
    await sleep(500); // a duplicate would arrive by now
    for (const [i, p] of rest.entries()) {
      const evs = await received(p);
      const seqs = evs.map((e) => e.seq);
      assert.deepEqual(seqs.filter((s) => want.includes(s)), want, `tab ${i}: wrong events after the hand-over`);
      assert.equal(new Set(seqs).size, seqs.length, `tab ${i}: a duplicate event: ${seqs}`);
      assert.deepEqual([...seqs].sort((a, b) => a - b), seqs, `tab ${i}: events out of order: ${seqs}`);
    }
    await waitFor('the relay holds one stream again', streamsConnected, (n) => n === 1, 10_000, 50);
    for (const p of rest) await waitFor('every badge shows +6', () => reactBadge(p), (n) => n === c0 + ids.length, 5000);
    const after = await countsFromEveryTab(rest, 5000);
    assert.deepEqual(after.filter((c) => c.error), [], 'a count fetch hung after the hand-over');
    await screenshot(next.page, '05-new-leader');

    // Read sync over the one stream: mark all read in a follower tab, and
    // every tab's badge drops (the read_all event comes back through the leader).
    const reader = rest.find((p) => p !== next.page);
    await reader.click('[data-testid=bellhop-bell]');
    await reader.locator('[data-testid=bellhop-inbox]').waitFor();
    await screenshot(reader, '05-follower-inbox-after-hand-over');
    await reader.click('[data-testid=bellhop-mark-all]');
    for (const p of rest) await waitFor('every badge drops to 0', () => reactBadge(p), (n) => n === 0, 3000);
    await screenshot(reader, '05-follower-after-mark-all');
    await screenshot(next.page, '05-new-leader-after-mark-all');
  } finally {
    for (const p of pages) await p.close().catch(() => {});
  }
});
