//! Sealing stored tokens: XChaCha20-Poly1305 under a key derived from the
//! client secret or from a configured key, so reading Redis is not enough to
//! use a token.
//!
//! - Key: HKDF-SHA256 (RFC 5869) over the key given to
//!   [`RedisStoreBuilder::encryption_key`](crate::RedisStoreBuilder::encryption_key)
//!   (at least 32 bytes), or else over the client id (length-prefixed) and
//!   the client secret. A client that authenticates without a secret
//!   (`private_key_jwt`, an assertion, mutual TLS, an empty secret) has only
//!   public inputs to derive from: it gets no sealer without a configured key
//!   ([`RedisStoreError::EncryptionKeyRequired`]), so nothing is read or written.
//! - Rotation: values sealed under
//!   [`previous_encryption_key`](crate::RedisStoreBuilder::previous_encryption_key)
//!   still open; every write seals under the current key.
//! - Nonce: 24 random bytes from the operating system per write. XChaCha's
//!   192-bit nonce makes random nonces safe for any number of writes by any
//!   number of processes, with no counter to coordinate across the fleet.
//! - Associated data: the Redis key name (which carries
//!   [`Config::fingerprint`]) and the value's header, so a value copied under
//!   another key (another configuration's, another prefix's) does not open,
//!   and a header changed in Redis makes the value unreadable.
//!
//! Value layout: a plaintext header the store's scripts read —
//! `VERSION (1 byte) | expiry (20 ASCII digits, ms since the epoch) | token id (32 hex digits)` —
//! then `nonce (24) | ciphertext and tag`, the plaintext being the token's
//! JSON ([`AccessToken`]'s serde form). The expiry orders writes (a late
//! writer never replaces a token that lives longer); the token id, a keyed
//! hash of the token, lets a process delete exactly the token it saw rejected
//! and reveals nothing about the token without the key.
//!
//! A fleet's rejection back-off ([`SharedBackoff`]) is sealed the same way
//! under its own key name: `BACKOFF_VERSION (1 byte) | nonce (24) |
//! ciphertext and tag`, the plaintext being its end (ms since the epoch,
//! 8 bytes big-endian) and its failure count (4 bytes). A process that
//! cannot seal (no key) cannot make a value the fleet would obey.

use std::io;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use client_credentials::{AccessToken, Config, SharedBackoff, Timestamp};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::store::RedisStoreError;

/// The format version written first in every value.
pub(crate) const VERSION: u8 = 2;
/// The format version of a sealed back-off.
const BACKOFF_VERSION: u8 = 3;
/// A sealed back-off: version, nonce, 12 bytes of plaintext and the tag.
pub(crate) const BACKOFF_LEN: usize = 1 + NONCE_LEN + 12 + 16;
/// Digits of the expiry in the header (a `u64` has at most 20).
const EXPIRY_LEN: usize = 20;
/// Hex digits of the token id in the header (128 bits).
const ID_LEN: usize = 32;
/// The plaintext header: version, expiry, token id.
pub(crate) const HEADER_LEN: usize = 1 + EXPIRY_LEN + ID_LEN;
const NONCE_LEN: usize = 24;
/// The shortest configured key: 256 bits, the cipher's key size.
pub(crate) const MIN_KEY_LEN: usize = 32;
/// HKDF salt: names this use of the credentials, so the derived key is
/// useless for anything else.
const SALT: &[u8] = b"client-credentials-redis token sealing";
const INFO: &[u8] = b"xchacha20poly1305 key v1";
const ID_INFO: &[u8] = b"token id key v1";

/// Whether `config` has a secret worth deriving a key from: a non-empty one
/// that its authentication method uses (an unused one is often a placeholder).
pub(crate) fn has_secret(config: &Config) -> bool {
    let used = match config.auth() {
        Some(auth) => auth.uses_secret(),
        // Negotiated: the secret is what the client falls back to.
        None => true,
    };
    used && !config.client_secret().expose_secret().is_empty()
}

/// One key's cipher and token-id key.
struct Cipher {
    aead: XChaCha20Poly1305,
    id_key: [u8; 32],
}

impl Cipher {
    fn derive(material: &[u8]) -> Cipher {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), material);
        let (mut key, mut id_key) = ([0u8; 32], [0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit: cannot fail.
        let _ = hkdf.expand(INFO, &mut key);
        let _ = hkdf.expand(ID_INFO, &mut id_key);
        Cipher {
            aead: XChaCha20Poly1305::new(&key.into()),
            id_key,
        }
    }

    fn from_key(key: &[u8]) -> Cipher {
        let mut material = Vec::with_capacity(1 + key.len());
        material.push(0);
        material.extend_from_slice(key);
        Cipher::derive(&material)
    }

    /// The token's id under this key: HMAC-SHA256 (HKDF-Extract) keyed by
    /// the id key over the token, 128 bits in hex.
    fn token_id(&self, token: &AccessToken) -> String {
        let hkdf = Hkdf::<Sha256>::new(Some(&self.id_key), token.secret().as_bytes());
        let mut id = [0u8; ID_LEN / 2];
        // 16 bytes: cannot fail.
        let _ = hkdf.expand(b"token id", &mut id);
        id.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn open(&self, aad: &[u8], nonce: &[u8], sealed: &[u8]) -> Option<AccessToken> {
        serde_json::from_slice(&self.decrypt(aad, nonce, sealed)?).ok()
    }

    fn decrypt(&self, aad: &[u8], nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
            .ok()
    }
}

/// The cipher for one client's values.
pub(crate) struct Sealer {
    current: Cipher,
    previous: Option<Cipher>,
}

impl Sealer {
    /// The sealer for `config`: keyed by `key` when one was configured, else
    /// by the client id and secret; values sealed under `previous` open too.
    /// Refused for a client without a secret and no key.
    pub(crate) fn new(config: &Config, key: Option<&[u8]>, previous: Option<&[u8]>) -> Result<Sealer, RedisStoreError> {
        let current = match key {
            Some(key) => Cipher::from_key(key),
            None if has_secret(config) => {
                let id = config.client_id().as_bytes();
                let mut material = vec![1];
                material.extend_from_slice(&(id.len() as u64).to_be_bytes());
                material.extend_from_slice(id);
                material.extend_from_slice(config.client_secret().expose_secret().as_bytes());
                Cipher::derive(&material)
            }
            None => return Err(RedisStoreError::EncryptionKeyRequired),
        };
        Ok(Sealer {
            current,
            previous: previous.map(Cipher::from_key),
        })
    }

    /// The sealed value of `token` stored under the key `name`, its header
    /// saying it lives until `expiry`.
    pub(crate) fn seal(&self, name: &str, token: &AccessToken, expiry: Timestamp) -> io::Result<Vec<u8>> {
        let plaintext = serde_json::to_vec(token)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|error| io::Error::other(format!("no randomness for a nonce: {error}")))?;
        let mut value = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + 16);
        value.push(VERSION);
        value.extend_from_slice(format!("{:020}", expiry.as_unix_millis()).as_bytes());
        value.extend_from_slice(self.current.token_id(token).as_bytes());
        let sealed = self
            .current
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad(name, &value),
                },
            )
            .map_err(|_| io::Error::other("could not seal the token"))?;
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    /// The token sealed in `value` under `name` (with the current or the
    /// previous key); `None` for anything else: another format, other
    /// credentials, another key name, tampering.
    pub(crate) fn open(&self, name: &str, value: &[u8]) -> Option<AccessToken> {
        if value.first() != Some(&VERSION) || value.len() < HEADER_LEN + NONCE_LEN {
            return None;
        }
        let (header, rest) = value.split_at(HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let aad = aad(name, header);
        self.current
            .open(&aad, nonce, sealed)
            .or_else(|| self.previous.as_ref()?.open(&aad, nonce, sealed))
    }

    /// The sealed value of a rejection back-off stored under the key `name`.
    pub(crate) fn seal_backoff(&self, name: &str, backoff: &SharedBackoff) -> io::Result<Vec<u8>> {
        let mut plaintext = [0u8; 12];
        plaintext[..8].copy_from_slice(&backoff.until.as_unix_millis().to_be_bytes());
        plaintext[8..].copy_from_slice(&backoff.failures.to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|error| io::Error::other(format!("no randomness for a nonce: {error}")))?;
        let sealed = self
            .current
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad(name, &[BACKOFF_VERSION]),
                },
            )
            .map_err(|_| io::Error::other("could not seal the back-off"))?;
        let mut value = Vec::with_capacity(BACKOFF_LEN);
        value.push(BACKOFF_VERSION);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    /// The back-off sealed in `value` under `name` (with the current or the
    /// previous key); `None` for anything else: garbage, a forgery, another
    /// key name, tampering.
    pub(crate) fn open_backoff(&self, name: &str, value: &[u8]) -> Option<SharedBackoff> {
        if value.len() != BACKOFF_LEN || value[0] != BACKOFF_VERSION {
            return None;
        }
        let (nonce, sealed) = value[1..].split_at(NONCE_LEN);
        let aad = aad(name, &[BACKOFF_VERSION]);
        let plaintext = self
            .current
            .decrypt(&aad, nonce, sealed)
            .or_else(|| self.previous.as_ref()?.decrypt(&aad, nonce, sealed))?;
        let (until, failures) = plaintext.split_at_checked(8)?;
        let until = u64::from_be_bytes(until.try_into().ok()?);
        let failures = u32::from_be_bytes(failures.try_into().ok()?);
        Some(SharedBackoff::new(Timestamp::from_unix_millis(until), failures))
    }

    /// The ids `token` has in a value header under the current and the
    /// previous key: what a compare-and-delete matches.
    pub(crate) fn token_ids(&self, token: &AccessToken) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .map(|cipher| cipher.token_id(token))
            .collect()
    }
}

fn aad(name: &str, header: &[u8]) -> Vec<u8> {
    // The header has a fixed length: name and header cannot be confused.
    [name.as_bytes(), header].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, secret: &str) -> Config {
        Config::builder(id, secret)
            .token_endpoint("https://auth.example.com/token")
            .build()
            .unwrap()
    }

    fn sealer(id: &str, secret: &str) -> Sealer {
        Sealer::new(&config(id, secret), None, None).unwrap()
    }

    fn keyed(key: &[u8], previous: Option<&[u8]>) -> Sealer {
        Sealer::new(&config("id", "secret"), Some(key), previous).unwrap()
    }

    fn token() -> AccessToken {
        AccessToken::builder("tok-123")
            .expires_at(Timestamp::from_unix_secs(2_000))
            .received_at(Timestamp::from_unix_secs(1_000))
            .scope("read")
            .build()
            .unwrap()
    }

    fn seal(sealer: &Sealer, name: &str) -> Vec<u8> {
        sealer.seal(name, &token(), Timestamp::from_unix_secs(2_000)).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_credentials_and_key_name() {
        let value = seal(&sealer("id", "secret"), "k");
        let opened = sealer("id", "secret").open("k", &value).unwrap();
        assert_eq!(opened, token());
        assert_eq!(opened.received_at(), Timestamp::from_unix_secs(1_000));
    }

    #[test]
    fn the_header_holds_the_expiry_and_a_keyed_token_id_never_the_token() {
        let sealer = sealer("id", "secret");
        let value = seal(&sealer, "k");
        assert!(!value.windows(7).any(|w| w == b"tok-123"));
        assert_eq!(value[0], VERSION);
        assert_eq!(&value[1..21], b"00000000000002000000");
        assert_eq!(&value[21..HEADER_LEN], sealer.token_ids(&token())[0].as_bytes());
        assert_ne!(
            sealer.token_ids(&token()),
            self::sealer("id", "other").token_ids(&token())
        );
    }

    #[test]
    fn two_seals_of_one_token_differ() {
        let sealer = sealer("id", "secret");
        assert_ne!(seal(&sealer, "k"), seal(&sealer, "k"));
    }

    #[test]
    fn other_credentials_another_key_name_or_tampering_do_not_open() {
        let value = seal(&sealer("id", "secret"), "k");
        assert!(sealer("id", "other").open("k", &value).is_none());
        assert!(sealer("other", "secret").open("k", &value).is_none());
        assert!(keyed(&[7; 32], None).open("k", &value).is_none());
        let sealer = sealer("id", "secret");
        assert!(sealer.open("k2", &value).is_none());
        for i in 0..value.len() {
            let mut bad = value.clone();
            bad[i] ^= 1;
            assert!(sealer.open("k", &bad).is_none(), "flipped byte {i}");
        }
    }

    #[test]
    fn with_one_key_for_every_client_the_fingerprint_in_the_key_name_still_separates_them() {
        // A fleet key is the same for every configuration: only the
        // associated data tells them apart.
        let store = crate::RedisStore::builder("redis://h").build().unwrap();
        let a = config("id", "secret");
        let b = Config::builder("id", "secret")
            .token_endpoint("https://auth.example.com/token")
            .scope("admin")
            .build()
            .unwrap();
        let (key_a, key_b) = (store.key(&a), store.key(&b));
        assert!(key_a.contains(&a.fingerprint()) && key_b.contains(&b.fingerprint()));
        let value = seal(&keyed(&[7; 32], None), &key_a);
        assert!(keyed(&[7; 32], None).open(&key_a, &value).is_some());
        assert!(keyed(&[7; 32], None).open(&key_b, &value).is_none());
    }

    #[test]
    fn any_bytes_open_to_nothing_without_panicking() {
        let sealer = sealer("id", "secret");
        for value in [
            &b""[..],
            b"\x02",
            b"{\"access_token\":\"x\"}",
            &[2u8; 80],
            &[2u8; 77],
            &[1u8; 80],
        ] {
            assert!(sealer.open("k", value).is_none());
        }
    }

    #[test]
    fn a_sealed_back_off_opens_only_under_its_key_name_and_credentials() {
        let backoff = SharedBackoff::new(Timestamp::from_unix_millis(1_700_000_000_123), 4);
        let value = sealer("id", "secret").seal_backoff("k:rejected", &backoff).unwrap();
        assert_eq!(value.len(), BACKOFF_LEN);
        assert_eq!(sealer("id", "secret").open_backoff("k:rejected", &value), Some(backoff));
        assert!(sealer("id", "other").open_backoff("k:rejected", &value).is_none());
        assert!(sealer("id", "secret").open_backoff("k2:rejected", &value).is_none());
        // Never read as a token, nor a token as a back-off.
        assert!(sealer("id", "secret").open("k:rejected", &value).is_none());
        let token = seal(&sealer("id", "secret"), "k:rejected");
        assert!(sealer("id", "secret").open_backoff("k:rejected", &token).is_none());
        for i in 0..value.len() {
            let mut bad = value.clone();
            bad[i] ^= 1;
            assert!(
                sealer("id", "secret").open_backoff("k:rejected", &bad).is_none(),
                "flipped byte {i}"
            );
        }
        for garbage in [&b""[..], b"\x03", &[3u8; BACKOFF_LEN], &[3u8; 200]] {
            assert!(sealer("id", "secret").open_backoff("k:rejected", garbage).is_none());
        }
        // Rotation: a back-off sealed under the previous key still opens.
        let old = keyed(&[1; 32], None).seal_backoff("k:rejected", &backoff).unwrap();
        assert_eq!(
            keyed(&[2; 32], Some(&[1; 32])).open_backoff("k:rejected", &old),
            Some(backoff)
        );
    }

    #[test]
    fn a_configured_key_replaces_the_credentials() {
        let a = Sealer::new(&config("id", "secret"), Some(b"fleet key"), None).unwrap();
        let b = Sealer::new(&config("id", "rotated"), Some(b"fleet key"), None).unwrap();
        assert_eq!(b.open("k", &seal(&a, "k")).unwrap(), token());
    }

    #[test]
    fn a_client_without_a_secret_gets_no_sealer_without_a_key() {
        use client_credentials::ClientAuth;
        let endpoint = "https://auth.example.com/token";
        let secretless = [
            Config::builder("id", "").token_endpoint(endpoint).build().unwrap(),
            Config::builder("id", "placeholder")
                .token_endpoint(endpoint)
                .auth(ClientAuth::TlsClientAuth)
                .build()
                .unwrap(),
        ];
        for config in &secretless {
            assert!(!has_secret(config));
            assert_eq!(
                Sealer::new(config, None, None).err(),
                Some(RedisStoreError::EncryptionKeyRequired)
            );
            assert!(Sealer::new(config, Some(&[7; 32]), None).is_ok());
        }
        assert!(has_secret(&config("id", "secret")));
    }

    #[test]
    fn the_previous_key_opens_old_values_and_writes_use_the_new_one() {
        let old = keyed(&[1; 32], None);
        let rotating = keyed(&[2; 32], Some(&[1; 32]));
        let new = keyed(&[2; 32], None);
        let sealed_old = seal(&old, "k");
        assert_eq!(rotating.open("k", &sealed_old).unwrap(), token());
        assert!(new.open("k", &sealed_old).is_none());
        let resealed = seal(&rotating, "k");
        assert!(new.open("k", &resealed).is_some());
        assert!(old.open("k", &resealed).is_none());
        // Both ids, so a value written by either generation can be evicted.
        let ids = rotating.token_ids(&token());
        assert_eq!(
            ids,
            [new.token_ids(&token())[0].clone(), old.token_ids(&token())[0].clone()]
        );
    }
}
