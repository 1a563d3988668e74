//! Uploads in a directory (`upload.backend = "fs"`): `upload.dir/tmp/` for
//! files being received, `upload.dir/files/<id>` once complete. Several
//! instances may share the directory.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rocket::tokio::fs::File;
use rocket::tokio::io::AsyncWriteExt;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Creates the directories when missing.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let store = FsStore { root: root.into() };
        std::fs::create_dir_all(store.files_dir())?;
        std::fs::create_dir_all(store.tmp_dir())?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where upload `id` lives. `id` is a UUID of the server's choosing.
    fn path_of(&self, id: &Uuid) -> PathBuf {
        self.files_dir().join(id.hyphenated().to_string())
    }

    /// A new temporary file for an upload being received.
    pub async fn stage(&self) -> io::Result<FsStaging> {
        let temp = TempFile {
            path: self
                .tmp_dir()
                .join(format!("{}.part", Uuid::new_v4().simple())),
            keep: false,
        };
        let file = File::create(&temp.path).await?;
        Ok(FsStaging { file, temp })
    }

    /// Moves a received file into place as upload `id`.
    pub async fn publish(&self, staged: TempFile, id: &Uuid) -> io::Result<()> {
        rocket::tokio::fs::rename(&staged.path, self.path_of(id)).await?;
        staged.kept();
        Ok(())
    }

    /// Upload `id`'s file and its size; `None` when there is none.
    pub async fn open_file(&self, id: &Uuid) -> io::Result<Option<(File, u64)>> {
        match File::open(self.path_of(id)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some((file, size)))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Removes upload `id`'s file; one that is not there is not an error.
    pub async fn remove(&self, id: &Uuid) -> io::Result<()> {
        match rocket::tokio::fs::remove_file(self.path_of(id)).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// See [`super::Storage::repair`].
    pub fn repair(
        &self,
        known_ids: &HashSet<String>,
        cutoff: SystemTime,
    ) -> io::Result<(usize, usize)> {
        let stale = |entry: &std::fs::DirEntry| {
            entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified < cutoff)
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(self.tmp_dir())? {
            let entry = entry?;
            if stale(&entry) {
                remove_quietly(&entry.path());
                removed += 1;
            }
        }
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(self.files_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if known_ids.contains(&name) {
                present.insert(name);
            } else if stale(&entry) {
                remove_quietly(&entry.path());
                removed += 1;
            }
        }
        Ok((removed, known_ids.len() - present.len()))
    }
}

fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        tracing::warn!("cannot remove {}: {err}", path.display());
    }
}

/// A file being received.
pub struct FsStaging {
    file: File,
    temp: TempFile,
}

impl FsStaging {
    pub async fn put(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk).await
    }

    /// The file, complete and on disk.
    pub async fn finish(self) -> io::Result<TempFile> {
        self.file.sync_all().await?;
        Ok(self.temp)
    }
}

/// A temporary file, removed when dropped unless it was kept.
pub struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// The file was moved elsewhere; do not remove it.
    fn kept(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
