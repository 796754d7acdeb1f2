import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// VITE_GATEHOUSE_URL (read by src/main.tsx) names the Gatehouse server the browser talks to.
// Without CORS on the server, run the app same-origin instead: leave VITE_GATEHOUSE_URL unset
// and set GATEHOUSE_PROXY_TARGET, and the dev server forwards Gatehouse's paths to it.
const proxyTarget = process.env.GATEHOUSE_PROXY_TARGET;

export default defineConfig({
  plugins: [react()],
  // @gatehouse/react is linked from sdk/js: one React for the app and the components.
  resolve: { dedupe: ['react', 'react-dom'] },
  server: proxyTarget
    ? { proxy: { '/v1': proxyTarget, '/.well-known': proxyTarget, '/oauth2': proxyTarget } }
    : {},
});
