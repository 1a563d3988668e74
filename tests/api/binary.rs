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

#[rocket::async_test]
async fn sigterm_drains_readiness_first_while_serving_and_sighup_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let mut server = Server::start(
        dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_SHUTDOWN", "{drain=3}")],
    )
    .await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).send();
    assert_eq!(get("/health/ready").await.unwrap().status(), 200);

    server.signal("HUP");
    rocket::tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP ends nothing"
    );
    assert_eq!(get("/health/ready").await.unwrap().status(), 200);

    server.signal("TERM");
    let signalled = std::time::Instant::now();
    rocket::tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get("/health/ready").await.unwrap();
    assert_eq!(ready.status(), 503, "draining");
    assert_eq!(ready.headers()["retry-after"], "2");
    assert_eq!(get("/health/live").await.unwrap().status(), 200);
    let created = http
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "requests are still served");
    assert_eq!(
        created.headers()["connection"],
        "close",
        "keep-alive clients reconnect (elsewhere, once it stops listening)"
    );
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "graceful exit");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "exited after {took:?}, before the drain"
    );
    let log = format!(
        "{}{}",
        std::fs::read_to_string(&server.log).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("server.err")).unwrap_or_default()
    );
    assert!(log.contains("SIGHUP ignored"), "{log}");
    assert!(log.contains("SIGTERM: draining for 3 s"), "{log}");
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

/// Runs `roster args...` in a fresh directory with `env`; its exit status,
/// its output (stdout and stderr), and the directory.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .current_dir(dir.path())
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("ROCKET_JWT_SECRET")
        .env_remove("ROCKET_PROFILE")
        .env("ROCKET_PORT", free_port().to_string())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("roster runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, dir)
}

#[test]
fn a_typo_in_the_configuration_is_refused_with_exit_2_before_the_database_is_touched() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("ROCKET_RATE_LIMIT", "{per_minut=5}")],
            "did you mean `rate_limit.per_minute`?",
        ),
        (&[("ROCKET_PORT", "eighty")], "\"PORT\" in `ROCKET_`"),
        (&[("ROCKET_WORKERS", "0")], "workers"),
        (
            &[("ROCKET_PROFILE", "prod")],
            "the prod profile needs a jwt_secret",
        ),
    ];
    for (env, expected) in cases {
        for command in [&["serve"][..], &["migrate"], &["config", "check"]] {
            if command == ["migrate"] && expected.contains("jwt_secret") {
                continue; // migrating signs no token: it needs no secret
            }
            let (status, text, dir) = run(command, env);
            assert_eq!(status, Some(2), "{command:?} {env:?}: {text}");
            assert!(text.contains(expected), "{command:?} {env:?}: {text}");
            assert!(
                !dir.path().join("roster.db").exists(),
                "{command:?} {env:?}: nothing opened the database"
            );
        }
    }
    // The same checks for Rocket.toml: a key and a profile section.
    let dir = tempfile::tempdir().unwrap();
    for (toml, expected) in [
        (
            "[default]\nsmtp = { keep_sent_dayz = 3 }\n",
            "did you mean `smtp.keep_sent_days`?",
        ),
        ("[relase]\nport = 80\n", "did you mean [release]?"),
        ("[default\nport = 80\n", "TOML"),
    ] {
        std::fs::write(dir.path().join("Rocket.toml"), toml).unwrap();
        let config = dir.path().join("Rocket.toml").display().to_string();
        let (status, text, _) = run(&["serve"], &[("ROCKET_CONFIG", &config)]);
        assert_eq!(status, Some(2), "{toml}: {text}");
        assert!(text.contains(expected), "{toml}: {text}");
        assert!(!text.contains("panicked"), "{toml}: {text}");
    }
}

#[test]
fn outside_debug_emails_need_an_smtp_url_or_to_be_switched_off() {
    let secret = ("ROCKET_JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret");
    let (status, text, dir) = run(&["serve"], &[("ROCKET_PROFILE", "release"), secret]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("needs smtp.url"), "{text}");
    assert!(!dir.path().join("roster.db").exists());
    let (status, text, _) = run(
        &["config", "check"],
        &[
            ("ROCKET_PROFILE", "release"),
            secret,
            ("ROCKET_SMTP", "{enabled=false}"),
        ],
    );
    assert_eq!(status, Some(0), "{text}");
}

#[test]
fn config_check_prints_the_effective_settings_without_secrets() {
    let (status, text, dir) = run(
        &["config", "check"],
        &[
            ("ROCKET_PROFILE", "release"),
            ("ROCKET_JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret"),
            (
                "ROCKET_SMTP",
                "{url=\"smtp://mailer:hunter2@127.0.0.1:2525\"}",
            ),
            (
                "DATABASE_URL",
                "postgres://roster:pa55word@127.0.0.1:1/roster",
            ),
            ("ROCKET_RATE_LIMIT", "{per_minute=7}"),
            (
                "ROCKET_UPLOAD",
                "{backend=\"s3\",s3={bucket=\"b\",secret_access_key=\"s3key-s3key\"}}",
            ),
        ],
    );
    assert_eq!(status, Some(0), "{text}");
    let settings: Value = serde_json::from_str(&text).expect("JSON on stdout");
    assert_eq!(settings["upload"]["s3"]["secret_access_key"], "***");
    assert_eq!(settings["profile"], "release");
    assert_eq!(settings["rate_limit"]["per_minute"], 7);
    assert_eq!(
        settings["rate_limit"]["login_per_minute"], 10,
        "siblings keep their defaults"
    );
    assert_eq!(settings["jwt_secret"], "***");
    assert_eq!(settings["smtp"]["url"], "smtp://mailer:***@127.0.0.1:2525");
    assert_eq!(
        settings["databases"]["roster"]["url"],
        "postgres://roster:***@127.0.0.1:1/roster"
    );
    for secret in ["s3cret", "hunter2", "pa55word", "s3key"] {
        assert!(!text.contains(secret), "{secret} printed: {text}");
    }
    assert!(!dir.path().join("roster.db").exists());
}

#[rocket::async_test]
async fn migrate_applies_the_migrations_and_serving_can_leave_them_to_it() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("roster.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let tables = || async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'users'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n
    };

    // Serving with migrate_on_start = false leaves the schema alone, and
    // refuses to serve one it does not expect...
    let (status, text, _) = run(
        &["serve"],
        &[("DATABASE_URL", &url), ("ROCKET_MIGRATE_ON_START", "false")],
    );
    assert_ne!(status, Some(0), "{text}");
    assert!(text.contains("run `roster migrate` first"), "{text}");
    assert_eq!(tables().await, 0, "no migration ran");

    // ...for `roster migrate` (twice is fine), after which it serves.
    for _ in 0..2 {
        let (status, text, _) = run(&["migrate"], &[("DATABASE_URL", &url)]);
        assert_eq!(status, Some(0), "{text}");
        assert!(text.contains("up to date"), "{text}");
    }
    assert_eq!(tables().await, 1);
    let server = Server::start(
        dir.path(),
        &[("DATABASE_URL", &url), ("ROCKET_MIGRATE_ON_START", "false")],
    )
    .await;
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

#[test]
fn an_unreachable_database_is_retried_for_startup_timeout_and_named_with_its_cause() {
    let port = free_port();
    let url = format!("postgres://roster@127.0.0.1:{port}/roster");
    let started = std::time::Instant::now();
    let (status, text, _) = run(
        &["serve"],
        &[
            ("DATABASE_URL", &url),
            ("ROCKET_DATABASES", "{roster={startup_timeout=3}}"),
            ("ROCKET_LOG_LEVEL", "normal"),
        ],
    );
    let took = started.elapsed();
    assert_ne!(status, Some(0), "{text}");
    assert!(
        took >= Duration::from_secs(3),
        "gave up after {took:?}: {text}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let target = format!("127.0.0.1:{port}");
    let tries = text.matches("retrying").count();
    assert!(tries >= 2, "each try is logged: {text}");
    assert!(text.contains(&target), "names the host: {text}");
    assert!(
        text.to_lowercase().contains("refused"),
        "names the cause: {text}"
    );
    assert!(
        !text.contains("cannot list uploads"),
        "the database's error alone, not the steps after it: {text}"
    );
}

#[test]
fn an_upload_store_that_cannot_be_used_stops_the_start_with_its_cause() {
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let refusing = format!("http://127.0.0.1:{}", free_port());
    let s3 = |endpoint: &str, bucket: &str, key: &str, secret: &str| {
        format!(
            "{{backend=\"s3\",s3={{endpoint=\"{endpoint}\",bucket=\"{bucket}\",region=\"garage\",\
             access_key_id=\"{key}\",secret_access_key=\"{secret}\"}}}}"
        )
    };
    let mut cases = vec![
        (
            format!("{{dir=\"{}\"}}", blocker.path().display()),
            vec!["upload.dir", "not usable"],
        ),
        (
            s3(&refusing, "roster", "key", "secret"),
            vec!["upload.s3: cannot list bucket \"roster\"", &refusing],
        ),
        (
            "{backend=\"s3\",s3={endpoint=\"http://127.0.0.1:9\"}}".to_owned(),
            vec!["upload.s3 is not usable", "bucket"],
        ),
    ];
    // With the test bucket's server: a wrong secret, and a bucket that
    // does not exist.
    let test_bucket = crate::stores::s3();
    if let Some(test) = &test_bucket {
        cases.push((
            s3(
                &test.endpoint,
                &test.bucket,
                &test.access_key_id,
                &"0".repeat(64),
            ),
            vec!["upload.s3: cannot list", &test.bucket, "403"],
        ));
        cases.push((
            s3(
                &test.endpoint,
                "no-such-bucket",
                &test.access_key_id,
                &test.secret_access_key,
            ),
            vec!["upload.s3: cannot list", "no-such-bucket"],
        ));
    }
    for (upload, expected) in cases {
        let (status, text, _) = run(
            &["serve"],
            &[("ROCKET_UPLOAD", &upload), ("ROCKET_LOG_LEVEL", "normal")],
        );
        assert_ne!(status, Some(0), "{upload}: {text}");
        for words in expected {
            assert!(text.contains(words), "{upload}: {words:?} in {text}");
        }
        if let Some(test) = &test_bucket {
            assert!(!text.contains(&test.secret_access_key), "{text}");
        }
    }
}

#[test]
fn admin_create_if_missing_succeeds_when_the_admin_exists() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("ROSTER_ADMIN_PASSWORD", "Passw0rd1"),
    ];
    let create = |extra: &[&str]| {
        let mut args = vec![
            "admin",
            "create",
            "--username",
            "root",
            "--email",
            "root@example.com",
        ];
        args.extend_from_slice(extra);
        run(&args, &env)
    };
    assert_eq!(create(&[]).0, Some(0));
    let (status, text, _) = create(&[]);
    assert_eq!(status, Some(1), "taken without --if-missing: {text}");
    let (status, text, _) = create(&["--if-missing"]);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("exists already"), "{text}");
}

#[test]
fn version_names_the_commit() {
    let (status, text, _) = run(&["--version"], &[]);
    assert_eq!(status, Some(0));
    assert!(text.starts_with("roster 0."), "{text}");
    assert!(text.contains("(commit "), "{text}");
}

#[rocket::async_test]
async fn backup_copies_a_serving_sqlite_database_and_names_pg_dump_for_postgres() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let server = Server::start(dir.path(), &[("DATABASE_URL", &url)]).await;
    let http = reqwest::Client::new();
    let register = |name: String| {
        http.post(format!("{}/api/v1/users", server.base))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": "Passw0rd1"}))
            .send()
    };
    for i in 0..20 {
        assert_eq!(register(format!("before{i}")).await.unwrap().status(), 201);
    }
    // Registrations keep arriving while the copy is made.
    let writes = async {
        let mut created = 0;
        for i in 0..40 {
            if register(format!("during{i}")).await.unwrap().status() == 201 {
                created += 1;
            }
        }
        created
    };
    let copy = dir.path().join("copy.db");
    let copy_arg = copy.display().to_string();
    let backup = rocket::tokio::task::spawn_blocking({
        let url = url.clone();
        move || run(&["backup", &copy_arg], &[("DATABASE_URL", &url)])
    });
    let (created, backup) = futures::join!(writes, backup);
    let (status, text, _) = backup.unwrap();
    assert_eq!(status, Some(0), "{text}");
    assert_eq!(created, 40);

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!((20..=60).contains(&users), "a moment's copy: {users} users");
    // Every user in the copy is whole: its welcome email job is there too.
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users u WHERE NOT EXISTS \
         (SELECT 1 FROM outbox o WHERE o.user_id = u.id)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(orphans, 0);

    let copy_again = copy.display().to_string();
    let (status, text, _) = run(&["backup", &copy_again], &[("DATABASE_URL", &url)]);
    assert_ne!(
        status,
        Some(0),
        "an existing file is never overwritten: {text}"
    );
    assert!(text.contains("exists already"), "{text}");

    let (status, text, _) = run(
        &["backup", "pg.dump"],
        &[("DATABASE_URL", "postgres://roster@127.0.0.1:1/roster")],
    );
    assert_ne!(status, Some(0), "{text}");
    assert!(text.contains("pg_dump"), "{text}");
}

#[rocket::async_test]
async fn outbox_list_and_retry_let_an_operator_requeue_dead_jobs() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let env = [("DATABASE_URL", url.as_str())];
    assert_eq!(run(&["migrate"], &env).0, Some(0));
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for (kind, status) in [("welcome_email", "dead"), ("welcome_email", "sent")] {
        sqlx::query(
            "INSERT INTO outbox (kind, payload, status, attempts, last_error, next_attempt_at, \
             created_at, updated_at) VALUES ($1, '{}', $2, 7, 'SMTP: 550 no\nsuch user', \
             '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        )
        .bind(kind)
        .bind(status)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let (status, text, _) = run(&["outbox", "list", "--status", "dead"], &env);
    assert_eq!(status, Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "a header and the dead job: {text}");
    assert!(
        lines[1].starts_with("1\twelcome_email\tdead\t7\t2026-01-01T00:00:00Z"),
        "{text}"
    );
    assert!(
        lines[1].ends_with("SMTP: 550 no such user"),
        "one line per job: {text}"
    );

    let (status, text, _) = run(&["outbox", "retry", "--dead"], &env);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("1 job(s) queued again"), "{text}");
    let (_, text, _) = run(&["outbox", "list", "--status", "pending"], &env);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        !text.contains("2026-01-01"),
        "due now, its clock started again: {text}"
    );

    let (status, text, _) = run(&["outbox", "retry", "999"], &env);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("no outbox job 999"), "{text}");
    let (status, _, _) = run(&["outbox", "retry"], &env);
    assert_eq!(
        status,
        Some(2),
        "an id or --dead is required (clap's usage error)"
    );
}

#[rocket::async_test]
async fn no_password_token_or_secret_ever_reaches_the_log() {
    const SECRET: &str = "jwt-secret-that-must-never-be-logged-0123";
    const FIRST: &str = "Sup3rSecretPassw0rd";
    const SECOND: &str = "An0therSecretPassw0rd";
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("roster.db").display()
    );
    let mut server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            // The most Roster logs, in the profile that serves real tokens
            // (Rocket's own debug output, which dumps request headers, is
            // never shown).
            ("ROCKET_PROFILE", "release"),
            ("ROCKET_SMTP", "{enabled=false}"),
            ("ROCKET_LOG_LEVEL", "debug"),
            ("ROCKET_JWT_SECRET", SECRET),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", server.base);
    let created = http
        .post(api("/users"))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": FIRST}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let login = server.login("alice", FIRST).await;
    let (access, refresh) = (
        login["access_token"].as_str().unwrap().to_owned(),
        login["refresh_token"].as_str().unwrap().to_owned(),
    );
    let refreshed: Value = http
        .post(api("/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    // A reused refresh token, a wrong password and a login at the token
    // endpoint (forms), a password change: the paths that log warnings and
    // errors.
    let reuse = http
        .post(api("/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 401);
    let wrong = http
        .post(api("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", SECOND),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let form: Value = http
        .post(api("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", FIRST),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access3 = form["access_token"].as_str().unwrap().to_owned();
    let changed = http
        .put(api("/users/me/password"))
        .bearer_auth(&access3)
        .json(&json!({"current_password": FIRST, "new_password": SECOND}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    let stale = http
        .get(api("/users/me"))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));

    let log = format!(
        "{}{}",
        std::fs::read_to_string(&server.log).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("server.err")).unwrap_or_default()
    );
    assert!(
        log.contains("/api/v1/auth/login"),
        "the log has the requests: {log}"
    );
    let signature = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("the first password", FIRST.to_owned()),
        ("the second password", SECOND.to_owned()),
        ("jwt_secret", SECRET.to_owned()),
        ("an access token", signature(&access)),
        ("a refreshed access token", signature(&access2)),
        ("a form login's access token", signature(&access3)),
        ("a refresh token", refresh.clone()),
        ("a rotated refresh token", refresh2.clone()),
    ] {
        if let Some(at) = log.find(&secret) {
            let start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!("{what} is in the log: {}", &log[start..end]);
        }
    }
}
