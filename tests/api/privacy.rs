//! Personal fields (`email`, `age`) are for the user themself and for
//! admins; a non-admin's search matches usernames only.

use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestUser, PASSWORD};

/// Every user object in a reply, whatever its shape (user, array, v2 page).
fn users_in(body: &Value) -> Vec<Value> {
    match body {
        Value::Array(users) => users.clone(),
        Value::Object(page) if page.contains_key("users") => {
            page["users"].as_array().expect("users").clone()
        }
        user => vec![user.clone()],
    }
}

/// `(username, email, age)` of each user in the replies to `paths`, read as
/// `viewer`.
async fn seen(app: &TestApp, viewer: &TestUser, path: &str) -> Vec<(String, Value, Value)> {
    let reply = app.get_as(viewer, path).await;
    assert_eq!(reply.status, Status::Ok, "{path}: {}", reply.text);
    users_in(&reply.body)
        .iter()
        .map(|u| {
            (
                u["username"].as_str().expect("username").to_owned(),
                u["email"].clone(),
                u["age"].clone(),
            )
        })
        .collect()
}

#[rocket::async_test]
async fn others_personal_fields_are_null_for_non_admins_on_every_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    for (name, age) in [("alice", 30), ("bob", 40)] {
        let reply = app
            .post(
                "/api/v1/users",
                &json!({"username": name, "email": format!("{name}@example.com"),
                        "password": PASSWORD, "age": age}),
            )
            .await;
        assert_eq!(reply.status, Status::Created, "{}", reply.text);
    }
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let paths = [
        format!("/api/v1/users/{}", bob.id),
        "/api/v1/users".to_owned(),
        "/api/v2/users".to_owned(),
        "/api/v1/users/search?query=b".to_owned(),
    ];
    let full =
        |name: &str, age: Value| (name.to_owned(), json!(format!("{name}@example.com")), age);
    let hidden = |name: &str| (name.to_owned(), Value::Null, Value::Null);
    for path in &paths {
        for (username, email, age) in seen(&app, &alice, path).await {
            match username.as_str() {
                "alice" => assert_eq!(
                    (email, age),
                    (json!("alice@example.com"), json!(30)),
                    "{path}"
                ),
                other => assert_eq!((email, age), (Value::Null, Value::Null), "{path}: {other}"),
            }
        }
        for user in seen(&app, &admin, path).await {
            assert!(
                user.1.is_string(),
                "an admin sees every email: {path} {user:?}"
            );
        }
    }
    assert_eq!(
        seen(&app, &alice, &paths[0]).await,
        [hidden("bob")],
        "another user by id"
    );
    assert_eq!(
        seen(&app, &admin, &paths[0]).await,
        [full("bob", json!(40))]
    );
    assert_eq!(
        seen(&app, &alice, &format!("/api/v1/users/{}", alice.id)).await,
        [full("alice", json!(30))],
        "one's own user"
    );
}

#[rocket::async_test]
async fn a_non_admins_search_matches_usernames_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    for (name, email) in [
        ("bob", "secret.agent@corp.test"),
        ("carol", "carol@corp.test"),
    ] {
        let reply = app
            .post(
                "/api/v1/users",
                &json!({"username": name, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(reply.status, Status::Created, "{}", reply.text);
    }
    let names =
        |users: Vec<(String, Value, Value)>| users.into_iter().map(|u| u.0).collect::<Vec<_>>();
    // Each spelling an email-harvesting caller would try, short needles
    // (a scan) and long ones (the trigram index) alike.
    for query in [
        "%40",
        "@c",
        "secret",
        "agent%40corp",
        "corp.test",
        "co",
        "p",
    ] {
        let path = format!("/api/v1/users/search?query={query}");
        assert_eq!(
            names(seen(&app, &alice, &path).await),
            Vec::<String>::new(),
            "{query}: a non-admin finds no one by email"
        );
        assert!(
            !names(seen(&app, &admin, &path).await).is_empty(),
            "{query}: an admin does"
        );
    }
    assert_eq!(
        names(seen(&app, &alice, "/api/v1/users/search?query=caro").await),
        ["carol"],
        "usernames still match"
    );
    assert_eq!(
        names(seen(&app, &alice, "/api/v1/users/search?query=car").await),
        ["carol"]
    );
}
