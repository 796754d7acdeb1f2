// The real `target/debug/gatehouse serve` on embedded SQLite in a temporary directory, on a
// free port of 127.0.0.1, published as `http://localhost:<port>` (WebAuthn needs a domain, and
// cookies ignore ports, so each journey's server gets its own; a second server in the same
// browser context is published on another host name, `issuerHost: '127.0.0.1'`). Ready when
// `/readyz` says so. With `E2E_POSTGRES_URL` set, each server gets a schema of its own in that
// PostgreSQL database instead (`.ci/run` runs the protocol journeys a second time so).
import { spawn, execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repository = path.resolve(here, '..', '..');
export const binary = process.env.GATEHOUSE_BINARY ?? path.join(repository, 'target', 'debug', 'gatehouse');

/** A port nobody listens on right now (the OS picks it). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export class Gatehouse {
  /**
   * Starts `gatehouse serve` with the journeys' settings plus `settings` (GATEHOUSE_* names).
   * `smtp` is a started `SmtpSink`. `issuerHost` is the host name the server is published on
   * (`localhost` unless given; it always listens on 127.0.0.1). `port` is the port to listen
   * on (a free one unless given: pick it with `freePort()` when another party must know this
   * server's URL before it starts). `configFile` is the text of a TOML configuration file,
   * written into the data directory and named by `GATEHOUSE_CONFIG` (for `serve` and `cli`).
   */
  static async start({ smtp, settings = {}, issuerHost = 'localhost', port, configFile } = {}) {
    if (!existsSync(binary)) {
      throw new Error(`${binary} is missing: build it with \`cargo build -p gatehouse\` (or run \`cargo test --workspace\`)`);
    }
    port ??= await freePort();
    const directory = mkdtempSync(path.join(tmpdir(), 'gatehouse-e2e-'));
    const url = `http://${issuerHost}:${port}`;
    const config = {};
    if (configFile !== undefined) {
      const file = path.join(directory, 'gatehouse.toml');
      writeFileSync(file, configFile, { mode: 0o600 });
      config.GATEHOUSE_CONFIG = file;
    }
    const postgres = process.env.E2E_POSTGRES_URL;
    const database = {};
    if (postgres) {
      const schema = `e2e_${randomBytes(6).toString('hex')}`;
      execFileSync('psql', [postgres, '-q', '-c', `CREATE SCHEMA ${schema}`]);
      Object.assign(database, { GATEHOUSE_DATABASE_URL: postgres, GATEHOUSE_DATABASE_SCHEMA: schema });
    }
    // Only what is given here configures the server: inherited GATEHOUSE_* variables are dropped.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')),
    );
    Object.assign(env, {
      GATEHOUSE_ISSUER: url,
      GATEHOUSE_HTTP_ADDR: `127.0.0.1:${port}`,
      GATEHOUSE_DATA_DIR: directory,
      GATEHOUSE_MASTER_KEY: randomBytes(32).toString('hex'),
      GATEHOUSE_PASSWORD_MEMORY_KIB: '1024',
      GATEHOUSE_PASSWORD_ITERATIONS: '1',
      GATEHOUSE_PASSWORD_PARALLELISM: '1',
      GATEHOUSE_RATE_LIMIT_ENABLED: 'false',
      GATEHOUSE_OUTBOX_POLL_INTERVAL_MS: '50',
      GATEHOUSE_LOG_LEVEL: 'warn',
      // RSA key generation in a debug build takes seconds; ES256 is instant.
      GATEHOUSE_SIGNING_ALGORITHM: 'ES256',
      ...(smtp ? { GATEHOUSE_SMTP_URL: smtp.url, GATEHOUSE_SMTP_FROM: 'Gatehouse e2e <id@example.com>' } : {}),
      ...database,
      ...config,
      ...settings,
    });
    const server = new Gatehouse(url, directory, env);
    await server.#spawn();
    return server;
  }

  constructor(url, directory, env) {
    this.url = url;
    this.directory = directory;
    this.env = env;
    this.logPath = path.join(directory, 'serve.log');
  }

  async #spawn() {
    const log = createWriteStream(this.logPath);
    await new Promise((resolve) => log.on('open', resolve));
    this.process = spawn(binary, ['serve'], {
      cwd: this.directory,
      env: this.env,
      stdio: ['ignore', log, log],
    });
    this.exited = new Promise((resolve) => this.process.on('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const early = await Promise.race([this.exited, delay(100).then(() => null)]);
      if (early) throw new Error(`gatehouse serve exited (${JSON.stringify(early)}):\n${this.log()}`);
      try {
        const response = await fetch(`${this.url}/readyz`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`gatehouse serve was not ready within 60 s:\n${this.log()}`);
      }
    }
  }

  /** What the server wrote (stdout and stderr). */
  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Runs `gatehouse <args>` against the same data (e.g. `client create … --json`). */
  async cli(...args) {
    const { stdout } = await promisify(execFile)(binary, args, { cwd: this.directory, env: this.env });
    return stdout;
  }

  /** SIGTERM, then wait for the graceful stop; removes the data directory. */
  async stop() {
    if (this.process && this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGTERM');
      const stopped = await Promise.race([this.exited, delay(15_000).then(() => null)]);
      if (!stopped) {
        this.process.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.directory, { recursive: true, force: true });
  }
}

/** A pause that does not keep the process alive once everything else is done. */
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
