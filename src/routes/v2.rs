//! `/api/v2/users`: keyset (cursor) pagination in an envelope.

use rocket::serde::json::Json;
use rocket_okapi::openapi;
use schemars::JsonSchema;
use serde::Serialize;
use validator::{Validate, ValidationError};

use crate::auth::AuthConn;
use crate::db::users;
use crate::domain::user::UserResponse;
use crate::domain::ErrorType;
use crate::domain::Invalid;
use crate::error::fails::{FORBIDDEN, UNAUTHORIZED, UNAVAILABLE};
use crate::error::ApiError;
use crate::error::Fails;
use crate::extract::{default_limit, Flag, ValidQuery, DEFAULT_LIMIT};

/// A cursor is the last id of a page in base 36, eleven digits wide (the
/// widest id, 2^53 - 1, takes eleven): opaque to clients, every string of
/// the documented pattern names a position, and what a careless client sends
/// for a missing one (`null`, `undefined`, an empty string) is refused.
const CURSOR_RADIX: u32 = 36;
const CURSOR_WIDTH: usize = 11;

fn encode_cursor(id: i64) -> String {
    let mut n = id.max(0) as u64;
    let mut digits = vec!['0'; CURSOR_WIDTH];
    for digit in digits.iter_mut().rev() {
        *digit =
            std::char::from_digit((n % CURSOR_RADIX as u64) as u32, CURSOR_RADIX).unwrap_or('0');
        n /= CURSOR_RADIX as u64;
    }
    digits.into_iter().collect()
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    if cursor.len() != CURSOR_WIDTH
        || !cursor
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    u64::from_str_radix(cursor, CURSOR_RADIX)
        .ok()
        .and_then(|n| i64::try_from(n).ok())
}

fn valid_cursor(cursor: &str) -> Result<(), ValidationError> {
    decode_cursor(cursor).map(drop).ok_or_else(|| {
        Invalid::new(
            ErrorType::ValueError,
            "Invalid cursor: use a next_cursor from a previous page",
        )
        .into()
    })
}

#[derive(Debug, FromForm, JsonSchema, Validate)]
pub struct V2Query {
    /// Include deactivated users (admins only).
    #[serde(default)]
    pub include_inactive: Flag,
    /// How many users to return, 1–100.
    #[field(default = DEFAULT_LIMIT)]
    #[validate(range(min = 1, max = 100))]
    #[schemars(range(min = 1, max = 100))]
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// Where to continue: the `next_cursor` of the previous page.
    #[validate(custom(function = "valid_cursor"))]
    #[schemars(regex(pattern = r"^[0-9a-z]{11}$"))]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UserPage {
    /// Always `2.0`.
    pub version: &'static str,
    pub users: Vec<UserResponse>,
    pub includes_inactive: bool,
    /// The cursor of the next page; null exactly when no further user matches.
    pub next_cursor: Option<String>,
}

/// List users by id, a page at a time, with a cursor.
///
/// Walking the pages returns each user that existed throughout exactly
/// once, however many register meanwhile.
#[openapi(tag = "Users")]
#[get("/users?<query..>")]
pub async fn list_users(
    auth: AuthConn,
    query: ValidQuery<V2Query>,
) -> Result<Json<UserPage>, Fails<{ UNAUTHORIZED | FORBIDDEN | UNAVAILABLE }>> {
    let (mut auth, query) = auth.parsed(query.into_inner()).await?;
    // Only an admin may list inactive users: that needs the check first.
    if query.include_inactive.0 && !auth.user().await?.is_admin() {
        return Err(ApiError::Forbidden("Only an admin may list inactive users".into()).into());
    }
    let after = query.cursor.as_deref().and_then(decode_cursor).unwrap_or(0);
    // One row more than asked tells whether another page exists.
    let (conn, token) = auth.parts().await?;
    let mut page = users::list_after(
        conn,
        &token,
        after,
        query.include_inactive.0,
        query.limit + 1,
    )
    .await?;
    auth.settle(page.is_empty()).await?;
    let more = page.len() as i64 > query.limit;
    page.truncate(query.limit as usize);
    let next_cursor = match page.last() {
        Some(last) if more => Some(encode_cursor(last.user.id)),
        _ => None,
    };
    Ok(Json(UserPage {
        version: "2.0",
        users: page.iter().map(UserResponse::from).collect(),
        includes_inactive: query.include_inactive.0,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for id in [0, 1, 35, 36, 12345, (1 << 53) - 1] {
            assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        }
        assert_eq!(encode_cursor(1), "00000000001");
        assert_eq!(encode_cursor((1 << 53) - 1), "2gosa7pa2gv");
        for bad in [
            "",
            "A",
            "1",
            "-1",
            "zzzzzzzzzzzz",
            "12 3",
            "%",
            "null",
            "undefined",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
        assert!(
            decode_cursor("zzzzzzzzzzz").is_some(),
            "every 11-character cursor is valid"
        );
    }
}
