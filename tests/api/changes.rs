//! Changing users: replacing and patching profiles, deleting, and what
//! only an admin may change.

use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};
use crate::users::ids;

#[rocket::async_test]
async fn put_replaces_the_profile_and_clears_an_omitted_age() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/api/v1/users",
            &json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": 30}),
        )
        .await;
    let alice = app.sign_in("alice").await;
    let path = format!("/api/v1/users/{}", alice.id);
    let reply = app
        .put_as(
            &alice,
            &path,
            &json!({"username": "Alicia", "email": "Alicia@Example.com"}),
        )
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(reply.body["username"], "Alicia");
    assert_eq!(reply.body["email"], "alicia@example.com");
    assert_eq!(reply.body["age"], Value::Null);
    assert_eq!(reply.body["created_at"], created.body["created_at"]);
    assert_eq!(app.get_as(&alice, &path).await.body, reply.body);
}

#[rocket::async_test]
async fn put_errors_are_404_409_and_422() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let path = format!("/api/v1/users/{}", alice.id);

    let missing = app
        .put_as(
            &admin,
            "/api/v1/users/999",
            &json!({"username": "zed", "email": "z@example.com"}),
        )
        .await;
    assert_eq!(missing.status, Status::NotFound);

    let taken = app
        .put_as(
            &alice,
            &path,
            &json!({"username": "BOB", "email": "a@example.com"}),
        )
        .await;
    assert_eq!(taken.status, Status::Conflict);

    let incomplete = app
        .put_as(&alice, &path, &json!({"username": "alice"}))
        .await;
    assert_eq!(
        incomplete.field_errors(),
        vec![("body.email".into(), "missing".into())]
    );

    let with_password = app
        .put_as(
            &alice,
            &path,
            &json!({"username": "alice", "email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        with_password.field_errors(),
        vec![("body.password".into(), "extra_forbidden".into())]
    );

    assert_eq!(app.get_as(&alice, &path).await.body["username"], "alice");
}

#[rocket::async_test]
async fn patch_changes_only_what_it_names() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let created = app
        .post(
            "/api/v1/users",
            &json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": 30}),
        )
        .await;
    let alice = app.sign_in("alice").await;
    let path = format!("/api/v1/users/{}", alice.id);

    let nothing = app.patch_as(&alice, &path, &json!({})).await;
    assert_eq!(nothing.status, Status::Ok);
    // Signing in set last_login_at; nothing else may differ.
    let mut before = created.body.clone();
    before["last_login_at"] = nothing.body["last_login_at"].clone();
    assert!(nothing.body["last_login_at"].is_string());
    assert_eq!(nothing.body, before, "{{}} changes nothing");

    let renamed = app
        .patch_as(&alice, &path, &json!({"username": "Alicia"}))
        .await;
    assert_eq!(renamed.body["username"], "Alicia");
    assert_eq!(renamed.body["email"], "a@example.com");
    assert_eq!(renamed.body["age"], 30);

    let cleared = app.patch_as(&alice, &path, &json!({"age": null})).await;
    assert_eq!(cleared.body["age"], Value::Null);
    assert_eq!(cleared.body["username"], "Alicia");

    let promoted = app
        .patch_as(&admin, &path, &json!({"age": 41, "role": "admin"}))
        .await;
    assert_eq!(
        (
            promoted.body["age"].as_i64(),
            promoted.body["role"].as_str()
        ),
        (Some(41), Some("admin"))
    );
}

#[rocket::async_test]
async fn patch_errors_are_404_409_and_422() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let path = format!("/api/v1/users/{}", alice.id);

    assert_eq!(
        app.patch_as(&admin, "/api/v1/users/999", &json!({"age": 3}))
            .await
            .status,
        Status::NotFound
    );
    assert_eq!(
        app.patch_as(&alice, &path, &json!({"email": "BOB@example.com"}))
            .await
            .status,
        Status::Conflict
    );

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"username": null}), "body.username", "type_error"),
        (
            json!({"username": "x"}),
            "body.username",
            "string_too_short",
        ),
        (json!({"age": 500}), "body.age", "less_than_equal"),
        (json!({"role": "superuser"}), "body.role", "value_error"),
        (json!({"is_active": "yes"}), "body.is_active", "type_error"),
        (
            json!({"password": "weak"}),
            "body.password",
            "string_too_short",
        ),
        (json!({"id": 5}), "body.id", "extra_forbidden"),
    ];
    for (body, field, kind) in cases {
        let reply = app.patch_as(&admin, &path, &body).await;
        assert_eq!(reply.status, Status::UnprocessableEntity, "{body}");
        assert_eq!(
            reply.field_errors(),
            vec![(field.to_owned(), kind.to_owned())],
            "{body}"
        );
    }
    assert_eq!(app.get_as(&alice, &path).await.body["username"], "alice");
}

#[rocket::async_test]
async fn a_user_may_change_only_themself_and_not_their_role_status_or_password() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bob_path = format!("/api/v1/users/{}", bob.id);
    let profile = json!({"username": "mallory", "email": "m@example.com"});
    let forbidden = [
        app.put_as(&alice, &bob_path, &profile).await,
        app.patch_as(&alice, &bob_path, &json!({"age": 9})).await,
        app.delete_as(&alice, &bob_path).await,
        // Another user's id answers 403 whether or not it exists.
        app.put_as(&alice, "/api/v1/users/999999", &profile).await,
        app.patch_as(&alice, "/api/v1/users/999999", &json!({"age": 9}))
            .await,
        app.delete_as(&alice, "/api/v1/users/999999").await,
    ];
    for reply in forbidden {
        assert_eq!(reply.status, Status::Forbidden, "{}", reply.text);
        assert!(reply.body["detail"].is_string());
    }
    let alice_path = format!("/api/v1/users/{}", alice.id);
    for body in [
        json!({"role": "admin"}),
        json!({"is_active": false}),
        json!({"password": "N3wPassword"}),
    ] {
        let reply = app.patch_as(&alice, &alice_path, &body).await;
        assert_eq!(reply.status, Status::Forbidden, "{body}");
    }
    let me = app.get_as(&alice, &alice_path).await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["is_active"].as_bool()),
        (Some("user"), Some(true))
    );
    assert_eq!(app.get_as(&bob, &bob_path).await.body["username"], "bob");
}

#[rocket::async_test]
async fn inactive_users_are_visible_to_admins_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let path = format!("/api/v1/users/{}", alice.id);
    assert_eq!(
        app.patch_as(&admin, &path, &json!({"is_active": false}))
            .await
            .status,
        Status::Ok
    );
    assert_eq!(app.get_as(&bob, &path).await.status, Status::NotFound);
    let seen = app.get_as(&admin, &path).await;
    assert_eq!(
        (seen.status, seen.body["is_active"].as_bool()),
        (Status::Ok, Some(false))
    );
    // v1's list shows active users only, to everyone.
    assert!(!ids(&app.get_as(&admin, "/api/v1/users").await).contains(&alice.id));
}

#[rocket::async_test]
async fn delete_removes_the_user_and_their_sessions() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let path = format!("/api/v1/users/{}", alice.id);
    let reply = app.delete_as(&alice, &path).await;
    assert_eq!(reply.status, Status::NoContent);
    assert!(reply.text.is_empty());
    assert_eq!(app.get_as(&bob, &path).await.status, Status::NotFound);
    app.assert_signed_out(&alice).await;
    // The name is free again, and the new account gets a new id.
    let again = app.register("alice").await["id"].as_i64().unwrap();
    assert_ne!(again, alice.id, "ids are never reused");
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn an_admin_may_delete_others_and_a_missing_id_is_404() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let path = format!("/api/v1/users/{}", alice.id);
    assert_eq!(app.delete_as(&admin, &path).await.status, Status::NoContent);
    assert_eq!(app.delete_as(&admin, &path).await.status, Status::NotFound);
}

#[rocket::async_test]
async fn the_last_active_admin_can_be_neither_deleted_demoted_nor_deactivated() {
    let app = TestApp::spawn().await;
    let root = app.admin("root").await;
    let path = format!("/api/v1/users/{}", root.id);
    for (method, body) in [
        ("DELETE", None),
        ("PATCH", Some(json!({"role": "user"}))),
        ("PATCH", Some(json!({"is_active": false}))),
    ] {
        let reply = app.call(&root, method, &path, body.as_ref()).await;
        assert_eq!(
            reply.status,
            Status::Conflict,
            "{method} {body:?}: {}",
            reply.text
        );
    }
    let still = app.get_as(&root, &path).await;
    assert_eq!(
        (
            still.body["role"].as_str(),
            still.body["is_active"].as_bool()
        ),
        (Some("admin"), Some(true))
    );

    // With a second admin the first may step down, and then the second is the last.
    let second = app.admin("second").await;
    assert_eq!(
        app.patch_as(&root, &path, &json!({"role": "user"}))
            .await
            .status,
        Status::Ok
    );
    let last = format!("/api/v1/users/{}", second.id);
    assert_eq!(app.delete_as(&second, &last).await.status, Status::Conflict);
}
