use rocket::http::Status;
use serde_json::json;

use rocket_db_pools::Database;

use crate::helpers::TestApp;

#[rocket::async_test]
async fn liveness_and_readiness_answer_200_with_a_working_database() {
    let app = TestApp::spawn().await;
    let live = app.get("/health/live").await;
    assert_eq!(
        (live.status, live.body),
        (Status::Ok, json!({"status": "ok", "notes": []}))
    );
    let ready = app.get("/health/ready").await;
    assert_eq!(
        (ready.status, ready.body),
        (Status::Ok, json!({"status": "ready", "notes": []}))
    );
}

#[rocket::async_test]
async fn readiness_is_503_json_while_the_database_is_closed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let db = roster::db::Db::fetch(app.client.rocket()).expect("database attached");
    db.close_all().await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, Status::ServiceUnavailable);
    assert_eq!(ready.body, json!({"detail": "Database unavailable"}));
    let users = app.get_as(&alice, "/api/v1/users").await;
    assert_eq!(users.status, Status::ServiceUnavailable);
    assert!(!users.text.contains("pool"), "no internals: {}", users.text);
    assert_eq!(users.header("Retry-After"), Some("2"), "says when to retry");
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    assert_eq!(me.status, Status::ServiceUnavailable);
    assert_eq!(me.header("Retry-After"), Some("2"), "{:?}", me.text);
}
