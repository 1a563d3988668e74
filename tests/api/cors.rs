//! CORS: which origins get the headers, preflights, and a configuration
//! that is refused at start.

use rocket::figment::Figment;
use rocket::http::Status;

use crate::helpers::TestApp;

fn cors(origins: &[&str], credentials: bool) -> impl FnOnce(Figment) -> Figment {
    let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
    move |f| {
        f.merge(("cors.allowed_origins", origins))
            .merge(("cors.allow_credentials", credentials))
    }
}

#[rocket::async_test]
async fn only_configured_origins_get_cors_headers_and_preflights() {
    let app = TestApp::spawn_with(cors(&["https://app.example.com"], true)).await;
    let allowed = app
        .request(
            "GET",
            "/health/live",
            None,
            &[("Origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(allowed.status, Status::Ok);
    assert_eq!(
        allowed.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed.header("Access-Control-Allow-Credentials"),
        Some("true")
    );
    assert!(allowed
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("vary") && v.contains("Origin")));

    let preflight = app
        .request(
            "OPTIONS",
            "/api/v1/users",
            None,
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "content-type, authorization",
                ),
            ],
        )
        .await;
    assert!(
        preflight.status.code < 300,
        "{:?} {}",
        preflight.status,
        preflight.text
    );
    assert_eq!(
        preflight.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    let methods = preflight
        .header("Access-Control-Allow-Methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");

    for origin in ["https://evil.example.com", "http://app.example.com"] {
        let denied = app
            .request("GET", "/health/live", None, &[("Origin", origin)])
            .await;
        assert!(
            denied.header("Access-Control-Allow-Origin").is_none(),
            "{origin}"
        );
        assert_eq!(denied.status, Status::Forbidden, "{origin}");
        assert!(denied.body["detail"].is_string(), "JSON: {}", denied.text);
        let preflight = app
            .request(
                "OPTIONS",
                "/api/v1/users",
                None,
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                ],
            )
            .await;
        assert!(preflight.header("Access-Control-Allow-Origin").is_none());
    }
    let no_origin = app.get("/health/live").await;
    assert_eq!(
        (
            no_origin.status,
            no_origin.header("Access-Control-Allow-Origin")
        ),
        (Status::Ok, None)
    );
}

#[rocket::async_test]
async fn without_cors_configuration_no_origin_is_allowed() {
    let app = TestApp::spawn().await;
    let reply = app
        .request(
            "GET",
            "/health/live",
            None,
            &[("Origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(reply.status, Status::Ok);
    assert!(reply.header("Access-Control-Allow-Origin").is_none());
}

#[rocket::async_test]
async fn a_wildcard_origin_with_credentials_is_refused_at_start() {
    let figment = roster::config::figment()
        .merge(("databases.roster.url", "sqlite::memory:"))
        .merge(("jwt_secret", crate::helpers::JWT_SECRET))
        .merge(("bcrypt_cost", 4))
        .merge(("log_level", "off"));
    let figment = cors(&["*"], true)(figment);
    let Err(err) = roster::build_rocket(figment) else {
        panic!("a wildcard with credentials must not start");
    };
    assert!(err.to_string().contains("allow_credentials"), "{err}");
    let ok = cors(&["*"], false)(
        roster::config::figment()
            .merge(("databases.roster.url", "sqlite::memory:"))
            .merge(("jwt_secret", crate::helpers::JWT_SECRET))
            .merge(("bcrypt_cost", 4))
            .merge(("log_level", "off")),
    );
    assert!(
        rocket::local::asynchronous::Client::tracked(roster::build_rocket(ok).expect("valid"))
            .await
            .is_ok()
    );
}

#[rocket::async_test]
async fn the_server_s_own_origin_is_never_refused() {
    let app = TestApp::spawn_with(cors(&["https://app.example.com"], false)).await;
    let user = serde_json::json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rd1"});
    // What a browser sends from Swagger UI at http://127.0.0.1:8000/docs.
    let own = [
        ("Host", "127.0.0.1:8000"),
        ("Origin", "http://127.0.0.1:8000"),
    ];
    let created = app
        .request("POST", "/api/v1/users", Some(&user), &own)
        .await;
    assert_eq!(created.status, Status::Created, "{}", created.text);
    assert!(created.header("Access-Control-Allow-Origin").is_none());
    assert!(created
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("vary") && v.contains("Origin")));
    let default_port = [
        ("Host", "api.example.com"),
        ("Origin", "http://api.example.com:80"),
    ];
    let reply = app
        .request("GET", "/health/live", None, &default_port)
        .await;
    assert_eq!(reply.status, Status::Ok);

    // Another port or scheme of the same host is another origin.
    for origin in ["http://127.0.0.1:8001", "https://127.0.0.1:8000"] {
        let other = [("Host", "127.0.0.1:8000"), ("Origin", origin)];
        let reply = app.request("GET", "/health/live", None, &other).await;
        assert_eq!(reply.status, Status::Forbidden, "{origin}");
    }
}

#[rocket::async_test]
async fn preflights_allow_any_header_unless_narrowed_and_responses_expose_the_documented_ones() {
    let preflight = |header: &'static str| {
        [
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", header),
        ]
    };
    let app = TestApp::spawn_with(cors(&["https://app.example.com"], false)).await;
    let reply = app
        .request(
            "OPTIONS",
            "/api/v1/users",
            None,
            &preflight("x-trace-token"),
        )
        .await;
    assert!(reply.status.code < 300, "{:?}", reply.status);
    let allowed = reply
        .header("Access-Control-Allow-Headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-trace-token"), "{allowed}");

    let reply = app
        .request(
            "GET",
            "/health/live",
            None,
            &[("Origin", "https://app.example.com")],
        )
        .await;
    let exposed = reply
        .header("Access-Control-Expose-Headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in [
        "content-disposition",
        "location",
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-request-id",
    ] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }

    let narrowed = TestApp::spawn_with(|f| {
        cors(&["https://app.example.com"], false)(f).merge((
            "cors.allowed_headers",
            vec!["Authorization", "Content-Type"],
        ))
    })
    .await;
    let reply = narrowed
        .request("OPTIONS", "/api/v1/users", None, &preflight("content-type"))
        .await;
    assert!(reply.status.code < 300, "{:?}", reply.status);
    let reply = narrowed
        .request(
            "OPTIONS",
            "/api/v1/users",
            None,
            &preflight("x-trace-token"),
        )
        .await;
    assert!(
        reply.header("Access-Control-Allow-Origin").is_none(),
        "{:?}",
        reply.headers
    );
}
