//! An SMTP sink for tests: a small in-process server on an ephemeral port speaking enough of
//! RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for lettre, keeping every message.
//! It can be stopped (the port closes: connections are refused) and started again on the same
//! port, to test delivery retries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed.
    pub data: String,
}

impl Received {
    /// The header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// The subject, with RFC 2047 encoded words decoded.
    pub fn subject(&self) -> String {
        decode_words(&self.header("subject").unwrap_or_default())
    }

    /// Every MIME part's body, transfer-decoded and joined (text and HTML).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in self.parts() {
            let Some((head, body)) = part.split_once("\r\n\r\n") else { continue };
            let encoding = head.to_ascii_lowercase();
            if encoding.contains("content-transfer-encoding: quoted-printable") {
                out.push_str(&decode_quoted_printable(body));
            } else if encoding.contains("content-transfer-encoding: base64") {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            } else {
                out.push_str(body);
            }
            out.push('\n');
        }
        out
    }

    /// The message cut at its MIME boundaries (those its headers declare, nested ones too):
    /// a delimiter is `CRLF--boundary`, not any line that starts with `--` — a quoted-printable
    /// soft line break followed by a token's `--` is not one (cutting there truncated a token
    /// about once in 4,096 links and made a valid link look invalid).
    fn parts(&self) -> Vec<&str> {
        let delimiters: Vec<String> = self
            .data
            .match_indices("boundary=")
            .filter_map(|(at, found)| {
                let rest = &self.data[at + found.len()..];
                let value = match rest.strip_prefix('"') {
                    Some(quoted) => quoted.split('"').next(),
                    None => rest.split(|c: char| c == ';' || c.is_whitespace()).next(),
                };
                value.filter(|value| !value.is_empty()).map(|value| format!("\r\n--{value}"))
            })
            .collect();
        let mut parts = vec![self.data.as_str()];
        for delimiter in &delimiters {
            parts = parts.into_iter().flat_map(|part| part.split(delimiter.as_str())).collect();
        }
        parts
    }

    /// The token of the first link to `path` (`/verify-email`, ...).
    pub fn token_for(&self, path: &str) -> Option<String> {
        let text = self.text();
        let start = text.find(&format!("{path}?token="))? + path.len() + "?token=".len();
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (!token.is_empty()).then_some(token)
    }

    /// The whole link to `path`, query included (HTML-unescaped from the text part).
    pub fn link_for(&self, path: &str) -> Option<String> {
        let text = self.text();
        let start = text.find(&format!("{path}?"))?;
        let link: String =
            text[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
        Some(link.replace("&amp;", "&"))
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && index + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(
                std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(value);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `=?utf-8?b?...?=` and `=?utf-8?q?...?=` words, enough for lettre's subjects.
fn decode_words(text: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for word in text.split_whitespace() {
        let inner = word.strip_prefix("=?").and_then(|w| w.strip_suffix("?="));
        let decoded = inner.map(|inner| {
            let mut parts = inner.splitn(3, '?');
            let (_charset, encoding, data) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            if encoding.eq_ignore_ascii_case("b") {
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_else(|_| word.to_owned())
            } else {
                decode_quoted_printable(&data.replace('_', " "))
            }
        });
        // Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
        let both_encoded = previous_encoded && decoded.is_some();
        if !out.is_empty() && !both_encoded {
            out.push(' ');
        }
        previous_encoded = decoded.is_some();
        out.push_str(&decoded.unwrap_or_else(|| word.to_owned()));
    }
    out
}

pub struct SmtpSink {
    pub address: SocketAddr,
    messages: Arc<Mutex<Vec<Received>>>,
    server: Option<JoinHandle<()>>,
}

fn bind(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    socket.listen(64).unwrap()
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = bind("127.0.0.1:0".parse().unwrap());
        let address = listener.local_addr().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let server = Some(tokio::spawn(serve(listener, messages.clone())));
        SmtpSink { address, messages, server }
    }

    /// `smtp://127.0.0.1:<port>` (plain, no authentication).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// Closes the port and every open connection: deliveries fail until [`Self::resume`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        assert!(self.server.is_none(), "the sink is running");
        let listener = bind(self.address);
        self.server = Some(tokio::spawn(serve(listener, self.messages.clone())));
    }

    pub fn messages(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|message| message.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits (polling, with a deadline) until `address` has received `count` messages, and
    /// answers them, oldest first.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.messages_to(address);
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{address} received {} messages, expected {count}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The latest message to `address` whose subject contains `subject`, waiting for it.
    pub async fn wait_for_subject(&self, address: &str, subject: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(message) =
                self.messages_to(address).into_iter().rev().find(|m| m.subject().contains(subject))
            {
                return message;
            }
            assert!(Instant::now() < deadline, "no message {subject:?} to {address}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Accepts connections until aborted; aborting also ends the connections it spawned.
async fn serve(listener: TcpListener, messages: Arc<Mutex<Vec<Received>>>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let messages = messages.clone();
        connections.spawn(async move {
            let _ = session(stream, messages).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    messages: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?,
            "HELO" => write.write_all(b"250 sink\r\n").await?,
            "MAIL" => {
                from = address_in(&command);
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "RCPT" => {
                to.push(address_in(&command));
                write.write_all(b"250 OK\r\n").await?;
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').filter(|_| line.starts_with(".."));
                    data.push_str(unstuffed.unwrap_or(&line));
                }
                messages.lock().unwrap().push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                write.write_all(b"250 OK queued\r\n").await?;
            }
            "RSET" => {
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"250 OK\r\n").await?,
        }
    }
}

fn address_in(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}
