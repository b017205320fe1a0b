//! A string that never prints itself.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// A secret string (client secret, refresh token) whose `Debug` and `Display`
/// print `[redacted]`, and whose memory is overwritten with zeros when the
/// last clone is dropped (`zeroize`).
///
/// Read it with [`Secret::expose_secret`], which makes every place that uses
/// the value easy to find.
///
/// ```
/// use client_credentials::Secret;
///
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
/// assert_eq!(s.expose_secret(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Wraps a value. A `String` is moved in, not copied, so no copy of it
    /// is left behind unzeroized.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::new(Zeroizing::new(value.into())))
    }

    /// The value itself.
    pub fn expose_secret(&self) -> &str {
        self.0.as_str()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
