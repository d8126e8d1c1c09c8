//! A real SMTP server on loopback standing in for the mail provider's SMTP
//! relay: it speaks enough ESMTP for a client (EHLO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), records every accepted message, and can answer the
//! first DATA commands with a temporary failure (451) to exercise retries.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SmtpMessage {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and MIME body), dot-unstuffed.
    pub data: String,
}

#[derive(Default)]
struct Inner {
    accepted: Vec<SmtpMessage>,
    refuse_next: usize,
}

#[derive(Clone)]
pub struct SmtpSink {
    inner: Arc<Mutex<Inner>>,
    pub port: u16,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = SmtpSink {
            inner: Arc::default(),
            port,
        };
        let shared = sink.inner.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next `n` messages get "451 try again later" after their DATA.
    pub fn refuse_next(&self, n: usize) {
        self.inner.lock().unwrap().refuse_next = n;
    }

    pub fn accepted(&self) -> Vec<SmtpMessage> {
        self.inner.lock().unwrap().accepted.clone()
    }

    /// Waits (up to 15 s) until `n` messages reached `to`.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<SmtpMessage> {
        for _ in 0..150 {
            let found: Vec<SmtpMessage> = self
                .accepted()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to))
                .collect();
            if found.len() >= n {
                return found;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fewer than {n} SMTP messages to {to}");
    }
}

fn address(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.rfind('>').unwrap_or(arg.len());
    arg[start..end].to_string()
}

fn serve(stream: TcpStream, shared: &Mutex<Inner>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?,
            "HELO" => out.write_all(b"250 sink.test\r\n")?,
            "MAIL" => {
                from = address(command);
                to.clear();
                out.write_all(b"250 OK\r\n")?;
            }
            "RCPT" => {
                to.push(address(command));
                out.write_all(b"250 OK\r\n")?;
            }
            "DATA" => {
                out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let mut inner = shared.lock().unwrap();
                if inner.refuse_next > 0 {
                    inner.refuse_next -= 1;
                    out.write_all(b"451 4.3.0 try again later\r\n")?;
                } else {
                    inner.accepted.push(SmtpMessage {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                    });
                    out.write_all(b"250 OK queued\r\n")?;
                }
            }
            "RSET" | "NOOP" => out.write_all(b"250 OK\r\n")?,
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"502 not implemented\r\n")?,
        }
    }
}

/// The text of a message's bodies with quoted-printable undone (soft line
/// breaks and =XX escapes), so a link can be read from it.
pub fn decoded(message: &SmtpMessage) -> String {
    let joined = message.data.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
