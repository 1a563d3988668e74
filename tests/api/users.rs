use futures::future::join_all;
use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};

pub(crate) fn registration(username: &str, email: &str) -> Value {
    json!({"username": username, "email": email, "password": PASSWORD})
}

pub(crate) fn ids(reply: &crate::helpers::Reply) -> Vec<i64> {
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
        reply.body["email_verified"], false,
        "a registration is unverified"
    );
    assert_eq!(reply.body["last_login_at"], serde_json::Value::Null);
    assert_eq!(
        keys.len(),
        10,
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
    // The same user, but for the login that just happened.
    let mut registered = reply.body.clone();
    registered["last_login_at"] = fetched.body["last_login_at"].clone();
    assert!(fetched.body["last_login_at"].is_string());
    assert_eq!(fetched.body, registered);
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
        ("skip=10001", "query.skip", "less_than_equal"),
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
    for ok in ["limit=1", "limit=100", "skip=0", "skip=10000"] {
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

/// One mailbox, one account: composed, decomposed and punycode spellings of
/// one address are the same email, stored in one spelling.
#[rocket::async_test]
async fn one_mailbox_in_any_spelling_is_one_account() {
    let app = TestApp::spawn().await;
    for (i, (first, second, stored)) in [
        (
            "jos\u{e9}@example.com",
            "JOSE\u{301}@example.com",
            "jos\u{e9}@example.com",
        ),
        (
            "anna@b\u{fc}cher.example",
            "anna@xn--bcher-kva.example",
            "anna@xn--bcher-kva.example",
        ),
        (
            "ming@xn--fiqs8s.example",
            "MING@\u{4e2d}\u{56fd}.example",
            "ming@xn--fiqs8s.example",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let created = app
            .post("/api/v1/users", &registration(&format!("first{i}"), first))
            .await;
        assert_eq!(created.status, Status::Created, "{first}: {}", created.text);
        assert_eq!(created.body["email"], stored, "{first}");
        let again = app
            .post(
                "/api/v1/users",
                &registration(&format!("second{i}"), second),
            )
            .await;
        assert_eq!(again.status, Status::Conflict, "{second}: {}", again.text);
    }
}
