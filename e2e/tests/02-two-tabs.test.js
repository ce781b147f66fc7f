// Two tabs of one browser: marking read in one drops the other's badges.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  badgesShow, insertNotification, launch, notReloaded, openDemo, screenshot, settle, sql,
} from './lib.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('mark read in one tab -> the other tab\'s badge drops', async () => {
  sql(insertNotification('Two tabs: first') + insertNotification('Two tabs: second'));
  const a = await openDemo(browser.context);
  const b = await openDemo(browser.context);
  try {
    // Three streams: the SDK's, shared by both tabs (the other tab follows
    // the leader over BroadcastChannel), and each tab's vanilla EventSource.
    const c0 = await settle(a, 3);
    assert.ok(c0 >= 2, `expected at least 2 unread, have ${c0}`);
    await badgesShow(b, c0, 5000, 'tab B shows the same count');

    // Tab A: open the inbox and mark the first unread item read.
    await a.click('[data-testid=bellhop-bell]');
    await a.locator('[data-testid=bellhop-inbox]').waitFor();
    const item = a.locator('[data-testid=bellhop-item][data-unread=true]').first();
    const id = await item.getAttribute('data-id');
    await item.locator('[data-testid=bellhop-mark-read]').click();
    await a.locator(`[data-testid=bellhop-item][data-id="${id}"][data-unread=false]`).waitFor({ timeout: 5000 });
    await badgesShow(b, c0 - 1, 2000, 'tab B drops by one after mark read in tab A');
    await screenshot(a, '02-tab-a-after-mark-read');
    await screenshot(b, '02-tab-b-after-mark-read');

    // Tab A: mark all read.
    await a.click('[data-testid=bellhop-mark-all]');
    await badgesShow(b, 0, 2000, 'tab B drops to 0 after mark all in tab A');
    await badgesShow(a, 0, 2000, 'tab A shows 0 after mark all');
    assert.equal(await notReloaded(b), true, 'tab B was reloaded');
    const unread = Number(sql(`SELECT count(*) FROM ${process.env.BELLHOP_SCHEMA}.notifications WHERE notifiable_id = 'demo' AND read_at IS NULL AND deleted_at IS NULL AND 'database' = ANY (channels)`));
    assert.equal(unread, 0, 'rows left unread in the database');
  } finally {
    await screenshot(a, '02-tab-a-final');
    await screenshot(b, '02-tab-b-final');
    await a.close();
    await b.close();
  }
});
