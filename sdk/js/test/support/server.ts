// A live `gatehouse serve` per test file, started by the e2e harness's own support code
// (e2e/support/gatehouse.js: SQLite in a temporary directory, a free port, a random master
// key, small Argon2id parameters, rate limits off) so both suites start the server one way.
// The binary is GATEHOUSE_BINARY (sdk/js/run sets it) or target/debug/gatehouse.
// @ts-expect-error: plain JavaScript module without declarations
import { Gatehouse as Server, freePort } from '../../../../e2e/support/gatehouse.js';
// @ts-expect-error: plain JavaScript module without declarations
import { SmtpSink } from '../../../../e2e/support/smtp.js';
import { randomUUID } from 'node:crypto';

export interface LiveServer {
  url: string;
  log(): string;
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

export interface Mail {
  subject(): string;
  text(): string;
  linkFor(path: string): string | undefined;
}

export interface Sink {
  url: string;
  waitFor(address: string, subject: string, timeoutMs?: number): Promise<Mail>;
  stop(): Promise<void>;
}

export async function startServer(options: { settings?: Record<string, string>; smtp?: Sink; issuerHost?: string; port?: number } = {}): Promise<LiveServer> {
  return Server.start(options);
}

export async function startSink(): Promise<Sink> {
  return SmtpSink.start();
}

export { freePort };

/** A strong password the default policy takes. */
export const PASSWORD = 'Quasar-trail-mix-81!';

/** A fresh address per call, so tests sharing a server never collide. */
export function email(label = 'user'): string {
  return `${label}-${randomUUID().slice(0, 8)}@example.com`;
}
