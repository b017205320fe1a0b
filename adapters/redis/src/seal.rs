//! Sealing stored tokens: XChaCha20-Poly1305 under a key derived from the
//! client credentials, so reading Redis is not enough to use a token.
//!
//! - Key: HKDF-SHA256 (RFC 5869) over the client id (length-prefixed) and the
//!   client secret, or over the key given to
//!   [`RedisStoreBuilder::encryption_key`](crate::RedisStoreBuilder::encryption_key).
//!   Every process holding the same credentials derives the same key; nobody
//!   else can.
//! - Nonce: 24 random bytes from the operating system per write. XChaCha's
//!   192-bit nonce makes random nonces safe for any number of writes by any
//!   number of processes, with no counter to coordinate across the fleet.
//! - Associated data: the Redis key name, so a value copied under another
//!   key (another client's, another prefix's) does not open.
//!
//! Value layout: `VERSION (1 byte) | nonce (24) | ciphertext and tag`, the
//! plaintext being the token's JSON ([`AccessToken`]'s serde form).

use std::io;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use client_credentials::{AccessToken, Config};
use hkdf::Hkdf;
use sha2::Sha256;

/// The format version written first in every value.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// HKDF salt: names this use of the credentials, so the derived key is
/// useless for anything else.
const SALT: &[u8] = b"client-credentials-redis token sealing";
const INFO: &[u8] = b"xchacha20poly1305 key v1";

/// The cipher for one client's values.
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// The sealer for `config`: keyed by `key` when one was configured, else
    /// by the client id and secret.
    pub(crate) fn new(config: &Config, key: Option<&[u8]>) -> Sealer {
        let mut material = Vec::new();
        match key {
            Some(key) => {
                material.push(0);
                material.extend_from_slice(key);
            }
            None => {
                let id = config.client_id().as_bytes();
                material.push(1);
                material.extend_from_slice(&(id.len() as u64).to_be_bytes());
                material.extend_from_slice(id);
                material.extend_from_slice(config.client_secret().expose_secret().as_bytes());
            }
        }
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit: cannot fail.
        let _ = Hkdf::<Sha256>::new(Some(SALT), &material).expand(INFO, &mut okm);
        Sealer {
            cipher: XChaCha20Poly1305::new(&okm.into()),
        }
    }

    /// The sealed value of `token` stored under the key `name`.
    pub(crate) fn seal(&self, name: &str, token: &AccessToken) -> io::Result<Vec<u8>> {
        let plaintext = serde_json::to_vec(token)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|error| io::Error::other(format!("no randomness for a nonce: {error}")))?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| io::Error::other("could not seal the token"))?;
        let mut value = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        value.push(VERSION);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    /// The token sealed in `value` under `name`; `None` for anything else:
    /// another format, other credentials, another key name, tampering.
    pub(crate) fn open(&self, name: &str, value: &[u8]) -> Option<AccessToken> {
        let (&version, rest) = value.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_credentials::Timestamp;

    fn config(id: &str, secret: &str) -> Config {
        Config::builder(id, secret)
            .token_endpoint("https://auth.example.com/token")
            .build()
            .unwrap()
    }

    fn token() -> AccessToken {
        AccessToken::builder("tok-123")
            .expires_at(Timestamp::from_unix_secs(2_000))
            .received_at(Timestamp::from_unix_secs(1_000))
            .scope("read")
            .build()
            .unwrap()
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_credentials_and_key_name() {
        let sealer = Sealer::new(&config("id", "secret"), None);
        let value = sealer.seal("k", &token()).unwrap();
        let opened = Sealer::new(&config("id", "secret"), None).open("k", &value).unwrap();
        assert_eq!(opened, token());
        assert_eq!(opened.received_at(), Timestamp::from_unix_secs(1_000));
    }

    #[test]
    fn the_value_does_not_contain_the_token() {
        let value = Sealer::new(&config("id", "secret"), None).seal("k", &token()).unwrap();
        assert!(!value.windows(7).any(|w| w == b"tok-123"));
    }

    #[test]
    fn two_seals_of_one_token_differ() {
        let sealer = Sealer::new(&config("id", "secret"), None);
        assert_ne!(sealer.seal("k", &token()).unwrap(), sealer.seal("k", &token()).unwrap());
    }

    #[test]
    fn other_credentials_another_key_name_or_tampering_do_not_open() {
        let sealer = Sealer::new(&config("id", "secret"), None);
        let value = sealer.seal("k", &token()).unwrap();
        assert!(Sealer::new(&config("id", "other"), None).open("k", &value).is_none());
        assert!(Sealer::new(&config("other", "secret"), None)
            .open("k", &value)
            .is_none());
        assert!(Sealer::new(&config("id", "secret"), Some(b"secret"))
            .open("k", &value)
            .is_none());
        assert!(sealer.open("k2", &value).is_none());
        for i in 0..value.len() {
            let mut bad = value.clone();
            bad[i] ^= 1;
            assert!(sealer.open("k", &bad).is_none(), "flipped byte {i}");
        }
    }

    #[test]
    fn any_bytes_open_to_nothing_without_panicking() {
        let sealer = Sealer::new(&config("id", "secret"), None);
        for value in [&b""[..], b"\x01", b"{\"access_token\":\"x\"}", &[1u8; 40], &[1u8; 25]] {
            assert!(sealer.open("k", value).is_none());
        }
    }

    #[test]
    fn a_configured_key_replaces_the_credentials() {
        let a = Sealer::new(&config("id", "secret"), Some(b"fleet key"));
        let b = Sealer::new(&config("id", "rotated"), Some(b"fleet key"));
        let value = a.seal("k", &token()).unwrap();
        assert_eq!(b.open("k", &value).unwrap(), token());
    }
}
