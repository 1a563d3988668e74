//! Account lifecycle: email verification, password resets by email, the
//! per-address and per-client budgets of those emails,
//! `require_verified_email`, the `email_verified` and `last_login_at` user
//! fields, the caller's sessions (`/api/v1/auth/sessions`), deleting one's
//! own account, re-hashing at a new `bcrypt_cost`, and
//! `refresh_reuse_interval`.
//!
//! Emails go through the outbox to a real SMTP server of each test's own
//! ([`SmtpSink`]); tokens are read from the decoded `text/plain` part.
//! Reuse of a spent refresh token with the default interval (0) is covered
//! by `sessions::refresh_rotates_and_reuse_revokes_the_whole_family`.

use std::collections::BTreeSet;
use std::time::Duration;

use rocket::figment::Figment;
use rocket::http::Status;
use rocket_db_pools::Database;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::{decode_unverified, token_form};
use crate::helpers::{Reply, TestApp, TestUser, JWT_SECRET, PASSWORD};
use crate::limits::client;
use crate::smtp::{jobs, smtp, tokens_after, Mail, SmtpSink};

const PUBLIC_URL: &str = "https://app.example.com";
const NEW_PASSWORD: &str = "N3w-password";
const RESET_REQUESTED: &str = "If that address is registered, a reset email is on its way";
const VERIFICATION_SENT: &str = "A verification email is on its way";
const INVALID_TOKEN: &str = "Invalid or expired token";
const WELCOME_SUBJECT: &str = "User Registration";
const VERIFY_SUBJECT: &str = "Verify your email address";
const RESET_SUBJECT: &str = "Reset your password";
const VERIFY_PAGE: &str = "verify-email";
const RESET_PAGE: &str = "reset-password";
/// How long a test waits to be sure that an email is not coming.
const QUIET: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- helpers

/// An app that mails `sink`, with `public_url` [`PUBLIC_URL`], then `more`.
async fn mailing_app(sink: &SmtpSink, more: impl FnOnce(Figment) -> Figment) -> TestApp {
    let url = sink.url();
    TestApp::spawn_with(move |f| more(smtp(url, 3600)(f).merge(("public_url", PUBLIC_URL)))).await
}

fn email_of(username: &str) -> String {
    format!("{username}@example.com")
}

/// The token of the `{public_url}/{page}?token=<64 hex>` link in `mail`'s
/// text part, checking what every account email carries: the link, the
/// token itself beside it, and the token in the HTML part too.
fn link_token(mail: &Mail, public_url: &str, page: &str) -> String {
    let tokens = tokens_after(&mail.text, &format!("{public_url}/{page}?token="));
    let token = tokens.first().unwrap_or_else(|| {
        panic!(
            "no {public_url}/{page}?token=<64 hex> link in the text part:\n{}",
            mail.text
        )
    });
    assert!(
        tokens.iter().all(|t| t == token),
        "one token per email: {tokens:?}"
    );
    assert!(
        mail.text.matches(token.as_str()).count() >= 2,
        "the text part gives the token itself besides the link:\n{}",
        mail.text
    );
    assert!(
        mail.html.contains(&format!("{page}?token={token}")),
        "the HTML part has the link too:\n{}",
        mail.html
    );
    token.clone()
}

/// The token of the `k`th email to `username` with `subject`, linking to
/// `page` under [`PUBLIC_URL`].
async fn token_in(sink: &SmtpSink, username: &str, subject: &str, page: &str, k: usize) -> String {
    let mail = sink.mail_to(&email_of(username), subject, k).await;
    assert_eq!(mail.from, "noreply@example.com", "{}", mail.raw);
    link_token(&mail, PUBLIC_URL, page)
}

/// The verification token of `username`'s welcome email.
async fn welcome_token(sink: &SmtpSink, username: &str) -> String {
    token_in(sink, username, WELCOME_SUBJECT, VERIFY_PAGE, 1).await
}

async fn request_reset(app: &TestApp, email: &str) -> Reply {
    app.post("/api/v1/auth/password-reset", &json!({"email": email}))
        .await
}

fn assert_reset_accepted(reply: &Reply) {
    assert_eq!(
        (reply.status, &reply.body),
        (Status::Accepted, &json!({"detail": RESET_REQUESTED})),
        "{}",
        reply.text
    );
}

/// Requests a reset for `username` and returns the token of the `k`th
/// reset email it has received.
async fn reset_token(app: &TestApp, sink: &SmtpSink, username: &str, k: usize) -> String {
    assert_reset_accepted(&request_reset(app, &email_of(username)).await);
    token_in(sink, username, RESET_SUBJECT, RESET_PAGE, k).await
}

async fn confirm_reset(app: &TestApp, token: &str, new_password: &str) -> Reply {
    app.post(
        "/api/v1/auth/password-reset/confirm",
        &json!({"token": token, "new_password": new_password}),
    )
    .await
}

async fn verify(app: &TestApp, token: &str) -> Reply {
    app.post("/api/v1/auth/verify-email", &json!({"token": token}))
        .await
}

async fn resend(app: &TestApp, user: &TestUser) -> Reply {
    app.call(user, "POST", "/api/v1/auth/verify-email/resend", None)
        .await
}

fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(
        (reply.status, &reply.body),
        (Status::BadRequest, &json!({"detail": INVALID_TOKEN})),
        "{what}: {}",
        reply.text
    );
}

/// `email_verified` of `user` as `GET /api/v1/users/me` shows it.
async fn verified(app: &TestApp, user: &TestUser) -> Value {
    let me = app.get_as(user, "/api/v1/users/me").await;
    assert_eq!(me.status, Status::Ok, "{}", me.text);
    me.body["email_verified"].clone()
}

/// `user[key]`, which must be there (null or not).
fn present<'a>(user: &'a Value, key: &str) -> &'a Value {
    user.get(key)
        .unwrap_or_else(|| panic!("no {key} in {user}"))
}

fn timestamp(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Logs `username` in with `User-Agent: agent` (none when `None`).
async fn sign_in_with_agent(app: &TestApp, username: &str, agent: Option<&str>) -> TestUser {
    let mut req = app
        .req("POST", "/api/v1/auth/login")
        .json(&json!({"username": username, "password": PASSWORD}));
    if let Some(agent) = agent {
        req = req.header("User-Agent", agent);
    }
    let reply = req.send().await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    pair(&reply)
}

/// The signed-in user of a reply that carries a token pair.
fn pair(reply: &Reply) -> TestUser {
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    TestUser {
        id: decode_unverified(&token)["sub"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        token,
        refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// The session an access token belongs to.
fn sid(user: &TestUser) -> String {
    decode_unverified(&user.token)["sid"]
        .as_str()
        .expect("sid")
        .to_owned()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.post(
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh_token}),
    )
    .await
}

/// `GET /api/v1/auth/sessions` as `user`.
async fn sessions(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let reply = app.get_as(user, "/api/v1/auth/sessions").await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    reply
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", reply.text))
        .clone()
}

fn field<'a>(sessions: &'a [Value], name: &str) -> Vec<&'a Value> {
    sessions.iter().map(|s| &s[name]).collect()
}

async fn me_status(app: &TestApp, user: &TestUser) -> Status {
    app.get_as(user, "/api/v1/users/me").await.status
}

/// The password hash stored for `username`, read through the library.
async fn stored_hash(app: &TestApp, username: &str) -> String {
    let db = roster::db::Db::fetch(app.client.rocket()).expect("database attached");
    let mut conn = db.acquire().await.expect("a connection");
    roster::db::users::find_by_username(conn.conn(), username)
        .await
        .expect("the query")
        .expect("the user")
        .password_hash
}

/// The distinct header names of a reply, lowercased.
fn header_names(reply: &Reply) -> BTreeSet<String> {
    reply
        .headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect()
}

// ------------------------------------------------------ verification emails

#[rocket::async_test]
async fn the_welcome_email_carries_a_verification_link_under_the_default_public_url() {
    let sink = SmtpSink::start(false);
    let app = TestApp::spawn_with(smtp(sink.url(), 3600)).await;
    app.register("alice").await;
    let mail = sink.mail_to("alice@example.com", WELCOME_SUBJECT, 1).await;
    assert_eq!(mail.from, "noreply@example.com");
    let token = link_token(&mail, "http://127.0.0.1:8000", VERIFY_PAGE);
    assert!(!mail.raw.contains(PASSWORD), "no password in an email");
    let reply = verify(&app, &token).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
}

#[rocket::async_test]
async fn verifying_the_email_marks_it_verified_and_spends_the_token() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let created = app.register("alice").await;
    assert_eq!(present(&created, "email_verified"), &json!(false));
    let alice = app.sign_in("alice").await;
    assert_eq!(verified(&app, &alice).await, json!(false));
    let token = welcome_token(&sink, "alice").await;
    let reply = verify(&app, &token).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    assert_eq!(verified(&app, &alice).await, json!(true));
    assert_invalid_token(&verify(&app, &token).await, "a spent token");
}

#[rocket::async_test]
async fn unknown_malformed_and_expired_verification_tokens_are_400() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("verify_email_ttl", 1))).await;
    let alice = app.user("alice").await;
    let token = welcome_token(&sink, "alice").await;
    assert_invalid_token(&verify(&app, &"0".repeat(64)).await, "an unknown token");
    assert_invalid_token(&verify(&app, "not-a-token").await, "a malformed token");
    rocket::tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_invalid_token(&verify(&app, &token).await, "an expired token");
    assert_eq!(verified(&app, &alice).await, json!(false));
}

#[rocket::async_test]
async fn a_resend_mails_a_new_token_that_voids_the_older_one() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    let first = welcome_token(&sink, "alice").await;
    let reply = resend(&app, &alice).await;
    assert_eq!(
        (reply.status, &reply.body),
        (Status::Accepted, &json!({"detail": VERIFICATION_SENT})),
        "{}",
        reply.text
    );
    let second = token_in(&sink, "alice", VERIFY_SUBJECT, VERIFY_PAGE, 1).await;
    assert_ne!(second, first, "a fresh token");
    assert_invalid_token(&verify(&app, &first).await, "the older token");
    assert_eq!(verified(&app, &alice).await, json!(false));
    assert_eq!(verify(&app, &second).await.status, Status::NoContent);
    assert_eq!(verified(&app, &alice).await, json!(true));
}

#[rocket::async_test]
async fn a_resend_for_a_verified_user_is_204_and_sends_nothing() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    let token = welcome_token(&sink, "alice").await;
    assert_eq!(verify(&app, &token).await.status, Status::NoContent);
    let reply = resend(&app, &alice).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    sink.assert_no_more_than(1, QUIET).await;
    let anonymous = app
        .req("POST", "/api/v1/auth/verify-email/resend")
        .send()
        .await;
    assert_eq!(anonymous.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn resends_beyond_account_email_per_hour_are_429_and_send_nothing() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("rate_limit.account_email_per_hour", 2))).await;
    let alice = app.user("alice").await;
    welcome_token(&sink, "alice").await;
    for k in 1..=2 {
        assert_eq!(resend(&app, &alice).await.status, Status::Accepted, "#{k}");
        token_in(&sink, "alice", VERIFY_SUBJECT, VERIFY_PAGE, k).await;
    }
    let over = resend(&app, &alice).await;
    assert_eq!(over.status, Status::TooManyRequests, "{}", over.text);
    sink.assert_no_more_than(3, QUIET).await;
}

#[rocket::async_test]
async fn changing_the_email_unverifies_it_and_mails_a_token_to_the_new_address() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let admin = app.admin("root").await;
    for (name, how) in [
        ("alice", "PATCH /users/me"),
        ("bob", "PUT /users/{id}"),
        ("carol", "PATCH /users/{id} by an admin"),
    ] {
        let user = app.user(name).await;
        let token = welcome_token(&sink, name).await;
        assert_eq!(verify(&app, &token).await.status, Status::NoContent);
        assert_eq!(verified(&app, &user).await, json!(true), "{how}");
        let new_name = format!("{name}.new");
        let new_email = email_of(&new_name);
        let path = format!("/api/v1/users/{}", user.id);
        let reply = match name {
            "alice" => {
                app.patch_as(&user, "/api/v1/users/me", &json!({"email": new_email}))
                    .await
            }
            "bob" => {
                app.put_as(&user, &path, &json!({"username": name, "email": new_email}))
                    .await
            }
            _ => {
                app.patch_as(&admin, &path, &json!({"email": new_email}))
                    .await
            }
        };
        assert_eq!(reply.status, Status::Ok, "{how}: {}", reply.text);
        assert_eq!(
            (&reply.body["email"], &reply.body["email_verified"]),
            (&json!(new_email), &json!(false)),
            "{how}"
        );
        assert_eq!(verified(&app, &user).await, json!(false), "{how}");
        let token = token_in(&sink, &new_name, VERIFY_SUBJECT, VERIFY_PAGE, 1).await;
        assert_eq!(
            verify(&app, &token).await.status,
            Status::NoContent,
            "{how}"
        );
        assert_eq!(verified(&app, &user).await, json!(true), "{how}");
    }
}

#[rocket::async_test]
async fn the_welcome_token_no_longer_verifies_once_the_email_changed() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    let welcome = welcome_token(&sink, "alice").await;
    let reply = app
        .patch_as(
            &alice,
            "/api/v1/users/me",
            &json!({"email": "alice.new@example.com"}),
        )
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_invalid_token(
        &verify(&app, &welcome).await,
        "a token sent to the old address",
    );
    assert_eq!(verified(&app, &alice).await, json!(false));
    let token = token_in(&sink, "alice.new", VERIFY_SUBJECT, VERIFY_PAGE, 1).await;
    assert_eq!(verify(&app, &token).await.status, Status::NoContent);
}

#[rocket::async_test]
async fn changing_other_fields_leaves_email_verified_and_the_token_as_they_are() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let alice_token = welcome_token(&sink, "alice").await;
    let bob_token = welcome_token(&sink, "bob").await;
    assert_eq!(verify(&app, &alice_token).await.status, Status::NoContent);
    let changes = json!({"age": 40, "username": "alicia"});
    let reply = app.patch_as(&alice, "/api/v1/users/me", &changes).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(reply.body["email_verified"], json!(true));
    assert_eq!(verified(&app, &alice).await, json!(true));
    let reply = app
        .patch_as(&bob, "/api/v1/users/me", &json!({"age": 41}))
        .await;
    assert_eq!(reply.body["email_verified"], json!(false), "{}", reply.text);
    assert_eq!(
        verify(&app, &bob_token).await.status,
        Status::NoContent,
        "bob's token still works"
    );
    sink.assert_no_more_than(2, QUIET).await;
}

#[rocket::async_test]
async fn verification_and_reset_subjects_follow_the_settings() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| {
        f.merge(("smtp.verify_subject", "Confirm your address"))
            .merge(("smtp.reset_subject", "Password help"))
    })
    .await;
    let alice = app.user("alice").await;
    welcome_token(&sink, "alice").await;
    assert_eq!(resend(&app, &alice).await.status, Status::Accepted);
    token_in(&sink, "alice", "Confirm your address", VERIFY_PAGE, 1).await;
    assert_reset_accepted(&request_reset(&app, "alice@example.com").await);
    token_in(&sink, "alice", "Password help", RESET_PAGE, 1).await;
}

// ---------------------------------------------------------- password reset

#[rocket::async_test]
async fn a_reset_email_carries_a_reset_link_under_public_url() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    app.register("alice").await;
    let reply = request_reset(&app, "alice@example.com").await;
    assert_reset_accepted(&reply);
    let mail = sink.mail_to("alice@example.com", RESET_SUBJECT, 1).await;
    assert_eq!(mail.from, "noreply@example.com");
    link_token(&mail, PUBLIC_URL, RESET_PAGE);
    assert!(!mail.raw.contains(PASSWORD), "no password in an email");
}

#[rocket::async_test]
async fn a_password_reset_changes_the_password_ends_every_session_and_spends_the_token() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let laptop = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let token = reset_token(&app, &sink, "alice", 1).await;
    let reply = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    for session in [&laptop, &phone] {
        app.assert_signed_out(session).await;
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        Status::Unauthorized
    );
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, Status::Ok);
    let again = confirm_reset(&app, &token, "An0ther-password").await;
    assert_invalid_token(&again, "a spent token");
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, Status::Ok);
}

#[rocket::async_test]
async fn a_password_reset_marks_the_email_verified() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    assert_eq!(verified(&app, &alice).await, json!(false));
    let token = reset_token(&app, &sink, "alice", 1).await;
    assert_eq!(
        confirm_reset(&app, &token, NEW_PASSWORD).await.status,
        Status::NoContent
    );
    let alice = app.sign_in_with("alice", NEW_PASSWORD).await;
    assert_eq!(verified(&app, &alice).await, json!(true));
}

#[rocket::async_test]
async fn a_weak_new_password_is_422_and_leaves_everything_including_the_token() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    let token = reset_token(&app, &sink, "alice", 1).await;
    let weak = confirm_reset(&app, &token, "short").await;
    assert_eq!(weak.status, Status::UnprocessableEntity, "{}", weak.text);
    let fields: Vec<String> = weak.field_errors().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["body.new_password"]);
    assert_eq!(
        me_status(&app, &alice).await,
        Status::Ok,
        "the session stays"
    );
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    let reply = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(
        reply.status,
        Status::NoContent,
        "the token still works: {}",
        reply.text
    );
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, Status::Ok);
}

#[rocket::async_test]
async fn unknown_malformed_and_expired_reset_tokens_are_400_and_change_nothing() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("password_reset_ttl", 1))).await;
    let alice = app.user("alice").await;
    let token = reset_token(&app, &sink, "alice", 1).await;
    let unknown = confirm_reset(&app, &"0".repeat(64), NEW_PASSWORD).await;
    assert_invalid_token(&unknown, "an unknown token");
    let malformed = confirm_reset(&app, "not-a-token", NEW_PASSWORD).await;
    assert_invalid_token(&malformed, "a malformed token");
    rocket::tokio::time::sleep(Duration::from_millis(2200)).await;
    let expired = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_invalid_token(&expired, "an expired token");
    assert_eq!(me_status(&app, &alice).await, Status::Ok);
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    assert_eq!(
        app.login("alice", NEW_PASSWORD).await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn a_newer_reset_token_voids_the_older_one() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    app.register("alice").await;
    let older = reset_token(&app, &sink, "alice", 1).await;
    let newer = reset_token(&app, &sink, "alice", 2).await;
    assert_ne!(older, newer);
    assert_invalid_token(
        &confirm_reset(&app, &older, NEW_PASSWORD).await,
        "the older token",
    );
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    assert_eq!(
        confirm_reset(&app, &newer, NEW_PASSWORD).await.status,
        Status::NoContent
    );
}

#[rocket::async_test]
async fn each_token_works_only_for_its_own_kind_and_kinds_do_not_void_each_other() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    let alice = app.user("alice").await;
    let verification = welcome_token(&sink, "alice").await;
    let reset = reset_token(&app, &sink, "alice", 1).await;
    assert_invalid_token(&verify(&app, &reset).await, "a reset token to verify");
    let crossed = confirm_reset(&app, &verification, NEW_PASSWORD).await;
    assert_invalid_token(&crossed, "a verification token to reset");
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    assert_eq!(verified(&app, &alice).await, json!(false));
    assert_eq!(verify(&app, &verification).await.status, Status::NoContent);
    assert_eq!(
        confirm_reset(&app, &reset, NEW_PASSWORD).await.status,
        Status::NoContent
    );
}

#[rocket::async_test]
async fn reset_replies_for_unknown_and_registered_addresses_are_identical() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    let known = request_reset(&app, "alice@example.com").await;
    assert_reset_accepted(&unknown);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.text, unknown.text, "byte-identical bodies");
    assert_eq!(header_names(&known), header_names(&unknown));
}

#[rocket::async_test]
async fn a_reset_for_an_unknown_address_sends_no_email() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f).await;
    app.register("alice").await;
    welcome_token(&sink, "alice").await;
    assert_reset_accepted(&request_reset(&app, "nobody@example.com").await);
    // A registered address after it: its email arrives, and nothing else.
    reset_token(&app, &sink, "alice", 1).await;
    sink.assert_no_more_than(2, QUIET).await;
    assert_eq!(jobs(&app).await.len(), 2, "the welcome and alice's reset");
}

#[rocket::async_test]
async fn a_reset_request_with_an_invalid_email_is_422() {
    let app = TestApp::spawn().await;
    let reply = request_reset(&app, "not-an-email").await;
    assert_eq!(reply.status, Status::UnprocessableEntity, "{}", reply.text);
    let fields: Vec<String> = reply.field_errors().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["body.email"]);
}

#[rocket::async_test]
async fn past_account_email_per_hour_a_reset_request_answers_alike_but_sends_nothing() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("rate_limit.account_email_per_hour", 2))).await;
    // Made by `admin create`: no welcome email.
    app.create_admin("root").await;
    app.create_admin("other").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    reset_token(&app, &sink, "root", 1).await;
    reset_token(&app, &sink, "root", 2).await;
    let silent = request_reset(&app, "root@example.com").await;
    assert_reset_accepted(&silent);
    assert_eq!(silent.text, unknown.text);
    assert_eq!(silent.header("Retry-After"), None, "{:?}", silent.headers);
    sink.assert_no_more_than(2, QUIET).await;
    // The budget is the address's own.
    reset_token(&app, &sink, "other", 1).await;
}

#[rocket::async_test]
async fn resets_and_verification_resends_share_one_budget_per_address() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("rate_limit.account_email_per_hour", 2))).await;
    let alice = app.user("alice").await;
    welcome_token(&sink, "alice").await;
    assert_eq!(resend(&app, &alice).await.status, Status::Accepted);
    token_in(&sink, "alice", VERIFY_SUBJECT, VERIFY_PAGE, 1).await;
    reset_token(&app, &sink, "alice", 1).await;
    assert_reset_accepted(&request_reset(&app, "alice@example.com").await);
    assert_eq!(resend(&app, &alice).await.status, Status::TooManyRequests);
    sink.assert_no_more_than(3, QUIET).await;
}

#[rocket::async_test]
async fn reset_requests_beyond_password_reset_per_hour_from_one_client_are_429() {
    let app = TestApp::spawn_with(|f| f.merge(("rate_limit.password_reset_per_hour", 2))).await;
    let from = client();
    let send = |n: usize, from| {
        app.req("POST", "/api/v1/auth/password-reset")
            .json(&json!({"email": format!("nobody{n}@example.com")}))
            .from(from)
            .send()
    };
    for (n, expected) in [Status::Accepted, Status::Accepted, Status::TooManyRequests]
        .into_iter()
        .enumerate()
    {
        let reply = send(n, from).await;
        assert_eq!(reply.status, expected, "request #{n}: {}", reply.text);
    }
    assert_eq!(
        send(3, client()).await.status,
        Status::Accepted,
        "another client has its own budget"
    );
}

// ---------------------------------------------------- require_verified_email

#[rocket::async_test]
async fn with_require_verified_email_an_unverified_user_is_403_only_with_the_right_password() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("require_verified_email", true))).await;
    app.register("alice").await;
    let wrong = app.login("alice", "Wrong-passw0rd").await;
    assert_eq!(
        (wrong.status, &wrong.body),
        (
            Status::Unauthorized,
            &json!({"detail": "Incorrect username or password"})
        )
    );
    let right = app.login("alice", PASSWORD).await;
    assert_eq!(
        (right.status, &right.body),
        (Status::Forbidden, &json!({"detail": "Email not verified"}))
    );
    let form = format!("grant_type=password&username=alice&password={PASSWORD}");
    let grant = token_form(&app, &form).await;
    assert_eq!(grant.status, Status::BadRequest, "{}", grant.text);
    assert_eq!(
        (&grant.body["error"], &grant.body["error_description"]),
        (&json!("invalid_grant"), &json!("Email not verified"))
    );
    let token = welcome_token(&sink, "alice").await;
    assert_eq!(verify(&app, &token).await.status, Status::NoContent);
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Ok);
    assert_eq!(token_form(&app, &form).await.status, Status::Ok);
}

#[rocket::async_test]
async fn with_require_verified_email_admins_and_users_who_reset_their_password_log_in() {
    let sink = SmtpSink::start(false);
    let app = mailing_app(&sink, |f| f.merge(("require_verified_email", true))).await;
    app.create_admin("root").await;
    assert_eq!(app.login("root", PASSWORD).await.status, Status::Ok);
    app.register("alice").await;
    assert_eq!(app.login("alice", PASSWORD).await.status, Status::Forbidden);
    let token = reset_token(&app, &sink, "alice", 1).await;
    assert_eq!(
        confirm_reset(&app, &token, NEW_PASSWORD).await.status,
        Status::NoContent
    );
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, Status::Ok);
}

#[rocket::async_test]
async fn by_default_an_unverified_user_logs_in() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let reply = app.login("alice", PASSWORD).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(verified(&app, &pair(&reply)).await, json!(false));
}

// ------------------------------------------------------------- user fields

#[rocket::async_test]
async fn users_made_by_admin_create_are_verified_and_registered_ones_are_not() {
    let app = TestApp::spawn().await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    assert_eq!(verified(&app, &root).await, json!(true));
    assert_eq!(verified(&app, &alice).await, json!(false));
}

#[rocket::async_test]
async fn last_login_at_is_null_until_the_first_login_then_follows_each_login() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let created = app.register("alice").await;
    assert_eq!(present(&created, "last_login_at"), &Value::Null);
    let path = format!("/api/v1/users/{}", created["id"]);
    let seen = app.get_as(&admin, &path).await;
    assert_eq!(seen.status, Status::Ok, "{}", seen.text);
    assert_eq!(present(&seen.body, "last_login_at"), &Value::Null);

    let before = OffsetDateTime::now_utc() - Duration::from_secs(1);
    let alice = app.sign_in("alice").await;
    let after = OffsetDateTime::now_utc() + Duration::from_secs(1);
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    let first = timestamp(&me.body["last_login_at"]);
    assert!(
        before <= first && first <= after,
        "{first} not in [{before}, {after}]"
    );

    assert_eq!(
        app.login("alice", "Wrong-passw0rd").await.status,
        Status::Unauthorized
    );
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    assert_eq!(
        timestamp(&me.body["last_login_at"]),
        first,
        "a failed login is no login"
    );

    rocket::tokio::time::sleep(Duration::from_millis(1100)).await;
    app.sign_in("alice").await;
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    assert!(timestamp(&me.body["last_login_at"]) > first, "{}", me.text);
}

#[rocket::async_test]
async fn email_verified_and_last_login_at_are_hidden_from_other_non_admins() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let paths = [
        format!("/api/v1/users/{}", alice.id),
        "/api/v1/users".to_owned(),
        "/api/v2/users".to_owned(),
        "/api/v1/users/search?query=ali".to_owned(),
    ];
    for path in &paths {
        for (viewer, viewer_name) in [(&bob, "bob"), (&admin, "root")] {
            let reply = app.get_as(viewer, path).await;
            assert_eq!(reply.status, Status::Ok, "{path}: {}", reply.text);
            let users = match &reply.body {
                Value::Array(users) => users.clone(),
                Value::Object(page) if page.contains_key("users") => {
                    page["users"].as_array().expect("users").clone()
                }
                user => vec![user.clone()],
            };
            assert!(
                users.iter().any(|u| u["username"] == "alice"),
                "{path}: {}",
                reply.text
            );
            for user in users {
                let shown = (
                    present(&user, "email_verified"),
                    present(&user, "last_login_at"),
                );
                let name = user["username"].as_str().unwrap();
                if viewer_name == "root" || name == viewer_name {
                    assert!(
                        shown.0.is_boolean() && shown.1.is_string(),
                        "{viewer_name} sees {name}'s fields at {path}: {user}"
                    );
                } else {
                    assert_eq!(
                        shown,
                        (&Value::Null, &Value::Null),
                        "{viewer_name} reads {name} at {path}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------- sessions

#[rocket::async_test]
async fn the_sessions_list_shows_the_callers_open_sessions_newest_first() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let laptop = sign_in_with_agent(&app, "alice", Some("Laptop/1.0")).await;
    let bare = sign_in_with_agent(&app, "alice", None).await;
    let phone = sign_in_with_agent(&app, "alice", Some("Phone/2.0")).await;
    let gone = sign_in_with_agent(&app, "alice", Some("Gone/3.0")).await;
    let logout = app.call(&gone, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(logout.status, Status::NoContent);
    let bob = app.user("bob").await;

    let listed = sessions(&app, &bare).await;
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&phone), sid(&bare), sid(&laptop)]);
    assert_eq!(
        field(&listed, "user_agent"),
        [&json!("Phone/2.0"), &Value::Null, &json!("Laptop/1.0")]
    );
    assert_eq!(
        field(&listed, "current"),
        [&json!(false), &json!(true), &json!(false)]
    );
    let expected: BTreeSet<&str> = ["id", "created_at", "last_used_at", "user_agent", "current"]
        .into_iter()
        .collect();
    for session in &listed {
        let keys: BTreeSet<&str> = session
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, expected, "{session}");
        let created = timestamp(&session["created_at"]);
        assert!(timestamp(&session["last_used_at"]) >= created, "{session}");
    }
    let bobs = sessions(&app, &bob).await;
    let ids: Vec<&str> = bobs.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&bob)], "only bob's own");
    assert_eq!(
        app.get("/api/v1/auth/sessions").await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn current_marks_exactly_the_session_of_the_token_used() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let users = [
        app.sign_in("alice").await,
        app.sign_in("alice").await,
        app.sign_in("alice").await,
    ];
    for user in &users {
        let listed = sessions(&app, user).await;
        let current: Vec<&str> = listed
            .iter()
            .filter(|s| s["current"] == json!(true))
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(current, [sid(user)]);
        assert_eq!(listed.len(), 3);
    }
}

#[rocket::async_test]
async fn a_refresh_moves_last_used_at_of_its_session() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let before = sessions(&app, &alice).await;
    assert_eq!(before.len(), 1);
    let used = timestamp(&before[0]["last_used_at"]);
    assert!(
        (OffsetDateTime::now_utc() - used).whole_seconds().abs() <= 5,
        "set at login: {used}"
    );
    rocket::tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = pair(&refresh(&app, &alice.refresh).await);
    let after = sessions(&app, &renewed).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], before[0]["id"], "the same session");
    assert_eq!(after[0]["created_at"], before[0]["created_at"]);
    assert!(timestamp(&after[0]["last_used_at"]) > used, "{}", after[0]);
}

#[rocket::async_test]
async fn deleting_a_session_ends_it_and_leaves_the_others_working() {
    let app = TestApp::spawn().await;
    let laptop = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let bob = app.user("bob").await;
    let path = format!("/api/v1/auth/sessions/{}", sid(&phone));
    let reply = app.delete_as(&laptop, &path).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    app.assert_signed_out(&phone).await;
    assert_eq!(me_status(&app, &laptop).await, Status::Ok);
    assert_eq!(me_status(&app, &bob).await, Status::Ok);
    let listed = sessions(&app, &laptop).await;
    let ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&laptop)], "an ended session is not listed");
    let own = format!("/api/v1/auth/sessions/{}", sid(&laptop));
    assert_eq!(app.delete_as(&laptop, &own).await.status, Status::NoContent);
    app.assert_signed_out(&laptop).await;
}

#[rocket::async_test]
async fn deleting_another_users_or_an_unknown_session_is_404_and_a_non_uuid_is_422() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let not_found = json!({"detail": "Session not found"});
    for id in [sid(&alice), uuid::Uuid::new_v4().to_string()] {
        let reply = app
            .delete_as(&bob, &format!("/api/v1/auth/sessions/{id}"))
            .await;
        assert_eq!((reply.status, &reply.body), (Status::NotFound, &not_found));
    }
    assert_eq!(me_status(&app, &alice).await, Status::Ok);
    assert_eq!(refresh(&app, &alice.refresh).await.status, Status::Ok);
    let reply = app
        .delete_as(&bob, "/api/v1/auth/sessions/not-a-uuid")
        .await;
    assert_eq!(reply.status, Status::UnprocessableEntity, "{}", reply.text);
    let anonymous = app
        .req("DELETE", &format!("/api/v1/auth/sessions/{}", sid(&bob)))
        .send()
        .await;
    assert_eq!(anonymous.status, Status::Unauthorized);
    assert_eq!(me_status(&app, &bob).await, Status::Ok);
}

// ------------------------------------------------------ deleting oneself

#[rocket::async_test]
async fn deleting_oneself_removes_the_account_and_every_session() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let reply = app.delete_as(&alice, "/api/v1/users/me").await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    for session in [&alice, &phone] {
        app.assert_signed_out(session).await;
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        Status::Unauthorized
    );
    let path = format!("/api/v1/users/{}", alice.id);
    assert_eq!(app.get_as(&admin, &path).await.status, Status::NotFound);
}

#[rocket::async_test]
async fn the_last_active_admin_cannot_delete_themself_but_one_of_two_can() {
    let app = TestApp::spawn().await;
    let root = app.admin("root").await;
    app.user("alice").await;
    let refused = app.delete_as(&root, "/api/v1/users/me").await;
    assert_eq!(refused.status, Status::Conflict, "{}", refused.text);
    assert_eq!(me_status(&app, &root).await, Status::Ok);
    let other = app.admin("other").await;
    assert_eq!(
        app.delete_as(&root, "/api/v1/users/me").await.status,
        Status::NoContent
    );
    assert_eq!(
        app.login("root", PASSWORD).await.status,
        Status::Unauthorized
    );
    assert_eq!(me_status(&app, &other).await, Status::Ok);
}

// ---------------------------------------------------------------- re-hash

#[rocket::async_test]
async fn a_login_rehashes_a_password_stored_at_another_bcrypt_cost() {
    let first = TestApp::spawn().await;
    let earlier = first.user("alice").await;
    let original = stored_hash(&first, "alice").await;
    assert!(original.starts_with("$2b$04$"), "{original}");
    let second = first.spawn_sharing(|f| f.merge(("bcrypt_cost", 5))).await;

    let wrong = second.login("alice", "Wrong-passw0rd").await;
    assert_eq!(wrong.status, Status::Unauthorized);
    assert_eq!(
        stored_hash(&first, "alice").await,
        original,
        "a failed login changes nothing"
    );

    assert_eq!(second.login("alice", PASSWORD).await.status, Status::Ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let rehashed = loop {
        let hash = stored_hash(&first, "alice").await;
        if hash != original || std::time::Instant::now() > deadline {
            break hash;
        }
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(rehashed.starts_with("$2b$05$"), "{rehashed}");
    assert_eq!(
        me_status(&first, &earlier).await,
        Status::Ok,
        "re-hashing ends no session"
    );
    assert_eq!(second.login("alice", PASSWORD).await.status, Status::Ok);
    assert_eq!(
        stored_hash(&first, "alice").await,
        rehashed,
        "a login at the configured cost keeps the hash"
    );
}

// ------------------------------------------------- refresh_reuse_interval

#[rocket::async_test]
async fn within_refresh_reuse_interval_a_spent_token_gets_a_new_pair_in_the_same_session() {
    let app = TestApp::spawn_with(|f| f.merge(("refresh_reuse_interval", 5))).await;
    let alice = app.user("alice").await;
    let second = pair(&refresh(&app, &alice.refresh).await);
    let third = pair(&refresh(&app, &alice.refresh).await);
    assert_ne!(third.refresh, second.refresh);
    assert_eq!(sid(&third), sid(&alice), "the same session");
    for (which, user) in [("second", &second), ("third", &third)] {
        assert_eq!(me_status(&app, user).await, Status::Ok, "{which} pair");
    }
    assert_eq!(refresh(&app, &third.refresh).await.status, Status::Ok);
}

#[rocket::async_test]
async fn past_refresh_reuse_interval_a_spent_token_revokes_the_session() {
    let app = TestApp::spawn_with(|f| f.merge(("refresh_reuse_interval", 1))).await;
    let alice = app.user("alice").await;
    let second = pair(&refresh(&app, &alice.refresh).await);
    rocket::tokio::time::sleep(Duration::from_millis(2200)).await;
    let reuse = refresh(&app, &alice.refresh).await;
    assert_eq!(reuse.status, Status::Unauthorized, "{}", reuse.text);
    app.assert_signed_out(&second).await;
}

// ---------------------------------------------------------------- settings

#[rocket::async_test]
async fn out_of_range_account_settings_are_refused_at_start() {
    let base = || {
        roster::config::figment()
            .merge(("databases.roster.url", "sqlite::memory:"))
            .merge(("jwt_secret", JWT_SECRET))
            .merge(("bcrypt_cost", 4))
            .merge(("log_level", "off"))
    };
    for (key, value) in [("refresh_reuse_interval", 301), ("password_reset_ttl", 0)] {
        let Err(err) = roster::build_rocket(base().merge((key, value))) else {
            panic!("{key} = {value} must not start");
        };
        assert!(err.to_string().contains(key), "{err}");
    }
    assert!(roster::build_rocket(base().merge(("refresh_reuse_interval", 300))).is_ok());
}
