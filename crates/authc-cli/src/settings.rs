//! Settings from flags, the environment and a profile, in that order of
//! precedence; secrets only from the environment or files.

use std::path::PathBuf;

use auth_core::assertion::{AssertionAudience, JwtBearer};
use auth_core::keys::SigningKey;
use auth_core::mtls::ClientCertificate;
use auth_core::secret::{ApiKey, ClientSecret, ExposeSecret, Password};
use auth_core::setup::{ClientParts, ClientSetup};
use auth_core::{ClientAuth, ConfigError, SourceConfig, SourceGrant};

use crate::cli::{AuthArgs, GrantArg};
use crate::failure::Failure;
use crate::key_files::{assertion_from, dpop_key, read_client_certificate, read_root_certificates, read_signing_key};
use crate::profile::{auth_methods, load_profile, Profile, Words, GRANTS};
use crate::secrets::{split_secret, SecretPlaces, SecretSource};
use crate::store::{store_choice, StoreChoice};

/// What tokens are asked for, beside the client: part of a token's cache
/// key, so a sign-in is stored per scoping.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scoping {
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resources: Vec<String>,
}

impl std::fmt::Display for Scoping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the options that give it, for a message that says what to run.
        let mut options = Vec::new();
        if !self.scopes.is_empty() {
            options.push(format!("--scope \"{}\"", self.scopes.join(" ")));
        }
        if let Some(audience) = &self.audience {
            options.push(format!("--audience {audience}"));
        }
        options.extend(self.resources.iter().map(|r| format!("--resource {r}")));
        match options.is_empty() {
            true => f.write_str("no --scope"),
            false => f.write_str(&options.join(" ")),
        }
    }
}

/// Everything a command needs to authenticate.
#[derive(Debug)]
pub struct Settings {
    /// The profile the settings came from, if any.
    pub profile: Option<String>,
    pub token_url: Option<String>,
    /// The issuer whose discovery document fills the endpoints.
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub device_url: Option<String>,
    /// A user's sign-in: the tokens are the signed-in user's.
    pub sign_in: bool,
    /// The issuer said it always sends `iss` on the callback.
    pub issuer_param_required: bool,
    /// The issuer's pushed authorization request endpoint (RFC 9126).
    pub par_endpoint: Option<String>,
    /// The issuer takes authorization requests only pushed.
    pub requires_par: bool,
    /// The API resource whose discovery (from its URL alone) filled the
    /// endpoints and the client: `authc login --resource` signs in for it.
    pub discovered: Option<String>,
    /// Origins besides an API's own that discovery from its URL may
    /// contact (`--trust-origin`).
    pub trusted_origins: Vec<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<ClientSecret>,
    /// The client authentication method given (or chosen from a discovery
    /// document); `None`: the default for the grant and the credentials.
    pub auth_method: Option<ClientAuth>,
    /// The client's private key and the file it came from.
    pub signing_key: Option<(SigningKey, PathBuf)>,
    pub assertion_audience: Option<AssertionAudience>,
    /// The JWT bearer grant's assertion and where it comes from.
    pub jwt_bearer: Option<(JwtBearer, String)>,
    /// The RFC 8693 token exchange (`--grant token-exchange`).
    pub token_exchange: Option<auth_core::exchange::TokenExchange>,
    /// The client assertion read from a file (`--client-assertion-file`).
    pub client_assertion: Option<auth_core::exchange::SuppliedToken>,
    /// The DPoP key and where it comes from.
    pub dpop: Option<(std::sync::Arc<auth_core::dpop::Dpop>, String)>,
    /// The TLS client certificate (mutual TLS) and the file it came from.
    pub client_certificate: Option<(ClientCertificate, PathBuf)>,
    /// The CA certificates (DER) trusted instead of the built-in roots,
    /// and their file.
    pub root_certificates: Option<(Vec<Vec<u8>>, PathBuf)>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resources: Vec<String>,
    pub params: Vec<(String, String)>,
    pub api_key_header: Option<String>,
    pub api_key_query: Option<String>,
    pub api_key: Option<ApiKey>,
    pub basic_user: Option<String>,
    pub basic_password: Option<Password>,
    pub revocation_url: Option<String>,
    pub allow_insecure_http: bool,
    /// The token store: `None` for none.
    pub store: Option<StoreChoice>,
    /// The fetch budget per 24 hours.
    pub max_fetches_per_day: Option<u32>,
    /// The origins the credentials may go to (`--api-origin`,
    /// `api_origin`); empty: the origin of the URL requested.
    pub api_origins: Vec<String>,
    /// Where each secret came from (never its value).
    pub client_secret_source: Option<SecretSource>,
    pub api_key_source: Option<SecretSource>,
    pub basic_password_source: Option<SecretSource>,
}

impl Settings {
    /// Merges flags and environment (already merged by clap) over the profile.
    pub fn resolve(args: &AuthArgs, revocation_url: Option<String>) -> Result<Self, Failure> {
        Self::resolve_with(args, revocation_url, false)
    }

    /// [`Settings::resolve`] for `authc login` / `logout`: the options
    /// describe a user's sign-in whatever they name.
    pub fn resolve_sign_in(args: &AuthArgs, revocation_url: Option<String>) -> Result<Self, Failure> {
        Self::resolve_with(args, revocation_url, true)
    }

    pub(crate) fn resolve_with(
        args: &AuthArgs,
        revocation_url: Option<String>,
        sign_in: bool,
    ) -> Result<Self, Failure> {
        let (profile, profile_name) = load_profile(args)?;
        let secrets = Secrets::read(args, &profile, profile_name.as_deref().unwrap_or_default())?;
        let client_certificate = client_certificate(args, &profile)?;
        let root_certificates = match args.ca_cert.clone().or(profile.ca_cert.clone()) {
            Some(path) => Some((read_root_certificates(&path)?, path)),
            None => None,
        };
        // A workload's token (as the client assertion, or to exchange) is the
        // client's identity too: no user signs in.
        let has_key_or_certificate = client_certificate.is_some()
            || args.private_key_file.is_some()
            || profile.private_key_file.is_some()
            || args.client_assertion_file.is_some()
            || profile.client_assertion_file.is_some()
            || grant(args, &profile)? == Some(GrantArg::TokenExchange);
        let issuer = args.issuer.clone().or(profile.issuer.clone());
        let authorize_url = args.authorize_url.clone().or(profile.authorize_url.clone());
        // Naming an authorization endpoint (or an issuer, for a client
        // without a secret, key or certificate) describes a user's sign-in.
        let sign_in = sign_in
            || args.sign_in
            || profile.sign_in
            || authorize_url.is_some()
            || (issuer.is_some() && secrets.client_secret.is_none() && !has_key_or_certificate);
        let key_id = args.key_id.clone().or(profile.key_id.clone());
        let signing_key = match args.private_key_file.clone().or(profile.private_key_file.clone()) {
            Some(path) => Some((read_signing_key(&path, key_id.as_deref())?, path)),
            None => None,
        };
        let store = if args.no_cache {
            None
        } else {
            store_choice(args.store.as_deref().or(profile.store.as_deref()).unwrap_or("file"))?
        };
        let token_url = args.token_url.clone().or(profile.token_url.clone());
        let client_id = args.client_id.clone().or(profile.client_id.clone());
        let endpoint = token_url.as_deref().or(issuer.as_deref()).unwrap_or_default();
        let dpop =
            dpop(args, &profile, store.as_ref(), &format!("{endpoint}\n{}", client_id.as_deref().unwrap_or_default()))?;
        Ok(Self {
            profile: profile_name,
            token_url,
            issuer,
            authorize_url,
            device_url: profile.device_url.clone(),
            sign_in,
            issuer_param_required: false,
            par_endpoint: None,
            requires_par: false,
            discovered: None,
            trusted_origins: args.trust_origin.clone(),
            client_id,
            auth_method: auth_method(args, &profile)?,
            signing_key,
            assertion_audience: args
                .assertion_audience
                .clone()
                .or(profile.assertion_audience.clone())
                .map(|aud| AssertionAudience::parse(&aud)),
            jwt_bearer: jwt_bearer(args, &profile)?,
            token_exchange: crate::workload::token_exchange(args, &profile, grant(args, &profile)?)?,
            client_assertion: crate::workload::client_assertion(args, &profile)?,
            dpop,
            client_certificate,
            root_certificates,
            scopes: words(&args.scope, &profile.scope),
            audience: args.audience.clone().or(profile.audience.clone()),
            resources: words(&args.resource, &profile.resource),
            params: params(args, &profile)?,
            api_key_header: args.api_key_header.clone().or(profile.api_key_header.clone()),
            api_key_query: args.api_key_query.clone().or(profile.api_key_query.clone()),
            basic_user: args.basic_user.clone().or(profile.basic_user.clone()),
            revocation_url: revocation_url.or(profile.revocation_url.clone()),
            allow_insecure_http: args.allow_insecure_http || profile.allow_insecure_http,
            store,
            max_fetches_per_day: args.max_fetches_per_day.or(profile.max_fetches_per_day),
            api_origins: words(&args.api_origin, &profile.api_origin),
            client_secret: secrets.client_secret,
            client_secret_source: secrets.client_secret_source,
            api_key: secrets.api_key,
            api_key_source: secrets.api_key_source,
            basic_password: secrets.basic_password,
            basic_password_source: secrets.basic_password_source,
        })
    }

    /// Adds where the client secret came from to a refusal that is about
    /// the client's credentials (`invalid_client`).
    pub fn explain(&self, failure: Failure) -> Failure {
        match &self.client_secret_source {
            Some(source) if failure.refused_with == Some(auth_core::ErrorCode::InvalidClient) => {
                Failure { message: format!("{}; the client secret came from {source}", failure.message), ..failure }
            }
            _ => failure,
        }
    }

    /// The token source configuration, when OAuth is configured.
    pub fn source_config(&self) -> Result<Option<SourceConfig>, Failure> {
        self.source_config_scoped(&self.scoping())
    }

    /// What the tokens are asked for: the scopes, the audience and the
    /// resources given.
    pub fn scoping(&self) -> Scoping {
        Scoping { scopes: self.scopes.clone(), audience: self.audience.clone(), resources: self.resources.clone() }
    }

    /// The token source's configuration, with the scopes, audience and
    /// resources of `scoping` instead of the ones given.
    pub fn source_config_scoped(&self, scoping: &Scoping) -> Result<Option<SourceConfig>, Failure> {
        Ok(self.client_parts(scoping, &[])?.source)
    }

    /// The token source's configuration (when OAuth is configured) and
    /// the credentials for API calls, limited to `origins`: both from one
    /// [`ClientSetup`].
    pub fn client(&self, origins: &[String]) -> Result<ClientParts, Failure> {
        self.client_parts(&self.scoping(), origins)
    }

    /// The client these settings describe, decided as every front end's
    /// ([`ClientSetup`]): the token source's configuration for `scoping`
    /// (when OAuth is configured) and the credentials, limited to
    /// `origins` (to any origin when there are none: only the token
    /// configuration is wanted then).
    fn client_parts(&self, scoping: &Scoping, origins: &[String]) -> Result<ClientParts, Failure> {
        let mut setup = ClientSetup::default();
        if let Some(token_url) = &self.token_url {
            let client_id = self
                .client_id
                .clone()
                .ok_or_else(|| Failure::usage("--token-url needs --client-id (or AUTHC_CLIENT_ID)"))?;
            setup = match self.sign_in {
                true => setup.user_sign_in(token_url, client_id),
                false => setup.client_credentials(token_url, client_id),
            };
            setup = self.token_settings(setup, scoping);
        }
        if self.api_key_header.is_some() || self.api_key_query.is_some() {
            let key = self.api_key.as_ref().ok_or_else(|| {
                Failure::usage(
                    "an API key header or query parameter is set, but no key: set AUTHC_API_KEY or --api-key-file",
                )
            })?;
            if let Some(header) = &self.api_key_header {
                setup = setup.api_key_header(header, key.expose_secret());
            }
            if let Some(name) = &self.api_key_query {
                setup = setup.api_key_query(name, key.expose_secret());
            }
        }
        if let Some(user) = &self.basic_user {
            let password = self
                .basic_password
                .as_ref()
                .ok_or_else(|| Failure::usage("--basic-user needs AUTHC_BASIC_PASSWORD"))?;
            setup = setup.basic(user, password.expose_secret());
        }
        setup = match origins {
            [] => setup.any_origin(),
            origins => origins.iter().fold(setup, |setup, origin| setup.api_origin(origin)),
        };
        setup.build().map_err(|error| self.with_flags(error))
    }

    /// The token settings on `setup` (after `client_credentials` or
    /// `user_sign_in`).
    fn token_settings(&self, mut setup: ClientSetup, scoping: &Scoping) -> ClientSetup {
        if let Some(secret) = &self.client_secret {
            setup = setup.client_secret(secret.expose_secret());
        }
        if let Some(method) = self.auth_method {
            setup = setup.client_auth(method);
        }
        if let Some((key, _)) = &self.signing_key {
            setup = setup.signing_key(key.clone());
        }
        if let Some((certificate, _)) = &self.client_certificate {
            setup = setup.client_certificate(certificate.clone());
        }
        if let Some((dpop, _)) = &self.dpop {
            setup = setup.dpop(dpop.clone());
        }
        for scope in &scoping.scopes {
            setup = setup.scope(scope);
        }
        if let Some(audience) = &scoping.audience {
            setup = setup.audience(audience);
        }
        for resource in &scoping.resources {
            setup = setup.resource(resource);
        }
        for (key, value) in &self.params {
            setup = setup.param(key, value);
        }
        if let Some(url) = &self.revocation_url {
            setup = setup.revocation_url(url);
        }
        if let Some(limit) = self.max_fetches_per_day {
            setup = setup.max_fetches_per_day(limit);
        }
        setup.configure_token(|mut builder| {
            builder = builder.allow_insecure_http(self.allow_insecure_http);
            if let Some(issuer) = &self.issuer {
                builder = builder.issuer(issuer);
            }
            if let Some(audience) = &self.assertion_audience {
                builder = builder.assertion_audience(audience.clone());
            }
            if let Some((bearer, _)) = &self.jwt_bearer {
                builder = builder.jwt_bearer(bearer.clone());
            }
            if let Some(exchange) = &self.token_exchange {
                builder = builder.token_exchange(exchange.clone());
            }
            if let Some(assertion) = &self.client_assertion {
                builder = builder.client_assertion(assertion.clone());
            }
            if self.sign_in {
                // A sign-in's grant, whatever else was named (as before
                // the JWT bearer assertion).
                builder = builder.grant(SourceGrant::SignIn).sign_in_hint(self.login_hint());
            }
            builder
        })
    }

    /// A configuration error, with the flags that fix it where a flag does.
    fn with_flags(&self, error: ConfigError) -> Failure {
        let method = |name: &str| ClientAuth::parse(name).map_or(name.to_owned(), |m| m.to_string());
        match error {
            ConfigError::MissingClientSecret { method: name } => Failure::usage(format!(
                "client authentication `{}` needs the client secret: set AUTHC_CLIENT_SECRET or --client-secret-file \
                 (or use --private-key-file, or --auth-method none)",
                method(name)
            )),
            ConfigError::MissingSigningKey => {
                Failure::usage("client authentication `private-key-jwt` needs --private-key-file FILE")
            }
            ConfigError::MissingClientCertificate { method: name } => Failure::usage(format!(
                "client authentication `{}` needs --client-cert FILE (and --client-key FILE)",
                method(name)
            )),
            other => other.into(),
        }
    }

    /// What a user who must sign in again is told to run.
    pub fn login_hint(&self) -> String {
        match (&self.profile, &self.discovered) {
            (Some(profile), _) => format!("run `authc login --profile {profile}`"),
            (None, Some(resource)) => format!("run `{}`", self.login_line(resource, &self.scopes)),
            (None, None) => "run `authc login` with the same options".to_owned(),
        }
    }

    /// The `authc login` that signs in for the discovered API `resource`
    /// with `scopes`.
    pub fn login_line(&self, resource: &str, scopes: &[String]) -> String {
        let mut line = format!("authc login --resource {resource}");
        if !scopes.is_empty() {
            line.push_str(&format!(" --scope \"{}\"", scopes.join(" ")));
        }
        for origin in &self.trusted_origins {
            line.push_str(&format!(" --trust-origin {origin}"));
        }
        line
    }

    /// Whether nothing names a token endpoint: no token URL, issuer or
    /// profile (an API's URL may then say where to sign in).
    pub fn names_no_provider(&self) -> bool {
        self.token_url.is_none() && self.issuer.is_none() && self.profile.is_none()
    }

    /// An HTTP client from `builder` with the TLS settings: the client
    /// certificate (presented to servers that ask for one) and the roots.
    pub fn http_client(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, Failure> {
        let certificate = self.client_certificate.as_ref().map(|(certificate, _)| certificate);
        let roots = self.root_certificates.as_ref().map(|(roots, _)| roots.as_slice());
        let tls = |error: auth_core::ConfigError| Failure::usage(format!("--client-cert / --ca-cert: {error}"));
        auth_reqwest::with_tls(builder, certificate, roots)
            .map_err(tls)?
            .build()
            .map_err(|error| tls(auth_core::ConfigError::tls(&error)))
    }
}

/// The secrets of a command, each with where it came from.
struct Secrets {
    client_secret: Option<ClientSecret>,
    client_secret_source: Option<SecretSource>,
    api_key: Option<ApiKey>,
    api_key_source: Option<SecretSource>,
    basic_password: Option<Password>,
    basic_password_source: Option<SecretSource>,
}

impl Secrets {
    /// Reads each secret from the first place that has it.
    fn read(args: &AuthArgs, profile: &Profile, name: &str) -> Result<Self, Failure> {
        let client_secret = SecretPlaces {
            what: "client secret",
            global: "AUTHC_CLIENT_SECRET",
            flag: args.client_secret_file.as_deref().map(|path| ("--client-secret-file", path)),
            profile: name,
            env: profile.client_secret_env.as_deref().map(|v| ("client_secret_env", v)),
            file: profile.client_secret_file.as_deref().map(|path| ("client_secret_file", path)),
        }
        .read()?;
        let api_key = SecretPlaces {
            what: "API key",
            global: "AUTHC_API_KEY",
            flag: args.api_key_file.as_deref().map(|path| ("--api-key-file", path)),
            profile: name,
            env: profile.api_key_env.as_deref().map(|v| ("api_key_env", v)),
            file: profile.api_key_file.as_deref().map(|path| ("api_key_file", path)),
        }
        .read()?;
        let basic_password = SecretPlaces {
            what: "Basic password",
            global: "AUTHC_BASIC_PASSWORD",
            flag: None,
            profile: name,
            env: profile.basic_password_env.as_deref().map(|v| ("basic_password_env", v)),
            file: profile.basic_password_file.as_deref().map(|path| ("basic_password_file", path)),
        }
        .read()?;
        let (client_secret, client_secret_source) = split_secret(client_secret, ClientSecret::from);
        let (api_key, api_key_source) = split_secret(api_key, ApiKey::from);
        let (basic_password, basic_password_source) = split_secret(basic_password, Password::from);
        Ok(Self { client_secret, client_secret_source, api_key, api_key_source, basic_password, basic_password_source })
    }
}

/// The words of a repeatable flag (each split at spaces), or the profile's.
fn words(flags: &[String], profile: &Words) -> Vec<String> {
    if flags.is_empty() {
        profile.0.clone()
    } else {
        flags.iter().flat_map(|flag| flag.split_whitespace().map(str::to_owned)).collect()
    }
}

/// The extra token request parameters: the profile's, each overridden by a
/// `--param KEY=VALUE` of the same key.
fn params(args: &AuthArgs, profile: &Profile) -> Result<Vec<(String, String)>, Failure> {
    let mut params: Vec<(String, String)> = profile.params.clone().into_iter().collect();
    for param in &args.param {
        let (key, value) = param
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Failure::usage(format!("--param `{param}` is not KEY=VALUE")))?;
        params.retain(|(k, _)| k != key);
        params.push((key.to_owned(), value.to_owned()));
    }
    Ok(params)
}

/// The client authentication method the flag or the profile names.
fn auth_method(args: &AuthArgs, profile: &Profile) -> Result<Option<ClientAuth>, Failure> {
    match (args.auth_method, &profile.auth_method) {
        (Some(method), _) => Ok(Some(method)),
        (None, Some(name)) => ClientAuth::parse(name).map(Some).ok_or_else(|| {
            Failure::usage(format!("unknown auth_method `{name}` in the profile; use {}", auth_methods()))
        }),
        (None, None) => Ok(None),
    }
}

/// The TLS client certificate and its key (the certificate's file when no
/// key file is named), and the certificate's file.
fn client_certificate(args: &AuthArgs, profile: &Profile) -> Result<Option<(ClientCertificate, PathBuf)>, Failure> {
    match (
        args.client_cert.clone().or(profile.client_cert.clone()),
        args.client_key.clone().or(profile.client_key.clone()),
    ) {
        (Some(certificate), key) => {
            let key = key.unwrap_or_else(|| certificate.clone());
            Ok(Some((read_client_certificate(&certificate, &key)?, certificate)))
        }
        (None, Some(_)) => Err(Failure::usage("--client-key goes with --client-cert FILE")),
        (None, None) => Ok(None),
    }
}

/// The grant a flag or the profile names.
fn grant(args: &AuthArgs, profile: &Profile) -> Result<Option<GrantArg>, Failure> {
    Ok(match (args.grant, profile.grant.as_deref()) {
        (Some(grant), _) => Some(grant),
        (None, Some("client-credentials")) => Some(GrantArg::ClientCredentials),
        (None, Some("jwt-bearer")) => Some(GrantArg::JwtBearer),
        (None, Some("token-exchange")) => Some(GrantArg::TokenExchange),
        (None, Some(other)) => {
            return Err(Failure::usage(format!("unknown grant `{other}` in the profile; use {}", GRANTS.join(" or "))))
        }
        (None, None) => None,
    })
}

/// The JWT bearer grant's assertion, when that grant is chosen.
fn jwt_bearer(args: &AuthArgs, profile: &Profile) -> Result<Option<(JwtBearer, String)>, Failure> {
    let grant = grant(args, profile)?;
    match (grant, args.assertion_file.clone().or(profile.assertion_file.clone())) {
        (Some(GrantArg::JwtBearer), Some(path)) => Ok(Some(assertion_from(&path)?)),
        (Some(GrantArg::JwtBearer), None) => {
            Err(Failure::usage("--grant jwt-bearer needs --assertion-file FILE (or `-` for stdin)"))
        }
        (_, Some(_)) => Err(Failure::usage("--assertion-file goes with --grant jwt-bearer")),
        _ => Ok(None),
    }
}

/// The DPoP key, when DPoP is asked for: from its file, or kept for
/// `identity` (the endpoint and client) in the cache directory.
fn dpop(
    args: &AuthArgs,
    profile: &Profile,
    store: Option<&StoreChoice>,
    identity: &str,
) -> Result<Option<(std::sync::Arc<auth_core::dpop::Dpop>, String)>, Failure> {
    let key_file = args.dpop_key_file.clone().or(profile.dpop_key_file.clone());
    if !(args.dpop || profile.dpop || key_file.is_some()) {
        return Ok(None);
    }
    let dir = match store {
        Some(StoreChoice::File(dir)) => Some(dir.clone()),
        // Redis holds tokens, not keys: the key stays on this host.
        Some(StoreChoice::Redis(_)) => std::env::var_os("AUTHC_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("authc"))),
        None => None,
    };
    Ok(Some(dpop_key(key_file.as_deref(), dir.as_deref(), identity)?))
}
