//! An API that tells the client where to sign in (RFC 9728), against the
//! embedded provider in its protected-resource mode: the 401's challenge
//! names the metadata, the metadata names the authorization server, a
//! token requested for the resource (RFC 8707) opens it, and a token
//! without the scopes a method needs gets a 403 naming them.

use auth_core::resource::challenge::{from_headers, Scheme};
use auth_core::resource::metadata::{challenge_metadata_url, parse_resource_metadata, Expected, Origins};
use auth_core::sign_in::discovery::{discovery_urls, parse_metadata};
use auth_core::SourceConfig;
use auth_reqwest::reqwest;
use auth_testkit::{Provider, ProviderConfig};

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Sends a POST the core built: its status, headers and body.
async fn send(
    http: &reqwest::Client,
    request: &http::Request<Vec<u8>>,
) -> (http::StatusCode, http::HeaderMap, Vec<u8>) {
    let answer = http
        .post(request.uri().to_string())
        .headers(request.headers().clone())
        .body(request.body().clone())
        .send()
        .await
        .unwrap();
    let (status, headers) = (answer.status(), answer.headers().clone());
    (status, headers, answer.bytes().await.unwrap().to_vec())
}

/// A token of `client`'s for `config`, through a source.
async fn token(config: SourceConfig) -> String {
    use auth_core::secret::ExposeSecret as _;
    let source = auth_tower::TokenSource::new(config, auth_reqwest::ReqwestTransport::new().unwrap()).unwrap();
    source.token().await.unwrap().value().expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_the_apis_401_to_its_authorization_server_and_a_token_for_it() {
    let provider = Provider::start(
        ProviderConfig::new().client("app", "app-secret").protected_resource(true).api_scopes("read", "write"),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let requested = provider.api_url("orders");

    // The 401 names the metadata.
    let answer = get(&http, &requested, None).await;
    assert_eq!(answer.status(), 401);
    let challenges = from_headers(answer.headers()).unwrap();
    assert_eq!(challenges[0].scheme(), Scheme::Bearer);
    let named = challenges[0].resource_metadata().expect("resource_metadata in the challenge");
    assert_eq!(named, provider.resource_metadata_url());

    // The metadata names the resource and this provider as its server.
    let origins = Origins::default();
    let url = challenge_metadata_url(&requested, named, &origins).unwrap();
    let body = http.get(url.to_string()).send().await.unwrap().bytes().await.unwrap();
    let metadata = parse_resource_metadata(&body, Expected::Requested(&requested)).unwrap();
    assert_eq!(metadata.resource(), provider.resource());
    assert_eq!(metadata.scopes_supported(), ["read", "write"]);
    let issuer = metadata.authorization_server(&origins).unwrap().to_owned();
    assert_eq!(issuer, provider.issuer());
    assert_eq!(provider.stats().resource_metadata_requests, 1);

    // Its discovery as today, then a token requested for the resource.
    let discovery = http.get(&discovery_urls(&issuer).unwrap()[0]).send().await.unwrap().bytes().await.unwrap();
    let server = parse_metadata(&issuer, &discovery, false).unwrap();
    let for_resource = |scope: &str| {
        SourceConfig::builder(server.token_endpoint().to_string(), "app")
            .client_secret("app-secret")
            .scope(scope)
            .resource(metadata.resource())
            .build()
            .unwrap()
    };
    let read = token(for_resource("read")).await;
    assert_eq!(get(&http, &requested, Some(&read)).await.status(), 200);

    // A write needs `write` too: a 403 naming every scope it needs.
    let answer = http.post(&requested).bearer_auth(&read).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    let challenge = &from_headers(answer.headers()).unwrap()[0];
    assert_eq!(challenge.error(), Some("insufficient_scope"));
    assert_eq!(challenge.scopes().collect::<Vec<_>>(), ["read", "write"]);
    let both = token(for_resource("read write")).await;
    assert_eq!(http.post(&requested).bearer_auth(&both).send().await.unwrap().status(), 200);

    // A token requested without the resource does not open it.
    let unbound =
        SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret").scope("read").build().unwrap();
    let answer = get(&http, &requested, Some(&token(unbound).await)).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(from_headers(answer.headers()).unwrap()[0].error(), Some("invalid_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_naming_another_origin_or_resource_is_refused_with_why() {
    let provider = Provider::start(ProviderConfig::new().client("app", "app-secret").protected_resource(true)).unwrap();
    let other = Provider::start(ProviderConfig::new().protected_resource(true)).unwrap();
    let http = reqwest::Client::new();
    // The other provider's metadata, taken for this provider's API: another resource.
    let body = http.get(other.resource_metadata_url()).send().await.unwrap().bytes().await.unwrap();
    let error = parse_resource_metadata(&body, Expected::Requested(&provider.api_url("x"))).unwrap_err().to_string();
    assert!(error.contains(&format!("describes `{}`", other.resource())), "{error}");
    // A challenge naming metadata on another origin (another port) is not followed unless allowed.
    let error = challenge_metadata_url(&provider.api_url("x"), &other.resource_metadata_url(), &Origins::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("another origin") && error.contains(other.url()), "{error}");
    let allowed = Origins::default().allow(other.url()).unwrap();
    assert!(challenge_metadata_url(&provider.api_url("x"), &other.resource_metadata_url(), &allowed).is_ok());
    // Without the protected-resource mode, there is no metadata to find.
    let plain = Provider::start(ProviderConfig::new()).unwrap();
    assert_eq!(http.get(plain.resource_metadata_url()).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_an_id_registers_itself_and_gets_tokens() {
    use auth_core::secret::ExposeSecret as _;
    use auth_core::sign_in::registration::{
        parse_registration, parse_registration_redacting, registration_request, ClientMetadata,
    };
    let provider = Provider::start(ProviderConfig::new().dynamic_registration(true)).unwrap();
    let http = reqwest::Client::new();
    let discovery =
        http.get(&discovery_urls(&provider.issuer()).unwrap()[0]).send().await.unwrap().bytes().await.unwrap();
    let server = parse_metadata(&provider.issuer(), &discovery, false).unwrap();
    let endpoint = server.registration_endpoint().expect("registration_endpoint").to_string();
    let register = |metadata: ClientMetadata| {
        let (http, endpoint) = (http.clone(), endpoint.clone());
        async move {
            let (status, _, body) = send(&http, &registration_request(&endpoint, &metadata, None).unwrap()).await;
            parse_registration(status, &body)
        }
    };
    // A service: the secret the provider issued gets it a token.
    let service = register(ClientMetadata::service("billing")).await.unwrap();
    let secret = service.client_secret().expect("a secret").expose_secret().to_owned();
    assert!(service.registration_access_token().is_some());
    let config =
        SourceConfig::builder(provider.token_url(), service.client_id()).client_secret(secret).build().unwrap();
    token(config).await;
    // A service with a key: only its public key was sent.
    let key = auth_core::keys::SigningKey::generate_es256().unwrap();
    let keyed = register(ClientMetadata::service_with_key("signer", &key).unwrap()).await.unwrap();
    assert!(keyed.client_secret().is_none());
    let config = SourceConfig::builder(provider.token_url(), keyed.client_id()).signing_key(key).build().unwrap();
    token(config).await;
    // A CLI: a public client with a loopback redirect; an http redirect elsewhere is refused.
    let cli = register(ClientMetadata::public_client("cli", "http://127.0.0.1:8765/callback")).await.unwrap();
    assert!(cli.client_secret().is_none());
    let error = register(ClientMetadata::public_client("cli", "http://cli.example.com/callback")).await.unwrap_err();
    assert!(error.to_string().contains("invalid_redirect_uri"), "{error}");
    assert_eq!(provider.stats().registrations, 3);

    // A server that wants an initial access token says so.
    let guarded =
        Provider::start(ProviderConfig::new().dynamic_registration(true).initial_access_token("iat-1")).unwrap();
    let request =
        registration_request(&format!("{}/oauth/register", guarded.url()), &ClientMetadata::service("x"), None)
            .unwrap();
    let answer = http.post(request.uri().to_string()).body(request.body().clone()).send().await.unwrap();
    let status = answer.status();
    let error = parse_registration_redacting(status, &answer.bytes().await.unwrap(), &["iat-1"]).unwrap_err();
    assert!(error.to_string().contains("initial access token"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_pushed_requests_gets_only_a_reference_in_the_url() {
    use auth_core::sign_in::authorize::AuthorizationRequest;
    let provider = Provider::start(ProviderConfig::new().public_client("cli").pushed_authorization(true)).unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let discovery =
        http.get(&discovery_urls(&provider.issuer()).unwrap()[0]).send().await.unwrap().bytes().await.unwrap();
    let server = parse_metadata(&provider.issuer(), &discovery, false).unwrap();
    assert!(server.requires_par());
    let par = server.par_endpoint().unwrap().to_string();
    let config = SourceConfig::builder(provider.token_url(), "cli")
        .client_auth(auth_core::ClientAuth::None)
        .scope("read")
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:8765/callback";
    let sign_in = AuthorizationRequest::builder(&config, provider.authorization_url(), redirect).build().unwrap();

    // Not pushed: refused.
    let refused = http.get(sign_in.url()).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("pushed authorization requests are required"));

    // Pushed: the URL names the client and the reference only.
    let (status, headers, body) = send(&http, &sign_in.par_request(&config, &par).unwrap()).await;
    let sign_in = sign_in.pushed(&config, status, &headers, &body).unwrap();
    let url = reqwest::Url::parse(sign_in.url()).unwrap();
    let names: Vec<String> = url.query_pairs().map(|(name, _)| name.into_owned()).collect();
    assert_eq!(names, ["client_id", "request_uri"], "{url}");
    // The provider signs its user in and redirects with a code for the pushed request.
    let back = http.get(sign_in.url()).send().await.unwrap();
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    let code = sign_in.handle_callback(location.split_once('?').unwrap().1).unwrap();
    let (status, _, _) = send(&http, &sign_in.exchange_request(&config, &code)).await;
    assert_eq!(status, 200);
    // The reference is used once.
    assert_eq!(http.get(sign_in.url()).send().await.unwrap().status(), 400);
    assert_eq!(provider.stats().pushed_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_wants_a_stronger_sign_in_says_which_and_the_next_sign_in_gets_it() {
    use auth_core::resource::step_up::{step_up, StepUp};
    use auth_core::sign_in::authorize::AuthorizationRequest;
    let provider = Provider::start(ProviderConfig::new().public_client("cli").api_acr("phrh")).unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let config =
        SourceConfig::builder(provider.token_url(), "cli").client_auth(auth_core::ClientAuth::None).build().unwrap();
    // A sign-in through the embedded provider, with the extra parameters given.
    let sign_in = |extra: Vec<(&'static str, String)>| {
        let (http, config, authorize) = (http.clone(), config.clone(), provider.authorization_url());
        async move {
            let mut builder = AuthorizationRequest::builder(&config, authorize, "http://127.0.0.1:8765/callback");
            for (name, value) in extra {
                builder = builder.param(name, value);
            }
            let request = builder.build().unwrap();
            let back = http.get(request.url()).send().await.unwrap();
            let location = back.headers()["location"].to_str().unwrap().to_owned();
            let code = request.handle_callback(location.split_once('?').unwrap().1).unwrap();
            let (status, _, body) = send(&http, &request.exchange_request(&config, &code)).await;
            assert_eq!(status, 200);
            let tokens: serde_json::Value = serde_json::from_slice(&body).unwrap();
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };
    let first = sign_in(Vec::new()).await;
    let answer = get(&http, &provider.api_url("payments"), Some(&first)).await;
    assert_eq!(answer.status(), 401);
    let asked = step_up(answer.status(), answer.headers(), &[]).expect("a step-up");
    let StepUp::Authentication { acr_values, max_age } = &asked else { panic!("{asked:?}") };
    assert_eq!((acr_values.as_slice(), *max_age), (["phrh".to_owned()].as_slice(), None));
    assert!(asked.to_string().contains("acr_values `phrh`"), "{asked}");
    // Signed in again at the level it named: the API answers.
    let stronger = sign_in(vec![("acr_values", acr_values.join(" "))]).await;
    assert_eq!(get(&http, &provider.api_url("payments"), Some(&stronger)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_asking_for_more_is_marked_for_the_caller_and_never_renewed() {
    use auth_core::resource::step_up::StepUp;
    use auth_reqwest::AuthClient;
    let provider =
        Provider::start(ProviderConfig::new().client("app", "app-secret").api_scopes("read", "write")).unwrap();
    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .scope("read")
        .api_origin(provider.url())
        .build()
        .unwrap();
    assert_eq!(client.get(provider.api_url("orders")).send().await.unwrap().status(), 200);
    // A write needs `write`: the 403 comes back as it came, marked with the union to ask for.
    let answer = client.post(provider.api_url("orders")).body("x").send().await.unwrap();
    assert_eq!(answer.status(), 403);
    let asked = answer.extensions().get::<StepUp>().expect("marked").clone();
    assert_eq!(asked, StepUp::Scopes { needed: vec!["write".into()], scopes: vec!["read".into(), "write".into()] });
    assert_eq!(client.token_source().unwrap().stats().fetches, 1, "no token was fetched for it");
    // An answer that asks for nothing is not marked.
    let fine = client.get(provider.api_url("orders")).send().await.unwrap();
    assert!(fine.extensions().get::<StepUp>().is_none());

    // A user's token below the level the API wants: the 401 is given back, marked, not renewed.
    let provider = Provider::start(ProviderConfig::new().public_client("cli").api_acr("phrh")).unwrap();
    let config = SourceConfig::builder(provider.token_url(), "cli")
        .client_auth(auth_core::ClientAuth::None)
        .grant(auth_core::SourceGrant::SignIn)
        .build()
        .unwrap();
    let source =
        auth_reqwest::TokenSource::new(config.clone(), auth_reqwest::ReqwestTransport::new().unwrap()).unwrap();
    let sign_in = auth_core::sign_in::authorize::AuthorizationRequest::builder(
        &config,
        provider.authorization_url(),
        "http://127.0.0.1:8765/callback",
    )
    .build()
    .unwrap();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = browser.get(sign_in.url()).send().await.unwrap();
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    let code = sign_in.handle_callback(location.split_once('?').unwrap().1).unwrap();
    auth_tower::sign_in::exchange_code(&source, &sign_in, &code).await.unwrap();
    let middleware =
        auth_reqwest::AuthMiddleware::new(source.clone(), auth_core::Credentials::bearer(provider.url()).unwrap());
    let client = auth_reqwest::reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
    let requests_before = provider.token_requests().len();
    let answer = client.get(provider.api_url("payments")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let asked = answer.extensions().get::<StepUp>().expect("marked");
    assert_eq!(asked, &StepUp::Authentication { acr_values: vec!["phrh".into()], max_age: None });
    assert!(answer.extensions().get::<auth_core::RejectedAfterRenewal>().is_none());
    assert_eq!(provider.token_requests().len(), requests_before, "no refresh for a stronger sign-in");
    assert_eq!(provider.stats().api_unauthorized, 1, "and no replay");

    // The blocking client marks the same answers.
    let blocking_provider =
        Provider::start(ProviderConfig::new().client("app", "app-secret").api_scopes("read", "write")).unwrap();
    let (token_url, api, origin) =
        (blocking_provider.token_url(), blocking_provider.api_url("orders"), blocking_provider.url().to_owned());
    let asked = tokio::task::spawn_blocking(move || {
        let config = SourceConfig::builder(token_url, "app").client_secret("app-secret").scope("read").build().unwrap();
        let source =
            auth_blocking::BlockingTokenSource::new(config, auth_blocking::UreqTransport::for_tokens()).unwrap();
        let credentials = auth_core::Credentials::bearer(&origin).unwrap();
        let client = auth_blocking::AuthorizedClient::new(source, credentials, auth_blocking::UreqTransport::for_api());
        let request = http::Request::post(api).body(b"x".to_vec()).unwrap();
        let answer = client.send(request).unwrap();
        assert_eq!(answer.status(), 403);
        answer.extensions().get::<StepUp>().cloned()
    })
    .await
    .unwrap();
    assert_eq!(asked.and_then(|a| a.scopes().map(<[String]>::to_vec)), Some(vec!["read".into(), "write".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_from_the_apis_url_registers_once_and_a_restart_reuses_everything() {
    use auth_reqwest::{AuthClient, ClientMetadata, ForResourceError, MemoryStore, StoreConfig};
    let provider = Provider::start(
        ProviderConfig::new()
            .client("app", "app-secret")
            .protected_resource(true)
            .api_scopes("read", "write")
            .dynamic_registration(true),
    )
    .unwrap();
    let store = MemoryStore::new();
    let build = || {
        AuthClient::builder()
            .for_resource(provider.resource())
            .scope("read")
            .register(ClientMetadata::service("billing"))
            .store(store.clone(), StoreConfig::default())
            .build()
    };
    let api = build().await.unwrap();
    let answer = api.get(provider.api_url("orders")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert!(body["client_id"].as_str().unwrap().starts_with("dyn-"), "{body}");
    let stats = provider.stats();
    assert_eq!((stats.registrations, stats.resource_metadata_requests), (1, 1));
    let asked = provider.token_requests();
    assert_eq!(asked.last().unwrap().resources, [provider.resource()], "every token for the resource");

    // A restart with the same store: neither discovery nor registration, and the token is shared.
    let again = build().await.unwrap();
    assert_eq!(again.get(provider.api_url("orders")).send().await.unwrap().status(), 200);
    let stats = provider.stats();
    assert_eq!((stats.registrations, stats.resource_metadata_requests), (1, 1));
    assert_eq!(provider.token_requests().len(), asked.len(), "the kept token");

    // A client id given: no registration; none given and none asked: an error that says what to do.
    let given = AuthClient::builder()
        .for_resource(provider.resource())
        .client_id("app")
        .client_secret("app-secret")
        .scope("read")
        .build()
        .await
        .unwrap();
    assert_eq!(given.get(provider.api_url("orders")).send().await.unwrap().status(), 200);
    assert_eq!(provider.stats().registrations, 1);
    let error = AuthClient::builder().for_resource(provider.resource()).build().await.unwrap_err();
    assert!(matches!(error, ForResourceError::Discovery(_)), "{error:?}");
    assert!(error.to_string().contains("give a client id, or let the client register"), "{error}");
    // An API that sends the client to another origin is refused unless trusted.
    let other = Provider::start(ProviderConfig::new().dynamic_registration(true)).unwrap();
    let sender =
        Provider::start(ProviderConfig::new().protected_resource(true).resource_authorization_server(other.issuer()))
            .unwrap();
    let for_sender = || AuthClient::builder().for_resource(sender.resource()).register(ClientMetadata::service("x"));
    let error = for_sender().build().await.unwrap_err().to_string();
    assert!(error.contains("another origin") && error.contains(other.url()), "{error}");
    // The credentials go to the API's origin only (another loopback port is another origin).
    let answer = again.get(other.api_url("x")).send().await.unwrap();
    assert_eq!((answer.status().as_u16(), again.withheld_requests()), (401, 1));
    let trusted = for_sender().trust_origin(other.url()).build().await.unwrap();
    assert!(trusted.token_source().is_some());
    assert_eq!(other.stats().registrations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_signs_its_user_in_from_the_apis_url_and_a_restart_needs_no_browser() {
    use auth_reqwest::{AuthClient, MemoryStore, StoreConfig};
    use auth_tower::sign_in::LoopbackOptions;
    let provider = Provider::start(
        ProviderConfig::new()
            .protected_resource(true)
            .api_scopes("read", "write")
            .dynamic_registration(true)
            .pushed_authorization(true),
    )
    .unwrap();
    let store = MemoryStore::new();
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let browser = provider.browser();
    let sign_in = || {
        let (opened, browser) = (opened.clone(), browser.clone());
        AuthClient::builder()
            .for_resource(provider.resource())
            .scope("read")
            .app_name("order-viewer")
            .store(store.clone(), StoreConfig::default())
            .sign_in(LoopbackOptions::default(), move |url: &str| {
                opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Pushed: the browser gets the client and a reference only.
                let query = reqwest::Url::parse(url).unwrap();
                let names: Vec<String> = query.query_pairs().map(|(name, _)| name.into_owned()).collect();
                assert_eq!(names, ["client_id", "request_uri"], "{url}");
                // The provider's scripted browser plays the user: alice is signed in and sent to the loopback.
                let (url, browser) = (url.to_owned(), browser.clone());
                tokio::spawn(async move { browser.open(&url).await.unwrap() });
            })
    };
    let api = sign_in().await.unwrap();
    let body: serde_json::Value = api.get(provider.api_url("orders")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["user"], "alice", "{body}");
    let stats = provider.stats();
    assert_eq!(
        (stats.registrations, stats.pushed_requests, opened.load(std::sync::atomic::Ordering::SeqCst)),
        (1, 1, 1)
    );
    let code = provider.token_requests().into_iter().find(|r| r.grant_type == "authorization_code").unwrap();
    assert_eq!(code.resources, [provider.resource()]);

    // A restart with the same store: the user's tokens, no browser, no registration.
    let again = sign_in().await.unwrap();
    assert_eq!(again.get(provider.api_url("orders")).send().await.unwrap().status(), 200);
    assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(provider.stats().registrations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_allowed_more_scopes_asks_for_the_union_once_and_never_loops() {
    use auth_reqwest::AuthClient;
    let provider =
        Provider::start(ProviderConfig::new().client("app", "app-secret").api_scopes("read", "write")).unwrap();
    let client = |allowed: &[&str]| {
        AuthClient::builder()
            .client_credentials(provider.token_url(), "app")
            .client_secret("app-secret")
            .scope("read")
            .step_up_scopes(allowed)
            .api_origin(provider.url())
            .build()
            .unwrap()
    };
    let post = |api: &AuthClient| api.post(provider.api_url("orders")).body("x").send();
    let allowed = client(&["write"]);
    // The first write asks: its 403 comes back marked, and the source asks for both from now on.
    let first = post(&allowed).await.unwrap();
    assert_eq!(first.status(), 403);
    assert!(first.extensions().get::<auth_core::resource::step_up::StepUp>().is_some());
    for _ in 0..3 {
        assert_eq!(post(&allowed).await.unwrap().status(), 200);
    }
    let scopes: Vec<Option<String>> = provider.token_requests().into_iter().map(|r| r.scope).collect();
    assert_eq!(scopes, [Some("read".to_owned()), Some("read write".to_owned())], "one more token, with the union");
    assert_eq!(allowed.get(provider.api_url("orders")).send().await.unwrap().status(), 200, "reads still work");

    // A client not allowed `write` never asks for it: every write is a 403, no token fetched for them.
    let fixed = client(&[]);
    for _ in 0..3 {
        assert_eq!(post(&fixed).await.unwrap().status(), 403);
    }
    assert_eq!(fixed.token_source().unwrap().stats().fetches, 1);
}
