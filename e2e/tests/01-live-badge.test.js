// A notification committed from SQL moves both badges (the React widget's and
// the vanilla recipe's #bell-badge) within 1 s, without a reload; a rolled
// back one, from SQL or from the page's button, moves nothing. The recipe's
// panel shows the frames it receives and its Last-Event-ID.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  apiCount, badges, badgesShow, insertNotification, launch, notReloaded, openDemo,
  screenshot, settle, sleep, sql, sqlScript, waitFor,
} from './lib.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('committed from SQL: both badges +1 within 1 s; rolled back: unchanged', async () => {
  const page = await openDemo(browser.context);
  try {
    const c0 = await settle(page, 2);

    sqlScript(`BEGIN;\n${insertNotification('Committed from SQL')}\nCOMMIT;`);
    const { ms } = await badgesShow(page, c0 + 1, 1000, 'badges show +1 within 1 s of COMMIT');
    console.log(`badges moved ${ms} ms after psql returned`);
    assert.equal(await notReloaded(page), true, 'the page was reloaded');
    await screenshot(page, '01-committed-from-sql');

    sqlScript(`BEGIN;\n${insertNotification('Rolled back from SQL')}\nROLLBACK;`);
    await sleep(2000);
    assert.deepEqual(await badges(page), { react: c0 + 1, vanilla: c0 + 1 }, 'a rolled-back insert moved a badge');
    assert.equal(await apiCount(page), c0 + 1, 'a rolled-back insert changed the unread count');
    await screenshot(page, '01-rolled-back-from-sql');
  } finally {
    await screenshot(page, '01-live-badge-sql-final');
    await page.close();
  }
});

test('the page buttons: send-rollback leaves the badges, send moves them', async () => {
  const page = await openDemo(browser.context);
  try {
    const c0 = await settle(page, 2);

    const rolledBack = page.waitForResponse((r) => r.url().endsWith('/demo/send-rollback'));
    await page.click('#send-rollback');
    const res = await rolledBack;
    assert.equal(res.status(), 200, 'POST /demo/send-rollback failed');
    assert.equal((await res.json()).committed, false);
    await sleep(2000);
    assert.deepEqual(await badges(page), { react: c0, vanilla: c0 }, 'send-rollback moved a badge');
    assert.equal(await apiCount(page), c0, 'send-rollback changed the unread count');
    await screenshot(page, '01-send-rollback-button');

    // The control: the same path, committed, does move both badges.
    const sent = page.waitForResponse((r) => r.url().endsWith('/demo/send'));
    await page.click('#send');
    assert.equal((await sent).status(), 200, 'POST /demo/send failed');
    await badgesShow(page, c0 + 1, 1000, 'badges show +1 within 1 s of the send button');
    assert.equal(await notReloaded(page), true, 'the page was reloaded');
  } finally {
    await screenshot(page, '01-live-badge-buttons-final');
    await page.close();
  }
});

test('the recipe\'s wire panel shows each frame it receives and the Last-Event-ID', async () => {
  const page = await openDemo(browser.context);
  try {
    await settle(page, 2);
    const lastEventId = page.locator('[data-testid=last-event-id]');
    assert.equal(await page.locator('[data-testid=stream-state]').textContent(), 'open');
    const before = await lastEventId.textContent();

    const id = sql(insertNotification('On the wire', 'e2e.wire').replace(/;$/, ' RETURNING id;'));
    assert.match(id, /^[0-9a-f-]{36}$/, 'INSERT ... RETURNING id');
    const frame = page.locator(`[data-testid=sse-frames] li[data-id="${id}"]`);
    await frame.waitFor({ timeout: 2000 });
    assert.equal(await frame.getAttribute('data-op'), 'created');
    assert.equal(await frame.getAttribute('data-type'), 'e2e.wire');
    const eventId = await frame.getAttribute('data-event-id');
    assert.match(eventId, /^\d+$/, 'the frame\'s id: is the event id');
    const raw = await frame.locator('pre').textContent();
    assert.ok(raw.startsWith(`id: ${eventId}\nevent: notification\ndata: {`), raw);
    assert.ok(raw.includes(`"id":"${id}"`) && raw.includes('"type":"e2e.wire"'), raw);
    assert.equal(await lastEventId.textContent(), eventId, 'Last-Event-ID shows the frame\'s id');
    assert.notEqual(eventId, before);
    await screenshot(page, '01-wire-panel');

    // The next event goes on top, and Last-Event-ID moves on.
    sql(insertNotification('On the wire, again', 'e2e.wire.again'));
    const top = page.locator('[data-testid=sse-frames] li').first();
    await waitFor('the newest frame on top', () => top.getAttribute('data-type'), (t) => t === 'e2e.wire.again', 2000);
    const next = await top.getAttribute('data-event-id');
    assert.ok(BigInt(next) > BigInt(eventId), `${next} after ${eventId}`);
    assert.equal(await lastEventId.textContent(), next);

    // The hint's link opens the same page in another tab.
    const [other] = await Promise.all([
      browser.context.waitForEvent('page'),
      page.click('[data-testid=open-another-tab]'),
    ]);
    await other.locator('[data-testid=bellhop-bell]').waitFor();
    assert.equal(new URL(other.url()).pathname, '/');
    await other.close();
  } finally {
    await screenshot(page, '01-wire-panel-final');
    await page.close();
  }
});
