// The package as npm ships it: packed from the built dist/ (npm ci builds it
// through `prepare`), installed into a fresh app with npm, imported, and
// bundled for production.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { build, preview } from 'vite';
import webpack from 'webpack';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { Notification, NotificationData } from '../src';

const root = join(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// Inside js/node_modules, so that the optional peers the app imports (react,
// @tanstack/*) resolve from this checkout's devDependencies without a
// registry.
const cacheDir = join(root, 'node_modules', '.cache');
mkdirSync(cacheDir, { recursive: true });
const tmp = mkdtempSync(join(cacheDir, 'bellhop-package-'));
const app = join(tmp, 'app');
let tarball = '';
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function newest(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
    ),
  );
}

beforeAll(() => {
  const built = join(root, 'dist', 'index.js');
  if (!existsSync(built) || statSync(built).mtimeMs < newest(join(root, 'src'))) {
    throw new Error('dist/ is missing or older than src/: run `npm run build` (npm ci runs it through prepare)');
  }
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
    cwd: root,
    encoding: 'utf8',
  });
  tarball = join(tmp, JSON.parse(out)[0].filename);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // --offline: the package has no dependencies to fetch (its peers are optional).
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
    cwd: app,
    stdio: 'pipe',
  });
}, 60000);

describe('the packed package', () => {
  it('is named as make js-pack says and holds dist/, README.md and LICENSE only', () => {
    expect(tarball.endsWith(`bellhop-client-${pkg.version}.tgz`)).toBe(true);
    const installed = join(app, 'node_modules', '@bellhop', 'client');
    expect(readdirSync(installed).sort()).toEqual(['LICENSE', 'README.md', 'dist', 'package.json']);
    for (const f of ['index.js', 'index.d.ts', 'query.js', 'query.d.ts', 'react.js', 'react.d.ts', 'styles.css']) {
      expect(existsSync(join(installed, 'dist', f)), f).toBe(true);
    }
  });

  // Checked by tsc (npm run typecheck), and in the shipped declarations.
  it('types the data fields the widget renders as NotificationData, exported from the root', () => {
    const data: NotificationData = { title: 'Exporting invoices', body: 'invoices.csv', progress: 40, exportId: '7' };
    const n: Notification = { id: '1', type: 'export.progress', data, database_key: 'export:7', read_at: null, created_at: '', updated_at: '' };
    expectTypeOf(n.data).toEqualTypeOf<NotificationData>();
    expectTypeOf(n.data.title).toEqualTypeOf<string | undefined>();
    expectTypeOf(n.data.body).toEqualTypeOf<string | undefined>();
    expectTypeOf(n.data.progress).toEqualTypeOf<number | undefined>();
    // @ts-expect-error progress is a number
    const wrong: NotificationData = { progress: '40' };
    expect(wrong).toBeDefined();
    const dts = readFileSync(join(app, 'node_modules', '@bellhop', 'client', 'dist', 'index.d.ts'), 'utf8');
    expect(dts).toMatch(/\bNotificationData\b/);
  });

  it('ships the repository LICENSE (js/LICENSE is a copy of ../LICENSE)', () => {
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toBe(readFileSync(join(root, '..', 'LICENSE'), 'utf8'));
  });

  it('installs with npm and imports from Node (ESM; the package ships no CommonJS)', () => {
    const script = `
      const core = await import('@bellhop/client');
      const query = await import('@bellhop/client/query');
      const react = await import('@bellhop/client/react');
      const css = import.meta.resolve('@bellhop/client/styles.css');
      console.log(JSON.stringify({
        createClient: typeof core.createClient,
        notificationTitle: core.notificationTitle({ type: 't', data: { title: 'Hi' } }),
        bellhopKeys: typeof query.bellhopKeys,
        Inbox: typeof react.Inbox,
        css: css.endsWith('/node_modules/@bellhop/client/dist/styles.css'),
      }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({
      createClient: 'function',
      notificationTitle: 'Hi',
      bellhopKeys: 'object',
      Inbox: 'function',
      css: true,
    });
  });

  // A production bundle of `import '@bellhop/client/styles.css'` keeps the
  // stylesheet. webpack is the bundler that drops a bare import from a
  // package marked "sideEffects": false, CSS included (esbuild and Vite keep
  // CSS whatever the field says), so webpack builds it here, with its
  // built-in CSS support, in production mode (minified, tree-shaken).
  async function bundleCSS(dir: string): Promise<string> {
    writeFileSync(
      join(dir, 'entry.js'),
      "import '@bellhop/client/styles.css';\nimport { formatCount } from '@bellhop/client';\nconsole.log(formatCount(3));\n",
    );
    const out = join(dir, 'out');
    const compiler = webpack({
      mode: 'production',
      context: dir,
      entry: './entry.js',
      output: { path: out, clean: true },
      experiments: { css: true },
      devtool: false,
      infrastructureLogging: { level: 'none' },
    });
    const stats = await new Promise<webpack.Stats>((resolve, reject) =>
      compiler.run((err, result) => (err || !result ? reject(err) : resolve(result))),
    );
    await new Promise((resolve) => compiler.close(resolve));
    expect(stats.hasErrors(), stats.toString('errors-only')).toBe(false);
    expect(readFileSync(join(out, 'main.js'), 'utf8')).toContain('console.log');
    return readdirSync(out)
      .filter((f) => f.endsWith('.css'))
      .map((f) => readFileSync(join(out, f), 'utf8'))
      .join('');
  }

  const selectors = (css: string) => [...new Set(css.match(/\.bellhop-[\w-]+/g))].sort();

  it('keeps styles.css in a minified production bundle (webpack)', async () => {
    const sheet = readFileSync(join(app, 'node_modules', '@bellhop', 'client', 'dist', 'styles.css'), 'utf8');
    expect(selectors(sheet)).toContain('.bellhop-inbox');
    const css = await bundleCSS(app);
    expect(selectors(css)).toEqual(selectors(sheet));
    expect(css).toContain('--bellhop-accent:');
  }, 30000);

  it('would lose styles.css with "sideEffects": false (the check above can fail)', async () => {
    const other = join(tmp, 'app-no-side-effects');
    cpSync(app, other, { recursive: true });
    const manifest = join(other, 'node_modules', '@bellhop', 'client', 'package.json');
    writeFileSync(manifest, JSON.stringify({ ...JSON.parse(readFileSync(manifest, 'utf8')), sideEffects: false }));
    expect(await bundleCSS(other)).not.toContain('.bellhop-inbox');
  }, 30000);
});


// js/README.md's quickstart, followed in a blank Vite + React app: the app
// create-vite's react template makes (package.json, index.html), the tarball
// installed with npm, src/main.jsx as the README shows it (read from the
// README, so the two cannot drift), `vite build`, and the built app opened
// in Chromium. Offline: react, react-dom, @tanstack/react-query and vite,
// which the README has the newcomer install from the registry, resolve from
// this checkout's devDependencies (the app lives inside js/node_modules).
describe('a blank Vite + React app, following js/README.md', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const vite = join(tmp, 'vite-app');
  const dist = join(vite, 'dist');

  it('installs the tarball and builds src/main.jsx as the README shows, with the stylesheet', async () => {
    const quickstart = readme.split('### Quickstart: a new Vite + React app')[1] ?? '';
    // The install line names the tarball `make js-pack` writes.
    expect(quickstart).toContain(`npm install /path/to/bellhop/js/${tarball.split('/').pop()} @tanstack/react-query`);
    const main = quickstart.match(/```jsx title="src\/main\.jsx"\n([\s\S]*?)```/)?.[1];
    expect(main, 'js/README.md has no ```jsx title="src/main.jsx" block in its quickstart').toBeTruthy();

    mkdirSync(join(vite, 'src'), { recursive: true });
    writeFileSync(
      join(vite, 'package.json'),
      JSON.stringify({ name: 'my-app', private: true, version: '0.0.0', type: 'module', scripts: { build: 'vite build' } }),
    );
    writeFileSync(
      join(vite, 'index.html'),
      '<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n    <title>Vite + React</title>\n  </head>\n' +
        '  <body>\n    <div id="root"></div>\n    <script type="module" src="/src/main.jsx"></script>\n  </body>\n</html>\n',
    );
    writeFileSync(join(vite, 'src', 'main.jsx'), main!);
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: vite, stdio: 'pipe' });

    // JSX through esbuild's automatic runtime: what @vitejs/plugin-react (the
    // template's plugin) sets up for a build, without its Babel.
    await build({ root: vite, configFile: false, logLevel: 'silent', esbuild: { jsx: 'automatic' } });

    const assets = readdirSync(join(dist, 'assets'));
    const css = assets.filter((f) => f.endsWith('.css')).map((f) => readFileSync(join(dist, 'assets', f), 'utf8')).join('');
    expect(css).toContain('.bellhop-inbox');
    expect(css).toContain('--bellhop-accent:');
    const js = assets.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(dist, 'assets', f), 'utf8')).join('');
    expect(js).toContain('bellhop-stream:'); // the SDK's Web Lock name
    expect(js).toContain('bellhop-bell');
    expect(readFileSync(join(dist, 'index.html'), 'utf8')).toMatch(/<link rel="stylesheet"[^>]*\/assets\/[^"]+\.css">/);
    // About 10 s on an idle machine (Rollup through React DOM); the margin
    // is for a loaded CI box.
  }, 120000);

  // The built app, served by `vite preview` with a stub relay on the same
  // origin (as the README's proxy makes it): the bell shows the unseen count,
  // and follows a live event.
  it('shows the bell in Chromium, styled, and its badge follows the live stream', async () => {
    expect(existsSync(join(dist, 'index.html')), 'the build above failed').toBe(true);
    let count = 3;
    const server = await preview({
      root: vite,
      configFile: false,
      logLevel: 'silent',
      preview: { host: '127.0.0.1', port: 0, open: false },
      plugins: [
        {
          name: 'stub-relay',
          configurePreviewServer(s) {
            s.middlewares.use('/notifications', (req, res) => {
              if (req.url?.startsWith('/unread/count')) {
                res.setHeader('Content-Type', 'application/json');
                res.end(JSON.stringify({ count, capped: false, unseen: count, unseen_capped: false }));
              } else if (req.url?.startsWith('/stream')) {
                res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
                res.write('retry: 1000\n: connected\n\n');
                setTimeout(() => {
                  count = 4;
                  const event = { seq: 1, op: 'created', id: 'n4', type: 'demo', database_key: null, read_at: null, sse: null };
                  res.write(`id: 1\nevent: notification\ndata: ${JSON.stringify(event)}\n\n`);
                }, 300);
              } else {
                res.statusCode = 404;
                res.setHeader('Content-Type', 'application/json');
                res.end(JSON.stringify({ error: 'not_found', message: 'stub relay' }));
              }
            });
          },
        },
      ],
    });
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const { port } = server.httpServer.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/`);
      const badge = page.getByTestId('bellhop-badge');
      await badge.waitFor({ timeout: 10000 });
      await page.waitForFunction(() => document.querySelector('[data-testid=bellhop-badge]')?.textContent === '4', null, { timeout: 10000 });
      // styles.css applied: the sheet's custom properties are set on the widget.
      const accent = await page.evaluate(() =>
        getComputedStyle(document.querySelector('.bellhop-inbox')!).getPropertyValue('--bellhop-accent').trim(),
      );
      expect(accent).not.toBe('');
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await new Promise<void>((resolve, reject) => server.httpServer.close((e) => (e ? reject(e) : resolve())));
    }
  }, 60000);
});
