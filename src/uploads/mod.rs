//! File storage for uploads: `upload.dir/tmp/` for files being received,
//! `upload.dir/files/<id>` once complete. Client file names never become
//! paths; they are only kept, made safe, as metadata.

mod download;
pub mod receive;

pub use download::Download;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use uuid::Uuid;

/// The longest stored file name, in bytes.
pub const MAX_FILENAME_BYTES: usize = 255;

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    /// Bytes of the uploads each user has being received here: they count
    /// against the quota before they are stored.
    receiving: Arc<DashMap<i64, u64>>,
}

impl Storage {
    /// Creates the directories when missing.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let storage = Storage {
            root: root.into(),
            receiving: Arc::default(),
        };
        std::fs::create_dir_all(storage.files_dir())?;
        std::fs::create_dir_all(storage.tmp_dir())?;
        Ok(storage)
    }

    fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where upload `id` lives. `id` is a UUID of the server's choosing.
    pub fn path_of(&self, id: &Uuid) -> PathBuf {
        self.files_dir().join(id.hyphenated().to_string())
    }

    /// A new temporary path for a file being received.
    pub fn temp_path(&self) -> PathBuf {
        self.tmp_dir()
            .join(format!("{}.part", Uuid::new_v4().simple()))
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

    /// Removes the file of upload `id`, if it is there.
    pub async fn remove(&self, id: &str) {
        let Ok(id) = Uuid::try_parse(id) else {
            return;
        };
        match rocket::tokio::fs::remove_file(self.path_of(&id)).await {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!("cannot remove upload {id}: {err}"),
        }
    }

    /// Removes what a crash left: half-received files, and files without a
    /// row (a file is renamed into place before its row commits, and a row
    /// deleted before its file), `known_ids` being the rows listed before
    /// the call. Only files last written before `cutoff` go: several
    /// instances may share `upload.dir`, and a younger file may be another
    /// instance's upload in progress, or one about to be recorded. Returns
    /// how many files went, and how many rows have no file (reported, not
    /// touched: a misconfigured `upload.dir` must not cost metadata).
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

/// How old a file without a row must be before a sweep removes it: older
/// than any upload in progress can be (`upload.idle_timeout` is at most an
/// hour between two reads, and a finished file's row commits at once).
pub const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        tracing::warn!("cannot remove {}: {err}", path.display());
    }
}

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
