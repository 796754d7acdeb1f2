// Peer for bench/run: better-auth 1.x on SQLite (better-sqlite3) with email/password, served
// by node:http through better-auth's Node handler. Its default password hash (scrypt) and
// session storage in the database (no cookie cache), rate limiting off as on Gatehouse.
//
//   node better-auth.mjs PORT DB_FILE    prints `listening on http://127.0.0.1:PORT`
//
// Endpoints used: POST /api/auth/sign-up/email, POST /api/auth/sign-in/email,
// GET /api/auth/get-session (cookie better-auth.session_token), GET /api/auth/ok.
import http from 'node:http';
import Database from 'better-sqlite3';
import { betterAuth } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { toNodeHandler } from 'better-auth/node';

const port = Number(process.argv[2] || 3001);
const file = process.argv[3] || 'better-auth.db';
const baseURL = `http://127.0.0.1:${port}`;

const database = new Database(file);
database.pragma('journal_mode = WAL');

const auth = betterAuth({
  baseURL,
  secret: 'bench-secret-bench-secret-bench-secret-0123456789',
  database,
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  trustedOrigins: [baseURL],
  telemetry: { enabled: false },
  logger: { disabled: true },
});

const { runMigrations } = await getMigrations(auth.options);
await runMigrations();

const server = http.createServer(toNodeHandler(auth));
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => console.log(`listening on ${baseURL}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
