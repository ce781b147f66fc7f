// The relay dies (SIGKILL), 3 notifications are committed while it is down,
// it comes back on the same port, schema and secret: the page catches up
// without a reload, through the stream's Last-Event-ID resume.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  badges, badgesShow, insertNotification, killRelay, launch, notReloaded, openDemo,
  screenshot, settle, sql, startRelay,
} from './lib.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function dropAndRestore(page, c0, name, timeoutMs = 20_000) {
  const before = await badges(page);
  assert.equal(before.vanilla, c0);
  const pid = await killRelay();
  console.log(`killed relay ${pid}`);
  sql([1, 2, 3].map((i) => insertNotification(`While the relay was down #${i}`)).join('\n'));
  await screenshot(page, `${name}-relay-down`);
  assert.deepEqual(await badges(page), before, 'a badge moved while the relay was down');
  const newPid = await startRelay();
  console.log(`started relay ${newPid}`);
  const { ms } = await badgesShow(page, c0 + 3, timeoutMs, 'badges catch up with the 3 notifications');
  console.log(`caught up ${ms} ms after the relay was ready`);
  assert.equal(await notReloaded(page), true, 'the page was reloaded');
}

test('connection dropped and restored: the badges catch up without a reload', async () => {
  const page = await openDemo(browser.context);
  try {
    const c0 = await settle(page, 2);
    // One live event first: both clients then hold a Last-Event-ID to resume from.
    sql(insertNotification('Before the relay went down'));
    await badgesShow(page, c0 + 1, 1000, 'badges show the event before the drop');
    await dropAndRestore(page, c0 + 1, '04-reconnect');
  } finally {
    await screenshot(page, '04-reconnect');
    await page.close();
  }
});

// A page that has received no event yet: its only resume point is the
// `id: <head>` frame the relay sends on connect (no data, so no event; it
// sets the stream's last event id, WHATWG SSE dispatch step 1). The vanilla
// EventSource and the SDK both resume from it, so the 3 notifications are
// replayed; the React widget also refetches the count when its stream reopens.
test('a fresh page that has received no event catches up after the relay restarts', async () => {
  const page = await openDemo(browser.context);
  try {
    const c0 = await settle(page, 2);
    await dropAndRestore(page, c0, '04-reconnect-fresh', 8000);
  } finally {
    await screenshot(page, '04-reconnect-fresh');
    await page.close();
  }
});
