import { defineConfig } from 'vite';

// `base: './'` keeps asset URLs relative, so dist/ works behind any static server or sub-path;
// the runtime config is fetched from `./config.json` next to index.html (see src/config.ts).
export default defineConfig({
  base: './',
  // VITE_* variables come from the repository's one .env (see .env.example).
  envDir: '..',
  // livekit-client alone is ~500 kB minified; one chunk is fine for a playground.
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 800 },
  server: { host: '127.0.0.1', port: 5173 },
});
