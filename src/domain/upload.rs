//! The uploads resource's response model.

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

use super::fields::date_time_schema;

/// An upload as clients see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UploadResponse {
    /// A UUID.
    #[schemars(with = "uuid::Uuid")]
    pub id: String,
    /// The client's file name reduced to a safe base name.
    pub filename: String,
    /// Recognised from the file's first bytes, else `application/octet-stream`.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "date_time_schema")]
    pub created_at: OffsetDateTime,
}
