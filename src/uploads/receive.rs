//! Receiving a multipart upload: the `file` field is streamed to the
//! store's temporary name while its size is counted and its SHA-256
//! computed; past `upload.max_bytes` (or the owner's quota) reading stops,
//! what was stored goes, and the answer is 413. Memory use does not grow with the file.
//! The bytes received count against the quota with the owner's other
//! uploads in flight, and a body that sends nothing for
//! `upload.idle_timeout` is abandoned (408).

use std::time::Duration;

use multer::{Constraints, Multipart, SizeLimit};
use rocket::data::{Data, ToByteUnit};
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;

use super::{Reservation, Staged, Storage};
use crate::domain::ErrorType;
use crate::error::{ApiError, FieldError};
use crate::extract::idle::{idle_limited, is_stall, stalled};

/// Room for the multipart framing and small fields around the file.
const FRAMING_ALLOWANCE: u64 = 64 * 1024;
/// How much of the start of a file is kept to recognise its type.
const SNIFF_BYTES: usize = 8192;

/// The most of the body the multipart parser is handed in one go.
const BURST_BYTES: usize = 64 * 1024;

/// Hands the multipart parser at most [`BURST_BYTES`] before it has to
/// come back: multer reads its stream until the stream is pending, so a
/// client that keeps the socket full while the server is short of CPU
/// would otherwise have it buffer the body far ahead of the file being
/// written (tens of MiB were seen).
struct Paced<S> {
    inner: S,
    given: usize,
}

impl<S> Paced<S> {
    fn new(inner: S) -> Self {
        Paced { inner, given: 0 }
    }
}

impl<S> futures_core::Stream for Paced<S>
where
    S: futures_core::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.given >= BURST_BYTES {
            // Pending for now, and ready again at once: the parser turns
            // what it has into chunks for the writer first.
            self.given = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => self.given += chunk.len(),
            Poll::Pending => self.given = 0,
            Poll::Ready(_) => {}
        }
        next
    }
}

/// A received file, still under its temporary name.
pub struct Received {
    pub staged: Staged,
    pub filename: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
    /// Its claim on the owner's quota, held until the upload is stored.
    pub reservation: Reservation,
}

fn too_large(max_bytes: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "The file is larger than the limit of {} bytes",
        max_bytes
    ))
}

fn over_quota(room: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "Upload quota exceeded: {room} bytes left of your quota, uploads in progress included"
    ))
}

/// What one upload may take: the largest file, the owner's claim on its
/// quota, and how long the body may stall.
pub struct Bounds {
    pub max_bytes: u64,
    pub reservation: Reservation,
    pub idle: Duration,
}

/// Reads the `file` field of a `multipart/form-data` body.
pub async fn receive(
    data: Data<'_>,
    boundary: &str,
    storage: &Storage,
    mut bounds: Bounds,
) -> Result<Received, ApiError> {
    let max_bytes = bounds.max_bytes;
    let limit = max_bytes.saturating_add(FRAMING_ALLOWANCE);
    // One byte past the limit reaches multer, so that it reports the excess
    // rather than a truncated body.
    let body = idle_limited(data.open(limit.saturating_add(1).bytes()), bounds.idle);
    let stream = Paced::new(ReaderStream::new(Box::pin(body)));
    let constraints = Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(limit)
            .for_field("file", max_bytes.saturating_add(1)),
    );
    let mut multipart = Multipart::with_constraints(stream, boundary, constraints);
    let mut received = None;
    // Every broken rule at once, as for JSON bodies: the fields that should
    // not be there are read past and named, with whatever else is wrong.
    let mut errors = Vec::new();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => return Err(multipart_error(err, &bounds)),
        };
        let refusal = match field.name() {
            Some("file") if received.is_none() => None,
            Some("file") => Some(FieldError::new(
                "body.file",
                ErrorType::ValueError,
                "Send one file per request",
            )),
            other => Some(FieldError::new(
                format!("body.{}", other.unwrap_or_default()),
                ErrorType::ExtraForbidden,
                "Extra inputs are not permitted",
            )),
        };
        match refusal {
            None => received = Some(store(field, storage, &mut bounds).await?),
            Some(error) => {
                errors.push(error);
                loop {
                    match field.chunk().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(err) => return Err(multipart_error(err, &bounds)),
                    }
                }
            }
        }
    }
    match &received {
        None => errors.push(FieldError::new(
            "body.file",
            ErrorType::Missing,
            "A file in the multipart field `file` is required",
        )),
        Some(file) if file.size == 0 => errors.push(FieldError::new(
            "body.file",
            ErrorType::ValueError,
            "The file is empty",
        )),
        Some(_) => {}
    }
    match (received, errors.is_empty()) {
        (Some(received), true) => Ok(received),
        // A file already stored goes with its temporary name when dropped.
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(ApiError::Validation(errors))
        }
    }
}

async fn store(
    mut field: multer::Field<'_>,
    storage: &Storage,
    bounds: &mut Bounds,
) -> Result<Received, ApiError> {
    let max_bytes = bounds.max_bytes;
    let filename = field.file_name().map(str::to_owned);
    let mut staging = storage.stage().await?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(err) => return Err(multipart_error(err, bounds)),
        };
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(too_large(max_bytes));
        }
        if !bounds.reservation.grow(chunk.len() as u64) {
            return Err(over_quota(bounds.reservation.room()));
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        storage.track_failure(staging.put(chunk).await)?;
    }
    let staged = storage.track(staging.finish().await)?;
    let content_type = infer::get(&head)
        .map_or("application/octet-stream", |kind| kind.mime_type())
        .to_owned();
    Ok(Received {
        staged,
        filename,
        size,
        sha256: crate::auth::tokens::hex(&hasher.finalize()),
        content_type,
        reservation: bounds.reservation.take(),
    })
}

fn multipart_error(err: multer::Error, bounds: &Bounds) -> ApiError {
    match err {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            too_large(bounds.max_bytes)
        }
        multer::Error::StreamReadFailed(err) if is_stall(&*err) => stalled(bounds.idle),
        other => ApiError::BadRequest(format!("Malformed multipart body: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A stream that always has another 4 KiB chunk ready, as a socket kept
    /// full by a fast client.
    struct Endless;

    impl Stream for Endless {
        type Item = std::io::Result<bytes::Bytes>;

        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(Some(Ok(bytes::Bytes::from(vec![0u8; 4096]))))
        }
    }

    #[test]
    fn the_parser_is_handed_a_burst_at_a_time_however_much_is_ready() {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut paced = Paced::new(Endless);
        for _ in 0..3 {
            let mut burst = 0;
            while let Poll::Ready(Some(Ok(chunk))) = Pin::new(&mut paced).poll_next(&mut cx) {
                burst += chunk.len();
                assert!(burst <= BURST_BYTES + 4096, "{burst}");
            }
            assert!(burst >= BURST_BYTES, "{burst}");
        }
    }
}
