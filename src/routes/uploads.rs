//! `/api/v1/uploads`: files of the signed-in user.

use std::time::Duration;

use rocket::response::status::{Created, NoContent};
use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::openapi;

use crate::auth::{AuthConn, AuthUser};
use crate::config::Settings;
use crate::db::uploads::{self, UploadRecord};
use crate::db::{now, users, Db};
use crate::domain::upload::UploadResponse;
use crate::error::fails::{NOT_FOUND, UNAVAILABLE};
use crate::error::ApiError;
use crate::error::Fails;
use crate::extract::{MultipartBody, Paging, UploadId, ValidQuery};
use crate::uploads::receive::{receive, Bounds};
use crate::uploads::{safe_filename, Download, Storage};

impl From<&UploadRecord> for UploadResponse {
    fn from(upload: &UploadRecord) -> Self {
        UploadResponse {
            id: upload.id.clone(),
            filename: upload.filename.clone(),
            content_type: upload.content_type.clone(),
            size: upload.size,
            sha256: upload.sha256.clone(),
            created_at: upload.created_at,
        }
    }
}

/// Upload a file (multipart field `file`).
///
/// Over `upload.max_bytes`, or over the user's quota (uploads in progress
/// count), is 413; a missing or empty file is 422; a body that sends nothing
/// for `upload.idle_timeout` seconds is 408.
#[openapi(tag = "Uploads")]
#[post("/uploads", data = "<body>")]
pub async fn create_upload(
    db: &State<Db>,
    settings: &State<Settings>,
    storage: &State<Storage>,
    auth: AuthUser,
    body: MultipartBody<'_>,
) -> Result<Created<Json<UploadResponse>>, Fails<{ UNAVAILABLE }>> {
    let limits = &settings.upload;
    let used = {
        let mut conn = db.acquire().await?;
        uploads::usage(conn.conn(), auth.id()).await? as u64
    };
    let room = limits.quota_bytes.saturating_sub(used);
    if room == 0 {
        return Err(ApiError::PayloadTooLarge("Upload quota exceeded".into()).into());
    }
    let bounds = Bounds {
        max_bytes: limits.max_bytes,
        reservation: storage.reservation(auth.id(), room),
        idle: Duration::from_secs(limits.idle_timeout),
    };
    let received = receive(body.data, &body.boundary, storage, bounds).await?;
    let id = uuid::Uuid::new_v4();
    let record = UploadRecord {
        id: id.hyphenated().to_string(),
        owner_id: auth.id(),
        filename: safe_filename(received.filename.as_deref()),
        content_type: received.content_type,
        size: received.size as i64,
        sha256: received.sha256,
        created_at: now(),
    };
    // The file goes into place first: a crash before the row commits leaves
    // an orphan file that a sweep removes, never a row without its file.
    storage
        .publish(received.staged, &id)
        .await
        .map_err(ApiError::from)?;
    let committed = async {
        let mut tx = db.begin().await?;
        users::lock(tx.conn(), auth.id()).await?;
        let used = uploads::usage(tx.conn(), auth.id()).await? as u64;
        if used.saturating_add(received.size) > limits.quota_bytes {
            return Err(ApiError::PayloadTooLarge("Upload quota exceeded".into()));
        }
        uploads::insert(tx.conn(), &record).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    if let Err(err) = committed {
        storage.remove(&record.id).await;
        return Err(err.into());
    }
    Ok(Created::new(format!("/api/v1/uploads/{}", record.id))
        .body(Json(UploadResponse::from(&record))))
}

/// List one's own uploads, newest first.
#[openapi(tag = "Uploads")]
#[get("/uploads?<paging..>")]
pub async fn list_uploads(
    auth: AuthConn,
    paging: ValidQuery<Paging>,
) -> Result<Json<Vec<UploadResponse>>, Fails<{ UNAVAILABLE }>> {
    let (mut auth, paging) = auth.parsed(paging.into_inner()).await?;
    let (conn, token) = auth.parts().await?;
    let list = uploads::list_for_owner(conn, &token, paging.skip, paging.limit).await?;
    auth.settle(list.is_empty()).await?;
    Ok(Json(list.iter().map(UploadResponse::from).collect()))
}

/// The upload `id` if the user may see it (owner or admin); 404 otherwise,
/// whether it exists or not.
async fn visible(db: &Db, auth: &AuthUser, id: &str) -> Result<UploadRecord, ApiError> {
    let mut conn = db.acquire().await?;
    match uploads::find(conn.conn(), id).await? {
        Some(upload) if upload.owner_id == auth.id() || auth.is_admin() => Ok(upload),
        _ => Err(ApiError::NotFound("Upload not found".into())),
    }
}

/// An upload's metadata (owner or admin).
#[openapi(tag = "Uploads")]
#[get("/uploads/<id>")]
pub async fn get_upload(
    db: &State<Db>,
    auth: AuthUser,
    id: UploadId,
) -> Result<Json<UploadResponse>, Fails<{ NOT_FOUND | UNAVAILABLE }>> {
    let upload = visible(db, &auth, &id.get()?).await?;
    Ok(Json(UploadResponse::from(&upload)))
}

/// An upload's exact bytes, as an attachment (owner or admin).
#[openapi(tag = "Uploads")]
#[get("/uploads/<id>/content")]
pub async fn get_upload_content(
    db: &State<Db>,
    storage: &State<Storage>,
    auth: AuthUser,
    id: UploadId,
) -> Result<Download, Fails<{ NOT_FOUND | UNAVAILABLE }>> {
    let upload = visible(db, &auth, &id.get()?).await?;
    let uuid =
        uuid::Uuid::try_parse(&upload.id).map_err(ApiError::internal("reading an upload's id"))?;
    let Some((body, size)) = storage.open_file(&uuid).await.map_err(ApiError::from)? else {
        tracing::error!("upload {} has a row but no file", upload.id);
        return Err(ApiError::NotFound("Upload not found".into()).into());
    };
    if size != upload.size as u64 {
        tracing::error!(
            "upload {} is {size} bytes in the store, {} in its row",
            upload.id,
            upload.size
        );
        return Err(ApiError::internal("reading an upload")("stored size differs").into());
    }
    Ok(Download { body, upload })
}

/// Delete an upload and its file (owner or admin).
#[openapi(tag = "Uploads")]
#[delete("/uploads/<id>")]
pub async fn delete_upload(
    db: &State<Db>,
    storage: &State<Storage>,
    auth: AuthUser,
    id: UploadId,
) -> Result<NoContent, Fails<{ NOT_FOUND | UNAVAILABLE }>> {
    let upload = visible(db, &auth, &id.get()?).await?;
    // The row goes first: a crash between leaves an orphan file that
    // start-up removes.
    let mut tx = db.begin().await?;
    uploads::delete(tx.conn(), &upload.id).await?;
    tx.commit().await?;
    storage.remove(&upload.id).await;
    Ok(NoContent)
}
