//! What an operator sees of the real binary: log lines (text and JSON), one
//! access line per request with the request id on every line it causes,
//! and the Prometheus metrics at `/metrics`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::server::Server;

/// Limits high enough for the test, but registration's at one a minute.
const ONE_REGISTRATION: &str =
    "{per_minute=1000000,login_per_minute=1000000,register_per_minute=1}";

fn sqlite(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("roster.db").display())
}

/// Sends what each log test needs: a 201, a 429, a 422, a 401 on a route
/// with a parameter, a 404, and a refresh-token reuse (a warning logged
/// inside the handler), each with a request id of its own.
async fn exercise(server: &Server) {
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", server.base);
    let send =
        |request: reqwest::RequestBuilder, id: &str| request.header("X-Request-Id", id).send();
    let user = json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"});
    let created = send(http.post(api("/users")).json(&user), "req-201")
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let limited = send(http.post(api("//users/")).json(&user), "req-429")
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let invalid = send(
        http.post(api("/auth/login")).json(&json!({"username": 1})),
        "req-422",
    )
    .await
    .unwrap();
    assert_eq!(invalid.status(), 422);
    let anonymous = send(http.get(api("/users/42")), "req-401").await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let missing = send(http.get(format!("{}/nowhere/42", server.base)), "req-404")
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let login = server.login("alice", "Passw0rd1").await;
    let refresh = json!({"refresh_token": login["refresh_token"]});
    let first = send(
        http.post(api("/auth/refresh")).json(&refresh),
        "req-refresh",
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 200);
    let reused = send(http.post(api("/auth/refresh")).json(&refresh), "req-reuse")
        .await
        .unwrap();
    assert_eq!(reused.status(), 401);
}

fn stop(mut server: Server) -> String {
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(30));
    std::fs::read_to_string(&server.log).unwrap()
}

#[rocket::async_test]
async fn json_logs_put_the_request_id_on_every_line_and_one_access_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path());
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("ROCKET_LOG_FORMAT", "json"),
            ("ROCKET_LOG_LEVEL", "normal"),
            ("ROCKET_RATE_LIMIT", ONE_REGISTRATION),
        ],
    )
    .await;
    exercise(&server).await;
    let log = stop(server);

    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: not JSON: {line}"))
        })
        .collect();
    for line in &lines {
        let at = line["timestamp"].as_str().unwrap_or_default();
        assert!(
            time::OffsetDateTime::parse(at, &Rfc3339).is_ok() && at.ends_with('Z'),
            "an RFC 3339 UTC timestamp: {line}"
        );
        assert!(
            line["level"].is_string() && line["message"].is_string(),
            "{line}"
        );
        assert!(
            !line.to_string().contains("log.file"),
            "no bookkeeping of the log crate: {line}"
        );
        let target = line["target"].as_str().unwrap_or_default();
        assert!(
            !target.starts_with("rocket"),
            "Rocket's own lines are not shown: {line}"
        );
    }
    assert!(
        lines.iter().any(|l| l["target"] == "roster::startup"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("listening on http://127.0.0.1:")),
        "the start-up line: {log}"
    );

    let by_id = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["request_id"] == id || l["span"]["request_id"] == id)
            .collect()
    };
    let access = |id: &str| -> &Value {
        let all = by_id(id);
        let access: Vec<_> = all
            .iter()
            .filter(|l| l["target"] == "roster::access")
            .collect();
        assert_eq!(access.len(), 1, "one access line for {id}: {all:?}");
        access[0]
    };
    for (id, method, path, route, status) in [
        ("req-201", "POST", "/api/v1/users", "/api/v1/users", 201),
        // The refusal names the route the request was for, not the
        // internal one that answered it.
        ("req-429", "POST", "/api/v1//users/", "/api/v1/users", 429),
        (
            "req-422",
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login",
            422,
        ),
        (
            "req-401",
            "GET",
            "/api/v1/users/42",
            "/api/v1/users/<user_id>",
            401,
        ),
        ("req-404", "GET", "/nowhere/42", "unmatched", 404),
    ] {
        let line = access(id);
        assert_eq!(line["method"], method, "{line}");
        assert_eq!(line["path"], path, "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert!(
            line["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
        assert_eq!(line["level"], "INFO", "{line}");
        // Nothing else for a request that only answered.
        assert_eq!(by_id(id).len(), 1, "{id}: {:?}", by_id(id));
    }
    let reuse = by_id("req-reuse");
    assert_eq!(reuse.len(), 2, "a warning and the access line: {reuse:?}");
    let warning = reuse
        .iter()
        .find(|l| l["target"] != "roster::access")
        .unwrap();
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("session revoked"),
        "{warning}"
    );
    eprintln!("the JSON access line of a 422: {}", access("req-422"));
}

#[rocket::async_test]
async fn text_logs_have_timestamps_levels_and_request_ids_at_every_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path());
    // Release's level, "critical": warnings, errors, the start-up line and
    // access lines.
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("ROCKET_PROFILE", "release"),
            ("ROCKET_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("ROCKET_SMTP", "{enabled=false}"),
            ("ROCKET_LOG_LEVEL", "critical"),
            ("ROCKET_RATE_LIMIT", ONE_REGISTRATION),
        ],
    )
    .await;
    exercise(&server).await;
    let log = stop(server);
    for line in log.lines() {
        let (at, rest) = line.split_once(' ').unwrap_or_default();
        assert!(
            time::OffsetDateTime::parse(at, &Rfc3339).is_ok() && at.ends_with('Z'),
            "starts with an RFC 3339 UTC timestamp: {line}"
        );
        let level = rest.trim_start().split(' ').next().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO"].contains(&level),
            "then its level: {line}"
        );
    }
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    let line = |needle: &str| -> Vec<&str> { log.lines().filter(|l| l.contains(needle)).collect() };
    let access = line("request_id=req-429");
    assert_eq!(access.len(), 1, "{log}");
    for field in [
        "method=POST",
        "path=/api/v1//users/",
        "route=/api/v1/users",
        "status=429",
        "client=127.0.0.1",
        "duration_ms=",
    ] {
        assert!(access[0].contains(field), "{field} in {}", access[0]);
    }
    let reuse = line("req-reuse");
    assert_eq!(reuse.len(), 2, "{log}");
    assert!(
        reuse
            .iter()
            .any(|l| l.contains("WARN") && l.contains("session revoked")),
        "the warning carries the request id: {reuse:?}"
    );
}

async fn get(url: &str, forwarded_for: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(hop) = forwarded_for {
        request = request.header("X-Forwarded-For", hop);
    }
    let reply = request.send().await.unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

#[rocket::async_test]
async fn metrics_count_requests_by_route_template_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path());
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("ROCKET_RATE_LIMIT", ONE_REGISTRATION),
        ],
    )
    .await;
    exercise(&server).await;
    let (status, text) = get(&format!("{}/metrics", server.base), None).await;
    assert_eq!(status, 200, "{text}");

    for series in [
        r#"roster_http_requests_total{method="GET",route="/api/v1/users/<user_id>",status="401"} 1"#,
        r#"roster_http_requests_total{method="POST",route="/api/v1/users",status="201"} 1"#,
        r#"roster_http_requests_total{method="POST",route="/api/v1/users",status="429"} 1"#,
        r#"roster_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"roster_http_request_duration_seconds_count{method="GET",route="/api/v1/users/<user_id>"} 1"#,
        r#"roster_http_request_duration_seconds_bucket{method="GET",route="/api/v1/users/<user_id>",le="+Inf"} 1"#,
        r#"roster_rate_limited_total{policy="register"} 1"#,
        r#"roster_rate_limited_total{policy="login"} 0"#,
        r#"roster_password_hash_waiting 0"#,
        // SQLite reads directly: nothing batched.
        r#"roster_db_batched_reads_total 0"#,
        r#"roster_db_batch_statements_total 0"#,
        r#"roster_db_pool_connections{state="idle"} "#,
        r#"roster_db_pool_connections{state="in_use"} "#,
        r#"roster_outbox_jobs{status="dead"} 0"#,
        r#"roster_outbox_jobs{status="pending"} "#,
        r#"roster_build_info{commit=""#,
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
    assert!(
        !text.contains("/api/v1/users/42") && !text.contains("/nowhere"),
        "routes are templates, never raw paths:\n{text}"
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (tests/run installs Debian's prometheus package where missing)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[rocket::async_test]
async fn metrics_are_for_allowed_client_addresses_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path());
    // Behind a local proxy, the client is the forwarded address: a
    // stranger's request through the proxy is not let in by the default
    // loopback allowance.
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("ROCKET_TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
            (
                "ROCKET_METRICS",
                "{allow=[\"127.0.0.0/8\", \"10.0.0.0/8\"]}",
            ),
        ],
    )
    .await;
    let metrics = format!("{}/metrics", server.base);
    assert_eq!(get(&metrics, None).await.0, 200);
    assert_eq!(get(&metrics, Some("10.1.2.3")).await.0, 200);
    let (status, body) = get(&metrics, Some("203.0.113.9")).await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["detail"], "Not found");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path());
    for setting in ["{allow=[\"10.0.0.0/8\"]}", "{enabled=false}"] {
        let server = Server::start(
            dir.path(),
            &[("DATABASE_URL", &url), ("ROCKET_METRICS", setting)],
        )
        .await;
        assert_eq!(
            get(&format!("{}/metrics", server.base), None).await.0,
            404,
            "{setting}"
        );
    }
}
