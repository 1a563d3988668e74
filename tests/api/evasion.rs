//! Attacks on the rate limits: other spellings of a limited path, one
//! address trying to lock a user out, and case games with the username.
//! Each runs on both limiter backends (memory, and the shared Redis that CI
//! checks, with client addresses of the test's own).

use std::net::SocketAddr;

use rocket::figment::Figment;
use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};
use crate::limits::{client, PrivateRedis};

/// A username no other run uses (budgets per username live in Redis too).
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Redis,
}

const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Redis];

fn limits(
    backend: Backend,
    per_minute: u32,
    login: u32,
    register: u32,
) -> impl FnOnce(Figment) -> Figment {
    move |f| {
        let f = crate::limits::limits(per_minute, login, register)(f);
        match backend {
            Backend::Memory => f,
            Backend::Redis => f
                .merge(("rate_limit.backend", "redis"))
                .merge(("rate_limit.redis_url", "redis://127.0.0.1:6379")),
        }
    }
}

/// `/api/v1/auth/login` as a client may spell it and Rocket still route it:
/// doubled, leading and trailing slashes, percent-encoded letters.
fn spellings(path: &str) -> Vec<String> {
    let encode_first = |segment: &str| format!("%{:02X}{}", segment.as_bytes()[0], &segment[1..]);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut out = vec![
        path.to_owned(),
        format!("/{path}"),
        format!("{path}/"),
        format!("{path}//"),
        format!("//{}//", segments.join("///")),
        path.replacen('/', "//", 2),
    ];
    for i in 0..segments.len() {
        let mut doubled = segments.clone();
        let spaced = format!("/{}", doubled[i]);
        doubled[i] = &spaced;
        out.push(format!("/{}", doubled.join("/")));
        let mut encoded: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        encoded[i] = encode_first(segments[i]);
        out.push(format!("/{}", encoded.join("/")));
    }
    let all_encoded: Vec<String> = segments
        .iter()
        .map(|s| s.bytes().map(|b| format!("%{b:02x}")).collect())
        .collect();
    out.push(format!("/{}", all_encoded.join("/")));
    out
}

async fn post_from(app: &TestApp, from: SocketAddr, path: &str, body: &Value) -> Status {
    app.request_from(Some(from), "POST", path, Some(body), &[])
        .await
        .status
}

#[rocket::async_test]
async fn every_spelling_of_the_login_path_spends_the_login_budget() {
    for backend in BACKENDS {
        let app = TestApp::spawn_with(limits(backend, 1000, 2, 1000)).await;
        // A name per attempt, so that only the per-address budget is at play.
        let guess = || json!({"username": unique("nobody"), "password": "Wrong-passw0rd"});
        for spelling in spellings("/api/v1/auth/login") {
            let from = client();
            let statuses = [
                post_from(&app, from, &spelling, &guess()).await,
                post_from(&app, from, &spelling, &guess()).await,
                post_from(&app, from, &spelling, &guess()).await,
            ];
            assert_eq!(
                statuses,
                [
                    Status::Unauthorized,
                    Status::Unauthorized,
                    Status::TooManyRequests
                ],
                "{backend:?}: {spelling}"
            );
        }
        // One address mixing spellings shares one budget.
        let from = client();
        let bodies: Vec<Value> = spellings("/api/v1/auth/login")
            .iter()
            .map(|_| guess())
            .collect();
        let mixed: Vec<Status> = futures::future::join_all(
            spellings("/api/v1/auth/login")
                .iter()
                .zip(&bodies)
                .map(|(spelling, body)| post_from(&app, from, spelling, body)),
        )
        .await;
        let through = mixed.iter().filter(|s| **s != Status::TooManyRequests);
        assert_eq!(through.count(), 2, "{backend:?}: {mixed:?}");
    }
}

#[rocket::async_test]
async fn every_spelling_of_registration_and_of_other_routes_is_limited() {
    for backend in BACKENDS {
        let app = TestApp::spawn_with(limits(backend, 3, 1000, 2)).await;
        for spelling in spellings("/api/v1/users") {
            let from = client();
            let mut statuses = Vec::new();
            for _ in 0..3 {
                let body = json!({
                    "username": unique("u"),
                    "email": format!("{}@example.com", unique("e")),
                    "password": PASSWORD,
                });
                statuses.push(post_from(&app, from, &spelling, &body).await);
            }
            assert_eq!(
                statuses,
                [Status::Created, Status::Created, Status::TooManyRequests],
                "{backend:?}: POST {spelling}"
            );
            // The general limit (3) on a read, from a fresh address.
            let from = client();
            let mut statuses = Vec::new();
            for _ in 0..4 {
                let reply = app
                    .request_from(Some(from), "GET", &spelling, None, &[])
                    .await;
                statuses.push(reply.status);
            }
            assert_eq!(
                statuses,
                [
                    Status::Unauthorized,
                    Status::Unauthorized,
                    Status::Unauthorized,
                    Status::TooManyRequests
                ],
                "{backend:?}: GET {spelling}"
            );
        }
    }
}

/// The scripted attack: 200 guesses at one account from one address,
/// through every spelling of the path. Only the per-address budget reaches
/// the password check, and the real user, elsewhere, signs in throughout.
#[rocket::async_test]
async fn two_hundred_guesses_from_one_address_reach_the_password_check_five_times() {
    for backend in BACKENDS {
        let app = TestApp::spawn_with(limits(backend, 1000, 5, 1000)).await;
        let victim = unique("victim");
        app.register(&victim).await;
        let attacker = client();
        let spellings = spellings("/api/v1/auth/login");
        let mut checked = 0;
        for attempt in 0..200 {
            let spelling = &spellings[attempt % spellings.len()];
            let guess = json!({"username": victim, "password": format!("Guess{attempt}x")});
            let status = post_from(&app, attacker, spelling, &guess).await;
            if status == Status::Unauthorized {
                checked += 1;
            } else {
                assert_eq!(status, Status::TooManyRequests, "{backend:?}: {spelling}");
            }
            if attempt % 50 == 25 {
                let real = json!({"username": victim, "password": PASSWORD});
                let status = post_from(&app, client(), "/api/v1/auth/login", &real).await;
                assert_eq!(status, Status::Ok, "{backend:?}: the user signs in");
            }
        }
        assert_eq!(checked, 5, "{backend:?}: the per-address budget only");
    }
}

#[rocket::async_test]
async fn only_failed_logins_count_against_a_username() {
    for backend in BACKENDS {
        // login_per_minute = 1: one try per address, five failures per name.
        let app = TestApp::spawn_with(limits(backend, 1000, 1, 1000)).await;
        let name = unique("alice");
        app.register(&name).await;
        let right = json!({"username": name, "password": PASSWORD});
        for _ in 0..8 {
            let status = post_from(&app, client(), "/api/v1/auth/login", &right).await;
            assert_eq!(status, Status::Ok, "{backend:?}: successes are free");
        }
        // Failures spelled in any ASCII case share one budget.
        for case in 0..5 {
            let spelled: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| match (i + case) % 2 {
                    0 => c.to_ascii_uppercase(),
                    _ => c,
                })
                .collect();
            let wrong = json!({"username": spelled, "password": "Wrong-passw0rd"});
            let status = post_from(&app, client(), "/api/v1/auth/login", &wrong).await;
            assert_eq!(status, Status::Unauthorized, "{backend:?}: {spelled}");
        }
        let status = post_from(&app, client(), "/api/v1/auth/login", &right).await;
        assert_eq!(
            status,
            Status::TooManyRequests,
            "{backend:?}: five failures from five addresses spend the name's budget"
        );
    }
}

#[rocket::async_test]
async fn a_username_with_a_non_ascii_letter_matches_no_user() {
    let app = TestApp::spawn().await;
    app.register("kate").await;
    app.register("tim").await;
    // U+212A KELVIN SIGN and U+0130 LATIN CAPITAL LETTER I WITH DOT ABOVE
    // lower-case to `k` and `i` in Unicode.
    for name in ["\u{212A}ate", "t\u{130}m", "T\u{130}M"] {
        let body = json!({"username": name, "password": PASSWORD});
        let reply = app.post("/api/v1/auth/login", &body).await;
        assert_eq!(reply.status, Status::Unauthorized, "{name}: {}", reply.text);
    }
    assert_eq!(app.login("KATE", PASSWORD).await.status, Status::Ok);
}

/// A stolen session is no password oracle: a wrong current password is 400
/// and the sixth in 15 minutes is 429, the right one included; right ones
/// do not count.
#[rocket::async_test]
async fn wrong_current_passwords_are_throttled_per_user() {
    for backend in BACKENDS {
        // Budgets are per user id, and every test database has a user 1: a
        // Redis of this test's own keeps other runs' budgets out.
        let redis = PrivateRedis::start();
        let url = redis.url();
        let app = TestApp::spawn_with(move |f| {
            limits(backend, 1000, 1000, 1000)(f).merge(("rate_limit.redis_url", url))
        })
        .await;
        let name = unique("alice");
        let alice = app.user(&name).await;
        let change =
            |current: &str, new: &str| json!({"current_password": current, "new_password": new});
        let path = "/api/v1/users/me/password";
        // A right one first, then back: neither counts.
        let mut password = PASSWORD.to_owned();
        let mut session = alice.clone();
        for next in ["N3w-password", "Th1rd-password"] {
            let reply = app.put_as(&session, path, &change(&password, next)).await;
            assert_eq!(
                reply.status,
                Status::NoContent,
                "{backend:?}: {}",
                reply.text
            );
            password = next.to_owned();
            session = app.sign_in_with(&name, &password).await;
        }
        for attempt in 0..5 {
            let reply = app
                .put_as(
                    &session,
                    path,
                    &change(&format!("Wrong{attempt}pass"), "N3w-password"),
                )
                .await;
            assert_eq!(
                reply.status,
                Status::BadRequest,
                "{backend:?}: {}",
                reply.text
            );
        }
        for current in ["Wrong9pass", password.as_str()] {
            let reply = app
                .put_as(&session, path, &change(current, "N3w-password"))
                .await;
            assert_eq!(reply.status, Status::TooManyRequests, "{backend:?}");
            assert!(reply.header("Retry-After").is_some());
        }
        assert_eq!(
            app.get_as(&session, "/api/v1/users/me").await.status,
            Status::Ok,
            "{backend:?}: the session still works"
        );
        // Another user is not affected.
        let bob = app.user(&unique("bob")).await;
        let reply = app
            .put_as(&bob, path, &change("Wrong1pass", "N3w-password"))
            .await;
        assert_eq!(reply.status, Status::BadRequest, "{backend:?}");
    }
}

/// Behind a trusted proxy, `X-Forwarded-For` entries with ports name their
/// clients (they fell back to the proxy's own address, one budget for all).
#[rocket::async_test]
async fn forwarded_addresses_with_ports_are_their_clients() {
    for backend in BACKENDS {
        let proxy = client();
        let proxy_ip = proxy.ip().to_string();
        let app = TestApp::spawn_with(move |f| {
            limits(backend, 2, 1000, 1000)(f).merge(("trusted_proxies", vec![proxy_ip]))
        })
        .await;
        let n = uuid::Uuid::new_v4().as_u128();
        let v4 = format!("172.{}.{}.{}", (n >> 8) as u8, (n >> 16) as u8, n as u8);
        let v6 = format!("[2001:db8:{:x}::7]", n as u16);
        let app = &app;
        let get = |forwarded: String| async move {
            app.request_from(
                Some(proxy),
                "GET",
                "/api/v1/users",
                None,
                &[("X-Forwarded-For", &forwarded)],
            )
            .await
            .status
        };
        assert_eq!(get(format!("{v4}:1111")).await, Status::Unauthorized);
        assert_eq!(get(format!("{v4}:2222")).await, Status::Unauthorized);
        assert_eq!(
            get(format!("{v6}:3333")).await,
            Status::Unauthorized,
            "{backend:?}: another client, its own budget"
        );
        assert_eq!(
            get(format!("{v4}:4444")).await,
            Status::TooManyRequests,
            "{backend:?}: one client whatever its port"
        );
    }
}

/// An IPv6 client is counted per /64: a host holds a whole one.
#[rocket::async_test]
async fn ipv6_clients_share_the_budget_of_their_64() {
    for backend in BACKENDS {
        let app = TestApp::spawn_with(limits(backend, 2, 1000, 1000)).await;
        let n = uuid::Uuid::new_v4().as_u128() as u16;
        let from = |net: u16, host: u16| -> SocketAddr {
            format!("[2001:db8:{n:x}:{net:x}::{host:x}]:40000")
                .parse()
                .unwrap()
        };
        let app = &app;
        let get = |addr: SocketAddr| async move {
            app.request_from(Some(addr), "GET", "/api/v1/users", None, &[])
                .await
                .status
        };
        assert_eq!(get(from(1, 1)).await, Status::Unauthorized);
        assert_eq!(get(from(1, 2)).await, Status::Unauthorized);
        assert_eq!(
            get(from(1, 3)).await,
            Status::TooManyRequests,
            "{backend:?}: the third address of one /64"
        );
        assert_eq!(
            get(from(2, 1)).await,
            Status::Unauthorized,
            "{backend:?}: another /64"
        );
    }
}
