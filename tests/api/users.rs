use futures::future::join_all;
use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};

fn registration(username: &str, email: &str) -> Value {
    json!({"username": username, "email": email, "password": PASSWORD})
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

    let fetched = app.get(&format!("/api/v1/users/{id}")).await;
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
    app.register("alice").await;
    let cases = [
        registration("ALICE", "other@example.com"),
        registration("bob", "ALICE@example.com"),
    ];
    for body in cases {
        let reply = app.post("/api/v1/users", &body).await;
        assert_eq!(reply.status, Status::Conflict, "{body}");
        assert!(reply.body["detail"].is_string(), "{}", reply.text);
    }
    let list = app.get("/api/v1/users").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
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
    let list = app.get("/api/v1/users").await;
    assert_eq!(list.body, json!([]), "nothing was created");
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
        let body = registration(
            if i % 2 == 0 { "racer" } else { "RACER" },
            &format!("r{i}@example.com"),
        );
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
async fn list_returns_active_users_by_id_with_skip_and_limit() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for name in ["carol", "alice", "bob", "dave"] {
        ids.push(app.register(name).await["id"].as_i64().unwrap());
    }
    let deactivated = app
        .patch(
            &format!("/api/v1/users/{}", ids[2]),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(deactivated.status, Status::Ok);

    let all = app.get("/api/v1/users").await;
    assert_eq!(all.status, Status::Ok);
    let listed: Vec<i64> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[0], ids[1], ids[3]]);

    let page = app.get("/api/v1/users?skip=1&limit=1").await;
    let listed: Vec<i64> = page
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[1]]);

    let beyond = app.get("/api/v1/users?skip=100").await;
    assert_eq!(beyond.body, json!([]));
}

#[rocket::async_test]
async fn list_paging_out_of_bounds_is_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let cases = [
        ("limit=0", "query.limit", "greater_than_equal"),
        ("limit=101", "query.limit", "less_than_equal"),
        ("limit=abc", "query.limit", "type_error"),
        ("skip=-1", "query.skip", "greater_than_equal"),
        ("skip=1.5", "query.skip", "type_error"),
    ];
    for (query, field, kind) in cases {
        let reply = app.get(&format!("/api/v1/users?{query}")).await;
        assert_eq!(reply.status, Status::UnprocessableEntity, "{query}");
        assert_eq!(
            reply.field_errors(),
            vec![(field.to_owned(), kind.to_owned())],
            "{query}"
        );
    }
    let both = app.get("/api/v1/users?limit=0&skip=-1").await;
    assert_eq!(both.field_errors().len(), 2, "{}", both.text);
    for ok in ["limit=1", "limit=100", "skip=0"] {
        assert_eq!(
            app.get(&format!("/api/v1/users?{ok}")).await.status,
            Status::Ok,
            "{ok}"
        );
    }
}

#[rocket::async_test]
async fn get_of_a_missing_user_is_404_and_a_bad_id_422() {
    let app = TestApp::spawn().await;
    let missing = app.get("/api/v1/users/4242").await;
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
        let reply = app.get(&format!("/api/v1/users/{id}")).await;
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
    let id = created.body["id"].as_i64().unwrap();
    let reply = app
        .put(
            &format!("/api/v1/users/{id}"),
            &json!({"username": "Alicia", "email": "Alicia@Example.com"}),
        )
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(reply.body["username"], "Alicia");
    assert_eq!(reply.body["email"], "alicia@example.com");
    assert_eq!(reply.body["age"], Value::Null);
    assert_eq!(reply.body["created_at"], created.body["created_at"]);
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}")).await.body,
        reply.body
    );
}

#[rocket::async_test]
async fn put_errors_are_404_409_and_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await["id"].as_i64().unwrap();
    app.register("bob").await;
    let path = format!("/api/v1/users/{alice}");

    let missing = app
        .put(
            "/api/v1/users/999",
            &json!({"username": "zed", "email": "z@example.com"}),
        )
        .await;
    assert_eq!(missing.status, Status::NotFound);

    let taken = app
        .put(&path, &json!({"username": "BOB", "email": "a@example.com"}))
        .await;
    assert_eq!(taken.status, Status::Conflict);

    let incomplete = app.put(&path, &json!({"username": "alice"})).await;
    assert_eq!(
        incomplete.field_errors(),
        vec![("body.email".into(), "missing".into())]
    );

    let with_password = app
        .put(
            &path,
            &json!({"username": "alice", "email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        with_password.field_errors(),
        vec![("body.password".into(), "extra_forbidden".into())]
    );

    let unchanged = app.get(&path).await;
    assert_eq!(unchanged.body["username"], "alice");
}

#[rocket::async_test]
async fn patch_changes_only_what_it_names() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/api/v1/users",
            &json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "age": 30}),
        )
        .await;
    let id = created.body["id"].as_i64().unwrap();
    let path = format!("/api/v1/users/{id}");

    let nothing = app.patch(&path, &json!({})).await;
    assert_eq!(nothing.status, Status::Ok);
    assert_eq!(nothing.body, created.body, "{{}} changes nothing");

    let renamed = app.patch(&path, &json!({"username": "Alicia"})).await;
    assert_eq!(renamed.body["username"], "Alicia");
    assert_eq!(renamed.body["email"], "a@example.com");
    assert_eq!(renamed.body["age"], 30);

    let cleared = app.patch(&path, &json!({"age": null})).await;
    assert_eq!(cleared.body["age"], Value::Null);
    assert_eq!(cleared.body["username"], "Alicia");

    let aged = app.patch(&path, &json!({"age": 41, "role": "admin"})).await;
    assert_eq!(aged.body["age"], 41);
    assert_eq!(aged.body["role"], "admin");
}

#[rocket::async_test]
async fn patch_errors_are_404_409_and_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await["id"].as_i64().unwrap();
    app.register("bob").await;
    let path = format!("/api/v1/users/{alice}");

    assert_eq!(
        app.patch("/api/v1/users/999", &json!({"age": 3}))
            .await
            .status,
        Status::NotFound
    );
    assert_eq!(
        app.patch(&path, &json!({"email": "BOB@example.com"}))
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
        let reply = app.patch(&path, &body).await;
        assert_eq!(reply.status, Status::UnprocessableEntity, "{body}");
        assert_eq!(
            reply.field_errors(),
            vec![(field.to_owned(), kind.to_owned())],
            "{body}"
        );
    }
    assert_eq!(app.get(&path).await.body["username"], "alice");
}

#[rocket::async_test]
async fn a_deactivated_user_is_hidden() {
    let app = TestApp::spawn().await;
    let id = app.register("alice").await["id"].as_i64().unwrap();
    let path = format!("/api/v1/users/{id}");
    assert_eq!(
        app.patch(&path, &json!({"is_active": false})).await.status,
        Status::Ok
    );
    assert_eq!(app.get(&path).await.status, Status::NotFound);
}

#[rocket::async_test]
async fn delete_removes_the_user() {
    let app = TestApp::spawn().await;
    let id = app.register("alice").await["id"].as_i64().unwrap();
    let path = format!("/api/v1/users/{id}");
    let reply = app.delete(&path).await;
    assert_eq!(reply.status, Status::NoContent);
    assert!(reply.text.is_empty());
    assert_eq!(app.get(&path).await.status, Status::NotFound);
    assert_eq!(app.delete(&path).await.status, Status::NotFound);
    // The name is free again, and the new account gets a new id.
    let again = app.register("alice").await["id"].as_i64().unwrap();
    assert_ne!(again, id, "ids are never reused");
}

#[rocket::async_test]
async fn the_last_active_admin_can_be_neither_deleted_demoted_nor_deactivated() {
    let app = TestApp::spawn().await;
    let root = app.create_admin("root").await;
    let path = format!("/api/v1/users/{root}");
    for (method, body) in [
        ("DELETE", None),
        ("PATCH", Some(json!({"role": "user"}))),
        ("PATCH", Some(json!({"is_active": false}))),
    ] {
        let reply = app.request(method, &path, body.as_ref(), &[]).await;
        assert_eq!(
            reply.status,
            Status::Conflict,
            "{method} {body:?}: {}",
            reply.text
        );
    }
    let still = app.get(&path).await;
    assert_eq!(
        (
            still.body["role"].as_str(),
            still.body["is_active"].as_bool()
        ),
        (Some("admin"), Some(true))
    );

    // With a second admin the first may go.
    let second = app.create_admin("second").await;
    assert_eq!(
        app.patch(&path, &json!({"role": "user"})).await.status,
        Status::Ok
    );
    let last = format!("/api/v1/users/{second}");
    assert_eq!(app.delete(&last).await.status, Status::Conflict);
}
