//! The signed-in user's own profile.

use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::TestApp;

#[rocket::async_test]
async fn me_shows_and_changes_ones_own_profile_but_not_the_role() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    assert_eq!(
        (me.status, me.body["username"].as_str()),
        (Status::Ok, Some("alice"))
    );
    let changed = app
        .patch_as(
            &alice,
            "/api/v1/users/me",
            &json!({"age": 33, "email": "NEW@example.com"}),
        )
        .await;
    assert_eq!(changed.status, Status::Ok, "{}", changed.text);
    assert_eq!(
        (changed.body["age"].as_i64(), changed.body["email"].as_str()),
        (Some(33), Some("new@example.com"))
    );
    let role = app
        .patch_as(&alice, "/api/v1/users/me", &json!({"role": "admin"}))
        .await;
    assert_eq!(
        role.field_errors(),
        vec![("body.role".into(), "extra_forbidden".into())]
    );
    let taken = app
        .patch_as(&alice, "/api/v1/users/me", &json!({"username": "BOB"}))
        .await;
    assert_eq!(taken.status, Status::Conflict);
    let cleared = app
        .patch_as(&alice, "/api/v1/users/me", &json!({"age": null}))
        .await;
    assert_eq!(cleared.body["age"], Value::Null);
    assert_eq!(
        app.get("/api/v1/users/me").await.status,
        Status::Unauthorized
    );
}
