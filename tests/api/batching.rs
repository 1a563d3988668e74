//! Reads in batches on PostgreSQL (`db::batch`): the token checks and reads
//! of many requests as one statement, each request answered as if it had
//! been read alone, and a failed batch answered request by request.

use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;
use rocket::http::Status;
use roster::db::batch::Reads;
use roster::db::sessions::TokenClaims;
use roster::db::{Conns, DbError, Limits};
use roster::error::ApiError;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

use crate::helpers::{postgres_url, Reply, TestApp, TestUser};

/// An app and its batching task, which runs on PostgreSQL only; `None` on
/// SQLite, which reads directly.
async fn on_postgres() -> Option<(TestApp, Reads)> {
    let app = TestApp::spawn().await;
    let reads = app
        .client
        .rocket()
        .state::<Option<Reads>>()
        .cloned()
        .flatten();
    assert_eq!(
        reads.is_some(),
        postgres_url().is_some(),
        "reads are batched on PostgreSQL, and only there"
    );
    Some((app, reads?))
}

/// What a reply says, in one line: the usernames of a page, a user's
/// username and whether its email is shown, or the error's detail.
fn gist(reply: &Reply) -> String {
    match &reply.body {
        Value::Array(users) => users
            .iter()
            .map(|user| user["username"].as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(","),
        body if body["username"].is_string() => format!(
            "{} email:{}",
            body["username"].as_str().unwrap_or("?"),
            body["email"].is_string()
        ),
        body => body["detail"].as_str().unwrap_or(&reply.text).to_owned(),
    }
}

/// Users whose tokens each fare differently: good ones (an admin's and a
/// user's), one signed out, one deactivated behind the API's back with its
/// session still open, one whose token version moved on, one deleted.
struct Cast {
    admin: TestUser,
    good: TestUser,
    revoked: TestUser,
    inactive: TestUser,
    stale: TestUser,
    gone: TestUser,
}

impl Cast {
    async fn on(app: &TestApp) -> Cast {
        app.create_admin("admin").await;
        let cast = Cast {
            admin: app.sign_in("admin").await,
            good: app.user("good").await,
            revoked: app.user("revoked").await,
            inactive: app.user("inactive").await,
            stale: app.user("stale").await,
            gone: app.user("gone").await,
        };
        let logout = app
            .call(&cast.revoked, "POST", "/api/v1/auth/logout", None)
            .await;
        assert_eq!(logout.status, Status::NoContent);
        app.execute("UPDATE users SET is_active = FALSE WHERE username = 'inactive'")
            .await;
        app.execute("UPDATE users SET token_version = token_version + 1 WHERE username = 'stale'")
            .await;
        app.execute("DELETE FROM users WHERE username = 'gone'")
            .await;
        cast
    }

    fn all(&self) -> [&TestUser; 6] {
        [
            &self.admin,
            &self.good,
            &self.revoked,
            &self.inactive,
            &self.stale,
            &self.gone,
        ]
    }
}

#[rocket::async_test]
async fn requests_read_in_batches_are_each_answered_as_if_read_alone() {
    let Some((app, reads)) = on_postgres().await else {
        return; // SQLite reads in the process: nothing to batch.
    };
    let cast = Cast::on(&app).await;
    let (admin, good, inactive, gone) = (&cast.admin, &cast.good, &cast.inactive, &cast.gone);
    let refused: [(&TestUser, &str); 4] = [
        (&cast.revoked, "Token has been revoked"),
        (inactive, "Account is inactive"),
        (&cast.stale, "Token has been revoked"),
        (gone, "Invalid token"),
    ];
    let mut cases: Vec<(TestUser, String, Status, String)> = Vec::new();
    let mut case = |who: &TestUser, path: String, status: Status, says: &str| {
        cases.push((who.clone(), path, status, says.to_owned()));
    };
    let (me, of_inactive) = (
        "/api/v1/users/me".to_owned(),
        format!("/api/v1/users/{}", inactive.id),
    );
    let (page, empty_page) = (
        "/api/v1/users?limit=3".to_owned(),
        "/api/v1/users?skip=5000".to_owned(),
    );
    for (who, refusal) in refused {
        for path in [&me, &of_inactive, &page, &empty_page] {
            case(who, path.clone(), Status::Unauthorized, refusal);
        }
    }
    case(good, me.clone(), Status::Ok, "good email:true");
    case(admin, me.clone(), Status::Ok, "admin email:true");
    case(
        admin,
        of_inactive.clone(),
        Status::Ok,
        "inactive email:true",
    );
    case(good, of_inactive, Status::NotFound, "User not found");
    let of_admin = format!("/api/v1/users/{}", admin.id);
    case(good, of_admin, Status::Ok, "admin email:false");
    let of_gone = format!("/api/v1/users/{}", gone.id);
    case(admin, of_gone, Status::NotFound, "User not found");
    case(good, page, Status::Ok, "admin,good,revoked");
    let second_page = "/api/v1/users?skip=1&limit=2".to_owned();
    case(admin, second_page, Status::Ok, "good,revoked");
    case(good, empty_page, Status::Ok, "");

    let before = reads.stats();
    let replies = join_all(
        cases
            .iter()
            .map(|(who, path, ..)| app.req("GET", path).bearer(who).send()),
    )
    .await;
    let after = reads.stats();
    for ((who, path, status, says), reply) in cases.iter().zip(&replies) {
        assert_eq!(
            (reply.status, gist(reply)),
            (*status, says.clone()),
            "GET {path} as user {}",
            who.id
        );
    }
    // Every request was read through the batches, and some shared a
    // statement (how many depends on timing; the next test makes one
    // batch of all).
    let reads_made = after.reads - before.reads;
    let statements = after.statements - before.statements;
    assert!(reads_made >= cases.len() as u64, "{before:?} {after:?}");
    assert!(
        statements < reads_made,
        "{statements} statements for {reads_made} reads"
    );
    // The metrics count the same.
    let loopback = "127.0.0.1:40000".parse().expect("an address");
    let metrics = app.req("GET", "/metrics").from(loopback).send().await;
    assert_eq!(metrics.status, Status::Ok, "{}", metrics.text);
    let stats = reads.stats();
    for series in [
        format!("roster_db_batched_reads_total {}\n", stats.reads),
        format!("roster_db_batch_statements_total {}\n", stats.statements),
    ] {
        assert!(
            metrics.text.contains(&series),
            "{series} in:\n{}",
            metrics.text
        );
    }
}

/// A token's claims as the server issued them.
fn claims_of(user: &TestUser) -> (i64, String, i64) {
    let claims = crate::auth::decode_unverified(&user.token);
    (
        claims["sub"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sub"),
        claims["sid"].as_str().expect("sid").to_owned(),
        claims["ver"].as_i64().expect("ver"),
    )
}

/// One read, by kind: a token check, a user by id, a page (skip, limit).
#[derive(Clone, Copy, Debug)]
enum Read {
    Token,
    User(i64),
    Page(i64, i64),
}

type Answer = Result<String, String>;

fn summary_of_record(found: Option<roster::db::sessions::AuthRecord>) -> String {
    format!(
        "{:?}",
        found.map(|r| (
            r.user.id,
            r.user.is_active,
            r.user.token_version,
            r.session_live
        ))
    )
}

fn summary_of_seen(found: Option<&roster::db::users::SeenUser>) -> String {
    format!(
        "{:?}",
        found.map(|s| (s.user.id, s.user.is_active, s.caller_id, s.caller_role))
    )
}

fn summary_of_page(page: Vec<roster::db::users::SeenUser>) -> String {
    let each: Vec<String> = page.iter().map(|s| summary_of_seen(Some(s))).collect();
    each.join(";")
}

/// `read` for the token `claims` through `reads`.
async fn batched(reads: &Reads, claims: &(i64, String, i64), read: Read) -> Answer {
    let token = TokenClaims {
        user_id: claims.0,
        session_id: &claims.1,
        version: claims.2,
    };
    let failed = |err: std::sync::Arc<DbError>| err.to_string();
    match read {
        Read::Token => reads
            .token(claims.0, &claims.1)
            .await
            .map(summary_of_record),
        Read::User(id) => reads
            .user(&token, id)
            .await
            .map(|found| summary_of_seen(found.as_ref())),
        Read::Page(skip, limit) => reads.page(&token, skip, limit).await.map(summary_of_page),
    }
    .map_err(failed)
}

/// `read` for the token `claims` by the statement a request alone runs.
async fn alone(conn: &mut PgConnection, claims: &(i64, String, i64), read: Read) -> Answer {
    use roster::db::{sessions, users, Conn};
    let token = TokenClaims {
        user_id: claims.0,
        session_id: &claims.1,
        version: claims.2,
    };
    let failed = |err: DbError| err.to_string();
    match read {
        Read::Token => sessions::load_for_token(Conn::Postgres(conn), claims.0, &claims.1)
            .await
            .map(summary_of_record),
        Read::User(id) => users::find_if_token(Conn::Postgres(conn), &token, id)
            .await
            .map(|found| summary_of_seen(found.as_ref())),
        Read::Page(skip, limit) => users::list_if_token(Conn::Postgres(conn), &token, skip, limit)
            .await
            .map(summary_of_page),
    }
    .map_err(failed)
}

#[rocket::async_test]
async fn reads_made_together_share_one_statement_per_kind_and_match_the_reads_alone() {
    let Some((app, _)) = on_postgres().await else {
        return; // SQLite: no batches.
    };
    let cast = Cast::on(&app).await;
    let mut asks = Vec::new();
    for user in cast.all() {
        let claims = claims_of(user);
        for read in [
            Read::Token,
            Read::User(cast.admin.id),
            Read::User(cast.inactive.id),
            Read::User(cast.gone.id),
            Read::Page(0, 3),
            Read::Page(2, 10),
            Read::Page(5000, 10),
        ] {
            asks.push((claims.clone(), read));
        }
    }
    let url = app.database_url();
    let mut conn = PgConnection::connect(&url).await.expect("a connection");
    let mut expected = Vec::new();
    for (claims, read) in &asks {
        expected.push(alone(&mut conn, claims, *read).await);
    }

    // On a runtime of one thread, the batching task runs only once every
    // read below is queued: they all go in one batch.
    let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
    let (answers, stats) = std::thread::spawn(move || {
        let runtime = rocket::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let reads = Reads::start(Conns::new(options, limits()));
            let answers = join_all(
                asks.iter()
                    .map(|(claims, read)| batched(&reads, claims, *read)),
            )
            .await;
            (answers, reads.stats())
        })
    })
    .join()
    .expect("the batch ran");
    assert_eq!(answers, expected);
    assert_eq!(
        (stats.reads, stats.statements),
        (expected.len() as u64, 3),
        "one batch, one statement for each kind of read"
    );
    // The answers are not all alike: the batch held good and bad tokens.
    let refused = expected
        .iter()
        .filter(|a| a.as_deref() == Ok("None"))
        .count();
    let empty_pages = expected.iter().filter(|a| a.as_deref() == Ok("")).count();
    assert!(refused > 0 && refused < expected.len(), "{expected:?}");
    assert!(
        empty_pages > 0 && empty_pages < expected.len(),
        "{expected:?}"
    );
}

/// A private batching task on `app`'s database, its statements stopped
/// after half a second.
fn private_reads(app: &TestApp) -> Reads {
    let options = PgConnectOptions::from_str(&app.database_url())
        .expect("a PostgreSQL URL")
        .options([("statement_timeout", "500")]);
    Reads::start(Conns::new(options, limits()))
}

fn limits() -> Limits {
    Limits {
        max: 2,
        acquire_timeout: Duration::from_secs(3),
        idle_timeout: None,
    }
}

/// The answers of one read of each kind for `user`, made together.
async fn one_of_each(
    reads: &Reads,
    user: &TestUser,
    session_id: &str,
) -> [Result<usize, String>; 3] {
    let token = TokenClaims {
        user_id: user.id,
        session_id,
        version: 0,
    };
    let described = |err: std::sync::Arc<DbError>| {
        let kind = match *err {
            DbError::TimedOut(_) => "timed out",
            DbError::Unavailable(_) => "unavailable",
            _ => "other",
        };
        let status = ApiError::from(err).status().code;
        format!("{kind} {status}")
    };
    let (token_read, user_read, page_read) = rocket::tokio::join!(
        reads.token(user.id, session_id),
        reads.user(&token, user.id),
        reads.page(&token, 0, 10),
    );
    [
        token_read
            .map(|found| usize::from(found.is_some()))
            .map_err(described),
        user_read
            .map(|found| usize::from(found.is_some()))
            .map_err(described),
        page_read.map(|page| page.len()).map_err(described),
    ]
}

#[rocket::async_test]
async fn a_statement_that_fails_answers_every_request_of_its_batch_and_the_next_batch_works() {
    let Some((app, _)) = on_postgres().await else {
        return; // SQLite: no batches.
    };
    let alice = app.user("alice").await;
    let (_, session_id, _) = claims_of(&alice);
    let reads = private_reads(&app);
    let ok = [Ok(1), Ok(1), Ok(1)];
    assert_eq!(one_of_each(&reads, &alice, &session_id).await, ok);

    // Another transaction holds the table: each statement of the batch
    // waits past its time limit and fails.
    let mut conn = PgConnection::connect(&app.database_url())
        .await
        .expect("a connection");
    let mut blocker = conn.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("the lock");
    let before = reads.stats();
    let failed = one_of_each(&reads, &alice, &session_id).await;
    let timed_out = || Err("timed out 503".to_owned());
    assert_eq!(failed, [timed_out(), timed_out(), timed_out()]);
    assert_eq!(reads.stats().reads - before.reads, 3);
    blocker.rollback().await.expect("the lock released");

    assert_eq!(one_of_each(&reads, &alice, &session_id).await, ok);
}

#[rocket::async_test]
async fn without_a_database_every_request_of_a_batch_is_told_it_is_unavailable() {
    let Some((app, _)) = on_postgres().await else {
        return; // SQLite: no batches.
    };
    let alice = app.user("alice").await;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres");
    let reads = Reads::start(Conns::new(options, limits()));
    let unavailable = || Err("unavailable 503".to_owned());
    assert_eq!(
        one_of_each(&reads, &alice, "no-session").await,
        [unavailable(), unavailable(), unavailable()]
    );
}

#[rocket::async_test]
async fn while_the_batches_in_flight_are_stuck_the_reads_behind_them_are_told_503_in_time() {
    let Some((app, _)) = on_postgres().await else {
        return; // SQLite: no batches.
    };
    let alice = app.user("alice").await;
    let (user_id, session_id, _) = claims_of(&alice);
    let url = app.database_url();
    let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
    let patience = Duration::from_secs(1);
    let reads = Reads::start(Conns::new(
        options,
        Limits {
            acquire_timeout: patience,
            ..limits()
        },
    ));
    let mut conn = PgConnection::connect(&url).await.expect("a connection");
    let mut blocker = conn.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("the lock");
    // Two batches, each stuck on the lock with a connection of its own.
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let (reads, session_id) = (reads.clone(), session_id.clone());
        stuck.push(rocket::tokio::spawn(async move {
            reads
                .token(user_id, &session_id)
                .await
                .map(|found| found.is_some())
        }));
        rocket::tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = std::time::Instant::now();
    let late = reads.token(user_id, &session_id).await;
    let waited = started.elapsed();
    let late = late.map(|found| found.is_some());
    assert!(
        matches!(
            late.as_ref().map_err(|e| &**e),
            Err(DbError::Unavailable(_))
        ),
        "{:?}",
        late.map_err(|e| e.to_string())
    );
    assert!(
        waited >= patience && waited < patience * 3,
        "told after {waited:?}"
    );
    blocker.rollback().await.expect("the lock released");
    for read in stuck {
        assert_eq!(
            read.await.expect("the read").map_err(|e| e.to_string()),
            Ok(true)
        );
    }
}
