use rocket::http::Status;
use serde_json::json;

use crate::helpers::{TestApp, PASSWORD};

fn names(reply: &crate::helpers::Reply) -> Vec<String> {
    reply
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", reply.text))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn register(app: &TestApp, username: &str, email: &str) {
    let reply = app
        .post(
            "/api/v1/users",
            &json!({"username": username, "email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, Status::Created, "{}", reply.text);
}

#[rocket::async_test]
async fn an_admins_search_finds_substrings_of_names_and_emails_ignoring_case() {
    let app = TestApp::spawn().await;
    let viewer = app.admin("viewer").await;
    register(&app, "Alice", "alice@example.com").await;
    register(&app, "malcolm", "mal@corp.test").await;
    register(&app, "bob", "bob.ALSO@example.org").await;
    register(&app, "carol", "carol@example.com").await;
    let cases = [
        ("al", vec!["Alice", "bob", "malcolm"]),
        ("AL", vec!["Alice", "bob", "malcolm"]),
        ("alice", vec!["Alice"]),
        ("corp.test", vec!["malcolm"]),
        ("example.org", vec!["bob"]),
        ("  carol  ", vec!["carol"]),
        ("zzz", vec![]),
        ("e", vec!["Alice", "bob", "carol", "malcolm", "viewer"]),
    ];
    for (query, expected) in cases {
        let reply = app
            .get_as(
                &viewer,
                &format!("/api/v1/users/search?query={}", urlencode(query)),
            )
            .await;
        assert_eq!(reply.status, Status::Ok, "{query}: {}", reply.text);
        assert_eq!(names(&reply), expected, "{query:?}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[rocket::async_test]
async fn wildcards_and_backslashes_match_literally() {
    let app = TestApp::spawn().await;
    let viewer = app.admin("viewer").await;
    register(&app, "percent", "100%off@example.com").await;
    register(&app, "underscore", "first_last@example.com").await;
    register(&app, "plain", "firstxlast@example.com").await;
    let cases = [
        ("%", vec!["percent"]),
        ("0%o", vec!["percent"]),
        ("_", vec!["underscore"]),
        ("t_l", vec!["underscore"]),
        ("\\", vec![]),
        ("\"", vec![]),
        ("first", vec!["plain", "underscore"]),
    ];
    for (query, expected) in cases {
        let reply = app
            .get_as(
                &viewer,
                &format!("/api/v1/users/search?query={}", urlencode(query)),
            )
            .await;
        assert_eq!(reply.status, Status::Ok, "{query}: {}", reply.text);
        assert_eq!(names(&reply), expected, "{query:?}");
    }
}

#[rocket::async_test]
async fn search_shows_active_users_only_ordered_by_name_then_id_with_paging() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    for name in ["zeta1", "Alpha1", "beta1", "gamma1"] {
        register(&app, name, &format!("{}@example.com", name.to_lowercase())).await;
    }
    let gamma = app.sign_in("gamma1").await;
    app.patch_as(
        &admin,
        &format!("/api/v1/users/{}", gamma.id),
        &json!({"is_active": false}),
    )
    .await;
    let all = app.get_as(&admin, "/api/v1/users/search?query=1").await;
    assert_eq!(names(&all), ["Alpha1", "beta1", "zeta1"]);
    let page = app
        .get_as(&admin, "/api/v1/users/search?query=1&skip=1&limit=1")
        .await;
    assert_eq!(names(&page), ["beta1"]);
}

#[rocket::async_test]
async fn search_renames_are_found_under_the_new_name() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.patch_as(
        &alice,
        &format!("/api/v1/users/{}", alice.id),
        &json!({"username": "wonderland"}),
    )
    .await;
    assert_eq!(
        names(
            &app.get_as(&alice, "/api/v1/users/search?query=wonder")
                .await
        ),
        ["wonderland"]
    );
    let admin = app.admin("root").await;
    let by_email = app.get_as(&admin, "/api/v1/users/search?query=alice").await;
    assert_eq!(names(&by_email), ["wonderland"], "the email still matches");
    app.delete_as(&alice, &format!("/api/v1/users/{}", alice.id))
        .await;
    let bob = app.user("bob").await;
    assert!(names(&app.get_as(&bob, "/api/v1/users/search?query=wonder").await).is_empty());
}

#[rocket::async_test]
async fn bad_search_queries_are_422() {
    let app = TestApp::spawn().await;
    let viewer = app.user("viewer").await;
    let long = "a".repeat(101);
    let cases = [
        ("", "query.query", "missing"),
        ("?query=", "query.query", "string_too_short"),
        ("?query=%20%20", "query.query", "string_too_short"),
        (
            &format!("?query={long}") as &str,
            "query.query",
            "string_too_long",
        ),
        ("?query=a&limit=0", "query.limit", "greater_than_equal"),
        ("?query=a&skip=-1", "query.skip", "greater_than_equal"),
        ("?query=a&skip=10001", "query.skip", "less_than_equal"),
    ];
    for (query, field, kind) in cases {
        let reply = app
            .get_as(&viewer, &format!("/api/v1/users/search{query}"))
            .await;
        assert_eq!(
            reply.status,
            Status::UnprocessableEntity,
            "{query}: {}",
            reply.text
        );
        assert_eq!(
            reply.field_errors(),
            vec![(field.to_owned(), kind.to_owned())],
            "{query}"
        );
    }
    assert_eq!(
        app.get("/api/v1/users/search?query=a").await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn nul_characters_find_nothing_and_never_fail() {
    let app = TestApp::spawn().await;
    let viewer = app.user("viewer").await;
    let reply = app
        .get_as(&viewer, "/api/v1/users/search?query=vi%00ew")
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (Status::Ok, json!([])),
        "{}",
        reply.text
    );
    let login = app.login("vie\u{0}wer", PASSWORD).await;
    assert_eq!(login.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn a_search_past_its_time_limit_is_stopped_and_its_connection_serves_on() {
    use rocket_db_pools::Database;
    use roster::db::{sessions::TokenClaims, users, Conn, Db, DbError};
    use std::time::Duration;

    let app = TestApp::spawn().await;
    let viewer = app.admin("viewer").await;
    let db = Db::fetch(app.client.rocket()).expect("database attached");
    let mut conn = db.acquire().await.unwrap();
    // Thirty thousand users, so that a two-letter search that matches none
    // (a scan of them all) runs well past a millisecond on either backend.
    match conn.conn() {
        Conn::Sqlite(c) => sqlx::query(
            "INSERT INTO users (username, email, password_hash, created_at, updated_at) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000) \
             SELECT 'a' || i, 'a' || i || '@example.com', 'x', \
                    '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM n",
        )
        .execute(c)
        .await
        .map(drop),
        Conn::Postgres(c) => sqlx::query(
            "INSERT INTO users (username, email, password_hash, created_at, updated_at) \
             SELECT 'a' || i, 'a' || i || '@example.com', 'x', now(), now() \
             FROM generate_series(1, 30000) i",
        )
        .execute(c)
        .await
        .map(drop),
    }
    .expect("users inserted");
    let claims = crate::auth::decode_unverified(&viewer.token);
    let token = TokenClaims {
        user_id: viewer.id,
        session_id: claims["sid"].as_str().unwrap(),
        version: claims["ver"].as_i64().unwrap(),
    };

    let stopped = users::search(conn.conn(), &token, "zz", (0, 10), Duration::from_millis(1)).await;
    assert!(
        matches!(stopped, Err(DbError::TimedOut(_))),
        "a search past its limit is stopped: {:?}",
        stopped.map(|rows| rows.len())
    );
    // The limit ended with that statement: on the same connection a slow
    // statement of another kind, then the same search with time enough, run.
    let slow: i64 = match conn.conn() {
        Conn::Sqlite(c) => {
            sqlx::query_scalar(
                // Thousands of steps: a handler left behind would stop it.
                "SELECT count(*) FROM users WHERE instr(email, 'zz') = 0",
            )
            .fetch_one(c)
            .await
        }
        Conn::Postgres(c) => {
            sqlx::query_scalar("SELECT count(*) FROM (SELECT pg_sleep(0.05)) s")
                .fetch_one(c)
                .await
        }
    }
    .expect("no limit left on the connection");
    assert!(slow >= 1);
    let found = users::search(conn.conn(), &token, "a", (0, 10), Duration::from_secs(60))
        .await
        .expect("the search runs");
    assert_eq!(found.len(), 10);

    // Over HTTP a stopped search is a 503 that says what to do.
    let err = roster::error::ApiError::from(DbError::TimedOut(sqlx::Error::PoolTimedOut));
    assert_eq!(err.status(), Status::ServiceUnavailable);
    assert!(err.to_string().contains("narrow"), "{err}");
}
