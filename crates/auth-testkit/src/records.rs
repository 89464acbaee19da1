//! What a test injects (faults) and what the provider saw (its requests
//! and counts).

/// How many token requests and API requests the provider keeps each (the
/// newest): a long-running `authc serve` must not grow without end.
pub(crate) const MAX_RECORDS: usize = 100_000;

/// Appends `record`, dropping the oldest tenth once `list` holds
/// [`MAX_RECORDS`].
pub(crate) fn keep<T>(list: &mut Vec<T>, record: T) {
    if list.len() >= MAX_RECORDS {
        list.drain(..MAX_RECORDS / 10);
    }
    list.push(record);
}

/// A fault for the next token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `500` with an HTML error page.
    ServerError,
    /// `503` with an HTML error page.
    Unavailable,
    /// `429` with `Retry-After: <seconds>`.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after: u64,
    },
}

/// One token endpoint request, as the provider understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: String,
    /// How the client authenticated: `basic`, `basic-raw`, `post`, `json`,
    /// `none`, `private-key-jwt`, `client-secret-jwt`, `tls-client-auth`,
    /// `self-signed-tls-client-auth`, or `unknown`.
    pub client_auth: String,
    /// The `x5t#S256` thumbprint of the client certificate the request
    /// came with (over the mutual TLS listener).
    pub client_certificate: Option<String>,
    /// The client id, when one was found.
    pub client_id: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `audience`.
    pub audience: Option<String>,
    /// Every `resource`.
    pub resources: Vec<String>,
    /// Every other parameter (the client secret and assertions excluded).
    pub params: Vec<(String, String)>,
    /// The `jti` of the client assertion and of the JWT bearer grant's
    /// assertion, when sent.
    pub assertion_ids: Vec<String>,
    /// Why the request was refused, when it was (the provider's log).
    pub refusal: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// One request to the protected API (`/api/...`) or the legacy one
/// (`/legacy/...`), as the provider saw it: which credentials came, never
/// their values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query (`/api/orders`).
    pub path: String,
    /// The `Authorization` scheme as sent (`Bearer`, `DPoP`, `Basic`), when
    /// the header came.
    pub authorization_scheme: Option<String>,
    /// Where an API key came, when [`ProviderConfig::api_key`](crate::ProviderConfig::api_key)
    /// names one: `header`, `query`, or `None` when neither carried it (a
    /// wrong key counts as sent: the status says it was refused).
    pub api_key: Option<&'static str>,
    /// Whether a `DPoP` proof header came.
    pub dpop_proof: bool,
    /// The body's length in bytes.
    pub body_bytes: usize,
    /// The status answered.
    pub status: u16,
}

/// Counters of what the provider served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStats {
    /// Requests to the token endpoint (faults included).
    pub token_requests: u64,
    /// Token exchanges (RFC 8693) granted.
    pub exchanges: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Calls to the protected API.
    pub api_calls: u64,
    /// API calls answered 403 `insufficient_scope`.
    pub api_forbidden: u64,
    /// Requests for the API's protected resource metadata.
    pub resource_metadata_requests: u64,
    /// Clients registered (RFC 7591).
    pub registrations: u64,
    /// Authorization requests pushed (RFC 9126).
    pub pushed_requests: u64,
    /// API calls answered 401.
    pub api_unauthorized: u64,
    /// Revocation requests.
    pub revocations: u64,
    /// Authorization requests (`GET /oauth/authorize`).
    pub authorizations: u64,
    /// Answers that asked for a DPoP nonce (`use_dpop_nonce`), at the
    /// token endpoint and the API.
    pub dpop_nonce_challenges: u64,
    /// DPoP proofs refused for another reason (bad, replayed, missing).
    pub dpop_proofs_refused: u64,
    /// Certificate-bound tokens refused at the API because the connection
    /// did not show their certificate.
    pub certificate_binding_refused: u64,
}

#[cfg(test)]
mod tests {
    use super::{keep, MAX_RECORDS};

    #[test]
    fn records_keep_the_newest_within_the_cap() {
        let mut list = Vec::new();
        for n in 0..MAX_RECORDS + 5 {
            keep(&mut list, n);
        }
        assert!(list.len() <= MAX_RECORDS);
        assert_eq!(list.last(), Some(&(MAX_RECORDS + 4)));
        assert_eq!(list.first(), Some(&(MAX_RECORDS / 10)));
    }
}
