import '@gatehouse/react/styles.css';
import './app.css';
import { GatehouseProvider } from '@gatehouse/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';

// The Gatehouse server: VITE_GATEHOUSE_URL at build time, else this page's own origin (the
// dev server's proxy, see vite.config.ts).
const url = import.meta.env.VITE_GATEHOUSE_URL || window.location.origin;

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <GatehouseProvider url={url}>
      <App />
    </GatehouseProvider>
  </StrictMode>,
);
