//! `AuthUser` and `AuthConn`: the signed-in user, from a bearer access
//! token checked against its signature, expiry, session and token version.

use rocket::request::{FromRequest, Outcome, Request};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{
    Object, SecurityRequirement, SecurityScheme, SecuritySchemeData,
};
use rocket_okapi::request::{OpenApiFromRequest, RequestHeaderInput};

use super::tokens::{Claims, TokenError, TokenKeys};
use crate::db::batch::{Reads, BATCHED_SKIP};
use crate::db::sessions::{self, AuthRecord, TokenClaims};
use crate::db::users::{self, SeenUser, UserRecord};
use crate::db::{Conn, Db, DbPool, PooledConn};
use crate::domain::Role;
use crate::error::{stash, ApiError};

/// The name of the bearer scheme in the OpenAPI documents.
pub const BEARER_SCHEME: &str = "bearerAuth";

/// A request made with a valid access token of an active user.
pub struct AuthUser {
    pub user: UserRecord,
    /// The session the token was issued in.
    pub session_id: String,
}

impl AuthUser {
    pub fn id(&self) -> i64 {
        self.user.id
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// 403 unless this is user `id` themself or an admin: a non-admin gets
    /// the same answer whether or not `id` exists.
    pub fn ensure_self_or_admin(&self, id: i64) -> Result<(), ApiError> {
        if self.id() == id || self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "Not allowed to act on another user".into(),
            ))
        }
    }
}

/// A bearer token whose signature and expiry are good, for handlers that
/// only read: the rest of the check (the user exists and is active, the
/// session is open, the token version current) runs inside the handler's
/// read where it can ([`AuthConn::visible_user`], [`AuthConn::active_page`],
/// [`AuthConn::parts`]), so such a read is one statement. On PostgreSQL the
/// reads of many requests share one (`db::batch`); otherwise the first read
/// takes a connection from the pool for the rest of the request. Handlers
/// that write take [`AuthUser`], so that no request ever holds two
/// connections of a small pool.
pub struct AuthConn {
    claims: Claims,
    user_id: i64,
    db: DbPool,
    reads: Option<Reads>,
    conn: Option<PooledConn>,
}

impl AuthConn {
    /// Where this request's reads go: to a batch, unless there is none
    /// (SQLite) or the request already holds a connection, which it uses
    /// rather than wait for another.
    fn batched(&self) -> Option<&Reads> {
        self.reads.as_ref().filter(|_| self.conn.is_none())
    }

    /// The rest of the token check alone: the user, if the token may act.
    pub async fn user(&mut self) -> Result<AuthUser, ApiError> {
        let record = match self.batched() {
            Some(reads) => reads.token(self.user_id, &self.claims.sid).await?,
            None => {
                let (conn, token) = self.parts().await?;
                sessions::load_for_token(conn, token.user_id, token.session_id).await?
            }
        };
        admit(record, &self.claims)
    }

    /// The rest of the token check alone: the user.
    pub async fn check(mut self) -> Result<AuthUser, ApiError> {
        self.user().await
    }

    /// `input` parsed, or its error once the token is checked: a bad token
    /// is 401 before a bad parameter is 422, as with every other guard.
    pub async fn parsed<T>(self, input: Result<T, ApiError>) -> Result<(Self, T), ApiError> {
        match input {
            Ok(value) => Ok((self, value)),
            Err(err) => {
                self.check().await?;
                Err(err)
            }
        }
    }

    /// User `id` if the caller may see it (an active user, or any user for
    /// an admin), the token checked in the same statement; `None` (404)
    /// otherwise, whether it exists or not.
    pub async fn visible_user(mut self, id: i64) -> Result<Option<SeenUser>, ApiError> {
        let found = match self.batched() {
            Some(reads) => {
                let token = token_claims(self.user_id, &self.claims);
                reads.user(&token, id).await?
            }
            None => {
                let (conn, token) = self.parts().await?;
                users::find_if_token(conn, &token, id).await?
            }
        };
        match found {
            Some(seen) => {
                Ok((seen.user.is_active || seen.caller_role == Role::Admin).then_some(seen))
            }
            // A bad token, or no such user: the check alone says which.
            None => {
                self.check().await?;
                Ok(None)
            }
        }
    }

    /// A page of active users ordered by id, the token checked in the same
    /// statement (in a batch unless it skips more than [`BATCHED_SKIP`]).
    pub async fn active_page(mut self, skip: i64, limit: i64) -> Result<Vec<SeenUser>, ApiError> {
        let page = match self.batched().filter(|_| skip <= BATCHED_SKIP) {
            Some(reads) => {
                let token = token_claims(self.user_id, &self.claims);
                reads.page(&token, skip, limit).await?
            }
            None => {
                let (conn, token) = self.parts().await?;
                users::list_if_token(conn, &token, skip, limit).await?
            }
        };
        self.settle(page.is_empty()).await?;
        Ok(page)
    }

    /// A connection (the request's own, taken from the pool at its first
    /// use) and the token's claims, for a read that checks the token in its
    /// own statement (`db::sessions::token_holds!`); then
    /// [`AuthConn::settle`] with whether it found nothing.
    pub async fn parts(&mut self) -> Result<(Conn<'_>, TokenClaims<'_>), ApiError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.db.acquire().await?,
        };
        let conn = self.conn.insert(conn);
        Ok((conn.conn(), token_claims(self.user_id, &self.claims)))
    }

    /// After such a read: an empty answer may mean a bad token, so the
    /// check alone runs and says why (or that there was nothing to find).
    pub async fn settle(self, found_nothing: bool) -> Result<(), ApiError> {
        if found_nothing {
            self.check().await?;
        }
        Ok(())
    }
}

/// What a read checks in its own statement (fields, not `self`: the
/// connection is borrowed beside them).
fn token_claims(user_id: i64, claims: &Claims) -> TokenClaims<'_> {
    TokenClaims {
        user_id,
        session_id: &claims.sid,
        version: claims.ver,
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_owned())
}

/// A token's signature and expiry checked; nothing is read yet.
fn verify_token(request: &Request<'_>) -> Result<AuthConn, ApiError> {
    let header = request
        .headers()
        .get_one("Authorization")
        .ok_or_else(|| unauthorized("Not authenticated"))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| unauthorized("Authorization must be a Bearer token"))?;
    let keys = request
        .rocket()
        .state::<TokenKeys>()
        .ok_or_else(|| ApiError::internal("checking a token")("the token keys are not managed"))?;
    let claims = keys.verify(token).map_err(|err| match err {
        TokenError::Expired => unauthorized("Token has expired"),
        TokenError::Invalid(_) => unauthorized("Invalid token"),
    })?;
    let user_id = claims
        .user_id()
        .ok_or_else(|| unauthorized("Invalid token"))?;
    let db = request
        .rocket()
        .state::<Db>()
        .ok_or_else(|| ApiError::internal("checking a token")("the database is not managed"))?;
    Ok(AuthConn {
        claims,
        user_id,
        db: DbPool::clone(db),
        reads: request.rocket().state::<Option<Reads>>().cloned().flatten(),
        conn: None,
    })
}

/// The token's user as the database has it, if it may act: it exists, is
/// active, and the token's session is open and its version current.
fn admit(record: Option<AuthRecord>, claims: &Claims) -> Result<AuthUser, ApiError> {
    let record = record.ok_or_else(|| unauthorized("Invalid token"))?;
    if !record.user.is_active {
        return Err(unauthorized("Account is inactive"));
    }
    if !record.session_live || record.user.token_version != claims.ver {
        return Err(unauthorized("Token has been revoked"));
    }
    Ok(AuthUser {
        user: record.user,
        session_id: claims.sid.clone(),
    })
}

/// The whole check.
async fn authenticate(request: &Request<'_>) -> Result<AuthUser, ApiError> {
    verify_token(request)?.check().await
}

/// A guard's outcome: on failure the error is stashed for the catcher,
/// which answers with it.
fn outcome<T>(request: &Request<'_>, result: Result<T, ApiError>) -> Outcome<T, ()> {
    match result {
        Ok(value) => Outcome::Success(value),
        Err(err) => Outcome::Error((stash(request, err), ())),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        outcome(request, authenticate(request).await)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthConn {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        outcome(request, verify_token(request))
    }
}

fn bearer_security() -> RequestHeaderInput {
    let scheme = SecurityScheme {
        description: Some(
            "An access token from `POST /api/v1/auth/login`, sent as \
             `Authorization: Bearer <token>`."
                .to_owned(),
        ),
        data: SecuritySchemeData::Http {
            scheme: "bearer".to_owned(),
            bearer_format: Some("JWT".to_owned()),
        },
        extensions: Object::default(),
    };
    let mut requirement = SecurityRequirement::new();
    requirement.insert(BEARER_SCHEME.to_owned(), Vec::new());
    RequestHeaderInput::Security(BEARER_SCHEME.to_owned(), scheme, requirement)
}

/// Every bearer guard appears in the documents as the bearer scheme.
macro_rules! bearer_docs {
    ($($guard:ty),+) => {$(
        impl<'r> OpenApiFromRequest<'r> for $guard {
            fn from_request_input(
                _gen: &mut OpenApiGenerator,
                _name: String,
                _required: bool,
            ) -> rocket_okapi::Result<RequestHeaderInput> {
                Ok(bearer_security())
            }

            /// The token is refused, or the database cannot check it.
            fn get_responses(
                gen: &mut OpenApiGenerator,
            ) -> rocket_okapi::Result<rocket_okapi::okapi::openapi3::Responses> {
                Ok(crate::error::error_responses(gen, &[401, 503]))
            }
        }
    )+};
}

bearer_docs!(AuthUser, AuthConn);
