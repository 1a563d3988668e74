use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::http::{ContentType, Header as HttpHeader, Status};
use serde_json::{json, Value};

use crate::helpers::{read, Reply, TestApp, TestUser, JWT_SECRET, PASSWORD};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Claims like the server's, for forging tokens.
fn claims(user: &TestUser, sid: &str, exp: i64) -> Value {
    json!({"sub": user.id.to_string(), "sid": sid, "ver": 0, "iat": now(), "exp": exp, "jti": "x"})
}

fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// The claims of a token the server issued (not verified).
fn decode_unverified(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn me(app: &TestApp, authorization: &str) -> Reply {
    app.request(
        "GET",
        "/api/v1/users/me",
        None,
        &[("Authorization", authorization)],
    )
    .await
}

async fn form_login(app: &TestApp, form: &str) -> Reply {
    let req = app
        .client
        .post("/api/v1/auth/login")
        .header(ContentType::Form)
        .body(form);
    read(req.dispatch().await).await
}

#[rocket::async_test]
async fn login_with_json_returns_a_bearer_pair_that_works() {
    let app = TestApp::spawn().await;
    let registered = app.register("Alice").await;
    let reply = app.login("alice", PASSWORD).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.text);
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(reply.body["expires_in"], 1800);
    let refresh = reply.body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 43, "at least 256 bits: {refresh}");
    let token = reply.body["access_token"].as_str().unwrap();
    let claims = decode_unverified(token);
    assert_eq!(
        claims["sub"],
        registered["id"].as_i64().unwrap().to_string()
    );
    for claim in ["exp", "iat", "jti", "sid", "ver"] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1800
    );
    let header = decode_unverified(&format!("x.{}", token.split('.').next().unwrap()));
    assert_eq!(header["alg"], "HS256");

    let me = me(&app, &format!("Bearer {token}")).await;
    assert_eq!(me.status, Status::Ok);
    assert_eq!(me.body, registered);
}

#[rocket::async_test]
async fn login_accepts_the_oauth2_password_form_and_ignores_extra_fields() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let ok = form_login(
        &app,
        "grant_type=password&username=ALICE&password=Passw0rd1&scope=&client_id=swagger",
    )
    .await;
    assert_eq!(ok.status, Status::Ok, "{}", ok.text);
    assert_eq!(ok.body["token_type"], "bearer");
    let without_grant = form_login(&app, "username=alice&password=Passw0rd1").await;
    assert_eq!(without_grant.status, Status::Ok);
    let other_grant = form_login(
        &app,
        "grant_type=client_credentials&username=alice&password=Passw0rd1",
    )
    .await;
    assert_eq!(other_grant.status, Status::BadRequest);
    assert!(other_grant.body["detail"]
        .as_str()
        .unwrap()
        .contains("grant_type"));
    let missing = form_login(&app, "username=alice").await;
    assert_eq!(missing.status, Status::UnprocessableEntity);
    assert_eq!(
        missing.field_errors(),
        vec![("body.password".into(), "missing".into())]
    );
    let wrong = form_login(&app, "username=alice&password=nope").await;
    assert_eq!(wrong.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn login_refuses_other_content_types_and_never_reads_the_url() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let text = app
        .post_raw("/api/v1/auth/login", Some("text/plain"), b"alice")
        .await;
    assert_eq!(text.status, Status::UnsupportedMediaType);
    let query = app
        .post_raw(
            "/api/v1/auth/login?username=alice&password=Passw0rd1",
            None,
            b"",
        )
        .await;
    assert_eq!(
        query.status,
        Status::UnsupportedMediaType,
        "credentials in the URL are ignored"
    );
}

#[rocket::async_test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let wrong_password = app.login("alice", "Wrong-passw0rd").await;
    let unknown_user = app.login("nobody", PASSWORD).await;
    for reply in [&wrong_password, &unknown_user] {
        assert_eq!(reply.status, Status::Unauthorized);
        assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
    }
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(
        wrong_password.body,
        json!({"detail": "Incorrect username or password"})
    );
    let too_long = app.login("alice", &"A1".repeat(100)).await;
    assert_eq!(too_long.status, Status::Unauthorized);
}

#[rocket::async_test]
async fn an_inactive_account_is_403_only_with_the_right_password() {
    let app = TestApp::spawn().await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    let path = format!("/api/v1/users/{}", alice.id);
    assert_eq!(
        app.patch_as(&admin, &path, &json!({"is_active": false}))
            .await
            .status,
        Status::Ok
    );
    assert_eq!(
        app.login("alice", "Wrong-passw0rd").await.status,
        Status::Unauthorized
    );
    let right = app.login("alice", PASSWORD).await;
    assert_eq!(
        (right.status, right.body),
        (Status::Forbidden, json!({"detail": "Account is inactive"}))
    );
    // Deactivation ended alice's live tokens.
    assert_eq!(
        app.get_as(&alice, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
    let refresh = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
        )
        .await;
    assert_eq!(refresh.status, Status::Unauthorized);
}

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
    assert_eq!(
        app.get_as(&laptop, "/api/v1/users/me").await.status,
        Status::Unauthorized
    );
    let refresh = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": laptop.refresh}),
        )
        .await;
    assert_eq!(refresh.status, Status::Unauthorized);
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
        assert_eq!(
            app.get_as(session, "/api/v1/users/me").await.status,
            Status::Unauthorized
        );
        let refresh = app
            .post(
                "/api/v1/auth/refresh",
                &json!({"refresh_token": session.refresh}),
            )
            .await;
        assert_eq!(refresh.status, Status::Unauthorized);
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
    assert_eq!(wrong.status, Status::Unauthorized);
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
        assert_eq!(
            app.get_as(session, "/api/v1/users/me").await.status,
            Status::Unauthorized
        );
        let refresh = app
            .post(
                "/api/v1/auth/refresh",
                &json!({"refresh_token": session.refresh}),
            )
            .await;
        assert_eq!(refresh.status, Status::Unauthorized);
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
async fn me_shows_and_changes_ones_own_profile_but_not_the_role() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let me = app.get_as(&alice, "/api/v1/users/me").await;
    assert_eq!(
        (me.status, me.body["username"].as_str()),
        (Status::Ok, Some("alice"))
    );
    let changed = app
        .patch_as(
            &alice,
            "/api/v1/users/me",
            &json!({"age": 33, "email": "NEW@example.com"}),
        )
        .await;
    assert_eq!(changed.status, Status::Ok, "{}", changed.text);
    assert_eq!(
        (changed.body["age"].as_i64(), changed.body["email"].as_str()),
        (Some(33), Some("new@example.com"))
    );
    let role = app
        .patch_as(&alice, "/api/v1/users/me", &json!({"role": "admin"}))
        .await;
    assert_eq!(
        role.field_errors(),
        vec![("body.role".into(), "extra_forbidden".into())]
    );
    let taken = app
        .patch_as(&alice, "/api/v1/users/me", &json!({"username": "BOB"}))
        .await;
    assert_eq!(taken.status, Status::Conflict);
    let cleared = app
        .patch_as(&alice, "/api/v1/users/me", &json!({"age": null}))
        .await;
    assert_eq!(cleared.body["age"], Value::Null);
    assert_eq!(
        app.get("/api/v1/users/me").await.status,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn a_form_login_token_works_in_a_header_with_any_case() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let reply = form_login(&app, "username=alice&password=Passw0rd1").await;
    let token = reply.body["access_token"].as_str().unwrap();
    let req = app
        .client
        .get("/api/v1/users/me")
        .header(HttpHeader::new("authorization", format!("BEARER {token}")));
    assert_eq!(req.dispatch().await.status(), Status::Ok);
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

#[rocket::async_test]
async fn a_password_of_exactly_72_bytes_works_and_one_byte_more_never_matches() {
    let app = TestApp::spawn().await;
    let password = format!("A1{}", "é".repeat(35)); // 2 + 70 = 72 bytes
    assert_eq!(password.len(), 72);
    let reply = app
        .post(
            "/api/v1/users",
            &json!({"username": "alice", "email": "a@example.com", "password": password}),
        )
        .await;
    assert_eq!(reply.status, Status::Created, "{}", reply.text);
    assert_eq!(app.login("alice", &password).await.status, Status::Ok);
    let longer = format!("{password}x");
    assert_eq!(
        app.login("alice", &longer).await.status,
        Status::Unauthorized
    );
    let shorter = &password[..70];
    assert_eq!(
        app.login("alice", shorter).await.status,
        Status::Unauthorized
    );
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
