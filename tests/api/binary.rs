//! The real `roster` binary: served over HTTP on a free port, stopped with
//! SIGTERM, and its `admin create` command.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::free_port;
use crate::server::{Server, BIN};

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
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    assert!(
        !dir.path().join("roster.db").exists(),
        "nothing opened the database"
    );
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
    assert_eq!(short.status.code(), Some(2), "a configuration error");
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(
        stderr.contains("invalid configuration") && stderr.contains("at least 32 bytes"),
        "{stderr}"
    );
}
