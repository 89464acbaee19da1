#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Figure 11: what a signature costs a request. The floor of each DPoP
//! figure is the frame's floor (the static-header layer or middleware)
//! plus one bare signature made with ring, the crypto provider, of a
//! DPoP-sized message: everything else a proof needs (claims, base64url,
//! the header value) is the overhead measured against it.
//!
//! - `signing/bare_*`: one ring signature of 400 bytes (ES256, EdDSA, RS256, PS256);
//! - `signing/proof_*`: one `Dpop::proof` for an API request (with `ath`);
//! - `signing/layer_dpop_*`: a request through the tower layer with a
//!   DPoP-bound token (and `signing/layer_floor`);
//! - `signing/middleware_dpop_*`: the same through the reqwest middleware
//!   (and `signing/middleware_floor`);
//! - `signing/assertion_es256`: a `private_key_jwt` token request made
//!   ready to send (a fresh assertion).

use std::time::{Duration, Instant, SystemTime};

use auth_bench::reqwest_frame::{self, StaticHeader};
use auth_bench::{
    bearer_header, benchmarking, drive, floor, ours, paired_ratio, token_value, write_figures, Figure, API_URI,
};
use auth_core::dpop::Dpop;
use auth_core::keys::{Algorithm, SigningKey};
use auth_core::secret::AccessTokenValue;
use auth_core::wire::request::{ready_to_send, token_request, Grant};
use auth_reqwest::AuthMiddleware;
use criterion::{criterion_group, Criterion};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

fn fixture(name: &str) -> String {
    let path = format!("{}/../auth-core/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The key of each algorithm measured, as the library reads it.
fn keys() -> [(&'static str, SigningKey); 4] {
    let rsa = || SigningKey::from_pem(&fixture("rsa-2048.pem")).expect("the RSA fixture");
    [
        ("es256", SigningKey::generate_es256().expect("a P-256 key")),
        ("eddsa", SigningKey::from_pem(&fixture("ed25519.pem")).expect("the Ed25519 fixture")),
        ("rs256", rsa()),
        ("ps256", rsa().with_algorithm(Algorithm::Ps256).expect("PS256")),
    ]
}

/// Signs a message, returning the signature's length.
type Signer = Box<dyn Fn(&[u8]) -> usize>;

/// One bare ring signature of `message` with `key` (loaded into ring from
/// its PKCS#8, as the library does).
fn bare_signer(key: &SigningKey) -> Signer {
    let pem = key.to_pkcs8_pem().expect("PKCS#8");
    let (_, der) = pkcs8::SecretDocument::from_pem(&pem).expect("PEM");
    let der = der.as_bytes().to_vec();
    let rng = SystemRandom::new();
    match key.algorithm() {
        Algorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).expect("P-256");
            Box::new(move |message| pair.sign(&rng, message).expect("a signature").as_ref().len())
        }
        Algorithm::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).expect("Ed25519");
            Box::new(move |message| pair.sign(message).as_ref().len())
        }
        algorithm => {
            let pair = RsaKeyPair::from_pkcs8(&der).expect("RSA");
            let padding: &'static dyn sig::RsaEncoding =
                if algorithm == Algorithm::Ps256 { &sig::RSA_PSS_SHA256 } else { &sig::RSA_PKCS1_SHA256 };
            Box::new(move |message| {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut signature).expect("a signature");
                signature.len()
            })
        }
    }
}

fn signing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let message = vec![b'x'; 400];
    let target: http::Uri = API_URI.parse().expect("the benchmark URI");
    let token = AccessTokenValue::new(token_value());
    let url = reqwest::Url::parse(API_URI).expect("the benchmark URL");
    let mut paired = Vec::new();
    let mut group = c.benchmark_group("signing");
    group.bench_function("layer_floor", |b| b.to_async(&runtime).iter_custom(|iters| drive(floor(), iters)));
    let floor_client = reqwest_frame::client(StaticHeader(bearer_header()));
    group.bench_function("middleware_floor", |b| {
        b.to_async(&runtime).iter_custom(|iters| reqwest_frame::drive(&floor_client, &url, iters))
    });
    for (name, key) in keys() {
        let bare = bare_signer(&key);
        group.bench_function(format!("bare_{name}"), |b| b.iter(|| bare(std::hint::black_box(&message))));
        let dpop = Dpop::new(key.clone()).expect("a DPoP key");
        group.bench_function(format!("proof_{name}"), |b| {
            b.iter(|| dpop.proof(&http::Method::GET, &target, Some(&token), SystemTime::now()).expect("a proof"))
        });
        let source = runtime.block_on(async {
            let source = auth_bench::dpop_token_source_with(key.clone());
            source.token().await.expect("a first DPoP token");
            source
        });
        group.bench_function(format!("layer_dpop_{name}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| drive(ours(&source), iters))
        });
        let credentials = auth_core::Credentials::bearer("https://api.example.com").expect("the origin is valid");
        let client = reqwest_frame::client(AuthMiddleware::new(source.clone(), credentials));
        group.bench_function(format!("middleware_dpop_{name}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| reqwest_frame::drive(&client, &url, iters))
        });
        if benchmarking() && matches!(name, "es256" | "eddsa") {
            // In turns (the VM's speed drifts): the frame's floor plus one
            // bare signature per request, against the frame with the token.
            const BATCH: u64 = 100;
            let signed = |elapsed: Duration| {
                let started = Instant::now();
                for _ in 0..BATCH {
                    std::hint::black_box(bare(std::hint::black_box(&message)));
                }
                elapsed + started.elapsed()
            };
            let layer_floor = || signed(runtime.block_on(drive(floor(), BATCH)));
            let layer = || runtime.block_on(drive(ours(&source), BATCH));
            let middleware_floor = || signed(runtime.block_on(reqwest_frame::drive(&floor_client, &url, BATCH)));
            let middleware = || runtime.block_on(reqwest_frame::drive(&client, &url, BATCH));
            let ratio = paired_ratio(51, layer_floor, layer);
            let alg = key.algorithm();
            paired.push(Figure::new(format!("paired: tower layer, a DPoP-bound {alg} token"), ratio, "x"));
            let ratio = paired_ratio(51, middleware_floor, middleware);
            paired.push(Figure::new(format!("paired: reqwest middleware, a DPoP-bound {alg} token"), ratio, "x"));
        }
    }
    let key = SigningKey::generate_es256().expect("a P-256 key").with_key_id("bench");
    let config = auth_core::SourceConfig::builder("https://auth.example.com/token", "bench-client")
        .signing_key(key)
        .build()
        .expect("a private_key_jwt configuration");
    let built = token_request(&config, Grant::ClientCredentials);
    group.bench_function("assertion_es256", |b| {
        b.iter(|| ready_to_send(&built, SystemTime::now()).expect("a request with its assertion"))
    });
    group.finish();
    if benchmarking() {
        write_figures("signing_paired", &paired);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = signing
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
