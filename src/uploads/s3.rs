//! Uploads in an S3-compatible bucket (`upload.backend = "s3"`), under the
//! same names as on disk: `<prefix>tmp/<random>.part` while a file is being
//! received (a multipart upload, a part at a time), `<prefix>files/<id>`
//! once complete (a server-side copy), so that an object under `files/` is
//! always whole. Every instance shares the bucket.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use rocket::tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::config::S3Settings;

/// The size of the parts of a multipart upload: S3's smallest. A file
/// smaller than this is sent in one request.
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once: with the part being filled, what
/// an upload holds in memory is at most three parts.
const PARTS_IN_FLIGHT: usize = 2;

/// The bucket, and where in it Roster's keys start.
#[derive(Debug)]
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// `bucket "name" at endpoint`, for messages.
    described: String,
}

pub type Error = object_store::Error;

impl S3Store {
    /// The bucket of `settings`, with what they leave out taken from the
    /// `AWS_*` environment variables. Nothing is sent yet.
    pub fn new(settings: &S3Settings) -> Result<Self, String> {
        // reqwest's rustls needs a process-wide provider: ring, as sqlx's
        // TLS uses (installing twice is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env();
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(bucket) = &settings.bucket {
            builder = builder.with_bucket_name(bucket);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let plain_http = endpoint
            .as_deref()
            .is_some_and(|endpoint| endpoint.starts_with("http://"));
        let client = ClientOptions::new()
            .with_allow_http(plain_http)
            .with_connect_timeout(Duration::from_secs(5))
            // A download streams at the client's pace, for as long as it
            // takes: no limit on the whole request, only on each read.
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(60));
        // A few quick retries: a request waits seconds, not minutes, on a
        // store that is down.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
        };
        let bucket = builder
            .get_config_value(&AmazonS3ConfigKey::Bucket)
            .unwrap_or_default();
        let has_key = builder
            .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
            .is_some_and(|key| !key.is_empty());
        let store = builder
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_client_options(client)
            .with_retry(retry)
            .build()
            .map_err(|err| format!("upload.s3 is not usable: {err}"))?;
        let mut described = format!("bucket {bucket:?}");
        if let Some(endpoint) = &endpoint {
            described.push_str(&format!(" at {endpoint}"));
        }
        if !has_key {
            // object_store then asks the instance metadata service, which
            // is right on AWS and puzzling elsewhere.
            described.push_str(
                " (no upload.s3.access_key_id nor AWS_ACCESS_KEY_ID: credentials were \
                 sought from the instance metadata service)",
            );
        }
        let prefix = match settings.prefix.trim_end_matches('/') {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        Ok(S3Store {
            store: Arc::new(store),
            prefix,
            described,
        })
    }

    pub fn describe(&self) -> &str {
        &self.described
    }

    fn file_key(&self, id: &Uuid) -> Path {
        Path::from(format!("{}files/{}", self.prefix, id.hyphenated()))
    }

    fn area(&self, name: &str) -> Path {
        Path::from(format!("{}{name}", self.prefix))
    }

    /// Lists the prefix once: wrong credentials, a missing bucket or an
    /// unreachable endpoint stop the start with the store's own words.
    pub async fn check(&self) -> Result<(), Error> {
        self.store
            .list_with_delimiter(Some(&self.area("files")))
            .await
            .map(drop)
    }

    /// A new temporary object for an upload being received.
    pub fn stage(&self) -> S3Staging {
        let key = self.area(&format!("tmp/{}.part", Uuid::new_v4().simple()));
        let writer = BufWriter::with_capacity(Arc::clone(&self.store), key.clone(), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        S3Staging {
            writer: Some(writer),
            staged: Some(S3Staged {
                store: Arc::clone(&self.store),
                key,
                published: false,
            }),
        }
    }

    /// Copies a received object into place as upload `id`, then removes
    /// the temporary one.
    pub async fn publish(&self, mut staged: S3Staged, id: &Uuid) -> Result<(), Error> {
        self.store.copy(&staged.key, &self.file_key(id)).await?;
        staged.published = true;
        if let Err(err) = self.store.delete(&staged.key).await {
            tracing::warn!("cannot remove {}: {err}", staged.key);
        }
        Ok(())
    }

    /// Upload `id`'s object as a stream of bytes, with its size; `None`
    /// when there is none.
    pub async fn open(&self, id: &Uuid) -> Result<Option<(ObjectStream, u64)>, Error> {
        match self.store.get(&self.file_key(id)).await {
            Ok(found) => {
                let size = found.meta.size;
                Ok(Some((found.into_stream(), size)))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Removes upload `id`'s object; one that is not there is not an error.
    pub async fn remove(&self, id: &Uuid) -> Result<(), Error> {
        match self.store.delete(&self.file_key(id)).await {
            Err(Error::NotFound { .. }) => Ok(()),
            done => done,
        }
    }

    /// Every object under `area` (`tmp`, `files`).
    async fn listing(&self, area: &str) -> Result<Vec<object_store::ObjectMeta>, Error> {
        self.store.list(Some(&self.area(area))).try_collect().await
    }

    /// See [`super::Storage::repair`].
    pub async fn repair(
        &self,
        known_ids: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<(usize, usize), Error> {
        let stale = |meta: &object_store::ObjectMeta| SystemTime::from(meta.last_modified) < cutoff;
        let mut doomed: Vec<Path> = self
            .listing("tmp")
            .await?
            .into_iter()
            .filter(stale)
            .map(|meta| meta.location)
            .collect();
        let mut present = HashSet::new();
        let files = self.listing("files").await?;
        for meta in files {
            let name = meta.location.filename().unwrap_or_default().to_owned();
            if known_ids.contains(&name) {
                present.insert(name);
            } else if stale(&meta) {
                doomed.push(meta.location);
            }
        }
        let removed = doomed.len();
        for key in doomed {
            if let Err(err) = self.store.delete(&key).await {
                tracing::warn!("cannot remove {key}: {err}");
            }
        }
        Ok((removed, known_ids.len() - present.len()))
    }
}

/// An object's bytes as they arrive from the store.
pub type ObjectStream = futures_util::stream::BoxStream<'static, Result<Bytes, Error>>;

/// An upload being received: its parts go to the store as they fill.
pub struct S3Staging {
    /// `None` once finished.
    writer: Option<BufWriter>,
    /// `None` once finished.
    staged: Option<S3Staged>,
}

impl S3Staging {
    pub async fn put(&mut self, chunk: Bytes) -> Result<(), Error> {
        match &mut self.writer {
            Some(writer) => writer.put(chunk).await,
            None => Ok(()),
        }
    }

    /// The object, complete in the store.
    pub async fn finish(mut self) -> std::io::Result<S3Staged> {
        if let Some(mut writer) = self.writer.take() {
            // On failure the writer has already abandoned the upload.
            writer.shutdown().await?;
        }
        Ok(self.staged.take().expect("finished once"))
    }
}

impl Drop for S3Staging {
    fn drop(&mut self) {
        // Abandoned (too large, malformed, stalled): the parts sent so far
        // are discarded in the background; no object was made.
        if let Some(mut writer) = self.writer.take() {
            if let Some(staged) = &mut self.staged {
                staged.published = true;
            }
            spawn_cleanup(async move {
                if let Err(err) = writer.abort().await {
                    tracing::warn!("cannot abandon an upload's parts: {err}");
                }
            });
        }
    }
}

/// A received object under its temporary key, removed when dropped unless
/// it was published.
pub struct S3Staged {
    store: Arc<dyn ObjectStore>,
    key: Path,
    published: bool,
}

impl Drop for S3Staged {
    fn drop(&mut self) {
        if !self.published {
            let (store, key) = (Arc::clone(&self.store), self.key.clone());
            spawn_cleanup(async move {
                if let Err(err) = store.delete(&key).await {
                    tracing::warn!("cannot remove {key}: {err}");
                }
            });
        }
    }
}

/// Runs `cleanup` on the runtime, if there is one (else the sweep will).
fn spawn_cleanup(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = rocket::tokio::runtime::Handle::try_current() {
        runtime.spawn(cleanup);
    }
}
