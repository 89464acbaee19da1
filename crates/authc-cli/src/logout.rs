//! `authc logout`: the signed-in user's tokens revoked and forgotten,
//! found whatever scopes the command is given.

use auth_core::{SourceConfig, StoredToken};

use crate::cli::AuthArgs;
use crate::commands::{needs_oauth, CachedSource};
use crate::failure::{notice, Failure};
use crate::settings::Settings;
use crate::sign_ins::SignIns;
use crate::store::{stored_tokens, token_store, Store};

/// `authc logout`: revokes the user's tokens where a revocation endpoint is
/// known, and deletes them from the store: the ones of the scopes given,
/// or, when none are stored for them, every sign-in `authc login` noted
/// for this client (whatever scopes it was given).
pub async fn logout(auth: &AuthArgs, revocation_url: Option<String>) -> Result<(), Failure> {
    let mut settings = Settings::resolve_sign_in(auth, revocation_url)?;
    settings.discover().await?;
    let config = needs_oauth(&settings, "logout")?;
    let Some(store) = token_store(settings.store.as_ref())? else {
        return Err(Failure::usage("nothing to forget: the token store is off (--no-cache or --store none)"));
    };
    let mut sign_ins = SignIns::read(&settings, &store).await?;
    let given = settings.scoping();
    let mut signed_in = Vec::new();
    if let Some(stored) = stored_tokens(&store, &config).await {
        signed_in.push((given.clone(), config, stored));
    } else {
        for scoping in sign_ins.noted.iter().filter(|noted| **noted != given) {
            let Some(config) = settings.source_config_scoped(scoping)? else { continue };
            if let Some(stored) = stored_tokens(&store, &config).await {
                signed_in.push((scoping.clone(), config, stored));
            }
        }
        if signed_in.is_empty() {
            sign_ins.forget(&given);
            let _ = sign_ins.save(&store).await;
            notice(&format!(
                "no signed-in user for client `{}` at {} in this token store; nothing to do",
                config.client_id(),
                config.token_url()
            ));
            return Ok(());
        }
        let found: Vec<String> = signed_in.iter().map(|(scoping, ..)| scoping.to_string()).collect();
        notice(&format!(
            "no sign-in with {given}; signing out the one(s) `authc login` was given with: {}",
            found.join("; ")
        ));
    }
    let mut outcome = Ok(());
    for (scoping, config, stored) in signed_in {
        let signed_out = logout_one(&settings, &store, config, stored).await;
        if signed_out.is_ok() {
            sign_ins.forget(&scoping);
        }
        outcome = outcome.and(signed_out);
    }
    if let Err(error) = sign_ins.save(&store).await {
        notice(&format!("could not update the token store's list of sign-ins: {}", error.message));
    }
    outcome
}

/// Revokes (where a revocation endpoint is known) and forgets the tokens
/// `stored` under `config`'s key, through the token source's lifecycle:
/// restored, then revoked or discarded, which deletes the store's record
/// if it still holds them.
async fn logout_one(
    settings: &Settings,
    store: &Store,
    config: SourceConfig,
    stored: StoredToken,
) -> Result<(), Failure> {
    let can_revoke = config.revocation_url().is_some();
    let session = CachedSource::open(settings, config, Some(store.clone()), Some(stored))?;
    let revoked = match can_revoke {
        true => Some(session.source.revoke().await),
        false => None,
    };
    session.source.discard().await;
    let failed = session.source.stats().store_errors;
    if failed > 0 {
        return Err(Failure::network(format!(
            "could not delete the tokens from the token store ({failed} operation(s) failed); run `authc logout` again"
        )));
    }
    match revoked {
        Some(Ok(_)) => notice("signed out: the tokens are revoked and forgotten"),
        Some(Err(error)) => {
            return Err(Failure::from(error).with_prefix("the tokens are forgotten here, but revoking them failed"))
        }
        None => notice("signed out: the tokens are forgotten (no revocation endpoint is known, so they stay valid at the provider until they expire)"),
    }
    Ok(())
}
