// A notification committed from SQL moves both badges (the React widget's and
// the vanilla recipe's #bell-badge) within 1 s, without a reload; a rolled
// back one, from SQL or from the page's button, moves nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  apiCount, badges, badgesShow, insertNotification, launch, notReloaded, openDemo,
  screenshot, settle, sleep, sqlScript,
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
