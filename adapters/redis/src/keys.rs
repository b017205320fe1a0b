//! Redis key names: `{prefix}{{fingerprint}}` for the token, the same with
//! `:lock` for its lock and with `:rejected` for the fleet's rejection
//! back-off.
//!
//! The fingerprint ([`Config::fingerprint`](client_credentials::Config::fingerprint))
//! names the token endpoint or issuer, client id, scopes, resources, audience
//! and auth method, never the secret; clients that would get the same token
//! share a key, all others do not. The braces make it the key's hash tag: in a
//! Redis Cluster the token, its lock and its back-off live in one slot, so
//! one script can touch all three.

/// The key names of one client's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The sealed token.
    pub(crate) token: String,
    /// The fleet lock (its value: the holder's random owner id).
    pub(crate) lock: String,
    /// The fleet's rejection back-off, sealed.
    pub(crate) held: String,
}

impl Keys {
    /// The names under `prefix` for the client with `fingerprint`.
    pub(crate) fn new(prefix: &str, fingerprint: &str) -> Keys {
        let token = format!("{prefix}{{{fingerprint}}}");
        Keys {
            lock: format!("{token}:lock"),
            held: format!("{token}:rejected"),
            token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_lock_share_the_hash_tag() {
        let keys = Keys::new("app:", "ab12");
        assert_eq!(keys.token, "app:{ab12}");
        assert_eq!(keys.lock, "app:{ab12}:lock");
        assert_eq!(keys.held, "app:{ab12}:rejected");
    }
}
