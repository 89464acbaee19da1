//! Fuzzing with proptest (stable Rust): the token, revocation and
//! Retry-After parsers on random and structured inputs, and the lifecycle
//! on random sequences with extreme policies. Asserted every time: no
//! panic, the lifecycle's invariants, and no planted secret (nor any 8-byte
//! run of it or of its encodings) in any error's `Display` or `Debug`, nor
//! in what operators see of the lifecycle's sequences: its spans' fields
//! and (feature `opentelemetry`, on in `cargo xtask fuzz`) the metrics
//! exported.
//!
//! The parsers include the `WWW-Authenticate` challenges an API sends.
//!
//! `cargo test` runs 10,000 cases of each; `cargo xtask fuzz` runs
//! 1,000,000 parser inputs and 50,000 lifecycle sequences
//! (`AUTH_FUZZ_CASES`, `AUTH_FUZZ_SEQUENCES`).

#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

use std::time::{Duration, Instant, SystemTime};

use auth_core::secret::{AccessTokenValue, ExposeSecret, RefreshToken};
use auth_core::wire::request::{revocation_request, Revocable};
use auth_core::wire::response::{
    normalize_retry_after, parse_token_response, parse_token_response_redacting, retry_after, retry_after_seconds,
};
use auth_core::{
    BackoffPolicy, ClientAuth, Lifecycle, Output, RefreshPolicy, SourceConfig, StoredToken, TokenError, Want,
};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::{percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// The wall time the tests' answers arrive at (2027-01-15).
fn test_wall() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
}

fn cases(var: &str) -> u32 {
    std::env::var(var).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(10_000)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}

/// A secret with the characters that broke redaction before: reserved URL
/// characters, `~`, space, `+`, `%`, `<`, tab, quotes and non-ASCII.
fn secret() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::char::range('a', 'z'),
            3 => prop::char::range('A', 'Z'),
            3 => prop::char::range('0', '9'),
            4 => prop::sample::select(vec!['~', ' ', '+', '%', '<', '>', '\t', '/', '=', '&', '?', '"', '\\', ':', '#', '@', '-', '.', '_']),
            2 => prop::sample::select(vec!['é', 'ü', '中', 'ß', '€', '😀']),
        ],
        12..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Every form of `secret` whose 8-byte runs must not be shown; with a
/// client id, the secret is a client secret and its Basic forms count too.
fn forms(secret: &str, client_id: Option<&str>) -> Vec<String> {
    const UNRESERVED_KEPT: &percent_encoding::AsciiSet =
        &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let strict = |s: &str| percent_encode(s.as_bytes(), UNRESERVED_KEPT).to_string();
    let json = serde_json::to_string(secret).unwrap();
    let mut forms = vec![
        secret.to_owned(),
        strict(secret),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        json[1..json.len() - 1].to_owned(),
    ];
    if let Some(id) = client_id {
        forms.push(base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", strict(id), strict(secret))));
        forms.push(base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
    }
    forms
}

/// Fails when `shown` holds an 8-byte run of any form of a secret.
fn assert_hidden(shown: &str, forms: &[String]) {
    for form in forms {
        for run in form.as_bytes().windows(8) {
            if let Ok(run) = std::str::from_utf8(run) {
                assert!(!shown.contains(run), "a run `{run}` of a secret is shown: {shown}");
            }
        }
    }
}

/// How a provider may echo a secret.
fn echo(secret: &str, client_id: Option<&str>, shape: u8, cut: usize) -> String {
    let forms = forms(secret, client_id);
    match usize::from(shape) % (forms.len() + 1) {
        i if i < forms.len() => forms[i].clone(),
        // Cut short by the provider, at a character boundary, at least 8 bytes.
        _ => {
            let end = (cut % secret.len()).max(8).min(secret.len());
            let end = (end..=secret.len()).find(|e| secret.is_char_boundary(*e)).unwrap_or(secret.len());
            secret[..end].to_owned()
        }
    }
}

/// A body that carries `echoed` in one of many shapes.
fn body_with(echoed: &str, shape: u8, filler: &str) -> (Option<&'static str>, String) {
    let json = |s: &str| serde_json::to_string(s).unwrap();
    match shape % 8 {
        0 => {
            (Some("application/json"), format!(r#"{{"error":"invalid_client","error_description":{}}}"#, json(echoed)))
        }
        1 => (Some("application/json"), format!(r#"{{"error":{}}}"#, json(&format!("bad_{echoed}")))),
        2 => (Some("application/json"), format!(r#"{{"error":"x","error_uri":{}}}"#, json(echoed))),
        3 => (Some("application/json"), format!(r#"{{"access_token":"t","token_type":{}}}"#, json(echoed))),
        4 => (
            Some("application/x-www-form-urlencoded"),
            format!(
                "error=invalid_client&error_description={}",
                form_urlencoded::byte_serialize(echoed.as_bytes()).collect::<String>()
            ),
        ),
        5 => (Some("text/html"), format!("<html><p>{filler}</p><pre>{echoed}</pre></html>")),
        6 => (Some("text/plain"), format!("{}{echoed}", "x".repeat(190))),
        _ => (None, format!("{filler} {echoed} {filler}")),
    }
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![Just(200u16), Just(400), Just(401), Just(429), Just(500), Just(503), 100u16..600]
}

/// Any JSON value, including numbers no f64 holds.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| if n.is_finite() { n.to_string() } else { "1e400".to_owned() }),
        prop::sample::select(vec!["1e400", "-1e400", "1e-400", "18446744073709551616", "0.0000001", "-0"])
            .prop_map(str::to_owned),
        ".{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("[1,2]".to_owned()),
        Just(r#"{"a":1}"#.to_owned()),
        Just("true".to_owned()),
    ]
}

fn structured_body() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "error",
        "error_description",
        "error_uri",
    ]);
    prop::collection::vec((field, json_value()), 0..8).prop_map(|fields| {
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
        format!("{{{}}}", inner.join(","))
    })
}

fn headers(content_type: Option<&str>, retry_after: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(http::header::RETRY_AFTER, value);
    }
    headers
}

fn source(client_id: &str, secret: &str, auth: ClientAuth) -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", client_id)
        .client_secret(secret)
        .client_auth(auth)
        .revocation_url("https://auth.example.com/revoke")
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(config(cases("AUTH_FUZZ_CASES")))]

    /// Random bytes: no panic, and a 2xx never quotes the body.
    #[test]
    fn token_parser_survives_random_bytes(
        status in status(),
        content_type in prop::option::of(prop::sample::select(vec!["application/json", "application/x-www-form-urlencoded", "text/plain", "text/html", "application/problem+json", ";;"])),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let config = source("id", "client-secret-value-1", ClientAuth::Basic);
        let headers = headers(content_type, None);
        let status = StatusCode::from_u16(status).unwrap();
        if let Err(error) = parse_token_response(&config, status, &headers, &body) {
            let shown = format!("{error} {error:?}");
            assert_hidden(&shown, &forms("client-secret-value-1", Some("id")));
        }
    }

    /// Structured bodies with every field in every JSON type.
    #[test]
    fn token_parser_survives_structured_bodies(status in status(), body in structured_body(), retry in prop::option::of(".{0,12}")) {
        let config = source("id", "client-secret-value-1", ClientAuth::Post);
        let headers = headers(Some("application/json"), retry.as_deref());
        let parsed = parse_token_response(&config, StatusCode::from_u16(status).unwrap(), &headers, body.as_bytes());
        match parsed {
            Ok(token) => {
                prop_assert!(token.expires_in.is_none_or(|d| d <= auth_core::wire::response::MAX_LIFETIME));
                prop_assert!(!token.access_token.expose_secret().is_empty());
            }
            Err(error) => assert_hidden(&format!("{error} {error:?}"), &forms("client-secret-value-1", Some("id"))),
        }
    }

    /// Planted secrets echoed in every shape are never shown.
    #[test]
    fn no_error_shows_a_planted_secret(
        client_secret in secret(),
        refresh in secret(),
        status in status(),
        which in 0u8..2,
        echo_shape in any::<u8>(),
        body_shape in any::<u8>(),
        cut in any::<usize>(),
        filler in "[a-z ]{0,40}",
        auth in prop::sample::select(vec![ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post, ClientAuth::Json]),
    ) {
        let client_id = "my app";
        let config = source(client_id, &client_secret, auth);
        let echoed = if which == 0 {
            echo(&client_secret, Some(client_id), echo_shape, cut)
        } else {
            echo(&refresh, None, echo_shape, cut)
        };
        let (content_type, body) = body_with(&echoed, body_shape, &filler);
        let headers = headers(content_type, None);
        let status = StatusCode::from_u16(status).unwrap();
        let all = [forms(&client_secret, Some(client_id)), forms(&refresh, None)].concat();
        if let Err(error) = parse_token_response_redacting(&config, &[&refresh], status, &headers, body.as_bytes()) {
            assert_hidden(&format!("{error} {error:?}"), &all);
            // What operators' metrics make of it (every attribute comes from the outcome).
            let outcome = auth_core::lifecycle::RequestOutcome::of(&error);
            assert_hidden(&format!("{outcome:?} {}", outcome.name()), &all);
        }
        // The same echo in a revocation answer, for the token being revoked.
        let token = RefreshToken::new(refresh.clone());
        let revocation = revocation_request(&config, Revocable::RefreshToken(&token)).unwrap();
        assert_hidden(&format!("{revocation:?}"), &all);
        if let Err(error) = revocation.parse_response(&config, status, &headers, body.as_bytes()) {
            let worded = error.about(auth_core::Endpoint::Revocation).to_string();
            assert_hidden(&format!("{error} {error:?} {worded}"), &all);
        }
    }

    /// WWW-Authenticate in any form: read or refused, never a panic.
    #[test]
    fn www_authenticate_survives_anything(
        value in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            "(Bearer|DPoP|Basic|bearer)( [a-z_]{1,12}=(\"[ -~]{0,20}\"|[a-z0-9]{1,8})(, ?)?){0,5}"
                .prop_map(String::into_bytes),
        ],
    ) {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::WWW_AUTHENTICATE, value);
            let _ = auth_core::resource::challenge::from_headers(&headers);
        }
    }

    /// Retry-After in any form.
    #[test]
    fn retry_after_survives_anything(value in prop_oneof![".{0,40}", "[0-9]{1,30}", Just("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()), Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned())], now_secs in any::<u64>()) {
        let mut headers = headers(None, Some(&value));
        let now = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(now_secs % (1 << 40))).unwrap();
        let _ = retry_after_seconds(&headers);
        let parsed = retry_after(&headers, now);
        normalize_retry_after(&mut headers, now);
        if let Some(delay) = parsed {
            // Whatever form it came in, it is now whole seconds the core can read.
            prop_assert_eq!(retry_after_seconds(&headers), Some(Duration::from_secs(delay.as_secs())));
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Advance(Duration),
    ToDeadline,
    Want,
    Answer { status: u16, body: String, retry_after: Option<String> },
    Fail { timeout: bool },
    Unauthorized { back: u64 },
    Restore { access: bool, expires_in: Duration, refresh: bool },
    Discard,
    Revoke,
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..5_000).prop_map(Duration::from_millis),
        (0u64..7_200).prop_map(Duration::from_secs),
        (0u64..400 * 86_400).prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let answer_body = prop_oneof![
        4 => json_value().prop_map(|v| format!(r#"{{"access_token":"at","expires_in":{v},"refresh_token":"rt"}}"#)),
        1 => structured_body(),
        1 => prop::sample::select(vec![r#"{"error":"invalid_grant"}"#, r#"{"error":"invalid_client"}"#, r#"{"error":"temporarily_unavailable"}"#, "<html>down</html>"]).prop_map(str::to_owned),
    ];
    prop_oneof![
        3 => duration().prop_filter("finite", |d| *d != Duration::MAX).prop_map(Step::Advance),
        2 => Just(Step::ToDeadline),
        4 => Just(Step::Want),
        4 => (status(), answer_body, prop::option::of(prop_oneof!["[0-9]{1,25}".boxed(), ".{0,10}".boxed()])).prop_map(|(status, body, retry_after)| Step::Answer { status, body, retry_after }),
        1 => any::<bool>().prop_map(|timeout| Step::Fail { timeout }),
        2 => (0u64..5).prop_map(|back| Step::Unauthorized { back }),
        1 => (any::<bool>(), duration(), any::<bool>()).prop_map(|(access, expires_in, refresh)| Step::Restore { access, expires_in, refresh }),
        1 => Just(Step::Discard),
        1 => Just(Step::Revoke),
    ]
}

fn millis(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

/// Any policy `build()` accepts, the widest included.
fn policies() -> impl Strategy<Value = (RefreshPolicy, BackoffPolicy, Duration)> {
    const DAY: u64 = 86_400_000;
    let refresh = (
        0.0f64..=0.5,
        millis(0..=DAY),
        0.0f64..=1.0,
        millis(0..=3_600_000),
        any::<bool>(),
        any::<bool>(),
        millis(1..=DAY),
    )
        .prop_map(|(fraction, ahead, jitter, margin, background, use_refresh, unauthorized)| RefreshPolicy {
            refresh_ahead_fraction: fraction,
            max_refresh_ahead: ahead,
            jitter,
            safety_margin: margin,
            background,
            use_refresh_token: use_refresh,
            unauthorized_backoff: unauthorized,
        });
    let backoff = (
        millis(1..=3_600_000),
        1.0f64..=10.0,
        millis(0..=DAY),
        0.0f64..=1.0,
        millis(0..=DAY),
        millis(0..=DAY),
        millis(100..=600_000),
    )
        .prop_map(|(initial, multiplier, extra, jitter, permanent, retry_after, demand)| BackoffPolicy {
            initial,
            multiplier,
            max: (initial + extra).min(Duration::from_millis(DAY)),
            jitter,
            permanent_delay: permanent,
            max_retry_after: retry_after,
            demand_retry: demand,
        });
    let lifetime = prop_oneof![millis(1_000..=600_000), millis(1_000..=366 * DAY)];
    (refresh, backoff, lifetime)
}

proptest! {
    #![proptest_config(config(cases("AUTH_FUZZ_SEQUENCES")))]

    #[test]
    fn lifecycle_holds_its_invariants_under_extreme_policies(
        (refresh, backoff, lifetime) in policies(),
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..40),
        budget in prop::option::of(1u32..5),
    ) {
        let secret = "lifecycle-client-secret-77";
        let mut builder = SourceConfig::builder("https://auth.example.com/token", "id")
            .client_secret(secret)
            .client_auth(ClientAuth::Post)
            .revocation_url("https://auth.example.com/revoke")
            .refresh_policy(refresh)
            .backoff_policy(backoff)
            .default_lifetime(lifetime);
        if let Some(limit) = budget {
            builder = builder.max_fetches_per_day(limit);
        }
        let config = builder.build().expect("the strategy only makes valid policies");
        // When the fetch in flight was sent, and when each fetch that
        // brought a token was sent.
        let mut sent_at = None;
        let mut fetched: Vec<Instant> = Vec::new();
        let mut lc = Lifecycle::new(config, seed);
        let start = Instant::now();
        let mut now = start;
        let mut answered = false;
        let mut in_flight = None;
        let mut issued: Vec<auth_core::Generation> = Vec::new();
        let hidden = [forms(secret, Some("id")), forms("at-Hn4Bq9Lc2Rt", None), forms("rt-Zq81xKp3Wm7v", None)].concat();
        lc.observe(true);
        let mut watched = Watched::new();
        for step in steps {
            match step {
                Step::Advance(by) => {
                    now += by;
                    lc.handle_timeout(now);
                }
                Step::ToDeadline => {
                    if let Some(deadline) = lc.poll_timeout() {
                        now = now.max(deadline);
                        lc.handle_timeout(now);
                    }
                }
                Step::Want => match lc.handle_token_wanted(now) {
                    Want::Ready(token) => prop_assert!(token.is_usable(now), "handed out an unusable token"),
                    Want::Wait => {
                        prop_assert!(lc.fetch_in_flight().is_some(), "told to wait with no fetch");
                        watched.telemetry.caller(tracing::info_span!("caller"), true);
                    }
                    Want::Failed(error) => assert_hidden(&format!("{error} {error:?}"), &hidden),
                    other => prop_assert!(false, "unexpected {other:?}"),
                },
                Step::Answer { status, body, retry_after } => {
                    if let Some(id) = in_flight.take() {
                        let mut response = http::Response::new(body.into_bytes());
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                            response.headers_mut().insert(http::header::RETRY_AFTER, value);
                        }
                        lc.handle_fetch_response(now, test_wall(), id, &response);
                        answered = true;
                    }
                }
                Step::Fail { timeout } => {
                    if let Some(id) = in_flight.take() {
                        let error = if timeout { TokenError::timeout(Duration::from_secs(30)) } else { TokenError::transport("reset") };
                        lc.handle_fetch_failed(now, id, error);
                    }
                }
                Step::Unauthorized { back } => {
                    if let Some(generation) = issued.iter().rev().nth(back as usize) {
                        let _ = lc.handle_unauthorized(now, *generation);
                    }
                }
                Step::Restore { access, expires_in, refresh } => {
                    let stored = StoredToken::new(
                        access.then(|| AccessTokenValue::new("at-Hn4Bq9Lc2Rt")),
                        expires_in,
                        refresh.then(|| RefreshToken::new("rt-Zq81xKp3Wm7v")),
                        None,
                    );
                    lc.handle_restore(now, stored);
                }
                Step::Discard => lc.handle_discard(now),
                Step::Revoke => {
                    let requests = lc.handle_revoke(now).expect("a revocation URL is configured");
                    assert_hidden(&format!("{requests:?}"), &hidden);
                }
            }
            while let Some(observation) = lc.poll_observation() {
                watched.telemetry.observed(&observation);
            }
            while let Some(output) = lc.poll_output() {
                match output {
                    Output::Fetch(fetch) => {
                        prop_assert!(in_flight.is_none(), "two fetches in flight");
                        assert_hidden(&format!("{fetch:?}"), &hidden);
                        watched.telemetry.token_request(&fetch);
                        in_flight = Some(fetch.id);
                        sent_at = Some(now);
                    }
                    Output::TokenReady(token) => {
                        prop_assert!(token.is_usable(now), "a token ready but unusable");
                        prop_assert!(token.lifetime() <= auth_core::wire::response::MAX_LIFETIME);
                        prop_assert!(token.renew_at() <= token.usable_until());
                        issued.push(token.generation());
                        if std::mem::take(&mut answered) {
                            fetched.push(sent_at.unwrap_or(start));
                        }
                    }
                    Output::Failed(error) => assert_hidden(&format!("{error} {error:?}"), &hidden),
                    Output::TokenWithdrawn { .. } => {}
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            answered = false;
            prop_assert_eq!(lc.fetch_in_flight(), in_flight, "the machine and the driver disagree on the fetch");
            if let Some(limit) = budget {
                let day = Duration::from_secs(24 * 3600);
                for from in &fetched {
                    let in_day = fetched.iter().filter(|t| **t >= *from && **t < *from + day).count();
                    prop_assert!(in_day <= limit as usize, "{} tokens fetched in a day with a budget of {}", in_day, limit);
                }
            }
            if let Some(token) = lc.current_token(now) {
                prop_assert!(token.is_usable(now));
            }
        }
        watched.assert_hidden(&hidden);
    }
}

/// What operators see of a lifecycle: its spans, read back, and (feature
/// `opentelemetry`) its metrics, exported in memory.
struct Watched {
    telemetry: auth_core::telemetry::Telemetry,
    spans: auth_testkit::spans::SpanLog,
    _default: tracing::subscriber::DefaultGuard,
}

impl Watched {
    fn new() -> Self {
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = auth_testkit::spans::SpanLog::default();
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        #[cfg(feature = "opentelemetry")]
        let telemetry = {
            use opentelemetry::metrics::MeterProvider as _;
            metrics().1.reset();
            let meters = auth_core::telemetry::Meters::new(&metrics().0.meter("fuzz")).by_cache_key();
            auth_core::telemetry::Telemetry::with_meters(Some(meters))
        };
        #[cfg(not(feature = "opentelemetry"))]
        let telemetry = auth_core::telemetry::Telemetry::default();
        Self { telemetry, spans, _default }
    }

    /// No secret in any span's name or field, nor in the metrics.
    fn assert_hidden(&self, hidden: &[String]) {
        assert_hidden(&format!("{:?}", self.spans.all()), hidden);
        #[cfg(feature = "opentelemetry")]
        {
            metrics().0.force_flush().unwrap();
            assert_hidden(&format!("{:?}", metrics().1.get_finished_metrics().unwrap()), hidden);
        }
    }
}

/// One meter provider for the run (its reader has a thread), exported in
/// memory.
#[cfg(feature = "opentelemetry")]
fn metrics(
) -> &'static (opentelemetry_sdk::metrics::SdkMeterProvider, opentelemetry_sdk::metrics::InMemoryMetricExporter) {
    use opentelemetry_sdk::metrics::{
        InMemoryMetricExporter, InMemoryMetricExporterBuilder, PeriodicReader, SdkMeterProvider, Temporality,
    };
    static METRICS: std::sync::OnceLock<(SdkMeterProvider, InMemoryMetricExporter)> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        // Delta: each flush holds what the case just recorded.
        let exporter = InMemoryMetricExporterBuilder::new().with_temporality(Temporality::Delta).build();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        (provider, exporter)
    })
}

#[derive(Debug, Clone)]
enum FleetStep {
    Advance(Duration),
    Want(usize),
    Complete {
        replica: usize,
        ok: bool,
        expires_in: u64,
    },
    Unauthorized(usize),
    StoreFails(bool),
    /// Someone who can write the store plants a record (any generation,
    /// any expiry, possibly for another cache key) between steps.
    Plant {
        generation: u64,
        expires_in: i64,
        other_key: bool,
    },
}

fn fleet_step() -> impl Strategy<Value = FleetStep> {
    prop_oneof![
        3 => prop_oneof![(0u64..2_000).prop_map(Duration::from_millis), (0u64..4_000).prop_map(Duration::from_secs)].prop_map(FleetStep::Advance),
        4 => (0usize..3).prop_map(FleetStep::Want),
        3 => (0usize..3, any::<bool>(), prop_oneof![Just(3600u64), 1u64..120]).prop_map(|(replica, ok, expires_in)| FleetStep::Complete { replica, ok, expires_in }),
        1 => (0usize..3).prop_map(FleetStep::Unauthorized),
        1 => any::<bool>().prop_map(FleetStep::StoreFails),
        1 => (
            prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), any::<u64>(), 0u64..100, 1_800_000_000_000u64..1_800_200_000_000],
            prop_oneof![-100_000i64..100_000, Just(i64::MAX / 4), Just(i64::MIN / 4)],
            any::<bool>(),
        )
            .prop_map(|(generation, expires_in, other_key)| FleetStep::Plant { generation, expires_in, other_key }),
    ]
}

proptest! {
    #![proptest_config(config(cases("AUTH_FUZZ_SEQUENCES") / 5))]

    /// Three replicas sharing a store that may fail at any time, and that
    /// anyone may plant records in (a hostile store): no panic, no planted
    /// token above the generation bound ever handed out,
    /// no unusable token handed out, one fetch per replica at a time, one
    /// awaited store operation at a time, a lease held only while its
    /// holder fetches, and with a fetch budget, no more counted fetches in
    /// any 24 hours than the budget: per replica always, for the fleet
    /// while the store works.
    #[test]
    fn a_fleet_sharing_a_faulty_store_holds_its_invariants(
        seeds in prop::array::uniform3(any::<u64>()),
        steps in prop::collection::vec(fleet_step(), 1..60),
        budget in prop::option::of(1u32..4),
    ) {
        use auth_core::store::{MemoryStore, StoreAnswer, StoreConfig, StoreError, StoreOp};
        let mut builder = SourceConfig::builder("https://auth.example.com/token", "id")
            .client_secret("fleet-client-secret-1");
        if let Some(limit) = budget {
            builder = builder.max_fetches_per_day(limit);
        }
        let config = builder.build().unwrap();
        // Fetches that count against the budget: (when, replica, id); a
        // refused one is given back.
        let mut counted: Vec<(Duration, usize, auth_core::FetchId)> = Vec::new();
        let mut store_ever_failed = false;
        let store = MemoryStore::new();
        let mut replicas: Vec<Lifecycle> =
            seeds.iter().map(|seed| Lifecycle::with_store(config.clone(), *seed, StoreConfig::default())).collect();
        let start = Instant::now();
        let wall0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut elapsed = Duration::ZERO;
        let mut in_flight: [Option<auth_core::FetchId>; 3] = [None; 3];
        let mut holds_lease = [false; 3];
        let mut issued: Vec<Vec<(auth_core::Generation, String)>> = vec![Vec::new(); 3];
        // The tokens each replica withdrew after a 401, newest last.
        let mut rejected: Vec<Vec<String>> = vec![Vec::new(); 3];
        let mut failing = false;
        let mut counter = 0u64;
        let other_key = SourceConfig::builder("https://auth.example.com/token", "another").client_secret("x").build().unwrap();
        // Planted tokens no replica may take up: above the generation bound.
        let mut out_of_bounds: Vec<String> = Vec::new();
        for step in steps {
            let mut touched: Vec<usize> = Vec::new();
            match step {
                FleetStep::Advance(by) => {
                    elapsed += by;
                    for (i, lc) in replicas.iter_mut().enumerate() {
                        lc.handle_timeout(start + elapsed);
                        touched.push(i);
                    }
                }
                FleetStep::Want(i) => {
                    if let Want::Ready(token) = replicas[i].handle_token_wanted(start + elapsed) {
                        prop_assert!(token.is_usable(start + elapsed));
                    }
                    touched.push(i);
                }
                FleetStep::Complete { replica, ok, expires_in } => {
                    if let Some(id) = in_flight[replica].take() {
                        counter += 1;
                        let body = if ok {
                            format!(r#"{{"access_token":"tok-{counter}","expires_in":{expires_in}}}"#)
                        } else {
                            "<html>down</html>".to_owned()
                        };
                        let status = if ok { 200 } else { 503 };
                        if !ok {
                            counted.retain(|(_, r, f)| (*r, *f) != (replica, id));
                        }
                        let response = http::Response::builder().status(status).body(body.into_bytes()).unwrap();
                        replicas[replica].handle_fetch_response(start + elapsed, test_wall(), id, &response);
                        touched.push(replica);
                    }
                }
                FleetStep::Unauthorized(i) => {
                    if let Some((generation, value)) = issued[i].last() {
                        if replicas[i].handle_unauthorized(start + elapsed, *generation) == auth_core::Unauthorized::Invalidated {
                            rejected[i].push(value.clone());
                        }
                        touched.push(i);
                    }
                }
                FleetStep::StoreFails(on) => {
                    failing = on;
                    store_ever_failed |= on;
                }
                FleetStep::Plant { generation, expires_in, other_key: foreign } => {
                    use auth_core::store::{Envelope, Record};
                    counter += 1;
                    let value = format!("planted-{counter}");
                    let wall = wall0 + elapsed;
                    let expires = if expires_in >= 0 {
                        wall.checked_add(Duration::from_secs(expires_in.unsigned_abs()))
                    } else {
                        wall.checked_sub(Duration::from_secs(expires_in.unsigned_abs()))
                    }
                    .unwrap_or(wall);
                    let key = if foreign { other_key.cache_key() } else { config.cache_key() };
                    let envelope = Envelope::seal(&Record::new(key, &value, expires), generation);
                    // Above the bound at any time this sequence can reach
                    // (a generation within a day of the clock becomes
                    // adoptable as the clock moves on).
                    if generation > auth_core::store::generation_bound(wall0 + Duration::from_secs(60 * 4_000)) {
                        out_of_bounds.push(value);
                    }
                    // Planted where the fleet's records live, whatever its key says.
                    let _ = store.apply(config.cache_key(), wall, &StoreOp::Write { envelope, release: None });
                }
            }
            while let Some(i) = touched.pop() {
                while let Some(output) = replicas[i].poll_output() {
                    match output {
                        Output::Store(request) => {
                            let answer = if failing {
                                Err(StoreError::new("down"))
                            } else {
                                Ok(store.apply(config.cache_key(), wall0 + elapsed, &request.op))
                            };
                            match (&request.op, &answer) {
                                (StoreOp::AcquireLease { .. }, Ok(StoreAnswer::Lease(true))) => holds_lease[i] = true,
                                (StoreOp::Write { release: Some(_), .. } | StoreOp::ReleaseLease { .. }, _) => holds_lease[i] = false,
                                _ => {}
                            }
                            replicas[i].handle_store(start + elapsed, wall0 + elapsed, request.id, answer);
                        }
                        Output::Fetch(fetch) => {
                            prop_assert!(in_flight[i].is_none(), "two fetches in flight at replica {i}");
                            counted.push((elapsed, i, fetch.id));
                            assert_hidden(&format!("{fetch:?}"), &forms("fleet-client-secret-1", Some("id")));
                            in_flight[i] = Some(fetch.id);
                        }
                        Output::TokenReady(token) => {
                            prop_assert!(token.is_usable(start + elapsed));
                            let value = auth_core::secret::ExposeSecret::expose_secret(token.value()).to_owned();
                            prop_assert!(!out_of_bounds.contains(&value), "a planted token above the bound was taken up");
                            // Never one of the last eight it withdrew after a 401 (a store
                            // that was down may still hold them).
                            prop_assert!(
                                !rejected[i].iter().rev().take(8).any(|r| *r == value),
                                "replica {} took up {} again after a 401 rejected it", i, value
                            );
                            issued[i].push((token.generation(), value));
                        }
                        Output::Failed(error) => {
                            assert_hidden(&format!("{error} {error:?}"), &forms("fleet-client-secret-1", Some("id")))
                        }
                        _ => {}
                    }
                }
            }
            for i in 0..3 {
                prop_assert_eq!(replicas[i].fetch_in_flight(), in_flight[i]);
                prop_assert!(!holds_lease[i] || in_flight[i].is_some(), "replica {} holds the lease without fetching", i);
                if let Some(token) = replicas[i].current_token(start + elapsed) {
                    prop_assert!(token.is_usable(start + elapsed));
                }
            }
        }
        if let Some(limit) = budget {
            let day = Duration::from_secs(24 * 3600);
            let most_in_a_day = |times: &[Duration]| {
                times.iter().map(|from| times.iter().filter(|t| **t >= *from && **t < *from + day).count()).max().unwrap_or(0)
            };
            for i in 0..3 {
                let own: Vec<Duration> = counted.iter().filter(|(_, r, _)| *r == i).map(|(t, _, _)| *t).collect();
                prop_assert!(most_in_a_day(&own) <= limit as usize, "replica {} exceeded the budget: {:?}", i, own);
            }
            if !store_ever_failed {
                let all: Vec<Duration> = counted.iter().map(|(t, _, _)| *t).collect();
                prop_assert!(most_in_a_day(&all) <= limit as usize, "the fleet exceeded the budget: {:?}", all);
            }
        }
    }
}
