import { defineConfig } from 'vitest/config';

// Every test file starts its own `gatehouse serve` (SQLite in a temporary directory, a free
// port): the suites talk to the real server, never to a stand-in.
export default defineConfig({
  test: {
    include: ['test/**/*.test.{ts,tsx}'],
    testTimeout: 30_000,
    hookTimeout: 90_000,
    // Two cores: more workers would only make the servers' Argon2 and the builds fight.
    maxWorkers: 2,
  },
});
