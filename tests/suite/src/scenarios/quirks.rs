//! What real providers do that a client must cope with, end to end through
//! both adapters (the README's "Provider quirks" section). The parsing and
//! encoding rules themselves are unit-tested in `core/tests`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use client_credentials::{ClientAuth, Error, OAuthErrorCode};
use client_credentials_testkit::{AuthMethod, Fault, TestIssuer};

use super::config;
use crate::{Adapter, Options};

/// The raw `id:secret` pair inside the `Authorization: Basic` header the
/// issuer received.
fn basic_pair(issuer: &TestIssuer) -> String {
    let request = &issuer.token_requests()[0];
    let header = request.header("authorization").expect("an Authorization header");
    let encoded = header.strip_prefix("Basic ").expect("the Basic scheme");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(decoded).expect("UTF-8")
}

/// HTTP Basic form-encodes id and secret first (RFC 6749 §2.3.1), writing a
/// space as `%20`, never `+`: servers that only percent-decode read `%20` as
/// a space too, but would read `+` as a plus.
pub fn a_space_in_the_secret_is_sent_as_percent_20<A: Adapter>() {
    let issuer = TestIssuer::builder().client("svc", "two words+plus").start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    A::token(&client).unwrap();
    assert_eq!(basic_pair(&issuer), "svc:two%20words%2Bplus");
    let received = &issuer.token_requests()[0];
    assert_eq!(received.auth_method, Some(AuthMethod::Basic));
    assert_eq!(received.client_secret.as_deref(), Some("two words+plus"));
}

/// `ClientAuth::BasicUnencoded` sends the raw pair, for servers that never
/// decode what is inside Basic credentials.
pub fn basic_unencoded_sends_the_raw_pair<A: Adapter>() {
    let issuer = TestIssuer::builder().client("svc.a", "Secr3t_-.~").start();
    let config = config(&issuer).auth(ClientAuth::BasicUnencoded).build().unwrap();
    let client = A::build(config, Options::default());
    A::token(&client).unwrap();
    assert_eq!(basic_pair(&issuer), "svc.a:Secr3t_-.~");
}

/// `"expires_in": "120"` (a JSON string) is read as 120 s.
pub fn expires_in_as_a_string<A: Adapter>() {
    let issuer = TestIssuer::builder().expires_in_as_string(true).lifetime(120).start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let token = A::token(&client).unwrap();
    let expires_at = token.expires_at().expect("an expiry");
    assert_eq!(
        expires_at.saturating_duration_since(token.received_at()),
        Duration::from_secs(120)
    );
}

/// `"token_type": "bearer"` is the Bearer scheme (RFC 6750 is case-insensitive),
/// and the header is written `Bearer …`.
pub fn lower_case_token_type<A: Adapter>() {
    let issuer = TestIssuer::builder().token_type("bearer").start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let token = A::token(&client).unwrap();
    assert_eq!(token.token_type(), "Bearer");
    let header = A::authorization_header(&client).unwrap();
    assert!(header.to_str().unwrap().starts_with("Bearer "));
}

/// A `200 OK` whose body carries an `error` member is an OAuth error, not a
/// token (and `invalid_client` is final: one request).
pub fn a_200_with_an_error_member_is_an_oauth_error<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::status(
        200,
        r#"{"error":"invalid_client","error_description":"unknown client"}"#,
    ));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    match A::token(&client) {
        Err(error @ Error::OAuth { .. }) => {
            assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidClient));
            assert!(!error.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(issuer.token_requests().len(), 1);
}

/// `Retry-After` as an HTTP date (RFC 9110 §10.2.3) is a floor like the
/// delay-seconds form.
pub fn retry_after_as_an_http_date<A: Adapter>() {
    let issuer = TestIssuer::start();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    // Whole seconds: two seconds ahead is between one and two seconds away.
    issuer.push_fault(Fault::retry_after(503, http_date(now + 2)));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let started = Instant::now();
    A::token(&client).unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    assert_eq!(issuer.token_requests().len(), 2);
}

/// An IMF-fixdate (RFC 9110 §5.6.7) for Unix seconds.
fn http_date(unix_secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Walk the calendar from 1970: a few dozen iterations, clear at a glance.
    let (mut year, mut day_of_year) = (1970, days);
    loop {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let length = if leap { 366 } else { 365 };
        if day_of_year < length {
            let mut lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            if leap {
                lengths[1] = 29;
            }
            let (mut month, mut day) = (0, day_of_year);
            while day >= lengths[month] {
                day -= lengths[month];
                month += 1;
            }
            return format!(
                "{}, {:02} {} {year} {:02}:{:02}:{:02} GMT",
                WEEKDAYS[(days % 7) as usize],
                day + 1,
                MONTHS[month],
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            );
        }
        day_of_year -= length;
        year += 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(super::http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(super::http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
