//! The real `roster` binary: served over HTTP on a free port, stopped with
//! SIGTERM, and its `admin create` command.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_roster");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `roster` process serving from `dir` with environment variables only
/// (no Rocket.toml there), killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = dir.join("server.log");
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_BCRYPT_COST", "4")
            .env("ROCKET_CLI_COLORS", "false")
            .env(
                "ROCKET_RATE_LIMIT",
                "{per_minute=1000000,login_per_minute=1000000,register_per_minute=1000000}",
            )
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.err")).unwrap(),
            ));
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("roster starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(reply) = reqwest::get(format!("{}/health/live", self.base)).await {
                if reply.status() == 200 {
                    return;
                }
            }
            rocket::tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "roster did not start: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "roster did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[rocket::async_test]
async fn the_binary_serves_http_from_environment_variables_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/roster.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let server = Server::start(dir.path(), &[("DATABASE_URL", &url)]).await;
    assert!(db.exists(), "the database and its directory are created");

    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/api/v1/users/1");
    assert!(created.headers().contains_key("x-request-id"));
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["username"], "alice");

    let missing = http
        .get(format!("{}/nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"detail": "Not found"})
    );

    let log = std::fs::read_to_string(&server.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("Roster") && l.contains("listening on"))
        .unwrap_or_else(|| panic!("no start-up line in {log}"));
    assert!(line.contains(&server.base), "{line}");
    assert!(
        line.contains("SQLite file") && line.contains("roster.db"),
        "{line}"
    );
}

#[rocket::async_test]
async fn the_start_up_line_names_the_postgres_host_but_never_the_password() {
    let Some(admin_url) = crate::helpers::postgres_url() else {
        return; // SQLite run: the SQLite line is checked above.
    };
    let with_password =
        admin_url.replacen("postgres://postgres@", "postgres://postgres:s3cret-pw@", 1);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("DATABASE_URL", &with_password)]).await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("listening on"))
        .expect("start-up line");
    assert!(
        line.contains("PostgreSQL") && line.contains("127.0.0.1:5432"),
        "{line}"
    );
    assert!(!log.contains("s3cret-pw"), "the password leaked: {line}");
}

#[rocket::async_test]
async fn sigterm_lets_the_in_flight_request_finish_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    // A slow hash keeps the registration in flight while the signal lands.
    let mut server = Server::start(
        dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_BCRYPT_COST", "13")],
    )
    .await;
    let http = reqwest::Client::new();
    let request = http
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send();
    let in_flight = rocket::tokio::spawn(request);
    rocket::tokio::time::sleep(Duration::from_millis(150)).await;
    server.signal("TERM");
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(reply.status(), 201);
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "graceful exit");
}

fn admin_create(
    dir: &Path,
    args: &[&str],
    password_env: Option<&str>,
    stdin: Option<&str>,
) -> Output {
    let url = format!("sqlite://{}?mode=rwc", dir.join("roster.db").display());
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .args(["admin", "create"])
        .args(args)
        .env("DATABASE_URL", url)
        .env("ROCKET_BCRYPT_COST", "4")
        .env_remove("ROSTER_ADMIN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = password_env {
        command.env("ROSTER_ADMIN_PASSWORD", password);
    }
    let mut child = command.spawn().expect("roster runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("roster exits")
}

#[test]
fn admin_create_makes_an_admin_and_refuses_taken_names_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let ok = admin_create(
        dir.path(),
        &["--username", "root", "--email", "root@example.com"],
        Some("Passw0rd1"),
        None,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let from_stdin = admin_create(
        dir.path(),
        &["--username", "second", "--email", "second@example.com"],
        None,
        Some("Passw0rd2\n"),
    );
    assert!(
        from_stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&from_stdin.stderr)
    );

    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--username", "ROOT", "--email", "other@example.com"],
            "Passw0rd1",
            "already taken",
        ),
        (
            &["--username", "third", "--email", "ROOT@example.com"],
            "Passw0rd1",
            "already registered",
        ),
        (
            &["--username", "third", "--email", "third@example.com"],
            "weak",
            "password",
        ),
        (
            &["--username", "no way", "--email", "third@example.com"],
            "Passw0rd1",
            "username",
        ),
    ];
    for (args, password, expected) in cases {
        let out = admin_create(dir.path(), args, Some(password), None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn help_explains_serving_and_admin_create() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("serve") && help.contains("admin"), "{help}");
    let out = Command::new(BIN)
        .args(["admin", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--username") && help.contains("ROSTER_ADMIN_PASSWORD"),
        "{help}"
    );
}

#[test]
fn the_release_profile_refuses_to_start_without_a_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("ROCKET_PROFILE", "release")
        .env("DATABASE_URL", url)
        .env("ROCKET_PORT", free_port().to_string())
        .env_remove("ROCKET_JWT_SECRET")
        .output()
        .expect("roster runs");
    assert!(!out.status.success(), "it must not serve");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("jwt_secret") && text.contains("ROCKET_JWT_SECRET"),
        "{text}"
    );

    let short = Command::new(BIN)
        .current_dir(dir.path())
        .env("ROCKET_PROFILE", "release")
        .env("ROCKET_JWT_SECRET", "too-short")
        .env("ROCKET_PORT", free_port().to_string())
        .output()
        .expect("roster runs");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stdout).contains("at least 32 bytes"));
}

#[rocket::async_test]
async fn fifty_concurrent_logins_leave_health_answering_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let server = Server::start(
        dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_BCRYPT_COST", "10")],
    )
    .await;
    let http = reqwest::Client::new();
    let registered = http
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    let started = Instant::now();
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let request = http
                .post(format!("{}/api/v1/auth/login", server.base))
                .json(&json!({"username": "alice", "password": "Passw0rd1"}))
                .send();
            rocket::tokio::spawn(request)
        })
        .collect();
    rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    let mut probes = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        let live = http
            .get(format!("{}/health/live", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);
        probes.push(sent.elapsed());
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut statuses = Vec::new();
    for login in logins {
        statuses.push(login.await.unwrap().unwrap().status().as_u16());
    }
    let logins_took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let slowest = probes.iter().max().unwrap();
    assert!(
        logins_took > Duration::from_millis(600),
        "the logins should have overlapped the probes ({logins_took:?})"
    );
    assert!(
        *slowest < Duration::from_millis(500) && *slowest * 3 < logins_took,
        "health probes {probes:?} while 50 logins took {logins_took:?}"
    );
}

/// Kibibytes of a `/proc/<pid>/status` field (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from {status}"))
}

#[rocket::async_test]
async fn a_50_mib_upload_and_download_stream_with_flat_memory() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            (
                "ROCKET_UPLOAD",
                "{max_bytes=62914560,quota_bytes=209715200}",
            ),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    http.post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"username": "alice", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = format!(
        "Authorization: Bearer {}",
        login["access_token"].as_str().unwrap()
    );

    // 50 MiB that no compression or deduplication could shrink.
    let mut content = Vec::with_capacity(50 << 20);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    while content.len() < 50 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &content).unwrap();
    let digest = format!("{:x}", Sha256::digest(&content));
    drop(content);

    let pid = server.child.id();
    let before = proc_kib(pid, "VmHWM");
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-H", &auth, "-F"])
        .arg(format!("file=@{}", file.display()))
        .arg(format!("{}/api/v1/uploads", server.base))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let uploaded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(uploaded["size"], 50 << 20);
    assert_eq!(uploaded["sha256"], digest.as_str());

    let copy = dir.path().join("copy.bin");
    let headers = dir.path().join("headers.txt");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-H", &auth, "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&copy)
        .arg(format!(
            "{}/api/v1/uploads/{}/content",
            server.base,
            uploaded["id"].as_str().unwrap()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let headers = std::fs::read_to_string(headers).unwrap().to_lowercase();
    assert!(
        headers.contains(&format!("content-length: {}", 50 << 20)),
        "{headers}"
    );
    assert!(
        headers.contains("content-disposition: attachment;"),
        "{headers}"
    );
    assert_eq!(
        format!("{:x}", Sha256::digest(std::fs::read(&copy).unwrap())),
        digest
    );

    let peak = proc_kib(pid, "VmHWM");
    let grown_mib = (peak.saturating_sub(before)) as f64 / 1024.0;
    eprintln!("server peak RSS {before} KiB before, {peak} KiB after a 50 MiB upload and download");
    assert!(
        grown_mib < 16.0,
        "peak RSS grew {grown_mib:.1} MiB for a 50 MiB file"
    );
}
