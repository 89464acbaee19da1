//! A web app that signs its users in with the authorization code flow and
//! PKCE, calling the core pieces from its own axum handlers: `/login` builds
//! the authorization request and keeps its state and verifier in the
//! server-side session; `/callback` rebuilds it with `resume`, checks the
//! callback and trades the code for the user's tokens, installed in a
//! token source of the user's own (renewed with the refresh token from
//! then on); `/me` calls the API as the user.
//!
//! The provider is the embedded one (auth-testkit on 127.0.0.1, which
//! approves its test user at once); the example plays the browser itself
//! and exits: `cargo run -p auth-tower --example axum_sign_in`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auth_core::authorize::AuthorizationRequest;
use auth_core::secret::CodeVerifier;
use auth_core::{SourceConfig, SourceGrant};
use auth_testkit::{Provider, ProviderConfig};
use auth_tower::sign_in::exchange_code;
use auth_tower::TokenSource;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What the app keeps per browser session (a real app: its session store).
#[derive(Default)]
struct Sessions {
    /// Sign-ins under way: the state and the PKCE verifier.
    pending: HashMap<String, (String, CodeVerifier)>,
    /// Signed-in users: each has a token source of its own.
    users: HashMap<String, TokenSource>,
}

#[derive(Clone)]
struct App {
    sessions: Arc<Mutex<Sessions>>,
    /// The user sources' configuration (a confidential web app).
    config: SourceConfig,
    authorize_url: String,
    redirect_uri: String,
    api_url: String,
    client: HttpClient,
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(http::header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| c.trim().strip_prefix("sid=")).map(str::to_owned)
}

fn failure(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, message.to_string()).into_response()
}

/// GET /login: starts a sign-in and sends the browser to the provider.
async fn login(State(app): State<App>) -> Response {
    let request =
        match AuthorizationRequest::builder(&app.config, app.authorize_url.as_str(), app.redirect_uri.as_str()).build()
        {
            Ok(request) => request,
            Err(error) => return failure(StatusCode::INTERNAL_SERVER_ERROR, error),
        };
    // The session id is random and unguessable (here: the testkit's generator).
    let sid = auth_testkit::random_token("sid-");
    let kept = (request.state().to_owned(), request.code_verifier().clone());
    app.sessions.lock().unwrap().pending.insert(sid.clone(), kept);
    let cookie = format!("sid={sid}; HttpOnly; SameSite=Lax; Path=/");
    ([(http::header::SET_COOKIE, cookie)], Redirect::to(request.url())).into_response()
}

/// GET /callback: checks the redirect and installs the user's tokens.
async fn callback(State(app): State<App>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(sid) = session_id(&headers) else { return failure(StatusCode::BAD_REQUEST, "no session") };
    // A pending sign-in is used once.
    let Some((state, verifier)) = app.sessions.lock().unwrap().pending.remove(&sid) else {
        return failure(StatusCode::BAD_REQUEST, "no sign-in under way for this session");
    };
    let request =
        match AuthorizationRequest::builder(&app.config, app.authorize_url.as_str(), app.redirect_uri.as_str())
            .resume(state, verifier, None)
            .build()
        {
            Ok(request) => request,
            Err(error) => return failure(StatusCode::INTERNAL_SERVER_ERROR, error),
        };
    let code = match request.handle_callback(query.as_deref().unwrap_or("")) {
        Ok(code) => code,
        Err(error) => return failure(StatusCode::BAD_REQUEST, error),
    };
    let transport = ServiceBuilder::new()
        .map_request(|request: http::Request<Vec<u8>>| request.map(|body| Full::new(Bytes::from(body))))
        .service(app.client.clone());
    let source = match TokenSource::new(app.config.clone(), transport) {
        Ok(source) => source,
        Err(error) => return failure(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    if let Err(error) = exchange_code(&source, &request, &code).await {
        return failure(StatusCode::BAD_GATEWAY, error);
    }
    app.sessions.lock().unwrap().users.insert(sid, source);
    Redirect::to("/me").into_response()
}

/// GET /me: calls the API with the signed-in user's token.
async fn me(State(app): State<App>, headers: HeaderMap) -> Response {
    let source = session_id(&headers).and_then(|sid| app.sessions.lock().unwrap().users.get(&sid).cloned());
    let Some(source) = source else { return Redirect::to("/login").into_response() };
    let token = match source.token().await {
        Ok(token) => token,
        // SignInRequired (the refresh token is dead): sign in again.
        Err(_) => return Redirect::to("/login").into_response(),
    };
    let request = http::Request::get(&app.api_url)
        .header(http::header::AUTHORIZATION, token.header_value())
        .body(Full::new(Bytes::new()));
    let answer = match request {
        Ok(request) => app.client.request(request).await,
        Err(error) => return failure(StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    match answer {
        Ok(answer) => match answer.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned().into_response(),
            Err(error) => failure(StatusCode::BAD_GATEWAY, error),
        },
        Err(error) => failure(StatusCode::BAD_GATEWAY, error),
    }
}

/// The browser: one GET, with the session cookie; returns the status, the
/// `Location`, any new cookie and the body.
async fn browse(
    client: &HttpClient,
    url: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, Option<String>, String) {
    let mut request = http::Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header(http::header::COOKIE, cookie);
    }
    let answer = client.request(request.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    let header = |name| answer.headers().get(name).and_then(|v: &http::HeaderValue| v.to_str().ok()).map(str::to_owned);
    let (location, set_cookie) = (header(http::header::LOCATION), header(http::header::SET_COOKIE));
    let status = answer.status();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, location, set_cookie, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().client("web-app", "web-secret").user("carol"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let app = App {
        sessions: Arc::default(),
        config: SourceConfig::builder(provider.token_url(), "web-app")
            .client_secret("web-secret")
            .grant(SourceGrant::SignIn)
            .scope("profile")
            .build()?,
        authorize_url: provider.authorization_url(),
        redirect_uri: format!("{base}/callback"),
        api_url: provider.api_url("profile"),
        client: client.clone(),
    };
    let router = Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .with_state(app);
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The browser: /login → the provider → /callback (with the session cookie) → /me.
    let (status, to_provider, cookie, _) = browse(&client, &format!("{base}/login"), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie").split(';').next().unwrap().to_owned();
    let (status, back, _, _) = browse(&client, &to_provider.unwrap(), None).await;
    assert_eq!(status, StatusCode::FOUND, "the provider approves its test user");
    let back = back.unwrap();
    let (status, to_me, _, body) = browse(&client, &back, Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, _, _, profile) = browse(&client, &format!("{base}{}", to_me.unwrap()), Some(&cookie)).await;
    println!("signed in; the API says: {profile}");
    assert_eq!(status, StatusCode::OK);
    assert!(profile.contains("\"user\":\"carol\""), "the API saw the user, not the app");

    // A replayed callback (the code, the state) finds no sign-in under way.
    let (status, _, _, body) = browse(&client, &back, Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.contains("web-secret") && !profile.contains(provider.token_url().as_str()));
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
