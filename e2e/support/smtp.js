// An SMTP sink on `net`: enough of RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for
// Gatehouse's mailer, keeping every message, with helpers that read a message's text and links.
import net from 'node:net';

/** One message as it arrived. */
export class Received {
  constructor(from, to, data) {
    this.from = from;
    this.to = to;
    /** The DATA, dot-unstuffed. */
    this.data = data;
  }

  header(name) {
    const head = this.data.split('\r\n\r\n')[0].replace(/\r\n[ \t]/g, ' ');
    for (const line of head.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0 && line.slice(0, colon).toLowerCase() === name.toLowerCase()) {
        return line.slice(colon + 1).trim();
      }
    }
    return undefined;
  }

  /** The subject, RFC 2047 encoded words decoded. */
  subject() {
    return decodeWords(this.header('subject') ?? '');
  }

  /** Every MIME part's body, transfer-decoded and joined. */
  text() {
    let out = '';
    for (const part of this.data.split('\r\n--')) {
      const split = part.indexOf('\r\n\r\n');
      if (split < 0) continue;
      const head = part.slice(0, split).toLowerCase();
      const body = part.slice(split + 4);
      if (head.includes('content-transfer-encoding: quoted-printable')) {
        out += decodeQuotedPrintable(body);
      } else if (head.includes('content-transfer-encoding: base64')) {
        out += Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
      } else {
        out += body;
      }
      out += '\n';
    }
    return out;
  }

  /** The first link to `path` (`/verify-email`, ...), query included, as a path. */
  linkFor(path) {
    const text = this.text().replaceAll('&amp;', '&');
    const match = text.match(new RegExp(`https?://[^\\s"<>]*?(${escapeRegExp(path)}\\?[^\\s"<>]+)`));
    return match ? match[1] : undefined;
  }
}

export class SmtpSink {
  constructor() {
    this.messages = [];
    this.waiters = [];
    this.sockets = new Set();
  }

  static async start() {
    const sink = new SmtpSink();
    sink.server = net.createServer((socket) => sink.#serve(socket));
    await new Promise((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
    sink.port = sink.server.address().port;
    return sink;
  }

  get url() {
    return `smtp://127.0.0.1:${this.port}`;
  }

  messagesTo(address) {
    const wanted = address.toLowerCase();
    return this.messages.filter((message) => message.to.some((to) => to.toLowerCase() === wanted));
  }

  /**
   * The latest message to `address` whose subject contains `subject`, waiting (bounded). With
   * `after` (a count of `messagesTo(address)` taken earlier), only a message that arrived since.
   */
  async waitFor(address, subject, timeoutMs = 20_000, { after = 0 } = {}) {
    const find = () =>
      this.messagesTo(address).slice(after).reverse().find((message) => message.subject().includes(subject));
    const found = find();
    if (found) return found;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter !== check);
        const seen = this.messagesTo(address).map((message) => message.subject());
        reject(new Error(`no message "${subject}" to ${address} within ${timeoutMs} ms (got ${JSON.stringify(seen)})`));
      }, timeoutMs);
      const check = () => {
        const message = find();
        if (!message) return false;
        clearTimeout(timer);
        resolve(message);
        return true;
      };
      this.waiters.push(check);
    });
  }

  async stop() {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }

  #arrived(message) {
    this.messages.push(message);
    this.waiters = this.waiters.filter((check) => !check());
  }

  #serve(socket) {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    let buffer = '';
    let from = '';
    let to = [];
    let data = null; // the DATA lines while reading them
    const reply = (line) => socket.write(`${line}\r\n`);
    reply('220 e2e-sink ESMTP');
    socket.on('data', (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (data !== null) {
          if (line === '.') {
            this.#arrived(new Received(from, to, data.join('\r\n')));
            data = null;
            from = '';
            to = [];
            reply('250 2.0.0 queued');
          } else {
            data.push(line.startsWith('..') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          reply('250-e2e-sink');
          reply('250-8BITMIME');
          reply('250 SMTPUTF8');
        } else if (verb === 'HELO') {
          reply('250 e2e-sink');
        } else if (verb === 'MAIL') {
          from = angle(line);
          reply('250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          to.push(angle(line));
          reply('250 2.1.5 ok');
        } else if (verb === 'DATA') {
          data = [];
          reply('354 end with <CRLF>.<CRLF>');
        } else if (verb === 'RSET') {
          from = '';
          to = [];
          reply('250 ok');
        } else if (verb === 'NOOP') {
          reply('250 ok');
        } else if (verb === 'QUIT') {
          reply('221 bye');
          socket.end();
        } else {
          reply('502 5.5.2 not implemented');
        }
      }
    });
  }
}

function angle(line) {
  const match = line.match(/<([^>]*)>/);
  return match ? match[1] : '';
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function decodeQuotedPrintable(text) {
  const bytes = [];
  const unfolded = text.replace(/=\r?\n/g, '');
  for (let i = 0; i < unfolded.length; i++) {
    const c = unfolded[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(unfolded.slice(i + 1, i + 3))) {
      bytes.push(parseInt(unfolded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodeWords(text) {
  return text.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=\s*/g, (_, _charset, encoding, body) => {
    if (encoding.toUpperCase() === 'B') return Buffer.from(body, 'base64').toString('utf8');
    return decodeQuotedPrintable(body.replace(/_/g, ' '));
  });
}
