//! An origin (scheme, host, port) credentials may go to, and whether a
//! request's URI is on one.

use http::uri::Scheme;
use http::Uri;

use crate::error::ConfigError;
use crate::text::strip_userinfo;

/// One origin (scheme, host, port) credentials may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    /// Lowercase, IPv6 addresses in brackets.
    host: String,
    port: u16,
    /// Whether `port` is the scheme's default (a URI without a port is on
    /// this origin).
    default_port: bool,
    /// `scheme://host[:port]` as a normalizing URL library writes it (the
    /// port only when it is not the default): the start of the serialized
    /// URLs of this origin.
    pub(super) serialized: String,
    /// `host[:port]` as in `serialized`: the authority of a URI written the
    /// usual way.
    authority: String,
    /// Whether the scheme is `https` (else `http`).
    https: bool,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is accepted; a path,
    /// query or fragment is an error: an origin is scheme, host and port
    /// only, and a path would suggest a limit that is not applied). The
    /// scheme must be `http` or `https`; the port defaults to 80 or 443.
    pub fn parse(origin: &str) -> Result<Self, ConfigError> {
        // Never the user info (a password) in the error.
        let invalid = |reason| ConfigError::InvalidOrigin { origin: strip_userinfo(origin), reason };
        let uri: Uri = origin.parse().map_err(|_| invalid("it does not parse as a URL"))?;
        if origin.contains('#') || uri.path_and_query().is_some_and(|p| !matches!(p.as_str(), "" | "/")) {
            return Err(invalid("origins have no path, query or fragment (credentials go to every path of an origin)"));
        }
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("it has no scheme"))?;
        let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("it holds user info"));
        }
        let port = authority
            .port_u16()
            .or_else(|| default_port(&scheme))
            .ok_or_else(|| invalid("its scheme is not http or https"))?;
        let default_port = default_port(&scheme) == Some(port);
        let host = authority.host().to_ascii_lowercase();
        let authority = match default_port {
            true => host.clone(),
            false => format!("{host}:{port}"),
        };
        let serialized = format!("{scheme}://{authority}");
        let https = scheme == Scheme::HTTPS;
        Ok(Self { scheme, host, port, default_port, serialized, authority, https })
    }

    /// Whether `uri` (absolute) is on this origin. A few comparisons, no
    /// allocation. The usual form first: the scheme as `http` keeps it
    /// (lowercase) and the authority's bytes equal to this origin's
    /// `host[:port]`. Otherwise the scheme, then the authority against the
    /// host (case-insensitively) and the port. An authority with user info
    /// (`host@evil.example`) never matches.
    #[inline]
    pub fn matches(&self, uri: &Uri) -> bool {
        match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                // Against literals: `http` keeps the two schemes it knows as constants.
                let usual_scheme = match self.https {
                    true => scheme.as_str() == "https",
                    false => scheme.as_str() == "http",
                };
                (usual_scheme && authority.as_str() == self.authority)
                    || self.matches_otherwise(scheme, authority.as_str())
            }
            _ => false,
        }
    }

    /// [`Origin::matches`] for a URI not written the usual way (another
    /// case, a default port written out) or on another origin.
    #[inline(never)]
    fn matches_otherwise(&self, scheme: &Scheme, authority: &str) -> bool {
        *scheme == self.scheme && self.matches_authority(authority)
    }

    /// `host[:port]` exactly (no user info), host case-insensitive.
    #[inline]
    fn matches_authority(&self, authority: &str) -> bool {
        let (authority, host) = (authority.as_bytes(), self.host.as_bytes());
        match authority.split_at_checked(host.len()) {
            // Equal bytes first (hosts are usually written in lowercase).
            Some((head, rest)) if head == host || head.eq_ignore_ascii_case(host) => match rest {
                [] | [b':'] => self.default_port,
                [b':', digits @ ..] => parse_port(digits) == Some(self.port),
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether `url`, a URL as written, starts with this origin in the
    /// form a normalizing URL library writes it (`https://host` or
    /// `https://host:8443`), followed by the path, query, fragment or the
    /// end. A `true` is certain; a `false` may be the same origin written
    /// otherwise (another case, a default port written out) and calls for
    /// [`Origin::matches_parts`].
    #[inline]
    pub fn starts(&self, url: &str) -> bool {
        match url.as_bytes().split_at_checked(self.serialized.len()) {
            Some((head, rest)) => {
                head == self.serialized.as_bytes() && matches!(rest.first(), None | Some(b'/' | b'?' | b'#'))
            }
            None => false,
        }
    }

    /// Whether scheme, host and explicit port (if any) are this origin.
    #[inline]
    pub fn matches_parts(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let own = self.scheme.as_str();
        (scheme == own || scheme.eq_ignore_ascii_case(own))
            && (host == self.host || host.eq_ignore_ascii_case(&self.host))
            && port.map_or(self.default_port, |port| port == self.port)
    }
}

/// Whether `uri` is on one of `origins`.
#[inline(never)]
pub(super) fn any_matches(origins: &[Origin], uri: &Uri) -> bool {
    origins.iter().any(|o| o.matches(uri))
}

/// A port number written in decimal digits only.
fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))?.try_into().ok()
}

fn default_port(scheme: &Scheme) -> Option<u16> {
    if scheme == &Scheme::HTTPS {
        Some(443)
    } else if scheme == &Scheme::HTTP {
        Some(80)
    } else {
        None
    }
}

#[cfg(test)]
mod origin_properties {
    use proptest::prelude::*;

    use super::*;

    /// The plain reading of "on this origin", with `http`'s own parsing:
    /// what the fast comparison must agree with.
    fn reference(origin: &Origin, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else { return false };
        // A port that is written but is no port (66000) is no origin of ours
        // (`port_u16` would read it as absent, the default port).
        let written = authority.as_str().rsplit_once(':').filter(|(_, p)| !p.contains(']')).map(|(_, p)| p);
        let bad_port = written.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_err());
        !bad_port
            && !authority.as_str().contains('@')
            && *scheme == origin.scheme
            && authority.host().eq_ignore_ascii_case(&origin.host)
            && authority.port_u16().or_else(|| default_port(scheme)) == Some(origin.port)
    }

    fn authority() -> impl Strategy<Value = String> {
        let host = prop_oneof![
            Just("api.example.com".to_owned()),
            Just("API.Example.COM".to_owned()),
            Just("api.example.com.evil.net".to_owned()),
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned()),
            "[a-z.]{1,12}",
        ];
        let port = prop_oneof![Just(String::new()), Just(":".to_owned()), "(:[0-9]{1,6})", Just(":443".to_owned())];
        let user = prop_oneof![Just(String::new()), Just("api.example.com@".to_owned()), Just("u:p@".to_owned())];
        (user, host, port).prop_map(|(user, host, port)| format!("{user}{host}{port}"))
    }

    proptest! {
        #[test]
        fn the_fast_origin_check_agrees_with_the_plain_one(
            origin in prop::sample::select(vec!["https://api.example.com", "http://127.0.0.1:8080", "https://[::1]", "http://api.example.com:443"]),
            scheme in prop::sample::select(vec!["https", "http", "HTTPS"]),
            authority in authority(),
            built in any::<bool>(),
        ) {
            let origin = Origin::parse(origin).unwrap();
            // Parsed, a scheme is kept in lowercase; built from parts, as given.
            let uri = match built {
                false => format!("{scheme}://{authority}/path?q=1").parse::<Uri>().ok(),
                true => Uri::builder().scheme(scheme).authority(authority.as_str()).path_and_query("/path?q=1").build().ok(),
            };
            if let Some(uri) = uri {
                prop_assert_eq!(origin.matches(&uri), reference(&origin, &uri), "{}", uri);
            }
        }

        /// The comparison of a URL as written is certain when it says yes.
        #[test]
        fn a_url_that_starts_with_the_origin_is_on_it(
            origin in prop::sample::select(vec!["https://api.example.com", "http://127.0.0.1:8080", "https://[::1]", "http://api.example.com:443"]),
            scheme in prop::sample::select(vec!["https", "http", "HTTPS"]),
            authority in authority(),
            rest in prop::sample::select(vec!["", "/", "/path?q=1", "?q", "#f", "\\x", ".evil.net/", "@evil.net/", ":8080/"]),
        ) {
            let origin = Origin::parse(origin).unwrap();
            let url = format!("{scheme}://{authority}{rest}");
            if origin.starts(&url) {
                let uri = url.parse::<Uri>();
                prop_assert!(uri.as_ref().is_ok_and(|uri| reference(&origin, uri)), "{}", url);
            }
        }
    }
}
