use futures::future::join_all;
use rocket::http::{ContentType, Status};
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestUser, PASSWORD};

async fn page(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let reply = app.get_as(user, &format!("/api/v2/users{query}")).await;
    assert_eq!(reply.status, Status::Ok, "{query}: {}", reply.text);
    reply.body
}

fn ids(page: &Value) -> Vec<i64> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

#[rocket::async_test]
async fn v2_pages_with_a_cursor_until_next_cursor_is_null() {
    let app = TestApp::spawn().await;
    let viewer = app.user("viewer").await;
    let mut expected = vec![viewer.id];
    for i in 0..6 {
        expected.push(
            app.register(&format!("user{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let first = page(&app, &viewer, "?limit=3").await;
    assert_eq!(first["version"], "2.0");
    assert_eq!(first["includes_inactive"], false);
    assert_eq!(ids(&first), expected[..3]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = page(&app, &viewer, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&second), expected[3..6]);
    let cursor = second["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let last = page(&app, &viewer, &format!("?limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&last), expected[6..]);
    assert_eq!(last["next_cursor"], Value::Null, "no further user");

    // A page that ends exactly at the last user says so too.
    let exact = page(&app, &viewer, "?limit=7").await;
    assert_eq!(
        (ids(&exact).len(), &exact["next_cursor"]),
        (7, &Value::Null)
    );
    let default = page(&app, &viewer, "").await;
    assert_eq!(ids(&default).len(), 7);
}

#[rocket::async_test]
async fn inactive_users_are_listed_for_admins_who_ask_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    app.patch_as(
        &admin,
        &format!("/api/v1/users/{}", alice.id),
        &json!({"is_active": false}),
    )
    .await;
    let bob = app.user("bob").await;
    assert_eq!(ids(&page(&app, &admin, "").await), [admin.id, bob.id]);
    let with = page(&app, &admin, "?include_inactive=true").await;
    assert_eq!(
        (ids(&with), with["includes_inactive"].as_bool()),
        (vec![admin.id, alice.id, bob.id], Some(true))
    );
    let refused = app
        .get_as(&bob, "/api/v2/users?include_inactive=true")
        .await;
    assert_eq!(refused.status, Status::Forbidden);
    assert_eq!(app.get("/api/v2/users").await.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn bad_cursors_and_limits_are_422() {
    let app = TestApp::spawn().await;
    let viewer = app.user("viewer").await;
    let cases = [
        ("?cursor=", "query.cursor"),
        ("?cursor=NOT-A-CURSOR", "query.cursor"),
        ("?cursor=zzzzzzzzzzzzzzzz", "query.cursor"),
        ("?cursor=null", "query.cursor"),
        ("?cursor=undefined", "query.cursor"),
        ("?cursor=2s", "query.cursor"),
        ("?limit=0", "query.limit"),
        ("?limit=101", "query.limit"),
        ("?include_inactive=perhaps", "query.include_inactive"),
        ("?include_inactive=", "query.include_inactive"),
        ("?include_inactive=1", "query.include_inactive"),
        ("?cursor=%C3%A8&cursor=", "query.cursor"),
        ("?limit=5&limit=6", "query.limit"),
    ];
    for (query, field) in cases {
        let reply = app.get_as(&viewer, &format!("/api/v2/users{query}")).await;
        assert_eq!(
            reply.status,
            Status::UnprocessableEntity,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.field_errors()[0].0, field, "{query}");
    }
}

#[rocket::async_test]
async fn walking_1000_users_while_others_register_returns_each_exactly_once() {
    let app = TestApp::spawn().await;
    let viewer = app.user("viewer").await;
    let db = rocket_db_pools::Database::fetch(app.client.rocket())
        .map(|db: &roster::db::Db| (**db).clone())
        .expect("database");
    // Seed directly: 1,000 registrations through bcrypt would dominate the test.
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let mut existing = vec![viewer.id];
    let mut tx = db.begin().await.unwrap();
    for i in 0..1000 {
        let user = roster::db::users::insert(
            tx.conn(),
            &roster::db::users::NewUser {
                username: &format!("seed{i}"),
                email: &format!("seed{i}@example.com"),
                password_hash: &hash,
                age: None,
                role: roster::domain::Role::User,
                email_verified: false,
            },
            roster::db::now(),
        )
        .await
        .unwrap();
        existing.push(user.id);
    }
    tx.commit().await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut newcomer = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=37&cursor={c}"),
            None => "?limit=37".to_owned(),
        };
        // Others register while the walk goes on.
        let registrations = (0..3).map(|_| {
            newcomer += 1;
            let body = json!({"username": format!("late{newcomer}"), "email": format!("late{newcomer}@example.com"), "password": PASSWORD});
            app.client.post("/api/v1/users").header(ContentType::JSON).body(body.to_string()).dispatch()
        });
        let (current, _) = futures::join!(page(&app, &viewer, &query), join_all(registrations));
        seen.extend(ids(&current));
        match current["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no user twice");
    for id in &existing {
        assert!(seen.contains(id), "user {id} was skipped");
    }
}
