//! `TestUploads`: where a test's uploads are stored, and what is there.
//!
//! A directory of the test's own, unless `ROSTER_TEST_S3_ENDPOINT` names an
//! S3-compatible server (with `ROSTER_TEST_S3_BUCKET`,
//! `ROSTER_TEST_S3_REGION`, `ROSTER_TEST_S3_ACCESS_KEY_ID` and
//! `ROSTER_TEST_S3_SECRET_ACCESS_KEY`): then each test gets a fresh prefix
//! in that bucket. What is stored is read here with a client of the test's
//! own, not through Roster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use rocket::figment::Figment;

pub const S3_ENV: &str = "ROSTER_TEST_S3_ENDPOINT";

/// The bucket the tests store uploads in, when one is given.
#[derive(Clone)]
pub struct TestS3 {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub fn s3() -> Option<TestS3> {
    let endpoint = std::env::var(S3_ENV).ok().filter(|e| !e.is_empty())?;
    let var = |name: &str| {
        std::env::var(format!("ROSTER_TEST_S3_{name}"))
            .unwrap_or_else(|_| panic!("{S3_ENV} is set: ROSTER_TEST_S3_{name} must be too"))
    };
    Some(TestS3 {
        endpoint,
        bucket: var("BUCKET"),
        region: var("REGION"),
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY"),
    })
}

impl TestS3 {
    pub fn client(&self) -> Arc<dyn ObjectStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_bucket_name(&self.bucket)
                .with_region(&self.region)
                .with_access_key_id(&self.access_key_id)
                .with_secret_access_key(&self.secret_access_key)
                .with_allow_http(true)
                .build()
                .expect("an S3 client"),
        )
    }
}

/// Where one test's uploads go.
#[derive(Clone)]
pub enum TestUploads {
    Fs(PathBuf),
    S3 { s3: TestS3, prefix: String },
}

impl TestUploads {
    /// A fresh prefix in the test bucket if there is one, else `dir`.
    pub fn new(dir: &Path) -> TestUploads {
        match s3() {
            Some(s3) => TestUploads::S3 {
                s3,
                prefix: format!("test-{}/", uuid::Uuid::new_v4().simple()),
            },
            None => TestUploads::Fs(dir.to_owned()),
        }
    }

    /// `figment` storing uploads here.
    pub fn configure(&self, figment: Figment) -> Figment {
        match self {
            TestUploads::Fs(dir) => figment
                .merge(("upload.backend", "fs"))
                .merge(("upload.dir", dir.display().to_string())),
            TestUploads::S3 { s3, prefix } => figment
                .merge(("upload.backend", "s3"))
                .merge(("upload.s3.endpoint", &s3.endpoint))
                .merge(("upload.s3.bucket", &s3.bucket))
                .merge(("upload.s3.region", &s3.region))
                .merge(("upload.s3.access_key_id", &s3.access_key_id))
                .merge(("upload.s3.secret_access_key", &s3.secret_access_key))
                .merge(("upload.s3.prefix", prefix)),
        }
    }

    /// The value of `ROCKET_UPLOAD` storing uploads here, with `extra`
    /// (`max_bytes=10,...`) added.
    pub fn rocket_env(&self, extra: &str) -> String {
        let place = match self {
            TestUploads::Fs(dir) => format!("backend=\"fs\",dir=\"{}\"", dir.display()),
            TestUploads::S3 { s3, prefix } => format!(
                "backend=\"s3\",s3={{endpoint=\"{}\",bucket=\"{}\",region=\"{}\",\
                 access_key_id=\"{}\",secret_access_key=\"{}\",prefix=\"{prefix}\"}}",
                s3.endpoint, s3.bucket, s3.region, s3.access_key_id, s3.secret_access_key
            ),
        };
        match extra {
            "" => format!("{{{place}}}"),
            extra => format!("{{{place},{extra}}}"),
        }
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, TestUploads::S3 { .. })
    }

    /// Every stored name, relative to the store's root (`files/<id>`,
    /// `tmp/<name>`), sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = match self {
            TestUploads::Fs(dir) => {
                let mut keys = Vec::new();
                walk(dir, "", &mut keys);
                keys
            }
            TestUploads::S3 { s3, prefix } => {
                let client = s3.client();
                let root = object_store::path::Path::from(prefix.trim_end_matches('/'));
                let listed: Vec<_> = client
                    .list(Some(&root))
                    .try_collect()
                    .await
                    .expect("the bucket lists");
                listed
                    .into_iter()
                    .map(|meta| {
                        meta.location
                            .as_ref()
                            .strip_prefix(prefix.as_str())
                            .expect("under the prefix")
                            .to_owned()
                    })
                    .collect()
            }
        };
        keys.sort();
        keys
    }

    /// The names under `area/` (`files` or `tmp`), sorted.
    pub async fn names_in(&self, area: &str) -> Vec<String> {
        let area = format!("{area}/");
        self.keys()
            .await
            .into_iter()
            .filter_map(|key| key.strip_prefix(&area).map(str::to_owned))
            .collect()
    }

    /// Stores `bytes` under `key` (`files/<id>`, `tmp/<name>`), as a crash
    /// or another instance would leave it.
    pub async fn put(&self, key: &str, bytes: &[u8]) {
        match self {
            TestUploads::Fs(dir) => std::fs::write(dir.join(key), bytes).unwrap(),
            TestUploads::S3 { s3, prefix } => {
                s3.client()
                    .put(
                        &object_store::path::Path::from(format!("{prefix}{key}")),
                        bytes.to_vec().into(),
                    )
                    .await
                    .expect("the bucket takes it");
            }
        }
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}
