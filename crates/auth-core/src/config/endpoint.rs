//! The rules every endpoint URL obeys.

use std::net::{IpAddr, Ipv6Addr};

use http::Uri;

use crate::error::ConfigError;
use crate::text::strip_userinfo;

/// Parses and checks an endpoint URL by the rules every endpoint obeys:
/// absolute `https` (or `http` to a loopback host, or anywhere when
/// `allow_insecure_http`), with a host and without user info.
pub fn validate_endpoint(url: &str, allow_insecure_http: bool) -> Result<Uri, ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl { url: strip_userinfo(url), reason };
    let uri: Uri = url.parse().map_err(|_| invalid("it does not parse as a URL"))?;
    let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("it holds user info; pass credentials with client_secret(..), never in the URL"));
    }
    if authority.host().is_empty() {
        return Err(invalid("it has no host"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_insecure_http || is_loopback_host(authority.host()) => Ok(uri),
        Some("http") => Err(ConfigError::InsecureUrl { url: url.to_owned() }),
        _ => Err(invalid("its scheme is not https")),
    }
}

/// Whether `host` (as in a URL authority, IPv6 in brackets) is a loopback
/// host: `localhost`, `127.0.0.0/8`, `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}
