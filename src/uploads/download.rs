//! `Download`: a stored file streamed back, as an attachment that a browser
//! will neither render nor sniff.

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket_okapi::gen::OpenApiGenerator;
use rocket_okapi::okapi::openapi3::Responses;
use rocket_okapi::response::OpenApiResponderInner;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rocket::tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use super::{content_disposition, StoredBody};
use crate::db::uploads::UploadRecord;

/// A stored file streamed from its store.
pub struct Download {
    /// The file's bytes, as many as the record's `size` (checked).
    pub body: StoredBody,
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
            .sized_body(self.upload.size as usize, self.body)
            .ok()
    }
}

impl OpenApiResponderInner for Download {
    fn responses(_gen: &mut OpenApiGenerator) -> rocket_okapi::Result<Responses> {
        Ok(crate::docs::file_download_responses())
    }
}

impl AsyncRead for StoredBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StoredBody::File(file) => Pin::new(file).poll_read(cx, buf),
            StoredBody::Stream(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

/// Rocket wants a sized body to be seekable, yet never seeks one whose size
/// is given, as a download's is: a stream refuses.
impl AsyncSeek for StoredBody {
    fn start_seek(self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        match self.get_mut() {
            StoredBody::File(file) => Pin::new(file).start_seek(position),
            StoredBody::Stream(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an object streamed from the store cannot seek",
            )),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.get_mut() {
            StoredBody::File(file) => Pin::new(file).poll_complete(cx),
            StoredBody::Stream(_) => Poll::Ready(Ok(0)),
        }
    }
}
