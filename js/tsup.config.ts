import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    query: 'src/query/index.ts',
    react: 'src/react/index.ts',
  },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2020',
  splitting: true,
  treeshake: true,
  external: ['react', 'react-dom', 'react/jsx-runtime', '@tanstack/query-core', '@tanstack/react-query'],
});
