//! The embedded provider answers like a real one (checked with a plain
//! HTTP client, not with this library).

use std::time::{Duration, Instant};

use auth_testkit::{Fault, Provider, ProviderConfig};
use base64::Engine as _;

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build())
}

fn post_form(url: &str, body: &str, basic: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = agent().post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(basic) = basic {
        request = request
            .header("authorization", &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(basic)));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

fn provider() -> Provider {
    Provider::start(ProviderConfig::new().client("my client", "p@ss word").public_client("public-app").api_key(
        "X-API-Key",
        Some("api_key"),
        "k1",
    ))
    .unwrap()
}

#[test]
fn every_client_authentication_method_is_accepted_and_recorded() {
    let provider = provider();
    let url = provider.token_url();
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my%20client:p%40ss%20word")).0, 200);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 200);
    assert_eq!(
        post_form(&url, "grant_type=client_credentials&client_id=my+client&client_secret=p%40ss+word", None).0,
        200
    );
    assert_eq!(post_form(&url, "grant_type=client_credentials&client_id=public-app&scope=read", None).0, 200);
    let mut response = agent()
        .post(&url)
        .header("content-type", "application/json")
        .send(r#"{"grant_type":"client_credentials","client_id":"my client","client_secret":"p@ss word","audience":"aud","resource":["r1","r2"]}"#)
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.body_mut().read_to_string();
    let methods: Vec<_> = provider.token_requests().iter().map(|r| r.client_auth.clone()).collect();
    assert_eq!(methods, ["basic", "basic-raw", "post", "none", "json"]);
    let last = provider.token_requests().pop().unwrap();
    assert_eq!(last.audience.as_deref(), Some("aud"));
    assert_eq!(last.resources, ["r1", "r2"]);
    let (status, body) = post_form(&url, "grant_type=client_credentials", Some("my client:wrong"));
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[test]
fn refresh_tokens_revocation_and_the_protected_api() {
    let provider = provider();
    let (_, issued) = post_form(
        &provider.token_url(),
        "grant_type=client_credentials&scope=offline_access",
        Some("my client:p@ss word"),
    );
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(issued["expires_in"], 3600);
    let call = |token: &str, key: &str| {
        agent()
            .get(provider.api_url("items"))
            .header("authorization", &format!("Bearer {token}"))
            .header("x-api-key", key)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call(&access, "k1"), 200);
    assert_eq!(call(&access, "wrong"), 403);
    assert_eq!(call("nonsense", "k1"), 401);
    let query_key = agent()
        .get(format!("{}?api_key=k1", provider.api_url("items")))
        .header("authorization", &format!("Bearer {access}"))
        .call()
        .unwrap();
    assert_eq!(query_key.status(), 200);
    let (status, renewed) = post_form(
        &provider.token_url(),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        Some("my client:p@ss word"),
    );
    assert_eq!(status, 200);
    assert!(renewed.get("refresh_token").is_none(), "refresh tokens are not rotated");
    assert_eq!(
        post_form(
            &provider.revocation_url(),
            &format!("token={access}&token_type_hint=access_token"),
            Some("my client:p@ss word")
        )
        .0,
        200
    );
    assert_eq!(call(&access, "k1"), 401, "a revoked token is refused");
    provider.revoke_all();
    assert_eq!(call(renewed["access_token"].as_str().unwrap(), "k1"), 401);
    let (status, body) = post_form(
        &provider.token_url(),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        Some("my client:p@ss word"),
    );
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[test]
fn tokens_expire() {
    let provider =
        Provider::start(ProviderConfig::new().client("c", "s").token_lifetime(Duration::from_secs(1))).unwrap();
    let (_, issued) = post_form(&provider.token_url(), "grant_type=client_credentials", Some("c:s"));
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let call = || {
        agent()
            .get(provider.api_url("x"))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(call(), 401);
}

#[test]
fn fault_switches() {
    let provider = provider();
    let url = provider.token_url();
    provider.fail_next_token_requests(2, Fault::ServerError);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 500);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 500);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 200);
    provider.fail_next_token_requests(1, Fault::TooManyRequests { retry_after: 7 });
    let response = agent().post(&url).send("grant_type=client_credentials").unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    provider.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(provider.stats().token_requests, 5);
}

#[test]
fn an_api_key_only_api() {
    let provider =
        Provider::start(ProviderConfig::new().api_key("X-API-Key", None, "k").api_requires_token(false)).unwrap();
    let status =
        |key: &str| agent().get(provider.api_url("x")).header("x-api-key", key).call().unwrap().status().as_u16();
    assert_eq!(status("k"), 200);
    assert_eq!(status("wrong"), 403);
}

#[test]
fn api_requests_record_which_credentials_came_and_never_their_values() {
    let provider = provider();
    let (_, body) = post_form(&provider.token_url(), "grant_type=client_credentials", Some("my client:p@ss word"));
    let token = body["access_token"].as_str().unwrap().to_owned();
    let call = |path: &str, authorization: Option<&str>, key_header: Option<&str>| {
        let mut request = agent().get(provider.api_url(path));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(key) = key_header {
            request = request.header("x-api-key", key);
        }
        request.call().unwrap().status().as_u16()
    };
    assert_eq!(call("orders", Some(&format!("Bearer {token}")), Some("k1")), 200);
    assert_eq!(call("orders", Some("Bearer expired-or-made-up"), Some("k1")), 401);
    assert_eq!(call("orders", None, None), 403);
    let status = agent().get(format!("{}?api_key=k1", provider.api_url("q"))).call().unwrap().status().as_u16();
    assert_eq!(status, 401, "the key in the query, no token");
    let seen: Vec<_> = provider
        .api_requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.authorization_scheme, r.api_key, r.status))
        .collect();
    let bearer = Some("Bearer".to_owned());
    assert_eq!(
        seen,
        [
            ("GET".to_owned(), "/api/orders".to_owned(), bearer.clone(), Some("header"), 200),
            ("GET".to_owned(), "/api/orders".to_owned(), bearer, Some("header"), 401),
            ("GET".to_owned(), "/api/orders".to_owned(), None, None, 403),
            ("GET".to_owned(), "/api/q".to_owned(), None, Some("query"), 401),
        ]
    );
    let shown = format!("{:?}", provider.api_requests());
    assert!(!shown.contains(&token) && !shown.contains("k1"), "{shown}");
}

/// A one-route app on a loopback port: `/cb` sets a session cookie and
/// redirects to `/done`, which answers with the query `/cb` got, the
/// cookie it was sent back and the Host it was asked for.
fn redirect_receiver() -> String {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut query = String::new();
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                lines.push(line.trim().to_owned());
            }
            let target = lines[0].split(' ').nth(1).unwrap().to_owned();
            let answer = if let Some(q) = target.strip_prefix("/cb?") {
                query = q.to_owned();
                "HTTP/1.1 303 See Other\r\nlocation: /done\r\nset-cookie: session=s1; HttpOnly\r\ncontent-length: 0\r\n\r\n"
                    .to_owned()
            } else {
                let cookie = lines.iter().find_map(|l| l.strip_prefix("cookie: ")).unwrap_or("none");
                let host = lines.iter().find_map(|l| l.strip_prefix("host: ")).unwrap_or("none");
                let body = format!("{query}|{cookie}|{host}");
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            };
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    url
}

fn authorization_url(provider: &Provider, redirect_uri: &str) -> String {
    format!(
        "{}?response_type=code&client_id=public-app&redirect_uri={redirect_uri}/cb&state=st-1\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        provider.authorization_url()
    )
}

#[test]
fn the_test_browser_signs_in_and_follows_the_app_with_its_cookies() {
    let provider = provider();
    let app = redirect_receiver();
    let page = provider.browser().open_blocking(&authorization_url(&provider, &app)).unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.url, format!("{app}/done"));
    let parts: Vec<&str> = page.body.split('|').collect();
    let [query, cookie, host] = parts[..] else { panic!("{}", page.body) };
    assert!(query.starts_with("code=") && query.contains("state=st-1"), "{query}");
    assert_eq!(cookie, "session=s1", "the cookie set by /cb went back to its origin");
    assert_eq!(format!("http://{host}"), app);
    assert_eq!(page.visited.len(), 3, "{:?}", page.visited);
    assert_eq!(provider.stats().authorizations, 1);

    // An app by the name `localhost`: the Host header names the URL's authority.
    let app = redirect_receiver().replace("127.0.0.1", "localhost");
    let page = provider.browser().open_blocking(&format!("{app}/cb?code=c")).unwrap();
    assert_eq!(page.body.rsplit('|').next().map(|host| format!("http://{host}")), Some(app));
}

#[test]
fn the_test_browser_shows_a_denied_sign_in_and_stays_on_this_machine() {
    let provider = Provider::start(ProviderConfig::new().public_client("public-app").deny_sign_in(true)).unwrap();
    let app = redirect_receiver();
    let page = provider.browser().open_blocking(&authorization_url(&provider, &app)).unwrap();
    assert!(page.body.starts_with("error=access_denied"), "{}", page.body);
    let error = provider.browser().open_blocking("http://example.com/").unwrap_err();
    assert!(error.to_string().contains("stays on loopback"), "{error}");
    // Nobody listens: the error names the redirect it could not follow.
    let error = provider.browser().open_blocking(&authorization_url(&provider, "http://127.0.0.1:9")).unwrap_err();
    assert!(error.visited().last().unwrap().starts_with("http://127.0.0.1:9/cb?error=access_denied"), "{error}");
    // Stopped with the provider: an error, not a hang.
    let browser = provider.browser();
    drop(provider);
    assert!(browser.open_blocking("http://127.0.0.1:9/").unwrap_err().to_string().contains("stopped"));
}
