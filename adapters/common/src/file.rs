//! A token file: loaded at start, replaced atomically on each new token.
//!
//! The file holds the token's JSON (`AccessToken`'s serde form). Writes go to
//! a temporary file in the same directory, created with mode `0600` on Unix,
//! flushed to disk, then renamed over the target, so a reader never sees a
//! half-written token and separate runs of a program share one token.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use client_credentials::AccessToken;

/// Reads the token at `path`: `Ok(None)` when the file does not exist; an
/// `InvalidData` error when it is not a token (the caller treats it as empty).
pub fn load(path: &Path) -> io::Result<Option<AccessToken>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a token file: {e}", path.display()),
        )
    })
}

/// Writes `token` to `path` atomically with owner-only permissions.
pub fn save(path: &Path, token: &AccessToken) -> io::Result<()> {
    let json = serde_json::to_vec(token).map_err(io::Error::other)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("token");
    let temp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), unique()));
    let result = (|| {
        let mut file = open_private(&temp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Removes the token file; a missing file is not an error.
pub fn delete(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

#[cfg(unix)]
fn open_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_credentials::Timestamp;

    #[test]
    fn round_trip_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token.json");
        assert!(load(&path).unwrap().is_none());
        let token = AccessToken::builder("tok")
            .expires_at(Timestamp::from_unix_secs(99))
            .refresh_token("r")
            .build()
            .unwrap();
        save(&path, &token).unwrap();
        save(&path, &token).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back, token);
        assert_eq!(back.refresh_token().unwrap().expose_secret(), "r");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(
            fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp files left"
        );
        delete(&path).unwrap();
        delete(&path).unwrap();
        fs::write(&path, b"garbage").unwrap();
        assert_eq!(load(&path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
