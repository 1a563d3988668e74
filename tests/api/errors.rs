use rocket::http::Status;
use serde_json::json;

use crate::helpers::TestApp;

#[rocket::async_test]
async fn an_unknown_route_is_json_404() {
    let app = TestApp::spawn().await;
    let reply = app.get("/nope").await;
    assert_eq!(reply.status, Status::NotFound);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(reply.body, json!({"detail": "Not found"}));
}

#[rocket::async_test]
async fn a_known_path_with_an_unknown_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let reply = app.request("POST", "/health/live", None, &[]).await;
    assert_eq!(reply.status, Status::MethodNotAllowed);
    assert_eq!(reply.header("Allow"), Some("GET, HEAD"));
    assert!(reply.body["detail"].is_string());

    let users = app.request("DELETE", "/api/v1/users", None, &[]).await;
    assert_eq!(users.status, Status::MethodNotAllowed);
    assert_eq!(users.header("Allow"), Some("GET, HEAD, POST"));

    // Static paths beside a dynamic one (`/users/<user_id>`) are not taken
    // for an id.
    let me = app
        .request("PUT", "/api/v1/users/me", Some(&json!({})), &[])
        .await;
    assert_eq!(me.status, Status::MethodNotAllowed, "{}", me.text);
    assert_eq!(me.header("Allow"), Some("DELETE, GET, HEAD, PATCH"));
    let search = app
        .request("DELETE", "/api/v1/users/search?query=a", None, &[])
        .await;
    assert_eq!(search.status, Status::MethodNotAllowed);
    assert_eq!(search.header("Allow"), Some("GET, HEAD"));
    let head = app.request("HEAD", "/health/live", None, &[]).await;
    assert_eq!(head.status, Status::Ok);
}

#[rocket::async_test]
async fn the_internal_rejection_route_is_not_reachable_directly() {
    let app = TestApp::spawn().await;
    for method in ["GET", "POST", "DELETE"] {
        let reply = app.request(method, "/__roster/reject", None, &[]).await;
        assert_eq!(reply.status, Status::NotFound, "{method}");
        assert_eq!(reply.body, json!({"detail": "Not found"}));
    }
}

#[rocket::async_test]
async fn a_non_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = app.post_raw("/api/v1/users", content_type, b"{}").await;
        assert_eq!(
            reply.status,
            Status::UnsupportedMediaType,
            "{content_type:?}"
        );
        assert!(reply.body["detail"].is_string(), "{}", reply.text);
    }
}

#[rocket::async_test]
async fn malformed_json_is_422_json_invalid() {
    let app = TestApp::spawn().await;
    for body in [&b"{"[..], b"{\"username\": }", b"", b"\xff\xfe", b"{} {}"] {
        let reply = app
            .post_raw("/api/v1/users", Some("application/json"), body)
            .await;
        assert_eq!(reply.status, Status::UnprocessableEntity, "{body:?}");
        assert_eq!(
            reply.field_errors(),
            vec![("body".into(), "json_invalid".into())],
            "{body:?}"
        );
    }
}

#[rocket::async_test]
async fn a_json_body_over_the_limit_is_413_json() {
    let app = TestApp::spawn_with(|f| f.merge(("limits.json", "1KiB"))).await;
    let big = json!({"username": "alice", "email": "a@example.com", "password": "x".repeat(2000)});
    let reply = app.post("/api/v1/users", &big).await;
    assert_eq!(reply.status, Status::PayloadTooLarge);
    assert!(
        reply.body["detail"].as_str().unwrap().contains("limit"),
        "{}",
        reply.text
    );
    let login = app.login("alice", "Passw0rd1").await;
    assert_eq!(login.status, Status::Unauthorized, "nothing was created");
}

#[rocket::async_test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let app = TestApp::spawn().await;
    let echoed = app
        .request(
            "GET",
            "/health/live",
            None,
            &[("X-Request-Id", "abc-123_x.y")],
        )
        .await;
    assert_eq!(echoed.header("X-Request-Id"), Some("abc-123_x.y"));
    assert_eq!(echoed.header("X-Content-Type-Options"), Some("nosniff"));
    assert!(echoed.header("X-Frame-Options").is_some());

    let replaced = app
        .request("GET", "/nope", None, &[("X-Request-Id", "bad id<script>")])
        .await;
    let id = replaced.header("X-Request-Id").expect("generated id");
    assert!(!id.is_empty() && id != "bad id<script>");

    let generated = app.get("/health/live").await;
    let first = generated.header("X-Request-Id").unwrap().to_owned();
    let second = app
        .get("/health/live")
        .await
        .header("X-Request-Id")
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
}

/// Rocket would turn a POST form whose first field is `_method=DELETE` into
/// a DELETE: a cross-site form could then delete. The method stays POST.
#[rocket::async_test]
async fn a_method_form_field_never_changes_the_method() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let bob = app.user("bob").await;
    let path = format!("/api/v1/users/{}", bob.id);
    for method in ["DELETE", "PUT", "PATCH"] {
        let reply = app
            .req("POST", &path)
            .bearer(&admin)
            .body(
                Some("application/x-www-form-urlencoded"),
                format!("_method={method}&username=x").as_bytes(),
            )
            .send()
            .await;
        assert_eq!(
            reply.status,
            Status::MethodNotAllowed,
            "{method}: {}",
            reply.text
        );
    }
    assert_eq!(
        app.get_as(&admin, &path).await.status,
        Status::Ok,
        "bob is still there"
    );
}
