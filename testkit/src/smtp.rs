//! A small, real SMTP server for tests (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT). lettre talks to it over TCP exactly as it talks to a production server.
//! It can be told to refuse messages, to exercise retries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    pub from: String,
    pub to: Vec<String>,
    pub raw: String,
}

impl ReceivedEmail {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        // Unfold continuation lines (long headers are folded onto lines starting with space).
        let head = self.raw.split("\r\n\r\n").next()?.replace("\r\n ", " ");
        head.split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// The decoded body of the first part with this content type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        let lower = self.raw.to_ascii_lowercase();
        let at = lower.find(&format!("content-type: {content_type}"))?;
        let rest = &self.raw[at..];
        let (headers, body) = rest.split_once("\r\n\r\n")?;
        // The part ends at the next MIME boundary line, not at any line that starts with
        // `--`: a quoted-printable line may start with `--` (a token wrapped there).
        let end = self
            .boundaries()
            .iter()
            .filter_map(|b| body.find(&format!("\r\n--{b}")))
            .min()
            .unwrap_or(body.len());
        let body = &body[..end];
        let cte = headers
            .split("\r\n")
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("content-transfer-encoding:")
            })
            .map(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        Some(match cte.as_str() {
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .ok()?,
                )
                .into_owned()
            }
            "quoted-printable" => decode_qp(body),
            _ => body.to_owned(),
        })
    }

    /// The `boundary` parameters of the message's multipart headers.
    fn boundaries(&self) -> Vec<String> {
        let unfolded = self.raw.replace("\r\n ", " ").replace("\r\n\t", " ");
        let lower = unfolded.to_ascii_lowercase();
        lower
            .match_indices("boundary=")
            .map(|(at, m)| {
                let value = &unfolded[at + m.len()..];
                let value = value.strip_prefix('"').unwrap_or(value);
                value
                    .chars()
                    .take_while(|c| !matches!(c, '"' | ';' | '\r' | '\n'))
                    .collect::<String>()
                    .trim()
                    .to_owned()
            })
            .filter(|b| !b.is_empty())
            .collect()
    }

    pub fn text(&self) -> String {
        self.part("text/plain").unwrap_or_default()
    }
}

fn decode_qp(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedEmail>>>,
    arrived: Arc<Notify>,
    refuse: Arc<AtomicBool>,
    /// Recipients refused for good (550 at RCPT TO).
    refused_recipients: Arc<Mutex<Vec<String>>>,
    stall: Arc<AtomicBool>,
    /// Milliseconds the server waits before accepting each message (a slow relay).
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// False: messages are counted, not kept (benchmarks send hundreds of thousands).
    keep: bool,
    accepted: Arc<std::sync::atomic::AtomicU64>,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_keeping(true).await
    }

    /// A sink that only counts what it accepts (see [`SmtpSink::accepted`]).
    pub async fn start_counting() -> anyhow::Result<Self> {
        Self::start_keeping(false).await
    }

    async fn start_keeping(keep: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Self {
            port: listener.local_addr()?.port(),
            received: Arc::default(),
            arrived: Arc::new(Notify::new()),
            refuse: Arc::default(),
            refused_recipients: Arc::default(),
            stall: Arc::default(),
            delay_ms: Arc::default(),
            keep,
            accepted: Arc::default(),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(socket).await;
                });
            }
        });
        Ok(sink)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// While set, every message is refused with a transient 451.
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Refuses messages to this recipient with a permanent 550 at `RCPT TO` (`false`: accepts
    /// them again).
    pub fn refuse_recipient(&self, recipient: &str, on: bool) {
        let mut refused = self.refused_recipients.lock().unwrap();
        refused.retain(|r| r != recipient);
        if on {
            refused.push(recipient.to_owned());
        }
    }

    /// While set, new connections are accepted and then never answered (a hung server).
    pub fn stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }

    /// Makes the server wait `ms` milliseconds before accepting each message (0: at once).
    pub fn delay_each(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        if self.stall.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
            return Ok(());
        }
        let (r, mut w) = socket.into_split();
        let mut lines = BufReader::new(r);
        w.write_all(b"220 test-smtp ready\r\n").await?;
        let mut from = String::new();
        let mut to = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_owned();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                w.write_all(b"250-test-smtp\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                w.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                from = cmd[10..]
                    .trim()
                    .trim_matches(|c| c == '<' || c == '>')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                to.clear();
                w.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = cmd[8..]
                    .trim()
                    .trim_matches(|c| c == '<' || c == '>')
                    .to_owned();
                if self.refused_recipients.lock().unwrap().contains(&rcpt) {
                    w.write_all(b"550 5.1.1 no such mailbox\r\n").await?;
                } else {
                    to.push(rcpt);
                    w.write_all(b"250 OK\r\n").await?;
                }
            } else if upper == "DATA" {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Dot-stuffing (RFC 5321 4.5.2).
                    data.push_str(
                        line.strip_prefix('.')
                            .filter(|_| line.starts_with(".."))
                            .unwrap_or(&line),
                    );
                }
                let delay = self.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                if self.refuse.load(Ordering::SeqCst) {
                    w.write_all(b"451 4.3.0 try again later\r\n").await?;
                } else if !self.keep {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    w.write_all(b"250 OK queued\r\n").await?;
                } else {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    self.received.lock().unwrap().push(ReceivedEmail {
                        from: from.clone(),
                        to: to.clone(),
                        raw: data,
                    });
                    self.arrived.notify_waiters();
                    w.write_all(b"250 OK queued\r\n").await?;
                }
            } else if upper == "RSET" {
                to.clear();
                w.write_all(b"250 OK\r\n").await?;
            } else if upper == "QUIT" {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                w.write_all(b"502 command not implemented\r\n").await?;
            }
        }
    }

    /// Messages accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn all(&self) -> Vec<ReceivedEmail> {
        self.received.lock().unwrap().clone()
    }

    pub fn to(&self, recipient: &str) -> Vec<ReceivedEmail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(recipient)))
            .collect()
    }

    /// Waits until `count` messages for `recipient` have arrived, or fails after `timeout`.
    pub async fn wait_for(
        &self,
        recipient: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedEmail>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let got = self.to(recipient);
            if got.len() >= count {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!(
                    "expected {count} email(s) to {recipient} within {timeout:?}, got {}",
                    self.to(recipient).len()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_qp, ReceivedEmail};

    /// A quoted-printable line that starts with `--` (a link's token wrapped there) is text,
    /// not the end of the part; the part ends at its boundary.
    #[test]
    fn a_wrapped_line_starting_with_two_dashes_stays_in_the_part() {
        let raw = "From: a@x\r\nContent-Type: multipart/alternative;\r\n boundary=\"Xy-Z\"\r\n\r\n\
                   --Xy-Z\r\nContent-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   https://p/verify-email?token=3Dab=\r\n--cd\r\n\
                   --Xy-Z\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n\
                   --Xy-Z--\r\n";
        let mail = ReceivedEmail {
            from: "a@x".into(),
            to: vec!["b@x".into()],
            raw: raw.into(),
        };
        assert_eq!(mail.text(), "https://p/verify-email?token=ab--cd");
        assert_eq!(mail.part("text/html").unwrap(), "<p>hi</p>");
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(decode_qp("a=3Db=\r\nc"), "a=bc");
        assert_eq!(decode_qp("caf=C3=A9"), "café");
    }
}
