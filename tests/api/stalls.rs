//! Bodies that stall, over a real connection to the real binary: a JSON or
//! form body that sends nothing for 10 s is 408 and changes nothing; an
//! upload that sends nothing for `upload.idle_timeout` is 408, its bytes in
//! flight counted against the quota until then; an upload in progress
//! survives another instance starting on the same store.

use std::time::{Duration, Instant};

use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::TcpStream;
use rocket::tokio::time::{sleep, timeout};
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};
use crate::server::Server;

/// A request sent in parts over one connection: `head` (request line and
/// headers), then `parts` of the body, each after its pause.
struct Dribble {
    stream: TcpStream,
}

impl Dribble {
    async fn open(base: &str, head: &str) -> Dribble {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        Dribble { stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("body part sent");
    }

    /// The status code and body of the response, read within `within`.
    async fn response(mut self, within: Duration) -> (u16, String) {
        let mut raw = Vec::new();
        let read = timeout(within, async {
            let mut buf = [0u8; 4096];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
                let text = String::from_utf8_lossy(&raw);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok());
                    if length.is_some_and(|length| body.len() >= length) {
                        break;
                    }
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "no response within {within:?}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

fn head(method: &str, path: &str, headers: &[(&str, &str)], length: usize) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head + "\r\n"
}

/// The binary on the database and upload store of a fresh `TestApp`
/// (SQLite or PostgreSQL, a directory or a bucket, as the suite runs),
/// with `upload` (`max_bytes=10,...`) added to its upload settings.
async fn serve(upload: &str) -> (TestApp, Server, tempfile::TempDir) {
    let app = TestApp::spawn().await;
    let url: String = app
        .figment
        .extract_inner("databases.roster.url")
        .expect("database url");
    let dir = tempfile::tempdir().unwrap();
    let uploads = app.uploads.rocket_env(upload);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("ROCKET_UPLOAD", uploads.as_str()),
    ];
    let server = Server::start(dir.path(), &env).await;
    (app, server, dir)
}

#[rocket::async_test]
async fn json_and_form_bodies_that_stall_are_408_and_change_nothing() {
    let (_app, server, _dir) = serve("").await;
    let registration =
        json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD})
            .to_string();
    let json_head = head(
        "POST",
        "/api/v1/users",
        &[("Content-Type", "application/json")],
        registration.len(),
    );
    let form = format!("grant_type=password&username=alice&password={PASSWORD}");
    let form_head = head(
        "POST",
        "/api/v1/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.len(),
    );

    let started = Instant::now();
    let stalled_json = async {
        let mut request = Dribble::open(&server.base, &json_head).await;
        request.send(&registration.as_bytes()[..20]).await;
        request.response(Duration::from_secs(30)).await
    };
    let stalled_form = async {
        let mut request = Dribble::open(&server.base, &form_head).await;
        // Past the 14 bytes Rocket itself reads of every form (looking for
        // `_method`) before any of Roster runs: a form that stalls within
        // those is the reverse proxy's to cut, like a stalled header.
        request.send(&form.as_bytes()[..20]).await;
        request.response(Duration::from_secs(30)).await
    };
    // A slow body that never pauses for long is read to its end.
    let slow_json = async {
        let mut request = Dribble::open(&server.base, &json_head).await;
        let bytes = registration.as_bytes();
        let step = bytes.len().div_ceil(6);
        for part in bytes.chunks(step) {
            request.send(part).await;
            sleep(Duration::from_secs(2)).await;
        }
        request.response(Duration::from_secs(30)).await
    };
    let (json_reply, form_reply, slow_reply) =
        futures::join!(stalled_json, stalled_form, slow_json);
    let waited = started.elapsed();
    for (status, body) in [&json_reply, &form_reply] {
        assert_eq!(*status, 408, "{body}");
        assert!(body.contains("stalled"), "{body}");
    }
    assert!(
        waited >= Duration::from_secs(9),
        "408 came after {waited:?}, before the body was idle 10 s"
    );
    assert_eq!(
        slow_reply.0, 201,
        "a slow body is no stall: {}",
        slow_reply.1
    );

    // The stalled registration changed nothing: only the slow one counts.
    let users = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200);
}

#[rocket::async_test]
async fn an_upload_that_stalls_is_408_and_its_bytes_count_against_the_quota_until_then() {
    let (app, server, _dir) = serve("idle_timeout=3,max_bytes=1000,quota_bytes=1000").await;
    app.register("alice").await;
    let http = reqwest::Client::new();
    let login = server.login("alice", PASSWORD).await;
    let bearer = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let boundary = "XyZzYboundary";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let preamble = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    );
    let epilogue = format!("\r\n--{boundary}--\r\n");
    let upload = |size: usize| {
        let body = [preamble.as_bytes(), &vec![b'x'; size], epilogue.as_bytes()].concat();
        http.post(format!("{}/api/v1/uploads", server.base))
            .header("Authorization", &bearer)
            .header("Content-Type", &content_type)
            .body(body)
            .send()
    };

    let file = vec![b'y'; 900];
    let length = preamble.len() + file.len() + epilogue.len();
    let upload_head = head(
        "POST",
        "/api/v1/uploads",
        &[("Content-Type", &content_type), ("Authorization", &bearer)],
        length,
    );
    let mut stalled = Dribble::open(&server.base, &upload_head).await;
    stalled.send(preamble.as_bytes()).await;
    stalled.send(&file[..800]).await;
    sleep(Duration::from_millis(500)).await;

    // 800 bytes in flight: 400 more would pass the 1000-byte quota.
    let over = upload(400).await.unwrap();
    assert_eq!(over.status(), 413, "{}", over.text().await.unwrap());
    let started = Instant::now();
    let (status, body) = stalled.response(Duration::from_secs(20)).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("stalled"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "408 before idle_timeout"
    );

    // The stalled upload left nothing: no row, no file, no claim.
    let fits = upload(400).await.unwrap();
    assert_eq!(fits.status(), 201, "{}", fits.text().await.unwrap());
    let list: serde_json::Value = http
        .get(format!("{}/api/v1/uploads", server.base))
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let keys = app.uploads.keys().await;
    assert!(
        keys.iter().all(|key| key.starts_with("files/")) && keys.len() == 1,
        "temporary files left: {keys:?}"
    );
}

#[rocket::async_test]
async fn a_second_instance_starting_leaves_an_upload_in_progress_alone() {
    let (app, a, _dir) = serve("idle_timeout=30").await;
    app.register("alice").await;
    let login = a.login("alice", PASSWORD).await;
    let bearer = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let boundary = "XyZzYboundary";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let preamble = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\r\n"
    );
    let epilogue = format!("\r\n--{boundary}--\r\n");
    let file: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let upload_head = head(
        "POST",
        "/api/v1/uploads",
        &[("Content-Type", &content_type), ("Authorization", &bearer)],
        preamble.len() + file.len() + epilogue.len(),
    );
    // Half the file is with A (on disk under tmp/, on S3 a multipart
    // upload in progress) when B starts on the same database and store,
    // sweeping it at start.
    let mut upload = Dribble::open(&a.base, &upload_head).await;
    upload.send(preamble.as_bytes()).await;
    upload.send(&file[..100_000]).await;
    sleep(Duration::from_millis(300)).await;
    let url: String = app.figment.extract_inner("databases.roster.url").unwrap();
    let store = app.uploads.rocket_env("idle_timeout=30");
    let b_dir = tempfile::tempdir().unwrap();
    let b = Server::start(
        b_dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_UPLOAD", &store)],
    )
    .await;
    upload.send(&file[100_000..]).await;
    upload.send(epilogue.as_bytes()).await;
    let (status, body) = upload.response(Duration::from_secs(20)).await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // (Each debug instance signs with a secret of its own: a token of B's.)
    let on_b = b.login("alice", PASSWORD).await;
    let download = reqwest::Client::new()
        .get(format!("{}/api/v1/uploads/{id}/content", b.base))
        .header(
            "Authorization",
            format!("Bearer {}", on_b["access_token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.bytes().await.unwrap() == file, "whole, through B");
}
