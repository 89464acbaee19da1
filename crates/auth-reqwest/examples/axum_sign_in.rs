//! A web app that signs its users in with the authorization code flow and
//! PKCE, with auth-reqwest alone: `/login` builds the authorization request
//! from a client of the user's own (`user_sign_in`) and keeps both in the
//! server-side session; `/callback` checks the callback and trades the code
//! for the user's tokens (`exchange_code`), installed in that client's token
//! source; `/me` calls the API as the user through the client, so a 401 is
//! handled as for any client: a new token from the refresh token, the call
//! replayed once.
//!
//! The provider is the embedded one (auth-testkit on 127.0.0.1, which
//! approves its test user at once); the example plays the browser itself
//! and exits: `cargo run -p auth-reqwest --example axum_sign_in`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auth_reqwest::{
    exchange_code, reqwest, reqwest_middleware, AuthClient, AuthError, AuthorizationRequest, TokenError,
};
use auth_testkit::{Provider, ProviderConfig};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// What the app keeps per browser session (a real app: its session store).
#[derive(Default)]
struct Sessions {
    /// Sign-ins under way: the user's client and the request (its state and
    /// PKCE verifier).
    pending: HashMap<String, (AuthClient, AuthorizationRequest)>,
    /// Signed-in users: each has a client of its own.
    users: HashMap<String, AuthClient>,
}

#[derive(Clone)]
struct App {
    sessions: Arc<Mutex<Sessions>>,
    token_url: String,
    authorize_url: String,
    redirect_uri: String,
    api_origin: String,
    api_url: String,
}

impl App {
    /// A client for one user: no token until the user signs in.
    fn user_client(&self) -> Result<AuthClient, AuthError> {
        AuthClient::builder()
            .user_sign_in(self.token_url.as_str(), "web-app")
            .client_secret("web-secret")
            .scope("profile")
            .api_origin(self.api_origin.as_str())
            .build()
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| c.trim().strip_prefix("sid=")).map(str::to_owned)
}

fn failure(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, message.to_string()).into_response()
}

/// GET /login: starts a sign-in and sends the browser to the provider.
async fn login(State(app): State<App>) -> Response {
    let client = match app.user_client() {
        Ok(client) => client,
        Err(error) => return failure(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    let Some(source) = client.token_source() else { return failure(StatusCode::INTERNAL_SERVER_ERROR, "no source") };
    let request = match AuthorizationRequest::builder(source.config(), &app.authorize_url, &app.redirect_uri).build() {
        Ok(request) => request,
        Err(error) => return failure(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    let to_provider = request.url().to_owned();
    // The session id is random and unguessable (here: the testkit's generator).
    let sid = auth_testkit::random_token("sid-");
    app.sessions.lock().unwrap().pending.insert(sid.clone(), (client, request));
    let cookie = format!("sid={sid}; HttpOnly; SameSite=Lax; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&to_provider)).into_response()
}

/// GET /callback: checks the redirect and installs the user's tokens.
async fn callback(State(app): State<App>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(sid) = session_id(&headers) else { return failure(StatusCode::BAD_REQUEST, "no session") };
    // A pending sign-in is used once.
    let Some((client, request)) = app.sessions.lock().unwrap().pending.remove(&sid) else {
        return failure(StatusCode::BAD_REQUEST, "no sign-in under way for this session");
    };
    let code = match request.handle_callback(query.as_deref().unwrap_or("")) {
        Ok(code) => code,
        Err(error) => return failure(StatusCode::BAD_REQUEST, error),
    };
    let Some(source) = client.token_source() else { return failure(StatusCode::INTERNAL_SERVER_ERROR, "no source") };
    if let Err(error) = exchange_code(source, &request, &code).await {
        return failure(StatusCode::BAD_GATEWAY, error);
    }
    app.sessions.lock().unwrap().users.insert(sid, client);
    Redirect::to("/me").into_response()
}

/// GET /me: calls the API as the signed-in user.
async fn me(State(app): State<App>, headers: HeaderMap) -> Response {
    let client = session_id(&headers).and_then(|sid| app.sessions.lock().unwrap().users.get(&sid).cloned());
    let Some(client) = client else { return Redirect::to("/login").into_response() };
    match client.get(&app.api_url).send().await {
        Ok(answer) => {
            let status = answer.status();
            match answer.text().await {
                Ok(body) => (status, body).into_response(),
                Err(error) => failure(StatusCode::BAD_GATEWAY, error),
            }
        }
        // The refresh token is dead (revoked, expired): sign in again.
        Err(error) if signed_out(&error) => Redirect::to("/login").into_response(),
        Err(error) => failure(StatusCode::BAD_GATEWAY, error),
    }
}

/// Whether the client has no usable sign-in left.
fn signed_out(error: &reqwest_middleware::Error) -> bool {
    let reqwest_middleware::Error::Middleware(error) = error else { return false };
    matches!(error.downcast_ref::<AuthError>(), Some(AuthError::Token(TokenError::SignInRequired { .. })))
}

/// The browser: one GET without following redirects, with the session
/// cookie; returns the status, the `Location`, any new cookie and the body.
async fn browse(
    browser: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, Option<String>, String) {
    let mut request = browser.get(url);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let answer = request.send().await.unwrap();
    let header = |name| answer.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (location, set_cookie) = (header(header::LOCATION), header(header::SET_COOKIE));
    let status = answer.status();
    (status, location, set_cookie, answer.text().await.unwrap())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().client("web-app", "web-secret").user("carol"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = App {
        sessions: Arc::default(),
        token_url: provider.token_url(),
        authorize_url: provider.authorization_url(),
        redirect_uri: format!("{base}/callback"),
        api_origin: provider.url().to_owned(),
        api_url: provider.api_url("profile"),
    };
    let sessions = Arc::clone(&app.sessions);
    let router = Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .with_state(app);
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The browser: /login → the provider → /callback (with the session cookie) → /me.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let (status, to_provider, cookie, _) = browse(&browser, &format!("{base}/login"), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie").split(';').next().unwrap().to_owned();
    let (status, back, _, _) = browse(&browser, &to_provider.unwrap(), None).await;
    assert_eq!(status, StatusCode::FOUND, "the provider approves its test user");
    let back = back.unwrap();
    let (status, to_me, _, body) = browse(&browser, &back, Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let me_url = format!("{base}{}", to_me.unwrap());
    let (status, _, _, profile) = browse(&browser, &me_url, Some(&cookie)).await;
    println!("signed in; the API says: {profile}");
    assert_eq!(status, StatusCode::OK);
    assert!(profile.contains("\"user\":\"carol\""), "the API saw the user, not the app");

    // The provider revokes the user's access token: the API answers 401,
    // the client renews with the refresh token and replays the call.
    provider.revoke_access_tokens();
    let (status, _, _, again) = browse(&browser, &me_url, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again.contains("\"user\":\"carol\""), "{again}");
    let user = sessions.lock().unwrap().users.values().next().cloned().unwrap();
    let stats = user.token_source().unwrap().stats();
    assert_eq!(stats.replays_after_401, 1, "one 401, one replay with the renewed token");

    // Everything revoked, the refresh token too: the API's 401 comes back
    // (no new token could be had), and the next call finds the user
    // signed out: /me sends the browser to sign in again.
    provider.revoke_all();
    let (status, _, _, _) = browse(&browser, &me_url, Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, to, _, _) = browse(&browser, &me_url, Some(&cookie)).await;
    assert_eq!((status, to.as_deref()), (StatusCode::SEE_OTHER, Some("/login")), "signed out: sign in again");

    // A replayed callback (the code, the state) finds no sign-in under way.
    let (status, _, _, body) = browse(&browser, &back, Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.contains("web-secret") && !profile.contains(provider.token_url().as_str()));
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
