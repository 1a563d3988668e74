//! Storage for uploads, in a directory ([`fs`]) or an S3-compatible bucket
//! ([`s3`]) behind one interface: a file is received under a temporary
//! name, published under its id once complete, and recorded after that; a
//! sweep removes what a crash left. Client file names never become paths or
//! keys; they are only kept, made safe, as metadata.

mod download;
pub mod fs;
pub mod receive;
pub mod s3;

pub use download::Download;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use dashmap::DashMap;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use uuid::Uuid;

use crate::config::{UploadBackend, UploadSettings};
use crate::error::ApiError;

/// The longest stored file name, in bytes.
pub const MAX_FILENAME_BYTES: usize = 255;

#[derive(Debug, Clone)]
pub struct Storage {
    backend: Arc<Backend>,
    /// Bytes of the uploads each user has being received here: they count
    /// against the quota before they are stored.
    receiving: Arc<DashMap<i64, u64>>,
    /// The last failure of the store, until an operation succeeds again
    /// (readiness reports it).
    failing: Arc<Mutex<Option<String>>>,
}

#[derive(Debug)]
enum Backend {
    Fs(fs::FsStore),
    S3(s3::S3Store),
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}: {1}")]
    Fs(&'static str, std::io::Error),
    #[error("{0}: {1}")]
    S3(&'static str, s3::Error),
}

impl StorageError {
    fn s3_io(doing: &'static str, err: std::io::Error) -> Self {
        match err.downcast::<s3::Error>() {
            Ok(err) => StorageError::S3(doing, err),
            Err(err) => StorageError::S3(
                doing,
                s3::Error::Generic {
                    store: "S3",
                    source: Box::new(err),
                },
            ),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Fs(doing, err) => ApiError::internal(doing)(err),
            // A bucket is a service over the network: 503 and try again.
            StorageError::S3(doing, err) => {
                tracing::warn!("upload storage unavailable: {doing}: {err}");
                ApiError::Unavailable("Upload storage unavailable".into())
            }
        }
    }
}

impl Storage {
    /// The store `settings` name: `upload.dir` (its directories made when
    /// missing) or the bucket of `upload.s3`, listed once to prove it.
    pub async fn open(settings: &UploadSettings) -> Result<Self, String> {
        let backend = match settings.backend {
            UploadBackend::Fs => Backend::Fs(
                fs::FsStore::open(&settings.dir)
                    .map_err(|err| format!("upload.dir {:?} is not usable: {err}", settings.dir))?,
            ),
            UploadBackend::S3 => {
                let store = s3::S3Store::new(&settings.s3)?;
                store
                    .check()
                    .await
                    .map_err(|err| format!("upload.s3: cannot list {}: {err}", store.describe()))?;
                Backend::S3(store)
            }
        };
        Ok(Storage {
            backend: Arc::new(backend),
            receiving: Arc::default(),
            failing: Arc::default(),
        })
    }

    /// `upload.dir "uploads"` or `bucket ... at ...`, for messages.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Fs(store) => format!("upload.dir {:?}", store.root().display().to_string()),
            Backend::S3(store) => store.describe().to_owned(),
        }
    }

    /// The last failure of the store, unless something worked since.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().ok()?.clone()
    }

    /// `done`'s failure, if it failed, noted for readiness (for steps that
    /// may not reach the store, such as a part only buffered).
    pub(crate) fn track_failure<T>(
        &self,
        done: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match done {
            Ok(value) => Ok(value),
            failed => self.track(failed),
        }
    }

    /// `done`, the outcome of an operation that reached the store, noted
    /// for readiness.
    pub(crate) fn track<T>(&self, done: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Ok(mut failing) = self.failing.lock() {
            match &done {
                Ok(_) if failing.is_some() => *failing = None,
                Ok(_) => {}
                Err(err) => *failing = Some(err.to_string()),
            }
        }
        done
    }

    /// A new temporary file or object for an upload being received.
    pub async fn stage(&self) -> Result<Staging, StorageError> {
        match &*self.backend {
            Backend::Fs(store) => {
                self.track(
                    store.stage().await.map(Staging::Fs).map_err(|err| {
                        StorageError::Fs("creating an upload's temporary file", err)
                    }),
                )
            }
            // Nothing is sent until the first part fills (or the end).
            Backend::S3(store) => Ok(Staging::S3(store.stage())),
        }
    }

    /// Moves a received file into place as upload `id`: from then on it
    /// is whole where downloads look, before any row names it.
    pub async fn publish(&self, staged: Staged, id: &Uuid) -> Result<(), StorageError> {
        let done = match (&*self.backend, staged) {
            (Backend::Fs(store), Staged::Fs(temp)) => store
                .publish(temp, id)
                .await
                .map_err(|err| StorageError::Fs("moving an upload into place", err)),
            (Backend::S3(store), Staged::S3(staged)) => store
                .publish(staged, id)
                .await
                .map_err(|err| StorageError::S3("moving an upload into place", err)),
            _ => unreachable!("a file is staged by the store that publishes it"),
        };
        self.track(done)
    }

    /// Upload `id`'s bytes and their number; `None` when the store has
    /// nothing under that id.
    pub async fn open_file(&self, id: &Uuid) -> Result<Option<(StoredBody, u64)>, StorageError> {
        let found = match &*self.backend {
            Backend::Fs(store) => store
                .open_file(id)
                .await
                .map(|found| found.map(|(file, size)| (StoredBody::File(file), size)))
                .map_err(|err| StorageError::Fs("opening an upload's file", err)),
            Backend::S3(store) => store
                .open(id)
                .await
                .map(|found| {
                    found.map(|(stream, size)| {
                        let reader = tokio_util::io::StreamReader::new(stream);
                        (StoredBody::Stream(reader), size)
                    })
                })
                .map_err(|err| StorageError::S3("reading an upload", err)),
        };
        self.track(found)
    }

    /// Removes the file of upload `id`, if it is there; a failure is
    /// logged (the sweep removes what is left).
    pub async fn remove(&self, id: &str) {
        let Ok(id) = Uuid::try_parse(id) else {
            return;
        };
        let done = match &*self.backend {
            Backend::Fs(store) => store
                .remove(&id)
                .await
                .map_err(|err| StorageError::Fs("removing an upload", err)),
            Backend::S3(store) => store
                .remove(&id)
                .await
                .map_err(|err| StorageError::S3("removing an upload", err)),
        };
        if let Err(err) = self.track(done) {
            tracing::warn!("cannot remove upload {id}: {err}");
        }
    }

    /// Removes what a crash left: half-received files, and files without a
    /// row (a file is published before its row commits, and a row deleted
    /// before its file), `known_ids` being the rows listed before the
    /// call. Only files last written before `cutoff` go: several instances
    /// share the store, and a younger file may be another instance's upload
    /// in progress, or one about to be recorded. Returns how many files
    /// went, and how many rows have no file (reported, not touched: a
    /// misconfigured store must not cost metadata).
    pub async fn repair(
        &self,
        known_ids: HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<(usize, usize), StorageError> {
        let done = match &*self.backend {
            Backend::Fs(store) => {
                let store = store.clone();
                rocket::tokio::task::spawn_blocking(move || store.repair(&known_ids, cutoff))
                    .await
                    .unwrap_or_else(|err| Err(std::io::Error::other(err)))
                    .map_err(|err| StorageError::Fs("sweeping upload.dir", err))
            }
            Backend::S3(store) => store
                .repair(&known_ids, cutoff)
                .await
                .map_err(|err| StorageError::S3("sweeping the bucket", err)),
        };
        self.track(done)
    }

    /// A claim on `owner`'s quota for a file being received, of which at
    /// most `room` bytes may be in flight at once across their uploads.
    pub fn reservation(&self, owner: i64, room: u64) -> Reservation {
        Reservation {
            receiving: Arc::clone(&self.receiving),
            owner,
            room,
            held: 0,
        }
    }
}

/// A file being received.
pub enum Staging {
    Fs(fs::FsStaging),
    S3(s3::S3Staging),
}

impl Staging {
    pub async fn put(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        match self {
            Staging::Fs(staging) => staging
                .put(&chunk)
                .await
                .map_err(|err| StorageError::Fs("writing an upload", err)),
            Staging::S3(staging) => staging
                .put(chunk)
                .await
                .map_err(|err| StorageError::S3("writing an upload", err)),
        }
    }

    /// The file, complete under its temporary name.
    pub async fn finish(self) -> Result<Staged, StorageError> {
        match self {
            Staging::Fs(staging) => staging
                .finish()
                .await
                .map(Staged::Fs)
                .map_err(|err| StorageError::Fs("syncing an upload to disk", err)),
            Staging::S3(staging) => staging
                .finish()
                .await
                .map(Staged::S3)
                .map_err(|err| StorageError::s3_io("completing an upload", err)),
        }
    }
}

/// A received file under its temporary name: removed when dropped unless
/// published.
pub enum Staged {
    Fs(fs::TempFile),
    S3(s3::S3Staged),
}

/// A stored file's bytes: a file on disk, or an object as it streams in.
pub enum StoredBody {
    File(rocket::tokio::fs::File),
    Stream(tokio_util::io::StreamReader<s3::ObjectStream, Bytes>),
}

/// How old a file without a row must be before a sweep removes it: older
/// than any upload in progress can be (`upload.idle_timeout` is at most an
/// hour between two reads, and a finished file's row commits at once).
pub const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// The client's file name reduced to a safe base name: the part after the
/// last `/` or `\`, control characters removed, at most 255 bytes, and
/// `file` when nothing (or only `.` or `..`) is left.
pub fn safe_filename(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    // Controls and format characters go: bidi overrides (`U+202E`) make
    // `exe.txt` display as `txt.exe`, zero-width ones hide in plain sight.
    let visible = |c: &char| {
        !matches!(
            c.general_category(),
            GeneralCategory::Control | GeneralCategory::Format
        )
    };
    let mut name = String::new();
    for c in base.chars().filter(visible) {
        if name.len() + c.len_utf8() > MAX_FILENAME_BYTES {
            break;
        }
        name.push(c);
    }
    if name.is_empty() || name == "." || name == ".." {
        "file".to_owned()
    } else {
        name
    }
}

/// `Content-Disposition: attachment` with the name quoted safely for old
/// clients and RFC 5987-encoded for the rest.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        let c = byte as char;
        if c.is_ascii_alphanumeric() || "!#$&+-.^_`|~".contains(c) {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Bytes of one upload being received, counted with the owner's others;
/// given back when dropped (the upload stored or abandoned).
pub struct Reservation {
    receiving: Arc<DashMap<i64, u64>>,
    owner: i64,
    room: u64,
    held: u64,
}

impl Reservation {
    /// Claims `bytes` more; false (and nothing claimed) when the owner's
    /// uploads in flight would then pass `room`.
    pub fn grow(&mut self, bytes: u64) -> bool {
        let mut in_flight = self.receiving.entry(self.owner).or_insert(0);
        match in_flight.checked_add(bytes) {
            Some(total) if total <= self.room => {
                *in_flight = total;
                self.held += bytes;
                true
            }
            _ => false,
        }
    }

    /// What this holds, moved into a new reservation (this one keeps
    /// nothing).
    pub fn take(&mut self) -> Reservation {
        Reservation {
            receiving: Arc::clone(&self.receiving),
            owner: self.owner,
            room: self.room,
            held: std::mem::take(&mut self.held),
        }
    }

    /// The most the owner's uploads may have in flight.
    pub fn room(&self) -> u64 {
        self.room
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held == 0 {
            return;
        }
        self.receiving.remove_if_mut(&self.owner, |_, in_flight| {
            *in_flight -= self.held;
            *in_flight == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_become_safe_base_names() {
        let long = "é".repeat(200);
        let cases = [
            (Some("report.pdf"), "report.pdf"),
            (Some("../../etc/passwd"), "passwd"),
            (Some("..\\..\\x"), "x"),
            (Some("/absolute/path/name.txt"), "name.txt"),
            (Some("C:\\Users\\me\\photo.jpg"), "photo.jpg"),
            (Some("a\0b\nc\u{7f}d"), "abcd"),
            (Some(".."), "file"),
            (Some("."), "file"),
            (Some("dir/"), "file"),
            (Some(""), "file"),
            (None, "file"),
            (Some("naïve résumé.txt"), "naïve résumé.txt"),
            (Some("invoice\u{202E}fdp.exe"), "invoicefdp.exe"),
            (Some("a\u{200B}b\u{2066}c\u{FEFF}d\u{AD}e"), "abcde"),
            (Some("\u{200D}\u{200E}"), "file"),
        ];
        for (raw, expected) in cases {
            assert_eq!(safe_filename(raw), expected, "{raw:?}");
        }
        let truncated = safe_filename(Some(&long));
        assert!(truncated.len() <= MAX_FILENAME_BYTES && truncated.len() >= 254);
        assert!(
            truncated.chars().all(|c| c == 'é'),
            "cut at a character boundary"
        );
        assert_eq!(safe_filename(Some(&"x".repeat(1000))).len(), 255);
    }

    #[test]
    fn content_disposition_quotes_and_encodes() {
        assert_eq!(
            content_disposition("a \"b\".txt"),
            "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt"
        );
        assert_eq!(
            content_disposition("résumé.pdf"),
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        );
    }
}
