//! Rate limits, CORS and body limits (the fairings).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket::http::Status;
use serde_json::json;

use crate::helpers::{free_port, Reply, TestApp, PASSWORD};

/// A client address of this test's own, so that tests sharing one Redis do
/// not share budgets.
pub(crate) fn client() -> SocketAddr {
    let n = uuid::Uuid::new_v4().as_u128();
    SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 40000))
}

pub(crate) fn limits(
    per_minute: u32,
    login: u32,
    register: u32,
) -> impl FnOnce(Figment) -> Figment {
    move |f| {
        f.merge(("rate_limit.per_minute", per_minute))
            .merge(("rate_limit.login_per_minute", login))
            .merge(("rate_limit.register_per_minute", register))
    }
}

async fn get_from(app: &TestApp, from: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    app.request_from(Some(from), "GET", path, None, headers)
        .await
}

fn header_u64(reply: &Reply, name: &str) -> u64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", reply.headers))
        .parse()
        .unwrap()
}

#[rocket::async_test]
async fn limited_responses_carry_the_headers_and_the_429_says_when_to_retry() {
    let app = TestApp::spawn_with(limits(3, 100, 100)).await;
    let from = client();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = get_from(&app, from, "/api/v1/users", &[]).await;
        assert_eq!(
            reply.status,
            Status::Unauthorized,
            "limited routes still answer normally"
        );
        assert_eq!(header_u64(&reply, "RateLimit-Limit"), 3);
        assert!(header_u64(&reply, "RateLimit-Reset") <= 60);
        remaining.push(header_u64(&reply, "RateLimit-Remaining"));
    }
    assert_eq!(remaining, [2, 1, 0]);
    let refused = get_from(&app, from, "/api/v1/users", &[]).await;
    assert_eq!(refused.status, Status::TooManyRequests);
    assert_eq!(refused.body, json!({"detail": "Rate limit exceeded"}));
    let retry = header_u64(&refused, "Retry-After");
    assert!(
        (1..=20).contains(&retry),
        "one request back every 20 s: {retry}"
    );
    assert_eq!(header_u64(&refused, "RateLimit-Remaining"), 0);
    // Another client has its own budget; health is not limited.
    assert_eq!(
        get_from(&app, client(), "/api/v1/users", &[]).await.status,
        Status::Unauthorized
    );
    let health = get_from(&app, from, "/health/live", &[]).await;
    assert_eq!(health.status, Status::Ok);
    assert!(health.header("RateLimit-Limit").is_none());
}

#[rocket::async_test]
async fn a_throttled_registration_creates_nothing() {
    let app = TestApp::spawn_with(limits(100, 100, 2)).await;
    let from = client();
    for (i, expected) in [Status::Created, Status::Created, Status::TooManyRequests]
        .into_iter()
        .enumerate()
    {
        let body = json!({"username": format!("user{i}"), "email": format!("u{i}@example.com"), "password": PASSWORD});
        let reply = app
            .request_from(Some(from), "POST", "/api/v1/users", Some(&body), &[])
            .await;
        assert_eq!(reply.status, expected, "{}", reply.text);
        if expected == Status::Created {
            assert_eq!(
                header_u64(&reply, "RateLimit-Limit"),
                2,
                "the stricter policy is nearest exhaustion"
            );
        }
    }
    assert_eq!(
        app.login("user2", PASSWORD).await.status,
        Status::Unauthorized,
        "user2 was never created"
    );
    assert_eq!(app.login("user1", PASSWORD).await.status, Status::Ok);
}

#[rocket::async_test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = TestApp::spawn_with(limits(2, 100, 100)).await;
    let from = client();
    let spoofs = [
        [("X-Forwarded-For", "1.1.1.1"), ("X-Real-IP", "1.1.1.1")],
        [("X-Forwarded-For", "2.2.2.2"), ("X-Real-IP", "2.2.2.2")],
        [("X-Forwarded-For", "3.3.3.3"), ("X-Real-IP", "3.3.3.3")],
    ];
    let statuses: Vec<Status> = futures::future::join_all(
        spoofs
            .iter()
            .map(|headers| get_from(&app, from, "/api/v1/users", headers)),
    )
    .await
    .iter()
    .map(|r| r.status)
    .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == Status::TooManyRequests)
            .count(),
        1,
        "{statuses:?}"
    );
}

#[rocket::async_test]
async fn a_trusted_proxy_is_believed_for_the_right_most_untrusted_hop() {
    let app = TestApp::spawn_with(|f| {
        limits(1, 100, 100)(f).merge(("trusted_proxies", vec!["10.0.0.0/8", "192.168.0.1"]))
    })
    .await;
    let proxy = SocketAddr::from(([10, 9, 9, 9], 5000));
    let first = get_from(
        &app,
        proxy,
        "/api/v1/users",
        &[("X-Forwarded-For", "203.0.113.7")],
    )
    .await;
    assert_eq!(first.status, Status::Unauthorized);
    // Another client behind the same proxy has its own budget.
    let other = get_from(
        &app,
        proxy,
        "/api/v1/users",
        &[("X-Forwarded-For", "203.0.113.8")],
    )
    .await;
    assert_eq!(other.status, Status::Unauthorized);
    // The client cannot dodge its budget by prepending an address: the
    // right-most untrusted hop counts (the second proxy is trusted too).
    let spoofed = get_from(
        &app,
        proxy,
        "/api/v1/users",
        &[("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 192.168.0.1")],
    )
    .await;
    assert_eq!(spoofed.status, Status::TooManyRequests);
}

#[rocket::async_test]
async fn login_is_limited_per_username_across_addresses() {
    // Five times the per-address budget: 15 failures.
    let app = TestApp::spawn_with(limits(100, 3, 100)).await;
    app.register("victim").await;
    let mut statuses = Vec::new();
    for _ in 0..16 {
        let body = json!({"username": "VICTIM", "password": "Wrong-passw0rd"});
        let reply = app
            .request_from(
                Some(client()),
                "POST",
                "/api/v1/auth/login",
                Some(&body),
                &[],
            )
            .await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses[..15], [Status::Unauthorized; 15]);
    assert_eq!(
        statuses[15],
        Status::TooManyRequests,
        "a sixteenth address, the same account"
    );
    // Another account is not affected.
    app.register("bystander").await;
    let body = json!({"username": "bystander", "password": PASSWORD});
    let reply = app
        .request_from(
            Some(client()),
            "POST",
            "/api/v1/auth/login",
            Some(&body),
            &[],
        )
        .await;
    assert_eq!(reply.status, Status::Ok);
}

#[rocket::async_test]
async fn login_from_one_address_has_its_own_stricter_limit() {
    let app = TestApp::spawn_with(limits(100, 2, 100)).await;
    let from = client();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let body = json!({"username": format!("nobody{i}"), "password": "x"});
        statuses.push(
            app.request_from(Some(from), "POST", "/api/v1/auth/login", Some(&body), &[])
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        [
            Status::Unauthorized,
            Status::Unauthorized,
            Status::TooManyRequests
        ]
    );
}

#[rocket::async_test]
async fn the_token_endpoint_spends_the_same_login_budget() {
    let app = TestApp::spawn_with(limits(100, 2, 100)).await;
    let from = client();
    let json_login = json!({"username": "nobody", "password": "x"});
    let first = app
        .request_from(
            Some(from),
            "POST",
            "/api/v1/auth/login",
            Some(&json_login),
            &[],
        )
        .await;
    assert_eq!(first.status, Status::Unauthorized);
    let form = b"grant_type=password&username=nobody&password=x";
    let mut statuses = Vec::new();
    for path in ["/api/v1/auth/token", "//api/v1/auth/token/"] {
        let reply = app
            .req("POST", path)
            .from(from)
            .body(Some("application/x-www-form-urlencoded"), form)
            .send()
            .await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [Status::BadRequest, Status::TooManyRequests]);
}

/// A Redis server of this test's own, on a free port.
pub(crate) struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    pub(crate) fn start() -> PrivateRedis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateRedis { child, port }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_limits(url: String, per_minute: u32) -> impl FnOnce(Figment) -> Figment {
    move |f| {
        limits(per_minute, 100, 100)(f)
            .merge(("rate_limit.backend", "redis"))
            .merge(("rate_limit.redis_url", url))
    }
}

#[rocket::async_test]
async fn two_instances_on_one_redis_share_a_clients_budget() {
    // The shared Redis that CI checks; keys are per test (random client).
    let url = "redis://127.0.0.1:6379".to_owned();
    let first = TestApp::spawn_with(redis_limits(url.clone(), 4)).await;
    let second = TestApp::spawn_with(redis_limits(url, 4)).await;
    let from = client();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let app = if i % 2 == 0 { &first } else { &second };
        statuses.push(get_from(app, from, "/api/v1/users", &[]).await.status);
    }
    assert_eq!(statuses[..4], [Status::Unauthorized; 4], "{statuses:?}");
    assert_eq!(statuses[4..], [Status::TooManyRequests; 2], "{statuses:?}");
    let refused = get_from(&first, from, "/api/v1/users", &[]).await;
    assert!(header_u64(&refused, "Retry-After") >= 1);
}

#[rocket::async_test]
async fn with_redis_gone_requests_are_still_served_and_readiness_says_so() {
    let mut redis = PrivateRedis::start();
    let app = TestApp::spawn_with(redis_limits(redis.url(), 2)).await;
    let from = client();
    assert_eq!(
        get_from(&app, from, "/api/v1/users", &[]).await.status,
        Status::Unauthorized
    );
    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = get_from(&app, from, "/api/v1/users", &[]).await;
        assert_eq!(
            reply.status,
            Status::Unauthorized,
            "served (fail open): {}",
            reply.text
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, Status::Ok);
    let notes = ready.body["notes"].as_array().expect("a readiness note");
    assert!(
        notes[0].as_str().unwrap().contains("not enforced"),
        "{notes:?}"
    );
}

#[rocket::async_test]
async fn rate_limits_can_be_switched_off() {
    let app =
        TestApp::spawn_with(|f| limits(1, 1, 1)(f).merge(("rate_limit.enabled", false))).await;
    let from = client();
    for _ in 0..3 {
        let reply = get_from(&app, from, "/api/v1/users", &[]).await;
        assert_eq!(reply.status, Status::Unauthorized);
        assert!(reply.header("RateLimit-Limit").is_none());
    }
}

/// Password hashing queues for at most `bcrypt_queue_timeout`: a flood of
/// registrations gets 503 with Retry-After instead of an ever longer wait,
/// and a refused registration creates nothing.
#[rocket::async_test]
async fn a_flood_waits_for_a_password_hasher_no_longer_than_the_queue_timeout() {
    // Cost 12 is about a quarter of a second a hash; twenty at once on a few
    // cores queue far past one second.
    let app = TestApp::spawn_with(|f| {
        f.merge(("bcrypt_cost", 12))
            .merge(("bcrypt_queue_timeout", 1))
    })
    .await;
    let names: Vec<String> = (0..20).map(|i| format!("flood{i}")).collect();
    let bodies: Vec<_> = names
        .iter()
        .map(|name| {
            json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD})
        })
        .collect();
    let replies =
        futures::future::join_all(bodies.iter().map(|body| app.post("/api/v1/users", body))).await;
    let mut busy = Vec::new();
    for (name, reply) in names.iter().zip(&replies) {
        match reply.status.code {
            201 => {}
            503 => {
                assert_eq!(reply.header("Retry-After"), Some("1"), "{}", reply.text);
                assert_eq!(reply.body, json!({"detail": "Too busy, try again"}));
                busy.push(name);
            }
            other => panic!("{name}: {other} {}", reply.text),
        }
    }
    assert!(!busy.is_empty(), "the queue timed out for some");
    assert!(busy.len() < names.len(), "some were hashed");
    for name in busy {
        assert_eq!(
            app.login(name, PASSWORD).await.status,
            Status::Unauthorized,
            "{name} was not created"
        );
    }
}
