//! One discovery per client: what a [`TokenSource`] learnt by discovery,
//! handed to the sources of the client's other keys ([`TokenParams`]), so
//! the keys of one client read each metadata document once, hold one copy
//! of it, and hold to one pinned authorization server.
//!
//! The decisions are here, sans-IO: which result a source exports
//! ([`TokenSource::discovery`]), whether a source takes another's
//! ([`TokenSource::adopt_discovery`]), and which of two results a client
//! keeps ([`Discovery::replaces`]). Where the client keeps its latest, and
//! the lock around it, are the adapter's.
//!
//! [`TokenParams`]: crate::TokenParams

use std::fmt;
use std::sync::Arc;

use super::{Discovered, Phase, Sent, TokenSource};
use crate::config::{Endpoint, Issuer};
use crate::discovery::ProviderMetadata;
use crate::resource::ResourceMetadata;
use crate::time::Timestamp;

/// A client's discovery result, shared between its keys: the provider
/// metadata (with the endpoints it names, checked once), with
/// [`ConfigBuilder::resource_server`](crate::ConfigBuilder::resource_server)
/// the resource's RFC 9728 metadata and the authorization server it named,
/// and the authorization server the client pinned at its first read.
///
/// Opaque and cheap to clone (the documents are behind `Arc`s). Exported by
/// [`TokenSource::discovery`] (or
/// [`driver::Driver::discovery`](crate::driver::Driver::discovery)) after a
/// key discovered, adopted by another key's source with
/// [`TokenSource::adopt_discovery`], which decides whether it may be used:
/// same issuer and resource, not older than the discovery TTL, newer than
/// what the key holds, and the same pinned authorization server.
///
/// ```
/// use client_credentials::driver::Discovery;
/// use client_credentials::{Action, Config, Timestamp, TokenParams, TokenSource};
///
/// let config = Config::builder("my-client", "my-secret").issuer("https://id.example").build()?;
/// let now = Timestamp::from_unix_secs(1_700_000_000);
/// let mut first = TokenSource::new(config.clone(), [7; 32]);
/// let Action::Send(discovery) = first.poll(now) else { panic!("discovery first") };
/// let id = discovery.id;
/// let body = br#"{"issuer":"https://id.example","token_endpoint":"https://id.example/token"}"#;
/// first.handle_response(now, id, http::Response::builder().status(200).body(body.to_vec())?)?;
///
/// // Another key of the same client takes the result instead of discovering.
/// let discovery: Discovery = first.discovery().expect("discovered");
/// let audience = config.with_params(&TokenParams::new().audience("https://api.example"))?;
/// let mut second = TokenSource::new(audience, [8; 32]);
/// assert!(second.adopt_discovery(&discovery, now));
/// let Action::Send(outgoing) = second.poll(now) else { panic!("a token request") };
/// assert_eq!(outgoing.request.uri(), "https://id.example/token");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Discovery {
    /// The provider metadata, when current (never stale).
    discovered: Option<Arc<Discovered>>,
    /// RFC 9728: the resource's metadata and the server it named, when
    /// `discovered` is that server's.
    resource: Option<(Arc<ResourceMetadata>, Issuer)>,
    /// The authorization server pinned at the resource's first read.
    trusted: Option<String>,
}

impl Discovery {
    /// The provider metadata, if the result holds one.
    pub fn metadata(&self) -> Option<&ProviderMetadata> {
        self.discovered.as_ref().map(|d| &d.metadata)
    }

    /// When the provider metadata was read (or last confirmed: a failed
    /// re-discovery keeps it for another TTL).
    pub fn fetched_at(&self) -> Option<Timestamp> {
        self.discovered.as_ref().map(|d| d.fetched_at)
    }

    /// The authorization server the client pinned (with a resource server;
    /// `None` before the resource's first read, and with an issuer).
    pub fn authorization_server(&self) -> Option<&str> {
        self.trusted.as_deref()
    }

    /// Whether a client that keeps `current` as its latest result keeps
    /// this one instead: never when the two pin different authorization
    /// servers or this one would drop `current`'s pin, else when it pins
    /// one `current` does not, or holds metadata read later.
    pub fn replaces(&self, current: Option<&Discovery>) -> bool {
        let Some(current) = current else {
            return true;
        };
        match (&current.trusted, &self.trusted) {
            (Some(kept), Some(new)) if kept != new => return false,
            (Some(_), None) => return false,
            (None, Some(_)) => return true,
            _ => {}
        }
        self.fetched_at() > current.fetched_at()
    }
}

impl fmt::Debug for Discovery {
    /// The issuer, when it was read, and the pinned server (no secret is
    /// ever part of a discovery result).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("issuer", &self.metadata().map(|m| &m.issuer))
            .field("fetched_at", &self.fetched_at())
            .field("authorization_server", &self.trusted)
            .finish()
    }
}

impl TokenSource {
    /// What this source learnt by discovery, for the client's other keys
    /// (see [`Discovery`]): `None` with a configured token endpoint, before
    /// anything was read, and while the source follows a resource's
    /// `resource_metadata` hint (that key's alone). Metadata marked stale
    /// (its token endpoint answered 404/410) is left out.
    pub fn discovery(&self) -> Option<Discovery> {
        if matches!(self.config.endpoint(), Endpoint::Token(_)) || self.resource_hint.is_some() {
            return None;
        }
        let mut discovered = self.discovered.clone().filter(|_| !self.metadata_stale);
        let mut resource = None;
        if matches!(self.config.endpoint(), Endpoint::ResourceServer(_)) {
            // The metadata goes out only with the resource's document that
            // named its server: mid-round, a new document may name another.
            resource = match (&self.resource_metadata, &self.authorization_server, &discovered) {
                (Some(metadata), Some(server), Some(d)) if d.metadata.issuer == server.as_str() => {
                    Some((Arc::clone(metadata), Issuer::clone(server)))
                }
                _ => None,
            };
            if resource.is_none() {
                discovered = None;
            }
        }
        let trusted = self.trusted_authorization_server.clone();
        if discovered.is_none() && trusted.is_none() {
            return None;
        }
        Some(Discovery {
            discovered,
            resource,
            trusted,
        })
    }

    /// Takes another key's discovery result (see [`Discovery`]) instead of
    /// discovering, when it is usable here: its metadata names this
    /// source's issuer (with a resource server: its resource document names
    /// this resource, and the server the document named is the pinned one or
    /// an allowed one), it is younger than the discovery TTL at `now`, and
    /// newer than what this source holds (metadata marked stale is replaced
    /// only by metadata read after the request that found it gone).
    ///
    /// The pinned authorization server is taken when this source has none,
    /// even from a result whose metadata is not used; a result pinning
    /// another server than this source's is refused whole, so no key of a
    /// client ever sends its credentials to a server its siblings would
    /// refuse. A source following a resource's `resource_metadata` hint
    /// takes nothing. Returns whether anything changed.
    pub fn adopt_discovery(&mut self, discovery: &Discovery, now: Timestamp) -> bool {
        if self.resource_hint.is_some() {
            return false;
        }
        let mut changed = false;
        match (&self.trusted_authorization_server, &discovery.trusted) {
            (Some(own), Some(theirs)) if own != theirs => return false,
            (None, Some(theirs)) => {
                self.trusted_authorization_server = Some(theirs.clone());
                changed = true;
            }
            _ => {}
        }
        let Some(theirs) = &discovery.discovered else {
            return changed;
        };
        let issuer = match self.config.endpoint() {
            Endpoint::Token(_) => return changed,
            Endpoint::Issuer(issuer) => issuer.as_str(),
            Endpoint::ResourceServer(resource) => {
                let Some((metadata, server)) = &discovery.resource else {
                    return changed;
                };
                let allowed = self.trusted_authorization_server.as_deref() == Some(server.as_str())
                    || self
                        .config
                        .allowed_authorization_servers()
                        .iter()
                        .any(|s| s == server.as_str());
                if metadata.resource != resource.as_str() || !allowed {
                    return changed;
                }
                server.as_str()
            }
        };
        let young = now < theirs.fetched_at.saturating_add(self.config.discovery_ttl());
        if theirs.metadata.issuer != issuer || !young {
            return changed;
        }
        if let Some(own) = &self.discovered {
            // The stale metadata's token endpoint answered 404/410 to a
            // request sent then: only metadata read since may replace it.
            let after_gone = !self.metadata_stale || self.answered_sent_at.is_none_or(|sent| theirs.fetched_at >= sent);
            if theirs.fetched_at <= own.fetched_at || !after_gone {
                return changed;
            }
        }
        self.discovered = Some(Arc::clone(theirs));
        self.metadata_stale = false;
        if let Some((metadata, server)) = &discovery.resource {
            self.resource_metadata = Some(Arc::clone(metadata));
            self.authorization_server = Some(Box::new(server.clone()));
        }
        self.resource_read = false;
        true
    }

    /// Whether the next resource document this source reads would choose
    /// its authorization server freely: a source configured with a resource
    /// server that has pinned none yet. An adapter sharing one discovery
    /// between a client's keys handles such a source's results under the
    /// lock of the client's latest [`Discovery`], after adopting it, so the
    /// client pins one server, the first read.
    pub fn pins_next(&self) -> bool {
        matches!(self.config.endpoint(), Endpoint::ResourceServer(_)) && self.trusted_authorization_server.is_none()
    }

    /// Whether a poll at `now` would send a metadata request (discovery, or
    /// the resource's RFC 9728 document): a request is due (no fresh token,
    /// nothing in flight, no back-off holding it) and the metadata in use is
    /// missing, stale or older than the TTL. An adapter lets one key of a
    /// client read the metadata at a time (see
    /// [`driver::Driver::hold_discovery`](crate::driver::Driver::hold_discovery)).
    pub fn discovery_due(&self, now: Timestamp) -> bool {
        let fresh = self.cached.as_ref().is_some_and(|c| c.is_fresh(now));
        if !self.discovers() || fresh || !self.phase.is_idle() || self.held_back(now) {
            return false;
        }
        let ttl = self.config.discovery_ttl();
        let current = self
            .discovered
            .as_deref()
            .is_some_and(|d| !self.metadata_stale && now < d.fetched_at.saturating_add(ttl));
        !current
    }

    /// Whether a metadata request (discovery, or the resource's RFC 9728
    /// document) is in flight.
    pub fn is_discovering(&self) -> bool {
        matches!(&self.phase, Phase::InFlight { sent, .. }
            if matches!(**sent, Sent::Discovery { .. } | Sent::ResourceMetadata { .. }))
    }

    /// Whether this source discovers (an issuer or a resource server is
    /// configured, not a token endpoint): only then has it a [`Discovery`]
    /// to share.
    pub fn discovers(&self) -> bool {
        !matches!(self.config.endpoint(), Endpoint::Token(_))
    }
}
