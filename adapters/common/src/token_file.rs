//! A token file: loaded at start, replaced atomically on each new token.
//!
//! The file holds `{"tokens": [{"fingerprint": …, "token": …}, …]}`: each
//! token's JSON (`AccessToken`'s serde form) with the
//! [`Config::fingerprint`] of the configuration it was fetched for, one
//! entry per fingerprint (a client's keys, or runs of a program with other
//! scopes), at most [`MAX_TOKENS`] of them (a save drops those that expire
//! soonest). The one-token `{"fingerprint": …, "token": …}` of earlier
//! versions is read too. Writes go to a temporary file in the
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
//! - on Unix, only a regular file owned by the user this process runs as,
//!   with no permission for group or others, reached without following a
//!   symlink: another local user could have planted it (in `/tmp`, say),
//!   pointed a link at another file, or read it. The file is opened with
//!   `O_NOFOLLOW | O_NONBLOCK` and checked on the open handle, so what is
//!   checked is what is read, and a FIFO at the path is refused at once
//!   instead of blocking every caller; at most [`MAX_FILE_BYTES`] are read.
//!   A refused file is a `PermissionDenied` (or, too large, `InvalidData`)
//!   error holding a [`RefusedFile`], which the clients log as a warning
//!   before fetching a token of their own.
//!
//! [`read_checked`] applies the same checks, with a rule of its own, to a
//! client assertion file (see [`FileRule::Platform`]).
//!
//! [`Config::fingerprint`]: client_credentials::Config::fingerprint

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use client_credentials::AccessToken;
use serde_json::Value;

/// The most a token or assertion file may hold: a token file is a few KiB,
/// a projected service-account token or a JWT-SVID a few more.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Who may own, change and read a file that credentials are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileRule {
    /// The token file: owned by this process's user, no permission at all
    /// for group or others (it holds a bearer token), never a symlink.
    Private,
    /// A client assertion file written by the platform: the kubelet's
    /// projected service-account token (root-owned, mode 0644), a cloud
    /// agent's federated token, a SPIFFE helper's JWT-SVID. Owned by this
    /// process's user or by root; group and others may read it (the
    /// assertion is short-lived and bound to one audience) but not write
    /// it. The path may be a symlink owned by this user or root, followed
    /// once (the kubelet's `token -> ..data/token`, swapped on rotation):
    /// the file it names is opened without following a further link.
    Platform,
}

/// Why a credential file was refused before its content was used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The path is a symbolic link the rule does not follow.
    SymbolicLink,
    /// Not a regular file: a FIFO, a device, a socket, a directory.
    NotARegularFile,
    /// Owned by a user the rule does not trust.
    Owner {
        /// The file's owner.
        uid: u32,
    },
    /// Group or others may change (or, for the token file, read) it.
    Mode {
        /// The permission bits.
        mode: u32,
    },
    /// Larger than [`MAX_FILE_BYTES`].
    TooLarge,
}

/// A credential file refused before its content was used: the inner error
/// of the `io::Error` that [`load`] and [`read_checked`] return
/// (`PermissionDenied`, or `InvalidData` when too large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedFile {
    path: PathBuf,
    rule: FileRule,
    refusal: Refusal,
}

impl RefusedFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why it was refused.
    pub fn refusal(&self) -> &Refusal {
        &self.refusal
    }

    fn into_io(self) -> io::Error {
        let kind = match self.refusal {
            Refusal::TooLarge => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, self)
    }
}

impl fmt::Display for RefusedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let private = self.rule == FileRule::Private;
        write!(f, "{path} is not trusted: ")?;
        match &self.refusal {
            Refusal::SymbolicLink if private => {
                f.write_str("it is a symbolic link, not followed (another user may have pointed it elsewhere)")
            }
            Refusal::SymbolicLink => {
                f.write_str("it is a symbolic link not owned by this user or root, or a link to a link; not followed")
            }
            Refusal::NotARegularFile => f.write_str("it is not a regular file (a FIFO, device or directory?)"),
            Refusal::Owner { uid } => write!(
                f,
                "it is owned by uid {uid}, not by this process's user{}; another user may have planted it \
                 (delete it, or keep it in a private directory)",
                if private { "" } else { " or root" }
            ),
            Refusal::Mode { mode } if private => write!(
                f,
                "it has mode {mode:03o}, which lets group or others read or change it (chmod 600 it)"
            ),
            Refusal::Mode { mode } => write!(
                f,
                "it has mode {mode:03o}, which lets group or others change it (chmod go-w it)"
            ),
            Refusal::TooLarge => write!(f, "it holds more than {MAX_FILE_BYTES} bytes"),
        }
    }
}

impl std::error::Error for RefusedFile {}

/// Reads the file at `path` under `rule`: opened without following a
/// symlink (beyond what the rule allows) and without blocking, checked on
/// the open handle (a regular file, its owner, its mode), at most
/// [`MAX_FILE_BYTES`] read. A refusal is an `io::Error` holding a
/// [`RefusedFile`]; a missing file is `NotFound`.
pub fn read_checked(path: &Path, rule: FileRule) -> io::Result<Vec<u8>> {
    let refused = |refusal| RefusedFile {
        path: path.to_owned(),
        rule,
        refusal,
    };
    let mut file = open_checked(path, rule).map_err(|e| match e {
        Opened::Refused(refusal) => refused(refusal).into_io(),
        Opened::Failed(error) => error,
    })?;
    let metadata = file.metadata()?;
    check_handle(&metadata, rule).map_err(|refusal| refused(refusal).into_io())?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(refused(Refusal::TooLarge).into_io());
    }
    let mut bytes = Vec::new();
    // The length may grow between the check and the read: the cap holds anyway.
    (&mut file).take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(refused(Refusal::TooLarge).into_io());
    }
    Ok(bytes)
}

#[cfg_attr(not(unix), allow(dead_code))]
enum Opened {
    Refused(Refusal),
    Failed(io::Error),
}

/// Opens `path` read-only with `O_NOFOLLOW | O_NONBLOCK`: a symlink as the
/// last component fails to open (it is then told apart from other
/// failures), and a FIFO opens at once instead of waiting for a writer.
#[cfg(unix)]
fn open_checked(path: &Path, rule: FileRule) -> Result<fs::File, Opened> {
    use std::os::unix::fs::MetadataExt;
    let open = |path: &Path| {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
    };
    let is_link = |path: &Path| fs::symlink_metadata(path).ok().filter(|m| m.file_type().is_symlink());
    match open(path) {
        Ok(file) => Ok(file),
        Err(error) => match (is_link(path), rule) {
            (None, _) => Err(Opened::Failed(error)),
            (Some(_), FileRule::Private) => Err(Opened::Refused(Refusal::SymbolicLink)),
            (Some(link), FileRule::Platform) => {
                // One hop, through a link only this user or root can have made.
                if !trusted_owner(link.uid(), rule) {
                    return Err(Opened::Refused(Refusal::SymbolicLink));
                }
                let target = fs::read_link(path).map_err(Opened::Failed)?;
                let target = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
                open(&target).map_err(|error| match is_link(&target) {
                    Some(_) => Opened::Refused(Refusal::SymbolicLink),
                    None => Opened::Failed(error),
                })
            }
        },
    }
}

#[cfg(not(unix))]
fn open_checked(path: &Path, _: FileRule) -> Result<fs::File, Opened> {
    fs::File::open(path).map_err(Opened::Failed)
}

/// Whether `uid` may own a file read under `rule`.
#[cfg(unix)]
fn trusted_owner(uid: u32, rule: FileRule) -> bool {
    let me = process_uid();
    uid == me || (rule == FileRule::Platform && uid == 0)
}

/// The checks made on the open handle: a regular file, owner, mode.
#[cfg(unix)]
fn check_handle(metadata: &fs::Metadata, rule: FileRule) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt;
    if !metadata.file_type().is_file() {
        return Err(Refusal::NotARegularFile);
    }
    if !trusted_owner(metadata.uid(), rule) {
        return Err(Refusal::Owner { uid: metadata.uid() });
    }
    let mode = metadata.mode() & 0o777;
    let forbidden = match rule {
        FileRule::Private => 0o077,
        FileRule::Platform => 0o022,
    };
    if mode & forbidden != 0 {
        return Err(Refusal::Mode { mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_handle(metadata: &fs::Metadata, _: FileRule) -> Result<(), Refusal> {
    if metadata.file_type().is_file() {
        Ok(())
    } else {
        Err(Refusal::NotARegularFile)
    }
}

/// The most tokens one token file keeps, one per configuration
/// fingerprint (a client's keys, or separate runs of a program with other
/// scopes or audiences): past it, or past [`MAX_FILE_BYTES`], a save drops
/// the tokens that expire soonest.
pub const MAX_TOKENS: usize = 64;

/// One token of a token file, its JSON kept as read (parsed only when
/// served or ranked).
struct Entry {
    fingerprint: String,
    token: Value,
}

impl Entry {
    /// Which entry a full file drops first: a token that does not parse,
    /// then the soonest to expire; a token without an expiry last.
    fn keep_rank(&self) -> (u8, u64) {
        match serde_json::from_value::<AccessToken>(self.token.clone()) {
            Err(_) => (0, 0),
            Ok(token) => match token.expires_at() {
                Some(at) => (1, at.as_unix_secs()),
                None => (2, 0),
            },
        }
    }
}

fn not_a_token(path: &Path, reason: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not a token file: {reason}", path.display()),
    )
}

/// The entries of the token file at `path` (none when it does not exist).
/// Both formats are read: `{"tokens": [{"fingerprint", "token"}, …]}`, and
/// the one-token `{"fingerprint", "token"}` of earlier versions; an entry
/// without a fingerprint is skipped (it belongs to no known configuration).
fn read_entries(path: &Path) -> io::Result<Vec<Entry>> {
    let bytes = match read_checked(path, FileRule::Private) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let entry = |item: Value| {
        let Value::Object(mut object) = item else { return None };
        let fingerprint = object.get("fingerprint")?.as_str()?.to_owned();
        Some(Entry {
            fingerprint,
            token: object.remove("token")?,
        })
    };
    let mut object = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(not_a_token(path, "not a JSON object")),
        Err(e) => return Err(not_a_token(path, e)),
    };
    match object.remove("tokens") {
        Some(Value::Array(items)) => Ok(items.into_iter().filter_map(entry).collect()),
        Some(_) => Err(not_a_token(path, "\"tokens\" is not a list")),
        None if !object.contains_key("fingerprint") => Ok(Vec::new()),
        None if !object.contains_key("token") => Err(not_a_token(path, "no token")),
        None => Ok(entry(Value::Object(object)).into_iter().collect()),
    }
}

/// Reads the token at `path` saved for `fingerprint`: `Ok(None)` when the
/// file does not exist or holds no token for that configuration; an
/// `InvalidData` error when it is not a token file, a `PermissionDenied`
/// error when its owner or permissions make it untrustworthy (the caller
/// treats both as empty, with a warning).
pub fn load(path: &Path, fingerprint: &str) -> io::Result<Option<AccessToken>> {
    let entries = read_entries(path)?;
    let Some(entry) = entries.into_iter().find(|e| e.fingerprint == fingerprint) else {
        tracing::debug!(
            path = %path.display(),
            "client-credentials: the token file holds no token for this configuration"
        );
        return Ok(None);
    };
    serde_json::from_value(entry.token)
        .map(Some)
        .map_err(|e| not_a_token(path, e))
}

/// Writes `token` to `path` for `fingerprint` beside the tokens saved there
/// for other fingerprints (replacing this fingerprint's), atomically, with
/// owner-only permissions, and flushes the directory so the rename survives
/// a crash. At most [`MAX_TOKENS`] tokens and [`MAX_FILE_BYTES`] are kept:
/// the others that expire soonest are dropped. A file that cannot be read
/// (not a token file, or not trusted) is replaced.
///
/// Saving reads the file, then renames a new one over it: two processes
/// saving at once for different fingerprints may drop one of the two
/// tokens, which costs that configuration one token request and never
/// serves a token to the wrong one (callers in one process serialise
/// saves, as [`FileStore`](crate::FileStore) does).
pub fn save(path: &Path, fingerprint: &str, token: &AccessToken) -> io::Result<()> {
    let mut entries = read_entries(path).unwrap_or_default();
    entries.retain(|e| e.fingerprint != fingerprint);
    let token = serde_json::to_value(token).map_err(io::Error::other)?;
    entries.insert(
        0,
        Entry {
            fingerprint: fingerprint.to_owned(),
            token,
        },
    );
    loop {
        let json = serialize(&entries)?;
        let fits = entries.len() <= MAX_TOKENS && json.len() as u64 <= MAX_FILE_BYTES;
        // The new token (first) is always kept.
        let drop = entries
            .iter()
            .enumerate()
            .skip(1)
            .min_by_key(|(_, e)| e.keep_rank())
            .map(|(i, _)| i);
        match drop {
            Some(index) if !fits => {
                entries.remove(index);
            }
            _ => return write_atomically(path, &json),
        }
    }
}

fn serialize(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let tokens: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::json!({ "fingerprint": e.fingerprint, "token": e.token }))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "tokens": tokens })).map_err(io::Error::other)
}

/// Replaces `path` with `json`: a temporary file in the same directory,
/// created private, flushed, renamed over it, the directory flushed.
fn write_atomically(path: &Path, json: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("token");
    let temp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), unique()));
    let result = (|| {
        let mut file = open_private(&temp)?;
        file.write_all(json)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(&dir)
}

/// Removes the token saved at `path` for `fingerprint`, keeping the other
/// fingerprints' tokens (the file goes when none is left). A missing file or
/// token is not an error; a file that is not a token file, or is not
/// trusted, is left in place with the error [`load`] gives for it.
///
/// The read and the rewrite are two steps: a token another process saves
/// between them may be dropped, which costs that process one token request
/// and never serves a token to the wrong configuration.
pub fn delete(path: &Path, fingerprint: &str) -> io::Result<()> {
    let mut entries = read_entries(path)?;
    let before = entries.len();
    entries.retain(|e| e.fingerprint != fingerprint);
    if entries.len() == before {
        return Ok(());
    }
    if !entries.is_empty() {
        return write_atomically(path, &serialize(&entries)?);
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

/// The user this process runs as (its effective uid).
#[cfg(unix)]
fn process_uid() -> u32 {
    rustix::process::geteuid().as_raw()
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
        assert_eq!(back.refresh_token().unwrap(), "r");
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

    fn expiring(secret: &str, at: u64) -> AccessToken {
        AccessToken::builder(secret)
            .expires_at(Timestamp::from_unix_secs(at))
            .build()
            .unwrap()
    }

    /// One token per fingerprint: saving one keeps the others, a second
    /// save for a fingerprint replaces its token, a delete removes only its
    /// own, and the file goes with the last one.
    #[test]
    fn a_token_file_keeps_one_token_per_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let (read, write) = (expiring("read", 100), expiring("write", 200));
        save(&path, "scope=read", &read).unwrap();
        save(&path, "scope=write", &write).unwrap();
        assert_eq!(load(&path, "scope=read").unwrap(), Some(read));
        assert_eq!(load(&path, "scope=write").unwrap(), Some(write.clone()));
        assert!(load(&path, "scope=admin").unwrap().is_none());
        let newer = expiring("read-2", 300);
        save(&path, "scope=read", &newer).unwrap();
        assert_eq!(load(&path, "scope=read").unwrap(), Some(newer));
        let document: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(document["tokens"].as_array().unwrap().len(), 2);
        delete(&path, "scope=read").unwrap();
        assert!(load(&path, "scope=read").unwrap().is_none());
        assert_eq!(load(&path, "scope=write").unwrap(), Some(write));
        delete(&path, "scope=write").unwrap();
        assert!(!path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            save(&path, "a", &expiring("a", 1)).unwrap();
            save(&path, "b", &expiring("b", 1)).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    /// Past [`MAX_TOKENS`] (or [`MAX_FILE_BYTES`]) a save drops the tokens
    /// that expire soonest, never the one it saves.
    #[test]
    fn a_full_token_file_drops_the_soonest_expiring_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let lasting = AccessToken::builder("no-expiry").build().unwrap();
        save(&path, "lasting", &lasting).unwrap();
        for n in 0..MAX_TOKENS as u64 {
            // Saved latest-expiring first: the soonest are the newest entries.
            save(&path, &format!("key-{n}"), &expiring(&format!("t-{n}"), 10_000 - n)).unwrap();
        }
        let document: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(document["tokens"].as_array().unwrap().len(), MAX_TOKENS);
        let last = MAX_TOKENS as u64 - 1;
        assert!(
            load(&path, &format!("key-{last}")).unwrap().is_some(),
            "the token saved is kept"
        );
        assert!(
            load(&path, &format!("key-{}", last - 1)).unwrap().is_none(),
            "the soonest-expiring other token was dropped"
        );
        assert!(load(&path, "key-0").unwrap().is_some());
        assert_eq!(load(&path, "lasting").unwrap(), Some(lasting));

        // Large tokens: bounded by bytes before the count.
        let big = |n: usize| expiring(&"x".repeat(20 * 1024 + n), 5_000 + n as u64);
        for n in 0..4 {
            save(&path, &format!("big-{n}"), &big(n)).unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= MAX_FILE_BYTES);
        assert!(load(&path, "big-3").unwrap().is_some());
    }

    /// The one-token file of earlier versions is read, and kept beside the
    /// next token saved.
    #[test]
    fn a_one_token_file_of_an_earlier_version_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let old = expiring("old", 100);
        let document = serde_json::json!({ "fingerprint": FINGERPRINT, "token": old });
        fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(load(&path, FINGERPRINT).unwrap(), Some(old.clone()));
        save(&path, "other", &expiring("other", 200)).unwrap();
        assert_eq!(load(&path, FINGERPRINT).unwrap(), Some(old));
        assert!(load(&path, "other").unwrap().is_some());
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
        let uid = process_uid();
        assert_eq!(fs::metadata(&path).unwrap().uid(), uid);
        if std::os::unix::fs::chown(&path, Some(uid.wrapping_add(4242)), None).is_err() {
            return; // not root
        }
        let error = load(&path, FINGERPRINT).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("owned by uid"), "{error}");
    }

    /// Runs `read` on another thread and fails the test, instead of hanging
    /// it, when no answer comes within a few seconds.
    #[cfg(unix)]
    fn promptly<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || send.send(read()));
        receive
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the read returned promptly instead of blocking")
    }

    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    }

    #[cfg(unix)]
    fn refusal(error: &io::Error) -> Refusal {
        error
            .get_ref()
            .and_then(|e| e.downcast_ref::<RefusedFile>())
            .unwrap_or_else(|| panic!("not a RefusedFile: {error:?}"))
            .refusal()
            .clone()
    }

    /// A FIFO at the token path (planted, or left by a tool) is refused at
    /// once: opened without O_NONBLOCK, the open waits for a writer that
    /// never comes, and every caller waits inside the single flight.
    #[cfg(unix)]
    #[test]
    fn a_fifo_at_the_token_path_is_refused_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        mkfifo(&path);
        let error = promptly(move || load(&path, FINGERPRINT).unwrap_err());
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(refusal(&error), Refusal::NotARegularFile);
    }

    /// A symlink at the token path is not followed, whatever it names.
    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_token_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let path = dir.path().join("token.json");
        save(&real, FINGERPRINT, &AccessToken::builder("tok").build().unwrap()).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let error = load(&path, FINGERPRINT).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(refusal(&error), Refusal::SymbolicLink);
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }

    /// A file larger than the cap is refused without being read into memory.
    #[cfg(unix)]
    #[test]
    fn a_token_file_of_one_mebibyte_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        fs::write(&path, vec![b' '; 1024 * 1024]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = load(&path, FINGERPRINT).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(refusal(&error), Refusal::TooLarge);
    }

    /// A world-writable token file is refused (another user may have written it).
    #[cfg(unix)]
    #[test]
    fn a_world_writable_token_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        save(&path, FINGERPRINT, &AccessToken::builder("tok").build().unwrap()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let error = load(&path, FINGERPRINT).unwrap_err();
        assert_eq!(refusal(&error), Refusal::Mode { mode: 0o666 });
    }

    /// The assertion file's rule: a platform's token (this user's or root's,
    /// readable by others, as the kubelet writes it) is read, through the
    /// kubelet's one symlink; a FIFO, a link to a link, a writable or too
    /// large file are refused.
    #[cfg(unix)]
    #[test]
    fn an_assertion_file_is_read_under_the_platform_rule() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let read = |path: &Path| read_checked(path, FileRule::Platform);

        // The kubelet's layout: token -> ..data/token, ..data -> ..2026_01_01, mode 0644.
        let data = dir.path().join("..2026_01_01");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("token"), b"header.claims.signature").unwrap();
        fs::set_permissions(data.join("token"), fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("..2026_01_01", dir.path().join("..data")).unwrap();
        let path = dir.path().join("token");
        std::os::unix::fs::symlink("..data/token", &path).unwrap();
        assert_eq!(read(&path).unwrap(), b"header.claims.signature");

        // A link to a link: not followed further.
        let twice = dir.path().join("twice");
        std::os::unix::fs::symlink(&path, &twice).unwrap();
        assert_eq!(refusal(&read(&twice).unwrap_err()), Refusal::SymbolicLink);

        // Writable by others.
        let writable = dir.path().join("writable");
        fs::write(&writable, b"a.b.c").unwrap();
        fs::set_permissions(&writable, fs::Permissions::from_mode(0o646)).unwrap();
        assert_eq!(refusal(&read(&writable).unwrap_err()), Refusal::Mode { mode: 0o646 });

        // 1 MiB.
        let large = dir.path().join("large");
        fs::write(&large, vec![b'a'; 1024 * 1024]).unwrap();
        assert_eq!(refusal(&read(&large).unwrap_err()), Refusal::TooLarge);

        // A FIFO, directly and through a link.
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let linked = dir.path().join("linked-fifo");
        std::os::unix::fs::symlink(&fifo, &linked).unwrap();
        for path in [fifo, linked] {
            let error = promptly(move || read_checked(&path, FileRule::Platform).unwrap_err());
            assert_eq!(refusal(&error), Refusal::NotARegularFile);
        }

        // A link another user made is not followed; a file another user
        // owns is refused. Changing an owner needs root.
        let uid = process_uid();
        let other = if uid == 0 { 4242 } else { uid.wrapping_add(4242) };
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(data.join("token"), &planted).unwrap();
        if std::os::unix::fs::lchown(&planted, Some(other), None).is_ok() {
            assert_eq!(refusal(&read(&planted).unwrap_err()), Refusal::SymbolicLink);
            std::os::unix::fs::chown(&writable, Some(other), None).unwrap();
            fs::set_permissions(&writable, fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(refusal(&read(&writable).unwrap_err()), Refusal::Owner { uid: other });
        }
    }
}
