//! `GET /api/v1/users/search`: find active users by part of a name or email.

use std::time::Duration;

use rocket::serde::json::Json;
use rocket_okapi::openapi;
use schemars::JsonSchema;
use validator::{Validate, ValidationError};

use crate::auth::AuthConn;
use crate::db::users;
use crate::domain::user::UserResponse;
use crate::domain::Invalid;
use crate::error::fails::{UNAUTHORIZED, UNAVAILABLE};
use crate::error::Fails;
use crate::extract::ValidQuery;

/// The longest search text, after trimming.
const MAX_CHARS: usize = 100;

/// How long one search statement may run: past it the search is stopped and
/// answered 503 (a text matching most users of a very large table).
const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(3);

/// White space as JSON Schema's (ECMAScript's) `\s` knows it, so that the
/// documented pattern and the server trim alike.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

fn trimmed(text: &str) -> &str {
    text.trim_matches(is_space)
}

fn valid_search_text(text: &str) -> Result<(), ValidationError> {
    let chars = trimmed(text).chars().count();
    if chars == 0 {
        return Err(Invalid::too_short(1).into());
    }
    if chars > MAX_CHARS {
        return Err(Invalid::too_long(MAX_CHARS).into());
    }
    Ok(())
}

#[derive(Debug, FromForm, JsonSchema, Validate)]
pub struct SearchQuery {
    /// Text to find in usernames (and, for admins, emails), ignoring case; `%`, `_` and `\`
    /// match literally. 1–100 characters after trimming white space.
    #[validate(length(max = 1000), custom(function = "valid_search_text"))]
    #[schemars(length(max = 1000), regex(pattern = r"^\s*\S([\s\S]{0,98}\S)?\s*$"))]
    pub query: String,
    /// How many matches to skip, 0–10000.
    #[field(default = 0)]
    #[validate(range(min = 0, max = crate::extract::MAX_SKIP))]
    #[schemars(range(min = 0, max = 10000))]
    #[serde(default = "crate::extract::default_skip")]
    pub skip: i64,
    /// How many matches to return, 1–100.
    #[field(default = crate::extract::DEFAULT_LIMIT)]
    #[validate(range(min = 1, max = 100))]
    #[schemars(range(min = 1, max = 100))]
    #[serde(default = "crate::extract::default_limit")]
    pub limit: i64,
}

/// Search active users by part of their username (admins: or email).
///
/// Ordered by username ignoring case, then id. A search that runs past
/// 3 seconds is stopped: 503.
#[openapi(tag = "Users")]
#[get("/users/search?<search..>")]
pub async fn search_users(
    auth: AuthConn,
    search: ValidQuery<SearchQuery>,
) -> Result<Json<Vec<UserResponse>>, Fails<{ UNAUTHORIZED | UNAVAILABLE }>> {
    let (mut auth, search) = auth.parsed(search.into_inner()).await?;
    let needle = trimmed(&search.query).to_lowercase();
    let (conn, token) = auth.parts().await?;
    let page = (search.skip, search.limit);
    let found = users::search(conn, &token, &needle, page, SEARCH_TIME_LIMIT).await?;
    auth.settle(found.is_empty()).await?;
    Ok(Json(found.iter().map(UserResponse::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_measured_after_trimming() {
        assert!(valid_search_text("  al ").is_ok());
        assert!(valid_search_text(" \t\u{3000}").is_err());
        assert!(valid_search_text(&format!("  {}  ", "a".repeat(100))).is_ok());
        assert!(valid_search_text(&"a".repeat(101)).is_err());
        assert_eq!(trimmed("\u{feff} x \u{a0}"), "x");
    }
}
