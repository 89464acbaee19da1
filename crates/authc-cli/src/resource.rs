//! An API that tells the client where to sign in: from its URL alone to
//! the user's tokens (RFC 9728 protected resource metadata, RFC 8414
//! discovery, RFC 7591 registration), for `authc login --resource URL` and
//! `authc request URL`.
//!
//! What was found, and the client registered, is kept in the token store
//! (one record per API origin, [`Discovered`]): a later run neither
//! discovers nor registers again.

use auth_core::resource::challenge::from_headers;
use auth_core::resource::discovered::Discovered;
use auth_core::resource::from_url::FromUrlError;
use auth_core::resource::metadata::{Origins, ResourceError};
use auth_core::sign_in::registration::ClientMetadata;
use auth_reqwest::discovery;

use crate::failure::{notice, Failure};
use crate::settings::Settings;
use crate::sign_ins::SignIns;
use crate::store::Store;

/// The record kept for the API at `url`, if one covers it.
pub async fn kept(store: &Store, url: &str) -> Option<Discovered> {
    discovery::kept(store.as_ref(), url).await
}

/// Keeps `found` in the store (said, not fatal, when it cannot be).
async fn keep(store: &Store, found: &mut Discovered) {
    if let Err(error) = discovery::keep(store.as_ref(), found).await {
        notice(&format!(
            "could not keep what discovery found in the token store ({}): the next run discovers again",
            error.message
        ));
    }
}

/// The origins discovery may contact besides the API's own.
fn origins(settings: &Settings) -> Result<Origins, Failure> {
    settings.trusted_origins.iter().try_fold(Origins::default(), |origins, origin| {
        origins.allow(origin).map_err(|e| Failure::usage(format!("--trust-origin {origin}: {e}")))
    })
}

/// A discovery failure as authc says it: another origin with the flag that
/// allows it, a server that cannot be reached as a network failure, a
/// refused registration as a refusal.
fn failed(error: FromUrlError) -> Failure {
    match error {
        FromUrlError::Resource(ResourceError::OriginNotAllowed { resource, origin }) => Failure::usage(format!(
            "the API at {resource} sends the client to {origin}, another origin: not contacted. If you trust it, \
             run again with --trust-origin {origin}"
        )),
        error @ FromUrlError::Unreachable { .. } => Failure::network(error.to_string()),
        error @ FromUrlError::Registration(_) => Failure::refused(error.to_string()),
        other => Failure::usage(other.to_string()),
    }
}

/// The API identified by `resource`, its authorization server and the
/// client registered there: kept, or discovered from its well-known
/// metadata (and kept).
pub async fn discover(settings: &Settings, store: &Store, resource: &str) -> Result<Discovered, Failure> {
    if let Some(found) = kept(store, resource).await.filter(|found| found.resource() == resource) {
        return Ok(found);
    }
    let http = settings.discovery_client()?;
    let mut found = discovery::discover(&http, resource, &origins(settings)?).await.map_err(failed)?;
    keep(store, &mut found).await;
    Ok(found)
}

/// After a 401 to `url` sent without a token: when its challenge names
/// the API's metadata, what it says (kept for `authc login`), and the
/// exit-3 failure that says which `authc login` to run. `None` when the
/// 401 names no metadata.
pub async fn after_401(
    settings: &Settings,
    store: Option<&Store>,
    url: &str,
    headers: &http::HeaderMap,
) -> Option<Failure> {
    let challenges = from_headers(headers).ok()?;
    let challenge = challenges.iter().find(|c| c.resource_metadata().is_some())?;
    let named = challenge.resource_metadata()?;
    let outcome = async {
        let http = settings.discovery_client()?;
        let origins = origins(settings)?;
        let mut found = discovery::discover_from_challenge(&http, url, named, &origins).await.map_err(failed)?;
        if let Some(store) = store {
            keep(store, &mut found).await;
        }
        Ok::<_, Failure>(found)
    };
    let found = match outcome.await {
        Ok(found) => found,
        Err(failure) => return Some(failure.with_prefix("the API answered 401 and named its metadata, but")),
    };
    let scopes: Vec<String> = challenge.scopes().map(str::to_owned).collect();
    Some(Failure::refused(format!(
        "the API answered 401: it wants an OAuth access token for {} from {} (its metadata says so); sign in with \
         `{}`, then run this again",
        found.resource(),
        found.issuer(),
        settings.login_line(found.resource(), &scopes)
    )))
}

/// Takes the endpoints, the resource and the registered client of `found`
/// (a client id given on the command line wins over the registration).
pub fn adopt(settings: &mut Settings, found: &Discovered) {
    settings.sign_in = true;
    settings.issuer = Some(found.issuer().to_owned());
    settings.token_url = Some(found.token_endpoint().to_owned());
    settings.authorize_url = found.authorization_endpoint().map(str::to_owned);
    settings.revocation_url = found.revocation_endpoint().map(str::to_owned);
    settings.par_endpoint = found.par_endpoint().map(str::to_owned);
    settings.requires_par = found.requires_par();
    settings.issuer_param_required = found.iss_parameter_supported();
    settings.resources = vec![found.resource().to_owned()];
    settings.discovered = Some(found.resource().to_owned());
    if settings.client_id.is_some() {
        return;
    }
    if let Some(registration) = found.registration() {
        settings.client_id = Some(registration.client_id().to_owned());
        settings.client_secret = registration.client_secret().cloned();
        settings.auth_method = registration.client_auth().or(settings.auth_method);
    }
}

/// Registers `authc` as a public client redirecting to `redirect_uri` at
/// `found`'s authorization server, keeps the registration and adopts it;
/// says what was registered (for the end of the sign-in: the
/// authorization URL comes first on stderr).
pub async fn register(
    settings: &mut Settings,
    store: &Store,
    found: Discovered,
    redirect_uri: &str,
) -> Result<String, Failure> {
    let endpoint = found.registration_endpoint().ok_or_else(|| {
        Failure::usage(format!(
            "{} registers no clients (its metadata names no registration_endpoint): register one by hand and pass \
             --client-id",
            found.issuer()
        ))
    })?;
    let metadata = ClientMetadata::public_client("authc", redirect_uri);
    let http = settings.discovery_client()?;
    let registration = discovery::register(&http, endpoint, &metadata, None).await.map_err(failed)?;
    let mut found = found.registered(registration);
    keep(store, &mut found).await;
    adopt(settings, &found);
    Ok(format!(
        "registered as client `{}` at {} (kept in the token store for later runs)",
        found.client_id().unwrap_or_default(),
        found.issuer()
    ))
}

/// For `authc request URL` with no provider named: the kept sign-in for
/// the URL's API, adopted with the scopes of its newest sign-in. `false`
/// when none is kept.
pub async fn adopt_kept(settings: &mut Settings, store: &Store, url: &str) -> Result<bool, Failure> {
    let Some(found) = kept(store, url).await.filter(|found| found.client_id().is_some()) else { return Ok(false) };
    adopt(settings, &found);
    if settings.scopes.is_empty() {
        let sign_ins = SignIns::read(settings, store).await?;
        if let Some(newest) = sign_ins.noted.last() {
            settings.scopes.clone_from(&newest.scopes);
        }
    }
    Ok(true)
}
