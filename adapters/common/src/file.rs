//! A token file: loaded at start, replaced atomically on each new token.
//!
//! The file holds `{"fingerprint": …, "token": …}`: the token's JSON
//! (`AccessToken`'s serde form) with the [`Config::fingerprint`] of the
//! configuration it was fetched for. Writes go to a temporary file in the
//! same directory, created with mode `0600` on Unix, flushed to disk, renamed
//! over the target, and the directory is flushed too, so a reader never sees
//! a half-written token, a crash never loses the rename, and separate runs of
//! a program share one token.
//!
//! What a load trusts:
//! - only a token saved under the same fingerprint: a file written for
//!   another client, issuer, scope set, resource, audience, extra parameter,
//!   authentication method or key (or by a version with an older
//!   fingerprint) reads as empty, so a production token never reaches a
//!   staging API, nor one organization's token another's; a delete likewise
//!   removes only a token saved under its own fingerprint;
//! - on Unix, only a file owned by the user this process runs as, with no
//!   permission for group or others: another local user could have planted
//!   it (in `/tmp`, say) or read it. Such a file is refused with a
//!   `PermissionDenied` error, which the clients log as a warning before
//!   fetching a token of their own.
//!
//! [`Config::fingerprint`]: client_credentials::Config::fingerprint

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use client_credentials::AccessToken;
use serde_json::Value;

/// Reads the token at `path` saved for `fingerprint`: `Ok(None)` when the
/// file does not exist or was saved for another configuration; an
/// `InvalidData` error when it is not a token file, a `PermissionDenied`
/// error when its owner or permissions make it untrustworthy (the caller
/// treats both as empty, with a warning).
pub fn load(path: &Path, fingerprint: &str) -> io::Result<Option<AccessToken>> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Checked on the open file, so what is checked is what is read.
    check_trusted(path, &file.metadata()?)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let not_a_token = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a token file: {reason}", path.display()),
        )
    };
    let mut object = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(not_a_token("not a JSON object".into())),
        Err(e) => return Err(not_a_token(e.to_string())),
    };
    match object.get("fingerprint").and_then(Value::as_str) {
        Some(saved) if saved == fingerprint => {}
        saved => {
            tracing::debug!(
                path = %path.display(),
                "client-credentials: the stored token was saved for {}; ignored",
                if saved.is_some() { "another configuration" } else { "no known configuration" }
            );
            return Ok(None);
        }
    }
    let token = object.remove("token").ok_or_else(|| not_a_token("no token".into()))?;
    serde_json::from_value(token)
        .map(Some)
        .map_err(|e| not_a_token(e.to_string()))
}

/// Writes `token` to `path` for `fingerprint`, atomically, with owner-only
/// permissions, and flushes the directory so the rename survives a crash.
pub fn save(path: &Path, fingerprint: &str, token: &AccessToken) -> io::Result<()> {
    let document = serde_json::json!({ "fingerprint": fingerprint, "token": token });
    let json = serde_json::to_vec(&document).map_err(io::Error::other)?;
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
    result?;
    sync_dir(&dir)
}

/// Removes the token at `path` if it was saved for `fingerprint`. A missing
/// file is not an error; a file holding another configuration's token is left
/// as it is (two configurations sharing a path do not delete each other's
/// token); a file that is not a token, or is not trusted, is left in place
/// with the error [`load`] gives for it.
///
/// The check and the removal are two steps: a token another process writes
/// between them is removed too, which costs that process one token request
/// and never serves a token to the wrong configuration.
pub fn delete(path: &Path, fingerprint: &str) -> io::Result<()> {
    if load(path, fingerprint)?.is_none() {
        return Ok(());
    }
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

/// Flushes a directory's entries (the rename) to disk. Filesystems that
/// cannot flush a directory say so with `InvalidInput`; that is not a failure.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    match fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported) => Ok(()),
        result => result,
    }
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

/// Refuses a file another user owns, or that group or others may access.
#[cfg(unix)]
fn check_trusted(path: &Path, metadata: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let refused = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}: not trusted, a token is fetched instead", path.display()),
        )
    };
    if let Some(uid) = process_uid() {
        if metadata.uid() != uid {
            return Err(refused(format!(
                "is owned by uid {}, not by this process's user (uid {uid}); another user may have planted it \
                 (delete it, or keep tokens in a private directory)",
                metadata.uid()
            )));
        }
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refused(format!(
            "has mode {mode:03o}, which lets group or others read or change it (chmod 600 it)"
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted(_: &Path, _: &fs::Metadata) -> io::Result<()> {
    Ok(())
}

/// The uid this process creates files as, learned once from a file it
/// creates (no `unsafe`, no libc): `None` when no file could be created
/// (the owner check is then skipped; the permission check still runs).
#[cfg(unix)]
fn process_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    use std::sync::OnceLock;
    static UID: OnceLock<Option<u32>> = OnceLock::new();
    *UID.get_or_init(|| {
        let probe = std::env::temp_dir().join(format!(".client-credentials-uid.{}.{}", std::process::id(), unique()));
        let file = open_private(&probe).ok()?;
        let uid = file.metadata().ok().map(|m| m.uid());
        let _ = fs::remove_file(&probe);
        uid
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_credentials::Timestamp;

    const FINGERPRINT: &str = "f1";

    #[test]
    fn round_trip_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token.json");
        assert!(load(&path, FINGERPRINT).unwrap().is_none());
        let token = AccessToken::builder("tok")
            .expires_at(Timestamp::from_unix_secs(99))
            .refresh_token("r")
            .build()
            .unwrap();
        save(&path, FINGERPRINT, &token).unwrap();
        save(&path, FINGERPRINT, &token).unwrap();
        let back = load(&path, FINGERPRINT).unwrap().unwrap();
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
        delete(&path, FINGERPRINT).unwrap();
        assert!(!path.exists());
        delete(&path, FINGERPRINT).unwrap();
        fs::write(&path, b"garbage").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(load(&path, FINGERPRINT).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    /// A token saved for another configuration, or by a
    /// version that stored no fingerprint, is not served.
    #[test]
    fn a_token_saved_for_another_fingerprint_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let token = AccessToken::builder("production-token").build().unwrap();
        save(&path, "production", &token).unwrap();
        assert!(load(&path, "staging").unwrap().is_none());
        assert_eq!(load(&path, "production").unwrap(), Some(token.clone()));
        // The format of earlier versions: the bare token.
        fs::write(&path, serde_json::to_vec(&token).unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(load(&path, "production").unwrap().is_none());
    }

    /// A delete removes only the token saved for its own configuration: a
    /// file shared by two configurations keeps the other one's token, and a
    /// file that is not a token is left for its owner to look at.
    #[test]
    fn delete_removes_only_the_token_saved_for_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let token = AccessToken::builder("org-b-token").build().unwrap();
        save(&path, "org-b", &token).unwrap();
        delete(&path, "org-a").unwrap();
        assert_eq!(load(&path, "org-b").unwrap(), Some(token));
        delete(&path, "org-b").unwrap();
        assert!(!path.exists());

        fs::write(&path, b"garbage").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(delete(&path, "org-a").unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(path.exists());
    }

    /// A file group or others may read or change is
    /// refused with a clear error (and not deleted: it may not be ours).
    #[cfg(unix)]
    #[test]
    fn a_token_file_open_to_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let token = AccessToken::builder("tok").build().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            save(&path, FINGERPRINT, &token).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = load(&path, FINGERPRINT).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{mode:o}");
            assert!(error.to_string().contains("chmod 600"), "{error}");
            assert!(path.exists());
        }
        // A save replaces it with a private file again.
        save(&path, FINGERPRINT, &token).unwrap();
        assert_eq!(load(&path, FINGERPRINT).unwrap(), Some(token));
    }

    /// A file another user owns is refused, whatever its
    /// content. Changing a file's owner needs root: elsewhere this checks
    /// only that the process's uid is learned.
    #[cfg(unix)]
    #[test]
    fn a_token_file_owned_by_another_user_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let token = AccessToken::builder("planted").build().unwrap();
        save(&path, FINGERPRINT, &token).unwrap();
        let uid = process_uid().expect("the process uid is learned");
        assert_eq!(fs::metadata(&path).unwrap().uid(), uid);
        if std::os::unix::fs::chown(&path, Some(uid.wrapping_add(4242)), None).is_err() {
            return; // not root
        }
        let error = load(&path, FINGERPRINT).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("owned by uid"), "{error}");
    }
}
