//! Reading an [`AssertionSource::file`](client_credentials::AssertionSource::file)
//! for the core, which reads no files: a workload identity token (a
//! Kubernetes projected service-account token, a cloud's federated token
//! file, a SPIFFE JWT-SVID) re-read whenever it changes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::token_file::{read_checked, FileRule, RefusedFile};

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

    /// The file's current content (or why it cannot be used) when it
    /// changed since the last read, for the driver's `Task::ReadAssertion`;
    /// `None` when it did not. A rotated file (written in place, renamed
    /// over, or a symlink swapped as the kubelet does) has a new
    /// modification time, length or inode.
    ///
    /// The file is read under [`FileRule::Platform`]: no FIFO or device, no
    /// link but the kubelet's one, not writable by group or others, owned by
    /// this user or root, at most 64 KiB. The driver calls this outside its
    /// state lock, so a slow file system holds up no caller but the ones
    /// that need this assertion.
    pub(crate) fn read_if_changed(&mut self) -> Option<Result<String, String>> {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        if stamp.is_some() && stamp == self.seen {
            return None;
        }
        self.seen = None;
        let content = read_checked(&self.path, FileRule::Platform)
            .map_err(
                |error| match error.get_ref().and_then(|e| e.downcast_ref::<RefusedFile>()) {
                    Some(refused) => refused.to_string(),
                    None => format!("cannot read {}: {}", self.path.display(), error.kind()),
                },
            )
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", self.path.display()))
            });
        if content.is_ok() {
            self.seen = stamp;
        }
        Some(content)
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
