//! Hostile input: arbitrary bodies to every write route, and abusive
//! headers, never give a 5xx or a crash.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rocket::http::Status;
use serde_json::Value;

use crate::helpers::TestApp;

/// JSON values of every shape, with the field names the routes know mixed
/// in so that bodies get past the first check now and then.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("username".to_owned()),
        Just("email".to_owned()),
        Just("password".to_owned()),
        Just("age".to_owned()),
        Just("role".to_owned()),
        Just("is_active".to_owned()),
        Just("refresh_token".to_owned()),
        Just("current_password".to_owned()),
        Just("new_password".to_owned()),
        ".{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,80}".prop_map(Value::String),
        "[A-Za-z0-9]{3,12}".prop_map(Value::String),
        "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Body::Bytes),
        json_value().prop_map(Body::Json),
    ]
}

#[test]
fn any_body_to_any_write_route_is_answered_without_a_5xx() {
    let runtime = rocket::tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, bearer, user_path) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let admin = app.admin("root").await;
        let victim = app.user("victim").await;
        (app, admin.bearer(), format!("/api/v1/users/{}", victim.id))
    });
    let routes: Vec<(&str, String)> = vec![
        ("POST", "/api/v1/users".into()),
        ("PUT", user_path.clone()),
        ("PATCH", user_path),
        ("POST", "/api/v1/auth/login".into()),
        ("POST", "/api/v1/auth/token".into()),
        ("POST", "/api/v1/auth/refresh".into()),
        ("PATCH", "/api/v1/users/me".into()),
        ("PUT", "/api/v1/users/me/password".into()),
        ("POST", "/api/v1/uploads".into()),
    ];
    let content_types = prop_oneof![
        Just(Some("application/json")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("multipart/form-data; boundary=xyz")),
        Just(Some("text/plain")),
        Just(None),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(0..routes.len(), content_types, body()),
            |(route, content_type, body)| {
                let (method, path) = &routes[route];
                let bytes = match &body {
                    Body::Bytes(bytes) => bytes.clone(),
                    Body::Json(value) => value.to_string().into_bytes(),
                };
                let reply = runtime.block_on(app.send_raw(
                    method,
                    path,
                    content_type,
                    &bytes,
                    &[("Authorization", &bearer)],
                ));
                prop_assert!(
                    reply.status.code < 500,
                    "{method} {path} {content_type:?} {body:?}: {} {}",
                    reply.status,
                    reply.text
                );
                if reply.status != Status::NoContent {
                    prop_assert!(
                        reply.body.is_object() || reply.body.is_array(),
                        "not JSON: {}",
                        reply.text
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    drop(app);
}

#[rocket::async_test]
async fn oversized_headers_are_431_json() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(40 * 1024);
    let reply = app
        .request("GET", "/health/live", None, &[("X-Padding", &big)])
        .await;
    assert_eq!(reply.status, Status::RequestHeaderFieldsTooLarge);
    assert!(reply.body["detail"].is_string(), "{}", reply.text);
    let fine = "x".repeat(8 * 1024);
    assert_eq!(
        app.request("GET", "/health/live", None, &[("X-Padding", &fine)])
            .await
            .status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn a_query_string_that_is_not_utf8_is_400() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let reply = app
        .get_as(&alice, "/api/v1/users/search?query=%FF%FE")
        .await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.text);
    assert!(reply.body["detail"].as_str().unwrap().contains("UTF-8"));
    let fine = app
        .get_as(&alice, "/api/v1/users/search?query=%C3%A9")
        .await;
    assert_eq!(fine.status, Status::Ok);
}
