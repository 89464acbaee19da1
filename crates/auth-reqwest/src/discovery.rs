//! The requests of discovery from an API's URL (RFC 9728, RFC 8414) and of
//! a client's registration (RFC 7591), with reqwest; and the record of what
//! was found, read from and kept in a token store. The rules are
//! auth-core's ([`auth_core::resource`]): which documents are taken, which
//! origins may be contacted, what is kept. [`ForResource`](crate::ForResource)
//! and `authc` both use these.

use std::time::SystemTime;

use auth_core::resource::discovered::Discovered;
use auth_core::resource::from_url::FromUrlError;
use auth_core::resource::metadata::{
    challenge_metadata_url, metadata_url, parse_resource_metadata, Expected, Origins, ResourceMetadata,
};
use auth_core::sign_in::discovery::{discovery_urls, parse_metadata};
use auth_core::sign_in::registration::{
    parse_registration_redacting, registration_request, ClientMetadata, Registration,
};
use auth_core::store::{StoreAnswer, StoreError, StoreOp};
use auth_tower::TokenStore;

use crate::capped::CappedError;

/// The largest document read during discovery.
const MAX_DOCUMENT: usize = 64 * 1024;

/// The record `store` keeps for the API at `url` (any URL under its
/// resource), if any.
pub async fn kept(store: &dyn TokenStore, url: &str) -> Option<Discovered> {
    let key = Discovered::key(url).ok()?;
    let Ok(StoreAnswer::Envelope(Some(envelope))) = store.execute(&key, SystemTime::now(), &StoreOp::Read).await else {
        return None;
    };
    Discovered::from_envelope(&envelope).filter(|found| found.covers(url))
}

/// Keeps `found` in `store` (a failure only costs the next run a
/// discovery, or a registration).
pub async fn keep(store: &dyn TokenStore, found: &mut Discovered) -> Result<(), StoreError> {
    let key = found.own_key().map_err(|e| StoreError::new(e.to_string()))?;
    let op = StoreOp::Write { envelope: found.seal(SystemTime::now()), release: None };
    store.execute(&key, SystemTime::now(), &op).await.map(drop)
}

/// The API identified by `resource`: its metadata at the well-known URL,
/// its authorization server (on its origin or one of `origins`) and that
/// server's endpoints.
pub async fn discover(http: &reqwest::Client, resource: &str, origins: &Origins) -> Result<Discovered, FromUrlError> {
    let url = metadata_url(resource)?;
    let body = document(http, "the API's metadata", &url).await?;
    let metadata = parse_resource_metadata(&body, Expected::Identifier(resource))?;
    follow(http, &metadata, origins).await
}

/// The API that answered a request to `requested` with a challenge naming
/// its metadata at `named`.
pub async fn discover_from_challenge(
    http: &reqwest::Client,
    requested: &str,
    named: &str,
    origins: &Origins,
) -> Result<Discovered, FromUrlError> {
    let url = challenge_metadata_url(requested, named, origins)?.to_string();
    let body = document(http, "the API's metadata", &url).await?;
    let metadata = parse_resource_metadata(&body, Expected::Requested(requested))?;
    follow(http, &metadata, origins).await
}

/// What `metadata` says, with its authorization server's endpoints.
async fn follow(
    http: &reqwest::Client,
    metadata: &ResourceMetadata,
    origins: &Origins,
) -> Result<Discovered, FromUrlError> {
    let issuer = metadata.authorization_server(origins)?.to_owned();
    let [first, second] = discovery_urls(&issuer)?;
    let body = match document(http, "the authorization server's metadata", &first).await {
        Ok(body) => body,
        Err(_) => document(http, "the authorization server's metadata", &second).await?,
    };
    Ok(Discovered::new(metadata, &parse_metadata(&issuer, &body, false)?))
}

/// Registers a client with `metadata` at `endpoint` (with the initial
/// access token some servers want, redacted from their refusals).
pub async fn register(
    http: &reqwest::Client,
    endpoint: &str,
    metadata: &ClientMetadata,
    initial_access_token: Option<&str>,
) -> Result<Registration, FromUrlError> {
    let request =
        registration_request(endpoint, metadata, initial_access_token).map_err(|e| FromUrlError::Resource(e.into()))?;
    let unreachable = |reason: String| FromUrlError::Unreachable {
        what: "the registration endpoint",
        url: endpoint.to_owned(),
        reason,
    };
    let mut answer = http
        .post(endpoint)
        .headers(request.headers().clone())
        .body(request.body().clone())
        .send()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    let status = answer.status();
    let body = read_capped(&mut answer).await.map_err(unreachable)?;
    let secrets: Vec<&str> = initial_access_token.into_iter().collect();
    Ok(parse_registration_redacting(status, &body, &secrets)?)
}

/// GETs a JSON document, at most [`MAX_DOCUMENT`] bytes.
async fn document(http: &reqwest::Client, what: &'static str, url: &str) -> Result<Vec<u8>, FromUrlError> {
    let unreachable = |reason: String| FromUrlError::Unreachable { what, url: url.to_owned(), reason };
    let mut answer = http
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    if !answer.status().is_success() {
        return Err(unreachable(format!("it answered {}", answer.status())));
    }
    read_capped(&mut answer).await.map_err(unreachable)
}

/// The body of `answer`, refused past [`MAX_DOCUMENT`] bytes.
async fn read_capped(answer: &mut reqwest::Response) -> Result<Vec<u8>, String> {
    crate::capped::read_capped(answer, MAX_DOCUMENT).await.map_err(|error| match error {
        CappedError::TooLarge => format!("it is larger than {} KiB", MAX_DOCUMENT / 1024),
        CappedError::Failed(e) => e.without_url().to_string(),
    })
}
