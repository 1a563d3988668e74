use futures::future::join_all;
use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};

fn registration(username: &str, email: &str) -> Value {
    json!({"username": username, "email": email, "password": PASSWORD})
}

fn ids(reply: &crate::helpers::Reply) -> Vec<i64> {
    reply
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", reply.text))
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

#[rocket::async_test]
async fn registration_returns_201_with_location_and_the_user_without_secrets() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/api/v1/users",
            &json!({"username": "Alice", "email": "Alice@Example.COM", "password": PASSWORD, "age": 30}),
        )
        .await;
    assert_eq!(reply.status, Status::Created, "{}", reply.text);
    let id = reply.body["id"].as_i64().expect("id");
    assert_eq!(
        reply.header("Location"),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    assert_eq!(reply.body["username"], "Alice", "username keeps its case");
    assert_eq!(
        reply.body["email"], "alice@example.com",
        "email is lowercased"
    );
    assert_eq!(reply.body["age"], 30);
    assert_eq!(reply.body["role"], "user");
    assert_eq!(reply.body["is_active"], true);
    let created = reply.body["created_at"].as_str().expect("created_at");
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "RFC 3339 UTC: {created}"
    );
    let keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys.len(),
        8,
        "exactly the documented fields, never a password or hash: {keys:?}"
    );
    assert!(
        !reply.text.contains("$2"),
        "no bcrypt hash in {}",
        reply.text
    );

    let alice = app.sign_in("alice").await;
    let fetched = app.get_as(&alice, &format!("/api/v1/users/{id}")).await;
    assert_eq!(fetched.status, Status::Ok);
    assert_eq!(fetched.body, reply.body);
}

#[rocket::async_test]
async fn registration_without_age_stores_null() {
    let app = TestApp::spawn().await;
    let user = app.register("bob").await;
    assert_eq!(user["age"], Value::Null);
}

#[rocket::async_test]
async fn a_taken_username_or_email_in_any_case_is_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let cases = [
        registration("ALICE", "other@example.com"),
        registration("bob", "ALICE@example.com"),
    ];
    for body in cases {
        let reply = app.post("/api/v1/users", &body).await;
        assert_eq!(reply.status, Status::Conflict, "{body}");
        assert!(reply.body["detail"].is_string(), "{}", reply.text);
    }
    assert_eq!(
        ids(&app.get_as(&alice, "/api/v1/users").await),
        vec![alice.id]
    );
}

#[rocket::async_test]
async fn invalid_registrations_are_422_naming_the_field_and_rule() {
    let app = TestApp::spawn().await;
    let long_password = format!("A1{}", "é".repeat(36));
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"username": "al", "email": "a@example.com", "password": PASSWORD}),
            "body.username",
            "string_too_short",
        ),
        (
            json!({"username": "a".repeat(51), "email": "a@example.com", "password": PASSWORD}),
            "body.username",
            "string_too_long",
        ),
        (
            json!({"username": "al_ice", "email": "a@example.com", "password": PASSWORD}),
            "body.username",
            "string_pattern_mismatch",
        ),
        (
            json!({"username": "alice", "email": "not-an-email", "password": PASSWORD}),
            "body.email",
            "value_error",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "Sh0rt"}),
            "body.password",
            "string_too_short",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": long_password}),
            "body.password",
            "string_too_long",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "password1"}),
            "body.password",
            "value_error",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "Password"}),
            "body.password",
            "value_error",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": -1}),
            "body.age",
            "greater_than_equal",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": 151}),
            "body.age",
            "less_than_equal",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": "30"}),
            "body.age",
            "type_error",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": 30.5}),
            "body.age",
            "type_error",
        ),
        (
            json!({"username": 42, "email": "a@example.com", "password": PASSWORD}),
            "body.username",
            "type_error",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            "body.username",
            "missing",
        ),
        (
            json!({"username": "alice", "password": PASSWORD}),
            "body.email",
            "missing",
        ),
        (
            json!({"username": "alice", "email": "a@example.com"}),
            "body.password",
            "missing",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "role": "admin"}),
            "body.role",
            "extra_forbidden",
        ),
        (json!([1, 2, 3]), "body", "type_error"),
        (json!("alice"), "body", "type_error"),
    ];
    for (body, field, kind) in cases {
        let reply = app.post("/api/v1/users", &body).await;
        assert_eq!(
            reply.status,
            Status::UnprocessableEntity,
            "{body}: {}",
            reply.text
        );
        assert_eq!(
            reply.field_errors(),
            vec![(field.to_owned(), kind.to_owned())],
            "{body}"
        );
        assert!(
            !reply.text.contains(PASSWORD),
            "the password is never echoed: {}",
            reply.text
        );
    }
    let viewer = app.user("viewer").await;
    assert_eq!(
        ids(&app.get_as(&viewer, "/api/v1/users").await),
        vec![viewer.id],
        "nothing else was created"
    );
}

#[rocket::async_test]
async fn every_failing_rule_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/api/v1/users",
            &json!({"username": "al", "email": "nope", "password": "short", "age": 200}),
        )
        .await;
    assert_eq!(reply.status, Status::UnprocessableEntity);
    let fields: Vec<String> = reply.field_errors().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        ["body.age", "body.email", "body.password", "body.username"]
    );
    for entry in reply.body["detail"].as_array().unwrap() {
        assert!(!entry["message"].as_str().unwrap().is_empty());
    }
}

#[rocket::async_test]
async fn twenty_concurrent_registrations_of_one_name_give_one_201() {
    let app = TestApp::spawn().await;
    let requests = (0..20).map(|i| {
        let name = if i % 2 == 0 { "racer" } else { "RACER" };
        let body = registration(name, &format!("r{i}@example.com"));
        let client = &app.client;
        async move {
            client
                .post("/api/v1/users")
                .header(rocket::http::ContentType::JSON)
                .body(body.to_string())
                .dispatch()
                .await
                .status()
        }
    });
    let statuses = join_all(requests).await;
    let created = statuses.iter().filter(|s| **s == Status::Created).count();
    let conflicts = statuses.iter().filter(|s| **s == Status::Conflict).count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
}

#[rocket::async_test]
async fn reading_users_needs_a_signed_in_user() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for path in [
        "/api/v1/users".to_owned(),
        format!("/api/v1/users/{}", alice.id),
    ] {
        let reply = app.get(&path).await;
        assert_eq!(reply.status, Status::Unauthorized, "{path}");
        assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
        assert_eq!(reply.body, json!({"detail": "Not authenticated"}));
    }
}

#[rocket::async_test]
async fn list_returns_active_users_by_id_with_skip_and_limit() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let mut users = Vec::new();
    for name in ["carol", "alice", "bob", "dave"] {
        users.push(app.register(name).await["id"].as_i64().unwrap());
    }
    let deactivated = app
        .patch_as(
            &admin,
            &format!("/api/v1/users/{}", users[2]),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(deactivated.status, Status::Ok, "{}", deactivated.text);

    let all = app.get_as(&admin, "/api/v1/users").await;
    assert_eq!(all.status, Status::Ok);
    assert_eq!(ids(&all), vec![admin.id, users[0], users[1], users[3]]);

    let page = app.get_as(&admin, "/api/v1/users?skip=2&limit=1").await;
    assert_eq!(ids(&page), vec![users[1]]);

    let beyond = app.get_as(&admin, "/api/v1/users?skip=100").await;
    assert_eq!(beyond.body, json!([]));
}

#[rocket::async_test]
async fn list_paging_out_of_bounds_is_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let cases = [
        ("limit=0", "query.limit", "greater_than_equal"),
        ("limit=101", "query.limit", "less_than_equal"),
        ("limit=abc", "query.limit", "type_error"),
        ("skip=-1", "query.skip", "greater_than_equal"),
        ("skip=1.5", "query.skip", "type_error"),
    ];
    for (query, field, kind) in cases {
        let reply = app.get_as(&alice, &format!("/api/v1/users?{query}")).await;
        assert_eq!(reply.status, Status::UnprocessableEntity, "{query}");
        assert_eq!(
            reply.field_errors(),
            vec![(field.to_owned(), kind.to_owned())],
            "{query}"
        );
    }
    let both = app.get_as(&alice, "/api/v1/users?limit=0&skip=-1").await;
    assert_eq!(both.field_errors().len(), 2, "{}", both.text);
    for ok in ["limit=1", "limit=100", "skip=0"] {
        let reply = app.get_as(&alice, &format!("/api/v1/users?{ok}")).await;
        assert_eq!(reply.status, Status::Ok, "{ok}");
    }
}

#[rocket::async_test]
async fn get_of_a_missing_user_is_404_and_a_bad_id_422() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let missing = app.get_as(&alice, "/api/v1/users/4242").await;
    assert_eq!(missing.status, Status::NotFound);
    assert_eq!(missing.body, json!({"detail": "User not found"}));
    let cases = [
        ("abc", "type_error"),
        ("1.5", "type_error"),
        ("0", "greater_than_equal"),
        ("-3", "greater_than_equal"),
        ("99999999999999999999", "type_error"),
        ("9007199254740992", "less_than_equal"),
    ];
    for (id, kind) in cases {
        let reply = app.get_as(&alice, &format!("/api/v1/users/{id}")).await;
        assert_eq!(reply.status, Status::UnprocessableEntity, "{id}");
        assert_eq!(
            reply.field_errors(),
            vec![("path.user_id".to_owned(), kind.to_owned())]
        );
    }
}

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
    assert_eq!(nothing.body, created.body, "{{}} changes nothing");

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
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
    let refresh = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_eq!(refresh.status, Status::Unauthorized);
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
