// The progress button: one row in the list, its bar going to 100.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launch, openDemo, screenshot, settle, sleep, sql, waitFor } from './lib.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('progress: exactly one row, its bar reaches 100', async () => {
  const page = await openDemo(browser.context);
  try {
    await settle(page, 2);
    const started = page.waitForResponse((r) => r.url().endsWith('/demo/progress'));
    await page.click('#progress');
    const res = await started;
    // Open the inbox after the click: a click outside the open inbox closes it.
    await page.click('[data-testid=bellhop-bell]');
    await page.locator('[data-testid=bellhop-inbox]').waitFor();
    assert.equal(res.status(), 202, 'POST /demo/progress failed');
    const { id, database_key: key } = await res.json();
    assert.ok(id && key, 'the progress response names the row and its key');

    const rows = page.locator(`[data-testid=bellhop-item][data-id="${id}"]`);
    const seen = new Set();
    let counts = new Set();
    const { ms } = await waitFor(
      'the progress bar reaches 100',
      async () => {
        const n = await rows.count();
        counts.add(n);
        if (n !== 1) return null;
        const v = Number(await rows.locator('[data-testid=bellhop-progress]').getAttribute('aria-valuenow'));
        seen.add(v);
        return v;
      },
      (v) => v === 100,
      10_000,
      50,
    );
    console.log(`progress values seen: ${[...seen].join(', ')}; reached 100 after ${ms} ms`);
    assert.ok([...seen].some((v) => v < 100), 'never saw the bar below 100: it did not move live');
    counts.delete(0); // before the row first appears
    assert.deepEqual([...counts], [1], 'the list held more than one row for the progress notification');

    // Settled: still exactly one row, in the list and in the database.
    await sleep(500);
    assert.equal(await rows.count(), 1);
    const titled = page.locator('[data-testid=bellhop-item]', { hasText: (await rows.locator('.bellhop-item-title').textContent()).trim() });
    assert.equal(await titled.count(), 1, 'another row carries the progress notification\'s title');
    assert.equal(sql(`SELECT count(*) FROM ${process.env.BELLHOP_SCHEMA}.notifications WHERE database_key = '${key}'`), '1');
  } finally {
    await screenshot(page, '03-progress');
    await page.close();
  }
});
