//! What an API's refusal asks of a token, decided once for every driver:
//! more scopes (a 403 `insufficient_scope` naming them, RFC 6750 §3.1), or
//! a stronger or more recent sign-in of the user (a 401
//! `insufficient_user_authentication` with `acr_values` and `max_age`,
//! RFC 9470).
//!
//! The scopes to ask for next are those already granted and those needed,
//! in that order, once each: a step-up never loses what the token had. A
//! refusal naming only scopes the token already has is no step-up (asking
//! again would loop).
//!
//! ```
//! use auth_core::resource::step_up::{step_up, StepUp};
//! use http::{header::WWW_AUTHENTICATE, HeaderMap, StatusCode};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(WWW_AUTHENTICATE, r#"Bearer error="insufficient_scope", scope="write""#.parse()?);
//! let granted = ["read".to_owned()];
//! let Some(StepUp::Scopes { needed, scopes }) = step_up(StatusCode::FORBIDDEN, &headers, &granted) else {
//!     unreachable!()
//! };
//! assert_eq!((needed, scopes), (vec!["write".to_owned()], vec!["read".to_owned(), "write".to_owned()]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The drivers put the [`StepUp`] an API's final answer asks for in the
//! response's extensions (`response.extensions().get::<StepUp>()`), the
//! scopes granted being those the token source asked for: the answer
//! itself goes back as it came, and a token is never renewed for it (a new
//! token of the same grant would be refused the same way). A 401
//! `insufficient_user_authentication` is not a revoked token: the
//! replay rules ([`crate::publish::replay`]) give it back without renewing.

use std::fmt;

use http::{HeaderMap, StatusCode};

use super::challenge::from_headers;

/// What the API wants before it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepUp {
    /// More scopes.
    Scopes {
        /// The scopes the API named that the token lacks.
        needed: Vec<String>,
        /// What to ask for: the scopes granted, then those needed.
        scopes: Vec<String>,
    },
    /// A stronger or more recent authentication of the user.
    Authentication {
        /// The authentication context classes the API takes, preferred
        /// first (`acr_values`).
        acr_values: Vec<String>,
        /// How many seconds ago the user may have signed in at most.
        max_age: Option<u64>,
    },
}

impl fmt::Display for StepUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scopes { needed, scopes } => write!(
                f,
                "the API needs the scope{} `{}`, which the token lacks: ask for `{}`",
                if needed.len() == 1 { "" } else { "s" },
                needed.join(" "),
                scopes.join(" ")
            ),
            Self::Authentication { acr_values, max_age } => {
                f.write_str("the API needs a stronger or more recent sign-in")?;
                if !acr_values.is_empty() {
                    write!(f, " (acr_values `{}`)", acr_values.join(" "))?;
                }
                if let Some(age) = max_age {
                    write!(f, " (signed in at most {age} s ago)")?;
                }
                f.write_str(": sign the user in again")
            }
        }
    }
}

impl std::error::Error for StepUp {}

impl StepUp {
    /// The scopes to ask for next (those granted, then those needed), for
    /// [`StepUp::Scopes`]; `None` for a stronger sign-in.
    pub fn scopes(&self) -> Option<&[String]> {
        match self {
            Self::Scopes { scopes, .. } => Some(scopes),
            Self::Authentication { .. } => None,
        }
    }
}

/// Whether a 401's challenges ask for a stronger or more recent sign-in of
/// the user (`insufficient_user_authentication`, RFC 9470): not a token to
/// renew.
pub fn wants_stronger_sign_in(headers: &HeaderMap) -> bool {
    from_headers(headers)
        .map(|challenges| challenges.iter().any(|c| c.error() == Some("insufficient_user_authentication")))
        .unwrap_or(false)
}

/// What the API's answer (`status`, `headers`) to a token granted the
/// scopes `granted` asks of the next one, if anything. Anything but a 401
/// or a 403 is answered `None` at once (the drivers ask of every final
/// answer they mark).
pub fn step_up(status: StatusCode, headers: &HeaderMap, granted: &[String]) -> Option<StepUp> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED {
        return None;
    }
    let challenges = from_headers(headers).ok()?;
    for challenge in &challenges {
        match (status, challenge.error()) {
            (StatusCode::FORBIDDEN, Some("insufficient_scope")) => {
                let mut needed: Vec<String> = Vec::new();
                for scope in challenge.scopes() {
                    if !granted.iter().any(|g| g == scope) && !needed.iter().any(|n| n == scope) {
                        needed.push(scope.to_owned());
                    }
                }
                if needed.is_empty() {
                    // Nothing the token lacks: asking again would loop.
                    return None;
                }
                let mut scopes: Vec<String> = Vec::new();
                for scope in granted.iter().chain(&needed) {
                    if !scopes.contains(scope) {
                        scopes.push(scope.clone());
                    }
                }
                return Some(StepUp::Scopes { needed, scopes });
            }
            (StatusCode::UNAUTHORIZED, Some("insufficient_user_authentication")) => {
                return Some(StepUp::Authentication {
                    acr_values: challenge.acr_values().map(str::to_owned).collect(),
                    max_age: challenge.max_age(),
                });
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use http::header::WWW_AUTHENTICATE;
    use proptest::prelude::*;

    use super::*;

    fn headers(challenge: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(WWW_AUTHENTICATE, challenge.parse().unwrap());
        headers
    }

    fn owned(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn more_scopes_keep_those_granted_and_never_loop() {
        let refusal = headers(r#"Bearer error="insufficient_scope", scope="read write admin""#);
        let asked = step_up(StatusCode::FORBIDDEN, &refusal, &owned(&["read", "profile"])).unwrap();
        assert_eq!(
            asked,
            StepUp::Scopes {
                needed: owned(&["write", "admin"]),
                scopes: owned(&["read", "profile", "write", "admin"])
            }
        );
        assert_eq!(
            asked.to_string(),
            "the API needs the scopes `write admin`, which the token lacks: ask for `read profile write admin`"
        );
        // Already granted: no step-up (another cause; asking again would loop).
        assert_eq!(step_up(StatusCode::FORBIDDEN, &refusal, &owned(&["admin", "write", "read"])), None);
        // Not a step-up: another status, another error, no challenge, a malformed one.
        assert_eq!(step_up(StatusCode::UNAUTHORIZED, &refusal, &[]), None);
        assert_eq!(step_up(StatusCode::FORBIDDEN, &headers(r#"Bearer error="invalid_token""#), &[]), None);
        assert_eq!(step_up(StatusCode::FORBIDDEN, &HeaderMap::new(), &[]), None);
        assert_eq!(
            step_up(StatusCode::FORBIDDEN, &headers(r#"Bearer error="insufficient_scope", scope="a"#), &[]),
            None
        );
    }

    #[test]
    fn a_stronger_sign_in_names_its_level() {
        let refusal =
            headers(r#"Bearer error="insufficient_user_authentication", acr_values="phr phrh", max_age="300""#);
        let asked = step_up(StatusCode::UNAUTHORIZED, &refusal, &[]).unwrap();
        assert_eq!(asked, StepUp::Authentication { acr_values: owned(&["phr", "phrh"]), max_age: Some(300) });
        assert!(asked.to_string().contains("acr_values `phr phrh`") && asked.to_string().contains("300 s"));
    }

    proptest! {
        /// The scopes asked for next are those granted, then those needed, each once.
        #[test]
        fn the_next_scopes_are_the_union(
            granted in prop::collection::vec("[a-d]", 0..5),
            wanted in prop::collection::vec("[a-f]", 1..5),
        ) {
            let refusal = headers(&format!(r#"Bearer error="insufficient_scope", scope="{}""#, wanted.join(" ")));
            match step_up(StatusCode::FORBIDDEN, &refusal, &granted) {
                Some(StepUp::Scopes { needed, scopes }) => {
                    prop_assert!(needed.iter().all(|n| !granted.contains(n) && wanted.contains(n)));
                    prop_assert!(granted.iter().chain(&wanted).all(|s| scopes.contains(s)));
                    let mut unique = scopes.clone();
                    unique.dedup();
                    unique.sort();
                    unique.dedup();
                    prop_assert_eq!(unique.len(), scopes.len(), "each once");
                }
                None => prop_assert!(wanted.iter().all(|w| granted.contains(w)), "only when nothing is lacking"),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
