//! A real SMTP server for the tests that read the emails Roster sends
//! (aiosmtpd, tests/smtp/sink.py, one process per test), the outbox as the
//! tests see it, and [`Mail`]: a received message with its parts decoded.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket_db_pools::Database;

use crate::helpers::{free_port, TestApp};

/// How long a test waits for an email it expects.
pub(crate) const MAIL_PATIENCE: Duration = Duration::from_secs(15);

/// The Python with aiosmtpd that `tests/run` prepares (`ROSTER_TEST_PYTHON`),
/// else `python3`.
fn python() -> String {
    std::env::var("ROSTER_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// An SMTP server process of this test's own.
pub(crate) struct SmtpSink {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    pub(crate) fn start(refuse: bool) -> SmtpSink {
        Self::start_on(free_port(), refuse)
    }

    pub(crate) fn start_on(port: u16, refuse: bool) -> SmtpSink {
        Self::start_with(port, if refuse { &["--refuse"] } else { &[] })
    }

    /// A sink that takes `seconds` to accept each message.
    pub(crate) fn start_slow(seconds: f64) -> SmtpSink {
        Self::start_with(free_port(), &["--delay", &seconds.to_string()])
    }

    fn start_with(port: u16, args: &[&str]) -> SmtpSink {
        use std::io::{BufRead, BufReader};
        let maildir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .args(["--port", &port.to_string(), "--maildir"])
            .arg(maildir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.args(args);
        let mut child = command
            .spawn()
            .expect("python runs (tests/run installs aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP server did not start (is aiosmtpd installed?)"
        );
        SmtpSink {
            child,
            port,
            maildir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw, in the order they arrived.
    pub(crate) fn messages(&self) -> Vec<String> {
        let mut paths: Vec<_> = std::fs::read_dir(self.maildir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// The messages once there are `count` of them, or whatever came
    /// `within`.
    pub(crate) async fn wait_for(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            rocket::tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `k`th message (counting from 1) to `to` with `subject`, decoded;
    /// fails when it does not come within [`MAIL_PATIENCE`].
    pub(crate) async fn mail_to(&self, to: &str, subject: &str, k: usize) -> Mail {
        let deadline = Instant::now() + MAIL_PATIENCE;
        loop {
            let mut received: Vec<Mail> = self.messages().iter().map(|m| Mail::parse(m)).collect();
            let seen: Vec<(String, String)> = received
                .iter()
                .map(|m| (m.to.clone(), m.subject.clone()))
                .collect();
            received.retain(|m| m.to == to && m.subject == subject);
            if received.len() >= k {
                return received.swap_remove(k - 1);
            }
            assert!(
                Instant::now() < deadline,
                "no email #{k} to {to} with subject {subject:?}; received {seen:?}"
            );
            rocket::tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// No message beyond the first `count` arrives in the next `patience`.
    pub(crate) async fn assert_no_more_than(&self, count: usize, patience: Duration) {
        let messages = self.wait_for(count + 1, patience).await;
        assert_eq!(
            messages.len(),
            count,
            "unexpected email(s): {:#?}",
            messages[count.min(messages.len())..]
                .iter()
                .map(|m| (header(m, "To"), header(m, "Subject")))
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `smtp.url` and `smtp.give_up_after`.
pub(crate) fn smtp(url: String, give_up_after: u64) -> impl FnOnce(Figment) -> Figment {
    move |f| {
        f.merge(("smtp.url", url))
            .merge(("smtp.give_up_after", give_up_after))
    }
}

/// The outbox jobs of `app`'s database, oldest first.
pub(crate) async fn jobs(app: &TestApp) -> Vec<roster::db::outbox::JobStatus> {
    let db = roster::db::Db::fetch(app.client.rocket()).unwrap();
    let mut conn = db.acquire().await.unwrap();
    roster::db::outbox::list(conn.conn()).await.unwrap()
}

/// The jobs once all of them have `status`, or as they are after `within`.
pub(crate) async fn wait_for_status(
    app: &TestApp,
    status: &str,
    within: Duration,
) -> Vec<roster::db::outbox::JobStatus> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = jobs(app).await;
        if jobs.iter().all(|j| j.status == status) || Instant::now() > deadline {
            return jobs;
        }
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first line of a raw message that is header `name`, unfolded or not.
pub(crate) fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A received message: its top-level headers, and its `text/plain` and
/// `text/html` parts decoded from whatever transfer encoding lettre chose
/// (7bit, quoted-printable or base64), with `\r\n` read as `\n`.
#[derive(Debug)]
pub(crate) struct Mail {
    pub raw: String,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    pub(crate) fn parse(raw: &str) -> Mail {
        let top = Entity::parse(raw);
        let field = |name: &str| {
            top.header(name)
                .unwrap_or_else(|| panic!("no {name} header in {raw}"))
                .to_owned()
        };
        let part = |mime: &str| {
            decoded_part(raw, mime).unwrap_or_else(|| panic!("no {mime} part in {raw}"))
        };
        Mail {
            raw: raw.to_owned(),
            subject: field("Subject"),
            from: field("From"),
            to: field("To"),
            text: part("text/plain"),
            html: part("text/html"),
        }
    }
}

/// The tokens, exactly 64 lowercase hex digits each, that follow each
/// occurrence of `marker` (such as `verify-email?token=`) in `text`.
pub(crate) fn tokens_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let token: String = text[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            (token.len() == 64 && !token.chars().any(|c| c.is_ascii_uppercase())).then_some(token)
        })
        .collect()
}

/// A MIME entity: its unfolded headers and its still encoded body.
struct Entity<'a> {
    headers: Vec<(String, String)>,
    body: &'a str,
}

impl<'a> Entity<'a> {
    fn parse(raw: &'a str) -> Entity<'a> {
        let (head, body) = if let Some(rest) = raw.strip_prefix("\r\n") {
            ("", rest)
        } else if let Some(rest) = raw.strip_prefix('\n') {
            ("", rest)
        } else {
            let crlf = raw.find("\r\n\r\n").map(|at| (at, 4));
            let lf = raw.find("\n\n").map(|at| (at, 2));
            match (crlf, lf) {
                (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                (a, b) => a.or(b),
            }
            .map_or((raw, ""), |(at, len)| (&raw[..at], &raw[at + len..]))
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Entity { headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_type(&self) -> String {
        self.header("Content-Type")
            .unwrap_or("text/plain")
            .to_ascii_lowercase()
    }
}

/// The first part of type `mime` in a raw message or part, decoded.
fn decoded_part(raw: &str, mime: &str) -> Option<String> {
    let entity = Entity::parse(raw);
    let content_type = entity.content_type();
    if content_type.starts_with("multipart/") {
        let boundary = parameter(entity.header("Content-Type")?, "boundary")?;
        let delimiter = format!("--{boundary}");
        return entity
            .body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .find_map(|part| {
                let part = part
                    .strip_prefix("\r\n")
                    .or_else(|| part.strip_prefix('\n'))
                    .unwrap_or(part);
                decoded_part(part, mime)
            });
    }
    if !content_type.starts_with(mime) {
        return None;
    }
    let encoding = entity
        .header("Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "quoted-printable" => quoted_printable(entity.body),
        "base64" => {
            use base64::Engine;
            let compact: String = entity
                .body
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_else(|e| panic!("bad base64 ({e}) in {raw}"));
            String::from_utf8(bytes).expect("a UTF-8 body")
        }
        _ => entity.body.to_owned(),
    };
    Some(decoded.replace("\r\n", "\n"))
}

/// A parameter of a header value: `boundary` of
/// `multipart/alternative; boundary="abc"`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, val) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').to_owned())
    })
}

/// Decodes quoted-printable: `=XX` escapes and `=` soft line breaks.
fn quoted_printable(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let rest = &bytes[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            let escaped = rest
                .get(..2)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            if let Some(byte) = escaped {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("a UTF-8 body")
}

#[test]
fn quoted_printable_joins_soft_breaks_and_decodes_escapes() {
    assert_eq!(
        quoted_printable("a=3Db=\r\nc=C3=A9\r\nd"),
        "a=bc\u{e9}\r\nd"
    );
}

#[test]
fn a_multipart_message_yields_each_part_decoded() {
    let raw = "Subject: Hi\r\nTo: a@example.com\r\nFrom: n@example.com\r\n\
               Content-Type: multipart/alternative;\r\n boundary=\"XYZ\"\r\n\r\n\
               --XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\r\n\
               go to http://x/verify-email?token=3D{t1}=\r\n{t2} now\r\n\
               --XYZ\r\nContent-Type: text/html; charset=utf-8\r\n\
               Content-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--XYZ--\r\n";
    let raw = raw
        .replace("{t1}", &"ab".repeat(16))
        .replace("{t2}", &"cd".repeat(16));
    let mail = Mail::parse(&raw);
    assert_eq!(
        (mail.subject.as_str(), mail.to.as_str(), mail.html.as_str()),
        ("Hi", "a@example.com", "<b>hi</b>")
    );
    let token = format!("{}{}", "ab".repeat(16), "cd".repeat(16));
    assert_eq!(tokens_after(&mail.text, "verify-email?token="), vec![token]);
    assert!(tokens_after("verify-email?token=ABCD", "verify-email?token=").is_empty());
    assert!(tokens_after(
        &format!("verify-email?token={}0", "a".repeat(64)),
        "verify-email?token="
    )
    .is_empty());
}
