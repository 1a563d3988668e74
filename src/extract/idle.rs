//! Bodies that stall: Rocket reads a body for as long as the client takes,
//! so each read of one here gives up when nothing arrives for a while, and
//! the request is 408 instead of a task and a connection held forever.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use rocket::tokio::io::{AsyncRead, AsyncReadExt};
use tokio_io_timeout::TimeoutReader;

use crate::error::ApiError;

/// How long a JSON or form body may send nothing before it is 408.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// `reader`, whose reads fail with [`io::ErrorKind::TimedOut`] once one has
/// waited `idle` for a byte.
pub fn idle_limited<R: AsyncRead>(reader: R, idle: Duration) -> Pin<Box<TimeoutReader<R>>> {
    let mut reader = TimeoutReader::new(reader);
    reader.set_timeout(Some(idle));
    Box::pin(reader)
}

/// Whether `err` is a read that gave up waiting (see [`idle_limited`]).
pub fn is_stall(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>()
        .is_some_and(|err| err.kind() == io::ErrorKind::TimedOut)
}

/// The 408 of a body that stalled for `idle`.
pub fn stalled(idle: Duration) -> ApiError {
    ApiError::RequestTimeout(format!(
        "The request body stalled: nothing arrived for {} seconds",
        idle.as_secs()
    ))
}

/// Reads `reader` to its end, at most `limit` bytes (`None` past it), each
/// read waiting at most `idle` (408 past it).
pub async fn read_at_most<R: AsyncRead>(
    reader: R,
    limit: u64,
    idle: Duration,
) -> Result<Option<Vec<u8>>, ApiError> {
    let mut reader = idle_limited(reader.take(limit.saturating_add(1)), idle);
    let mut bytes = Vec::new();
    match reader.read_to_end(&mut bytes).await {
        Ok(_) if bytes.len() as u64 > limit => Ok(None),
        Ok(_) => Ok(Some(bytes)),
        Err(err) if is_stall(&err) => Err(stalled(idle)),
        Err(err) => Err(ApiError::BadRequest(format!(
            "Could not read the request body: {err}"
        ))),
    }
}
