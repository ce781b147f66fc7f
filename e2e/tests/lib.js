// Shared helpers for the e2e tests. run.sh builds bin/relay, starts
// `relay demo` and exports where it is (see the E2E_* variables below); the
// reconnect test uses killRelay/startRelay to replace that process.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the e2e tests with bash e2e/run.sh`);
  return v;
}

export const env = {
  baseURL: need('E2E_BASE_URL'), // http://127.0.0.1:PORT
  addr: need('E2E_ADDR'), // 127.0.0.1:PORT
  schema: need('BELLHOP_SCHEMA'),
  databaseURL: need('DATABASE_URL'),
  relayBin: need('E2E_RELAY_BIN'),
  pidFile: need('E2E_RELAY_PIDFILE'),
  relayLog: need('E2E_RELAY_LOG'),
  artifacts: need('E2E_ARTIFACTS'),
  chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
};
mkdirSync(env.artifacts, { recursive: true });

export { sleep };

// ---- SQL ------------------------------------------------------------------

/** Runs SQL with psql (ON_ERROR_STOP) and returns its unaligned output. */
export function sql(text) {
  return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', env.databaseURL, '-c', text], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** Runs a script (several statements, e.g. BEGIN ... ROLLBACK) in one psql session. */
export function sqlScript(text) {
  return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', env.databaseURL], {
    input: text,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  }).trim();
}

const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;

/** The INSERT the application would run for the demo user. */
export function insertNotification(title, type = 'e2e.sql') {
  return `INSERT INTO ${env.schema}.notifications (tenant_id, notifiable_type, notifiable_id, type, data)
VALUES ('', 'User', 'demo', ${lit(type)}, jsonb_build_object('title', ${lit(title)}, 'body', 'Inserted from psql by the e2e tests'));`;
}

// ---- the relay process ----------------------------------------------------

export function relayPid() {
  return Number(readFileSync(env.pidFile, 'utf8').trim());
}

async function portOpen() {
  try {
    const res = await fetch(env.baseURL + '/healthz', { signal: AbortSignal.timeout(500) });
    return res.ok;
  } catch {
    return false;
  }
}

/** SIGKILLs the relay and waits until its port refuses connections. */
export async function killRelay() {
  const pid = relayPid();
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100; i++) {
    if (!(await portOpen())) return pid;
    await sleep(50);
  }
  throw new Error(`relay ${pid} still answers after SIGKILL`);
}

/** Starts `relay demo` again on the same address and schema (which keeps its secret); waits for /readyz. */
export async function startRelay() {
  const log = openSync(env.relayLog, 'a');
  const child = spawn(env.relayBin, ['demo', '--addr', env.addr, '--schema', process.env.BELLHOP_SCHEMA], {
    env: process.env,
    stdio: ['ignore', log, log],
    detached: true,
  });
  child.unref();
  writeFileSync(env.pidFile, String(child.pid));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`relay demo exited with ${child.exitCode}; see ${env.relayLog}`);
    try {
      const res = await fetch(env.baseURL + '/readyz', { signal: AbortSignal.timeout(1000) });
      if (res.ok) return child.pid;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error(`relay demo did not become ready in 30 s; see ${env.relayLog}`);
}

/** The relay's open SSE streams, from /metrics. */
export async function streamsConnected() {
  const text = await (await fetch(env.baseURL + '/metrics')).text();
  const m = text.match(/^bellhop_streams_connected (\S+)$/m);
  return m ? Number(m[1]) : NaN;
}

// ---- the browser ----------------------------------------------------------

/** A fresh Chromium (own profile dir) from Debian's /usr/bin/chromium. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'bellhop-e2e-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env.chromium,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1100, height: 720 },
    baseURL: env.baseURL,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the demo page in a new tab, and marks the document so a reload shows. */
export async function openDemo(context) {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('[page error]', err.message));
  await page.goto('/');
  await page.locator('[data-testid=bellhop-bell]').waitFor();
  await page.evaluate(() => {
    window.__bellhopNoReload = 'still the same document';
  });
  return page;
}

/** True when the page was not reloaded since openDemo. */
export async function notReloaded(page) {
  return (await page.evaluate(() => window.__bellhopNoReload)) === 'still the same document';
}

/** The unread count the API reports for the page's cookie. */
export async function apiCount(page) {
  return page.evaluate(async () => {
    const res = await fetch('/notifications/unread/count', { credentials: 'include' });
    return (await res.json()).count;
  });
}

/** The unseen count the API reports for the page's cookie: what the React bell shows. */
export async function apiUnseen(page) {
  return page.evaluate(async () => {
    const res = await fetch('/notifications/unread/count', { credentials: 'include' });
    return (await res.json()).unseen;
  });
}

/** The React badge's and the vanilla #bell-badge's counts ('' is 0). */
export async function badges(page) {
  const [react, vanilla] = await Promise.all([
    page.locator('[data-testid=bellhop-badge]').textContent(),
    page.locator('#bell-badge').textContent(),
  ]);
  const num = (t) => (t.trim() === '' ? 0 : Number(t.trim()));
  return { react: num(react), vanilla: num(vanilla) };
}

/**
 * Polls until check(value) holds or timeoutMs passes; returns the last value
 * and how long it took (ms), or throws with the last value seen.
 */
export async function waitFor(what, get, check, timeoutMs, everyMs = 20) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await get();
    if (check(last)) return { value: last, ms: Date.now() - start };
    if (Date.now() - start > timeoutMs) {
      throw new Error(`${what}: not true within ${timeoutMs} ms; last value ${JSON.stringify(last)}`);
    }
    await sleep(everyMs);
  }
}

/**
 * Waits for the vanilla badge (unread) to show n and the React bell to show
 * the API's unseen count: the two are equal until an inbox is opened (which
 * marks everything seen, and leaves it unread).
 */
export function badgesShow(page, n, timeoutMs, what = `badges show ${n}`) {
  return waitFor(
    what,
    async () => ({ ...(await badges(page)), unseen: await apiUnseen(page) }),
    (b) => b.react === b.unseen && b.vanilla === n,
    timeoutMs,
  );
}

/**
 * Waits until the page is settled: the relay holds `streams` open streams
 * (the React widget's one, shared by every tab, and each tab's vanilla
 * EventSource) and both
 * badges show the API's count. Returns that count.
 */
export async function settle(page, streams) {
  const s = await waitFor(`relay has ${streams} open streams`, streamsConnected, (n) => n === streams, 15_000, 50);
  const count = await apiCount(page);
  const b = await badgesShow(page, count, 10_000, `badges show the initial count ${count}`);
  if (process.env.E2E_DEBUG) console.log(`settled: streams after ${s.ms} ms, badges after ${b.ms} ms`);
  return count;
}

export async function screenshot(page, name) {
  const path = join(env.artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
