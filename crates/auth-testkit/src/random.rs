//! Random credentials, as the provider issues them.

/// A random credential (`prefix` and 32 letters and digits), as the
/// provider issues its tokens: for test clients' secrets and API keys.
pub fn random_token(prefix: &str) -> String {
    let mut rng = fastrand::Rng::new();
    let body: String = std::iter::repeat_with(|| rng.alphanumeric()).take(32).collect();
    format!("{prefix}{body}")
}
