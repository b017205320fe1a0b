//! Token stores, the update callback and sign-out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use client_credentials_testkit::TestIssuer;

use super::{config, discovering};
use crate::{Adapter, Options, StoreChoice};

/// Two clients sharing a file store: the second makes no request.
pub fn file_store_is_shared_between_runs<A: Adapter>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let issuer = TestIssuer::start();
    let options = Options {
        store: StoreChoice::File(path.clone()),
        ..Options::default()
    };
    let first = A::token(&A::build(config(&issuer).build().unwrap(), options.clone())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let second = A::token(&A::build(config(&issuer).build().unwrap(), options)).unwrap();
    assert_eq!(first.secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 1);
}

/// Two clients whose configurations differ only in an extra parameter (an
/// organization, a tenant) share a file: each gets a token of its own, since
/// the provider may issue different tokens for them.
pub fn file_store_keeps_configs_differing_in_a_param_apart<A: Adapter>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let issuer = TestIssuer::start();
    let options = Options {
        store: StoreChoice::File(path),
        ..Options::default()
    };
    let org = |name: &str| config(&issuer).param("organization", name).build().unwrap();
    let a = A::token(&A::build(org("org-a"), options.clone())).unwrap();
    let b = A::token(&A::build(org("org-b"), options.clone())).unwrap();
    assert_ne!(a.secret(), b.secret(), "org-b was served org-a's token");
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].param("organization"), Some("org-a"));
    assert_eq!(requests[1].param("organization"), Some("org-b"));
    // The file now holds org-b's token, which org-b's next run reuses.
    let again = A::token(&A::build(org("org-b"), options)).unwrap();
    assert_eq!(again.secret(), b.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// Sign-out deletes only its own configuration's token: a file holding
/// another configuration's token keeps it.
pub fn signout_leaves_another_configs_stored_token<A: Adapter>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let issuer = TestIssuer::start();
    let options = Options {
        store: StoreChoice::File(path.clone()),
        ..Options::default()
    };
    let org = |name: &str| config(&issuer).param("organization", name).build().unwrap();
    let a = A::build(org("org-a"), options.clone());
    A::token(&a).unwrap();
    let b = A::token(&A::build(org("org-b"), options.clone())).unwrap();
    A::signout(&a).unwrap();
    assert!(path.exists(), "org-a's sign-out deleted org-b's token");
    let again = A::token(&A::build(org("org-b"), options)).unwrap();
    assert_eq!(again.secret(), b.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// The callback fires once per new token, not per read.
pub fn update_callback_fires_once_per_token<A: Adapter>() {
    let issuer = TestIssuer::start();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let options = Options {
        on_update: Some(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    for _ in 0..5 {
        A::token(&client).unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    A::refresh(&client).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// Sign-out revokes at the discovered endpoint, clears the store, and the next call fetches anew.
pub fn signout_revokes_and_clears<A: Adapter>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let issuer = TestIssuer::start();
    let options = Options {
        store: StoreChoice::File(path.clone()),
        ..Options::default()
    };
    let client = A::build(discovering(&issuer).build().unwrap(), options);
    let token = A::token(&client).unwrap();
    assert!(path.exists());
    A::signout(&client).unwrap();
    assert!(!path.exists(), "sign-out deletes the stored token");
    let revocations = issuer.revocation_requests();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].param("token"), Some(token.secret()));
    let next = A::token(&client).unwrap();
    assert_ne!(next.secret(), token.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// A custom provider's token is used (no request) and announced once; a
/// provider without a token lets the client fetch.
pub fn token_provider_first_then_fetching<A: Adapter>() {
    use client_credentials::{AccessToken, Timestamp};
    use std::time::{Duration, SystemTime};

    let issuer = TestIssuer::start();
    let expires = Timestamp::from(SystemTime::now()).saturating_add(Duration::from_secs(3600));
    let stored = AccessToken::builder("from-the-database")
        .expires_at(expires)
        .build()
        .unwrap();
    let updates = Arc::new(AtomicUsize::new(0));
    let seen = updates.clone();
    let options = Options {
        provider: Some(Arc::new(move || Some(stored.clone()))),
        on_update: Some(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    for _ in 0..3 {
        assert_eq!(A::token(&client).unwrap().secret(), "from-the-database");
    }
    assert_eq!(updates.load(Ordering::SeqCst), 1);
    assert!(issuer.token_requests().is_empty());

    let options = Options {
        provider: Some(Arc::new(|| None)),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    assert!(A::token(&client).unwrap().secret().starts_with("tk-"));
    assert_eq!(issuer.token_requests().len(), 1);
}
