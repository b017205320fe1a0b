//! Redis key names: `{prefix}{{fingerprint}}` for the token and the same
//! with `:lock` for its lock.
//!
//! The fingerprint ([`Config::fingerprint`](client_credentials::Config::fingerprint))
//! names the token endpoint or issuer, client id, scopes, resources, audience
//! and auth method, never the secret; clients that would get the same token
//! share a key, all others do not. The braces make it the key's hash tag: in a
//! Redis Cluster the token and its lock live in one slot, so one script can
//! touch both.

/// The key names of one client's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The sealed token.
    pub(crate) token: String,
    /// The fleet lock (its value: the holder's random owner id).
    pub(crate) lock: String,
}

impl Keys {
    /// The names under `prefix` for the client with `fingerprint`.
    pub(crate) fn new(prefix: &str, fingerprint: &str) -> Keys {
        let token = format!("{prefix}{{{fingerprint}}}");
        Keys {
            lock: format!("{token}:lock"),
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
    }
}
