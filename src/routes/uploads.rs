//! `/api/v1/uploads`: files of the signed-in user.

use rocket::data::{Data, FromData, Outcome};
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::status::{Created, NoContent};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::State;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::{MediaType, RefOr, RequestBody, Responses};
use rocket_okapi::okapi::schemars::schema::{
    InstanceType, ObjectValidation, Schema, SchemaObject, StringValidation,
};
use rocket_okapi::openapi;
use rocket_okapi::request::OpenApiFromData;
use rocket_okapi::response::OpenApiResponderInner;
use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::{AuthConn, AuthUser};
use crate::config::Settings;
use crate::db::uploads::{self, UploadRecord};
use crate::db::{now, users, Db};
use crate::domain::user::date_time_schema;
use crate::error::{stash, ApiError};
use crate::extract::{Paging, UploadId, ValidQuery};
use crate::uploads::receive::receive;
use crate::uploads::{content_disposition, safe_filename, Storage};

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

/// A `multipart/form-data` body, handed to the handler unread so that it
/// streams straight to disk.
pub struct MultipartBody<'r> {
    data: Data<'r>,
    boundary: String,
}

#[rocket::async_trait]
impl<'r> FromData<'r> for MultipartBody<'r> {
    type Error = ();

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let boundary = req
            .content_type()
            .filter(|ct| ct.is_form_data())
            .and_then(|ct| ct.param("boundary"))
            .map(str::to_owned);
        match boundary {
            Some(boundary) => Outcome::Success(MultipartBody { data, boundary }),
            None => {
                let err = ApiError::UnsupportedMediaType(
                    "Content-Type must be multipart/form-data with a boundary".into(),
                );
                Outcome::Error((stash(req, err), ()))
            }
        }
    }
}

impl<'r> OpenApiFromData<'r> for MultipartBody<'r> {
    fn request_body(_gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        let file = SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            format: Some("binary".to_owned()),
            string: Some(Box::new(StringValidation {
                min_length: Some(1),
                ..Default::default()
            })),
            ..Default::default()
        };
        let schema = SchemaObject {
            instance_type: Some(InstanceType::Object.into()),
            object: Some(Box::new(ObjectValidation {
                properties: [("file".to_owned(), Schema::Object(file))]
                    .into_iter()
                    .collect(),
                required: ["file".to_owned()].into_iter().collect(),
                additional_properties: Some(Box::new(Schema::Bool(false))),
                ..Default::default()
            })),
            ..Default::default()
        };
        let media = MediaType {
            schema: Some(schema),
            ..Default::default()
        };
        Ok(RequestBody {
            description: Some("The file, in the multipart field `file`.".to_owned()),
            content: [("multipart/form-data".to_owned(), media)]
                .into_iter()
                .collect(),
            required: true,
            ..Default::default()
        })
    }
}

/// Upload a file (multipart field `file`).
///
/// Over `upload.max_bytes`, or over the user's quota, is 413; a missing or
/// empty file is 422.
#[openapi(tag = "Uploads")]
#[post("/uploads", data = "<body>")]
pub async fn create_upload(
    db: &State<Db>,
    settings: &State<Settings>,
    storage: &State<Storage>,
    auth: AuthUser,
    body: MultipartBody<'_>,
) -> Result<Created<Json<UploadResponse>>, ApiError> {
    let limits = &settings.upload;
    let used = {
        let mut conn = db.acquire().await?;
        uploads::usage(conn.conn(), auth.id()).await? as u64
    };
    let room = limits.quota_bytes.saturating_sub(used);
    if room == 0 {
        return Err(ApiError::PayloadTooLarge("Upload quota exceeded".into()));
    }
    let received = receive(body.data, &body.boundary, storage, limits.max_bytes, room).await?;
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
    // an orphan file that start-up removes, never a row without its file.
    let path = storage.path_of(&id);
    rocket::tokio::fs::rename(received.temp.path(), &path)
        .await
        .map_err(ApiError::internal)?;
    received.temp.kept();
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
        return Err(err);
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
) -> Result<Json<Vec<UploadResponse>>, ApiError> {
    let (mut auth, paging) = auth.parsed(paging.into_inner()).await?;
    let (conn, token) = auth.parts();
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
) -> Result<Json<UploadResponse>, ApiError> {
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
) -> Result<Download, ApiError> {
    let upload = visible(db, &auth, &id.get()?).await?;
    let uuid = uuid::Uuid::try_parse(&upload.id).map_err(ApiError::internal)?;
    let file = match rocket::tokio::fs::File::open(storage.path_of(&uuid)).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            log::error!("upload {} has a row but no file", upload.id);
            return Err(ApiError::NotFound("Upload not found".into()));
        }
        Err(err) => return Err(ApiError::internal(err)),
    };
    Ok(Download { file, upload })
}

/// Delete an upload and its file (owner or admin).
#[openapi(tag = "Uploads")]
#[delete("/uploads/<id>")]
pub async fn delete_upload(
    db: &State<Db>,
    storage: &State<Storage>,
    auth: AuthUser,
    id: UploadId,
) -> Result<NoContent, ApiError> {
    let upload = visible(db, &auth, &id.get()?).await?;
    // The row goes first: a crash between leaves an orphan file that
    // start-up removes.
    let mut tx = db.begin().await?;
    uploads::delete(tx.conn(), &upload.id).await?;
    tx.commit().await?;
    storage.remove(&upload.id).await;
    Ok(NoContent)
}

/// A stored file streamed from disk.
pub struct Download {
    file: rocket::tokio::fs::File,
    upload: UploadRecord,
}

impl<'r> Responder<'r, 'static> for Download {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let content_type =
            ContentType::parse_flexible(&self.upload.content_type).unwrap_or(ContentType::Binary);
        Response::build()
            .status(Status::Ok)
            .header(content_type)
            .header(Header::new(
                "Content-Disposition",
                content_disposition(&self.upload.filename),
            ))
            .header(Header::new("X-Content-Type-Options", "nosniff"))
            .header(Header::new(
                "Content-Security-Policy",
                "default-src 'none'; sandbox",
            ))
            .header(Header::new("Cache-Control", "private, no-store"))
            .sized_body(self.upload.size as usize, self.file)
            .ok()
    }
}

impl OpenApiResponderInner for Download {
    fn responses(_gen: &mut OpenApiGenerator) -> rocket_okapi::Result<Responses> {
        let binary = SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            format: Some("binary".to_owned()),
            ..Default::default()
        };
        let response = rocket_okapi::okapi::openapi3::Response {
            description: "The file's exact bytes, as an attachment, with the type recognised at \
                          upload (`application/octet-stream` when none was)."
                .to_owned(),
            content: [(
                "*/*".to_owned(),
                MediaType {
                    schema: Some(binary),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let mut responses = Responses::default();
        responses
            .responses
            .insert("200".to_owned(), RefOr::Object(response));
        Ok(responses)
    }
}
