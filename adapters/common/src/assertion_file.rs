//! Reading an [`AssertionSource::file`](client_credentials::AssertionSource::file)
//! for the core, which reads no files: a workload identity token (a
//! Kubernetes projected service-account token, a cloud's federated token
//! file, a SPIFFE JWT-SVID) re-read whenever it changes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use client_credentials::TokenSource;

/// The largest assertion file read (a JWT-SVID or a projected token is a few KiB).
const MAX_ASSERTION_BYTES: u64 = 64 * 1024;

/// The file and what was last seen of it.
#[derive(Debug)]
pub(crate) struct AssertionFile {
    path: PathBuf,
    /// What identified the content at the last read (`None`: not read, or
    /// the last read failed, so the next request reads again).
    seen: Option<Stamp>,
}

impl AssertionFile {
    pub(crate) fn new(path: &Path) -> Self {
        AssertionFile {
            path: path.to_owned(),
            seen: None,
        }
    }

    /// Hands the file's current content (or why it cannot be read) to
    /// `source`, reading it only when it changed since the last read. A
    /// rotated file (written in place, renamed over, or a symlink swapped as
    /// the kubelet does) has a new modification time or length.
    pub(crate) fn refresh(&mut self, source: &mut TokenSource) {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        if stamp.is_some() && stamp == self.seen {
            return;
        }
        self.seen = None;
        let shown = self.path.display();
        let content = match stamp {
            Some(Stamp { len, .. }) if len > MAX_ASSERTION_BYTES => {
                Err(format!("{shown} is {len} bytes, more than an assertion can be"))
            }
            _ => std::fs::read_to_string(&self.path).map_err(|e| format!("cannot read {shown}: {}", e.kind())),
        };
        if content.is_ok() {
            self.seen = stamp;
        }
        source.provide_assertion(content);
    }
}

/// Modification time, length and (on Unix) inode: a file renamed over the
/// old one is noticed even within one tick of the file system's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: metadata.len(),
            inode,
        }
    }
}
