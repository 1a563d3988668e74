//! Queries of `uploads`.

use time::OffsetDateTime;

use super::sessions::{bind_token, token_holds, TokenClaims};
use super::{on_conn, Conn, DbError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRecord {
    pub id: String,
    pub owner_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: OffsetDateTime,
}

macro_rules! upload_columns {
    () => {
        "id, owner_id, filename, content_type, size, sha256, created_at"
    };
}

pub async fn insert(conn: Conn<'_>, upload: &UploadRecord) -> Result<(), DbError> {
    const SQL: &str = concat!(
        "INSERT INTO uploads (",
        upload_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    );
    on_conn!(conn, c => sqlx::query(SQL)
        .bind(&upload.id)
        .bind(upload.owner_id)
        .bind(&upload.filename)
        .bind(&upload.content_type)
        .bind(upload.size)
        .bind(&upload.sha256)
        .bind(upload.created_at)
        .execute(c)
        .await
        .map(drop))?;
    Ok(())
}

pub async fn find(conn: Conn<'_>, id: &str) -> Result<Option<UploadRecord>, DbError> {
    const SQL: &str = concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1");
    let row = on_conn!(conn, c => sqlx::query_as::<_, UploadRecord>(SQL)
        .bind(id)
        .fetch_optional(c)
        .await)?;
    Ok(row)
}

/// The uploads of the token's user, newest first, only if `token` may act
/// (one statement; empty when it may not).
pub async fn list_for_owner(
    conn: Conn<'_>,
    token: &TokenClaims<'_>,
    skip: i64,
    limit: i64,
) -> Result<Vec<UploadRecord>, DbError> {
    const SQL: &str = concat!(
        "SELECT ",
        upload_columns!(),
        " FROM uploads WHERE ",
        token_holds!(),
        " AND owner_id = $1 ORDER BY seq DESC",
        limit_offset!("$4", "$5")
    );
    let rows = on_conn!(conn, c => bind_token!(sqlx::query_as::<_, UploadRecord>(SQL), token)
        .bind(limit)
        .bind(skip)
        .fetch_all(c)
        .await)?;
    Ok(rows)
}

/// Bytes stored by `owner_id`.
pub async fn usage(conn: Conn<'_>, owner_id: i64) -> Result<i64, DbError> {
    const SQL: &str =
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads WHERE owner_id = $1";
    let total: i64 =
        on_conn!(conn, c => sqlx::query_scalar(SQL).bind(owner_id).fetch_one(c).await)?;
    Ok(total)
}

pub async fn delete(conn: Conn<'_>, id: &str) -> Result<bool, DbError> {
    let deleted = on_conn!(conn, c => sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(deleted > 0)
}

/// The ids of `owner_id`'s uploads (their files go when the owner does).
pub async fn ids_of_owner(conn: Conn<'_>, owner_id: i64) -> Result<Vec<String>, DbError> {
    const SQL: &str = "SELECT id FROM uploads WHERE owner_id = $1";
    let ids = on_conn!(conn, c => sqlx::query_scalar(SQL).bind(owner_id).fetch_all(c).await)?;
    Ok(ids)
}

/// Every upload id, for the start-up check of the storage directory.
pub async fn all_ids(conn: Conn<'_>) -> Result<Vec<String>, DbError> {
    let ids = on_conn!(conn, c => sqlx::query_scalar("SELECT id FROM uploads").fetch_all(c).await)?;
    Ok(ids)
}
