// Bundles React + @bellhop/client into one self-contained, minified ES module
// for the Go relay to embed: ../relay/demo/static/inbox.js. `mount` injects
// the stylesheet, so no CSS file goes with it.
//
// `make generate` runs this and CI fails when the committed file differs, so
// the output must depend on the sources and the locked esbuild alone (no
// absolute paths or dates: esbuild names legal comments' sources relative to
// absWorkingDir; a test builds it twice and compares).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
export const DEFAULT_OUTDIR = join(root, '..', 'relay', 'demo', 'static');

export async function buildDemo(outdir = DEFAULT_OUTDIR) {
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['demo/mount.tsx'],
    outfile: join(outdir, 'inbox.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
  return { outfile: join(outdir, 'inbox.js'), bytes };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { outfile, bytes } = await buildDemo(process.argv[2] ?? DEFAULT_OUTDIR);
  console.log(`wrote ${outfile} (${(bytes / 1024).toFixed(1)} KiB)`);
}
