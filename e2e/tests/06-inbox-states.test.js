// Seen, archive and actions in the demo page's React inbox.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  apiCount, apiUnseen, badges, insertNotification, launch, notReloaded, openDemo, screenshot, settle,
  sleep, sql, waitFor,
} from './lib.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const reactBadge = async (page) => (await badges(page)).react;

test('opening the inbox in one tab clears the bell in every tab; everything stays unread', async () => {
  const a = await openDemo(browser.context);
  const b = await openDemo(browser.context);
  try {
    // Three streams: the SDK's, shared by both tabs, and each tab's vanilla
    // EventSource recipe.
    await settle(a, 3);
    sql(insertNotification('Seen: first') + insertNotification('Seen: second'));
    await waitFor('tab B\'s bell shows the new ones', () => reactBadge(b), (n) => n >= 2, 5000);
    const unread = await apiCount(a);
    assert.ok((await apiUnseen(a)) >= 2);
    await screenshot(b, '06-seen-before');

    await a.click('[data-testid=bellhop-bell]');
    await a.locator('[data-testid=bellhop-inbox]').waitFor();
    await waitFor('tab A\'s bell clears', () => reactBadge(a), (n) => n === 0, 3000);
    const { ms } = await waitFor('tab B\'s bell clears (the seen event)', () => reactBadge(b), (n) => n === 0, 3000);
    console.log(`tab B's bell cleared ${ms} ms after tab A's`);
    assert.equal(await apiUnseen(a), 0);
    assert.equal(await apiCount(a), unread, 'seeing is not reading');
    assert.equal((await badges(b)).vanilla, unread, 'the unread badge did not move');
    assert.ok(await a.locator('[data-testid=bellhop-item][data-unread=true]').count() >= 2);
    assert.equal(await notReloaded(b), true, 'tab B was reloaded');
    await screenshot(b, '06-seen-tab-b');
  } finally {
    await a.close();
    await b.close();
  }
});

test('archive moves the row to the Archived tab, and back', async () => {
  sql(insertNotification('Archive me'));
  const page = await openDemo(browser.context);
  try {
    await settle(page, 2);
    await page.click('[data-testid=bellhop-bell]');
    const inbox = page.locator('[data-testid=bellhop-inbox]');
    const row = inbox.locator('[data-testid=bellhop-item]', { hasText: 'Archive me' });
    await row.waitFor();
    const id = await row.getAttribute('data-id');
    const byId = inbox.locator(`[data-testid=bellhop-item][data-id="${id}"]`);
    await row.locator('[data-testid=bellhop-archive]').click();
    await byId.waitFor({ state: 'detached', timeout: 3000 });

    await inbox.locator('[data-testid=bellhop-tab-archived]').click();
    await byId.waitFor({ timeout: 3000 });
    assert.equal(await byId.getAttribute('data-archived'), 'true');
    assert.equal(sql(`SELECT archived_at IS NOT NULL FROM ${process.env.BELLHOP_SCHEMA}.notifications WHERE id = '${id}'`), 't');
    await screenshot(page, '06-archived-tab');

    await byId.locator('[data-testid=bellhop-unarchive]').click();
    await byId.waitFor({ state: 'detached', timeout: 3000 });
    await inbox.locator('[data-testid=bellhop-tab-inbox]').click();
    await byId.waitFor({ timeout: 3000 });
    assert.equal(await byId.getAttribute('data-archived'), 'false');
  } finally {
    await page.close();
  }
});

test('an action button calls back and marks read; a javascript: url is not a link', async () => {
  const schema = process.env.BELLHOP_SCHEMA;
  sql(`INSERT INTO ${schema}.notifications (notifiable_id, type, data) VALUES ('demo', 'e2e.evil',
    '{"title": "Evil link", "url": "javascript:document.title=''pwned''", "actions": [{"id": "x", "label": "Evil button", "url": " javascript:document.title=''pwned''"}]}')`);
  const page = await openDemo(browser.context);
  try {
    await settle(page, 2);
    const sent = page.waitForResponse((r) => r.url().endsWith('/demo/action'));
    await page.click('#action');
    assert.equal((await sent).status(), 200, 'POST /demo/action failed');
    await page.click('[data-testid=bellhop-bell]');
    const inbox = page.locator('[data-testid=bellhop-inbox]');
    const row = inbox.locator('[data-testid=bellhop-item]', { hasText: 'Review requested' }).first();
    await row.waitFor();
    assert.equal(await row.getAttribute('data-unread'), 'true');
    assert.match(await row.locator('[data-testid=bellhop-item-link]').getAttribute('href'), /#review-\d+$/);

    await row.locator('[data-testid=bellhop-action][data-action=approve]').click();
    await waitFor('the page\'s onAction ran', () => page.locator('#status').textContent(), (t) => t.startsWith('Action "approve" on "Review requested'), 2000);
    await waitFor('the row is read', () => row.getAttribute('data-unread'), (v) => v === 'false', 3000);
    await screenshot(page, '06-action');

    const evil = inbox.locator('[data-testid=bellhop-item]', { hasText: 'Evil link' });
    await evil.waitFor();
    assert.equal(await evil.locator('a').count(), 0, 'an unsafe url became a link');
    await evil.locator('[data-testid=bellhop-action][data-action=x]').click();
    await sleep(300);
    assert.notEqual(await page.title(), 'pwned');
    assert.equal(await notReloaded(page), true);
  } finally {
    await page.close();
  }
});
