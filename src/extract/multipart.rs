//! `MultipartBody`: an upload's body, left unread for the handler to stream.

use rocket::data::{Data, FromData, Outcome};
use rocket::request::Request;
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::RequestBody;
use rocket_okapi::request::OpenApiFromData;

use crate::error::{stash, ApiError};

/// A `multipart/form-data` body, handed to the handler unread so that it
/// streams straight to disk.
pub struct MultipartBody<'r> {
    pub data: Data<'r>,
    pub boundary: String,
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
    fn request_body(gen: &mut OpenApiGenerator) -> rocket_okapi::Result<RequestBody> {
        Ok(RequestBody {
            // Malformed, stalled, over the size or the quota, not
            // multipart, a missing or empty file or an unknown field.
            extensions: crate::error::errors_extension(gen, &[400, 408, 413, 415, 422]),
            ..crate::docs::file_upload_body()
        })
    }
}
