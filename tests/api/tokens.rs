//! Access tokens: what makes one invalid, and the reads that check it.

use jsonwebtoken::Algorithm;
use rocket::http::{Header as HttpHeader, Status};
use serde_json::{json, Value};

use crate::auth::{claims, decode_unverified, me, now, sign, token_form};
use crate::helpers::{TestApp, TestUser, JWT_SECRET};

#[rocket::async_test]
async fn bad_tokens_are_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let sid = decode_unverified(&alice.token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let valid = claims(&alice, &sid, now() + 600);
    let (header, payload, signature) = {
        let mut parts = alice.token.split('.');
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let mut tampered_signature = signature.to_owned();
    let last = tampered_signature.pop().unwrap();
    tampered_signature.push(if last == 'A' { 'B' } else { 'A' });
    let none_token = {
        use base64::Engine;
        let enc =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            enc(&json!({"alg": "none", "typ": "JWT"})),
            enc(&valid)
        )
    };
    let cases = vec![
        ("missing header", None),
        ("basic scheme", Some("Basic YWxpY2U6cGFzcw==".to_owned())),
        ("bearer without token", Some("Bearer".to_owned())),
        ("garbage", Some("Bearer not.a.jwt".to_owned())),
        (
            "tampered signature",
            Some(format!("Bearer {header}.{payload}.{tampered_signature}")),
        ),
        (
            "tampered payload",
            Some(format!("Bearer {header}.{}.{signature}", {
                use base64::Engine;
                let mut c = decode_unverified(&alice.token);
                c["sub"] = json!("1");
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
            })),
        ),
        ("alg none", Some(format!("Bearer {none_token}"))),
        (
            "HS512",
            Some(format!(
                "Bearer {}",
                sign(&valid, Algorithm::HS512, JWT_SECRET.as_bytes())
            )),
        ),
        (
            "another secret",
            Some(format!(
                "Bearer {}",
                sign(
                    &valid,
                    Algorithm::HS256,
                    b"another-secret-another-secret-another"
                )
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(
                    &claims(&alice, &sid, now() - 30),
                    Algorithm::HS256,
                    JWT_SECRET.as_bytes()
                )
            )),
        ),
        (
            "unknown session",
            Some(format!(
                "Bearer {}",
                sign(
                    &claims(&alice, "no-such-session", now() + 600),
                    Algorithm::HS256,
                    JWT_SECRET.as_bytes()
                )
            )),
        ),
    ];
    for (name, authorization) in cases {
        let reply = match &authorization {
            Some(value) => me(&app, value).await,
            None => app.get("/api/v1/users/me").await,
        };
        assert_eq!(reply.status, Status::Unauthorized, "{name}: {}", reply.text);
        assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"), "{name}");
        assert!(reply.body["detail"].is_string(), "{name}");
    }
    // The forged-but-valid token is accepted: the cases above fail for the
    // reason they name.
    let forged = sign(&valid, Algorithm::HS256, JWT_SECRET.as_bytes());
    assert_eq!(
        me(&app, &format!("Bearer {forged}")).await.status,
        Status::Ok
    );
    assert_eq!(
        me(&app, &format!("bearer {forged}")).await.status,
        Status::Ok,
        "scheme is case-insensitive"
    );
}

#[rocket::async_test]
async fn expiry_is_honoured_within_five_seconds() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let sid = decode_unverified(&alice.token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let just_expired = sign(
        &claims(&alice, &sid, now() - 2),
        Algorithm::HS256,
        JWT_SECRET.as_bytes(),
    );
    assert_eq!(
        me(&app, &format!("Bearer {just_expired}")).await.status,
        Status::Ok,
        "within leeway"
    );
    let expired = sign(
        &claims(&alice, &sid, now() - 7),
        Algorithm::HS256,
        JWT_SECRET.as_bytes(),
    );
    let reply = me(&app, &format!("Bearer {expired}")).await;
    assert_eq!(
        (reply.status, reply.body),
        (Status::Unauthorized, json!({"detail": "Token has expired"}))
    );
}

#[rocket::async_test]
async fn a_deleted_users_token_is_401() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let sid = decode_unverified(&alice.token)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = sign(
        &claims(&alice, &sid, now() + 600),
        Algorithm::HS256,
        JWT_SECRET.as_bytes(),
    );
    assert_eq!(
        app.delete_as(&admin, &format!("/api/v1/users/{}", alice.id))
            .await
            .status,
        Status::NoContent
    );
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
    assert_eq!(
        me(&app, &format!("Bearer {forged}")).await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn a_token_endpoint_token_works_in_a_header_with_any_case() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let reply = token_form(
        &app,
        "grant_type=password&username=alice&password=Passw0rd1",
    )
    .await;
    let token = reply.body["access_token"].as_str().unwrap();
    let req = app
        .client
        .get("/api/v1/users/me")
        .header(HttpHeader::new("authorization", format!("BEARER {token}")));
    assert_eq!(req.dispatch().await.status(), Status::Ok);
}

/// The routes that read with the connection that checked the token
/// (`AuthConn`): every one refuses a token whose session ended, and with a
/// pool of a single connection every one still answers, so none takes a
/// second connection while holding the first.
#[rocket::async_test]
async fn reads_with_one_connection_per_request_and_check_the_session() {
    let app = TestApp::spawn_with(|figment| {
        figment
            .merge(("databases.roster.max_connections", 1))
            .merge(("databases.roster.connect_timeout", 2))
    })
    .await;
    let alice = app.user("alice").await;
    let reads = [
        format!("/api/v1/users/{}", alice.id),
        "/api/v1/users?limit=10".to_owned(),
        "/api/v1/users/search?query=ali".to_owned(),
        "/api/v2/users?limit=10".to_owned(),
        "/api/v1/uploads".to_owned(),
        "/api/v1/users/me".to_owned(),
    ];
    for path in &reads {
        let reply = app.get_as(&alice, path).await;
        assert_eq!(reply.status, Status::Ok, "{path}: {}", reply.text);
    }
    // A write after those reads: the guard's connection went back first.
    let reply = app
        .patch_as(
            &alice,
            &format!("/api/v1/users/{}", alice.id),
            &json!({"age": 30}),
        )
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);

    let reply = app.call(&alice, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    for path in &reads {
        let reply = app.get_as(&alice, path).await;
        assert_eq!(reply.status, Status::Unauthorized, "{path}: {}", reply.text);
        assert_eq!(reply.body["detail"], "Token has been revoked", "{path}");
    }
}

/// A read by id and a page of users check the token inside their own
/// statement: a bad token is still 401 whatever the read finds, and an
/// inactive user is visible to admins only.
#[rocket::async_test]
async fn reads_that_check_the_token_in_their_statement_refuse_bad_tokens_first() {
    let app = TestApp::spawn().await;
    let admin = app.admin("boss").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bob_path = format!("/api/v1/users/{}", bob.id);
    let reply = app
        .patch_as(&admin, &bob_path, &json!({"is_active": false}))
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(app.get_as(&alice, &bob_path).await.status, Status::NotFound);
    let reply = app.get_as(&admin, &bob_path).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(reply.body["is_active"], false);
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/999999").await.status,
        Status::NotFound
    );
    // A deactivated caller: 401, not an empty page or a 404.
    for path in [
        "/api/v1/users?skip=10000&limit=10",
        "/api/v1/users/search?query=ali",
        "/api/v2/users?limit=10",
        "/api/v1/uploads",
        "/api/v1/users/1",
    ] {
        let reply = app.get_as(&bob, path).await;
        assert_eq!(reply.status, Status::Unauthorized, "{path}: {}", reply.text);
        assert_eq!(reply.body["detail"], "Account is inactive", "{path}");
    }
    // An empty page for a good token is an empty page.
    let reply = app
        .get_as(&alice, "/api/v1/users?skip=10000&limit=10")
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(reply.body, json!([]));

    let reply = app.call(&alice, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.text);
    for path in [
        format!("/api/v1/users/{}", alice.id),
        "/api/v1/users/999999".to_owned(),
        "/api/v1/users/abc".to_owned(),
        "/api/v1/users?limit=10".to_owned(),
        "/api/v1/users?limit=0".to_owned(),
    ] {
        let reply = app.get_as(&alice, &path).await;
        assert_eq!(reply.status, Status::Unauthorized, "{path}: {}", reply.text);
        assert_eq!(reply.body["detail"], "Token has been revoked", "{path}");
    }
}

/// Key rotation as the README describes it, walked through by two
/// instances restarted one after the other: no token stops working until
/// its key is dropped, and every instance always accepts every token the
/// other issues.
#[rocket::async_test]
async fn rotating_the_jwt_secret_logs_no_one_out() {
    const OLD: &str = "old-secret-old-secret-old-secret-0";
    const NEW: &str = "new-secret-new-secret-new-secret-1";
    let keys = |sign: &'static str, verify: &'static [&'static str]| {
        move |f: rocket::figment::Figment| {
            f.merge(("jwt_secret", sign))
                .merge(("jwt_verify_secrets", verify))
        }
    };
    // The database's owner stays up throughout; `a` and `b` are the two
    // instances behind the balancer, replaced as they are restarted.
    async fn both(a: &TestApp, b: &TestApp, user: &TestUser) -> (Status, Status) {
        (
            a.get_as(user, "/api/v1/users/me").await.status,
            b.get_as(user, "/api/v1/users/me").await.status,
        )
    }
    let ok = (Status::Ok, Status::Ok);
    let owner = TestApp::spawn_with(keys(OLD, &[])).await;
    let mut a = owner.spawn_sharing(keys(OLD, &[])).await;
    let mut b = owner.spawn_sharing(keys(OLD, &[])).await;
    a.register("alice").await;
    let old_token = a.sign_in("alice").await;

    assert_eq!(both(&a, &b, &old_token).await, ok);

    // 1. The new key, verify-only, on every instance in turn.
    b = owner.spawn_sharing(keys(OLD, &[NEW])).await;
    assert_eq!(both(&a, &b, &old_token).await, ok);
    a = owner.spawn_sharing(keys(OLD, &[NEW])).await;
    assert_eq!(both(&a, &b, &old_token).await, ok);

    // 2. Sign with the new key, the old one verify-only, in turn: a token
    //    from an instance already switched works on one not yet switched.
    b = owner.spawn_sharing(keys(NEW, &[OLD])).await;
    let new_token = b.sign_in("alice").await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid;
    assert!(kid(&new_token.token).is_some());
    assert_ne!(
        kid(&new_token.token),
        kid(&old_token.token),
        "tokens name their key"
    );
    assert_eq!(both(&a, &b, &new_token).await, ok);
    assert_eq!(both(&a, &b, &old_token).await, ok);
    a = owner.spawn_sharing(keys(NEW, &[OLD])).await;
    assert_eq!(both(&a, &b, &new_token).await, ok);
    assert_eq!(both(&a, &b, &old_token).await, ok);

    // 3. Once old tokens have expired, drop the old key: only tokens it
    //    signed stop working (their refresh tokens, opaque, still refresh).
    b = owner.spawn_sharing(keys(NEW, &[])).await;
    a = owner.spawn_sharing(keys(NEW, &[])).await;
    assert_eq!(both(&a, &b, &new_token).await, ok);
    assert_eq!(
        both(&a, &b, &old_token).await,
        (Status::Unauthorized, Status::Unauthorized)
    );
    let refreshed = a
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": old_token.refresh}),
        )
        .await;
    assert_eq!(refreshed.status, Status::Ok, "{}", refreshed.text);
}
