//! `Download`: a stored file streamed back, as an attachment that a browser
//! will neither render nor sniff.

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::Responses;
use rocket_okapi::response::OpenApiResponderInner;

use super::content_disposition;
use crate::db::uploads::UploadRecord;

/// A stored file streamed from disk.
pub struct Download {
    pub file: rocket::tokio::fs::File,
    pub upload: UploadRecord,
}

impl<'r> Responder<'r, 'static> for Download {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        // Always bytes: the type recognised at upload is metadata
        // (`content_type`), so a generated client gets one media type and a
        // browser nothing to render.
        Response::build()
            .status(Status::Ok)
            .header(ContentType::Binary)
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
        Ok(crate::docs::file_download_responses())
    }
}
