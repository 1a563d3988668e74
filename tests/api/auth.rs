use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::http::Status;
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp, TestUser, PASSWORD};

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Claims like the server's, for forging tokens.
pub(crate) fn claims(user: &TestUser, sid: &str, exp: i64) -> Value {
    json!({"sub": user.id.to_string(), "sid": sid, "ver": 0, "iat": now(), "exp": exp, "jti": "x"})
}

pub(crate) fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// The claims of a token the server issued (not verified).
pub(crate) fn decode_unverified(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub(crate) async fn me(app: &TestApp, authorization: &str) -> Reply {
    app.request(
        "GET",
        "/api/v1/users/me",
        None,
        &[("Authorization", authorization)],
    )
    .await
}

/// A form to the OAuth2 token endpoint.
pub(crate) async fn token_form(app: &TestApp, form: &str) -> Reply {
    app.post_raw(
        "/api/v1/auth/token",
        Some("application/x-www-form-urlencoded"),
        form.as_bytes(),
    )
    .await
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
    // The registered user, with the login just made.
    let mut registered = registered.clone();
    registered["last_login_at"] = me.body["last_login_at"].clone();
    assert!(me.body["last_login_at"].is_string());
    assert_eq!(me.body, registered);
}

/// An RFC 6749 refusal: 400, `error`, and the description in both
/// `error_description` and `detail`.
fn oauth_error(reply: &Reply) -> (&str, &str) {
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.text);
    let description = reply.body["error_description"].as_str().unwrap();
    assert_eq!(reply.body["detail"], description, "{}", reply.text);
    (reply.body["error"].as_str().unwrap(), description)
}

#[rocket::async_test]
async fn the_token_endpoint_takes_the_password_grant_and_ignores_extra_fields() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let ok = token_form(
        &app,
        "grant_type=password&username=ALICE&password=Passw0rd1&scope=&client_id=swagger",
    )
    .await;
    assert_eq!(ok.status, Status::Ok, "{}", ok.text);
    assert_eq!(ok.body["token_type"], "bearer");
    let token = ok.body["access_token"].as_str().unwrap();
    assert_eq!(
        me(&app, &format!("Bearer {token}")).await.status,
        Status::Ok
    );

    let wrong = token_form(&app, "grant_type=password&username=alice&password=nope").await;
    assert_eq!(
        oauth_error(&wrong),
        ("invalid_grant", "Incorrect username or password")
    );
    let nobody = token_form(&app, "grant_type=password&username=nobody&password=nope").await;
    assert_eq!(oauth_error(&nobody), oauth_error(&wrong));
    for (form, code) in [
        ("username=alice&password=Passw0rd1", "invalid_request"),
        ("grant_type=password&username=alice", "invalid_request"),
        ("grant_type=refresh_token", "invalid_request"),
        (
            "grant_type=client_credentials&username=alice&password=Passw0rd1",
            "unsupported_grant_type",
        ),
    ] {
        let reply = token_form(&app, form).await;
        assert_eq!(oauth_error(&reply).0, code, "{form}: {}", reply.text);
    }
    // Each field's bound holds whatever the grant: the right password with
    // an over-long refresh_token beside it is refused, not signed in.
    let long = "0".repeat(257);
    for form in [
        format!("grant_type=password&username=alice&password=Passw0rd1&refresh_token={long}"),
        format!("grant_type=refresh_token&refresh_token=x&username={long}"),
    ] {
        let reply = token_form(&app, &form).await;
        assert_eq!(oauth_error(&reply).0, "invalid_request", "{}", reply.text);
    }
    // JSON is for /auth/login; the token endpoint is form only.
    let json = app
        .post(
            "/api/v1/auth/token",
            &json!({"grant_type": "password", "username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(oauth_error(&json).0, "invalid_request");
}

#[rocket::async_test]
async fn the_token_endpoint_refreshes_and_refuses_a_spent_token_as_invalid_grant() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let first = token_form(
        &app,
        "grant_type=password&username=alice&password=Passw0rd1",
    )
    .await;
    let refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let renewed = token_form(&app, &form).await;
    assert_eq!(renewed.status, Status::Ok, "{}", renewed.text);
    assert_ne!(renewed.body["refresh_token"], first.body["refresh_token"]);
    let again = token_form(&app, &form).await;
    let (code, description) = oauth_error(&again);
    assert_eq!(code, "invalid_grant");
    assert!(description.contains("reuse"), "{description}");
    // The reuse ended the session: the renewed pair is dead too.
    let renewed_refresh = renewed.body["refresh_token"].as_str().unwrap();
    let after = token_form(
        &app,
        &format!("grant_type=refresh_token&refresh_token={renewed_refresh}"),
    )
    .await;
    assert_eq!(oauth_error(&after).0, "invalid_grant");
    let unknown = token_form(&app, "grant_type=refresh_token&refresh_token=nope").await;
    assert_eq!(oauth_error(&unknown).0, "invalid_grant");
}

#[rocket::async_test]
async fn login_takes_json_only() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let form = app
        .post_raw(
            "/api/v1/auth/login",
            Some("application/x-www-form-urlencoded"),
            b"username=alice&password=Passw0rd1",
        )
        .await;
    assert_eq!(form.status, Status::UnsupportedMediaType, "{}", form.text);
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
    let token = token_form(
        &app,
        &format!("grant_type=password&username=alice&password={PASSWORD}"),
    )
    .await;
    assert_eq!(
        oauth_error(&token),
        ("invalid_grant", "Account is inactive")
    );
    // Deactivation ended alice's live tokens.
    app.assert_signed_out(&alice).await;
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

#[rocket::async_test]
async fn a_token_form_that_gives_a_field_twice_is_invalid_request() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    app.register("bob").await;
    for form in [
        "grant_type=password&username=alice&username=bob&password=Passw0rd1",
        "grant_type=password&username=alice&password=Passw0rd1&password=Wrong",
        "grant_type=password&user%6Eame=bob&username=alice&password=Passw0rd1",
        "grant_type=password&grant_type=password&username=alice&password=Passw0rd1",
    ] {
        let reply = token_form(&app, form).await;
        let (code, description) = oauth_error(&reply);
        assert_eq!(code, "invalid_request", "{form}");
        assert!(description.contains("more than once"), "{description}");
    }
    let ok = token_form(
        &app,
        "grant_type=password&username=alice&password=Passw0rd1",
    )
    .await;
    assert_eq!(ok.status, Status::Ok);
}

/// Responses that carry tokens are never kept by a cache (RFC 6749, 5.1).
#[rocket::async_test]
async fn responses_carrying_tokens_are_not_stored() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let login = app.login("alice", PASSWORD).await;
    let form = token_form(
        &app,
        "grant_type=password&username=alice&password=Passw0rd1",
    )
    .await;
    let refresh = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": login.body["refresh_token"]}),
        )
        .await;
    for (what, reply) in [
        ("login", &login),
        ("token endpoint", &form),
        ("refresh", &refresh),
    ] {
        assert_eq!(reply.status, Status::Ok, "{what}");
        assert_eq!(reply.header("Cache-Control"), Some("no-store"), "{what}");
        assert_eq!(reply.header("Pragma"), Some("no-cache"), "{what}");
    }
}
