//! Against an authorization server written by others: panva's oidc-provider
//! (OpenID-certified, Node.js) with an RFC 8693 token exchange grant
//! registered as its documentation describes (tests/interop/oidc-provider).
//! The test starts it on a free loopback port. `.ci/run` installs it (`npm
//! ci`) and sets AUTH_REQUIRE_INTEROP=1; elsewhere, without Node.js or the
//! installed package, the test says so and passes.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::exchange::{token_types, SuppliedToken, TokenExchange};
use auth_core::keys::SigningKey;
use auth_core::secret::ExposeSecret as _;
use auth_core::sign_in::discovery::{discovery_urls, parse_metadata};
use auth_core::SourceConfig;
use auth_reqwest::{reqwest, ReqwestTransport, TokenSource};

const WORKLOAD_ISSUER: &str = "https://kubernetes.default.svc";
const SECRET: &str = "rust-sts-secret-0123456789";

/// The oidc-provider server, stopped when dropped.
struct Server {
    child: Child,
    issuer: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server trusting `key` for workload tokens, or says why it
/// cannot (`Err`), which fails the test only where interop is required.
fn start(key: &SigningKey) -> Result<Server, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/oidc-provider");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        return Err(format!("oidc-provider is not installed (run `npm ci --prefix {}`)", dir.display()));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?.local_addr().unwrap().port();
    let jwk = serde_json::Value::Object(key.public_jwk().unwrap()).to_string();
    let mut child = Command::new("node")
        .arg("server.mjs")
        .arg(port.to_string())
        .arg(WORKLOAD_ISSUER)
        .arg(jwk)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("node cannot be started: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let (lines, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    match ready.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.starts_with("listening ") => {
            Ok(Server { child, issuer: line.trim_start_matches("listening ").to_owned() })
        }
        other => {
            let _ = child.kill();
            Err(format!("oidc-provider did not start: {other:?}"))
        }
    }
}

/// A workload token for `server`, signed by `key`.
fn workload_token(key: &SigningKey, server: &Server, subject: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "iss": WORKLOAD_ISSUER, "sub": subject, "aud": format!("{}/token", server.issuer),
        "iat": now, "exp": now + 600,
    });
    key.sign_jwt("JWT", &claims).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_exchange_with_oidc_provider() {
    let key = SigningKey::generate_es256().unwrap();
    let server = match start(&key) {
        Ok(server) => server,
        Err(why) if std::env::var_os("AUTH_REQUIRE_INTEROP").is_some() => panic!("{why}"),
        Err(why) => {
            eprintln!("skipped (AUTH_REQUIRE_INTEROP unset): {why}");
            return;
        }
    };
    // Its endpoints from its own discovery document.
    let http = reqwest::Client::new();
    let url = &discovery_urls(&server.issuer).unwrap()[1];
    let document = http.get(url).send().await.unwrap().bytes().await.unwrap();
    let metadata = parse_metadata(&server.issuer, &document, false).unwrap();
    let token_url = metadata.token_endpoint().to_string();

    // The workload's token exchanged for one of its access tokens.
    let subject = workload_token(&key, &server, "system:serviceaccount:payments:worker");
    let exchange = TokenExchange::new(
        SuppliedToken::from_fn("the test's workload", move |_| Ok(subject.clone())),
        token_types::JWT,
    )
    .requested_token_type(token_types::ACCESS_TOKEN);
    let config = SourceConfig::builder(&token_url, "rust-sts")
        .client_secret(SECRET)
        .token_exchange(exchange)
        .scope("read")
        .build()
        .unwrap();
    let source = TokenSource::new(config, ReqwestTransport::new().unwrap()).unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(token.scope(), Some("read"));

    // The server knows it: introspection says whose it is.
    let introspection = http
        .post(format!("{}/token/introspection", server.issuer))
        .basic_auth("rust-sts", Some(SECRET))
        .form(&[("token", token.value().expose_secret())])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["client_id"], "rust-sts", "{introspection}");

    // A subject signed by another key: the server's refusal, with its code (oidc-provider keeps the
    // reason out of its error_description).
    let stranger = SigningKey::generate_es256().unwrap();
    let forged = workload_token(&stranger, &server, "system:serviceaccount:payments:worker");
    let forged =
        TokenExchange::new(SuppliedToken::from_fn("a forged token", move |_| Ok(forged.clone())), token_types::JWT);
    let config =
        SourceConfig::builder(&token_url, "rust-sts").client_secret(SECRET).token_exchange(forged).build().unwrap();
    let error = TokenSource::new(config, ReqwestTransport::new().unwrap()).unwrap().token().await.unwrap_err();
    assert_eq!(error.code().map(ToString::to_string).as_deref(), Some("invalid_grant"), "{error}");
    assert!(error.to_string().contains("grant request is invalid"), "{error}");
}
