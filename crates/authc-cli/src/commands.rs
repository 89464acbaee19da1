//! `authc token`, `authc request`, `authc revoke`, `authc login`, `authc logout`.

use std::io::{Read, Write};
use std::time::Duration;

use auth_core::resource::step_up::StepUp;
use auth_core::secret::{AccessTokenValue, ExposeSecret, RefreshToken};
use auth_core::setup::ClientParts;
use auth_core::store::{StoreConfig, StoreOp};
use auth_core::wire::request::{revocation_request, Revocable};
use auth_core::{SourceConfig, StoredToken};
use auth_reqwest::{same_origin_redirects, AuthMiddleware, ReqwestTransport};
use auth_tower::TokenSource;
use auth_tower::TokenStore;
use zeroize::Zeroizing;

use crate::cli::{AuthArgs, LoginArgs, RequestArgs, TokenTypeHint};
use crate::failure::{notice, Failure};
use crate::settings::Settings;
use crate::sign_ins::SignIns;
use crate::store::{stored_tokens, token_store, Store};

/// A token source sharing its tokens through the token store (a file
/// store in the cache directory by default): parallel runs make one grant,
/// later runs reuse the token.
pub(crate) struct CachedSource {
    pub(crate) source: TokenSource,
    store: Option<Store>,
}

impl CachedSource {
    pub(crate) fn open(
        settings: &Settings,
        config: SourceConfig,
        store: Option<Store>,
        restore: Option<StoredToken>,
    ) -> Result<Self, Failure> {
        Self::open_traced(settings, config, store, restore, false)
    }

    /// With `verbose`, each token request and answer is shown on stderr
    /// (credentials redacted, bodies not shown).
    fn open_traced(
        settings: &Settings,
        config: SourceConfig,
        store: Option<Store>,
        restore: Option<StoredToken>,
        verbose: bool,
    ) -> Result<Self, Failure> {
        // The transport of ReqwestTransport::new(), with the TLS settings.
        let transport = ReqwestTransport::from_client(
            settings.http_client(
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(auth_reqwest::DEFAULT_TIMEOUT),
            )?,
        );
        let mut builder = if verbose {
            let traced = tower::ServiceBuilder::new()
                .map_request(crate::verbose::token_request as fn(_) -> _)
                .map_response(crate::verbose::token_response as fn(_) -> _)
                .service(transport);
            TokenSource::builder(config, traced)
        } else {
            TokenSource::builder(config, transport)
        };
        if let Some(store) = &store {
            builder = builder.store(store.clone(), StoreConfig::default());
        }
        if let Some(stored) = restore {
            builder = builder.restore(stored);
        }
        Ok(Self { source: builder.build()?, store })
    }

    /// Waits for the store writes of this run (bounded by the store
    /// timeout), and says once when the cache could not be used.
    pub(crate) async fn save(&self) {
        if self.store.is_none() {
            return;
        }
        self.source.flush().await;
        let errors = self.source.stats().store_errors;
        if errors > 0 {
            // Said once per run, without RUST_LOG: the next run will fetch again.
            notice(&format!(
                "could not use the token cache ({errors} operation(s) failed); the next run fetches a new token"
            ));
        }
    }
}

pub(crate) fn needs_oauth(settings: &Settings, command: &str) -> Result<SourceConfig, Failure> {
    settings.source_config()?.ok_or_else(|| {
        Failure::usage(format!(
            "`authc {command}` needs --token-url and --client-id (or AUTHC_TOKEN_URL, AUTHC_CLIENT_ID, or a --profile)"
        ))
    })
}

pub async fn token(auth: &AuthArgs, json: bool) -> Result<(), Failure> {
    let mut settings = Settings::resolve(auth, None)?;
    settings.discover().await?;
    token_with(&settings, json).await.map_err(|failure| settings.explain(failure))
}

async fn token_with(settings: &Settings, json: bool) -> Result<(), Failure> {
    let config = needs_oauth(settings, "token")?;
    let session = CachedSource::open(settings, config, token_store(settings.store.as_ref())?, None)?;
    let token = session.source.token().await?;
    session.save().await;
    let now = tokio::time::Instant::now().into_std();
    let line = if json {
        Zeroizing::new(
            serde_json::json!({
                "access_token": token.value().expose_secret(),
                "token_type": token.token_type(),
                "expires_in": token.remaining(now).as_secs(),
                "scope": token.scope(),
            })
            .to_string(),
        )
    } else {
        Zeroizing::new(token.value().expose_secret().to_owned())
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", line.as_str()).map_err(|e| Failure::network(format!("cannot write to stdout: {e}")))
}

pub async fn request(auth: &AuthArgs, spec: &RequestArgs) -> Result<(), Failure> {
    let mut settings = Settings::resolve(auth, None)?;
    settings.discover().await?;
    // No provider named: the API's URL may say where to sign in (RFC 9728).
    let mut discovery = None;
    if settings.names_no_provider() && !settings.sign_in {
        if let Some(store) = token_store(settings.store.as_ref())? {
            if !crate::resource::adopt_kept(&mut settings, &store, &spec.url).await? {
                discovery = Some(store);
            }
        }
    }
    request_with(&settings, spec, discovery.as_ref()).await.map_err(|failure| settings.explain(failure))
}

/// Sends the request. With `discovery` (no provider is configured or
/// kept for the URL), a 401 naming the API's metadata is followed to its
/// authorization server, and the run ends saying which `authc login` to run.
async fn request_with(settings: &Settings, spec: &RequestArgs, discovery: Option<&Store>) -> Result<(), Failure> {
    // How long the API may stay silent (connecting, or between two reads
    // of the answer): a long download streams on while data keeps coming.
    let timeout = Duration::from_secs(spec.timeout.max(1));
    let url = reqwest::Url::parse(&spec.url)
        .map_err(|e| Failure::usage(format!("`{}` is not a valid URL: {e}", spec.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Failure::usage(format!("`{}` is not an http(s) URL", spec.url)));
    }
    let ClientParts { source: config, credentials, .. } = client_for(settings, &url)?;
    let session = config
        .map(|config| {
            CachedSource::open_traced(settings, config, token_store(settings.store.as_ref())?, None, spec.verbose)
        })
        .transpose()?;
    let redaction = crate::verbose::Redaction::new(settings.api_key_header.as_deref(), credentials.clone());
    let middleware = match &session {
        Some(session) => AuthMiddleware::new(session.source.clone(), credentials),
        None => AuthMiddleware::without_source(credentials)?,
    };
    let http = settings.http_client(
        reqwest::Client::builder().redirect(same_origin_redirects()).connect_timeout(timeout).read_timeout(timeout),
    )?;
    let mut client = reqwest_middleware::ClientBuilder::new(http).with(middleware);
    if spec.verbose {
        client = client.with(crate::verbose::Verbose(redaction));
    }
    let client = client.build();

    let body = match (&spec.data, &spec.data_file, &spec.json) {
        (Some(data), _, _) | (None, None, Some(data)) => Some(body_argument(data)?),
        (None, Some(file), _) => Some(read_body(file)?),
        (None, None, None) => None,
    };
    let method = match &spec.method {
        Some(method) => reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Failure::usage(format!("`{method}` is not an HTTP method")))?,
        None if body.is_some() => reqwest::Method::POST,
        None => reqwest::Method::GET,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for header in &spec.headers {
        let (name, value) =
            header.split_once(':').ok_or_else(|| Failure::usage(format!("header `{header}` is not 'Name: value'")))?;
        let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Failure::usage(format!("`{}` is not a valid header name", name.trim())))?;
        let value = reqwest::header::HeaderValue::from_str(value.trim())
            .map_err(|_| Failure::usage(format!("the value of header `{name}` is not valid")))?;
        headers.append(name, value);
    }
    if spec.json.is_some() {
        // The JSON defaults, unless -H gave them.
        for name in [reqwest::header::CONTENT_TYPE, reqwest::header::ACCEPT] {
            headers.entry(name).or_insert(reqwest::header::HeaderValue::from_static("application/json"));
        }
    }
    let mut builder = client.request(method, url).headers(headers);
    if let Some(body) = body {
        builder = builder.body(body);
    }
    let mut response = builder.send().await?;
    let status = response.status();
    if session.is_none() && status == reqwest::StatusCode::UNAUTHORIZED && discovery.is_some() {
        if let Some(failure) = crate::resource::after_401(settings, discovery, &spec.url, response.headers()).await {
            return Err(failure);
        }
    }
    let rejected_after_renewal = response.extensions().get::<auth_core::RejectedAfterRenewal>().copied();
    let step_up = response.extensions().get::<StepUp>().cloned();
    // The redirect policy stops at another origin (and after too many
    // hops): a 3xx with a Location reaching here was not followed.
    let redirect_elsewhere = status
        .is_redirection()
        .then(|| response.headers().get(reqwest::header::LOCATION))
        .flatten()
        .map(|location| shown_location(response.url(), location));
    if let Some(session) = &session {
        session.save().await;
    }
    if spec.include {
        let mut head = format!("{:?} {}\r\n", response.version(), status);
        for (name, value) in response.headers() {
            head.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(value.as_bytes())));
        }
        head.push_str("\r\n");
        std::io::stdout()
            .write_all(head.as_bytes())
            .map_err(|e| Failure::network(format!("cannot write to stdout: {e}")))?;
    }
    // Streamed: the body goes out as it arrives, whatever its size.
    let (mut sink, target): (Box<dyn Write>, String) = match &spec.output {
        Some(path) => (
            Box::new(
                std::fs::File::create(path)
                    .map_err(|e| Failure::usage(format!("cannot create {}: {e}", path.display())))?,
            ),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdout().lock()), "stdout".to_owned()),
    };
    let write_failed = |e: std::io::Error| Failure::network(format!("cannot write to {target}: {e}"));
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        let what = if e.is_timeout() { "timed out" } else { "failed" };
        Failure::network(format!("reading the API response {what}: {}", e.without_url()))
    })? {
        sink.write_all(&chunk).map_err(write_failed)?;
    }
    sink.flush().map_err(write_failed)?;
    if let Some(location) = redirect_elsewhere {
        Err(Failure::api(format!(
            "the API answered {status} with a redirect to {location}, another origin or one redirect too many: \
             not followed, so the credentials were not sent there; request that URL yourself if you trust it"
        )))
    } else if status.is_success() || status.is_redirection() {
        Ok(())
    } else if let Some(asked) = step_up {
        Err(Failure::refused(format!("the API answered {status}: {asked}; {}", step_up_hint(settings, &asked))))
    } else if let Some(mark) = rejected_after_renewal {
        Err(Failure::api(format!("the API answered {status}: {mark}")))
    } else {
        Err(Failure::api(format!("the API answered {status}")))
    }
}

/// What to run to get a token the API takes, after it asked for more.
fn step_up_hint(settings: &Settings, asked: &StepUp) -> String {
    let scopes = asked.scopes().unwrap_or(&settings.scopes);
    let mut line = match (&settings.discovered, &settings.profile) {
        (Some(resource), None) => settings.login_line(resource, scopes),
        (_, Some(profile)) if settings.sign_in => format!("authc login --profile {profile}"),
        _ if settings.sign_in => "authc login with the same options".to_owned(),
        // Client credentials: the client asks again with the scopes.
        (_, profile) => {
            let profile = profile.as_ref().map(|p| format!(" --profile {p}")).unwrap_or_default();
            return format!("run again with{profile} --scope \"{}\" if the client may have them", scopes.join(" "));
        }
    };
    if let StepUp::Authentication { acr_values, max_age } = asked {
        if !acr_values.is_empty() {
            line.push_str(&format!(" --acr-values \"{}\"", acr_values.join(" ")));
        }
        if let Some(age) = max_age {
            line.push_str(&format!(" --max-age {age}"));
        }
    } else if settings.profile.is_some() || settings.discovered.is_none() {
        line.push_str(&format!(" --scope \"{}\"", scopes.join(" ")));
    }
    format!("sign in again with `{line}`")
}

/// A `-d` / `--json` argument: the data itself, or `@FILE` (`@-`: stdin).
fn body_argument(data: &str) -> Result<Vec<u8>, Failure> {
    match data.strip_prefix('@') {
        Some("-") => {
            let mut body = Vec::new();
            std::io::stdin().read_to_end(&mut body).map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
            Ok(body)
        }
        Some(file) => read_body(std::path::Path::new(file)),
        None => Ok(data.as_bytes().to_vec()),
    }
}

fn read_body(file: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(file).map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))
}

/// The token configuration and the credentials for a request to `url`,
/// the credentials limited to `--api-origin` / `api_origin` when given (a
/// URL elsewhere is refused before anything is sent), else to the URL's
/// own origin.
fn client_for(settings: &Settings, url: &reqwest::Url) -> Result<ClientParts, Failure> {
    let own = url.origin().ascii_serialization();
    if settings.api_origins.is_empty() {
        return settings.client(std::slice::from_ref(&own));
    }
    let parts = settings.client(&settings.api_origins)?;
    let uri: http::Uri = url.as_str().parse().map_err(|_| Failure::usage(format!("`{url}` is not a valid URL")))?;
    if parts.credentials.applies_to(&uri) {
        return Ok(parts);
    }
    Err(Failure::usage(format!(
        "refusing to send the credentials to {own}: it is not an API origin of this configuration ({}); \
         add it with --api-origin (or api_origin in the profile) if it should have them",
        settings.api_origins.join(", ")
    )))
}

/// A redirect target as shown on stderr: its origin and path, never its
/// query (it may hold a key or a code).
fn shown_location(base: &reqwest::Url, location: &reqwest::header::HeaderValue) -> String {
    match location.to_str().ok().and_then(|text| base.join(text).ok()) {
        Some(target) => format!("{}{}", target.origin().ascii_serialization(), target.path()),
        None => "an unreadable Location".to_owned(),
    }
}

pub async fn revoke(
    auth: &AuthArgs,
    revocation_url: Option<String>,
    hint: Option<TokenTypeHint>,
    token: Option<String>,
) -> Result<(), Failure> {
    let mut settings = Settings::resolve(auth, revocation_url)?;
    // An issuer's document names the revocation endpoint (its mTLS alias
    // for a client with a certificate).
    settings.discover().await?;
    let config = needs_oauth(&settings, "revoke")?;
    if config.revocation_url().is_none() {
        return Err(Failure::usage(
            "`authc revoke` needs --revocation-url (or AUTHC_REVOCATION_URL, or revocation_url in the profile)",
        ));
    }
    let store = token_store(settings.store.as_ref())?;
    match token {
        Some(dash) if dash == "-" => {
            let mut value = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| Failure::usage(format!("cannot read the token from stdin: {e}")))?;
            let value = value.trim();
            if value.is_empty() {
                return Err(Failure::usage("no token on stdin"));
            }
            revoke_one(&settings, &config, value, hint.unwrap_or(TokenTypeHint::AccessToken)).await?;
            if let Some(store) = &store {
                // The stored record holds it: delete the record (compare-and-delete).
                let stored = stored_tokens(store, &config).await;
                let holds = stored.as_ref().is_some_and(|c| {
                    c.access_token.as_ref().is_some_and(|t| t.expose_secret() == value)
                        || c.refresh_token.as_ref().is_some_and(|t| t.expose_secret() == value)
                });
                if let Some(access) = stored.and_then(|c| c.access_token).filter(|_| holds) {
                    let fingerprint = auth_core::store::fingerprint(access.expose_secret());
                    let op = StoreOp::Invalidate { fingerprint };
                    let _ = store.execute(config.cache_key(), std::time::SystemTime::now(), &op).await;
                }
            }
            notice("token revoked");
            Ok(())
        }
        Some(_) => Err(Failure::usage(
            "pass the token on stdin with `--token -` (a command-line value would show in the process list)",
        )),
        None => {
            let Some(store) = store else {
                return Err(Failure::usage(
                    "nothing to revoke: the cache is off (--no-cache or --store none); pass a token with `--token -`",
                ));
            };
            let Some(stored) = stored_tokens(&store, &config).await else {
                notice("no cached token for this configuration; nothing to revoke");
                return Ok(());
            };
            let session = CachedSource::open(&settings, config, Some(store), Some(stored))?;
            let revoked = session.source.revoke().await;
            session.save().await;
            let revoked = revoked?;
            let what = match (revoked.access_token, revoked.refresh_token) {
                (true, true) => "access and refresh tokens",
                (false, true) => "refresh token",
                _ => "access token",
            };
            notice(&format!("{what} revoked and removed from the cache"));
            Ok(())
        }
    }
}

/// `authc login`: signs the user in and stores the tokens under the
/// configuration's (sign-in) cache key.
pub async fn login(auth: &AuthArgs, login: &LoginArgs) -> Result<(), Failure> {
    let mut settings = Settings::resolve_sign_in(auth, None)?;
    let (loopback, registered) = if settings.names_no_provider() && settings.resources.len() == 1 {
        // `--resource URL` alone: the API's metadata says where to sign in.
        from_resource(&mut settings, login).await?
    } else {
        settings.discover().await?;
        (None, None)
    };
    if login.device_url.is_some() {
        settings.device_url.clone_from(&login.device_url);
    }
    let outcome = login_with(&settings, login, loopback).await.map_err(|failure| settings.explain(failure));
    if let Some(registered) = registered {
        notice(&registered);
    }
    outcome
}

/// The options of a sign-in for the API `--resource` names, from its
/// metadata (kept in the token store after the first run), registering
/// `authc` there when no client is kept or given: then the loopback
/// listener is bound first, for the redirect URI registered.
async fn from_resource(
    settings: &mut Settings,
    login: &LoginArgs,
) -> Result<(Option<auth_tower::sign_in::Loopback>, Option<String>), Failure> {
    let store = token_store(settings.store.as_ref())?.ok_or_else(|| {
        Failure::usage("`authc login` keeps the tokens in the token store, which is off (--no-cache or --store none)")
    })?;
    let resource = settings.resources[0].clone();
    let found = crate::resource::discover(settings, &store, &resource).await?;
    crate::resource::adopt(settings, &found);
    if settings.client_id.is_some() {
        return Ok((None, None));
    }
    if login.device {
        return Err(Failure::usage(
            "no client is registered for this API yet: run `authc login --resource` once without --device (it              registers a client), or pass --client-id",
        ));
    }
    let loopback = auth_tower::sign_in::Loopback::bind(&loopback_options(login)).await?;
    let registered = crate::resource::register(settings, &store, found, loopback.redirect_uri()).await?;
    Ok((Some(loopback), Some(registered)))
}

fn loopback_options(login: &LoginArgs) -> auth_tower::sign_in::LoopbackOptions {
    auth_tower::sign_in::LoopbackOptions::default()
        .port(login.redirect_port)
        .path(login.redirect_path.as_str())
        .timeout(Duration::from_secs(login.timeout.max(1)))
}

async fn login_with(
    settings: &Settings,
    login: &LoginArgs,
    loopback: Option<auth_tower::sign_in::Loopback>,
) -> Result<(), Failure> {
    use auth_tower::sign_in::{device_sign_in, exchange_code, Loopback};
    let config = needs_oauth(settings, "login")?;
    let Some(store) = token_store(settings.store.as_ref())? else {
        return Err(Failure::usage(
            "`authc login` keeps the tokens in the token store, which is off (--no-cache or --store none)",
        ));
    };
    let session = CachedSource::open(settings, config, Some(store.clone()), None)?;
    let source = &session.source;
    if login.device {
        let device_url = settings.device_url.as_deref().ok_or_else(|| {
            Failure::usage("`authc login --device` needs --device-url (or --issuer whose discovery names one)")
        })?;
        device_sign_in(source, device_url, |authorization| {
            let complete = authorization.verification_uri_complete().map(|u| format!(" (or open {u})"));
            eprintln!(
                "To sign in, open {} and enter the code {}{}",
                authorization.verification_uri(),
                authorization.user_code(),
                complete.unwrap_or_default()
            );
        })
        .await?;
    } else {
        let authorize_url = settings.authorize_url.as_deref().ok_or_else(|| {
            Failure::usage("`authc login` needs --authorize-url (or --issuer whose discovery names one), or --device")
        })?;
        let loopback = match loopback {
            Some(loopback) => loopback,
            None => Loopback::bind(&loopback_options(login)).await?,
        };
        let mut builder = auth_core::sign_in::authorize::AuthorizationRequest::builder(
            source.config(),
            authorize_url,
            loopback.redirect_uri(),
        )
        .allow_insecure_http(settings.allow_insecure_http);
        if let Some(issuer) = &settings.issuer {
            builder = builder.issuer(issuer).require_issuer_param(settings.issuer_param_required);
        }
        if let Some(acr_values) = &login.acr_values {
            builder = builder.param("acr_values", acr_values);
        }
        if let Some(max_age) = login.max_age {
            builder = builder.param("max_age", max_age.to_string());
        }
        let mut request = builder.build()?;
        if settings.requires_par || login.par {
            request = push(settings, source.config(), request).await?;
        }
        if login.no_browser {
            // Alone on its line: a script or test reads it as is.
            eprintln!("{}", request.url());
        } else {
            eprintln!("Opening the browser to sign in. If it does not open, visit:\n{}", request.url());
            if let Err(reason) = auth_tower::sign_in::open_browser(request.url()) {
                notice(&format!("could not open a browser ({reason}); open the URL above yourself"));
            }
        }
        let code = loopback.receive(&request).await?;
        exchange_code(source, &request, &code).await?;
    }
    session.save().await;
    // Noted, so that a logout with other scopes still finds these tokens.
    let mut sign_ins = SignIns::read(settings, &store).await?;
    sign_ins.note(&settings.scoping());
    if let Err(error) = sign_ins.save(&store).await {
        notice(&format!(
            "could not note the sign-in in the token store ({}): `authc logout` then needs the same --scope",
            error.message
        ));
    }
    eprintln!(
        "authc: signed in; the tokens are stored for client `{}` at {} (`authc token --sign-in` uses them)",
        source.config().client_id(),
        source.config().token_url()
    );
    Ok(())
}

/// Pushes the authorization request (RFC 9126): the URL the browser gets
/// then carries only a reference.
async fn push(
    settings: &Settings,
    config: &SourceConfig,
    request: auth_core::sign_in::authorize::AuthorizationRequest,
) -> Result<auth_core::sign_in::authorize::AuthorizationRequest, Failure> {
    let endpoint = settings.par_endpoint.as_deref().ok_or_else(|| {
        Failure::usage("--par: the authorization server names no pushed_authorization_request_endpoint")
    })?;
    Ok(auth_reqwest::push_authorization(&settings.discovery_client()?, config, request, endpoint).await?)
}

async fn revoke_one(
    settings: &Settings,
    config: &SourceConfig,
    value: &str,
    hint: TokenTypeHint,
) -> Result<(), Failure> {
    let mut revocation = match hint {
        TokenTypeHint::AccessToken => {
            revocation_request(config, Revocable::AccessToken(&AccessTokenValue::new(value)))?
        }
        TokenTypeHint::RefreshToken => revocation_request(config, Revocable::RefreshToken(&RefreshToken::new(value)))?,
    };
    let client = settings.http_client(
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)),
    )?;
    let ready = auth_core::wire::request::ready_to_send(&revocation.take_request(), std::time::SystemTime::now())
        .map_err(|e| Failure::from(auth_tower::AuthError::Revocation(e)))?;
    let request = reqwest::Request::try_from(ready)
        .map_err(|e| Failure::usage(format!("invalid revocation request: {}", e.without_url())))?;
    let network = |e: reqwest::Error| {
        Failure::network(format!("the revocation endpoint is unreachable: {}; check --revocation-url", e.without_url()))
    };
    let response = client.execute(request).await.map_err(network)?;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = crate::capped::body(response, "the revocation endpoint's answer").await?;
    revocation
        .parse_response(config, status, &headers, &body)
        .map_err(|e| Failure::from(auth_tower::AuthError::Revocation(e)))
}
