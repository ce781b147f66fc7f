// Lints the package as npm would publish it: packs the built dist/ once
// (without running `prepare` again: `npm run check:package` and `npm ci`
// have just built it), then runs publint and Are the Types Wrong? on that
// tarball. CI runs it from `make test-js`.
//
// attw's esm-only profile: the package ships ES modules only, so node10
// resolution and `require` from CommonJS are out of scope (Node >= 20.19
// can still require() it). ./styles.css is not a module: attw skips it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('check-package: no dist/: run `npm run build` first (npm ci runs it through prepare)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'bellhop-pack-'));
try {
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const tarball = join(dir, JSON.parse(out)[0].filename);
  const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
  run(bin('publint'), ['run', tarball, '--strict']);
  run(bin('attw'), [tarball, '--profile', 'esm-only', '--exclude-entrypoints', './styles.css']);
} catch (err) {
  // The tools have printed what is wrong.
  console.error(`check-package: ${err.message.split('\n')[0]}`);
  process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
