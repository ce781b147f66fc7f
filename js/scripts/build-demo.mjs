// Bundles React + @bellhop/client into one self-contained, minified ES module
// for the Go relay to embed: ../relay/demo/static/inbox.js (+ inbox.css).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
  // Stylesheet for pages that prefer a <link> (mount injects the same CSS by default).
  const styles = await build({
    absWorkingDir: root,
    entryPoints: ['src/react/styles.ts'],
    bundle: true,
    format: 'esm',
    write: false,
    platform: 'neutral',
  });
  const mod = await import('data:text/javascript;base64,' + Buffer.from(styles.outputFiles[0].text).toString('base64'));
  writeFileSync(join(outdir, 'inbox.css'), mod.defaultStyles.trimStart());
  const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
  return { outfile: join(outdir, 'inbox.js'), bytes };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { outfile, bytes } = await buildDemo(process.argv[2] ?? DEFAULT_OUTDIR);
  console.log(`wrote ${outfile} (${(bytes / 1024).toFixed(1)} KiB) and ${join(dirname(outfile), 'inbox.css')}`);
}
