//! The lifecycle's observations as OpenTelemetry metrics (feature
//! `opentelemetry`): [`Meters`].

pub use opentelemetry::metrics::Meter;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;

use super::names;
use crate::config::CacheKey;
use crate::lifecycle::{Observation, RequestOutcome, UnauthorizedOutcome};
use crate::publish::replay::{Attempt, Verdict};
use crate::store::{StoreAnswer, StoreError};

/// The buckets of the durations (seconds): OpenTelemetry's advice for
/// HTTP request durations, from 5 ms to 10 s.
const DURATION_BOUNDARIES: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The buckets of token lifetimes (seconds): from 10 s to a day.
const LIFETIME_BOUNDARIES: [f64; 12] =
    [10.0, 60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0];

/// The instruments a token source records its observations into: one
/// set, named and described here once, that every driver records into.
/// The driver chooses the [`Meter`] (from the user's meter provider); no
/// exporter is chosen here.
///
/// | instrument | kind, unit | attributes |
/// |---|---|---|
/// | `auth.token.requests` | counter, `{request}` | `auth.reason`, `auth.grant`, `auth.outcome`, `auth.error.code` (refused) |
/// | `auth.token.request.duration` | histogram, `s` | `auth.reason`, `auth.outcome` |
/// | `auth.token.lifetime` | histogram, `s` | `auth.token.origin` |
/// | `auth.token.replaced.remaining` | histogram, `s` | `auth.token.origin` |
/// | `auth.token.budget.refusals` | counter, `{request}` | `auth.budget.shared` |
/// | `auth.token.budget.spent` | gauge, `{request}` | `auth.budget.shared`: requests counted in the window (the fleet's when shared), as of the last one |
/// | `auth.token.budget.remaining` | gauge, `{request}` | `auth.budget.shared`: what the window allows still, as of the last request |
/// | `auth.unauthorized` | counter, `{response}` | `auth.outcome` |
/// | `auth.replays` | counter, `{request}` | requests sent again with a renewed token after a 401 |
/// | `auth.replay.outcomes` | counter, `{response}` | `auth.outcome` (`accepted`, `unauthorized`): the API's last answer to a replayed request |
/// | `auth.dpop.nonce_retries` | counter, `{request}` | `auth.endpoint` (`token`, `api`): requests sent once more with a DPoP nonce |
/// | `auth.store.leases` | counter, `{lease}` | `auth.outcome` (`won`, `lost`) |
/// | `auth.store.peer_waits.expired` | counter, `{wait}` | |
/// | `auth.store.claim_waits` | counter, `{wait}` | |
/// | `auth.token.wait.duration` | histogram, `s` | `auth.outcome` (`token`, `error`): callers that waited for a token, and how long |
/// | `auth.store.operations` | counter, `{operation}` | `auth.store.operation`, `auth.outcome` (`ok`, `error`, `timeout`) |
/// | `auth.store.operation.duration` | histogram, `s` | `auth.store.operation`, `auth.outcome` |
/// | `auth.store.available` | gauge, `1` | (1: the store answers; 0: it stopped) |
///
/// Every attribute value comes from a short closed list (an RFC 6749 code
/// outside the RFC is `other`), so the series stay few; the cache key's
/// fingerprint is added only when the user asks ([`Meters::by_cache_key`]).
/// No value is a secret.
///
/// ```
/// use auth_core::lifecycle::{Observation, RequestOutcome};
/// use auth_core::telemetry::Meters;
/// use auth_core::{FetchReason, GrantKind};
///
/// let meter = opentelemetry::global::meter("auth");
/// let meters = Meters::new(&meter);
/// meters.record(&Observation::TokenRequest {
///     reason: FetchReason::Renewal,
///     grant: GrantKind::ClientCredentials,
///     outcome: RequestOutcome::Granted,
///     took: std::time::Duration::from_millis(120),
/// });
/// ```
///
#[derive(Debug, Clone)]
pub struct Meters {
    requests: Counter<u64>,
    request_duration: Histogram<f64>,
    lifetime: Histogram<f64>,
    replaced_remaining: Histogram<f64>,
    budget_refusals: Counter<u64>,
    budget_spent: Gauge<u64>,
    budget_remaining: Gauge<u64>,
    unauthorized: Counter<u64>,
    replays: Counter<u64>,
    replay_outcomes: Counter<u64>,
    nonce_retries: Counter<u64>,
    leases: Counter<u64>,
    peer_waits_expired: Counter<u64>,
    claim_waits: Counter<u64>,
    waits: Histogram<f64>,
    store_operations: Counter<u64>,
    store_duration: Histogram<f64>,
    store_available: Gauge<u64>,
    /// Added to every measurement (the cache key's fingerprint, when asked).
    common: Vec<KeyValue>,
    /// Whether the cache key's fingerprint is to be added (once known).
    by_cache_key: bool,
}

impl Meters {
    /// The instruments, created on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter.u64_counter(name).with_unit(unit).with_description(description).build()
        };
        let gauge = |name: &'static str, description: &'static str| {
            meter.u64_gauge(name).with_unit("{request}").with_description(description).build()
        };
        let seconds = |name: &'static str, description: &'static str| {
            let histogram = meter.f64_histogram(name).with_unit("s").with_description(description);
            histogram.with_boundaries(DURATION_BOUNDARIES.to_vec()).build()
        };
        let lifetimes = |name: &'static str, description: &'static str| {
            let histogram = meter.f64_histogram(name).with_unit("s").with_description(description);
            histogram.with_boundaries(LIFETIME_BOUNDARIES.to_vec()).build()
        };
        Self {
            requests: counter("auth.token.requests", "{request}", "Token requests sent, by reason and outcome"),
            request_duration: seconds("auth.token.request.duration", "How long token requests took"),
            lifetime: lifetimes("auth.token.lifetime", "The lifetime of the tokens that became current"),
            replaced_remaining: lifetimes(
                "auth.token.replaced.remaining",
                "What was left of a token's usable life when another replaced it",
            ),
            budget_refusals: counter(
                "auth.token.budget.refusals",
                "{request}",
                "Token requests not sent: the fetch budget was spent",
            ),
            budget_spent: gauge(
                "auth.token.budget.spent",
                "Token requests counted against the fetch budget in its window",
            ),
            budget_remaining: gauge(
                "auth.token.budget.remaining",
                "Token requests the fetch budget allows still in its window",
            ),
            unauthorized: counter("auth.unauthorized", "{response}", "401 answers to this source's tokens"),
            replays: counter("auth.replays", "{request}", "Requests sent again with a renewed token after a 401"),
            replay_outcomes: counter(
                "auth.replay.outcomes",
                "{response}",
                "The API's last answer to requests replayed after a 401",
            ),
            nonce_retries: counter(
                "auth.dpop.nonce_retries",
                "{request}",
                "Requests sent once more with the DPoP nonce a server asked for",
            ),
            leases: counter("auth.store.leases", "{lease}", "Renewal leases asked of the shared store"),
            peer_waits_expired: counter(
                "auth.store.peer_waits.expired",
                "{wait}",
                "Waits for a peer's token that ran out (this source fetched on its own)",
            ),
            claim_waits: counter(
                "auth.store.claim_waits",
                "{wait}",
                "Refresh tokens found claimed by a peer (its tokens awaited)",
            ),
            waits: seconds("auth.token.wait.duration", "How long callers waited for a token"),
            store_operations: counter(
                "auth.store.operations",
                "{operation}",
                "Operations on the shared token store, by kind and outcome",
            ),
            store_duration: seconds("auth.store.operation.duration", "How long operations on the shared store took"),
            store_available: meter
                .u64_gauge("auth.store.available")
                .with_unit("1")
                .with_description("Whether the shared token store answers (1) or stopped (0)")
                .build(),
            common: Vec::new(),
            by_cache_key: false,
        }
    }

    /// Records a store operation of `kind` ([`StoreOp::kind`](crate::store::StoreOp::kind))
    /// that the driver carried out in `took`, and how it ended.
    pub fn record_store(&self, kind: &'static str, answer: &Result<StoreAnswer, StoreError>, took: Duration) {
        let outcome = names::store_outcome(answer);
        let attributes =
            self.with(&[KeyValue::new("auth.store.operation", kind), KeyValue::new("auth.outcome", outcome)]);
        self.store_operations.add(1, &attributes);
        self.store_duration.record(took.as_secs_f64(), &attributes);
    }

    /// Records a request sent again with a renewed token after a 401.
    pub fn record_replay(&self) {
        self.replays.add(1, &self.with(&[]));
    }

    /// Records what came of a request's answer ([`judge`](crate::publish::replay::judge)'s
    /// `verdict` for a request sent as `attempt`): a DPoP nonce retry to
    /// the API, the last answer to a replayed request.
    pub fn record_verdict(&self, attempt: Attempt, verdict: Verdict) {
        if verdict == Verdict::RetryWithNonce {
            self.record_nonce_retry(true);
        }
        if attempt.renewed() && !verdict.sends_again() {
            let outcome = if verdict == Verdict::Accepted { "accepted" } else { "unauthorized" };
            self.replay_outcomes.add(1, &self.with(&[KeyValue::new("auth.outcome", outcome)]));
        }
    }

    /// Records a request sent once more with a DPoP nonce, to the API
    /// (`api`) or the token endpoint.
    pub fn record_nonce_retry(&self, api: bool) {
        let endpoint = if api { "api" } else { "token" };
        self.nonce_retries.add(1, &self.with(&[KeyValue::new("auth.endpoint", endpoint)]));
    }

    /// Records a caller's wait for a token, which ended with one (`token`)
    /// or with an error.
    pub fn record_wait(&self, took: Duration, token: bool) {
        let outcome = if token { "token" } else { "error" };
        self.waits.record(took.as_secs_f64(), &self.with(&[KeyValue::new("auth.outcome", outcome)]));
    }

    /// Records that the store answers again (`true`) or stopped answering.
    pub fn record_store_health(&self, available: bool) {
        self.store_available.record(u64::from(available), &self.with(&[]));
    }

    /// `attributes`, after the ones every measurement carries.
    fn with(&self, attributes: &[KeyValue]) -> Vec<KeyValue> {
        self.common.iter().cloned().chain(attributes.iter().cloned()).collect()
    }

    /// Adds the cache key's fingerprint (`auth.cache_key`) to every
    /// measurement, once the driver names the source's configuration
    /// ([`Meters::for_source`]): one series per configuration, for users
    /// who tell their sources apart this way (mind the cardinality).
    pub fn by_cache_key(mut self) -> Self {
        self.by_cache_key = true;
        self
    }

    /// These instruments for the source of `key`: with its fingerprint as
    /// an attribute when asked ([`Meters::by_cache_key`]).
    pub fn for_source(mut self, key: &CacheKey) -> Self {
        if self.by_cache_key {
            self.common.push(KeyValue::new("auth.cache_key", key.fingerprint().to_owned()));
        }
        self
    }

    /// Records `observation`.
    pub fn record(&self, observation: &Observation) {
        match observation {
            Observation::TokenRequest { reason, grant, outcome, took } => {
                let reason = KeyValue::new("auth.reason", names::reason(*reason));
                let result = KeyValue::new("auth.outcome", outcome.name());
                self.request_duration.record(took.as_secs_f64(), &self.with(&[reason.clone(), result.clone()]));
                let mut attributes = vec![reason, KeyValue::new("auth.grant", names::grant(*grant)), result];
                if let RequestOutcome::Refused { code } = outcome {
                    attributes.push(KeyValue::new("auth.error.code", *code));
                }
                self.requests.add(1, &self.with(&attributes));
            }
            Observation::TokenInstalled { origin, lifetime, replaced_left } => {
                let attributes = self.with(&[KeyValue::new("auth.token.origin", names::origin(*origin))]);
                self.lifetime.record(lifetime.as_secs_f64(), &attributes);
                if let Some(left) = replaced_left {
                    self.replaced_remaining.record(left.as_secs_f64(), &attributes);
                }
            }
            Observation::BudgetRefused { shared } => {
                self.budget_refusals.add(1, &self.with(&[KeyValue::new("auth.budget.shared", *shared)]));
            }
            Observation::Budget { spent, limit, shared } => {
                let attributes = self.with(&[KeyValue::new("auth.budget.shared", *shared)]);
                self.budget_spent.record(u64::from(*spent), &attributes);
                self.budget_remaining.record(u64::from(limit.saturating_sub(*spent)), &attributes);
            }
            Observation::Unauthorized { outcome } => {
                let outcome = match outcome {
                    UnauthorizedOutcome::Invalidated => "invalidated",
                    UnauthorizedOutcome::AlreadyReplaced => "already_replaced",
                    UnauthorizedOutcome::Suppressed => "suppressed",
                };
                self.unauthorized.add(1, &self.with(&[KeyValue::new("auth.outcome", outcome)]));
            }
            Observation::Lease { won } => {
                let outcome = if *won { "won" } else { "lost" };
                self.leases.add(1, &self.with(&[KeyValue::new("auth.outcome", outcome)]));
            }
            Observation::PeerWaitExpired => self.peer_waits_expired.add(1, &self.with(&[])),
            Observation::ClaimWait => self.claim_waits.add(1, &self.with(&[])),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;
    use crate::lifecycle::{FetchReason, GrantKind, TokenOrigin};

    /// Every data point exported: instrument, attributes, and the sum (a
    /// counter) or the count (a histogram).
    pub(crate) fn points(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> Vec<(String, String, u64)> {
        provider.force_flush().unwrap();
        let mut points = Vec::new();
        for resource in exporter.get_finished_metrics().unwrap() {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics() {
                    let name = metric.name().to_owned();
                    let attributes = |attributes: &mut dyn Iterator<Item = &KeyValue>| {
                        let mut pairs: Vec<String> = attributes.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
                        pairs.sort();
                        pairs.join(",")
                    };
                    match metric.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                            for point in sum.data_points() {
                                points.push((name.clone(), attributes(&mut point.attributes()), point.value()));
                            }
                        }
                        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                            for point in histogram.data_points() {
                                points.push((name.clone(), attributes(&mut point.attributes()), point.count()));
                            }
                        }
                        AggregatedMetrics::U64(MetricData::Gauge(gauge)) => {
                            for point in gauge.data_points() {
                                points.push((name.clone(), attributes(&mut point.attributes()), point.value()));
                            }
                        }
                        other => panic!("unexpected data for {name}: {other:?}"),
                    }
                }
            }
        }
        points.sort();
        points
    }

    #[test]
    fn each_observation_is_one_measurement_with_closed_attributes() {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        let meters = Meters::new(&provider.meter("auth-test"));
        let request = |reason, grant, outcome| Observation::TokenRequest {
            reason,
            grant,
            outcome,
            took: Duration::from_millis(80),
        };
        for observation in [
            request(FetchReason::NoToken, GrantKind::ClientCredentials, RequestOutcome::Granted),
            request(FetchReason::Renewal, GrantKind::ClientCredentials, RequestOutcome::Granted),
            request(FetchReason::Renewal, GrantKind::RefreshToken, RequestOutcome::Refused { code: "invalid_grant" }),
            request(
                FetchReason::Unauthorized,
                GrantKind::ClientCredentials,
                RequestOutcome::Failed { kind: "transport", transient: true },
            ),
            Observation::TokenInstalled {
                origin: TokenOrigin::Fetched,
                lifetime: Duration::from_secs(3600),
                replaced_left: Some(Duration::from_secs(600)),
            },
            Observation::TokenInstalled {
                origin: TokenOrigin::Adopted,
                lifetime: Duration::from_secs(3600),
                replaced_left: None,
            },
            Observation::BudgetRefused { shared: true },
            Observation::Unauthorized { outcome: UnauthorizedOutcome::Invalidated },
            Observation::Lease { won: true },
            Observation::Lease { won: false },
            Observation::Lease { won: false },
            Observation::PeerWaitExpired,
            Observation::ClaimWait,
            Observation::Budget { spent: 3, limit: 10, shared: false },
            Observation::Budget { spent: 4, limit: 10, shared: false },
        ] {
            meters.record(&observation);
        }
        // A DPoP request: a nonce retry, then a 401 renewed, then accepted.
        let renewed = Attempt::default().after(Verdict::Renew);
        meters.record_verdict(Attempt::default(), Verdict::RetryWithNonce);
        meters.record_verdict(Attempt::default().after(Verdict::RetryWithNonce), Verdict::Renew);
        meters.record_verdict(renewed, Verdict::Accepted);
        meters.record_verdict(renewed, Verdict::RejectedAfterRenewal);
        meters.record_verdict(Attempt::default(), Verdict::Accepted);
        meters.record_nonce_retry(false);
        let points = points(&provider, &exporter);
        let expected = [
            ("auth.dpop.nonce_retries", "auth.endpoint=api", 1),
            ("auth.dpop.nonce_retries", "auth.endpoint=token", 1),
            ("auth.replay.outcomes", "auth.outcome=accepted", 1),
            ("auth.replay.outcomes", "auth.outcome=unauthorized", 1),
            ("auth.token.budget.remaining", "auth.budget.shared=false", 6),
            ("auth.token.budget.spent", "auth.budget.shared=false", 4),
            ("auth.store.claim_waits", "", 1),
            ("auth.store.leases", "auth.outcome=lost", 2),
            ("auth.store.leases", "auth.outcome=won", 1),
            ("auth.store.peer_waits.expired", "", 1),
            ("auth.token.budget.refusals", "auth.budget.shared=true", 1),
            ("auth.token.lifetime", "auth.token.origin=adopted", 1),
            ("auth.token.lifetime", "auth.token.origin=fetched", 1),
            ("auth.token.replaced.remaining", "auth.token.origin=fetched", 1),
            ("auth.token.request.duration", "auth.outcome=ok,auth.reason=no_token", 1),
            ("auth.token.request.duration", "auth.outcome=ok,auth.reason=renewal", 1),
            ("auth.token.request.duration", "auth.outcome=refused,auth.reason=renewal", 1),
            ("auth.token.request.duration", "auth.outcome=transient,auth.reason=unauthorized", 1),
            ("auth.token.requests", "auth.grant=client_credentials,auth.outcome=ok,auth.reason=no_token", 1),
            ("auth.token.requests", "auth.grant=client_credentials,auth.outcome=ok,auth.reason=renewal", 1),
            ("auth.token.requests", "auth.grant=client_credentials,auth.outcome=transient,auth.reason=unauthorized", 1),
            (
                "auth.token.requests",
                "auth.error.code=invalid_grant,auth.grant=refresh_token,auth.outcome=refused,auth.reason=renewal",
                1,
            ),
            ("auth.unauthorized", "auth.outcome=invalidated", 1),
        ];
        let mut expected: Vec<(String, String, u64)> =
            expected.iter().map(|(n, a, v)| (n.to_string(), a.to_string(), *v)).collect();
        expected.sort();
        assert_eq!(points, expected);
    }

    #[test]
    fn the_cache_key_is_an_attribute_only_when_asked() {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        let config = crate::SourceConfig::builder("https://a.example/token", "id").client_secret("s").build().unwrap();
        let meter = provider.meter("auth-test");
        let asked = Meters::new(&meter).by_cache_key().for_source(config.cache_key());
        let plain = Meters::new(&meter).for_source(config.cache_key());
        asked.record(&Observation::PeerWaitExpired);
        plain.record(&Observation::PeerWaitExpired);
        let points = points(&provider, &exporter);
        assert_eq!(
            points,
            [
                ("auth.store.peer_waits.expired".to_owned(), String::new(), 1),
                (
                    "auth.store.peer_waits.expired".to_owned(),
                    format!("auth.cache_key={}", config.cache_key().fingerprint()),
                    1
                ),
            ]
        );
    }
}
