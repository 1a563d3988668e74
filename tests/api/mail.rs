//! Welcome emails through the outbox, against a real SMTP server process
//! (aiosmtpd, tests/smtp/sink.py; see `smtp.rs`).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use rocket::http::Status;
use rocket_db_pools::Database;
use serde_json::json;

use crate::helpers::{free_port, TestApp, PASSWORD};
use crate::smtp::{header, jobs, smtp, wait_for_status, SmtpSink};

#[rocket::async_test]
async fn a_registration_sends_a_welcome_email_with_text_and_html() {
    let sink = SmtpSink::start(false);
    let app = TestApp::spawn_with(smtp(sink.url(), 3600)).await;
    app.register("alice").await;
    let messages = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(header(message, "Subject"), Some("User Registration"));
    assert_eq!(header(message, "From"), Some("noreply@example.com"));
    assert_eq!(header(message, "To"), Some("alice@example.com"));
    assert!(header(message, "Message-ID").is_some_and(|id| id.starts_with("<roster-outbox-")));
    assert!(message.contains("multipart/alternative"), "{message}");
    assert!(
        message.contains("text/plain") && message.contains("text/html"),
        "{message}"
    );
    assert!(
        message.matches("Hello alice").count() >= 2,
        "both parts greet the user: {message}"
    );
    assert!(!message.contains(PASSWORD), "no password in an email");
    let jobs = wait_for_status(&app, "sent", Duration::from_secs(5)).await;
    assert_eq!(
        (jobs.len(), jobs[0].status.as_str(), jobs[0].attempts),
        (1, "sent", 1)
    );
}

#[rocket::async_test]
async fn a_failed_registration_queues_and_sends_nothing() {
    let sink = SmtpSink::start(false);
    let app = TestApp::spawn_with(smtp(sink.url(), 3600)).await;
    app.register("alice").await;
    let refused = [
        json!({"username": "ALICE", "email": "other@example.com", "password": PASSWORD}),
        json!({"username": "bob", "email": "not-an-email", "password": PASSWORD}),
    ];
    for body in refused {
        assert!(app.post("/api/v1/users", &body).await.status.code >= 400);
    }
    let messages = sink.wait_for(2, Duration::from_secs(3)).await;
    assert_eq!(messages.len(), 1, "only alice's email");
    assert_eq!(jobs(&app).await.len(), 1, "only alice's job");
}

#[rocket::async_test]
async fn an_email_queued_while_smtp_is_down_arrives_once_it_is_back() {
    let port = free_port();
    let app = TestApp::spawn_with(smtp(format!("smtp://127.0.0.1:{port}"), 3600)).await;
    app.register("alice").await;
    rocket::tokio::time::sleep(Duration::from_millis(1500)).await;
    let pending = jobs(&app).await;
    assert_eq!(pending[0].status, "pending");
    assert!(
        pending[0].attempts >= 1 && pending[0].last_error.is_some(),
        "{pending:?}"
    );
    let ready = app.get("/health/ready").await;
    assert_eq!(
        ready.status,
        Status::Ok,
        "mail never makes the service unready"
    );
    assert!(
        ready.body["notes"][0]
            .as_str()
            .is_some_and(|note| note.contains("emails are not being sent")),
        "readiness says sending fails: {}",
        ready.text
    );
    let sink = SmtpSink::start_on(port, false);
    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 1, "delivered after the server came back");
    let sent = wait_for_status(&app, "sent", Duration::from_secs(5)).await;
    assert!(sent[0].attempts >= 2, "{sent:?}");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.body["notes"], json!([]), "{}", ready.text);
}

#[rocket::async_test]
async fn with_smtp_disabled_nothing_is_queued_or_sent() {
    let app = TestApp::spawn_with(|f| f.merge(("smtp.enabled", false))).await;
    app.register("alice").await;
    assert!(jobs(&app).await.is_empty());
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
}

#[rocket::async_test]
async fn a_refusing_server_makes_the_job_dead_once_give_up_after_has_passed() {
    let sink = SmtpSink::start(true);
    let app = TestApp::spawn_with(smtp(sink.url(), 4)).await;
    app.register("alice").await;
    let started = std::time::Instant::now();
    let jobs = wait_for_status(&app, "dead", Duration::from_secs(30)).await;
    assert_eq!(jobs[0].status, "dead", "{jobs:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "retried until give_up_after: dead after {:?}",
        started.elapsed()
    );
    // 1 s, 2 s, then the last attempt at the deadline: back-off, not a
    // tight loop.
    assert!((3..=5).contains(&jobs[0].attempts), "{jobs:?}");
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550"),
        "{jobs:?}"
    );
    assert!(sink.messages().is_empty());
    // The user is there all the same: mail never fails a registration.
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
}

#[rocket::async_test]
async fn without_smtp_the_email_is_logged_and_the_job_done() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let jobs = wait_for_status(&app, "sent", Duration::from_secs(10)).await;
    assert_eq!(jobs[0].status, "sent");
}

#[rocket::async_test]
async fn registration_does_not_wait_for_smtp() {
    // A server that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(2).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    let app = TestApp::spawn_with(smtp(format!("smtp://127.0.0.1:{port}"), 3600)).await;
    let created = app.register("alice").await;
    assert_eq!(
        created["username"], "alice",
        "answered while the email is stuck"
    );
    rocket::tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jobs(&app).await[0].status, "pending");
    drop(holder);
}

#[rocket::async_test]
async fn a_slow_smtp_server_never_gets_an_email_twice_from_two_workers() {
    let sink = SmtpSink::start_slow(1.5);
    let first = TestApp::spawn_with(smtp(sink.url(), 3600)).await;
    let second = first.spawn_sharing(smtp(sink.url(), 3600)).await;
    for i in 0..6 {
        first.register(&format!("slow{i}")).await;
    }
    let messages = sink.wait_for(6, Duration::from_secs(60)).await;
    let jobs = wait_for_status(&second, "sent", Duration::from_secs(10)).await;
    assert!(
        jobs.iter().all(|j| j.status == "sent" && j.attempts == 1),
        "one attempt each: {jobs:?}"
    );
    // Time for a second send, had any job been claimed twice.
    rocket::tokio::time::sleep(Duration::from_secs(3)).await;
    let messages = if messages.len() == 6 {
        sink.messages()
    } else {
        messages
    };
    assert_eq!(messages.len(), 6, "each email exactly once");
}

#[rocket::async_test]
async fn two_workers_on_one_database_deliver_100_emails_exactly_once() {
    let sink = SmtpSink::start(false);
    let first = TestApp::spawn_with(smtp(sink.url(), 3600)).await;
    let second = first.spawn_sharing(smtp(sink.url(), 3600)).await;
    let db = roster::db::Db::fetch(first.client.rocket()).unwrap();
    let mut tx = db.begin().await.unwrap();
    for i in 0..100 {
        let payload = json!({"user_id": i, "username": format!("bulk{i}"), "email": format!("bulk{i}@example.com")});
        roster::db::outbox::enqueue(
            tx.conn(),
            roster::mail::WELCOME_EMAIL,
            &payload.to_string(),
            None,
            roster::db::now(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let messages = sink.wait_for(100, Duration::from_secs(60)).await;
    let jobs = wait_for_status(&first, "sent", Duration::from_secs(10)).await;
    assert!(
        jobs.iter().all(|j| j.status == "sent" && j.attempts == 1),
        "{jobs:?}"
    );
    rocket::tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = if messages.len() == 100 {
        sink.messages()
    } else {
        messages
    };
    let mut ids: Vec<&str> = messages
        .iter()
        .filter_map(|m| header(m, "Message-ID"))
        .collect();
    ids.sort_unstable();
    let total = ids.len();
    ids.dedup();
    assert_eq!((total, ids.len()), (100, 100), "each email exactly once");
    drop(second);
}

/// A deleted user's jobs, and the address they hold, go with the user,
/// whatever their state: one pending against a refusing server, one sent.
#[rocket::async_test]
async fn a_deleted_users_jobs_go_with_the_user() {
    let sink = SmtpSink::start(true);
    let app = TestApp::spawn_with(smtp(sink.url(), 3600)).await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    assert_eq!(jobs(&app).await.len(), 2, "a welcome job each");
    for user in [&alice, &bob] {
        let reply = app
            .delete_as(&admin, &format!("/api/v1/users/{}", user.id))
            .await;
        assert_eq!(reply.status, Status::NoContent);
    }
    assert_eq!(jobs(&app).await.len(), 0, "no job outlives its user");
}

/// Sent jobs are deleted after `smtp.keep_sent_days` (here 0): the worker
/// of an instance starting on the database deletes them; pending jobs stay.
#[rocket::async_test]
async fn sent_jobs_are_deleted_after_keep_sent_days() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let sent = wait_for_status(&app, "sent", Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    let second = app
        .spawn_sharing(|f| f.merge(("smtp.keep_sent_days", 0)))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !jobs(&second).await.is_empty() {
        assert!(Instant::now() < deadline, "the sent job was not deleted");
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
