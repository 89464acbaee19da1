//! End-to-end: the built `authc` binary against the embedded provider.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use auth_testkit::{Provider, ProviderConfig};

const SECRET: &str = "cli-secret-Zx9";
const API_KEY: &str = "cli-api-key-Q7";
const BASIC_PASSWORD: &str = "legacy-pw-K3";

struct Env {
    dir: tempfile::TempDir,
    provider: Provider,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Waits for `child` and keeps what it printed.
fn collect(child: std::process::Child) -> Run {
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

impl Env {
    fn new() -> Self {
        Self::with(ProviderConfig::new())
    }

    /// The usual clients, API key and Basic login, added to `config`.
    fn with(config: ProviderConfig) -> Self {
        let provider = Provider::start(
            config
                .client("cli-client", SECRET)
                .client("odd client", "p@ss word+/")
                .public_client("public-cli")
                .api_key("X-API-Key", Some("api_key"), API_KEY)
                .basic_login("legacy-user", BASIC_PASSWORD),
        )
        .unwrap();
        Self { dir: tempfile::tempdir().unwrap(), provider }
    }

    /// `config` alone: no API key, no Basic login (an API whose URL is all
    /// a user knows).
    fn bare(config: ProviderConfig) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), provider: Provider::start(config).unwrap() }
    }

    fn cache_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("cache")
    }

    /// The token records in the cache (the lock files beside them aside).
    fn records(&self) -> Vec<std::path::PathBuf> {
        self.store_files().into_iter().filter(|p| !Self::is_sign_in_index(p)).collect()
    }

    /// The token store's files: token records, and the list of sign-ins
    /// `authc login` keeps beside them.
    fn store_files(&self) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.cache_dir()) else { return Vec::new() };
        entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "record")).collect()
    }

    fn is_sign_in_index(path: &std::path::Path) -> bool {
        let envelope: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        envelope["fingerprint"] == "authc-sign-in-index-v1"
    }

    /// The access token the (single) cached record holds.
    fn cached_access_token(&self) -> String {
        let records = self.records();
        assert_eq!(records.len(), 1, "{records:?}");
        let envelope: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
        let record: serde_json::Value = serde_json::from_str(envelope["payload"].as_str().unwrap()).unwrap();
        record["access_token"].as_str().unwrap().to_owned()
    }

    fn command(&self, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_authc"));
        command
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"))
            .env("AUTHC_CACHE_DIR", self.cache_dir())
            .envs(envs.iter().copied());
        command
    }

    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        self.run_with_stdin(args, envs, None)
    }

    /// `run` with arguments built as strings (see [`with_options`]).
    fn run_owned(&self, args: &[String]) -> Run {
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    }

    fn run_with_stdin(&self, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut child = self
            .command(args, envs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        collect(child)
    }

    /// The usual OAuth flags plus the client secret in the environment.
    fn oauth(&self, args: &[&str]) -> Run {
        let token_url = self.provider.token_url();
        let mut all = vec![args[0], "--token-url", &token_url, "--client-id", "cli-client"];
        all.extend_from_slice(&args[1..]);
        self.run(&all, &[("AUTHC_CLIENT_SECRET", SECRET)])
    }
}

#[test]
fn token_with_each_client_authentication_method() {
    let env = Env::new();
    let token_url = env.provider.token_url();
    for (method, client, secret, recorded) in [
        ("basic", "odd client", Some("p@ss word+/"), "basic"),
        ("basic-raw", "odd client", Some("p@ss word+/"), "basic-raw"),
        ("post", "cli-client", Some(SECRET), "post"),
        ("json", "cli-client", Some(SECRET), "json"),
        ("none", "public-cli", None, "none"),
    ] {
        let envs: Vec<(&str, &str)> = secret.map(|s| ("AUTHC_CLIENT_SECRET", s)).into_iter().collect();
        let run = env.run(
            &["token", "--no-cache", "--token-url", &token_url, "--client-id", client, "--auth-method", method],
            &envs,
        );
        assert_eq!(run.code, 0, "{method}: {}", run.stderr);
        assert!(
            run.stdout.starts_with("at_") && run.stdout.ends_with('\n') && run.stdout.lines().count() == 1,
            "{method}: {:?}",
            run.stdout
        );
        assert_eq!(env.provider.token_requests().last().unwrap().client_auth, recorded);
    }
}

#[test]
fn scope_audience_resource_and_parameters_reach_the_provider() {
    let env = Env::new();
    let run = env.oauth(&[
        "token",
        "--no-cache",
        "--scope",
        "read",
        "--scope",
        "write",
        "--audience",
        "https://api.example/",
        "--resource",
        "https://r1.example",
        "--resource",
        "https://r2.example",
        "--param",
        "tenant=acme",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = env.provider.token_requests().pop().unwrap();
    assert_eq!(request.scope.as_deref(), Some("read write"));
    assert_eq!(request.audience.as_deref(), Some("https://api.example/"));
    assert_eq!(request.resources, ["https://r1.example", "https://r2.example"]);
    assert!(request.params.contains(&("tenant".to_owned(), "acme".to_owned())));
}

#[test]
fn token_json_output() {
    let env = Env::new();
    let run = env.oauth(&["token", "--json", "--scope", "read"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(value["access_token"].as_str().unwrap().starts_with("at_"));
    assert_eq!(value["token_type"], "Bearer");
    assert_eq!(value["scope"], "read");
    let expires_in = value["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
}

#[test]
fn the_disk_cache_spares_the_token_endpoint() {
    let env = Env::new();
    let first = env.oauth(&["token"]);
    let second = env.oauth(&["token"]);
    assert_eq!((first.code, second.code), (0, 0), "{} {}", first.stderr, second.stderr);
    assert_eq!(first.stdout, second.stdout, "the second run reuses the cached token");
    assert_eq!(env.provider.stats().token_requests, 1);
    let files = env.records();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!text.contains(SECRET), "the client secret is never cached");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // --no-cache bypasses it.
    assert_eq!(env.oauth(&["token", "--no-cache"]).code, 0);
    assert_eq!(env.provider.stats().token_requests, 2);
    // A corrupt file is ignored and replaced.
    std::fs::write(&files[0], "{ not json").unwrap();
    let third = env.oauth(&["token"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(env.provider.stats().token_requests, 3);
    assert_eq!(env.cached_access_token(), third.stdout.trim());
    assert_eq!(env.oauth(&["token"]).stdout, third.stdout);
    assert_eq!(env.provider.stats().token_requests, 3);
}

#[test]
fn request_with_bearer_and_api_key_header_query_and_basic() {
    let env = Env::new();
    let url = env.provider.api_url("orders");
    let header = env.run(
        &[
            "request",
            "--token-url",
            &env.provider.token_url(),
            "--client-id",
            "cli-client",
            "--api-key-header",
            "X-API-Key",
            &url,
        ],
        &[("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY)],
    );
    assert_eq!(header.code, 0, "{}", header.stderr);
    let body: serde_json::Value = serde_json::from_str(&header.stdout).unwrap();
    assert_eq!(
        (body["ok"].as_bool(), body["client_id"].as_str(), body["method"].as_str()),
        (Some(true), Some("cli-client"), Some("GET"))
    );

    let query = env.run(
        &[
            "request",
            "--token-url",
            &env.provider.token_url(),
            "--client-id",
            "cli-client",
            "--api-key-query",
            "api_key",
            "-X",
            "PUT",
            "-d",
            "{}",
            &url,
        ],
        &[("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY)],
    );
    assert_eq!(query.code, 0, "{}", query.stderr);
    assert!(query.stdout.contains(r#""method":"PUT""#), "{}", query.stdout);

    let basic = env.run(
        &["request", "--basic-user", "legacy-user", &env.provider.legacy_url("accounts")],
        &[("AUTHC_BASIC_PASSWORD", BASIC_PASSWORD)],
    );
    assert_eq!(basic.code, 0, "{}", basic.stderr);
    assert!(basic.stdout.contains("legacy-user"));
}

#[test]
fn a_revoked_cached_token_is_renewed_and_the_request_replayed() {
    let env = Env::new();
    assert_eq!(env.oauth(&["token"]).code, 0);
    env.provider.revoke_all();
    let url = env.provider.api_url("orders");
    let run = env.run(
        &[
            "request",
            "--token-url",
            &env.provider.token_url(),
            "--client-id",
            "cli-client",
            "--api-key-header",
            "X-API-Key",
            &url,
        ],
        &[("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stats = env.provider.stats();
    assert_eq!((stats.api_unauthorized, stats.tokens_issued, stats.api_calls), (1, 2, 2), "{stats:?}");
}

#[test]
fn revoke_the_cached_token_or_one_from_stdin() {
    let env = Env::new();
    let revocation_url = env.provider.revocation_url();
    assert_eq!(env.oauth(&["token"]).code, 0);
    let run = env.oauth(&["revoke", "--revocation-url", &revocation_url]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.provider.stats().revocations, 1);
    assert_eq!(env.records().len(), 0, "removed from the cache");
    // The next token is a new one.
    assert_eq!(env.oauth(&["token"]).code, 0);
    assert_eq!(env.provider.stats().tokens_issued, 2);

    let token = env.oauth(&["token", "--no-cache"]).stdout;
    let token_url = env.provider.token_url();
    let run = env.run_with_stdin(
        &[
            "revoke",
            "--token-url",
            &token_url,
            "--client-id",
            "cli-client",
            "--revocation-url",
            &revocation_url,
            "--token",
            "-",
        ],
        &[("AUTHC_CLIENT_SECRET", SECRET)],
        Some(&token),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.provider.stats().revocations, 2);
    let refused = env.oauth(&["revoke", "--revocation-url", &revocation_url, "--token", "literal-token"]);
    assert_eq!(refused.code, 2, "tokens are never taken from the command line");
}

#[test]
fn every_exit_code() {
    let env = Env::new();
    assert_eq!(env.oauth(&["token"]).code, 0);
    // 2: usage and configuration errors.
    let missing = env.run(&["token"], &[]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("--token-url"), "{}", missing.stderr);
    assert_eq!(env.oauth(&["token", "--param", "no-equals-sign"]).code, 2);
    assert_eq!(env.run(&["token", "--bogus-flag"], &[]).code, 2);
    // A method whose credential is missing names the flag that gives it.
    let url = env.provider.token_url();
    for (method, flag) in [
        ("basic", "AUTHC_CLIENT_SECRET or --client-secret-file"),
        ("private-key-jwt", "--private-key-file FILE"),
        ("tls-client-auth", "--client-cert FILE"),
    ] {
        let lacking =
            env.run(&["token", "--no-cache", "--token-url", &url, "--client-id", "c", "--auth-method", method], &[]);
        assert_eq!(lacking.code, 2, "{}", lacking.stderr);
        assert!(
            lacking.stderr.contains(&format!("`{method}` needs")) && lacking.stderr.contains(flag),
            "{}",
            lacking.stderr
        );
    }
    let insecure = env.run(
        &["token", "--token-url", "http://auth.example.com/token", "--client-id", "c"],
        &[("AUTHC_CLIENT_SECRET", "s")],
    );
    assert_eq!(insecure.code, 2);
    assert!(
        insecure.stderr.contains("allow_insecure_http") || insecure.stderr.contains("https"),
        "{}",
        insecure.stderr
    );
    // 3: the provider refused, with its code and description.
    let refused = env.run(
        &["token", "--no-cache", "--token-url", &env.provider.token_url(), "--client-id", "cli-client"],
        &[("AUTHC_CLIENT_SECRET", "wrong-secret")],
    );
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("invalid_client") && refused.stderr.contains("Client authentication failed"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "one line: {}", refused.stderr);
    // 4: network failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = env
        .run(&["token", "--no-cache", "--token-url", &dead_url, "--client-id", "c"], &[("AUTHC_CLIENT_SECRET", "s")]);
    assert_eq!(unreachable.code, 4, "{}", unreachable.stderr);
    // 5: the API answered an error status.
    let not_found = env.oauth(&["request", &format!("{}/nowhere", env.provider.url())]);
    assert_eq!(not_found.code, 5, "{}", not_found.stderr);
    assert!(not_found.stderr.contains("404"), "{}", not_found.stderr);
    let forbidden = env.oauth(&["request", &env.provider.api_url("orders")]);
    assert_eq!(forbidden.code, 5, "no API key: 403; {}", forbidden.stderr);
}

#[test]
fn no_secret_reaches_stderr_even_with_trace_logging() {
    let env = Env::new();
    let token_url = env.provider.token_url();
    let secrets = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY), ("RUST_LOG", "trace")];
    let token =
        env.run(&["token", "--token-url", &token_url, "--client-id", "cli-client", "--auth-method", "post"], &secrets);
    assert_eq!(token.code, 0, "{}", token.stderr);
    let access_token = token.stdout.trim().to_owned();
    let url = env.provider.api_url("orders");
    env.provider.revoke_all();
    let request = env.run(
        &[
            "request",
            "--token-url",
            &token_url,
            "--client-id",
            "cli-client",
            "--auth-method",
            "post",
            "--api-key-header",
            "X-API-Key",
            &url,
        ],
        &secrets,
    );
    assert_eq!(request.code, 0, "{}", request.stderr);
    let refused = env.run(
        &["token", "--no-cache", "--token-url", &token_url, "--client-id", "cli-client"],
        &[("AUTHC_CLIENT_SECRET", "wrong-Secret-55"), ("RUST_LOG", "trace")],
    );
    assert_eq!(refused.code, 3);
    let renewed_token = env.cached_access_token();
    assert!(token.stderr.contains("requesting an access token"), "trace logging is on: {}", token.stderr);
    for run in [&token, &request, &refused] {
        for secret in [SECRET, API_KEY, "wrong-Secret-55", access_token.as_str(), renewed_token.as_str()] {
            assert!(!run.stderr.contains(secret), "`{secret}` leaked into stderr:\n{}", run.stderr);
        }
    }
    for secret in [SECRET, API_KEY, access_token.as_str(), renewed_token.as_str()] {
        assert!(!request.stdout.contains(secret), "`{secret}` leaked into stdout");
    }
}

#[test]
fn profiles_from_a_config_file() {
    let env = Env::new();
    let secret_file = env.dir.path().join("secret.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let config = env.dir.path().join("authc.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.sandbox]\ntoken_url = \"{}\"\nclient_id = \"cli-client\"\nclient_secret_file = \"{}\"\nauth_method = \"post\"\nscope = [\"read\"]\n",
            env.provider.token_url(),
            secret_file.display()
        ),
    )
    .unwrap();
    let config_path = config.to_str().unwrap();
    let run = env.run(&["token", "--config", config_path, "--profile", "sandbox"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = env.provider.token_requests().pop().unwrap();
    assert_eq!((request.client_auth.as_str(), request.scope.as_deref()), ("post", Some("read")));
    // The profile can come from the environment too.
    assert_eq!(env.run(&["token", "--profile", "sandbox"], &[("AUTHC_CONFIG", config_path)]).code, 0);
    assert_eq!(env.run(&["token", "--config", config_path, "--profile", "missing"], &[]).code, 2);
    std::fs::write(&config, "[profiles.bad]\nclient_secret = \"inline\"\n").unwrap();
    let bad = env.run(&["token", "--config", config_path, "--profile", "bad"], &[]);
    assert_eq!(bad.code, 2);
    assert!(!bad.stderr.contains("inline"), "{}", bad.stderr);
    // --client-secret-file on the command line.
    let run = env.run(
        &[
            "token",
            "--no-cache",
            "--token-url",
            &env.provider.token_url(),
            "--client-id",
            "cli-client",
            "--client-secret-file",
            secret_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn the_demo_runs_and_ends_well() {
    let env = Env::new();
    let run = env.run(&["demo"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for expected in [
        "waited for the first token",
        "arrived in the background",
        "replayed the call",
        "outage",
        "healed",
        "summary",
        "(0 failed)",
    ] {
        assert!(run.stdout.contains(expected), "missing `{expected}` in:\n{}", run.stdout);
    }
}

impl Env {
    /// Runs and waits at most `limit`: a hang is a failure, not a stuck test.
    fn run_bounded(&self, args: &[&str], envs: &[(&str, &str)], limit: std::time::Duration) -> Run {
        let mut child = self
            .command(args, envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                child.kill().unwrap();
                panic!("authc {args:?} still ran after {limit:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        collect(child)
    }

    /// Runs `n` copies of the command at once and waits for all.
    fn run_parallel(&self, n: usize, args: &[&str], envs: &[(&str, &str)]) -> Vec<Run> {
        let children: Vec<std::process::Child> = (0..n)
            .map(|_| self.command(args, envs).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
            .collect();
        children.into_iter().map(collect).collect()
    }

    fn oauth_bounded(&self, args: &[&str]) -> Run {
        let token_url = self.provider.token_url();
        let mut all = vec![args[0], "--token-url", &token_url, "--client-id", "cli-client"];
        all.extend_from_slice(&args[1..]);
        self.run_bounded(&all, &[("AUTHC_CLIENT_SECRET", SECRET)], std::time::Duration::from_secs(30))
    }
}

#[cfg(unix)]
#[test]
fn a_shared_cache_directory_is_not_used_and_a_fifo_does_not_hang() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    std::fs::create_dir_all(env.cache_dir()).unwrap();
    std::fs::set_permissions(env.cache_dir(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let shared = env.oauth_bounded(&["token"]);
    assert_eq!(shared.code, 0, "{}", shared.stderr);
    assert!(
        shared.stderr.contains("not using the token cache") && shared.stderr.contains("writable"),
        "{}",
        shared.stderr
    );
    assert_eq!(std::fs::read_dir(env.cache_dir()).unwrap().count(), 0, "nothing written to a shared directory");

    // A FIFO planted at the cache path of this configuration.
    std::fs::set_permissions(env.cache_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(env.oauth_bounded(&["token"]).code, 0);
    let entry = env.records().pop().unwrap();
    std::fs::remove_file(&entry).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&entry).status().unwrap().success());
    let fifo = env.oauth_bounded(&["token"]);
    assert_eq!(fifo.code, 0, "{}", fifo.stderr);
    assert!(!fifo.stdout.trim().is_empty());
}

#[test]
fn a_failed_cache_write_is_said_once_without_rust_log() {
    let env = Env::new();
    assert_eq!(env.oauth_bounded(&["token"]).code, 0);
    // A directory where this configuration's record goes: the write fails, even for root.
    let entry = env.records().pop().unwrap();
    std::fs::remove_file(&entry).unwrap();
    std::fs::create_dir_all(entry.join("occupied")).unwrap();
    let run = env.oauth_bounded(&["token"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.trim().is_empty());
    assert_eq!(run.stderr.matches("could not use the token cache").count(), 1, "{}", run.stderr);
}

#[test]
fn a_one_shot_429_shows_retry_after_and_promises_no_retry() {
    let env = Env::new();
    env.provider.fail_next_token_requests(1, auth_testkit::Fault::TooManyRequests { retry_after: 30 });
    let run = env.oauth_bounded(&["token", "--no-cache"]);
    assert_eq!(run.code, 3, "an RFC 6749 error body: {}", run.stderr);
    assert!(run.stderr.contains("Retry-After: 30 s"), "{}", run.stderr);
    assert!(!run.stderr.contains("will be retried") && !run.stderr.contains("retries by itself"), "{}", run.stderr);
}

#[test]
fn an_api_that_stays_silent_times_out_and_says_so() {
    let env = Env::new();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slow", silent.local_addr().unwrap());
    let run = env.run_bounded(
        &["request", "--timeout", "1", "--api-key-header", "X-API-Key", &url],
        &[("AUTHC_API_KEY", API_KEY)],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    drop(silent);
}

#[test]
fn request_streams_the_answer_as_it_arrives() {
    use std::io::{BufRead, BufReader, Read};
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/stream", listener.local_addr().unwrap());
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).unwrap();
        let first = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n6\r\nfirst\n\r\n";
        stream.write_all(first.as_bytes()).unwrap();
        stream.flush().unwrap();
        // The rest comes only once the client has shown the first part.
        let streamed = seen_rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
        stream.write_all(b"5\r\nlast\n\r\n0\r\n\r\n").unwrap();
        streamed
    });
    let mut child = env
        .command(&["request", "--api-key-header", "X-API-Key", &url], &[("AUTHC_API_KEY", API_KEY)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    seen_tx.send(()).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "last");
    assert!(child.wait().unwrap().success());
    assert!(server.join().unwrap(), "the first part reached stdout only after the whole answer");
}

#[test]
fn a_revocation_error_never_quotes_the_token_it_revokes() {
    let env = Env::new();
    let mut endpoint = mockito::Server::new();
    endpoint
        .mock("POST", "/revoke")
        .with_status(400)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error":"invalid_request","error_description":"token RT-8f2a9c1d77 is not known"}"#)
        .create();
    let token_url = env.provider.token_url();
    let revoke_url = format!("{}/revoke", endpoint.url());
    let run = env.run_with_stdin(
        &[
            "revoke",
            "--token-url",
            &token_url,
            "--client-id",
            "cli-client",
            "--revocation-url",
            &revoke_url,
            "--token",
            "-",
        ],
        &[("AUTHC_CLIENT_SECRET", SECRET)],
        Some("RT-8f2a9c1d77\n"),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(!run.stderr.contains("8f2a9c1d"), "{}", run.stderr);
    assert!(run.stderr.contains("could not revoke the token: revocation endpoint refused"), "{}", run.stderr);
}

#[test]
fn twenty_parallel_runs_on_a_cold_store_make_one_grant() {
    let env = Env::new();
    env.provider.set_latency(std::time::Duration::from_millis(300));
    let token_url = env.provider.token_url();
    let children: Vec<std::process::Child> = (0..20)
        .map(|_| {
            env.command(
                &["token", "--token-url", &token_url, "--client-id", "cli-client"],
                &[("AUTHC_CLIENT_SECRET", SECRET)],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children.into_iter().map(collect).collect();
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, runs[0].stdout, "every run printed the same token");
    }
    assert_eq!(env.provider.stats().token_requests, 1, "one grant for twenty processes");
}

#[test]
fn the_store_option() {
    let env = Env::new();
    let elsewhere = env.dir.path().join("elsewhere");
    let store = format!("file:{}", elsewhere.display());
    assert_eq!(env.oauth(&["token", "--store", &store]).code, 0);
    assert_eq!(env.oauth(&["token", "--store", &store]).code, 0);
    assert_eq!(env.provider.stats().token_requests, 1);
    assert!(std::fs::read_dir(&elsewhere).unwrap().count() > 0);
    assert!(env.records().is_empty(), "the default directory is untouched");
    assert_eq!(env.oauth(&["token", "--store", "none"]).code, 0);
    assert_eq!(env.provider.stats().token_requests, 2);
    let bad = env.oauth(&["token", "--store", "ftp://x"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("file, file:DIR, redis://HOST:PORT/DB, redis+cluster://"), "{}", bad.stderr);
}

#[test]
fn twenty_parallel_runs_on_redis_make_one_grant_and_a_key_file_encrypts() {
    let Some(redis) = auth_testkit::redis::RedisServer::start() else { return };
    let env = Env::new();
    env.provider.set_latency(std::time::Duration::from_millis(300));
    let token_url = env.provider.token_url();
    let key_file = env.dir.path().join("store.key");
    std::fs::write(&key_file, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n").unwrap();
    let key_file = key_file.display().to_string();
    let url = redis.url();
    let envs =
        [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str()), ("AUTHC_STORE_KEY_FILE", key_file.as_str())];
    let runs = env.run_parallel(20, &["token", "--token-url", &token_url, "--client-id", "cli-client"], &envs);
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, runs[0].stdout);
        assert!(!run.stderr.contains("00112233"), "{}", run.stderr);
    }
    assert_eq!(env.provider.stats().token_requests, 1, "one grant for twenty processes on Redis");
    // Without the key the encrypted record is not used (tests/redis_store.rs
    // checks the raw record holds no token).
    let without_key = env.run(
        &["token", "--token-url", &token_url, "--client-id", "cli-client"],
        &[("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str())],
    );
    assert_eq!(without_key.code, 0, "{}", without_key.stderr);
    assert_ne!(without_key.stdout, runs[0].stdout, "an encrypted record is unusable without the key");
    let bad_url = env.oauth(&["token", "--store", "rediss//user:pa55word@host"]);
    assert_eq!(bad_url.code, 2);
    assert!(!bad_url.stderr.contains("pa55word"), "{}", bad_url.stderr);
}

#[test]
fn a_spent_fetch_budget_is_shared_by_runs_and_says_when() {
    let env = Env::new();
    env.provider.set_token_lifetime(std::time::Duration::from_secs(2));
    let first = env.oauth(&["token", "--max-fetches-per-day", "1"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let cached = env.oauth(&["token", "--max-fetches-per-day", "1"]);
    assert_eq!((cached.code, &cached.stdout), (0, &first.stdout), "the cached token is still served");
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let spent = env.oauth(&["token", "--max-fetches-per-day", "1"]);
    assert_eq!(spent.code, 3, "{}", spent.stderr);
    assert!(
        spent.stderr.contains("the token budget is spent: 1 token requests in the last 24 hours"),
        "{}",
        spent.stderr
    );
    assert!(spent.stderr.contains("the next is allowed in 23h"), "{}", spent.stderr);
    assert_eq!(env.provider.stats().token_requests, 1, "no request past the budget");
    let bad = env.oauth(&["token", "--max-fetches-per-day", "0"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("max_fetches_per_day"), "{}", bad.stderr);
}

#[test]
fn twenty_parallel_runs_on_a_redis_cluster_make_one_grant() {
    let Some(cluster) = auth_testkit::redis::RedisCluster::start() else { return };
    let env = Env::new();
    env.provider.set_latency(std::time::Duration::from_millis(300));
    let token_url = env.provider.token_url();
    let url = cluster.url();
    let envs = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str())];
    let runs = env.run_parallel(20, &["token", "--token-url", &token_url, "--client-id", "cli-client"], &envs);
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, runs[0].stdout);
        assert!(!run.stderr.contains("could not use the token cache"), "{}", run.stderr);
    }
    assert_eq!(env.provider.stats().token_requests, 1, "one grant for twenty processes on a cluster");
}

#[test]
fn rediss_with_a_private_ca_shares_one_grant() {
    let Some(redis) = auth_testkit::redis::RedisServer::start_tls() else { return };
    let env = Env::new();
    env.provider.set_latency(std::time::Duration::from_millis(300));
    let token_url = env.provider.token_url();
    let ca_file = env.dir.path().join("redis-ca.pem");
    std::fs::write(&ca_file, redis.ca_pem().unwrap()).unwrap();
    let (url, ca_file) = (redis.tls_url(), ca_file.display().to_string());
    let envs =
        [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str()), ("AUTHC_STORE_CA_FILE", ca_file.as_str())];
    let runs = env.run_parallel(5, &["token", "--token-url", &token_url, "--client-id", "cli-client"], &envs);
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, runs[0].stdout);
        assert!(run.stderr.is_empty(), "no store error: {}", run.stderr);
    }
    assert_eq!(env.provider.stats().token_requests, 1, "one grant for five processes over TLS");
    // Without the CA the certificate is not trusted: said once, the run still succeeds.
    let untrusted = env.run(
        &["token", "--token-url", &token_url, "--client-id", "cli-client"],
        &[("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str())],
    );
    assert_eq!(untrusted.code, 0, "{}", untrusted.stderr);
    assert!(untrusted.stderr.contains("could not use the token cache"), "{}", untrusted.stderr);
}

#[test]
fn an_api_that_rejects_even_a_fresh_token_exits_5_with_what_to_check() {
    let env = Env::new();
    let mut api = mockito::Server::new();
    let rejecting = api.mock("GET", "/orders").with_status(401).expect(2).create();
    let run = env.oauth(&["request", &format!("{}/orders", api.url())]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("401") && run.stderr.contains("audience, scope"), "{}", run.stderr);
    rejecting.assert();
    assert_eq!(env.provider.stats().tokens_issued, 2, "one token, one renewal after the 401, no loop");
}

/// Writes `text` as the config file and returns its path.
fn write_config(env: &Env, text: &str) -> String {
    let config = env.dir.path().join("profiles.toml");
    std::fs::write(&config, text).unwrap();
    config.to_str().unwrap().to_owned()
}

#[test]
fn profile_values_are_checked_by_profiles_and_config_check_naming_the_key() {
    let env = Env::new();
    let url = env.provider.token_url();
    let config = write_config(
        &env,
        &format!(
            "[profiles.path]\ntoken_url = \"{url}\"\nclient_id = \"c\"\napi_origin = \"https://api.example.com/v1\"\n\n\
             [profiles.plain]\ntoken_url = \"http://login.example.com/token\"\nclient_id = \"c\"\n\n\
             [profiles.store]\ntoken_url = \"{url}\"\nclient_id = \"c\"\nstore = \"memcached://x\"\n\n\
             [profiles.method]\ntoken_url = \"{url}\"\nclient_id = \"c\"\nauth_method = \"magic\"\n\n\
             [profiles.budget]\ntoken_url = \"{url}\"\nclient_id = \"c\"\nmax_fetches_per_day = 0\n"
        ),
    );
    let listed = env.run(&["profiles", "--config", &config], &[]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    for (profile, key) in [
        ("path", "api_origin"),
        ("plain", "token_url"),
        ("store", "store"),
        ("method", "auth_method"),
        ("budget", "max_fetches_per_day"),
    ] {
        let line = listed.stdout.lines().find(|l| l.trim_start().starts_with(&format!("{profile}\t"))).unwrap();
        assert!(line.contains("invalid:") && line.contains(&format!("key `{key}`")), "{line}");
    }
    let check =
        env.run(&["config", "check", "--config", &config, "--profile", "path"], &[("AUTHC_CLIENT_SECRET", SECRET)]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(
        check.stderr.contains("profile `path`, key `api_origin`") && check.stderr.contains("no path"),
        "{}",
        check.stderr
    );
}

#[test]
fn profiles_explain_themselves_and_a_bad_one_breaks_no_other() {
    let env = Env::new();
    let config = write_config(
        &env,
        &format!(
            "[profiles.good]\ntoken_url = \"{url}\"\nclient_id = \"cli-client\"\nclient_secret_env = \"GOOD_SECRET\"\n\
             scope = \"read write\"\napi_origin = \"{origin}\"\n\n\
             [profiles.typo]\ntoken_url = \"{url}\"\nclient_id = \"cli-client\"\nscopes = [\"read\"]\n\n\
             [profiles.wrong_type]\ntoken_url = \"{url}\"\nmax_fetches_per_day = \"ten\"\n",
            url = env.provider.token_url(),
            origin = env.provider.url()
        ),
    );
    let listed = env.run(&["profiles", "--config", &config], &[]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains(&format!("good\t{}", env.provider.token_url())), "{}", listed.stdout);
    assert!(listed.stdout.contains("typo\tinvalid:") && listed.stdout.contains("key `scopes`"), "{}", listed.stdout);
    assert!(listed.stdout.contains("wrong_type\tinvalid:") && listed.stdout.contains("key `max_fetches_per_day`"));

    // The good profile works although its neighbours do not; its scope string is split.
    let run = env.run(&["token", "--config", &config, "--profile", "good"], &[("GOOD_SECRET", SECRET)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.provider.token_requests().pop().unwrap().scope.as_deref(), Some("read write"));

    // A bad one names the file, the profile and the key.
    let bad = env.run(&["token", "--config", &config, "--profile", "wrong_type"], &[]);
    assert_eq!(bad.code, 2);
    for part in [config.as_str(), "profile `wrong_type`", "key `max_fetches_per_day`"] {
        assert!(bad.stderr.contains(part), "`{part}` missing: {}", bad.stderr);
    }

    // config check: where each secret comes from, never its value.
    let check = env.run(&["config", "check", "--config", &config, "--profile", "good"], &[("GOOD_SECRET", SECRET)]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("the environment variable GOOD_SECRET (client_secret_env of profile `good`)"));
    assert!(check.stdout.contains("scope:") && check.stdout.contains("read write"), "{}", check.stdout);
    assert!(!check.stdout.contains(SECRET) && !check.stderr.contains(SECRET));
    let unset = env.run(&["config", "check", "--config", &config, "--profile", "good"], &[]);
    assert_eq!(unset.code, 2);
    assert!(unset.stderr.contains("`GOOD_SECRET`") && unset.stderr.contains("is not set"), "{}", unset.stderr);
    assert_eq!(env.run(&["config", "check", "--config", &config, "--profile", "typo"], &[]).code, 2);
}

#[test]
fn secrets_per_profile_an_override_is_said_and_invalid_client_names_the_source() {
    let env = Env::new();
    let secret_file = env.dir.path().join("odd-secret.txt");
    std::fs::write(&secret_file, "p@ss word+/\n").unwrap();
    let config = write_config(
        &env,
        &format!(
            "[profiles.flute]\ntoken_url = \"{url}\"\nclient_id = \"cli-client\"\nclient_secret_env = \"FLUTE_SECRET\"\n\n\
             [profiles.oboe]\ntoken_url = \"{url}\"\nclient_id = \"odd client\"\nclient_secret_file = \"{file}\"\n",
            url = env.provider.token_url(),
            file = secret_file.display()
        ),
    );
    let secrets = [("FLUTE_SECRET", SECRET)];
    for profile in ["flute", "oboe"] {
        let run = env.run(&["token", "--no-cache", "--config", &config, "--profile", profile], &secrets);
        assert_eq!(run.code, 0, "{profile}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    }
    // A global secret overrides the profile's file: said once; the refusal names where the secret came from.
    let run = env.run(
        &["token", "--no-cache", "--config", &config, "--profile", "oboe"],
        &[("AUTHC_CLIENT_SECRET", "a-wrong-global-secret")],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.stderr.matches("overrides client_secret_file").count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(run.stderr.contains("the client secret came from the environment variable AUTHC_CLIENT_SECRET"));
    assert!(!run.stderr.contains("a-wrong-global-secret"), "{}", run.stderr);
}

#[test]
fn credentials_go_only_to_the_api_origins_and_a_redirect_elsewhere_exits_5() {
    let env = Env::new();
    let mut elsewhere = mockito::Server::new();
    let never = elsewhere.mock("GET", mockito::Matcher::Any).expect(0).create();
    let config = write_config(
        &env,
        &format!(
            "[profiles.api]\ntoken_url = \"{url}\"\nclient_id = \"cli-client\"\napi_origin = [\"{origin}\"]\n\
             api_key_header = \"X-API-Key\"\n",
            url = env.provider.token_url(),
            origin = env.provider.url()
        ),
    );
    let secrets = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY)];
    let ok = env.run(&["request", "--config", &config, "--profile", "api", &env.provider.api_url("x")], &secrets);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let refused =
        env.run(&["request", "--config", &config, "--profile", "api", &format!("{}/steal", elsewhere.url())], &secrets);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not an API origin") && refused.stderr.contains("--api-origin"),
        "{}",
        refused.stderr
    );
    // The same with --api-origin on the command line.
    let flag = env.oauth(&["request", "--api-origin", env.provider.url(), &format!("{}/steal", elsewhere.url())]);
    assert_eq!(flag.code, 2, "{}", flag.stderr);
    never.assert();

    // A redirect to another origin is not followed, and says so.
    let mut api = mockito::Server::new();
    let redirect = api
        .mock("GET", "/moved")
        .with_status(302)
        .with_header("location", &format!("{}/new-home?code=hidden-in-query", elsewhere.url()))
        .create();
    let run = env.oauth(&["request", &format!("{}/moved", api.url())]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("redirect to") && run.stderr.contains("/new-home"), "{}", run.stderr);
    assert!(!run.stderr.contains("hidden-in-query"), "{}", run.stderr);
    redirect.assert();
    never.assert();
}

#[test]
fn curl_habits_include_output_verbose_data_from_a_file_json_and_silent() {
    let env = Env::new();
    let api_url = env.provider.api_url("items?api_key=ignored-by-us&page=2");
    let key = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY)];
    let base = |extra: &[&str]| {
        let token_url = env.provider.token_url();
        let mut args =
            vec!["request", "--token-url", &token_url, "--client-id", "cli-client", "--api-key-header", "X-API-Key"];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    let run = |extra: &[&str]| {
        let args = base(extra);
        env.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &key)
    };

    // -i: the status line and headers, then the body.
    let included = run(&["-i", &api_url]);
    assert_eq!(included.code, 0, "{}", included.stderr);
    assert!(included.stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{}", included.stdout);
    let (head, body) = included.stdout.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    assert!(body.contains("\"ok\":true"), "{body}");

    // -o FILE: the body goes there, stdout stays empty.
    let file = env.dir.path().join("answer.json");
    let output = run(&["-o", file.to_str().unwrap(), &api_url]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.is_empty());
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"ok\":true"));

    // -v: both requests and both answers, every credential redacted.
    let verbose = run(&["-v", "--no-cache", &api_url]);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    let token_line = format!("> POST {}", env.provider.token_url());
    for expected in [
        token_line.as_str(),
        "> authorization: [redacted]",
        "> x-api-key: [redacted]",
        "< HTTP/1.1 200 OK",
        "> GET http://",
    ] {
        assert!(verbose.stderr.contains(expected), "`{expected}` missing:\n{}", verbose.stderr);
    }
    for secret in [SECRET, API_KEY] {
        assert!(!verbose.stderr.contains(secret), "`{secret}` leaked:\n{}", verbose.stderr);
    }
    assert!(!verbose.stderr.contains("Bearer at_"), "{}", verbose.stderr);

    // -d @FILE sends the file; --json sets the content type.
    let data = env.dir.path().join("body.txt");
    std::fs::write(&data, "twelve bytes").unwrap();
    let sent = run(&["-d", &format!("@{}", data.display()), &env.provider.api_url("upload")]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(
        sent.stdout.contains("\"body_bytes\":12") && sent.stdout.contains("\"method\":\"POST\""),
        "{}",
        sent.stdout
    );
    let mut api = mockito::Server::new();
    let json = api
        .mock("POST", "/orders")
        .match_header("content-type", "application/json")
        .match_header("accept", "application/json")
        .match_body(mockito::Matcher::JsonString(r#"{"qty":2}"#.into()))
        .with_body("{}")
        .create();
    let run_json = run(&["--json", r#"{"qty":2}"#, &format!("{}/orders", api.url())]);
    assert_eq!(run_json.code, 0, "{}", run_json.stderr);
    json.assert();

    // -s: no notices (here: the global secret overriding --client-secret-file).
    let secret_file = env.dir.path().join("secret.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    let noisy = run(&["--client-secret-file", secret_file.to_str().unwrap(), &api_url]);
    assert!(noisy.stderr.contains("overrides --client-secret-file"), "{}", noisy.stderr);
    let quiet = run(&["-s", "--client-secret-file", secret_file.to_str().unwrap(), &api_url]);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""));
}

#[test]
fn serve_prints_exports_that_work_applies_its_fault_flags_and_stops_on_ctrl_c() {
    use std::io::BufRead;
    let env = Env::new();
    let mut serve = env
        .command(&["serve", "--token-lifetime", "120", "--fail-next", "1", "--fault", "503"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let mut exports = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let (name, value) = line.strip_prefix("export ").unwrap().split_once('=').unwrap();
        exports.push((name.to_owned(), value.trim_matches('\'').to_owned()));
        if name == "AUTHC_API_URL" {
            break;
        }
    }
    let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["AUTHC_TOKEN_URL", "AUTHC_CLIENT_ID", "AUTHC_CLIENT_SECRET", "AUTHC_API_KEY", "AUTHC_API_URL"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let vars: Vec<(&str, &str)> = exports.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let api_url = exports.iter().find(|(n, _)| n == "AUTHC_API_URL").unwrap().1.clone();

    // --fail-next 1: the first token request fails (503), the next succeeds.
    let first = env.run(&["token", "--no-cache"], &vars);
    assert_eq!(first.code, 4, "{}", first.stderr);
    assert!(first.stderr.contains("503"), "{}", first.stderr);
    let json = env.run(&["token", "--no-cache", "--json"], &vars);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let answer: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(answer["expires_in"].as_u64().unwrap() <= 120);
    // The exported variables are all a request needs: token and API key header.
    let request = env.run(&["request", &format!("{api_url}items")], &vars);
    assert_eq!(request.code, 0, "{}", request.stderr);
    assert!(request.stdout.contains("\"ok\":true"), "{}", request.stdout);

    let interrupted = Command::new("kill").args(["-INT", &serve.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    drop(lines);
    let stopped = collect(serve);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("stopped after 3 token requests"), "{}", stopped.stderr);
}

#[test]
fn serve_on_a_port_that_is_taken_exits_2_and_says_to_choose_another() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = env.run(&["serve", "--port", &port], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("127.0.0.1:{port}")) && run.stderr.contains("--port"), "{}", run.stderr);
}

/// The arguments of `authc COMMAND` with `options` (the issuer, the
/// client, ...) and then `rest`.
fn with_options<'a>(options: &'a [&'a str]) -> impl Fn(&str, &[&str]) -> Vec<String> + 'a {
    move |command, rest| {
        std::iter::once(command).chain(options.iter().copied()).chain(rest.iter().copied()).map(str::to_owned).collect()
    }
}

/// Plays the user of `authc login --no-browser` with the provider's
/// scripted browser: reads the authorization URL from the first line of
/// its stderr; the provider redirects straight to the loopback listener.
/// Returns the status of the page the listener answered.
fn play_browser(provider: &Provider, child: &mut std::process::Child) -> u16 {
    use std::io::BufRead as _;
    let stderr = child.stderr.as_mut().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stderr).read_line(&mut line).unwrap();
    let url = line.trim();
    if url.contains("request_uri=") {
        // Pushed (RFC 9126): the client and the reference only.
        let names: Vec<_> = reqwest_names(url);
        assert_eq!(names, ["client_id", "request_uri"], "{url}");
    } else {
        assert!(url.contains("/oauth/authorize?response_type=code"), "the URL alone on its line: {line:?}");
        assert!(url.contains("code_challenge_method=S256"));
    }
    let page = provider.browser().open_blocking(url).unwrap();
    assert_eq!(page.visited.len(), 2, "the provider redirected straight back: {:?}", page.visited);
    page.status
}

/// The names of a URL's query parameters, in order.
fn reqwest_names(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query.split('&').map(|pair| pair.split('=').next().unwrap_or_default().to_owned()).collect()
}

/// `authc login ARGS` with a test client as the browser; the sign-in
/// page must tell the user to return to the terminal.
fn log_in(env: &Env, args: &[String]) -> Run {
    let mut child = env
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(play_browser(&env.provider, &mut child), 200, "the page tells the user to return to the terminal");
    collect(child)
}

#[test]
fn login_token_request_and_logout_for_a_signed_in_user() {
    let env = Env::new();
    let issuer = env.provider.url().to_owned();
    let user = ["--issuer", issuer.as_str(), "--client-id", "public-cli"];
    let with = with_options(&user);
    let run = |args: Vec<String>| env.run_owned(&args);

    // Not signed in yet: exit 3, and what to run.
    let before = run(with("token", &[]));
    assert_eq!(before.code, 3, "{}", before.stderr);
    assert!(before.stderr.contains("sign-in required") && before.stderr.contains("authc login"), "{}", before.stderr);

    // The loopback flow, with a test client as the browser.
    let login = log_in(&env, &with("login", &["--no-browser", "--scope", "openid offline_access", "--timeout", "60"]));
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stderr.contains("signed in"), "{}", login.stderr);

    // token and request use the user's tokens: the API sees alice, and no client credentials request was made.
    let token = run(with("token", &["--scope", "openid offline_access"]));
    assert_eq!(token.code, 0, "{}", token.stderr);
    let api = env.provider.api_url("me");
    let request_args = with("request", &["--scope", "openid offline_access", api.as_str()]);
    let key = [("AUTHC_API_KEY", API_KEY), ("AUTHC_API_KEY_HEADER", "X-API-Key")];
    let request = env.run(&request_args.iter().map(String::as_str).collect::<Vec<_>>(), &key);
    assert_eq!(request.code, 0, "{}", request.stderr);
    assert!(request.stdout.contains("\"user\":\"alice\""), "{}", request.stdout);
    assert!(!env.provider.token_requests().iter().any(|r| r.grant_type == "client_credentials"));
    assert!(!login.stderr.contains(token.stdout.trim()), "the token is not printed by login");

    // Logout revokes both tokens and forgets them; then sign-in is required again.
    let logout = run(with("logout", &["--scope", "openid offline_access"]));
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(logout.stderr.contains("revoked and forgotten"), "{}", logout.stderr);
    assert_eq!(env.provider.stats().revocations, 2, "the refresh token and the access token");
    let after = run(with("token", &["--scope", "openid offline_access"]));
    assert_eq!(after.code, 3, "{}", after.stderr);
    assert!(after.stderr.contains("authc login"), "{}", after.stderr);
}

#[test]
fn logout_without_the_logins_scopes_still_signs_the_user_out() {
    let env = Env::new();
    let issuer = env.provider.url().to_owned();
    let user = ["--issuer", issuer.as_str(), "--client-id", "public-cli"];
    let with = with_options(&user);
    let run = |args: Vec<String>| env.run_owned(&args);
    let login = log_in(&env, &with("login", &["--no-browser", "--scope", "openid offline_access", "--timeout", "60"]));
    assert_eq!(login.code, 0, "{}", login.stderr);
    let token = run(with("token", &["--scope", "openid offline_access"]));
    assert_eq!(token.code, 0, "{}", token.stderr);

    // As the README's example runs it: no --scope. It says which sign-in it
    // found, revokes both tokens and forgets them.
    let logout = run(with("logout", &[]));
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(logout.stderr.contains("--scope \"openid offline_access\""), "{}", logout.stderr);
    assert!(logout.stderr.contains("revoked and forgotten"), "{}", logout.stderr);
    assert_eq!(env.provider.stats().revocations, 2, "the refresh token and the access token");
    let after = run(with("token", &["--scope", "openid offline_access"]));
    assert_eq!(after.code, 3, "signed out: {}", after.stderr);
    let api = ureq::get(&env.provider.api_url("me"))
        .header("Authorization", &format!("Bearer {}", token.stdout.trim()))
        .header("X-API-Key", API_KEY)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(api.status(), 401, "the access token no longer works");

    // Nothing left: said so, and nothing more revoked.
    let again = run(with("logout", &[]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("no signed-in user for client `public-cli`"), "{}", again.stderr);
    assert_eq!(env.provider.stats().revocations, 2);
}

#[test]
fn logout_takes_the_revocation_url_where_the_provider_has_no_discovery_document() {
    let env = Env::new();
    let (authorize, token_url, revocation) =
        (env.provider.authorization_url(), env.provider.token_url(), env.provider.revocation_url());
    // The endpoints by hand, as a provider without a discovery document lists them.
    let user = ["--authorize-url", authorize.as_str(), "--token-url", token_url.as_str(), "--client-id", "public-cli"];
    let with = with_options(&user);
    let run = |args: Vec<String>| env.run_owned(&args);
    let login = log_in(&env, &with("login", &["--no-browser", "--scope", "openid offline_access", "--timeout", "60"]));
    assert_eq!(login.code, 0, "{}", login.stderr);

    let logout = run(with("logout", &["--scope", "openid offline_access", "--revocation-url", revocation.as_str()]));
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(logout.stderr.contains("revoked and forgotten"), "{}", logout.stderr);
    assert_eq!(env.provider.stats().revocations, 2, "the refresh token and the access token");
    let after = run(with("token", &["--scope", "openid offline_access"]));
    assert_eq!(after.code, 3, "signed out: {}", after.stderr);

    // Without any revocation endpoint: forgotten, and it says nothing was revoked.
    let login = log_in(&env, &with("login", &["--no-browser", "--scope", "openid offline_access", "--timeout", "60"]));
    assert_eq!(login.code, 0, "{}", login.stderr);
    let logout = run(with("logout", &["--scope", "openid offline_access"]));
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(logout.stderr.contains("no revocation endpoint is known"), "{}", logout.stderr);
    assert_eq!(env.provider.stats().revocations, 2, "nothing more was revoked");
    assert_eq!(run(with("token", &["--scope", "openid offline_access"])).code, 3);
}

#[test]
fn a_declined_sign_in_and_a_mismatched_issuer_are_refused() {
    let env = Env::new();
    let declining = Provider::start(ProviderConfig::new().public_client("public-cli").deny_sign_in(true)).unwrap();
    let issuer = declining.url().to_owned();
    let args = ["login", "--issuer", issuer.as_str(), "--client-id", "public-cli", "--no-browser", "--timeout", "60"];
    let mut child = env.command(&args, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    assert_eq!(play_browser(&declining, &mut child), 400);
    let login = collect(child);
    assert_eq!(login.code, 3, "{}", login.stderr);
    assert!(login.stderr.contains("access_denied"), "{}", login.stderr);

    let impostor =
        Provider::start(ProviderConfig::new().public_client("public-cli").issuer("https://id.example.com")).unwrap();
    let issuer = impostor.url().to_owned();
    let run = env.run(&["login", "--issuer", issuer.as_str(), "--client-id", "public-cli", "--no-browser"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("https://id.example.com") && run.stderr.contains("not `"), "{}", run.stderr);
}

#[test]
fn the_device_flow_and_sign_in_keyed_apart_from_client_credentials() {
    let env = Env::new();
    let token_url = env.provider.token_url();
    let device_url = env.provider.url().to_owned() + "/oauth/device";
    let args = [
        "login",
        "--device",
        "--device-url",
        device_url.as_str(),
        "--token-url",
        token_url.as_str(),
        "--client-id",
        "cli-client",
        "--scope",
        "offline_access",
    ];
    let child = env
        .command(&args, &[("AUTHC_CLIENT_SECRET", SECRET)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The code is shown on stderr; the test approves it as the user would.
    let mut approved = false;
    for _ in 0..200 {
        if let Some(code) = env.provider.pending_user_codes().pop() {
            approved = env.provider.approve_device(&code);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(approved);
    let login = collect(child);
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stderr.contains("and enter the code"), "{}", login.stderr);

    // The same client's own (client credentials) token is another cache entry; --sign-in picks the user's.
    let own = env.oauth(&["token", "--scope", "offline_access"]);
    assert_eq!(own.code, 0, "{}", own.stderr);
    let users = env.oauth(&["token", "--sign-in", "--scope", "offline_access"]);
    assert_eq!(users.code, 0, "{}", users.stderr);
    assert_ne!(own.stdout, users.stdout);
    assert_eq!(env.records().len(), 2, "user tokens are keyed apart");
    assert_eq!(env.store_files().len(), 3, "and the sign-in is noted beside them");
}

/// A provider that rotates refresh tokens and issues 2 s access tokens,
/// and a user signed in to it through `authc login` (with `envs`): the
/// environment and the arguments that name the user's configuration.
fn signed_in_with_rotation(envs: &[(&str, &str)]) -> (Env, Vec<String>) {
    let provider = Provider::start(
        ProviderConfig::new()
            .public_client("public-cli")
            .rotate_refresh_tokens(true)
            .token_lifetime(std::time::Duration::from_secs(2)),
    )
    .unwrap();
    let env = Env { dir: tempfile::tempdir().unwrap(), provider };
    let user: Vec<String> = ["--token-url", &env.provider.token_url(), "--authorize-url"]
        .into_iter()
        .map(str::to_owned)
        .chain([env.provider.authorization_url(), "--client-id".to_owned(), "public-cli".to_owned()])
        .collect();
    let login: Vec<&str> = ["login"]
        .into_iter()
        .chain(user.iter().map(String::as_str))
        .chain(["--no-browser", "--timeout", "60"])
        .collect();
    let mut child = env.command(&login, envs).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    assert_eq!(play_browser(&env.provider, &mut child), 200);
    let login = collect(child);
    assert_eq!(login.code, 0, "{}", login.stderr);
    (env, user)
}

#[test]
fn parallel_runs_spend_a_rotating_refresh_token_once() {
    let (env, user) = signed_in_with_rotation(&[]);
    let user = user.iter().map(String::as_str);

    // The access token expires; ten processes at once need a token: one refresh, the rest take its result.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let token: Vec<&str> = ["token"].into_iter().chain(user).collect();
    let runs = env.run_parallel(10, &token, &[]);
    for run in &runs {
        assert_eq!(run.code, 0, "a run failed (a refresh token spent twice is invalid_grant): {}", run.stderr);
    }
    let refreshes: Vec<u16> =
        env.provider.token_requests().iter().filter(|r| r.grant_type == "refresh_token").map(|r| r.status).collect();
    assert_eq!(refreshes, [200], "one refresh for ten processes, never the same refresh token twice");
    assert!(!env.provider.token_requests().iter().any(|r| r.grant_type == "client_credentials"));
}

#[test]
fn writes_confirmed_on_a_sentinels_replica_share_one_grant() {
    let Some(sentinel) = auth_testkit::redis::RedisSentinel::start() else { return };
    let env = Env::new();
    let token_url = env.provider.token_url();
    let url = sentinel.url();
    let token = ["token", "--token-url", token_url.as_str(), "--client-id", "cli-client"];
    let envs = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str()), ("AUTHC_STORE_CONFIRM", "1:1000")];
    let runs = env.run_parallel(10, &token, &envs);
    for run in &runs {
        assert_eq!((run.code, &run.stdout), (0, &runs[0].stdout), "{}", run.stderr);
    }
    assert_eq!(env.provider.stats().token_requests, 1, "one grant, every write confirmed on the replica");
    for bad in ["0", "one", "1:0", "1:x"] {
        let envs = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_STORE", url.as_str()), ("AUTHC_STORE_CONFIRM", bad)];
        let run = env.run(&token, &envs);
        assert!(run.code == 2 && run.stderr.contains("AUTHC_STORE_CONFIRM"), "{bad}: {}", run.stderr);
    }
}

/// Sends `signal` to process `pid`.
fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill {signal} {pid}");
}

/// A child process that is woken and killed if the test fails.
struct Frozen(Option<std::process::Child>);

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            kill("-CONT", child.id());
            let _ = child.kill();
        }
    }
}

#[test]
fn a_process_frozen_mid_refresh_past_its_lease_is_the_only_one_to_spend_the_refresh_token() {
    let Some(redis) = auth_testkit::redis::RedisServer::start() else { return };
    let store = redis.url();
    let envs = [("AUTHC_STORE", store.as_str())];
    let (env, user) = signed_in_with_rotation(&envs);
    let user = user.iter().map(String::as_str);
    std::thread::sleep(std::time::Duration::from_millis(2500));

    // A renews: it claims the refresh token in the store and sends it (the endpoint takes 3 s).
    env.provider.set_token_lifetime(std::time::Duration::from_secs(300));
    env.provider.set_latency(std::time::Duration::from_secs(3));
    let token: Vec<&str> = ["token"].into_iter().chain(user).collect();
    let a = env.command(&token, &envs).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let claimed = || {
        redis
            .cli(&["--scan", "--pattern", "*:record"])
            .lines()
            .any(|key| redis.cli(&["HGET", key, "payload"]).contains("\"refresh_claimed_by\":\""))
    };
    let started = std::time::Instant::now();
    while !claimed() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "A never claimed the refresh token");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A freezes, and its lease runs out (deleted here rather than waited for).
    kill("-STOP", a.id());
    let mut a = Frozen(Some(a));
    let lua = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1";
    redis.cli(&["EVAL", lua, "0", "*:lease"]);
    env.provider.set_latency(std::time::Duration::ZERO);

    // B takes the lease, finds the token claimed by A, and does not spend it: it says why.
    let b = env.run(&token, &envs);
    assert_ne!(b.code, 0, "B got a token without a refresh: {}", b.stdout);
    assert!(b.stderr.contains("is renewing with the user's refresh token"), "{}", b.stderr);
    assert!(!b.stderr.contains("invalid_grant"), "{}", b.stderr);

    // A wakes up, takes its answer and writes the new tokens; C takes them from the store.
    let child = a.0.take().unwrap();
    kill("-CONT", child.id());
    let a = collect(child);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let c = env.run(&token, &envs);
    assert_eq!((c.code, &c.stdout), (0, &a.stdout), "{}", c.stderr);
    let refreshes: Vec<u16> =
        env.provider.token_requests().iter().filter(|r| r.grant_type == "refresh_token").map(|r| r.status).collect();
    assert_eq!(refreshes, [200], "the refresh token spent once, by the process that claimed it");
}

fn key_fixture(name: &str) -> String {
    format!("{}/../auth-core/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_private_key_replaces_the_client_secret_and_bad_key_files_say_why() {
    let public = std::fs::read_to_string(key_fixture("ec-p256.pub.pem")).unwrap();
    let env = Env::with(ProviderConfig::new().key_client("key-cli", &public));
    let token_url = env.provider.token_url();
    let base = ["token", "--token-url", &token_url, "--client-id", "key-cli", "--private-key-file"];
    let key = key_fixture("ec-p256-sec1.pem");
    let first = env.run(&[&base[..], &[key.as_str(), "--key-id", "k1"]].concat(), &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let again = env.run(&[&base[..], &[key.as_str()]].concat(), &[]);
    assert_eq!((again.code, again.stdout.clone()), (0, first.stdout.clone()), "the cached token is used");
    let requests = env.provider.token_requests();
    assert_eq!((requests.len(), requests[0].client_auth.as_str()), (1, "private-key-jwt"));

    // An encrypted key needs its password, from the environment.
    let encrypted = key_fixture("ec-p256-encrypted.pem");
    let args = [&base[..], &[encrypted.as_str(), "--no-cache"]].concat();
    let run = env.run(&args, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("AUTHC_PRIVATE_KEY_PASSWORD"), "{}", run.stderr);
    let run = env.run(&args, &[("AUTHC_PRIVATE_KEY_PASSWORD", "wrong")]);
    assert!(run.code == 2 && run.stderr.contains("wrong password"), "{}", run.stderr);
    assert_eq!(env.run(&args, &[("AUTHC_PRIVATE_KEY_PASSWORD", "correct-horse")]).code, 0);

    // Files that hold no usable key: exit 2, the file named, nothing of it shown.
    for (file, says) in [
        ("cert.pem", "CERTIFICATE"),
        ("ec-p256.pub.pem", "public key"),
        ("rsa-1024.pem", "1024 bits"),
        ("ec-secp256k1.pem", "curve"),
        ("missing.pem", "cannot read"),
    ] {
        let path = key_fixture(file);
        let run = env.run(&[&base[..], &[path.as_str(), "--no-cache"]].concat(), &[]);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stderr.contains(file) && run.stderr.contains(says), "{file}: {}", run.stderr);
        assert!(!run.stderr.contains("MII"), "{}", run.stderr);
    }

    // The same from a profile, with the audience the server wants.
    let config = write_config(
        &env,
        &format!(
            "[profiles.keyed]\ntoken_url = \"{token_url}\"\nclient_id = \"key-cli\"\nprivate_key_file = \"{key}\"\n\
             key_id = \"k1\"\nassertion_audience = \"token-url\"\nauth_method = \"private-key-jwt\"\n"
        ),
    );
    let check = env.run(&["config", "check", "--config", &config, "--profile", "keyed"], &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.contains("ES256, kid k1") && check.stdout.contains(&format!("aud {token_url}")),
        "{}",
        check.stdout
    );
    let run = env.run(&["token", "--config", &config, "--profile", "keyed", "--no-cache"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn the_jwt_bearer_grant_from_a_file_or_stdin() {
    let public = std::fs::read_to_string(key_fixture("ed25519.pub.pem")).unwrap();
    let env = Env::with(ProviderConfig::new().jwt_bearer_issuer("workload", &public));
    let token_url = env.provider.token_url();
    let key =
        auth_core::keys::SigningKey::from_pem(&std::fs::read_to_string(key_fixture("ed25519.pem")).unwrap()).unwrap();
    let mint = |sub: &str| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = serde_json::json!({"iss": "workload", "sub": sub, "aud": token_url, "exp": now + 600,
            "jti": auth_testkit::random_token("j")});
        key.sign_jwt("JWT", &claims).unwrap()
    };
    let file = env.dir.path().join("assertion.jwt");
    std::fs::write(&file, mint("frank")).unwrap();
    let base = [
        "request",
        "--token-url",
        &token_url,
        "--client-id",
        "public-cli",
        "--grant",
        "jwt-bearer",
        "--api-key-header",
        "X-API-Key",
    ];
    let api = env.provider.api_url("me");
    let key_env = [("AUTHC_API_KEY", API_KEY)];
    let run = env.run(&[&base[..], &["--assertion-file", file.to_str().unwrap(), &api]].concat(), &key_env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("frank"), "{}", run.stdout);
    // From stdin, for another subject: its own token, not frank's.
    let run =
        env.run_with_stdin(&[&base[..], &["--assertion-file", "-", &api]].concat(), &key_env, Some(&mint("grace")));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("grace"), "{}", run.stdout);
    // A replayed assertion is refused by the provider (exit 3, its words).
    let replay = mint("heidi");
    let args = [&base[..], &["--assertion-file", "-", "--no-cache", &api]].concat();
    assert_eq!(env.run_with_stdin(&args, &key_env, Some(&replay)).code, 0);
    let run = env.run_with_stdin(&args, &key_env, Some(&replay));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("invalid_grant") && !run.stderr.contains(&replay), "{}", run.stderr);
    // Usage mistakes.
    let run = env.run(&[&base[..], &[api.as_str()]].concat(), &key_env);
    assert!(run.code == 2 && run.stderr.contains("--assertion-file"), "{}", run.stderr);
}

#[test]
fn dpop_keeps_its_key_beside_the_cache_so_the_cached_token_stays_usable() {
    let env = Env::with(ProviderConfig::new().require_dpop(true).dpop_nonces(true));
    let token_url = env.provider.token_url();
    let api = env.provider.api_url("me");
    let args = |extra: &[&str]| {
        let mut all = vec!["request", "--token-url", &token_url, "--client-id", "cli-client"];
        all.extend_from_slice(&["--api-key-header", "X-API-Key"]);
        all.extend_from_slice(extra);
        all.push(&api);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let envs = [("AUTHC_CLIENT_SECRET", SECRET), ("AUTHC_API_KEY", API_KEY)];
    let call = |extra: &[&str]| {
        let args = args(extra);
        env.run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &envs)
    };
    for _ in 0..3 {
        let run = call(&["--dpop"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let stats = env.provider.stats();
    assert_eq!(stats.token_requests, 2, "one nonce demand, then one token for every run");
    // `token --json` reports the provider's token type: a script that builds
    // its own Authorization header from it uses the DPoP scheme.
    let json_args = ["token", "--token-url", &token_url, "--client-id", "cli-client", "--dpop", "--json"];
    let json = env.run(&json_args, &envs);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let printed: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(printed["token_type"], "DPoP", "{printed}");
    assert_eq!(env.provider.stats().token_requests, 2, "the cached DPoP token");
    assert_eq!(stats.dpop_proofs_refused, 0);
    // The key sits in the cache directory, readable by its owner only.
    let keys: Vec<_> = std::fs::read_dir(env.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("dpop-"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Without DPoP, this provider refuses (exit 3, its words).
    let run = call(&["--no-cache"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("invalid_dpop_proof"), "{}", run.stderr);
    // A key of one's own: a new token bound to it.
    let key = key_fixture("ed25519.pem");
    let run = call(&["--dpop-key-file", &key]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The refused run, then a nonce demand and a token for the new key
    // (a new process learns the nonce anew).
    assert_eq!(env.provider.stats().token_requests, 5);
    let check = env.run(
        &["config", "check", "--token-url", &token_url, "--client-id", "cli-client", "--dpop-key-file", &key],
        &envs,
    );
    assert!(
        check.code == 0 && check.stdout.contains("DPoP:") && check.stdout.contains("ed25519.pem"),
        "{}",
        check.stdout
    );
    let bad = call(&["--dpop-key-file", &key_fixture("cert.pem")]);
    assert!(bad.code == 2 && bad.stderr.contains("--dpop-key-file"), "{}", bad.stderr);
}

#[test]
fn mutual_tls_from_discovery_to_the_api_and_revocation() {
    let env = Env::with(ProviderConfig::new().mtls(true).tls_client("cli-mtls", "cli.example.com"));
    let issued = env.provider.issue_client_certificate("cli.example.com");
    let file = |name: &str, text: &str| {
        let path = env.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (cert, key) = (file("client.crt", &issued.certificate), file("client.key", &issued.private_key));
    let both = file("client.pem", &format!("{}{}", issued.certificate, issued.private_key));
    let ca = file("ca.pem", &env.provider.ca_certificate().unwrap());
    let issuer = env.provider.url().to_owned();
    let api = format!("{}/api/me", env.provider.mtls_url().unwrap());
    let tls = ["--issuer", issuer.as_str(), "--client-id", "cli-mtls", "--ca-cert", ca.as_str()];
    let run = |command: &str, extra: &[&str]| {
        let mut args: Vec<&str> = std::iter::once(command).chain(tls).chain(extra.iter().copied()).collect();
        if command == "request" {
            args.splice(1..1, ["--api-key-header", "X-API-Key"]);
        }
        env.run(&args, &[("AUTHC_API_KEY", API_KEY)])
    };

    // Discovery gives the mTLS alias; the certificate authenticates the
    // client (tls-client-auth, the default with no secret) and the bound
    // token works at the API over the same certificate, across runs.
    for _ in 0..2 {
        let call = run("request", &["--client-cert", &cert, "--client-key", &key, &api]);
        assert_eq!(call.code, 0, "{}", call.stderr);
        assert!(call.stdout.contains("\"client_id\":\"cli-mtls\""), "{}", call.stdout);
    }
    // One file holding both is enough.
    let call = run("request", &["--client-cert", &both, "--no-cache", &api]);
    assert_eq!(call.code, 0, "{}", call.stderr);
    let requests = env.provider.token_requests();
    assert_eq!(requests.len(), 2, "the cached token served the second run");
    assert!(requests.iter().all(|r| r.client_auth == "tls-client-auth" && r.client_certificate.is_some()));
    let token_url = format!("{}/oauth/token", env.provider.mtls_url().unwrap());
    // The alias named directly, with the certificate files.
    let by_url = |command: &[&str]| {
        let certificate =
            ["--token-url", &token_url, "--client-id", "cli-mtls", "--client-cert", &cert, "--client-key", &key];
        env.run(&[command, &certificate[..]].concat(), &[])
    };
    let check = by_url(&["config", "check"]);
    let check = check.stdout + &check.stderr;
    assert!(
        check.contains("client cert") && check.contains("client.crt") && check.contains("tls-client-auth"),
        "{check}"
    );

    // The same from a profile.
    let config = write_config(
        &env,
        &format!(
            "[profiles.mtls]\nissuer = \"{issuer}\"\nclient_id = \"cli-mtls\"\nclient_cert = \"{cert}\"\n\
             client_key = \"{key}\"\nca_cert = \"{ca}\"\napi_key_header = \"X-API-Key\"\n"
        ),
    );
    let call = env.run(&["request", "--config", &config, "--profile", "mtls", &api], &[("AUTHC_API_KEY", API_KEY)]);
    assert_eq!(call.code, 0, "{}", call.stderr);

    // Revocation goes to the alias with the certificate.
    let revoke = run("revoke", &["--client-cert", &cert, "--client-key", &key]);
    assert_eq!(revoke.code, 0, "{}", revoke.stderr);
    assert_eq!(env.provider.stats().revocations, 1);

    // Mistakes: exit 2, the file and what to do named, no key shown.
    let stranger = auth_testkit::self_signed_certificate("stranger");
    let other_key = file("other.key", &stranger.private_key);
    for (extra, says) in [
        (vec!["--client-key", key.as_str()], "--client-key goes with --client-cert"),
        (vec!["--client-cert", cert.as_str()], "--client-key"),
        (vec!["--client-cert", key.as_str(), "--client-key", key.as_str()], "no certificate found"),
        (vec!["--client-cert", cert.as_str(), "--client-key", other_key.as_str()], "TLS settings cannot be used"),
        (vec!["--client-cert", cert.as_str(), "--client-key", "/nonexistent/client.key"], "cannot read"),
    ] {
        let mut args = extra.clone();
        args.extend(["--no-cache", api.as_str()]);
        let call = run("request", &args);
        assert_eq!(call.code, 2, "{extra:?}: {}", call.stderr);
        assert!(call.stderr.contains(says), "{extra:?}: {}", call.stderr);
        assert!(!call.stderr.contains("PRIVATE KEY") && !call.stderr.contains("MII"), "{}", call.stderr);
    }
    // tls-client-auth without a certificate says what is missing.
    let call = env.run(
        &[
            "token",
            "--token-url",
            &env.provider.token_url(),
            "--client-id",
            "cli-mtls",
            "--auth-method",
            "tls-client-auth",
        ],
        &[],
    );
    assert!(call.code == 2 && call.stderr.contains("--client-cert"), "{}", call.stderr);
    // Without the CA, the server is not trusted: a network failure, exit 4.
    let call = by_url(&["token", "--no-cache"]);
    assert_eq!(call.code, 4, "{}", call.stderr);
    assert!(call.stderr.to_lowercase().contains("certificate"), "{}", call.stderr);
}

/// A server on loopback that answers every request with `status` and a
/// body that never ends (until the client goes away); its base URL.
fn endless_server(status: u16) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head =
                    format!("HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n");
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = [b' '; 64 * 1024];
                while stream.write_all(&chunk).is_ok() {}
            });
        }
    });
    url
}

#[test]
fn an_endless_discovery_document_or_revocation_answer_is_refused_at_its_cap() {
    let env = Env::new();
    let issuer = endless_server(200);
    let args = ["token", "--issuer", issuer.as_str(), "--client-id", "cli-client", "--no-cache"];
    let run = env.run_bounded(&args, &[("AUTHC_CLIENT_SECRET", SECRET)], std::time::Duration::from_secs(60));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("the discovery document is larger than 256 KiB"), "{}", run.stderr);

    let revocation = format!("{}/revoke", endless_server(200));
    let token_url = env.provider.token_url();
    let args = [
        "revoke",
        "--token-url",
        token_url.as_str(),
        "--client-id",
        "cli-client",
        "--revocation-url",
        revocation.as_str(),
        "--token",
        "-",
    ];
    // The revocation client's 30 s timeout is the deadline; the cap ends it first.
    let run = env.run_with_stdin(&args, &[("AUTHC_CLIENT_SECRET", SECRET)], Some("at_some_token"));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("the revocation endpoint's answer is larger than 256 KiB"), "{}", run.stderr);
    assert!(!run.stderr.contains("at_some_token"));
}

#[cfg(unix)]
#[test]
fn secret_and_key_files_that_never_end_or_block_are_refused_at_once() {
    let env = Env::new();
    let fifo = env.dir.path().join("secret.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let token_url = env.provider.token_url();
    for (flag, file) in [
        ("--client-secret-file", "/dev/zero"),
        ("--client-secret-file", fifo.to_str().unwrap()),
        ("--private-key-file", "/dev/zero"),
        ("--private-key-file", fifo.to_str().unwrap()),
    ] {
        let args = ["token", "--no-cache", "--token-url", token_url.as_str(), "--client-id", "cli-client", flag, file];
        let run = env.run_bounded(&args, &[], std::time::Duration::from_secs(30));
        assert_eq!(run.code, 2, "{flag} {file}: {}", run.stderr);
        assert!(run.stderr.contains("not a regular file"), "{flag} {file}: {}", run.stderr);
    }
    // A file past the cap: refused without being read whole.
    let large = env.dir.path().join("large.pem");
    std::fs::write(&large, vec![b'a'; 2 * 1024 * 1024]).unwrap();
    let args = ["token", "--no-cache", "--token-url", token_url.as_str(), "--client-id", "cli-client"];
    let run = env.run_bounded(
        &[&args[..], &["--client-secret-file", large.to_str().unwrap()]].concat(),
        &[],
        std::time::Duration::from_secs(30),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("larger than 1 MiB"), "{}", run.stderr);
}

#[cfg(unix)]
#[test]
fn a_flood_of_idle_connections_under_a_low_descriptor_limit_does_not_stop_the_sign_in() {
    use std::io::BufRead as _;
    let env = Env::new();
    let issuer = env.provider.url().to_owned();
    let authc = env!("CARGO_BIN_EXE_authc");
    let args = ["--issuer", issuer.as_str(), "--client-id", "public-cli", "--no-browser", "--timeout", "60"];
    // authc under 128 descriptors, as a user's shell may set.
    let command = env.command(&["login"], &[]);
    let mut shell = Command::new("/bin/sh");
    shell
        .args(["-c", "ulimit -n 128 && exec \"$0\" login \"$@\"", authc])
        .args(args)
        .env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = shell.spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.as_mut().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().to_owned();
    let redirect = reqwest::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "redirect_uri")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let address = redirect.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    // 400 connections that never send a request.
    let idle: Vec<_> = (0..400).filter_map(|_| std::net::TcpStream::connect(&address).ok()).collect();
    assert!(idle.len() >= 100, "{} connections made", idle.len());
    let page = env.provider.browser().open_blocking(&url).expect("the real callback is accepted and answered");
    assert_eq!(page.visited.len(), 2, "the provider redirected straight back: {:?}", page.visited);
    assert_eq!(page.status, 200, "the real callback is served");
    drop(idle);
    let login = collect(child);
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stderr.contains("signed in"), "{}", login.stderr);
}

#[test]
fn from_an_api_url_alone_to_a_call_and_a_step_up_that_keeps_the_scopes() {
    let env = Env::bare(
        ProviderConfig::new().protected_resource(true).api_scopes("read", "write").dynamic_registration(true),
    );
    let api = env.provider.api_url("orders");
    let resource = env.provider.resource();

    // Nothing configured: the API's 401 names its metadata, which names the provider.
    let first = env.run(&["request", &api], &[]);
    assert_eq!(first.code, 3, "{}", first.stderr);
    let login_line = format!("authc login --resource {resource}");
    assert!(first.stderr.contains(&login_line), "{}", first.stderr);
    assert!(first.stderr.contains(&env.provider.issuer()), "says what it discovered: {}", first.stderr);
    assert_eq!(env.provider.stats().resource_metadata_requests, 1);
    assert_eq!(env.provider.stats().registrations, 0, "registering is the login's");

    // The login it said: registers authc (a public client, loopback redirect), signs in with PKCE.
    let login =
        log_in(&env, &owned(&["login", "--resource", &resource, "--scope", "read", "--no-browser", "--timeout", "60"]));
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stderr.contains("registered as client"), "{}", login.stderr);
    assert_eq!(env.provider.stats().registrations, 1);
    assert_eq!(env.provider.stats().resource_metadata_requests, 1, "the kept metadata was used");
    let code = env.provider.token_requests().into_iter().find(|r| r.grant_type == "authorization_code").unwrap();
    assert_eq!(code.resources, std::slice::from_ref(&resource), "the token is asked for the resource (RFC 8707)");

    // Another process, the URL alone: the kept registration and tokens.
    let call = env.run(&["request", &api], &[]);
    assert_eq!(call.code, 0, "{}", call.stderr);
    assert!(call.stdout.contains("\"ok\":true") && call.stdout.contains("\"scope\":\"read\""), "{}", call.stdout);
    let requests = env.provider.token_requests().len();

    // A write needs `write`: exit 3 with the login that asks for both.
    let write = env.run(&["request", "-X", "POST", "-d", "x", &api], &[]);
    assert_eq!(write.code, 3, "{}", write.stderr);
    assert!(write.stderr.contains(&format!("{login_line} --scope \"read write\"")), "{}", write.stderr);
    assert_eq!(env.provider.token_requests().len(), requests, "no token was fetched for the 403");

    // That login: the same registered client, a token with both scopes, and the write goes through.
    let again = log_in(
        &env,
        &owned(&["login", "--resource", &resource, "--scope", "read write", "--no-browser", "--timeout", "60"]),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("registered as client"), "{}", again.stderr);
    assert_eq!(env.provider.stats().registrations, 1, "registered once");
    let write = env.run(&["request", "-X", "POST", "-d", "x", &api], &[]);
    assert_eq!(write.code, 0, "{}", write.stderr);
    assert!(write.stdout.contains("\"scope\":\"read write\""), "{}", write.stdout);
    // No secret of the registration in what was printed.
    for run in [&first, &login, &call, &again, &write] {
        assert!(!run.stderr.contains("rat-") && !run.stdout.contains("rat-"), "{}", run.stderr);
    }
}

#[test]
fn a_server_that_requires_pushed_requests_and_an_api_on_another_origin() {
    // PAR required: the browser gets the reference only, and the sign-in works.
    let env = Env::with(ProviderConfig::new().pushed_authorization(true));
    let issuer = env.provider.url().to_owned();
    let login = log_in(
        &env,
        &owned(&["login", "--issuer", &issuer, "--client-id", "public-cli", "--no-browser", "--timeout", "60"]),
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert_eq!(env.provider.stats().pushed_requests, 1);

    // An API whose metadata names an authorization server on another origin: not contacted unless trusted.
    let elsewhere = Provider::start(ProviderConfig::new().dynamic_registration(true)).unwrap();
    let api =
        Env::bare(ProviderConfig::new().protected_resource(true).resource_authorization_server(elsewhere.issuer()));
    let url = api.provider.api_url("orders");
    let refused = api.run(&["request", &url], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("--trust-origin {}", elsewhere.url())), "{}", refused.stderr);
    let trusted = api.run(&["request", "--trust-origin", elsewhere.url(), &url], &[]);
    assert_eq!(trusted.code, 3, "{}", trusted.stderr);
    let line = format!("authc login --resource {} --trust-origin {}", api.provider.resource(), elsewhere.url());
    assert!(trusted.stderr.contains(&line), "{}", trusted.stderr);
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// A workload identity token for `provider`, signed by `key` as issuer
/// `https://kubernetes.default.svc`, for `subject`, expiring in `ttl` seconds.
fn workload_token(key: &auth_core::keys::SigningKey, provider: &Provider, subject: &str, ttl: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = serde_json::json!({
        "iss": "https://kubernetes.default.svc", "sub": subject, "aud": provider.token_url(),
        "iat": now, "exp": now + ttl,
    });
    key.sign_jwt("JWT", &claims).unwrap()
}

#[test]
fn a_token_exchange_of_a_workload_token_file_shared_by_twenty_runs_and_a_client_assertion_file() {
    let key = auth_core::keys::SigningKey::generate_es256().unwrap();
    let public = serde_json::Value::Object(key.public_jwk().unwrap()).to_string();
    let env = Env::bare(
        ProviderConfig::new()
            .workload_issuer("https://kubernetes.default.svc", &public)
            .public_client("sts-client")
            .federated_client("payments", "system:serviceaccount:payments:worker")
            .token_exchange(true),
    );
    let file = env.dir.path().join("sa-token");
    std::fs::write(&file, workload_token(&key, &env.provider, "system:serviceaccount:payments:worker", 600)).unwrap();
    let token_url = env.provider.token_url();
    let file_arg = file.display().to_string();
    let exchange = [
        "--token-url",
        token_url.as_str(),
        "--client-id",
        "sts-client",
        "--grant",
        "token-exchange",
        "--subject-token-file",
        file_arg.as_str(),
        "--subject-token-type",
        "jwt",
        "--requested-token-type",
        "access_token",
        "--audience",
        "payments-api",
    ];
    let with = with_options(&exchange);

    // config check says where the token comes from, never the token.
    let check = env.run(&[&["config", "check"][..], &exchange[..]].concat(), &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.contains(&format!("token-exchange, the subject token (jwt) from file {file_arg}")),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("asking for access_token"), "{}", check.stdout);

    // Twenty parallel runs on a cold store: one exchange.
    let children: Vec<_> = (0..20)
        .map(|_| {
            let args = with("token", &[]);
            env.command(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let tokens: Vec<Run> = children.into_iter().map(collect).collect();
    for run in &tokens {
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert!(tokens.iter().all(|run| run.stdout == tokens[0].stdout), "one token for all");
    assert_eq!(env.provider.stats().exchanges, 1);

    // An expired token in the file: exit 2, naming the file, nothing sent.
    std::fs::write(&file, workload_token(&key, &env.provider, "system:serviceaccount:payments:worker", -30)).unwrap();
    let before = env.provider.stats().token_requests;
    let expired = env.run_owned(&with("token", &["--no-cache"]));
    assert_eq!(expired.code, 2, "{}", expired.stderr);
    assert!(expired.stderr.contains(&file_arg) && expired.stderr.contains("expired"), "{}", expired.stderr);
    assert_eq!(env.provider.stats().token_requests, before);

    // The same kind of file as the client assertion of a federated client.
    std::fs::write(&file, workload_token(&key, &env.provider, "system:serviceaccount:payments:worker", 600)).unwrap();
    let assertion =
        ["--token-url", token_url.as_str(), "--client-id", "payments", "--client-assertion-file", file_arg.as_str()];
    let token = env.run_owned(&with_options(&assertion)("token", &["--no-cache"]));
    assert_eq!(token.code, 0, "{}", token.stderr);
    assert_eq!(env.provider.token_requests().last().unwrap().client_auth, "federated");
}
