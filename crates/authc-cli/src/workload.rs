//! Tokens from the platform instead of a client secret: the client
//! assertion read from a file (`--client-assertion-file`), and the RFC 8693
//! token exchange (`--grant token-exchange` with `--subject-token-file`).
//! Files are read again at every token request (a rotated one is used from
//! the next request on); an expired token is never sent.

use std::path::{Path, PathBuf};

use auth_core::exchange::{token_types, SuppliedToken, TokenExchange};

use crate::cli::{AuthArgs, GrantArg};
use crate::failure::Failure;
use crate::profile::Profile;

/// The short names `--subject-token-type` and its siblings take, for the
/// RFC 8693 type URIs; any other value is taken as a URI.
pub(crate) const TOKEN_TYPES: [(&str, &str); 6] = [
    ("access_token", token_types::ACCESS_TOKEN),
    ("refresh_token", token_types::REFRESH_TOKEN),
    ("id_token", token_types::ID_TOKEN),
    ("saml1", token_types::SAML1),
    ("saml2", token_types::SAML2),
    ("jwt", token_types::JWT),
];

/// A token type given by its short name or URI.
fn token_type(flag: &str, value: &str) -> Result<String, Failure> {
    if let Some((_, uri)) = TOKEN_TYPES.iter().find(|(name, _)| *name == value) {
        return Ok((*uri).to_owned());
    }
    if value.contains(':') {
        return Ok(value.to_owned());
    }
    let names: Vec<&str> = TOKEN_TYPES.iter().map(|(name, _)| *name).collect();
    Err(Failure::usage(format!("{flag} `{value}` is not a token type; use {} or a URI", names.join(", "))))
}

/// A token file, checked to exist now (it is read at every request).
fn token_file(flag: &str, path: &Path) -> Result<SuppliedToken, Failure> {
    std::fs::metadata(path).map_err(|e| Failure::usage(format!("{flag} {}: {e}", path.display())))?;
    Ok(SuppliedToken::file(path))
}

/// The client assertion file (`--client-assertion-file`,
/// `client_assertion_file`), if any.
pub(crate) fn client_assertion(args: &AuthArgs, profile: &Profile) -> Result<Option<SuppliedToken>, Failure> {
    let path = args.client_assertion_file.clone().or(profile.client_assertion_file.clone());
    path.map(|path| token_file("--client-assertion-file", &path)).transpose()
}

/// The token exchange, when `grant` is `token-exchange`; the token flags
/// without it are refused.
pub(crate) fn token_exchange(
    args: &AuthArgs,
    profile: &Profile,
    grant: Option<GrantArg>,
) -> Result<Option<TokenExchange>, Failure> {
    let pick = |flag: &Option<PathBuf>, key: &Option<PathBuf>| flag.clone().or(key.clone());
    let pick_text = |flag: &Option<String>, key: &Option<String>| flag.clone().or(key.clone());
    let subject = pick(&args.subject_token_file, &profile.subject_token_file);
    let actor = pick(&args.actor_token_file, &profile.actor_token_file);
    let subject_type = pick_text(&args.subject_token_type, &profile.subject_token_type);
    let actor_type = pick_text(&args.actor_token_type, &profile.actor_token_type);
    let requested = pick_text(&args.requested_token_type, &profile.requested_token_type);
    if grant != Some(GrantArg::TokenExchange) {
        let given = subject.is_some() || actor.is_some() || subject_type.is_some() || requested.is_some();
        return match given {
            true => Err(Failure::usage(
                "--subject-token-file, --actor-token-file and the token types go with --grant token-exchange",
            )),
            false => Ok(None),
        };
    }
    let subject = subject.ok_or_else(|| Failure::usage("--grant token-exchange needs --subject-token-file FILE"))?;
    let subject_type = token_type("--subject-token-type", subject_type.as_deref().unwrap_or("jwt"))?;
    let mut exchange = TokenExchange::new(token_file("--subject-token-file", &subject)?, subject_type);
    if let Some(actor) = actor {
        let kind = token_type("--actor-token-type", actor_type.as_deref().unwrap_or("jwt"))?;
        exchange = exchange.actor(token_file("--actor-token-file", &actor)?, kind);
    }
    if let Some(requested) = requested {
        exchange = exchange.requested_token_type(token_type("--requested-token-type", &requested)?);
    }
    Ok(Some(exchange))
}

/// How `authc config check` shows an exchange: where each token comes from.
pub(crate) fn describe(exchange: &TokenExchange) -> String {
    let short =
        |uri: &str| TOKEN_TYPES.iter().find(|(_, u)| *u == uri).map_or(uri.to_owned(), |(n, _)| (*n).to_owned());
    let (subject, kind) = exchange.subject();
    let mut text = format!("token-exchange, the subject token ({}) from {}", short(kind), subject.place());
    if let Some((actor, kind)) = exchange.actor_token() {
        text.push_str(&format!(", the actor token ({}) from {}", short(kind), actor.place()));
    }
    if let Some(requested) = exchange.requested() {
        text.push_str(&format!(", asking for {}", short(requested)));
    }
    text
}
