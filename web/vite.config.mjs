// The dashboard's build: static files in web/dist, served by the control
// plane on its API port at / (src/observe/dashboard-api.ts).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  // `vite dev`: the API of a control plane on its default port.
  server: { proxy: { '/api': 'http://127.0.0.1:15000' } },
});
