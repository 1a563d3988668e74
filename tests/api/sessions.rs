//! Sessions: refresh-token rotation, logout, and the changes that end
//! every session of a user.

use rocket::http::{ContentType, Status};
use serde_json::json;

use crate::auth::{decode_unverified, me};
use crate::helpers::{TestApp, TestUser, PASSWORD};

#[rocket::async_test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let first = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_eq!(first.status, Status::Ok, "{}", first.text);
    let second_refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    let second_access = first.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, alice.refresh);
    assert_eq!(
        decode_unverified(&second_access)["sid"],
        decode_unverified(&alice.token)["sid"],
        "the same session"
    );
    assert_eq!(
        me(&app, &format!("Bearer {second_access}")).await.status,
        Status::Ok
    );

    // The spent token comes back: theft. The whole family ends.
    let reuse = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_eq!(reuse.status, Status::Unauthorized);
    let after = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": second_refresh}),
        )
        .await;
    assert_eq!(
        after.status,
        Status::Unauthorized,
        "the newer token of the family is revoked too"
    );
    assert_eq!(
        me(&app, &format!("Bearer {second_access}")).await.status,
        Status::Unauthorized
    );
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );

    // Other sessions of the user are untouched.
    let other = app.sign_in("alice").await;
    assert_eq!(
        app.get_as(&other, "/api/v1/users/me").await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn unknown_expired_and_malformed_refresh_tokens_are_refused() {
    let app = TestApp::spawn_with(|f| f.merge(("refresh_token_ttl", 1))).await;
    let alice = app.user("alice").await;
    let unknown = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": "0".repeat(64)}),
        )
        .await;
    assert_eq!(unknown.status, Status::Unauthorized);
    let missing = app.post("/api/v1/auth/refresh", &json!({})).await;
    assert_eq!(
        missing.field_errors(),
        vec![("body.refresh_token".into(), "missing".into())]
    );
    rocket::tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_eq!(
        (expired.status, expired.body),
        (
            Status::Unauthorized,
            json!({"detail": "Refresh token has expired"})
        )
    );
}

#[rocket::async_test]
async fn logout_ends_this_session_only() {
    let app = TestApp::spawn().await;
    let laptop = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let reply = app.call(&laptop, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    app.assert_signed_out(&laptop).await;
    assert_eq!(
        app.get_as(&phone, "/api/v1/users/me").await.status,
        Status::Ok
    );
    assert_eq!(
        app.request("POST", "/api/v1/auth/logout", None, &[])
            .await
            .status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn logout_with_a_refresh_token_ends_that_session() {
    let app = TestApp::spawn().await;
    let laptop = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let bob = app.user("bob").await;
    let body = json!({"refresh_token": phone.refresh});
    // Another user's refresh token is not yours to revoke.
    assert_eq!(
        app.post_as(&bob, "/api/v1/auth/logout", &body).await.status,
        Status::Unauthorized
    );
    assert_eq!(
        app.post_as(&laptop, "/api/v1/auth/logout", &body)
            .await
            .status,
        Status::NoContent
    );
    assert_eq!(
        app.get_as(&phone, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
    assert_eq!(
        app.get_as(&laptop, "/api/v1/users/me").await.status,
        Status::Ok
    );
    let extra = app
        .post_as(&laptop, "/api/v1/auth/logout", &json!({"everything": true}))
        .await;
    assert_eq!(
        extra.field_errors(),
        vec![("body.everything".into(), "extra_forbidden".into())]
    );
}

#[rocket::async_test]
async fn logout_all_ends_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let laptop = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let bob = app.user("bob").await;
    let reply = app
        .call(&laptop, "POST", "/api/v1/auth/logout?all=true", None)
        .await;
    assert_eq!(reply.status, Status::NoContent);
    for session in [&laptop, &phone] {
        app.assert_signed_out(session).await;
    }
    assert_eq!(
        app.get_as(&bob, "/api/v1/users/me").await.status,
        Status::Ok
    );
    let again = app.sign_in("alice").await;
    assert_eq!(
        app.get_as(&again, "/api/v1/users/me").await.status,
        Status::Ok
    );
    for query in ["all=maybe", "all=", "all=on"] {
        let path = format!("/api/v1/auth/logout?{query}");
        let bad = app.call(&again, "POST", &path, None).await;
        assert_eq!(
            bad.field_errors(),
            vec![("query.all".into(), "type_error".into())],
            "{query}"
        );
    }
    let still = app.get_as(&again, "/api/v1/users/me").await;
    assert_eq!(still.status, Status::Ok, "nothing was logged out");
}

#[rocket::async_test]
async fn changing_the_password_needs_the_current_one_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let phone = app.sign_in("alice").await;
    let wrong = app
        .put_as(
            &alice,
            "/api/v1/users/me/password",
            &json!({"current_password": "Wrong1pass", "new_password": "N3w-password"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.body),
        (
            Status::BadRequest,
            json!({"detail": "Current password is incorrect"})
        ),
        "not 401: the session is fine"
    );
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Ok
    );
    let weak = app
        .put_as(
            &alice,
            "/api/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": "weak"}),
        )
        .await;
    assert_eq!(
        weak.field_errors(),
        vec![("body.new_password".into(), "string_too_short".into())]
    );
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Ok,
        "nothing changed yet"
    );

    let ok = app
        .put_as(
            &alice,
            "/api/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": "N3w-password"}),
        )
        .await;
    assert_eq!(ok.status, Status::NoContent, "{}", ok.text);
    for session in [&alice, &phone] {
        app.assert_signed_out(session).await;
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        Status::Unauthorized
    );
    assert_eq!(app.login("alice", "N3w-password").await.status, Status::Ok);
}

#[rocket::async_test]
async fn an_admin_setting_a_password_ends_the_users_sessions() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let reply = app
        .patch_as(
            &admin,
            &format!("/api/v1/users/{}", alice.id),
            &json!({"password": "Adm1n-set-pass"}),
        )
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
    assert_eq!(
        app.login("alice", "Adm1n-set-pass").await.status,
        Status::Ok
    );
    assert_eq!(
        app.get_as(&admin, "/api/v1/users/me").await.status,
        Status::Ok,
        "the admin's session stays"
    );
}

#[rocket::async_test]
async fn two_concurrent_refreshes_of_one_token_never_both_succeed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = json!({"refresh_token": alice.refresh}).to_string();
    let send = || {
        app.client
            .post("/api/v1/auth/refresh")
            .header(ContentType::JSON)
            .body(body.clone())
            .dispatch()
    };
    let (a, b) = futures::join!(send(), send());
    let statuses = [a.status(), b.status()];
    let ok = statuses.iter().filter(|s| **s == Status::Ok).count();
    assert!(ok <= 1, "{statuses:?}");
    assert!(statuses.contains(&Status::Unauthorized), "{statuses:?}");
}

/// Logins with the old password fired around a password change: whatever
/// each answered, none of their sessions works once the change is done.
#[rocket::async_test]
async fn no_login_racing_a_password_change_opens_a_working_session() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let logins = (0..40).map(|_| async {
        let reply = app.login("alice", PASSWORD).await;
        finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        reply
    });
    let change = async {
        // The change starts once a first login is through, with the rest
        // in flight around it.
        while finished.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            rocket::tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        app.put_as(
            &alice,
            "/api/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": "N3w-password"}),
        )
        .await
    };
    let (replies, changed) = rocket::tokio::join!(futures::future::join_all(logins), change);
    assert_eq!(changed.status, Status::NoContent, "{}", changed.text);
    let mut opened = 0;
    for reply in replies {
        match reply.status.code {
            200 => {
                opened += 1;
                let session = TestUser {
                    id: alice.id,
                    token: reply.body["access_token"].as_str().unwrap().to_owned(),
                    refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
                };
                app.assert_signed_out(&session).await;
            }
            401 => {}
            other => panic!("a login answered {other}: {}", reply.text),
        }
    }
    assert!(opened > 0, "some logins finished before the change");
}

/// A login racing the deletion of its user is 401, never 500.
#[rocket::async_test]
async fn a_login_racing_the_deletion_of_its_user_is_401() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    for round in 0..5 {
        let name = format!("gone{round}");
        let user = app.user(&name).await;
        let logins = (0..10).map(|_| app.login(&name, PASSWORD));
        let path = format!("/api/v1/users/{}", user.id);
        let delete = app.delete_as(&admin, &path);
        let (replies, deleted) = rocket::tokio::join!(futures::future::join_all(logins), delete);
        assert_eq!(deleted.status, Status::NoContent);
        for reply in replies {
            assert!(
                [200, 401].contains(&reply.status.code),
                "{}: {}",
                reply.status,
                reply.text
            );
            if reply.status == Status::Ok {
                let session = TestUser {
                    id: user.id,
                    token: reply.body["access_token"].as_str().unwrap().to_owned(),
                    refresh: reply.body["refresh_token"].as_str().unwrap().to_owned(),
                };
                app.assert_signed_out(&session).await;
            }
        }
    }
}

/// Refreshes `refresh` and returns the new pair's refresh token.
async fn refreshed(app: &TestApp, refresh: &str) -> String {
    let reply = app
        .post("/api/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    reply.body["refresh_token"].as_str().unwrap().to_owned()
}

#[rocket::async_test]
async fn a_login_beyond_max_sessions_per_user_ends_the_oldest() {
    let app = TestApp::spawn_with(|f| f.merge(("max_sessions_per_user", 3))).await;
    app.register("alice").await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.sign_in("alice").await);
    }
    let bob = app.user("bob").await;
    for session in &sessions {
        assert_eq!(
            app.get_as(session, "/api/v1/users/me").await.status,
            Status::Ok
        );
    }
    // Three logins more: each ends the oldest open session, never another
    // user's.
    for ended in 0..3 {
        sessions.push(app.sign_in("alice").await);
        app.assert_signed_out(&sessions[ended]).await;
        for open in &sessions[ended + 1..] {
            assert_eq!(
                app.get_as(open, "/api/v1/users/me").await.status,
                Status::Ok,
                "the newest three stay open"
            );
        }
    }
    assert_eq!(
        app.get_as(&bob, "/api/v1/users/me").await.status,
        Status::Ok
    );
    // Ended sessions leave no rows behind: however often one logs in.
    for _ in 0..10 {
        app.sign_in("alice").await;
    }
    app.post_as(&bob, "/api/v1/auth/logout?all=true", &json!({}))
        .await;
    app.sign_in("bob").await;
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 3 + 1);
}

#[rocket::async_test]
async fn a_session_keeps_its_ten_latest_spent_tokens_and_still_detects_their_reuse() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut spent = vec![alice.refresh.clone()];
    for _ in 0..30 {
        let next = refreshed(&app, spent.last().unwrap()).await;
        spent.push(next);
    }
    let current = spent.pop().unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM refresh_tokens").await,
        10 + 1,
        "ten spent tokens and the current one"
    );
    // A token older than the ten is unknown: refused, the session goes on.
    let old = app
        .post("/api/v1/auth/refresh", &json!({"refresh_token": spent[0]}))
        .await;
    assert_eq!(old.status, Status::Unauthorized, "{}", old.text);
    let current = refreshed(&app, &current).await;
    // The oldest of the ten kept is still known: its reuse ends the session.
    let kept = &spent[spent.len() - 9];
    let reuse = app
        .post("/api/v1/auth/refresh", &json!({"refresh_token": kept}))
        .await;
    assert_eq!(reuse.status, Status::Unauthorized);
    assert!(reuse.text.contains("reuse"), "{}", reuse.text);
    let after = app
        .post("/api/v1/auth/refresh", &json!({"refresh_token": current}))
        .await;
    assert_eq!(after.status, Status::Unauthorized, "{}", after.text);
}
