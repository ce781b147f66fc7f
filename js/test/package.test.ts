// The package as npm ships it: packed from the built dist/ (npm ci builds it
// through `prepare`), installed into a fresh app with npm, imported, and
// bundled for production.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
