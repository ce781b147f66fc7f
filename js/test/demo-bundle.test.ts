// @vitest-environment jsdom
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fireEvent, waitFor, within } from '@testing-library/dom';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { startFakeRelay } from './helpers/relay';
import { notification } from './helpers/server';

// Inside the project so that Vite may load it.
const cacheDir = join(__dirname, '..', 'node_modules', '.cache');
mkdirSync(cacheDir, { recursive: true });
const outdir = mkdtempSync(join(cacheDir, 'bellhop-demo-'));
const again = mkdtempSync(join(cacheDir, 'bellhop-demo-'));
afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
  rmSync(again, { recursive: true, force: true });
});

describe('demo bundle (npm run build:demo)', () => {
  it('is one self-contained ES module exporting mount, which renders a working <Inbox/>', async () => {
    // Run the real build script (in a child process: esbuild refuses to load under jsdom).
    execFileSync(process.execPath, ['scripts/build-demo.mjs', outdir], { stdio: 'pipe' });
    const outfile = join(outdir, 'inbox.js');
    const code = readFileSync(outfile, 'utf8');
    expect(code).not.toMatch(/\bfrom\s*["']/); // no static imports
    expect(code).not.toMatch(/\bimport\s*\(/); // no dynamic imports
    expect(code).not.toMatch(/process\.env/);
    expect(code).toMatch(/export\s*\{\s*\w+ as mount\s*\}/);
    // mount injects the styles: the page needs no stylesheet, and none is written.
    expect(readdirSync(outdir)).toEqual(['inbox.js']);

    const relay = await startFakeRelay([
      notification('d1', { data: { title: 'Hello demo' } }),
      notification('d2', { database_key: 'job-1', data: { title: 'Job', progress: 10 } }),
    ]);
    try {
      const mod = await import(/* @vite-ignore */ outfile);
      const el = document.createElement('div');
      document.body.appendChild(el);
      const app = mod.mount(el, { baseUrl: relay.url });
      expect(document.getElementById('bellhop-default-styles')).not.toBeNull();
      await waitFor(() => expect(within(el).getByTestId('bellhop-badge').textContent).toBe('2'));
      fireEvent.click(within(el).getByTestId('bellhop-bell'));
      await waitFor(() => expect(within(el).getAllByTestId('bellhop-item')).toHaveLength(2));
      expect(within(el).getByTestId('bellhop-progress').getAttribute('aria-valuenow')).toBe('10');
      await waitFor(() => expect(relay.streamCount()).toBe(1));
      relay.push('updated', { id: 'd2', database_key: 'job-1', sse: { progress: 60 } });
      await waitFor(() => expect(within(el).getByTestId('bellhop-progress').getAttribute('aria-valuenow')).toBe('60'));
      // cookie auth: no Authorization header is sent
      expect(relay.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
      app.unmount();
      await waitFor(() => expect(relay.streamCount()).toBe(0));
    } finally {
      await relay.close();
    }
  }, 30000);

  // CI rebuilds relay/demo/static/inbox.js (make generate) and fails on any
  // difference from the committed file: the same sources must give the same
  // bytes, wherever they are built.
  it('is the same bytes when built again elsewhere', () => {
    execFileSync(process.execPath, ['scripts/build-demo.mjs', outdir], { stdio: 'pipe' });
    execFileSync(process.execPath, ['scripts/build-demo.mjs', again], { stdio: 'pipe' });
    expect(readFileSync(join(again, 'inbox.js')).equals(readFileSync(join(outdir, 'inbox.js')))).toBe(true);
  }, 30000);
});
