//! `authc config check`: the settings resolved as a command would, and where each secret comes from.

use crate::cli::AuthArgs;
use crate::failure::Failure;
use crate::profile::config_path;
use crate::secrets::SecretSource;
use crate::settings::Settings;
use crate::store::StoreChoice;

/// `authc config check`: resolves the settings as a command would, builds
/// the configuration, and prints what it found; secrets by their source.
pub fn check(args: &AuthArgs) -> Result<(), Failure> {
    let settings = Settings::resolve(args, None)?;
    // The credentials are checked against the API origins, or a stand-in
    // when the origin comes from each request's URL.
    let origins = if settings.api_origins.is_empty() {
        vec!["https://api.example.invalid".to_owned()]
    } else {
        settings.api_origins.clone()
    };
    let config = settings.client(&origins)?.source;
    let from = |source: &Option<SecretSource>| match source {
        Some(source) => format!("from {source}"),
        None => "none".to_owned(),
    };
    let mut lines = Vec::new();
    match (&args.profile, config_path(args)) {
        (Some(name), Some((path, _))) => lines.push(("profile", format!("{name} ({})", path.display()))),
        _ => lines.push(("profile", "none (flags and environment only)".to_owned())),
    }
    if let Some(config) = &config {
        lines.push(("token URL", config.token_url().to_string()));
        lines.push(("client id", config.client_id().to_owned()));
        lines.push(("client auth", config.client_auth().to_string()));
        lines.push(("client secret", from(&settings.client_secret_source)));
        if let Some((key, path)) = &settings.signing_key {
            let kid = key.key_id().map(|kid| format!(", kid {kid}")).unwrap_or_default();
            lines.push((
                "private key",
                format!("{} ({}{kid}), aud {}", path.display(), key.algorithm(), config.assertion_aud()),
            ));
        }
        if let Some((dpop, source)) = &settings.dpop {
            lines.push(("DPoP", format!("key {} from {source}", dpop.thumbprint())));
        }
        if let Some((certificate, path)) = &settings.client_certificate {
            lines.push(("client cert", format!("{} (x5t#S256 {})", path.display(), certificate.thumbprint())));
        }
        if let Some((_, source)) = &settings.jwt_bearer {
            lines.push(("grant", format!("jwt-bearer, the assertion from {source}")));
        }
        if let Some(exchange) = config.token_exchange() {
            lines.push(("grant", crate::workload::describe(exchange)));
        }
        if let Some(assertion) = config.client_assertion() {
            lines.push(("assertion", format!("the client assertion from {}", assertion.place())));
        }
        if !settings.scopes.is_empty() {
            lines.push(("scope", settings.scopes.join(" ")));
        }
        if let Some(audience) = &settings.audience {
            lines.push(("audience", audience.clone()));
        }
        if !settings.resources.is_empty() {
            lines.push(("resource", settings.resources.join(" ")));
        }
        if let Some(limit) = settings.max_fetches_per_day {
            lines.push(("fetch budget", format!("{limit} token requests per 24 hours")));
        }
    } else {
        lines.push(("OAuth", "none (no token_url)".to_owned()));
    }
    if let Some(header) = &settings.api_key_header {
        lines.push(("API key", format!("header {header}, {}", from(&settings.api_key_source))));
    }
    if let Some(query) = &settings.api_key_query {
        lines.push(("API key", format!("query parameter {query}, {}", from(&settings.api_key_source))));
    }
    if let Some(user) = &settings.basic_user {
        lines.push(("Basic", format!("user {user}, password {}", from(&settings.basic_password_source))));
    }
    lines.push((
        "API origins",
        if settings.api_origins.is_empty() {
            "the origin of each URL requested".to_owned()
        } else {
            settings.api_origins.join(" ")
        },
    ));
    lines.push((
        "token store",
        match &settings.store {
            None => "none".to_owned(),
            Some(StoreChoice::File(dir)) => format!("files in {}", dir.display()),
            Some(StoreChoice::Redis(_)) => "Redis (the URL is not shown: it may hold a password)".to_owned(),
        },
    ));
    for (what, value) in lines {
        println!("{:<14} {value}", format!("{what}:"));
    }
    println!("the configuration is usable");
    Ok(())
}
